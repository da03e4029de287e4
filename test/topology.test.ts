// The namespace topology harness (harness/topology.ts) and, on top of it, NAT traversal with
// persistent keepalive (issue 3) as one conformance suite over wireguard-go and wgts: two hosts
// behind home routers, each configured with the other's public address, after /work/shared/NAT.md.
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';

import { cleanupAll, pollUntil, type TrackedProcess } from './harness/netns.js';
import {
  buildTopology,
  parseConntrack,
  withTopology,
  type ConntrackEntry,
  type Topology,
  type TopologySpec,
} from './harness/topology.js';
import {
  SOCKET_DIR,
  startDaemon,
  tempFile,
  uniqueIface,
  wgDump,
  wgKeypair,
  type Impl,
} from './harness/wgts.js';

afterAll(() => cleanupAll());

/**
 * A UDP agent for `node -e`: binds argv[1], sends one datagram to each `host:port` in argv[2..],
 * prints `recv ADDR PORT TEXT` per datagram; with WM_ECHO=1 it sends each datagram back.
 */
const UDP_AGENT = `
const dgram = require('node:dgram');
const [port, ...dests] = process.argv.slice(1);
const s = dgram.createSocket(dests.some((d) => d.startsWith('[')) ? 'udp6' : 'udp4');
s.on('message', (msg, r) => {
  process.stdout.write('recv ' + r.address + ' ' + r.port + ' ' + msg + '\\n');
  if (process.env.WM_ECHO === '1') s.send(msg, r.port, r.address);
});
s.bind(Number(port), () => {
  for (const d of dests) {
    const i = d.lastIndexOf(':');
    s.send('hello', Number(d.slice(i + 1)), d.slice(0, i).replace(/^\\[|\\]$/g, ''));
  }
  process.stdout.write('bound ' + port + '\\n');
});
`;

function udpAgent(
  topo: Topology,
  node: string,
  port: number,
  dests: string[] = [],
  echo = false,
): TrackedProcess {
  return topo.spawn(node, process.execPath, ['-e', UDP_AGENT, String(port), ...dests], {
    env: { ...process.env, WM_ECHO: echo ? '1' : '0' },
    label: `udp agent ${node}:${port}`,
  });
}

/** The `recv ADDR PORT` lines an agent has printed. */
function received(p: TrackedProcess): { address: string; port: number }[] {
  return [...p.output().matchAll(/^recv (\S+) (\d+) /gm)].map((m) => ({
    address: m[1]!,
    port: Number(m[2]),
  }));
}

async function pingOnce(topo: Topology, node: string, address: string): Promise<boolean> {
  const r = await topo.exec(node, 'ping', ['-n', '-c', '1', '-W', '1', address], {
    timeoutMs: 5_000,
  });
  return r.status === 0;
}

/** How many of `count` pings (0.2 s apart, 1 s reply wait) got an answer. */
async function pings(
  topo: Topology,
  node: string,
  address: string,
  count: number,
): Promise<number> {
  const r = await topo.exec(
    node,
    'ping',
    ['-n', '-c', String(count), '-i', '0.2', '-W', '1', address],
    { timeoutMs: 5_000 + count * 1_000 },
  );
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

async function sysctl(topo: Topology, node: string, key: string): Promise<string> {
  return (await topo.check(node, 'sysctl', ['-n', key])).trim();
}

describe('topology harness', () => {
  const spec: TopologySpec = {
    prefix: 'wmtopo',
    routers: [
      { name: 'rH', nat: 'home', udpTimeoutS: 7, udpStreamTimeoutS: 9 },
      { name: 'rM', nat: 'masquerade' },
      { name: 'rS', nat: 'symmetric' },
    ],
    lans: [
      { name: 'lanH', router: 'rH', ipv4: '192.168.1.0/24', ipv6: 'fd00:1::/64' },
      // The same subnet as lanH: two homes are separate networks.
      { name: 'lanM', router: 'rM', ipv4: '192.168.1.0/24' },
      { name: 'lanS', router: 'rS', ipv4: '10.0.0.0/24' },
    ],
    hosts: [
      { name: 'h', lan: 'lanH' },
      { name: 'm', lan: 'lanM' },
      { name: 's', lan: 'lanS' },
      { name: 'p', lan: 'internet' },
      { name: 'q', lan: 'internet', ipv4: '203.0.113.77' },
    ],
  };

  test('rejects bad specs before making anything', async () => {
    await expect(buildTopology({ prefix: 'Bad-Prefix' })).rejects.toThrow(TypeError);
    await expect(
      buildTopology({ prefix: 'wmtopo', hosts: [{ name: 'x', lan: 'nowhere' }] }),
    ).rejects.toThrow(/no segment named nowhere/);
    await expect(
      buildTopology({
        prefix: 'wmtopo',
        hosts: [
          { name: 'x', lan: 'internet', ipv4: '203.0.113.9' },
          { name: 'y', lan: 'internet', ipv4: '203.0.113.9' },
        ],
      }),
    ).rejects.toThrow(/used twice/);
    await expect(
      buildTopology({
        prefix: 'wmtopo',
        routers: [{ name: 'r', nat: 'home' }],
        lans: [{ name: 'l', router: 'r', ipv4: '10.0.0.1/24' }],
      }),
    ).rejects.toThrow(/host bits/);
  });

  test('parses conntrack lines', () => {
    const [udp, tcp] = parseConntrack(
      'udp      17 28 src=192.168.1.2 dst=203.0.113.3 sport=51820 dport=51820 src=203.0.113.3 dst=203.0.113.2 sport=51820 dport=40001 [ASSURED] mark=0 use=1\n' +
        'tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=203.0.113.5 sport=4000 dport=80 [UNREPLIED] src=203.0.113.5 dst=203.0.113.4 sport=80 dport=4000 mark=0 use=1\n' +
        'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.\n',
    );
    expect(udp).toMatchObject({
      proto: 'udp',
      timeoutS: 28,
      state: undefined,
      original: { src: '192.168.1.2', dst: '203.0.113.3', sport: 51820, dport: 51820 },
      reply: { src: '203.0.113.3', dst: '203.0.113.2', sport: 51820, dport: 40001 },
      flags: ['ASSURED'],
    });
    expect(tcp).toMatchObject({ state: 'ESTABLISHED', flags: ['UNREPLIED'] });
  });

  test('builds NAT kinds that behave as named, and destroys everything', async () => {
    const started = performance.now();
    const topo = await buildTopology(spec);
    const buildMs = performance.now() - started;
    let agents: TrackedProcess[] = [];
    try {
      const rH = topo.node('rH');
      const rM = topo.node('rM');
      const rS = topo.node('rS');
      const p = topo.node('p');
      const q = topo.node('q');
      for (const name of topo.nodes)
        expect(topo.ns(name)).toMatch(new RegExp(`^wmtopo-${process.pid}-[0-9a-f]+$`));
      expect(topo.node('internet')).toMatchObject({ ipv4: '203.0.113.1', ipv6: '2001:db8::1' });
      // Routers first (in spec order), then hosts; explicit addresses are kept.
      expect([rH.ipv4, rM.ipv4, rS.ipv4, p.ipv4, q.ipv4]).toEqual([
        '203.0.113.2',
        '203.0.113.3',
        '203.0.113.4',
        '203.0.113.5',
        '203.0.113.77',
      ]);
      expect(topo.node('h')).toMatchObject({ ipv4: '192.168.1.2', ipv6: 'fd00:1::2' });
      expect(topo.node('m')).toMatchObject({ ipv4: '192.168.1.2', ipv6: undefined });
      expect(topo.gateway('lanS')).toEqual({ ipv4: '10.0.0.1', ipv6: undefined });
      expect(topo.publicAddress('h')).toEqual({ ipv4: rH.ipv4, ipv6: rH.ipv6 });
      expect(topo.publicAddress('p')).toEqual({ ipv4: p.ipv4, ipv6: p.ipv6 });

      // Per-namespace conntrack timeouts and bridge netfilter off in routers.
      expect(await sysctl(topo, 'rH', 'net.netfilter.nf_conntrack_udp_timeout')).toBe('7');
      expect(await sysctl(topo, 'rH', 'net.netfilter.nf_conntrack_udp_timeout_stream')).toBe('9');
      expect(await sysctl(topo, 'rM', 'net.netfilter.nf_conntrack_udp_timeout')).toBe('30');
      await topo.setUdpTimeouts('rM', { udpS: 4 });
      expect(await sysctl(topo, 'rM', 'net.netfilter.nf_conntrack_udp_timeout')).toBe('4');
      for (const r of ['rH', 'rM', 'rS', 'internet'])
        expect(await sysctl(topo, r, 'net.bridge.bridge-nf-call-iptables')).toBe('0');

      // Everyone reaches the internet, over IPv6 too where the LAN has it (NAT66).
      for (const host of ['h', 'm', 's']) expect(await pingOnce(topo, host, q.ipv4)).toBe(true);
      expect(await pingOnce(topo, 'h', p.ipv6!)).toBe(true);
      // A home router drops unsolicited inbound; a bare masquerading router answers.
      expect(await pingOnce(topo, 'p', rH.ipv4)).toBe(false);
      expect(await pingOnce(topo, 'p', rH.ipv6!)).toBe(false);
      expect(await pingOnce(topo, 'p', rM.ipv4)).toBe(true);

      const PORT = 40000;
      const ECHO = 5000;
      agents = [udpAgent(topo, 'p', ECHO, [], true), udpAgent(topo, 'q', ECHO, [], true)];
      await pollUntil(
        'echo agents to bind',
        () => agents.every((a) => a.output().includes('bound')),
        10_000,
      );
      const dests = [`${p.ipv4}:${ECHO}`, `${q.ipv4}:${ECHO}`];
      const h = udpAgent(topo, 'h', PORT, [dests[0]!]);
      const m = udpAgent(topo, 'm', PORT, dests);
      const s = udpAgent(topo, 's', PORT, dests);
      agents.push(h, m, s);

      // Masquerade keeps the source port when it is free; replies come back through the mapping.
      const fromM = await pollUntil(
        'p and q to hear m',
        () => {
          const got = [...received(agents[0]!), ...received(agents[1]!)].filter(
            (r) => r.address === rM.ipv4,
          );
          return got.length === 2 && got;
        },
        5_000,
      );
      expect(fromM.map((r) => r.port)).toEqual([PORT, PORT]);
      await pollUntil('m to hear both echoes', () => received(m).length === 2, 5_000);
      // h's agent starts on its own clock: wait for p to hear it before reading rH's mapping.
      await pollUntil(
        'p to hear h',
        () => received(agents[0]!).some((r) => r.address === rH.ipv4),
        5_000,
      );
      const hMapping = (await topo.conntrack('rH')).find(
        (e) => e.original.src === topo.node('h').ipv4,
      );
      expect(hMapping).toMatchObject({
        original: { sport: PORT, dst: p.ipv4, dport: ECHO },
        reply: { dst: rH.ipv4, dport: PORT },
      });
      expect(hMapping!.flags).not.toContain('UNREPLIED');
      await pollUntil('h to hear p', () => received(h).length === 1, 5_000);

      // Symmetric NAT: one random public port per destination.
      const fromS = await pollUntil(
        'p and q to hear s',
        () => {
          const got = [...received(agents[0]!), ...received(agents[1]!)].filter(
            (r) => r.address === rS.ipv4,
          );
          return got.length === 2 && got;
        },
        5_000,
      );
      expect(fromS[0]!.port).not.toBe(fromS[1]!.port);
      const sMappings = (await topo.conntrack('rS')).filter((e) => e.original.sport === PORT);
      expect(new Set(sMappings.map((e) => e.reply.dport))).toEqual(
        new Set(fromS.map((r) => r.port)),
      );

      // Unsolicited UDP to h's mapping from a host it never sent to is dropped by the home router;
      // the same to m's mapping reaches the masquerading router itself (which has no such socket).
      const intruder = udpAgent(topo, 'q', 6000, [`${rH.ipv4}:${PORT}`, `${rM.ipv4}:${PORT}`]);
      agents.push(intruder);
      await pollUntil('the intruder to send', () => intruder.output().includes('bound'), 5_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(received(h).map((r) => r.address)).toEqual([p.ipv4]);
      expect(received(m).length).toBe(2);
      const dropped = (await topo.conntrack('rH')).filter((e) => e.original.src === q.ipv4);
      expect(dropped).toEqual([]); // never confirmed
      expect((await topo.conntrack('rM')).some((e) => e.original.src === q.ipv4)).toBe(true);
    } catch (err) {
      if (err instanceof Error) err.message += `\n${topo.describe()}\n${topo.logs()}`;
      throw err;
    } finally {
      const namespaces = topo.nodes.map((n) => topo.ns(n));
      const stopStarted = performance.now();
      await topo.destroy();
      console.log(
        `topology of ${topo.nodes.length} namespaces: built in ${buildMs.toFixed(0)} ms, destroyed in ${(performance.now() - stopStarted).toFixed(0)} ms`,
      );
      for (const ns of namespaces) expect(existsSync(`/var/run/netns/${ns}`)).toBe(false);
      for (const a of agents) expect(a.running).toBe(false);
      expect(() => topo.ns('h')).toThrow(/destroyed/);
    }
  });

  test('moveHost re-plugs a host into another LAN; readdress changes its address in place', async () => {
    await withTopology(spec, async (topo) => {
      const q = topo.node('q');
      const moved = await topo.moveHost('h', 'lanS');
      expect(moved).toMatchObject({ segment: 'lanS', ipv4: '10.0.0.3' });
      expect(topo.publicAddress('h').ipv4).toBe(topo.node('rS').ipv4);
      expect(await pingOnce(topo, 'h', q.ipv4)).toBe(true);
      await topo.moveHost('h', 'internet', { ipv4: '203.0.113.50' });
      expect(topo.publicAddress('h').ipv4).toBe('203.0.113.50');
      expect(await pingOnce(topo, 'q', '203.0.113.50')).toBe(true);
      await topo.readdress('h', { ipv4: '203.0.113.51' });
      expect(await pingOnce(topo, 'q', '203.0.113.51')).toBe(true);
      expect(await pingOnce(topo, 'q', '203.0.113.50')).toBe(false);
      // Back home: its old address is free again.
      expect(await topo.moveHost('h', 'lanH')).toMatchObject({
        ipv4: '192.168.1.2',
        ipv6: 'fd00:1::2',
      });
      expect(await pingOnce(topo, 'h', q.ipv6!)).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// NAT traversal with persistent keepalive, across implementations

const WG_PORT = 51820;
const INNER = { a: '10.99.0.1', b: '10.99.0.2' };
/** NAT.md: a 3 s UDP mapping timeout, kept open by a 2 s persistent keepalive. */
const NAT_TIMEOUT_S = 3;
const KEEPALIVE_S = 2;
const IDLE_MS = 10_000;
const SAMPLE_MS = 1_000;
/** A handshake may wait for one 5 s retry (crossed initiations, or a first one dropped by a NAT). */
const CONNECT_MS = 15_000;
/** A keepalive message: 16-byte header and 16-byte tag, no payload. */
const KEEPALIVE_BYTES = 32;

const NAT_PAIRS: [Impl, Impl][] = [
  ['wireguard-go', 'wireguard-go'],
  ['wgts', 'wireguard-go'],
  ['wireguard-go', 'wgts'],
  ['wgts', 'wgts'],
];

const natSpec: TopologySpec = {
  prefix: 'wmnat',
  routers: ['rA', 'rB'].map((name) => ({
    name,
    nat: 'home' as const,
    udpTimeoutS: NAT_TIMEOUT_S,
    // WireGuard flows are two-way, so conntrack holds them with the stream timeout.
    udpStreamTimeoutS: NAT_TIMEOUT_S,
  })),
  lans: [
    { name: 'lanA', router: 'rA', ipv4: '192.168.1.0/24' },
    { name: 'lanB', router: 'rB', ipv4: '192.168.2.0/24' },
  ],
  hosts: [
    { name: 'a', lan: 'lanA' },
    { name: 'b', lan: 'lanB' },
  ],
};

interface NatPair {
  ifaceA: string;
  ifaceB: string;
  pubA: string;
  pubB: string;
  /** Milliseconds from both links up to the first ping answered. */
  connectMs: number;
}

/**
 * Starts implA on a and implB on b, each configured with the other's router WAN address and
 * WG_PORT (and `keepalive` seconds if given), brings both up at once and pings until one passes.
 */
async function natPair(
  topo: Topology,
  implA: Impl,
  implB: Impl,
  keepalive: number | undefined,
): Promise<NatPair> {
  const [da, db] = await Promise.all([
    startDaemon(topo.ns('a'), implA, uniqueIface('a')),
    startDaemon(topo.ns('b'), implB, uniqueIface('b')),
  ]);
  usedIfaces.push(da.iface, db.iface);
  const ka = wgKeypair();
  const kb = wgKeypair();
  const sides = [
    {
      node: 'a',
      iface: da.iface,
      key: ka,
      peer: kb,
      inner: INNER.a,
      peerInner: INNER.b,
      router: 'rB',
    },
    {
      node: 'b',
      iface: db.iface,
      key: kb,
      peer: ka,
      inner: INNER.b,
      peerInner: INNER.a,
      router: 'rA',
    },
  ];
  for (const s of sides) {
    await topo.check(s.node, 'wg', [
      'set',
      s.iface,
      'private-key',
      tempFile(s.key.privateKey, 'key'),
      'listen-port',
      String(WG_PORT),
      'peer',
      s.peer.publicKey,
      'allowed-ips',
      `${s.peerInner}/32`,
      'endpoint',
      `${topo.node(s.router).ipv4}:${WG_PORT}`,
      ...(keepalive === undefined ? [] : ['persistent-keepalive', String(keepalive)]),
    ]);
    await topo.check(s.node, 'ip', ['address', 'add', `${s.inner}/24`, 'dev', s.iface]);
  }
  const started = performance.now();
  await Promise.all(sides.map((s) => topo.check(s.node, 'ip', ['link', 'set', s.iface, 'up'])));
  // Both send at once, as the mesh's hole punching does.
  await Promise.all([
    pollUntil('a to ping b through both NATs', () => pingOnce(topo, 'a', INNER.b), CONNECT_MS, 0),
    pollUntil('b to ping a through both NATs', () => pingOnce(topo, 'b', INNER.a), CONNECT_MS, 0),
  ]);
  return {
    ifaceA: da.iface,
    ifaceB: db.iface,
    pubA: topo.node('rA').ipv4,
    pubB: topo.node('rB').ipv4,
    connectMs: performance.now() - started,
  };
}

/** The router's entry for its host's WireGuard flow to the other router, if any. */
function flowEntry(
  entries: ConntrackEntry[],
  host: string,
  otherPublic: string,
): ConntrackEntry | undefined {
  return entries.find(
    (e) =>
      e.original.src === host &&
      e.original.sport === WG_PORT &&
      e.original.dst === otherPublic &&
      e.original.dport === WG_PORT,
  );
}

async function flows(topo: Topology): Promise<{ a?: ConntrackEntry; b?: ConntrackEntry }> {
  const [ra, rb] = await Promise.all([topo.conntrack('rA'), topo.conntrack('rB')]);
  return {
    a: flowEntry(ra, topo.node('a').ipv4, topo.node('rB').ipv4),
    b: flowEntry(rb, topo.node('b').ipv4, topo.node('rA').ipv4),
  };
}

const figures: string[] = [];
const usedIfaces: string[] = [];
afterAll(() => {
  if (figures.length > 0)
    console.log(`NAT traversal through two home routers:\n  ${figures.join('\n  ')}`);
});

describe.each(NAT_PAIRS)('%s behind a home NAT <-> %s behind a home NAT', (implA, implB) => {
  test(`handshake through both NATs; a ${KEEPALIVE_S} s keepalive holds ${NAT_TIMEOUT_S} s mappings over ${IDLE_MS / 1000} s idle`, async () => {
    await withTopology(natSpec, async (topo) => {
      const t = await natPair(topo, implA, implB, KEEPALIVE_S);
      // Home routers keep source ports, so each side's configured endpoint is the real one.
      const [dumpA, dumpB] = await Promise.all([
        wgDump(topo.ns('a'), t.ifaceA),
        wgDump(topo.ns('b'), t.ifaceB),
      ]);
      expect(dumpA.peers[0]!.endpoint).toBe(`${t.pubB}:${WG_PORT}`);
      expect(dumpB.peers[0]!.endpoint).toBe(`${t.pubA}:${WG_PORT}`);
      const f = await flows(topo);
      expect(f.a).toMatchObject({ reply: { dst: t.pubA, dport: WG_PORT } });
      expect(f.b).toMatchObject({ reply: { dst: t.pubB, dport: WG_PORT } });
      expect(f.a!.flags).not.toContain('UNREPLIED');

      const rxBefore = [dumpA.peers[0]!.rxBytes, dumpB.peers[0]!.rxBytes] as const;
      const idleStart = performance.now();
      let samples = 0;
      while (performance.now() - idleStart < IDLE_MS) {
        await new Promise((r) => setTimeout(r, SAMPLE_MS));
        const now = await flows(topo);
        // Neither mapping ever lapses: keepalives refresh both routers' entries.
        expect(now.a, `rA's mapping after ${samples + 1} s idle`).toBeDefined();
        expect(now.b, `rB's mapping after ${samples + 1} s idle`).toBeDefined();
        expect(now.a!.reply.dport).toBe(WG_PORT);
        samples++;
      }
      const [afterA, afterB] = await Promise.all([
        wgDump(topo.ns('a'), t.ifaceA),
        wgDump(topo.ns('b'), t.ifaceB),
      ]);
      // Any authenticated packet sent or received restarts a peer's persistent-keepalive timer (as
      // in wireguard-go and the kernel), so with equal intervals one side may do all the sending.
      const fromB = afterA.peers[0]!.rxBytes - rxBefore[0];
      const fromA = afterB.peers[0]!.rxBytes - rxBefore[1];
      expect(fromA + fromB).toBeGreaterThanOrEqual(
        KEEPALIVE_BYTES * Math.floor(IDLE_MS / 1000 / KEEPALIVE_S - 1),
      );
      // After the idle spell, either side reaches the other at once.
      expect(await pings(topo, 'b', INNER.a, 2)).toBe(2);
      expect(await pings(topo, 'a', INNER.b, 2)).toBe(2);
      figures.push(
        `${implA} <-> ${implB}: first ping after ${t.connectMs.toFixed(0)} ms; kept over ${samples} s idle by ${fromA / KEEPALIVE_BYTES} keepalives from a, ${fromB / KEEPALIVE_BYTES} from b`,
      );
    });
  });

  test(`without keepalive the ${NAT_TIMEOUT_S} s mappings lapse and the path dies; a keepalive from both sides revives it`, async () => {
    await withTopology(natSpec, async (topo) => {
      const t = await natPair(topo, implA, implB, undefined);
      const idleStart = performance.now();
      await pollUntil(
        'both mappings to lapse',
        async () => {
          const f = await flows(topo);
          return f.a === undefined && f.b === undefined;
        },
        (NAT_TIMEOUT_S + 5) * 1000,
        250,
      );
      const lapsedMs = performance.now() - idleStart;
      // a's packets make a new mapping in rA, but rB drops them: unsolicited inbound.
      const rxB = (await wgDump(topo.ns('b'), t.ifaceB)).peers[0]!.rxBytes;
      expect(await pings(topo, 'a', INNER.b, 3)).toBe(0);
      expect((await wgDump(topo.ns('b'), t.ifaceB)).peers[0]!.rxBytes).toBe(rxB);
      expect((await flows(topo)).b).toBeUndefined();

      const reviveStart = performance.now();
      for (const [node, iface, peer] of [
        ['a', t.ifaceA, (await wgDump(topo.ns('b'), t.ifaceB)).publicKey],
        ['b', t.ifaceB, (await wgDump(topo.ns('a'), t.ifaceA)).publicKey],
      ] as const)
        await topo.check(node, 'wg', [
          'set',
          iface,
          'peer',
          peer,
          'persistent-keepalive',
          String(KEEPALIVE_S),
        ]);
      await pollUntil('a to reach b again', () => pingOnce(topo, 'a', INNER.b), CONNECT_MS, 0);
      figures.push(
        `${implA} <-> ${implB} without keepalive: mappings gone ${lapsedMs.toFixed(0)} ms after the last ping; revived in ${(performance.now() - reviveStart).toFixed(0)} ms`,
      );
    });
  });
});

test('destroy() left no UAPI socket of these daemons behind', () => {
  expect(usedIfaces.length).toBe(2 * 2 * NAT_PAIRS.length);
  expect(usedIfaces.filter((i) => existsSync(`${SOCKET_DIR}/${i}.sock`))).toEqual([]);
});
