// Snapshots and patches: for random sequences of network changes, applying the patch the hub
// would send to the previous full map gives exactly the next full map, for every node.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { NetworkMap, applyMapPatch, MapPatch } from '@wiremesh/protocol';
import { buildSnapshot, diffSnapshots, mapFor, patchJsonFor } from '../src/snapshot.js';
import type { ExtClientRow, NetworkRow, NodeRow, NetworkState } from '../src/store.js';
import { keyPair } from './helpers.js';

const KEYS = Array.from({ length: 6 }, () => keyPair().publicKey);

function network(revision: number, mtu = 1420): NetworkRow {
  return {
    id: 'net',
    name: 'demo',
    ipv4_cidr: '10.8.0.0/16',
    ipv6_cidr: 'fd00:8::/64',
    listen_port: 51820,
    persistent_keepalive: 25,
    mtu,
    allow_without_key: 0,
    revision,
    created_at: 0,
  };
}

function node(i: number, over: Partial<NodeRow> = {}): NodeRow {
  return {
    id: `n${i}`,
    network_id: 'net',
    name: `node${i}`,
    public_key: KEYS[i] as string,
    state: 'approved',
    host_index: i + 1,
    secret_hash: 'x',
    os: 'linux',
    version: 't',
    backend: 'kernel',
    listen_port: 51820,
    local_endpoints: JSON.stringify([{ ip: `192.168.1.${i + 1}`, port: 51820 }]),
    reflected_endpoint: null,
    egress_ranges: null,
    egress_interface: null,
    is_ingress: 0,
    ingress_endpoint: null,
    is_relay: 0,
    relayed_by: null,
    last_seen_at: null,
    peer_status: '[]',
    enrollment_key_id: null,
    created_at: i,
    ...over,
  };
}

type Change =
  | { kind: 'state'; i: number; state: NodeRow['state'] }
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
  const nodes = s.nodes.map((n) => ({ ...n }));
  let network = { ...s.network, revision: s.network.revision + 1 };
  let extClients = s.extClients;
  const n = 'i' in c ? nodes[c.i] : undefined;
  switch (c.kind) {
    case 'state':
      n!.state = c.state;
      break;
    case 'egress':
      n!.egress_ranges = c.on ? JSON.stringify([`192.168.${c.i}.0/24`]) : null;
      n!.egress_interface = c.on ? 'eth0' : null;
      break;
    case 'ingress':
      n!.is_ingress = c.on ? 1 : 0;
      break;
    case 'relay':
      if (c.relayedBy !== null && c.relayedBy !== c.i) {
        nodes[c.relayedBy]!.is_relay = 1;
        n!.relayed_by = `n${c.relayedBy}`;
      } else n!.relayed_by = null;
      break;
    case 'endpoint':
      n!.reflected_endpoint = JSON.stringify({ ip: '203.0.113.1', port: c.port });
      break;
    case 'mtu':
      network = { ...network, mtu: c.mtu };
      break;
    case 'client': {
      const row: ExtClientRow = {
        id: 'x1',
        network_id: 'net',
        name: 'phone',
        public_key: KEYS[5] as string,
        private_key: null,
        ingress_node_id: 'n0',
        host_index: 100,
        dns: '[]',
        created_at: 0,
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
