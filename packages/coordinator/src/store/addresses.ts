/**
 * Overlay address allocation: one host index per node or external client of a network (IPv4 and
 * the optional IPv6 prefix share it), the lowest free one first. A removed node keeps its index
 * until it is released.
 */
import { ApiError } from '../api-error.js';
import type { Queryable } from '../db.js';
import { lastHostIndex } from '../ip-pool.js';
import { rangesOf, type NetworkRecord } from './networks.js';

/**
 * Takes the lowest free host index of `net` for `ownerId` (callers hold the network lock).
 * Returns the index. Throws address_space_exhausted.
 */
export async function allocateAddress(
  q: Queryable,
  net: NetworkRecord,
  ownerId: string,
): Promise<number> {
  const r = rangesOf(net);
  const last = lastHostIndex(r.v4, r.v6);
  const top = await q.get<{ m: number | null }>(
    'SELECT MAX(host_index) AS m FROM addresses WHERE network_id = ?',
    [net.id],
  );
  let index = (top?.m ?? 0) + 1;
  if (index > last) {
    // The top is taken: look for a gap left by a released node.
    const used = await q.all<{ host_index: number }>(
      'SELECT host_index FROM addresses WHERE network_id = ? ORDER BY host_index',
      [net.id],
    );
    index = 1;
    for (const u of used) {
      if (u.host_index !== index) break;
      index++;
    }
    if (index > last)
      throw new ApiError(
        'address_space_exhausted',
        `network ${net.name} has no free address in ${net.ipv4Cidr}`,
      );
  }
  await q.run('INSERT INTO addresses (network_id, host_index, owner_id) VALUES (?, ?, ?)', [
    net.id,
    index,
    ownerId,
  ]);
  return index;
}

/** Frees the address of `ownerId` (a node or an external client). */
export async function freeAddress(q: Queryable, ownerId: string): Promise<void> {
  await q.run('DELETE FROM addresses WHERE owner_id = ?', [ownerId]);
}
