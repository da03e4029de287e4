/**
 * The one namespace of a network's DNS names: pending and approved nodes, external clients and
 * custom records (`dns.ts`) share it. Used by every aggregate that gives out a name.
 */
import { ApiError } from '../api-error.js';
import type { Queryable } from '../db.js';

/**
 * Throws name_taken unless `name` is free in network `networkId`: no pending or approved node,
 * external client or custom record has it (`exceptId` is the one renamed). Callers hold the
 * network lock.
 */
export async function assertNameFree(
  q: Queryable,
  networkId: string,
  name: string,
  exceptId: string | null = null,
): Promise<void> {
  const other = exceptId ?? '';
  const node = await q.get<{ id: string }>(
    "SELECT id FROM nodes WHERE network_id = ? AND name = ? AND state IN ('pending', 'approved') AND id <> ?",
    [networkId, name, other],
  );
  if (node !== undefined)
    throw new ApiError('name_taken', `a node named ${name} is already in the network`);
  const client = await q.get<{ id: string }>(
    'SELECT id FROM ext_clients WHERE network_id = ? AND name = ? AND id <> ?',
    [networkId, name, other],
  );
  if (client !== undefined)
    throw new ApiError('name_taken', `an external client is named ${name} in the network`);
  const record = await q.get<{ id: string }>(
    'SELECT id FROM dns_records WHERE network_id = ? AND name = ? AND id <> ?',
    [networkId, name, other],
  );
  if (record !== undefined)
    throw new ApiError(
      'name_taken',
      `the DNS record ${name} exists in the network; remove it first (dns remove ${name})`,
    );
}
