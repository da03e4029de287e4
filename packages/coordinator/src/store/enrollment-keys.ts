/**
 * The enrollment-keys aggregate: keys that let nodes join a network, with expiry, a use limit and
 * auto-approval. Only the key's SHA-256 is stored; the key itself is shown once, on creation.
 */
import type { CreateKeyRequest, EnrollmentKey } from '@wiremesh/protocol';
import { ApiError } from '../api-error.js';
import type { Queryable } from '../db.js';
import { hashSecret, newEnrollmentKey } from '../secrets.js';
import { flag, newId, type StoreContext } from './context.js';
import { networkByName, type NetworkRecord } from './networks.js';

const MS_PER_S = 1000;

interface KeyRow {
  id: string;
  network_id: string;
  name: string | null;
  key_hash: string;
  max_uses: number | null;
  uses: number;
  expires_at: number | null;
  auto_approve: number;
  revoked: number;
  created_at: number;
}

function toKey(k: KeyRow, network: string): EnrollmentKey {
  return {
    id: k.id,
    network,
    name: k.name,
    maxUses: k.max_uses,
    uses: k.uses,
    expiresAt: k.expires_at === null ? null : Number(k.expires_at),
    autoApprove: k.auto_approve === 1,
    revoked: k.revoked === 1,
    createdAt: Number(k.created_at),
  };
}

/**
 * Uses enrollment key `key` to join `net` at time `now` (inside the registration's transaction,
 * `forUpdate` being the dialect's row lock). Returns the key's id and whether it approves the node.
 * Throws enrollment_key_invalid, _expired or _exhausted.
 */
export async function useEnrollmentKey(
  q: Queryable,
  forUpdate: string,
  net: NetworkRecord,
  key: string,
  now: number,
): Promise<{ keyId: string; autoApprove: boolean }> {
  const k = await q.get<KeyRow>(`SELECT * FROM enrollment_keys WHERE key_hash = ?${forUpdate}`, [
    hashSecret(key),
  ]);
  if (k === undefined || k.revoked === 1)
    throw new ApiError('enrollment_key_invalid', 'the enrollment key is unknown or revoked');
  if (k.network_id !== net.id)
    throw new ApiError(
      'enrollment_key_invalid',
      `the enrollment key is not for network ${net.name}`,
    );
  if (k.expires_at !== null && Number(k.expires_at) <= now)
    throw new ApiError(
      'enrollment_key_expired',
      'the enrollment key has expired; ask the admin for a new one',
    );
  const used = await q.run(
    'UPDATE enrollment_keys SET uses = uses + 1 WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)',
    [k.id],
  );
  if (used === 0)
    throw new ApiError(
      'enrollment_key_exhausted',
      'the enrollment key has no uses left; ask the admin for a new one',
    );
  return { keyId: k.id, autoApprove: k.auto_approve === 1 };
}

/** Enrollment keys: creation, listing, revocation. */
export class EnrollmentKeys {
  constructor(private readonly s: StoreContext) {}

  /** Creates an enrollment key; the returned object carries the key itself (shown once). */
  async create(network: string, req: CreateKeyRequest): Promise<EnrollmentKey> {
    const net = await networkByName(this.s.db, network);
    const key = newEnrollmentKey();
    const now = this.s.clock();
    const row: KeyRow = {
      id: newId(),
      network_id: net.id,
      name: req.name ?? null,
      key_hash: hashSecret(key),
      max_uses: req.maxUses ?? null,
      uses: 0,
      expires_at: req.expiresInS === undefined ? null : now + req.expiresInS * MS_PER_S,
      auto_approve: flag(req.autoApprove === true),
      revoked: 0,
      created_at: now,
    };
    await this.s.db.run(
      `INSERT INTO enrollment_keys (id, network_id, name, key_hash, max_uses, uses, expires_at, auto_approve, revoked, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        row.id,
        row.network_id,
        row.name,
        row.key_hash,
        row.max_uses,
        row.uses,
        row.expires_at,
        row.auto_approve,
        row.revoked,
        row.created_at,
      ],
    );
    return { ...toKey(row, net.name), key };
  }

  /** A network's enrollment keys (without the keys themselves). Throws not_found. */
  async list(network: string): Promise<EnrollmentKey[]> {
    const net = await networkByName(this.s.db, network);
    const rows = await this.s.db.all<KeyRow>(
      'SELECT * FROM enrollment_keys WHERE network_id = ? ORDER BY created_at, id',
      [net.id],
    );
    return rows.map((k) => toKey(k, net.name));
  }

  /** Revokes a key; nodes that used it stay. Throws not_found. */
  async revoke(network: string, id: string): Promise<EnrollmentKey> {
    const net = await networkByName(this.s.db, network);
    const row = await this.s.db.tx(async (q) => {
      await q.run('UPDATE enrollment_keys SET revoked = 1 WHERE id = ? AND network_id = ?', [
        id,
        net.id,
      ]);
      return q.get<KeyRow>('SELECT * FROM enrollment_keys WHERE id = ? AND network_id = ?', [
        id,
        net.id,
      ]);
    });
    if (row === undefined)
      throw new ApiError('not_found', `no enrollment key ${id} in network ${network}`);
    return toKey(row, net.name);
  }
}
