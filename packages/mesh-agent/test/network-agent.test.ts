import { describe, expect, it } from 'vitest';
import type { NetworkMap } from '@wiremesh/protocol';
import { PATH_CHECK_MS, PUNCH_STAGGER_MS } from '../src/constants.js';
import { createFakeDataplane } from '../src/dataplane/fake-dataplane.js';
import { memoryLogger } from '../src/log.js';
import { NetworkAgent, type NetworkAgentDeps } from '../src/network-agent.js';
import type { PortProbe } from '../src/discovery/reflect-client.js';
import { FakeClock, FakeCoordinator, RecordingBackoff, settle } from './fake-coordinator.js';
import { key, LAN, map, nodeState, peer } from './fixtures.js';

const REPORT_MS = 10_000;

const STATE = nodeState();

function setup(saved: NetworkMap | null = null, extra: Partial<NetworkAgentDeps> = {}) {
  const api = new FakeCoordinator();
  const dp = createFakeDataplane();
  const { log, lines } = memoryLogger();
  const clock = new FakeClock();
  const backoff = new RecordingBackoff({ minMs: 100, maxMs: 800, jitter: 0 });
  const store = {
    saved,
    removed: false,
    loadMap: () => store.saved,
    saveMap: (_n: string, m: NetworkMap) => void (store.saved = m),
    keyPath: () => '/state/demo.key',
    remove: () => void (store.removed = true),
  };
  const gone: string[] = [];
  const agent = new NetworkAgent({
    state: STATE,
    store,
    api,
    dataplane: dp,
    log,
    localAddresses: () => LAN.localAddresses,
    sleep: clock.sleep,
    backoff,
    reportIntervalMs: REPORT_MS,
    onGone: (r) => gone.push(r),
    prepareWhilePending: true,
    now: clock.now,
    resolveHost: async (host) => (host === '10.0.0.1' ? host : '192.0.2.250'),
    ...extra,
  });
  return { api, dp, lines, clock, backoff, store, agent, gone };
}

describe('NetworkAgent', () => {
  it('applies the map from the push stream and only the new peer of a later patch', async () => {
    const t = setup();
    t.agent.start();
    await settle();
    expect(t.api.connected).toBe(true);
    t.api.emit({ type: 'map', map: { ok: true, map: map([peer(2), peer(3)], 5) } });
    await settle();
    const iface = t.dp.interfaces.get('wm-demo');
    expect(iface?.peers.size).toBe(2);
    expect(iface?.addresses).toEqual(['10.8.0.1/16']);
    expect(t.store.saved?.version).toBe(5);
    t.dp.handshake('wm-demo', key(2), 4242);

    t.dp.commands.length = 0;
    t.api.emit({
      type: 'patch',
      patch: { fromVersion: 5, version: 6, upsertPeers: [peer(4)], removePeerIds: [] },
    });
    await settle();
    expect(t.dp.commands).toEqual([
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
    expect(
      (await t.dp.observe('wm-demo')).peers.find((p) => p.publicKey === key(2))?.latestHandshakeS,
    ).toBe(4242);
    expect(t.agent.currentMap?.version).toBe(6);

    // The same version again changes nothing.
    t.dp.commands.length = 0;
    t.api.emit({ type: 'map', map: { ok: true, map: map([peer(2), peer(3), peer(4)], 6) } });
    await settle();
    expect(t.dp.commands).toEqual([]);
    await t.agent.stop();
  });

  it('rejects a map that failed validation and keeps the last good one applied', async () => {
    const t = setup();
    t.agent.start();
    await settle();
    t.api.emit({ type: 'map', map: { ok: true, map: map([peer(2)], 1) } });
    await settle();
    t.dp.commands.length = 0;
    t.api.emit({
      type: 'map',
      map: { ok: false, reason: 'peers.0.publicKey: must be a base64 WireGuard key' },
    });
    t.api.emit({ type: 'invalid', reason: 'patch upsertPeers.0: invalid' });
    // A map for someone else is rejected too.
    t.api.emit({
      type: 'map',
      map: { ok: true, map: { ...map([], 9), self: { ...map([]).self, publicKey: key(77) } } },
    });
    await settle();
    expect(t.dp.commands).toEqual([]);
    expect(t.agent.currentMap?.version).toBe(1);
    expect(t.store.saved?.version).toBe(1);
    expect(t.lines.filter((l) => l.includes('rejected'))).toHaveLength(3);
    expect(t.lines.join('\n')).toContain('keeping v1');
    await t.agent.stop();
  });

  it('keeps the mesh up while the coordinator is away, retries with capped backoff, and resumes', async () => {
    const t = setup();
    t.agent.start();
    await settle();
    t.api.emit({ type: 'map', map: { ok: true, map: map([peer(2)], 1) } });
    await settle();
    const before = JSON.stringify(await t.dp.observe('wm-demo'));
    t.api.crash();
    await settle();
    // Each failed reconnect waits the next backoff delay (the test moves the clock by exactly it).
    for (let i = 0; i < 6; i++) await t.clock.advance(t.backoff.delays.at(-1)!);
    expect(t.backoff.delays).toEqual([100, 200, 400, 800, 800, 800, 800]);
    // The report loop fails too, without touching the interface; the delay stays capped.
    await t.clock.advance(REPORT_MS);
    expect(JSON.stringify(await t.dp.observe('wm-demo'))).toBe(before);
    expect(t.backoff.delays.slice(7).every((d) => d === 800)).toBe(true);
    expect(t.lines.filter((l) => l.includes('the mesh stays up'))).toHaveLength(1);

    t.api.down = false;
    t.api.map = map([peer(2), peer(3)], 2);
    await t.clock.advance(800);
    // Reconnecting polls once (a missed change arrives) and the stream is open again.
    expect(t.agent.currentMap?.version).toBe(2);
    expect(t.api.connected).toBe(true);
    expect(t.lines.some((l) => l.includes('the coordinator is back'))).toBe(true);
    await t.agent.stop();
  });

  it('fetches the full map when a patch does not start at its version', async () => {
    const t = setup();
    t.agent.start();
    await settle();
    t.api.emit({ type: 'map', map: { ok: true, map: map([peer(2)], 1) } });
    await settle();
    t.api.map = map([peer(2), peer(5)], 4);
    t.api.emit({
      type: 'patch',
      patch: { fromVersion: 3, version: 4, upsertPeers: [peer(5)], removePeerIds: [] },
    });
    await settle();
    expect(t.api.mapFetches).toBe(1);
    expect(t.agent.currentMap?.version).toBe(4);
    await t.agent.stop();
  });

  it('waits for approval, then brings the mesh up', async () => {
    const t = setup();
    t.agent.start();
    await settle();
    t.api.emit({
      type: 'state',
      state: 'pending',
      message: 'the node waits for an admin to approve it',
    });
    await settle();
    expect(t.lines.some((l) => l.includes('waiting for an admin to approve'))).toBe(true);
    // The device is started while waiting, but gets no address or peer before approval.
    expect(t.dp.interfaces.get('wm-demo')?.addresses).toEqual([]);
    expect(t.dp.interfaces.get('wm-demo')?.peers.size).toBe(0);
    t.api.emit({ type: 'map', map: { ok: true, map: map([peer(2)], 1) } });
    await settle();
    expect(t.lines.some((l) => l.includes('approved; bringing the mesh up'))).toBe(true);
    expect(t.dp.interfaces.has('wm-demo')).toBe(true);
    await t.agent.stop();
  });

  it('removes the interface and forgets the network when the node is removed', async () => {
    const t = setup();
    t.agent.start();
    await settle();
    t.api.emit({
      type: 'map',
      map: {
        ok: true,
        map: map([peer(2)], 1, { egress: { ranges: ['192.168.1.0/24'], interface: '' } }),
      },
    });
    await settle();
    expect(t.dp.interfaces.get('wm-demo')?.rules.size).toBe(3);
    t.api.emit({
      type: 'state',
      state: 'removed',
      message: 'this node was removed from the network',
    });
    await settle();
    expect(t.dp.interfaces.size).toBe(0);
    expect(t.store.removed).toBe(true);
    expect(t.gone).toEqual(['removed']);
    expect(t.agent.isGone).toBe(true);
    await t.agent.stop();
  });

  it('restores the saved map before the coordinator answers and reports its state', async () => {
    const t = setup(map([peer(2), peer(3)], 7));
    t.api.down = true;
    expect(await t.agent.restore()).toBe(true);
    expect(t.dp.interfaces.get('wm-demo')?.peers.size).toBe(2);
    t.api.down = false;
    t.api.map = map([peer(2), peer(3)], 7);
    await t.agent.checkinOnce();
    const req = t.api.checkins[0];
    expect(req).toMatchObject({
      knownMapVersion: 7,
      listenPort: 51820,
      backend: 'userspace',
      localEndpoints: [{ ip: '192.0.2.1', port: 51820 }],
    });
    expect(req?.peers?.map((p) => p.publicKey).sort()).toEqual([key(2), key(3)].sort());
    expect(req?.peers?.[0]).toMatchObject({ latestHandshakeMs: null, path: 'direct' });
  });

  it('retries an apply that failed on the next check-in', async () => {
    const t = setup();
    t.api.map = map([peer(2)], 1);
    t.dp.failNextApply(new Error('wg set failed: No such device'));
    await t.agent.checkinOnce();
    expect(
      t.lines.some((l) => l.includes('could not apply map v1') && l.includes('will retry')),
    ).toBe(true);
    await t.agent.checkinOnce();
    expect(t.dp.interfaces.get('wm-demo')?.peers.size).toBe(1);
  });

  it('learns its public endpoint from the WireGuard socket, reports it, and chooses paths with it', async () => {
    const t = setup();
    t.dp.reflected = { ip: '203.0.113.2', port: 40000 };
    t.agent.start();
    await settle();
    // Peer 3 sits on a LAN numbered like ours but behind another router; peer 2 behind ours.
    const behindUs = peer(2, {
      endpoints: {
        reflected: { ip: '203.0.113.2', port: 40002 },
        local: [{ ip: '192.0.2.2', port: 51820 }],
      },
    });
    const elsewhere = peer(3, {
      endpoints: {
        reflected: { ip: '203.0.113.3', port: 41000 },
        local: [{ ip: '192.0.2.3', port: 51820 }],
      },
    });
    t.api.emit({
      type: 'map',
      map: { ok: true, map: { ...map([behindUs, elsewhere], 2), reflectPort: 3478 } },
    });
    await settle(60);
    // The probe went to the coordinator's host (10.0.0.1 from the state) on the map's port.
    expect(t.dp.probes[0]).toEqual({ ip: '10.0.0.1', port: 3478 });
    expect(t.agent.reflected).toEqual({ ip: '203.0.113.2', port: 40000 });
    expect(t.lines.some((l) => l.includes('public endpoint 203.0.113.2:40000'))).toBe(true);
    const peers = t.dp.interfaces.get('wm-demo')?.peers;
    expect(peers?.get(key(2))?.endpoint).toBe('192.0.2.2:51820');
    expect(peers?.get(key(3))?.endpoint).toBe('203.0.113.3:41000');
    // The quick probe right after the first apply corrected the LAN guess for peer 3 in the same
    // step: it had no session, so it was added afresh (initiating at once, free of the 5 s
    // limit the first attempt left).
    expect(
      t.dp.commands.some((c) =>
        c.join(' ').includes(`peer ${key(3)} remove peer ${key(3)} endpoint 203.0.113.3:41000`),
      ),
    ).toBe(true);
    expect(t.lines.some((l) => l.includes('applied public endpoint'))).toBe(true);
    expect(t.api.checkins.some((c) => c.reflectedEndpoint?.port === 40000)).toBe(true);
    await t.agent.stop();
  });

  it('probes the reflector from its listen port before the first apply lets the device send', async () => {
    const calls: { port: number; target: unknown; wgSetsBefore: number }[] = [];
    let t!: ReturnType<typeof setup>;
    const probePort = async (port: number, target: unknown): Promise<PortProbe> => {
      calls.push({
        port,
        target,
        wgSetsBefore: t.dp.commands.filter((c) => c[0] === 'wg' && c[1] === 'set').length,
      });
      return { bound: true, endpoint: { ip: '203.0.113.2', port: 40000 } };
    };
    t = setup(null, { probePort });
    t.dp.reflected = { ip: '203.0.113.2', port: 40000 };
    const elsewhere = peer(3, {
      endpoints: {
        reflected: { ip: '203.0.113.3', port: 41000 },
        local: [{ ip: '192.0.2.3', port: 51820 }],
      },
    });
    t.api.map = { ...map([elsewhere], 1), reflectPort: 3478 };
    await t.agent.checkinOnce();
    // One probe, from the map's listen port to the coordinator's reflector, before any wg set.
    expect(calls).toEqual([
      { port: 51820, target: { ip: '10.0.0.1', port: 3478 }, wgSetsBefore: 0 },
    ]);
    expect(t.agent.reflected).toEqual({ ip: '203.0.113.2', port: 40000 });
    // The first apply already knew the public endpoint: peer 3 at its public endpoint at once,
    // never at the LAN guess, and no second probe and apply right after.
    const sets = t.dp.commands.filter((c) => c[0] === 'wg').map((c) => c.join(' '));
    expect(sets.some((c) => c.includes(`peer ${key(3)} endpoint 203.0.113.3:41000`))).toBe(true);
    expect(sets.some((c) => c.includes('192.0.2.3'))).toBe(false);
    expect(t.dp.probes).toEqual([]);
    // Later applies in this process do not probe from the port again (the device holds it).
    t.api.map = { ...map([elsewhere, peer(4)], 2), reflectPort: 3478 };
    await t.agent.checkinOnce();
    expect(calls).toHaveLength(1);
  });

  it('probes from the listen port only for the order when the backend cannot probe later, and not when the port is taken', async () => {
    const ports: number[] = [];
    const t = setup(null, {
      probePort: async (port) => {
        ports.push(port);
        return { bound: true, endpoint: { ip: '203.0.113.2', port: 40000 } };
      },
    });
    t.api.map = { ...map([peer(2)], 1), reflectPort: 3478 };
    await t.agent.checkinOnce();
    expect(ports).toEqual([51820]);
    // A kernel or detached device cannot check the mapping later: nothing is kept or reported.
    expect(t.agent.reflected).toBeNull();
    expect(t.api.checkins.every((c) => c.reflectedEndpoint === undefined)).toBe(true);

    const busy = setup(null, {
      probePort: async () => ({ bound: false, endpoint: null }),
    });
    busy.dp.reflected = { ip: '203.0.113.2', port: 40000 };
    busy.api.map = { ...map([peer(2)], 1), reflectPort: 3478 };
    await busy.agent.checkinOnce();
    // The device already listened there: the usual probe from its own socket follows the apply.
    expect(busy.dp.probes).toEqual([{ ip: '10.0.0.1', port: 3478 }]);
    expect(busy.agent.reflected).toEqual({ ip: '203.0.113.2', port: 40000 });
  });

  it('reports nothing about a public endpoint when the backend cannot probe (kernel)', async () => {
    const t = setup();
    t.api.map = { ...map([peer(2)], 1), reflectPort: 3478 };
    await t.agent.checkinOnce();
    expect(await t.agent.probeEndpoint()).toBeNull();
    expect(t.dp.probes).toEqual([]);
    expect(t.api.checkins.every((c) => c.reflectedEndpoint === undefined)).toBe(true);
  });

  it('probes again and reports when a new endpoint shows no handshake, and reports the handshake when it comes', async () => {
    const t = setup();
    t.dp.reflected = { ip: '203.0.113.2', port: 40000 };
    t.agent.start();
    await settle();
    t.api.emit({
      type: 'map',
      map: { ok: true, map: { ...map([peer(2)], 1), reflectPort: 3478 } },
    });
    await settle(60);
    const probes = t.dp.probes.length;
    const reports = t.api.checkins.length;
    expect(reports).toBeGreaterThan(0);
    // Still within the wait: nothing happens.
    await t.clock.advance(5_000);
    expect(t.dp.probes.length).toBe(probes);
    // Two handshake attempts later (DIRECT_WAIT_MS), still nothing: the NAT may have remapped us.
    await t.clock.advance(4_999);
    expect(t.dp.probes.length).toBe(probes);
    await t.clock.advance(1);
    await settle(60);
    expect(t.dp.probes.length).toBe(probes + 1);
    expect(t.api.checkins.length).toBeGreaterThan(reports);
    // The handshake arrives: reported at the next look, with its age on our clock.
    const before = t.api.checkins.length;
    t.dp.handshake('wm-demo', key(2), Math.floor(t.clock.now() / 1000));
    await t.clock.advance(PATH_CHECK_MS);
    await settle(60);
    const last = t.api.checkins.at(-1);
    expect(t.api.checkins.length).toBeGreaterThan(before);
    expect(last?.peers?.find((p) => p.publicKey === key(2))?.handshakeAgeMs).toBe(1_000);
    // Settled: the watch stops, no more path looks (the next deadline is the periodic probe).
    expect(t.agent.nextDeadline()).toBeGreaterThan(t.clock.now() + PATH_CHECK_MS);
    await t.agent.stop();
  });

  it('holds its first packet to a peer with a smaller key and sends it a moment later', async () => {
    const t = setup();
    t.agent.start();
    await settle();
    // Keys compare as base64 text: ours (key(1), "AQEB...") is greater than "AAAA...".
    const low = peer(2, { publicKey: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' });
    const high = peer(3);
    t.api.emit({ type: 'map', map: { ok: true, map: map([low, high], 1) } });
    await settle();
    const iface = t.dp.interfaces.get('wm-demo')!;
    expect(iface.peers.get(low.publicKey)?.persistentKeepalive).toBe(0);
    expect(iface.peers.get(high.publicKey)?.persistentKeepalive).toBe(25);
    // Still held just before the stagger ends; sent when it does.
    await t.clock.advance(PUNCH_STAGGER_MS - 1);
    expect(iface.peers.get(low.publicKey)?.persistentKeepalive).toBe(0);
    t.dp.commands.length = 0;
    await t.clock.advance(1);
    expect(iface.peers.get(low.publicKey)?.persistentKeepalive).toBe(25);
    // No session yet: the kick adds the peer afresh, which sends at once.
    expect(t.dp.commands.map((c) => c.join(' '))).toEqual([
      `wg set wm-demo peer ${low.publicKey} remove peer ${low.publicKey} endpoint 192.0.2.2:51820 persistent-keepalive 25 allowed-ips 10.8.0.2/32`,
    ]);
    await t.agent.stop();
  });

  it('holds nothing in a one-shot round (nobody would send it later)', async () => {
    const t = setup();
    t.api.map = map([peer(2, { publicKey: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' })], 1);
    await t.agent.checkinOnce();
    const p = [...t.dp.interfaces.get('wm-demo')!.peers.values()][0];
    expect(p?.persistentKeepalive).toBe(25);
  });
});
