// The relay fallback's decisions (path-monitor.ts) on a fake clock: when a pair is relayed, by
// which relay, when it goes back to direct, and the same end to end through the store and maps.
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type NetworkMap, type PeerStatus } from '@wiremesh/protocol';
import { PathMonitor, type PairRelay, type PathNode } from '../src/path-monitor.js';
import { api, autoApproveNetwork, startTestCoordinator } from './helpers.js';

const OPTS = { relayAfterMs: 15_000, freshMs: 195_000, retryMs: 5_000 };

function node(id: string, over: Partial<PathNode> = {}): PathNode {
  return {
    id,
    publicKey: `pk-${id}`,
    online: true,
    approved: true,
    isRelay: false,
    relayedBy: null,
    endpoints: `ep-${id}`,
    handshakes: new Map(),
    ...over,
  };
}

/** Node `id` has configured every peer in `peers`, with a handshake at that time (null: none). */
function reports(id: string, peers: Record<string, number | null>, over: Partial<PathNode> = {}) {
  return node(id, {
    handshakes: new Map(Object.entries(peers).map(([p, t]) => [`pk-${p}`, t])),
    ...over,
  });
}

describe('PathMonitor', () => {
  it('relays a pair with no direct handshake 15 s after both configured each other, via a relay both reach', () => {
    const m = new PathMonitor(OPTS);
    const t0 = 1_000_000;
    const nodes = (now: number) => [
      reports('a', { d: null, r: now - 1000 }),
      reports('d', { a: null, r: now - 2000 }),
      reports('r', { a: now - 1000, d: now - 2000 }, { isRelay: true }),
    ];
    let d = m.evaluate(nodes(t0), [], t0);
    expect(d.add).toEqual([]);
    expect(d.nextCheckAt).toBe(t0 + 15_000);
    expect(m.waiting().get('a d')).toBe(t0);
    d = m.evaluate(nodes(t0 + 14_999), [], t0 + 14_999);
    expect(d.add).toEqual([]);
    d = m.evaluate(nodes(t0 + 15_000), [], t0 + 15_000);
    expect(d.add).toEqual([{ a: 'a', b: 'd', relayId: 'r' }]);
    expect(d.remove).toEqual([]);
    expect(m.waiting().size).toBe(0);
  });

  it('leaves pairs with a fresh handshake on either side direct, and never relays a relay', () => {
    const m = new PathMonitor(OPTS);
    const t0 = 5_000_000;
    const nodes = [
      reports('a', { b: null, r: null }),
      reports('b', { a: t0 - 194_000, r: null }),
      reports('r', { a: null, b: null }, { isRelay: true }),
    ];
    // b saw a handshake 194 s ago: still direct, nothing waits (r is a relay: its pairs never do).
    let d = m.evaluate(nodes, [], t0);
    expect(d).toEqual({ add: [], remove: [], nextCheckAt: null });
    expect(m.waiting().size).toBe(0);
    // The handshake grows stale: now the pair waits, and then needs a relay that reaches both.
    d = m.evaluate(nodes, [], t0 + 2_000);
    expect(m.waiting().has('a b')).toBe(true);
    d = m.evaluate(nodes, [], t0 + 17_000);
    expect(d.add).toEqual([]);
    expect(d.nextCheckAt).toBe(t0 + 22_000);
    // Without any relay in the network nothing is scheduled: the next report looks again.
    const alone = new PathMonitor(OPTS);
    alone.evaluate(nodes.slice(0, 2), [], t0 + 2_000);
    expect(alone.evaluate(nodes.slice(0, 2), [], t0 + 17_000)).toEqual({
      add: [],
      remove: [],
      nextCheckAt: null,
    });
  });

  it('does not start the wait before both nodes configured each other, and restarts it when an endpoint changes', () => {
    const m = new PathMonitor(OPTS);
    const r = reports('r', { a: 0, d: 0 }, { isRelay: true });
    const t0 = 100_000;
    // d has not configured a yet (its map is older): no wait.
    m.evaluate([reports('a', { d: null, r: t0 }), reports('d', { r: t0 }), r], [], t0);
    expect(m.waiting().size).toBe(0);
    m.evaluate(
      [reports('a', { d: null, r: t0 }), reports('d', { a: null, r: t0 }), r],
      [],
      t0 + 1000,
    );
    expect(m.waiting().get('a d')).toBe(t0 + 1000);
    // a learned its public endpoint: a new punching round, a new wait.
    m.evaluate(
      [reports('a', { d: null, r: t0 }, { endpoints: 'new' }), reports('d', { a: null, r: t0 }), r],
      [],
      t0 + 10_000,
    );
    expect(m.waiting().get('a d')).toBe(t0 + 10_000);
    // An offline node's pairs do not wait.
    m.evaluate(
      [
        reports('a', { d: null }, { endpoints: 'new', online: false }),
        reports('d', { a: null }),
        r,
      ],
      [],
      t0 + 11_000,
    );
    expect(m.waiting().size).toBe(0);
  });

  it('moves a relayed pair back to direct when its direct entry reports a fresh handshake', () => {
    const m = new PathMonitor(OPTS);
    const now = 9_000_000;
    const current: PairRelay[] = [{ a: 'a', b: 'd', relayId: 'r' }];
    const r = reports('r', { a: now, d: now }, { isRelay: true });
    let d = m.evaluate([reports('a', { d: null }), reports('d', { a: null }), r], current, now);
    expect(d.add).toEqual([]);
    expect(d.remove).toEqual([]);
    d = m.evaluate([reports('a', { d: null }), reports('d', { a: now - 3000 }), r], current, now);
    expect(d.remove).toEqual([{ a: 'a', b: 'd' }]);
  });

  it('drops pairs whose node or relay left or lost its role, and prefers the least loaded relay', () => {
    const m = new PathMonitor(OPTS);
    const now = 50_000_000;
    const current: PairRelay[] = [
      { a: 'a', b: 'd', relayId: 'r1' },
      { a: 'b', b: 'd', relayId: 'gone' },
      { a: 'c', b: 'd', relayId: 'r1' },
    ];
    const all = { a: null, b: null, c: null, d: null, r1: now, r2: now };
    const nodes = [
      reports('a', { ...all, b: now }),
      reports('b', all),
      reports('c', all, { approved: false, online: false }),
      reports('d', all),
      reports('r1', { a: now, b: now, d: now }, { isRelay: true }),
      reports('r2', { a: now, b: now, d: now }, { isRelay: true }),
    ];
    const d = m.evaluate(nodes, current, now);
    expect(d.remove).toEqual([
      { a: 'b', b: 'd' },
      { a: 'c', b: 'd' },
    ]);
    // The pair b-d lost its relay: it waits again before a new one is chosen.
    expect(m.waiting().has('b d')).toBe(true);
    // r1 carries a-d already, so b-d goes to the idle r2.
    const later = m.evaluate(nodes, [current[0]!], now + 15_000);
    expect(later.add).toEqual([{ a: 'b', b: 'd', relayId: 'r2' }]);
  });

  it('moves a relayed pair to another relay when its relay lost the direct path to one of them', () => {
    const m = new PathMonitor(OPTS);
    const now = 70_000_000;
    const nodes = [
      reports('a', { d: null, r1: null, r2: now }),
      reports('d', { a: null, r1: now, r2: now }),
      reports('r1', { a: null, d: now }, { isRelay: true }),
      reports('r2', { a: now, d: now }, { isRelay: true }),
    ];
    const d = m.evaluate(nodes, [{ a: 'a', b: 'd', relayId: 'r1' }], now);
    expect(d.add).toEqual([{ a: 'a', b: 'd', relayId: 'r2' }]);
  });
});

describe('relay fallback through the coordinator', () => {
  it('relays a pair in both maps after the wait, and makes it direct again once a handshake is reported', async () => {
    let now = 1_700_000_000_000;
    const c = await startTestCoordinator({ clock: () => now, relayAfterMs: 15_000 });
    try {
      const admin = { token: c.admin };
      const reg = await autoApproveNetwork(c.url, admin.token, 'nat', '10.9.0.0/16');
      const [a, d, r] = [await reg('a'), await reg('d'), await reg('r')];
      const relayRes = await api(c.url, 'PUT', `/api/v1/nodes/${r.id}/relay`, {
        ...admin,
        body: { relayedNodeIds: [] },
      });
      expect(relayRes.status).toBe(200);
      const status = (pk: string, ageMs: number | null): PeerStatus => ({
        publicKey: pk,
        latestHandshakeMs: null,
        rxBytes: 0,
        txBytes: 0,
        endpoint: null,
        handshakeAgeMs: ageMs,
      });
      const checkin = async (who: { secret: string }, peers: PeerStatus[]) => {
        const res = await api(c.url, 'POST', '/api/v1/node/checkin', {
          token: who.secret,
          body: { protocolVersion: PROTOCOL_VERSION, peers },
        });
        expect(res.status).toBe(200);
      };
      const round = async (adAge: number | null) => {
        await checkin(a, [status(d.pk, adAge), status(r.pk, 1000)]);
        await checkin(d, [status(a.pk, adAge), status(r.pk, 2000)]);
        await checkin(r, [status(a.pk, 1000), status(d.pk, 2000)]);
      };
      const mapOf = async (id: string) =>
        (await api<NetworkMap>(c.url, 'GET', `/api/v1/nodes/${id}/map`, admin)).body;

      const networkId = (await api(c.url, 'GET', '/api/v1/networks/nat', admin)).body.id as string;
      await round(null);
      const decision = await c.relayFallback!.evaluate(networkId);
      expect(decision.add).toEqual([]);
      now += 15_000;
      await round(null);
      // Check-ins also poke the evaluation by themselves, so which call applies the decision is a
      // race: assert on the state (both maps), which is what agents see.
      await c.relayFallback!.evaluate(networkId);
      const why = 'no_direct_handshake';
      expect((await mapOf(a.id)).self.peerRelays).toEqual([
        { peerId: d.id, relayId: r.id, reason: why },
      ]);
      expect((await mapOf(d.id)).self.peerRelays).toEqual([
        { peerId: a.id, relayId: r.id, reason: why },
      ]);
      expect((await mapOf(r.id)).self.peerRelays).toBeUndefined();

      // The direct entries kept trying and one handshake got through.
      now += 30_000;
      await round(4_000);
      await c.relayFallback!.evaluate(networkId);
      expect((await mapOf(a.id)).self.peerRelays).toBeUndefined();
      expect((await mapOf(d.id)).self.peerRelays).toBeUndefined();
    } finally {
      await c.close();
    }
  });
});
