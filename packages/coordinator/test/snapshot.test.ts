// Snapshots and patches: for random sequences of network changes, applying the patch the hub
// would send to the previous full map gives exactly the next full map, for every node.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NetworkMap, applyMapPatch, MapPatch } from '@wiremesh/protocol';
import { buildSnapshot, diffSnapshots, mapFor, patchJsonFor } from '../src/snapshot.js';
import type {
  ExtClientRecord,
  NetworkRecord,
  NetworkState,
  NodeRecord,
} from '../src/store/index.js';
import { keyPair } from './helpers.js';

const KEYS = Array.from({ length: 6 }, () => keyPair().publicKey);

function network(revision: number, mtu = 1420): NetworkRecord {
  return {
    id: 'net',
    name: 'demo',
    ipv4Cidr: '10.8.0.0/16',
    ipv6Cidr: 'fd00:8::/64',
    listenPort: 51820,
    persistentKeepalive: 25,
    mtu,
    allowJoinWithoutKey: false,
    revision,
    createdAt: 0,
  };
}

type MutableNode = { -readonly [K in keyof NodeRecord]: NodeRecord[K] };

function node(i: number, over: Partial<NodeRecord> = {}): MutableNode {
  return {
    id: `n${i}`,
    networkId: 'net',
    name: `node${i}`,
    publicKey: KEYS[i] as string,
    state: 'approved',
    hostIndex: i + 1,
    os: 'linux',
    version: 't',
    backend: 'kernel',
    listenPort: 51820,
    localEndpoints: [{ ip: `192.168.1.${i + 1}`, port: 51820 }],
    reflectedEndpoint: null,
    egress: null,
    isIngress: false,
    ingressEndpoint: null,
    isRelay: false,
    relayedBy: null,
    lastSeenAt: null,
    enrollmentKeyId: null,
    createdAt: i,
    ...over,
  };
}

type Change =
  | { kind: 'state'; i: number; state: NodeRecord['state'] }
  | { kind: 'egress'; i: number; on: boolean }
  | { kind: 'ingress'; i: number; on: boolean }
  | { kind: 'relay'; i: number; relayedBy: number | null }
  | { kind: 'endpoint'; i: number; port: number }
  | { kind: 'mtu'; mtu: number }
  | { kind: 'client'; on: boolean };

const change: fc.Arbitrary<Change> = fc.oneof(
  fc.record({
    kind: fc.constant('state' as const),
    i: fc.nat(4),
    state: fc.constantFrom(
      'pending' as const,
      'approved' as const,
      'rejected' as const,
      'removed' as const,
    ),
  }),
  fc.record({ kind: fc.constant('egress' as const), i: fc.nat(4), on: fc.boolean() }),
  fc.record({ kind: fc.constant('ingress' as const), i: fc.nat(4), on: fc.boolean() }),
  fc.record({
    kind: fc.constant('relay' as const),
    i: fc.nat(4),
    relayedBy: fc.option(fc.nat(4), { nil: null }),
  }),
  fc.record({
    kind: fc.constant('endpoint' as const),
    i: fc.nat(4),
    port: fc.integer({ min: 1, max: 65535 }),
  }),
  fc.record({ kind: fc.constant('mtu' as const), mtu: fc.constantFrom(1280, 1380, 1420) }),
  fc.record({ kind: fc.constant('client' as const), on: fc.boolean() }),
);

function apply(s: NetworkState, c: Change): NetworkState {
  const nodes: MutableNode[] = s.nodes.map((n) => ({ ...n }));
  let network = { ...s.network, revision: s.network.revision + 1 };
  let extClients = s.extClients;
  const n = 'i' in c ? nodes[c.i] : undefined;
  switch (c.kind) {
    case 'state':
      n!.state = c.state;
      break;
    case 'egress':
      n!.egress = c.on ? { ranges: [`192.168.${c.i}.0/24`], interface: 'eth0' } : null;
      break;
    case 'ingress':
      n!.isIngress = c.on;
      break;
    case 'relay':
      if (c.relayedBy !== null && c.relayedBy !== c.i) {
        nodes[c.relayedBy]!.isRelay = true;
        n!.relayedBy = `n${c.relayedBy}`;
      } else n!.relayedBy = null;
      break;
    case 'endpoint':
      n!.reflectedEndpoint = { ip: '203.0.113.1', port: c.port };
      break;
    case 'mtu':
      network = { ...network, mtu: c.mtu };
      break;
    case 'client': {
      const row: ExtClientRecord = {
        id: 'x1',
        networkId: 'net',
        name: 'phone',
        publicKey: KEYS[5] as string,
        privateKey: null,
        ingressNodeId: 'n0',
        hostIndex: 100,
        dns: [],
        createdAt: 0,
      };
      extClients = c.on ? [row] : [];
      break;
    }
  }
  return { network, nodes, extClients };
}

const sorted = (m: NetworkMap | null) =>
  m && { ...m, peers: [...m.peers].sort((a, b) => a.id.localeCompare(b.id)) };

describe('snapshot patches', () => {
  it('turn every node’s previous map into its next map', () => {
    fc.assert(
      fc.property(fc.array(change, { minLength: 1, maxLength: 25 }), (changes) => {
        let state: NetworkState = {
          network: network(1),
          nodes: [0, 1, 2, 3, 4].map((i) => node(i)),
          extClients: [],
        };
        let prev = buildSnapshot(state, 3478);
        for (const c of changes) {
          state = apply(state, c);
          const next = buildSnapshot(state, 3478);
          const diff = diffSnapshots(prev, next);
          for (const n of state.nodes) {
            const before = mapFor(prev, n.id);
            const after = mapFor(next, n.id);
            if (after !== null) expect(NetworkMap.safeParse(after).success).toBe(true);
            if (before === null || after === null) continue;
            const patch = MapPatch.parse(JSON.parse(patchJsonFor(diff, next, n.id)));
            // Peer order carries no meaning (a re-added peer is appended by the patch).
            expect(sorted(applyMapPatch(before, patch))).toEqual(sorted(after));
          }
          prev = next;
        }
      }),
      { numRuns: 200 },
    );
  });

  it('lists only approved nodes as peers and never a node as its own peer', () => {
    const state: NetworkState = {
      network: network(3),
      nodes: [node(0), node(1, { state: 'pending' }), node(2, { state: 'removed' }), node(3)],
      extClients: [],
    };
    const s = buildSnapshot(state, null);
    expect(mapFor(s, 'n0')?.peers.map((p) => p.id)).toEqual(['n3']);
    expect(mapFor(s, 'n1')).toBeNull();
    expect(s.states.get('n2')).toBe('removed');
  });
});
