/**
 * The audit log aggregate: every mutating admin call made with a valid token, as who (token name),
 * what (method, route, path, status), when and from where. Never a body, so never a secret.
 */
import type { AuditEntry } from '@wiremesh/protocol';
import { newId, type StoreContext } from './context.js';

/** Entries per millisecond the audit order tells apart (seq = ms * this + a counter). */
const SEQ_PER_MS = 1000;

interface AuditRow {
  seq: number;
  id: string;
  at: number;
  actor: string;
  method: string;
  route: string;
  path: string;
  status: number;
  ip: string;
}

function entryOf(r: AuditRow): AuditEntry {
  return {
    id: r.id,
    at: Number(r.at),
    actor: r.actor,
    method: r.method,
    route: r.route,
    path: r.path,
    status: Number(r.status),
    ip: r.ip,
  };
}

/** The audit log: append and read, newest first. */
export class AuditLog {
  private counter = 0;

  constructor(private readonly s: StoreContext) {}

  /** Appends one entry. */
  async record(e: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    const at = this.s.clock();
    await this.s.db.run(
      'INSERT INTO audit_log (seq, id, at, actor, method, route, path, status, ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        at * SEQ_PER_MS + (this.counter++ % SEQ_PER_MS),
        newId(),
        at,
        e.actor,
        e.method,
        e.route,
        e.path,
        e.status,
        e.ip,
      ],
    );
  }

  /** The newest `limit` entries, newest first. */
  async list(limit: number): Promise<AuditEntry[]> {
    const rows = await this.s.db.all<AuditRow>(
      'SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?',
      [limit],
    );
    return rows.map(entryOf);
  }
}
