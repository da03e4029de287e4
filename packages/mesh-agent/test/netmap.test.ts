import { describe, expect, it } from 'vitest';
import { NetworkMap } from '@wiremesh/protocol';
import { chooseEndpoint, netmapToConfig } from '../src/reconcile/netmap.js';
import { canonicalCidr, cidrContains } from '../src/prefix.js';
import { key, LAN, map, peer } from './fixtures.js';

describe('netmapToConfig', () => {
  it('turns self and peers into interface settings and sorted peers', () => {
    const m = map([peer(3), peer(2)], 7);
    expect(NetworkMap.safeParse(m).success).toBe(true);
    const c = netmapToConfig(m, LAN);
    expect(c.network).toBe('demo');
    expect(c.mapVersion).toBe(7);
    expect(c.listenPort).toBe(51820);
    expect(c.mtu).toBe(1420);
    expect(c.addresses).toEqual(['10.8.0.1/16']);
    expect(c.peers.map((p) => p.publicKey)).toEqual([key(2), key(3)].sort());
    const p2 = c.peers.find((p) => p.publicKey === key(2));
    expect(p2).toMatchObject({
      allowedIps: ['10.8.0.2/32'],
      endpoint: '192.0.2.2:51820',
      persistentKeepalive: 25,
      kind: 'node',
    });
    // Peers inside the interface's own subnet need no route.
    expect(c.routes).toEqual([]);
    expect(c.forwarding).toEqual({ egress: null, meshToMesh: [] });
  });

  it("routes an egress gateway peer's ranges, but never a default route or the host's own LAN", () => {
    const gw = peer(2, {
      allowedIps: ['10.8.0.2/32', '192.168.100.0/24', '0.0.0.0/0', '192.0.2.0/25', '172.16.5.9/16'],
      isEgressGateway: true,
      egressRanges: ['192.168.100.0/24', '0.0.0.0/0', '192.0.2.0/25', '172.16.0.0/16'],
    });
    const c = netmapToConfig(map([gw, peer(3)]), LAN);
    expect(c.routes).toEqual(['172.16.0.0/16', '192.168.100.0/24']);
    // The allowed IPs themselves are all kept (canonical, sorted).
    expect(c.peers.find((p) => p.publicKey === key(2))?.allowedIps).toEqual([
      '0.0.0.0/0',
      '10.8.0.2/32',
      '172.16.0.0/16',
      '192.0.2.0/25',
      '192.168.100.0/24',
    ]);
  });

  it('describes its own egress role for the firewall', () => {
    const c = netmapToConfig(
      map([peer(2)], 1, { egress: { ranges: ['192.168.100.7/24'], interface: 'eth1' } }),
    );
    expect(c.forwarding.egress).toEqual({
      ranges: ['192.168.100.0/24'],
      outInterface: 'eth1',
      sources: ['10.8.0.0/16'],
    });
    expect(c.forwarding.meshToMesh).toEqual([]);
  });

  it('adds external clients as peers on an ingress gateway and forwards mesh to mesh', () => {
    const c = netmapToConfig(
      map([peer(2)], 1, {
        isIngressGateway: true,
        externalClients: [
          {
            id: 'ext-1',
            name: 'phone',
            publicKey: key(90),
            addressV4: '10.8.0.90',
            addressV6: null,
            allowedIps: ['10.8.0.90/32'],
          },
        ],
      }),
    );
    const ext = c.peers.find((p) => p.publicKey === key(90));
    expect(ext).toMatchObject({
      kind: 'external',
      allowedIps: ['10.8.0.90/32'],
      endpoint: null,
      persistentKeepalive: 0,
    });
    expect(c.forwarding.meshToMesh).toEqual([4]);
    expect(c.routes).toEqual([]);
  });

  it("puts a relayed peer's allowed IPs on its relay", () => {
    const relay = peer(5, { isRelay: true, relays: ['node-3'] });
    const relayed = peer(3, { relayedBy: 'node-5', allowedIps: ['10.8.0.3/32', '192.168.7.0/24'] });
    const c = netmapToConfig(map([peer(2), relayed, relay]), LAN);
    expect(c.peers.map((p) => p.publicKey)).not.toContain(key(3));
    expect(c.peers.find((p) => p.publicKey === key(5))?.allowedIps).toEqual([
      '10.8.0.3/32',
      '10.8.0.5/32',
      '192.168.7.0/24',
    ]);
    expect(c.paths.find((p) => p.id === 'node-3')).toMatchObject({ path: 'relay', via: key(5) });
    expect(c.paths.find((p) => p.id === 'node-2')).toMatchObject({ path: 'direct' });
    expect(c.routes).toEqual(['192.168.7.0/24']);
  });

  it("keeps a pair-relayed peer's entry trying the direct path while its addresses go to the relay", () => {
    const relay = peer(5, { isRelay: true });
    const far = peer(4, { allowedIps: ['10.8.0.4/32', '192.168.40.0/24'] });
    const c = netmapToConfig(
      map([peer(2), far, relay], 3, { peerRelays: [{ peerId: 'node-4', relayId: 'node-5' }] }),
      LAN,
    );
    expect(c.peers.find((p) => p.publicKey === key(5))?.allowedIps).toEqual([
      '10.8.0.4/32',
      '10.8.0.5/32',
      '192.168.40.0/24',
    ]);
    // The peer's own entry stays: endpoint and keepalive, so its handshakes keep trying, but no
    // allowed IPs, so no traffic takes it until the coordinator says the direct path works.
    expect(c.peers.find((p) => p.publicKey === key(4))).toMatchObject({
      allowedIps: [],
      endpoint: '192.0.2.4:51820',
      persistentKeepalive: 25,
    });
    expect(c.paths.find((p) => p.id === 'node-4')).toMatchObject({
      path: 'relay',
      via: key(5),
      viaName: 'node-5',
      keepsDirectEntry: true,
    });
    expect(c.paths.find((p) => p.id === 'node-2')).toMatchObject({ path: 'direct', via: null });
    expect(c.routes).toEqual(['192.168.40.0/24']);
    // A pair relay naming a relay that is not in the map, or the node itself, is ignored.
    const odd = netmapToConfig(
      map([peer(2), far], 3, {
        peerRelays: [
          { peerId: 'node-4', relayId: 'node-9' },
          { peerId: 'node-2', relayId: 'node-1' },
        ],
      }),
      LAN,
    );
    expect(odd.paths.every((p) => p.path === 'direct')).toBe(true);
    expect(odd.peers.find((p) => p.publicKey === key(4))?.allowedIps).toEqual([
      '10.8.0.4/32',
      '192.168.40.0/24',
    ]);
  });

  it('never lists itself as a peer', () => {
    const c = netmapToConfig(map([peer(1), peer(2)]));
    expect(c.peers.map((p) => p.publicKey)).toEqual([key(2)]);
  });
});

describe('chooseEndpoint', () => {
  it('prefers a LAN address on a shared subnet, then the reflected one, then the first LAN address', () => {
    const p = peer(2, {
      endpoints: {
        reflected: { ip: '203.0.113.9', port: 40000 },
        local: [
          { ip: '172.20.0.2', port: 51820 },
          { ip: '192.0.2.2', port: 51820 },
        ],
      },
    });
    expect(chooseEndpoint(p, LAN)).toBe('192.0.2.2:51820');
    expect(chooseEndpoint(p)).toBe('203.0.113.9:40000');
    expect(
      chooseEndpoint(
        peer(2, { endpoints: { reflected: null, local: [{ ip: 'fd00::2', port: 7 }] } }),
      ),
    ).toBe('[fd00::2]:7');
    expect(chooseEndpoint(peer(2, { endpoints: { reflected: null, local: [] } }))).toBeNull();
  });
});

describe('chooseEndpoint with public endpoints (NAT traversal)', () => {
  // Two homes behind different routers that both number their LAN 192.168.1.0/24.
  const home = { localAddresses: [{ address: '192.168.1.2', cidr: '192.168.1.2/24' }] };
  const sameRouter = (n: number) =>
    peer(n, {
      endpoints: {
        reflected: { ip: '203.0.113.2', port: 51820 },
        local: [
          { ip: '172.17.0.1', port: 51820 },
          { ip: `192.168.1.${n}`, port: 51820 },
        ],
      },
    });
  const otherRouter = peer(3, {
    endpoints: {
      reflected: { ip: '203.0.113.3', port: 41000 },
      local: [{ ip: '192.168.1.3', port: 51820 }],
    },
  });

  it('uses the LAN address of a peer behind the same public address (no hairpin through the NAT)', () => {
    const ctx = { ...home, reflected: { ip: '203.0.113.2', port: 51820 } };
    expect(chooseEndpoint(sameRouter(7), ctx)).toBe('192.168.1.7:51820');
    // Without one on our subnet, its first LAN address still beats the public one.
    expect(
      chooseEndpoint(sameRouter(7), {
        localAddresses: [],
        reflected: { ip: '203.0.113.2', port: 1 },
      }),
    ).toBe('172.17.0.1:51820');
  });

  it('uses the public endpoint of a peer behind another address, even on a same-numbered LAN', () => {
    const ctx = { ...home, reflected: { ip: '203.0.113.2', port: 51820 } };
    expect(chooseEndpoint(otherRouter, ctx)).toBe('203.0.113.3:41000');
    // Until our own public address is known, a shared subnet is the best guess.
    expect(chooseEndpoint(otherRouter, home)).toBe('192.168.1.3:51820');
    expect(chooseEndpoint(otherRouter, { ...home, reflected: null })).toBe('192.168.1.3:51820');
  });

  it('compares addresses in canonical form and goes public for a public peer', () => {
    const v6 = peer(8, {
      endpoints: {
        reflected: { ip: '2001:db8:0:0:0:0:0:2', port: 5000 },
        local: [{ ip: 'fd00:1::8', port: 51820 }],
      },
    });
    expect(
      chooseEndpoint(v6, { localAddresses: [], reflected: { ip: '2001:db8::2', port: 9 } }),
    ).toBe('[fd00:1::8]:51820');
    const relay = peer(5, {
      endpoints: {
        reflected: { ip: '203.0.113.5', port: 51820 },
        local: [{ ip: '203.0.113.5', port: 51820 }],
      },
    });
    expect(chooseEndpoint(relay, { ...home, reflected: { ip: '203.0.113.2', port: 1 } })).toBe(
      '203.0.113.5:51820',
    );
  });
});

describe('prefix helpers', () => {
  it('canonicalizes and tests containment', () => {
    expect(canonicalCidr('10.8.0.5/16')).toBe('10.8.0.0/16');
    expect(canonicalCidr('10.8.0.5')).toBe('10.8.0.5/32');
    expect(canonicalCidr('fd00:0:0::1/64')).toBe('fd00::/64');
    expect(canonicalCidr('nope')).toBeNull();
    expect(cidrContains('10.8.0.0/16', '10.8.3.4/32')).toBe(true);
    expect(cidrContains('10.8.0.0/16', '10.9.0.0/24')).toBe(false);
    expect(cidrContains('10.8.0.0/24', '10.8.0.0/16')).toBe(false);
    expect(cidrContains('fd00::/8', '10.8.0.0/16')).toBe(false);
  });
});
