// The paths view (network-paths.ts): each pair's path from the agents' reports and the relays in
// force, on a fixed clock.
import { describe, expect, it } from 'vitest';
import { NetworkPaths, type PeerStatus } from '@wiremesh/protocol';
import { DIRECT_HANDSHAKE_FRESH_MS } from '../src/constants.js';
import { networkPaths } from '../src/network-paths.js';
import type { NetworkState, NodeRecord, PairRelayRecord } from '../src/store/index.js';

const NOW = 1_800_000_000_000;
const NETWORK: NetworkState['network'] = {
  id: 'net1',
  name: 'demo',
  ipv4Cidr: '10.8.0.0/24',
  ipv6Cidr: null,
  listenPort: 51820,
  persistentKeepalive: 25,
  mtu: 1420,
  allowJoinWithoutKey: false,
  revision: 7,
  createdAt: NOW - 60_000,
};

function node(id: string, index: number, over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    networkId: NETWORK.id,
    name: `n-${id}`,
    publicKey: `${id.padEnd(43, 'A')}=`,
    state: 'approved',
    hostIndex: index,
    os: 'linux',
    version: 'test',
    backend: 'userspace',
    listenPort: 51820,
    localEndpoints: [{ ip: `192.168.${index}.10`, port: 51820 }],
    reflectedEndpoint: { ip: `198.51.100.${index}`, port: 40000 + index },
    egress: null,
    isIngress: false,
    ingressEndpoint: null,
    isRelay: false,
    relayedBy: null,
    lastSeenAt: NOW - 1_000,
    enrollmentKeyId: null,
    createdAt: NOW - 50_000,
    ...over,
  };
}

/** `of` reports a handshake `ageMs` old (at its last check-in) with `peer`, sent to `endpoint`. */
function seen(
  peer: NodeRecord,
  ageMs: number | null,
  endpoint = peer.reflectedEndpoint,
): PeerStatus {
  return {
    publicKey: peer.publicKey,
    latestHandshakeMs: null,
    rxBytes: 0,
    txBytes: 0,
    endpoint,
    handshakeAgeMs: ageMs,
  };
}

function state(
  nodes: NodeRecord[],
  reports: [NodeRecord, PeerStatus[]][],
  pairRelays: PairRelayRecord[] = [],
): NetworkState {
  return {
    network: NETWORK,
    nodes,
    extClients: [],
    pairRelays,
    peerStatus: new Map(reports.map(([n, p]) => [n.id, p])),
  };
}

const link = (v: NetworkPaths, a: string, b: string) =>
  v.links.find((l) => (l.a === a && l.b === b) || (l.a === b && l.b === a));

describe('networkPaths', () => {
  it('tells direct, LAN, down and unreported pairs apart', () => {
    const a = node('a', 1);
    const b = node('b', 2);
    const c = node('c', 3);
    const d = node('d', 4, { lastSeenAt: null });
    // a and b: a fresh handshake over the public endpoint; a and c: over c's LAN address;
    // b and c: configured but no handshake within the bound; d never reported.
    const v = networkPaths(
      state(
        [a, b, c, d],
        [
          [a, [seen(b, 5_000), seen(c, 10_000, c.localEndpoints[0])]],
          [b, [seen(a, 4_000), seen(c, DIRECT_HANDSHAKE_FRESH_MS + 1)]],
          [c, [seen(b, null)]],
        ],
      ),
      NOW,
    );
    expect(NetworkPaths.parse(v)).toEqual(v);
    expect(v.links).toHaveLength(6);
    expect(link(v, 'a', 'b')).toMatchObject({
      path: 'direct',
      relayId: null,
      reason: null,
      latestHandshakeAt: NOW - 1_000 - 4_000,
      endpointAtoB: b.reflectedEndpoint,
      endpointBtoA: a.reflectedEndpoint,
    });
    expect(link(v, 'a', 'c')?.path).toBe('lan');
    expect(link(v, 'b', 'c')?.path).toBe('down');
    expect(link(v, 'a', 'd')?.path).toBe('unknown');
    expect(v.nodes.find((n) => n.id === 'd')).toMatchObject({
      online: false,
      addressV4: '10.8.0.4',
    });
    expect(v.nodes.find((n) => n.id === 'a')).toMatchObject({
      online: true,
      publicEndpoint: a.reflectedEndpoint,
      endpointSource: { kind: 'reflector' },
    });
    expect(v).toMatchObject({ network: 'demo', revision: 7, at: NOW });
  });

  it('counts a handshake age from the check-in that carried it', () => {
    const a = node('a', 1, { lastSeenAt: NOW - DIRECT_HANDSHAKE_FRESH_MS });
    const b = node('b', 2, { lastSeenAt: NOW - DIRECT_HANDSHAKE_FRESH_MS });
    // Fresh when reported, but reported long ago: no longer a known-good path.
    const v = networkPaths(state([a, b], [[a, [seen(b, 1_000)]]]), NOW);
    expect(link(v, 'a', 'b')?.path).toBe('down');
  });

  it('shows the relay fallback’s pairs and an admin’s relay with their relay and reason', () => {
    const r = node('r', 1, { isRelay: true });
    const a = node('a', 2);
    const b = node('b', 3);
    const c = node('c', 4, { relayedBy: 'r' });
    const reports: [NodeRecord, PeerStatus[]][] = [
      [a, [seen(b, null), seen(r, 1_000), seen(c, 1_000)]],
      [b, [seen(a, null), seen(r, 1_000)]],
      [r, [seen(a, 1_000), seen(b, 1_000), seen(c, 1_000)]],
    ];
    const v = networkPaths(
      state([r, a, b, c], reports, [{ a: 'a', b: 'b', relayId: 'r', createdAt: NOW }]),
      NOW,
    );
    expect(link(v, 'a', 'b')).toMatchObject({
      path: 'relay',
      relayId: 'r',
      reason: 'no_direct_handshake',
      latestHandshakeAt: null,
    });
    // c is relayed by r for every peer (even with a direct handshake), but reaches r itself direct.
    expect(link(v, 'a', 'c')).toMatchObject({ path: 'relay', relayId: 'r', reason: 'admin' });
    expect(link(v, 'c', 'r')).toMatchObject({ path: 'direct', relayId: null });
    expect(link(v, 'a', 'r')?.path).toBe('direct');
    expect(v.nodes.find((n) => n.id === 'c')?.relayedBy).toBe('r');

    // A pair relay whose relay lost its role is not in force (the maps ignore it too).
    const gone = networkPaths(
      state([{ ...r, isRelay: false }, a, b], reports, [
        { a: 'a', b: 'b', relayId: 'r', createdAt: NOW },
      ]),
      NOW,
    );
    expect(link(gone, 'a', 'b')?.path).toBe('down');
  });

  it('names a split NAT mapping as the reason, and leaves out nodes that are not approved', () => {
    const r = node('r', 1, { isRelay: true });
    const a = node('a', 2);
    const b = node('b', 3);
    const p = node('p', 4, { state: 'pending' });
    // The relay sees a at another port of the address the reflector gave it: the mapping split.
    const moved = { ip: a.reflectedEndpoint?.ip ?? '', port: 45_000 };
    const v = networkPaths(
      state(
        [r, a, b, p],
        [
          [r, [{ ...seen(a, 1_000), observedEndpoint: moved }, seen(b, 1_000)]],
          [a, [seen(b, null)]],
        ],
        [{ a: 'a', b: 'b', relayId: 'r', createdAt: NOW }],
      ),
      NOW,
    );
    expect(link(v, 'a', 'b')?.reason).toBe('nat_mapping_split');
    expect(v.nodes.find((n) => n.id === 'a')).toMatchObject({
      publicEndpoint: moved,
      endpointSource: { kind: 'observed', byId: 'r', reflector: a.reflectedEndpoint },
    });
    expect(v.nodes.map((n) => n.id)).toEqual(['r', 'a', 'b']);
    expect(v.links).toHaveLength(3);
  });
});
