/**
 * Admins: named API tokens with scopes (read, approve, full) beside the first admin token (which
 * stays `full`), and the audit log of every mutating admin call. Tokens are stored as SHA-256
 * only (secrets.ts); the log keeps who, what, when and from where, never a body.
 */
import { randomBytes } from 'node:crypto';
import {
  ADMIN_TOKEN_PREFIX,
  type AdminScope,
  type AdminToken,
  type AuditEntry,
} from '@wiremesh/protocol';
import { ApiError } from './api-error.js';
import { SECRET_BYTES } from './constants.js';
import { UniqueViolation, type Db } from './db.js';
import { hashSecret } from './secrets.js';

const ID_BYTES = 8;
/** Entries per millisecond the audit order tells apart (seq = ms * this + a counter). */
const SEQ_PER_MS = 1000;

/** The schema of this module (appended to migrations.ts as one migration). */
export const ADMIN_TOKENS_SQL = `
CREATE TABLE admin_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  scope TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT,
  revoked_at BIGINT
);
CREATE TABLE audit_log (
  seq BIGINT NOT NULL,
  id TEXT PRIMARY KEY,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  path TEXT NOT NULL,
  status INTEGER NOT NULL,
  ip TEXT NOT NULL
);
CREATE INDEX audit_log_seq ON audit_log(seq);
`;

/** Who made an admin call. */
export interface Principal {
  /** The token's name; `admin` for the first admin token. */
  actor: string;
  scope: AdminScope;
}

interface TokenRow {
  id: string;
  name: string;
  scope: AdminScope;
  token_hash: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

const RANK: Record<AdminScope, number> = { read: 0, approve: 1, full: 2 };

/** Whether `have` allows what `need` names. */
export function allows(have: AdminScope, need: AdminScope): boolean {
  return RANK[have] >= RANK[need];
}

function toToken(r: TokenRow): AdminToken {
  return {
    id: r.id,
    name: r.name,
    scope: r.scope,
    createdAt: Number(r.created_at),
    lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at),
    revoked: r.revoked_at !== null,
  };
}

/** Named admin tokens and the audit log, in the coordinator's database. */
export class Admins {
  constructor(
    private readonly db: Db,
    private readonly clock: () => number = Date.now,
  ) {}

  private counter = 0;

  /** Creates a token; the result carries the token itself (shown once). Throws name_taken. */
  async create(name: string, scope: AdminScope): Promise<AdminToken> {
    const token = `${ADMIN_TOKEN_PREFIX}${randomBytes(SECRET_BYTES).toString('base64url')}`;
    const row: TokenRow = {
      id: randomBytes(ID_BYTES).toString('hex'),
      name,
      scope,
      token_hash: hashSecret(token),
      created_at: this.clock(),
      last_used_at: null,
      revoked_at: null,
    };
    try {
      await this.db.run(
        'INSERT INTO admin_tokens (id, name, scope, token_hash, created_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [row.id, row.name, row.scope, row.token_hash, row.created_at, null, null],
      );
    } catch (e) {
      if (e instanceof UniqueViolation)
        throw new ApiError(
          'name_taken',
          `an admin token named ${name} exists; choose another name`,
        );
      throw e;
    }
    return { ...toToken(row), token };
  }

  /** Every named token (revoked ones too), oldest first. */
  async list(): Promise<AdminToken[]> {
    return (await this.db.all<TokenRow>('SELECT * FROM admin_tokens ORDER BY created_at, id')).map(
      toToken,
    );
  }

  /** Revokes a token (id or name); it stops working at once. Throws not_found. */
  async revoke(idOrName: string): Promise<AdminToken> {
    const n = await this.db.run(
      'UPDATE admin_tokens SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL',
      [this.clock(), idOrName, idOrName],
    );
    const row = await this.db.get<TokenRow>('SELECT * FROM admin_tokens WHERE id = ? OR name = ?', [
      idOrName,
      idOrName,
    ]);
    if (row === undefined) throw new ApiError('not_found', `no admin token ${idOrName}`);
    if (n === 0 && row.revoked_at === null)
      throw new ApiError('conflict', `admin token ${idOrName} could not be revoked`);
    return toToken(row);
  }

  /** The principal of a named token, or null when `token` is no live named token. */
  async authenticate(token: string): Promise<Principal | null> {
    const row = await this.db.get<TokenRow>(
      'SELECT * FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL',
      [hashSecret(token)],
    );
    if (row === undefined) return null;
    await this.db.run('UPDATE admin_tokens SET last_used_at = ? WHERE id = ?', [
      this.clock(),
      row.id,
    ]);
    return { actor: row.name, scope: row.scope };
  }

  /** Appends one entry to the audit log. */
  async record(e: Omit<AuditEntry, 'id' | 'at'>): Promise<void> {
    const at = this.clock();
    await this.db.run(
      'INSERT INTO audit_log (seq, id, at, actor, method, route, path, status, ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [
        at * SEQ_PER_MS + (this.counter++ % SEQ_PER_MS),
        randomBytes(ID_BYTES).toString('hex'),
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
  async audit(limit: number): Promise<AuditEntry[]> {
    const rows = await this.db.all<AuditEntry & { seq: number }>(
      'SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?',
      [limit],
    );
    return rows.map((r) => ({
      id: r.id,
      at: Number(r.at),
      actor: r.actor,
      method: r.method,
      route: r.route,
      path: r.path,
      status: Number(r.status),
      ip: r.ip,
    }));
  }
}
