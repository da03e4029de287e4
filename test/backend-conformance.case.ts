// Backend conformance (issue 6, after hono's common.case.test.ts): one set of cases registered for
// any place a WireGuard backend can run. The agent's own backend and dataplane run here in Node;
// only their ip(8)/wg(8) commands go to the target (a namespace, or the kernel VM) through a Runner.
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import {
  ROUTE_PROTOCOL,
  linkKind,
  parseIpAddr,
  parseWgDump,
  selectBackend,
  systemDataplane,
  type BackendChoice,
  type BackendOptions,
  type Dataplane,
  type DesiredConfig,
  type DesiredPeer,
  type DeviceIdentity,
  type Firewall,
  type ObservedPeer,
  type Runner,
  type WgDump,
} from '@wiremesh/mesh-agent';
import { startUserspaceWg } from './harness/kernel-vm/index.js';
import { pollUntil, run } from './harness/netns.js';

/** A place where a backend runs, as the cases need it. */
export interface BackendTarget {
  /** Backend options whose runner executes in the target (its namespace or VM). */
  readonly options: BackendOptions;
  /** What to ask selectBackend for here, and what it must answer. */
  readonly choice: BackendChoice;
  readonly expected: {
    readonly kind: 'kernel' | 'userspace';
    /** The reason given for a fresh interface. */
    readonly reason: RegExp;
    /** The reason given once the interface exists. */
    readonly existingReason: RegExp;
    /** The link kind `ip -d link` reports for the interface. */
    readonly linkKind: string;
  };
  /** A fresh interface name, unique on this host (/var/run/wireguard is shared). */
  newInterface(): string;
  /** Writes a 0600 file the target's wg(8) can read; resolves with its path there. */
  writeSecret(name: string, text: string): Promise<string>;
  /** The link between the target and a namespace on this host where a real peer can run. */
  readonly link: {
    readonly peerNetns: string;
    /** The peer namespace's address on the link. */
    readonly peerIp4: string;
    /** The target's address on the link. */
    readonly deviceIp4: string;
    /** Addresses on the link nobody holds: endpoints of peers that must never answer. */
    readonly unusedIp4: string;
    readonly unusedIp6: string;
  };
  /** What a removed interface left behind besides its link (files, processes); [] when nothing. */
  leftovers(iface: string): Promise<string[]>;
}

const NO_FIREWALL: Firewall = { reconcile: async () => [] };
const HANDSHAKE_WAIT_MS = 15_000;
const PING_COUNT = 3;
/** Route protocol as `ip -j route` prints it (a number without a name in rt_protos). */
const OUR_PROTO = String(ROUTE_PROTOCOL);

interface Keypair {
  privateKey: string;
  publicKey: string;
}

function keypair(): Keypair {
  const privateKey = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
  const publicKey = execFileSync('wg', ['pubkey'], { input: privateKey, encoding: 'utf8' }).trim();
  return { privateKey, publicKey };
}

function desired(over: Partial<DesiredConfig>): DesiredConfig {
  return {
    network: 'conformance',
    mapVersion: 1,
    listenPort: 51_830,
    mtu: 1_420,
    addresses: [],
    peers: [],
    routes: [],
    forwarding: { egress: null, meshToMesh: [] },
    paths: [],
    ...over,
  };
}

function peer(
  publicKey: string,
  allowedIps: string[],
  endpoint: string | null,
  persistentKeepalive = 0,
): DesiredPeer {
  return {
    publicKey,
    id: publicKey.slice(0, 8),
    name: publicKey.slice(0, 8),
    kind: 'node',
    allowedIps: [...allowedIps].sort(),
    endpoint,
    persistentKeepalive,
  };
}

/** The configured part of a peer (what the agent sets), for comparing with the map. */
function configured(p: ObservedPeer | DesiredPeer) {
  return {
    publicKey: p.publicKey,
    endpoint: p.endpoint,
    allowedIps: [...p.allowedIps],
    persistentKeepalive: p.persistentKeepalive,
  };
}

const byKey = <T extends { publicKey: string }>(list: readonly T[]): T[] =>
  [...list].sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));

async function must(runner: Runner, cmd: string, args: string[]): Promise<string> {
  const r = await runner.run(cmd, args);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function dump(runner: Runner, iface: string): Promise<WgDump> {
  const d = parseWgDump(await must(runner, 'wg', ['show', iface, 'dump']));
  if (d === null) throw new Error(`wg show ${iface} dump printed no interface line`);
  return d;
}

function peerOf(d: WgDump, key: string): ObservedPeer {
  const p = d.peers.find((x) => x.publicKey === key);
  if (p === undefined) throw new Error(`peer ${key.slice(0, 8)} is not on the interface`);
  return p;
}

interface RouteEntry {
  dst: string;
  protocol: string;
}

/** Every route into `iface` (both families) with its protocol, as iproute2's JSON gives them. */
async function routesOf(runner: Runner, iface: string): Promise<RouteEntry[]> {
  const out: RouteEntry[] = [];
  for (const fam of ['-4', '-6']) {
    const r = await runner.run('ip', [fam, '-j', 'route', 'show', 'dev', iface]);
    if (r.code !== 0) continue;
    for (const e of JSON.parse(r.stdout || '[]') as { dst?: string; protocol?: unknown }[]) {
      if (typeof e.dst === 'string' && !e.dst.startsWith('fe80:'))
        out.push({ dst: e.dst, protocol: String(e.protocol ?? 'boot') });
    }
  }
  return out.sort((a, b) => (a.dst < b.dst ? -1 : 1));
}

const ours = (routes: RouteEntry[]) =>
  routes
    .filter((r) => r.protocol === OUR_PROTO)
    .map((r) => r.dst)
    .sort();

interface Device {
  iface: string;
  dp: Dataplane;
  id: DeviceIdentity;
  runner: Runner;
}

/**
 * Selects the backend for a fresh interface, creates it, runs `body`, and removes the interface on
 * every path (a failed removal is reported only when the body passed).
 */
async function withDevice(
  target: BackendTarget,
  body: (dev: Device) => Promise<void>,
): Promise<void> {
  const iface = target.newInterface();
  const backend = await selectBackend(target.choice, iface, target.options);
  const runner = target.options.runner;
  const dp = systemDataplane(backend, NO_FIREWALL, runner, target.options.log);
  const keys = keypair();
  const id: DeviceIdentity = {
    privateKeyFile: await target.writeSecret(`${iface}.key`, `${keys.privateKey}\n`),
    publicKey: keys.publicKey,
  };
  let passed = false;
  try {
    expect(await dp.ensureInterface(iface)).toBe(true);
    await body({ iface, dp, id, runner });
    passed = true;
  } finally {
    try {
      await dp.removeInterface(iface);
    } catch (err) {
      if (passed) throw err;
    }
  }
}

/** Pings `address` from namespace `ns` on this host; resolves with how many replies came back. */
async function ping(ns: string, address: string, count = PING_COUNT): Promise<number> {
  const r = await run(ns, ['ping', '-c', String(count), '-i', '0.2', '-W', '3', address], {
    timeoutMs: 15_000,
  });
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

/** Registers the conformance cases; `target` is called inside each case (after beforeAll). */
export function registerBackendConformance(target: () => BackendTarget): void {
  it('picks the backend and says why, creates the interface once, and recognises it afterwards', async () => {
    const t = target();
    const iface = t.newInterface();
    const backend = await selectBackend(t.choice, iface, t.options);
    expect(backend.kind).toBe(t.expected.kind);
    expect(backend.reason).toMatch(t.expected.reason);
    // The auto probe leaves no interface behind.
    expect(await must(t.options.runner, 'ip', ['-o', 'link', 'show'])).not.toMatch(/wmprobe/);
    const dp = systemDataplane(backend, NO_FIREWALL, t.options.runner, t.options.log);
    try {
      expect((await dp.observe(iface)).exists).toBe(false);
      expect(await linkKind(t.options.runner, iface)).toBeUndefined();
      expect(await dp.ensureInterface(iface)).toBe(true);
      expect(await dp.ensureInterface(iface)).toBe(false);
      expect(await linkKind(t.options.runner, iface)).toBe(t.expected.linkKind);
      const again = await selectBackend('auto', iface, t.options);
      expect(again.kind).toBe(t.expected.kind);
      expect(again.reason).toMatch(t.expected.existingReason);
      const seen = await dp.observe(iface);
      expect(seen).toMatchObject({ exists: true, up: false, addresses: [], routes: [], peers: [] });
      expect(seen.publicKey).toBeNull();
    } finally {
      await dp.removeInterface(iface);
    }
  });

  it('sets addresses and MTU, brings the link up, and changes only what differs', async () => {
    await withDevice(target(), async ({ iface, dp, id, runner }) => {
      const first = desired({ mtu: 1_380, addresses: ['10.96.0.1/24', 'fd96::1/64'] });
      const r1 = await dp.apply(iface, first, null, id);
      expect(r1.changed).toBe(true);
      expect(r1.diff.addAddresses).toEqual(['10.96.0.1/24', 'fd96::1/64']);
      const link = parseIpAddr(
        await must(runner, 'ip', ['-j', '-d', 'address', 'show', 'dev', iface]),
      );
      expect(link).toMatchObject({
        up: true,
        mtu: 1_380,
        addresses: ['10.96.0.1/24', 'fd96::1/64'],
      });
      const seen = await dp.observe(iface);
      expect(seen).toMatchObject({ exists: true, up: true, mtu: 1_380, listenPort: 51_830 });
      expect(seen.publicKey).toBe(id.publicKey);

      expect(await dp.apply(iface, first, first, id)).toMatchObject({
        changed: false,
        summary: 'no changes',
      });

      const second = desired({ mtu: 1_300, addresses: ['10.96.1.1/24', 'fd96::1/64'] });
      const r2 = await dp.apply(iface, second, first, id);
      expect(r2.summary).toBe(
        'add addresses 10.96.1.1/24; remove addresses 10.96.0.1/24; mtu 1300',
      );
      const after = parseIpAddr(
        await must(runner, 'ip', ['-j', '-d', 'address', 'show', 'dev', iface]),
      );
      expect(after).toMatchObject({
        up: true,
        mtu: 1_300,
        addresses: ['10.96.1.1/24', 'fd96::1/64'],
      });
    });
  });

  it('applies peers (keys, endpoints, allowed IPs, keepalive) and reads them back from wg show dump', async () => {
    const t = target();
    await withDevice(t, async ({ iface, dp, id, runner }) => {
      const [a, b, c] = [keypair(), keypair(), keypair()];
      const want = desired({
        listenPort: 51_831,
        addresses: ['10.97.0.1/24'],
        peers: byKey([
          peer(a.publicKey, ['10.97.0.2/32', 'fd97::2/128'], `${t.link.unusedIp4}:51820`, 25),
          peer(b.publicKey, ['10.97.0.3/32', '192.168.97.0/24'], `[${t.link.unusedIp6}]:51821`),
          peer(c.publicKey, ['10.97.0.4/32'], null),
        ]),
      });
      const r = await dp.apply(iface, want, null, id);
      expect(r.diff.updatePeers.filter((u) => u.isNew)).toHaveLength(3);

      const d = await dump(runner, iface);
      expect(d.device).toEqual({ publicKey: id.publicKey, listenPort: 51_831, fwmark: null });
      expect(byKey(d.peers).map(configured)).toEqual(want.peers.map(configured));
      for (const p of d.peers) expect(p.rxBytes).toBe(0);
      // Nothing answered: no peer can claim a handshake.
      for (const p of d.peers) expect(p.latestHandshakeS).toBe(0);
      const seen = await dp.observe(iface);
      expect(byKey(seen.peers).map(configured)).toEqual(want.peers.map(configured));

      // What the interface reports parses back into exactly the map, even with no memory of the
      // last apply (an agent restart): endpoints, prefixes and keepalive print canonically.
      expect(await dp.apply(iface, want, want, id)).toMatchObject({ changed: false });
      expect(await dp.apply(iface, want, null, id)).toMatchObject({ changed: false });

      // One field of one peer changes: only that field is set.
      const edited = desired({
        ...want,
        peers: want.peers.map((p) =>
          p.publicKey === b.publicKey ? { ...p, persistentKeepalive: 15 } : p,
        ),
      });
      const r2 = await dp.apply(iface, edited, want, id);
      expect(r2.diff.updatePeers).toHaveLength(1);
      const [u] = r2.diff.updatePeers;
      expect(u).toMatchObject({ publicKey: b.publicKey, isNew: false, persistentKeepalive: 15 });
      expect(u).not.toHaveProperty('endpoint');
      expect(u).not.toHaveProperty('allowedIps');
      expect(peerOf(await dump(runner, iface), b.publicKey).persistentKeepalive).toBe(15);
    });
  });

  it('adding and removing a peer leaves a live session alone (handshake time unchanged on both sides)', async () => {
    const t = target();
    await withDevice(t, async ({ iface, dp, id, runner }) => {
      const real = await startUserspaceWg({ netns: t.link.peerNetns });
      try {
        const realKeys = keypair();
        const devicePort = 51_832;
        const realPort = 51_833;
        await real.addAddress('10.95.0.2/24');
        await real.setConf(
          [
            '[Interface]',
            `PrivateKey = ${realKeys.privateKey}`,
            `ListenPort = ${realPort}`,
            '[Peer]',
            `PublicKey = ${id.publicKey}`,
            'AllowedIPs = 10.95.0.1/32',
            `Endpoint = ${t.link.deviceIp4}:${devicePort}`,
            '',
          ].join('\n'),
        );
        const realPeer = peer(
          realKeys.publicKey,
          ['10.95.0.2/32'],
          `${t.link.peerIp4}:${realPort}`,
        );
        const base = desired({
          listenPort: devicePort,
          addresses: ['10.95.0.1/24'],
          peers: [realPeer],
        });
        await dp.apply(iface, base, null, id);

        // The real peer initiates; its first packets wait in its queue for the handshake.
        await pollUntil(
          'a ping through the tunnel',
          async () => (await ping(t.link.peerNetns, '10.95.0.1', 1)) === 1,
          HANDSHAKE_WAIT_MS,
        );
        const before = peerOf(await dump(runner, iface), realKeys.publicKey);
        const realBefore = (await real.wgDump()).peers[0];
        expect(before.latestHandshakeS).toBeGreaterThan(0);
        expect(realBefore?.latestHandshake).toBeGreaterThan(0);
        // Let both clocks pass the handshake's second: a new handshake would then show.
        await pollUntil(
          'the clocks to pass the handshake second',
          async () =>
            Number((await must(runner, 'date', ['+%s'])).trim()) > before.latestHandshakeS &&
            Date.now() / 1000 > (realBefore?.latestHandshake ?? 0) + 1,
          5_000,
        );

        const other = keypair();
        const otherPeer = peer(other.publicKey, ['10.95.0.3/32'], `${t.link.unusedIp4}:51820`, 25);
        const withOther = desired({ ...base, peers: byKey([realPeer, otherPeer]) });
        const steps: [DesiredConfig, DesiredConfig, string][] = [
          [withOther, base, `add peers ${other.publicKey.slice(0, 8)}`],
          [base, withOther, `remove peers ${other.publicKey.slice(0, 8)}`],
        ];
        let rx = before.rxBytes;
        for (const [next, last, summary] of steps) {
          expect((await dp.apply(iface, next, last, id)).summary).toBe(summary);
          expect(await ping(t.link.peerNetns, '10.95.0.1')).toBe(PING_COUNT);
          const d = await dump(runner, iface);
          expect(d.peers.map((p) => p.publicKey).sort()).toEqual(
            next.peers.map((p) => p.publicKey).sort(),
          );
          const now = peerOf(d, realKeys.publicKey);
          expect(now.latestHandshakeS).toBe(before.latestHandshakeS);
          expect(configured(now)).toEqual(configured(realPeer));
          // Counters only grow: the peer was never removed and re-added.
          expect(now.rxBytes).toBeGreaterThan(rx);
          rx = now.rxBytes;
          expect((await real.wgDump()).peers[0]?.latestHandshake).toBe(realBefore?.latestHandshake);
        }
      } finally {
        await real.stop();
      }
    });
  });

  it('routes every allowed IP outside the subnets (gateway ranges too) and removes exactly its own', async () => {
    const t = target();
    await withDevice(t, async ({ iface, dp, id, runner }) => {
      const [b, d] = [keypair(), keypair()];
      const gw4 = '192.168.77.0/24';
      const gw6 = 'fd77:77::/64';
      const bPeer = peer(b.publicKey, ['10.94.0.2/32', gw4, gw6], `${t.link.unusedIp4}:51820`);
      const dPeer = peer(d.publicKey, ['10.94.0.3/32'], null);
      const one = desired({
        listenPort: 51_834,
        addresses: ['10.94.0.1/24', 'fd94::1/64'],
        peers: byKey([bPeer, dPeer]),
        routes: [gw4, gw6],
      });
      const r1 = await dp.apply(iface, one, null, id);
      expect(r1.diff.addRoutes).toEqual([gw4, gw6]);
      expect(ours(await routesOf(runner, iface))).toEqual([gw4, gw6]);
      expect((await dp.observe(iface)).routes).toEqual([gw4, gw6]);

      // A route someone else added into the interface is none of the agent's business.
      await must(runner, 'ip', ['route', 'add', '192.168.78.0/24', 'dev', iface]);

      // The IPv4 gateway range moves from b to d: allowed IPs follow, the route stays.
      const bMoved = peer(b.publicKey, ['10.94.0.2/32', gw6], bPeer.endpoint);
      const moved = desired({
        ...one,
        peers: byKey([bMoved, peer(d.publicKey, ['10.94.0.3/32', gw4], null)]),
      });
      const r2 = await dp.apply(iface, moved, one, id);
      expect(r2.diff.addRoutes).toEqual([]);
      expect(r2.diff.removeRoutes).toEqual([]);
      const dm = await dump(runner, iface);
      expect(peerOf(dm, d.publicKey).allowedIps).toEqual(['10.94.0.3/32', gw4].sort());
      expect(peerOf(dm, b.publicKey).allowedIps).toEqual(['10.94.0.2/32', gw6].sort());
      expect(ours(await routesOf(runner, iface))).toEqual([gw4, gw6]);

      // d leaves with its range: its route goes, b's stays, the foreign one stays.
      const noD = desired({ ...moved, peers: [bMoved], routes: [gw6] });
      const r3 = await dp.apply(iface, noD, moved, id);
      expect(r3.diff.removeRoutes).toEqual([gw4]);
      const after = await routesOf(runner, iface);
      expect(ours(after)).toEqual([gw6]);
      expect(after.map((r) => r.dst)).toContain('192.168.78.0/24');

      // b leaves too.
      const none = desired({ ...noD, peers: [], routes: [] });
      expect((await dp.apply(iface, none, noD, id)).diff.removeRoutes).toEqual([gw6]);
      expect(ours(await routesOf(runner, iface))).toEqual([]);
      expect((await dump(runner, iface)).peers).toEqual([]);
    });
  });

  it('removes the interface with its routes and whatever served it; removing again is a no-op', async () => {
    const t = target();
    const iface = t.newInterface();
    const backend = await selectBackend(t.choice, iface, t.options);
    const runner = t.options.runner;
    const dp = systemDataplane(backend, NO_FIREWALL, runner, t.options.log);
    const keys = keypair();
    const id = {
      privateKeyFile: await t.writeSecret(`${iface}.key`, `${keys.privateKey}\n`),
      publicKey: keys.publicKey,
    };
    try {
      await dp.ensureInterface(iface);
      const p = keypair();
      await dp.apply(
        iface,
        desired({
          listenPort: 51_835,
          addresses: ['10.93.0.1/24'],
          peers: [peer(p.publicKey, ['10.93.0.2/32', '192.168.93.0/24'], null)],
          routes: ['192.168.93.0/24'],
        }),
        null,
        id,
      );
      expect(ours(await routesOf(runner, iface))).toEqual(['192.168.93.0/24']);
    } finally {
      await dp.removeInterface(iface);
    }
    expect((await dp.observe(iface)).exists).toBe(false);
    expect((await runner.run('ip', ['link', 'show', 'dev', iface])).code).not.toBe(0);
    expect(await must(runner, 'ip', ['-4', 'route', 'show', 'proto', OUR_PROTO])).not.toMatch(
      /192\.168\.93\.0/,
    );
    expect((await runner.run('wg', ['show', iface])).code).not.toBe(0);
    expect(await t.leftovers(iface)).toEqual([]);
    await dp.removeInterface(iface);
  });
}
