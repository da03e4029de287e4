import { describe, expect, it } from 'vitest';
import { ipCommands, wgSetArgs } from '../src/dataplane/dataplane.js';
import {
  describeDiff,
  diffConfig,
  isEmptyDiff,
  type ObservedInterface,
} from '../src/reconcile/diff.js';
import { createFakeDataplane } from '../src/dataplane/fake-dataplane.js';
import { netmapToConfig } from '../src/reconcile/netmap.js';
import { key, LAN, map, peer } from './fixtures.js';

const ID = { privateKeyFile: '/state/demo.key', publicKey: key(1) };

/** What an interface configured exactly as `m` would show. */
function observedFrom(c: ReturnType<typeof netmapToConfig>): ObservedInterface {
  return {
    exists: true,
    up: true,
    listenPort: c.listenPort,
    mtu: c.mtu,
    addresses: [...c.addresses],
    routes: [...c.routes],
    peers: c.peers.map((p) => ({
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: p.allowedIps,
      persistentKeepalive: p.persistentKeepalive,
      latestHandshakeS: 1000,
      rxBytes: 1,
      txBytes: 1,
    })),
  };
}

describe('diffConfig', () => {
  it('reports no changes when the interface already matches', () => {
    const c = netmapToConfig(map([peer(2), peer(3)]), LAN);
    const d = diffConfig(observedFrom(c), c, c);
    expect(isEmptyDiff(d)).toBe(true);
    expect(describeDiff(d)).toBe('no changes');
    expect(wgSetArgs('wm-demo', d, null)).toBeNull();
    expect(ipCommands('wm-demo', d)).toEqual([]);
  });

  it('configures a new interface completely', () => {
    const c = netmapToConfig(map([peer(2)]), LAN);
    const empty: ObservedInterface = {
      exists: true,
      up: false,
      listenPort: 0,
      mtu: 1500,
      addresses: [],
      routes: [],
      peers: [],
    };
    const d = diffConfig(empty, c, null);
    expect(wgSetArgs('wm-demo', d, ID.privateKeyFile)).toEqual([
      'set',
      'wm-demo',
      'private-key',
      '/state/demo.key',
      'listen-port',
      '51820',
      'peer',
      key(2),
      'endpoint',
      '192.0.2.2:51820',
      'persistent-keepalive',
      '25',
      'allowed-ips',
      '10.8.0.2/32',
    ]);
    expect(ipCommands('wm-demo', d)).toEqual([
      ['link', 'set', 'dev', 'wm-demo', 'mtu', '1420'],
      ['-4', 'address', 'replace', '10.8.0.1/16', 'dev', 'wm-demo'],
      ['link', 'set', 'dev', 'wm-demo', 'up'],
    ]);
  });

  it('adding one peer touches only that peer', () => {
    const before = netmapToConfig(map([peer(2), peer(3)]), LAN);
    const after = netmapToConfig(map([peer(2), peer(3), peer(4)], 2), LAN);
    const d = diffConfig(observedFrom(before), after, before);
    expect(d.removePeers).toEqual([]);
    expect(d.updatePeers.map((u) => u.publicKey)).toEqual([key(4)]);
    const args = wgSetArgs('wm-demo', d, null) ?? [];
    expect(args).not.toContain(key(2));
    expect(args).not.toContain(key(3));
    expect(args).not.toContain('private-key');
    expect(ipCommands('wm-demo', d)).toEqual([]);
  });

  it('removing one peer touches only that peer', () => {
    const before = netmapToConfig(map([peer(2), peer(3), peer(4)]), LAN);
    const after = netmapToConfig(map([peer(2), peer(4)], 2), LAN);
    const d = diffConfig(observedFrom(before), after, before);
    expect(wgSetArgs('wm-demo', d, null)).toEqual(['set', 'wm-demo', 'peer', key(3), 'remove']);
  });

  it('adds and removes the routes of an egress gateway with its role', () => {
    const plain = netmapToConfig(map([peer(2), peer(3)]), LAN);
    const gw = peer(2, {
      allowedIps: ['10.8.0.2/32', '192.168.100.0/24'],
      isEgressGateway: true,
      egressRanges: ['192.168.100.0/24'],
    });
    const withGw = netmapToConfig(map([gw, peer(3)], 2), LAN);
    const on = diffConfig(observedFrom(plain), withGw, plain);
    expect(on.addRoutes).toEqual(['192.168.100.0/24']);
    expect(on.removeRoutes).toEqual([]);
    expect(on.updatePeers).toEqual([
      { publicKey: key(2), isNew: false, allowedIps: ['10.8.0.2/32', '192.168.100.0/24'] },
    ]);
    expect(ipCommands('wm-demo', on)).toEqual([
      ['-4', 'route', 'replace', '192.168.100.0/24', 'dev', 'wm-demo', 'proto', '87'],
    ]);
    const off = diffConfig(observedFrom(withGw), plain, withGw);
    expect(off.removeRoutes).toEqual(['192.168.100.0/24']);
    expect(off.addRoutes).toEqual([]);
    expect(ipCommands('wm-demo', off)).toEqual([
      ['-4', 'route', 'del', '192.168.100.0/24', 'dev', 'wm-demo', 'proto', '87'],
    ]);
  });

  it('leaves a roamed endpoint alone but follows a new endpoint from the map', () => {
    const c = netmapToConfig(map([peer(2)]), LAN);
    const roamed = observedFrom(c);
    const seen: ObservedInterface = {
      ...roamed,
      peers: roamed.peers.map((p) => ({ ...p, endpoint: '198.51.100.7:9999' })),
    };
    expect(isEmptyDiff(diffConfig(seen, c, c))).toBe(true);
    const moved = netmapToConfig(
      map(
        [peer(2, { endpoints: { reflected: null, local: [{ ip: '192.0.2.22', port: 51820 }] } })],
        2,
      ),
      LAN,
    );
    const d = diffConfig(seen, moved, c);
    // The keepalive goes off and on again around the new endpoint: a keepalive (and with it a
    // handshake) leaves for the new endpoint at once, which is what starts hole punching.
    expect(d.updatePeers).toEqual([
      {
        publicKey: key(2),
        isNew: false,
        endpoint: '192.0.2.22:51820',
        persistentKeepalive: 25,
        restartKeepalive: true,
      },
    ]);
    expect(wgSetArgs('wm-demo', d, null)).toEqual([
      'set',
      'wm-demo',
      'peer',
      key(2),
      'persistent-keepalive',
      'off',
      'peer',
      key(2),
      'endpoint',
      '192.0.2.22:51820',
      'persistent-keepalive',
      '25',
    ]);
  });

  it('holds the first packet of one side of a pair and sends it on the kick (hole-punching order)', () => {
    const hold = (pk: string) => pk === key(3);
    // A new peer held: addresses, but no keepalive and no endpoint yet (nothing can be sent to
    // it, not even by traffic, so its initiation cannot cross the other side's).
    const c = netmapToConfig(map([peer(2), peer(3)]), LAN);
    const empty = { ...observedFrom(c), peers: [] };
    const d = diffConfig(empty, c, null, { hold });
    expect(d.held).toEqual([key(3)]);
    expect(d.updatePeers.find((u) => u.publicKey === key(3))).toEqual({
      publicKey: key(3),
      isNew: true,
      allowedIps: ['10.8.0.3/32'],
    });
    expect(d.updatePeers.find((u) => u.publicKey === key(2))?.persistentKeepalive).toBe(25);
    // The kick turns the keepalive on (which sends one), nothing else.
    const heldSeen: ObservedInterface = {
      ...observedFrom(c),
      peers: observedFrom(c).peers.map((p) =>
        p.publicKey === key(3) ? { ...p, persistentKeepalive: 0 } : p,
      ),
    };
    const kicked = diffConfig(heldSeen, c, c, { hold, kick: new Set([key(3)]) });
    expect(kicked.held).toEqual([]);
    expect(wgSetArgs('wm-demo', kicked, null)).toEqual([
      'set',
      'wm-demo',
      'peer',
      key(3),
      'persistent-keepalive',
      'off',
      'peer',
      key(3),
      'persistent-keepalive',
      '25',
    ]);
    // As the held peer really is before its kick (no endpoint yet, nobody reached us): the kick
    // sets the endpoint and turns the keepalive on.
    const heldBare: ObservedInterface = {
      ...observedFrom(c),
      peers: observedFrom(c).peers.map((p) =>
        p.publicKey === key(3) ? { ...p, persistentKeepalive: 0, endpoint: null } : p,
      ),
    };
    const kickedBare = diffConfig(heldBare, c, c, { hold, kick: new Set([key(3)]) });
    expect(kickedBare.updatePeers).toEqual([
      expect.objectContaining({
        publicKey: key(3),
        endpoint: '192.0.2.3:51820',
        persistentKeepalive: 25,
      }),
    ]);
    // An existing peer moved to a new endpoint: held, the endpoint is set without a restart.
    const moved = netmapToConfig(
      map(
        [
          peer(2),
          peer(3, { endpoints: { reflected: { ip: '198.51.100.3', port: 4 }, local: [] } }),
        ],
        2,
      ),
      LAN,
    );
    const m = diffConfig(observedFrom(c), moved, c, { hold });
    expect(m.held).toEqual([key(3)]);
    expect(m.updatePeers).toEqual([
      { publicKey: key(3), isNew: false, endpoint: '198.51.100.3:4' },
    ]);
    // Punched without a live session (latest handshake 1000 s, now 2000 s): removed and added
    // afresh, all fields given, so the new peer initiates at once.
    const fresh = diffConfig(observedFrom(c), moved, c, { nowS: 2000 });
    expect(fresh.updatePeers).toEqual([
      {
        publicKey: key(3),
        isNew: false,
        recreate: true,
        endpoint: '198.51.100.3:4',
        persistentKeepalive: 25,
        allowedIps: ['10.8.0.3/32'],
      },
    ]);
    expect(wgSetArgs('wm-demo', fresh, null)?.slice(2, 6)).toEqual([
      'peer',
      key(3),
      'remove',
      'peer',
    ]);
    // With a live session (handshake 100 s ago) only the keepalive restarts.
    expect(diffConfig(observedFrom(c), moved, c, { nowS: 1100 }).updatePeers[0]).toMatchObject({
      restartKeepalive: true,
    });
    // Nothing held and nothing kicked: a kick of a peer without keepalive does nothing.
    const off = netmapToConfig(map([peer(2, { persistentKeepalive: 0 })]), LAN);
    expect(isEmptyDiff(diffConfig(observedFrom(off), off, off, { kick: new Set([key(2)]) }))).toBe(
      true,
    );
  });

  it("keeps a live session's port at the map's address (symmetric NAT) but follows a new address, and resets a dead one", () => {
    const at = (ip: string, port: number) =>
      netmapToConfig(map([peer(3, { endpoints: { reflected: { ip, port }, local: [] } })], 2), LAN);
    const before = at('198.51.100.3', 4);
    // The peer reached us from another port of the same address (its NAT maps per destination).
    const roamed: ObservedInterface = {
      ...observedFrom(before),
      peers: observedFrom(before).peers.map((p) => ({ ...p, endpoint: '198.51.100.3:999' })),
    };
    // Its reflected port changes in the map: with a live session (handshake 100 s ago) the
    // working port stays.
    const samePlace = diffConfig(roamed, at('198.51.100.3', 5), before, { nowS: 1100 });
    expect(isEmptyDiff(samePlace)).toBe(true);
    // It moved to another address: followed, with a keepalive so the session moves too.
    const moved = diffConfig(roamed, at('203.0.113.9', 5), before, { nowS: 1100 });
    expect(moved.updatePeers).toEqual([
      {
        publicKey: key(3),
        isNew: false,
        endpoint: '203.0.113.9:5',
        persistentKeepalive: 25,
        restartKeepalive: true,
      },
    ]);
    // No session for 4000 s: the roamed port did not work; back to the map's, afresh.
    const dead = diffConfig(roamed, before, before, { nowS: 5000 });
    expect(dead.updatePeers).toMatchObject([
      { publicKey: key(3), recreate: true, endpoint: '198.51.100.3:4' },
    ]);
  });

  it('changes address, MTU and listen port in place', () => {
    const c = netmapToConfig(map([peer(2)]), LAN);
    const next = netmapToConfig(
      map([peer(2)], 2, { interfaceAddresses: ['10.8.0.9/16'], mtu: 1380, listenPort: 51999 }),
      LAN,
    );
    const d = diffConfig(observedFrom(c), next, c);
    expect(d).toMatchObject({
      listenPort: 51999,
      mtu: 1380,
      addAddresses: ['10.8.0.9/16'],
      removeAddresses: ['10.8.0.1/16'],
      updatePeers: [],
    });
  });
});

describe('fake dataplane', () => {
  it("keeps other peers' sessions when one peer is added and removed", async () => {
    const dp = createFakeDataplane();
    await dp.ensureInterface('wm-demo');
    const c1 = netmapToConfig(map([peer(2), peer(3)]), LAN);
    const r1 = await dp.apply('wm-demo', c1, null, ID);
    expect(r1.changed).toBe(true);
    dp.handshake('wm-demo', key(2), 1234);
    const c2 = netmapToConfig(map([peer(2), peer(3), peer(4)], 2), LAN);
    dp.commands.length = 0;
    await dp.apply('wm-demo', c2, c1, ID);
    expect(dp.commands).toEqual([
      [
        'wg',
        'set',
        'wm-demo',
        'peer',
        key(4),
        'endpoint',
        '192.0.2.4:51820',
        'persistent-keepalive',
        '25',
        'allowed-ips',
        '10.8.0.4/32',
      ],
    ]);
    const c3 = netmapToConfig(map([peer(2), peer(4)], 3), LAN);
    await dp.apply('wm-demo', c3, c2, ID);
    const seen = await dp.observe('wm-demo');
    expect(seen.peers.find((p) => p.publicKey === key(2))?.latestHandshakeS).toBe(1234);
    expect(seen.peers.map((p) => p.publicKey).sort()).toEqual([key(2), key(4)].sort());
    const again = await dp.apply('wm-demo', c3, c3, ID);
    expect(again.summary).toBe('no changes');
  });
});
