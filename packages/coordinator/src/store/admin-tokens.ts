/**
 * The named admin tokens aggregate: API tokens with a scope (read, approve, full) beside the first
 * admin token (admin-token.ts, which stays `full`). Stored as SHA-256 only (secrets.ts).
 */
import { randomBytes } from 'node:crypto';
import { ADMIN_TOKEN_PREFIX, AdminScope, type AdminToken } from '@wiremesh/protocol';
import { ApiError } from '../api-error.js';
import { SECRET_BYTES } from '../constants.js';
import { UniqueViolation } from '../db.js';
import { hashSecret } from '../secrets.js';
import { newId, type StoreContext } from './context.js';
import { parseValue } from './json.js';

interface AdminTokenRow {
  id: string;
  name: string;
  scope: string;
  token_hash: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

/** A stored named admin token, parsed (its hash stays in the store). */
export interface AdminTokenRecord {
  readonly id: string;
  readonly name: string;
  readonly scope: AdminScope;
  readonly createdAt: number;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
}

/** Who made an admin call. */
export interface Principal {
  /** The token's name; `admin` for the first admin token. */
  actor: string;
  scope: AdminScope;
}

const RANK: Record<AdminScope, number> = { read: 0, approve: 1, full: 2 };

/** Whether `have` allows what `need` names. */
export function allows(have: AdminScope, need: AdminScope): boolean {
  return RANK[have] >= RANK[need];
}

function recordOf(r: AdminTokenRow): AdminTokenRecord {
  return {
    id: r.id,
    name: r.name,
    scope: parseValue(AdminScope, r.scope, 'scope', `admin token ${r.id}`),
    createdAt: Number(r.created_at),
    lastUsedAt: r.last_used_at === null ? null : Number(r.last_used_at),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  };
}

/** The admin view of a named token (without the token itself). */
function toAdminToken(r: AdminTokenRecord): AdminToken {
  return {
    id: r.id,
    name: r.name,
    scope: r.scope,
    createdAt: r.createdAt,
    lastUsedAt: r.lastUsedAt,
    revoked: r.revokedAt !== null,
  };
}

/** Named admin tokens: creation, listing, revocation, authentication. */
export class AdminTokens {
  constructor(private readonly s: StoreContext) {}

  /** Creates a token; the result carries the token itself (shown once). Throws name_taken. */
  async create(name: string, scope: AdminScope): Promise<AdminToken> {
    const token = `${ADMIN_TOKEN_PREFIX}${randomBytes(SECRET_BYTES).toString('base64url')}`;
    const r: AdminTokenRecord = {
      id: newId(),
      name,
      scope,
      createdAt: this.s.clock(),
      lastUsedAt: null,
      revokedAt: null,
    };
    try {
      await this.s.db.run(
        'INSERT INTO admin_tokens (id, name, scope, token_hash, created_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [r.id, r.name, r.scope, hashSecret(token), r.createdAt, null, null],
      );
    } catch (e) {
      if (e instanceof UniqueViolation)
        throw new ApiError(
          'name_taken',
          `an admin token named ${name} exists; choose another name`,
        );
      throw e;
    }
    return { ...toAdminToken(r), token };
  }

  /** Every named token (revoked ones too), oldest first. */
  async list(): Promise<AdminToken[]> {
    const rows = await this.s.db.all<AdminTokenRow>(
      'SELECT * FROM admin_tokens ORDER BY created_at, id',
    );
    return rows.map((r) => toAdminToken(recordOf(r)));
  }

  /** Revokes a token (id or name); it stops working at once. Throws not_found. */
  async revoke(idOrName: string): Promise<AdminToken> {
    const n = await this.s.db.run(
      'UPDATE admin_tokens SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL',
      [this.s.clock(), idOrName, idOrName],
    );
    const row = await this.s.db.get<AdminTokenRow>(
      'SELECT * FROM admin_tokens WHERE id = ? OR name = ?',
      [idOrName, idOrName],
    );
    if (row === undefined) throw new ApiError('not_found', `no admin token ${idOrName}`);
    const r = recordOf(row);
    if (n === 0 && r.revokedAt === null)
      throw new ApiError('conflict', `admin token ${idOrName} could not be revoked`);
    return toAdminToken(r);
  }

  /** The principal of a named token, or null when `token` is no live named token. */
  async authenticate(token: string): Promise<Principal | null> {
    const row = await this.s.db.get<AdminTokenRow>(
      'SELECT * FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL',
      [hashSecret(token)],
    );
    if (row === undefined) return null;
    const r = recordOf(row);
    await this.s.db.run('UPDATE admin_tokens SET last_used_at = ? WHERE id = ?', [
      this.s.clock(),
      r.id,
    ]);
    return { actor: r.name, scope: r.scope };
  }
}
