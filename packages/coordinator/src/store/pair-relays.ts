/**
 * The relay fallback's tables: pairs of nodes routed through a relay (`pair_relays`) and pairs
 * waiting for a direct handshake (`pair_waits`), both kept in the database so a restarted
 * coordinator, or another replica, carries on where the last evaluation was. Written by
 * `Gateways`; read with the network (index.ts); cleared here when a node leaves.
 */
import type { Queryable } from '../db.js';

/** A pair of nodes (`a` < `b`) the relay fallback routes through relay node `relayId`. */
export interface PairRelayRecord {
  readonly a: string;
  readonly b: string;
  readonly relayId: string;
  readonly createdAt: number;
}

/**
 * A pair of nodes (`a` < `b`) that configured each other and has waited for a direct handshake
 * since `since` (unix ms) with endpoint candidates `endpoints` (a change restarts the wait).
 */
export interface PairWaitRecord {
  readonly a: string;
  readonly b: string;
  readonly since: number;
  readonly endpoints: string;
}

interface PairRelayRow {
  node_a: string;
  node_b: string;
  relay_id: string;
  created_at: number;
}

interface PairWaitRow {
  node_a: string;
  node_b: string;
  since: number;
  endpoints: string;
}

/** The relayed pairs of network `networkId`. */
export async function pairRelaysOf(q: Queryable, networkId: string): Promise<PairRelayRecord[]> {
  const rows = await q.all<PairRelayRow>(
    'SELECT * FROM pair_relays WHERE network_id = ? ORDER BY node_a, node_b',
    [networkId],
  );
  return rows.map((r) => ({
    a: r.node_a,
    b: r.node_b,
    relayId: r.relay_id,
    createdAt: Number(r.created_at),
  }));
}

/** The waiting pairs of network `networkId`. */
export async function pairWaitsOf(q: Queryable, networkId: string): Promise<PairWaitRecord[]> {
  const rows = await q.all<PairWaitRow>(
    'SELECT * FROM pair_waits WHERE network_id = ? ORDER BY node_a, node_b',
    [networkId],
  );
  return rows.map((r) => ({
    a: r.node_a,
    b: r.node_b,
    since: Number(r.since),
    endpoints: r.endpoints,
  }));
}

/** Forgets every relayed or waiting pair node `id` is in or relays (it left, or lost a role). */
export async function forgetPairsOf(q: Queryable, id: string): Promise<void> {
  await q.run('DELETE FROM pair_relays WHERE node_a = ? OR node_b = ? OR relay_id = ?', [
    id,
    id,
    id,
  ]);
  await q.run('DELETE FROM pair_waits WHERE node_a = ? OR node_b = ?', [id, id]);
}
