/**
 * The gateways-and-relays aggregate: the roles an admin gives a node (egress gateway for LAN
 * ranges, ingress gateway for external clients, relay), and the relay fallback's decisions and
 * waits (tables in pair-relays.ts).
 */
import type { Node, SetEgressRequest, SetIngressRequest } from '@wiremesh/protocol';
import { ApiError } from '../api-error.js';
import type { Queryable, SqlValue } from '../db.js';
import { normalizeRange } from '../ip-pool.js';
import { egressRangeProblem } from '../range-policy.js';
import type { StoreContext } from './context.js';
import { jsonText } from './json.js';
import { networkById, rangesOf } from './networks.js';
import { activeNodeByName, findNodeInNetwork, nodeById, nodeView } from './nodes.js';
import type { PairWaitRecord } from './pair-relays.js';

/** Gateway and relay roles, and the relay fallback's pairs. */
export class Gateways {
  constructor(private readonly s: StoreContext) {}

  /** Makes a node an egress gateway for `ranges` (replacing earlier ones). Throws not_found, conflict, validation_failed. */
  async setEgress(id: string, req: SetEgressRequest): Promise<Node> {
    const ranges: string[] = [];
    for (const r of req.ranges) {
      const c = normalizeRange(r);
      if ('problem' in c) throw new ApiError('validation_failed', c.problem);
      if (!ranges.includes(c.cidr)) ranges.push(c.cidr);
    }
    const node = await nodeById(this.s.db, id);
    const problem = egressRangeProblem(
      ranges,
      rangesOf(await networkById(this.s.db, node.networkId)),
    );
    if (problem !== null) throw new ApiError('validation_failed', problem);
    return this.updateRole(
      id,
      'UPDATE nodes SET egress_ranges = ?, egress_interface = ? WHERE id = ?',
      [jsonText(ranges), req.interface ?? '', id],
    );
  }

  /** Removes a node's egress role. */
  async clearEgress(id: string): Promise<Node> {
    return this.updateRole(
      id,
      'UPDATE nodes SET egress_ranges = NULL, egress_interface = NULL WHERE id = ?',
      [id],
    );
  }

  /** Makes a node an ingress gateway, optionally with the endpoint external clients dial. */
  async setIngress(id: string, req: SetIngressRequest): Promise<Node> {
    return this.updateRole(
      id,
      'UPDATE nodes SET is_ingress = 1, ingress_endpoint = ? WHERE id = ?',
      [req.endpoint ?? null, id],
    );
  }

  /** Removes a node's ingress role; its external clients stay but lose their path until it returns. */
  async clearIngress(id: string): Promise<Node> {
    return this.updateRole(
      id,
      'UPDATE nodes SET is_ingress = 0, ingress_endpoint = NULL WHERE id = ?',
      [id],
    );
  }

  private async updateRole(id: string, sql: string, params: SqlValue[]): Promise<Node> {
    const before = await nodeById(this.s.db, id);
    await this.s.change(before.networkId, async (q) => {
      const n = await nodeById(q, id);
      if (n.state === 'removed') throw new ApiError('conflict', 'the node was removed');
      await q.run(sql, params);
    });
    return nodeView(this.s.db, id);
  }

  /** Makes a node the relay of `relayedNodeIds` (ids or names, all in its network), replacing its earlier set. */
  async setRelay(id: string, relayedNodeIds: string[]): Promise<Node> {
    const before = await nodeById(this.s.db, id);
    await this.s.change(before.networkId, async (q) => {
      const n = await nodeById(q, id);
      if (n.state === 'removed') throw new ApiError('conflict', 'the node was removed');
      const relayed: string[] = [];
      for (const r of relayedNodeIds) {
        // A node id, or the name of an active node of the relay's network.
        const other =
          (await findNodeInNetwork(q, n.networkId, r)) ??
          (await activeNodeByName(q, n.networkId, r));
        if (other === undefined)
          throw new ApiError('not_found', `no node ${r} in the relay's network`);
        if (other.id === id)
          throw new ApiError('validation_failed', 'a node cannot relay for itself');
        if (other.isRelay) throw new ApiError('conflict', `node ${other.name} is itself a relay`);
        relayed.push(other.id);
      }
      await q.run('UPDATE nodes SET relayed_by = NULL WHERE relayed_by = ?', [id]);
      await q.run('UPDATE nodes SET is_relay = 1, relayed_by = NULL WHERE id = ?', [id]);
      for (const r of relayed) await q.run('UPDATE nodes SET relayed_by = ? WHERE id = ?', [id, r]);
    });
    return nodeView(this.s.db, id);
  }

  /** Removes a node's relay role; the nodes and pairs it relayed for go direct. */
  async clearRelay(id: string): Promise<Node> {
    const before = await nodeById(this.s.db, id);
    await this.s.change(before.networkId, async (q) => {
      await q.run('UPDATE nodes SET relayed_by = NULL WHERE relayed_by = ?', [id]);
      await q.run('DELETE FROM pair_relays WHERE relay_id = ?', [id]);
      await q.run('UPDATE nodes SET is_relay = 0 WHERE id = ?', [id]);
    });
    return nodeView(this.s.db, id);
  }

  /**
   * Applies a relay-fallback decision to a network in one change (one new map version): the pairs
   * in `remove` go direct, those in `add` are relayed (or moved to another relay). Pairs are node
   * ids with a < b. Returns whether anything changed (nothing is published otherwise).
   */
  async applyPairRelays(
    networkId: string,
    add: readonly { a: string; b: string; relayId: string }[],
    remove: readonly { a: string; b: string }[],
  ): Promise<boolean> {
    if (add.length === 0 && remove.length === 0) return false;
    const now = this.s.clock();
    await this.s.change(networkId, async (q) => {
      for (const r of [...remove, ...add])
        await q.run('DELETE FROM pair_relays WHERE network_id = ? AND node_a = ? AND node_b = ?', [
          networkId,
          r.a,
          r.b,
        ]);
      for (const r of add)
        await q.run(
          'INSERT INTO pair_relays (network_id, node_a, node_b, relay_id, created_at) VALUES (?, ?, ?, ?, ?)',
          [networkId, r.a, r.b, r.relayId, now],
        );
    });
    return true;
  }

  /**
   * Replaces the waiting pairs of network `networkId` that differ from `before` (what was read)
   * with `after`. Maps do not show waits, so nothing is published and the revision stays.
   * Returns whether anything was written.
   */
  async savePairWaits(
    networkId: string,
    before: readonly PairWaitRecord[],
    after: readonly PairWaitRecord[],
  ): Promise<boolean> {
    const key = (w: PairWaitRecord): string => `${w.a} ${w.b}`;
    const old = new Map(before.map((w) => [key(w), w]));
    const next = new Map(after.map((w) => [key(w), w]));
    const gone = before.filter((w) => !next.has(key(w)));
    const put = after.filter((w) => {
      const o = old.get(key(w));
      return o === undefined || o.since !== w.since || o.endpoints !== w.endpoints;
    });
    if (gone.length === 0 && put.length === 0) return false;
    await this.s.db.tx(async (q) => {
      for (const w of gone)
        await q.run('DELETE FROM pair_waits WHERE network_id = ? AND node_a = ? AND node_b = ?', [
          networkId,
          w.a,
          w.b,
        ]);
      // An upsert: replicas evaluating one network at once may both start the same wait.
      for (const w of put)
        await q.run(
          `INSERT INTO pair_waits (network_id, node_a, node_b, since, endpoints) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (network_id, node_a, node_b) DO UPDATE SET since = excluded.since, endpoints = excluded.endpoints`,
          [networkId, w.a, w.b, w.since, w.endpoints],
        );
    });
    return true;
  }
}
