// wgts against itself and against Debian's wireguard-go, after the kernel's
// tools/testing/selftests/wireguard/netns.sh: two namespaces joined by a veth, a daemon in each,
// each side initiating, ping over IPv4 and IPv6 inside and outside the tunnel, roaming to IPv6,
// short iperf3 TCP runs over IPv4 and IPv6 inside, a burst of UDP GSO datagrams (TUN offloads: TSO and
// USO super-segments split by wgts, TCP coalesced on its writes), and `wg show dump` byte counters
// that agree with each other and the traffic.
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, test } from 'vitest';

import {
  check,
  cleanupAll,
  createNamespace,
  linkNamespaces,
  pollUntil,
  run,
  spawnIn,
  stopProcess,
} from './harness/netns.js';
import {
  startDaemon,
  tempFile,
  uniqueIface,
  wgDump,
  wgKeypair,
  type Daemon,
  type Impl,
} from './harness/wgts.js';

const OUTER = { a4: '192.168.241.1', b4: '192.168.241.2', a6: 'fd00:aa::1', b6: 'fd00:aa::2' };
const INNER = { a4: '10.201.0.1', b4: '10.201.0.2', a6: 'fd00:201::1', b6: 'fd00:201::2' };
const PORT_A = 10001;
const PORT_B = 10002;
const PING_COUNT = 3;
const IPERF_SECONDS = 3;
const IPERF_PORT = 5201;
const UDP_PORT = 5300;
/** A UDP GSO burst: equal datagrams to one destination leave as one UDP_SEGMENT send. */
const UDP_DATAGRAMS = 40;
const UDP_BYTES = 1200;
const WG_TUN_UDP = fileURLToPath(new URL('../packages/wg-tun/dist/udp.js', import.meta.url));
/** Bytes one side may have sent that the other has not (yet) counted: a keepalive or a handshake retry in flight. */
const COUNTER_SLACK_BYTES = 1024;

interface Topology {
  nsA: string;
  nsB: string;
  a: Daemon;
  b: Daemon;
}

const figures: string[] = [];

afterEach(() => cleanupAll());
afterAll(() => {
  if (figures.length > 0)
    console.log(
      `iperf3 TCP through the tunnel (${IPERF_SECONDS} s, one stream):\n  ${figures.join('\n  ')}`,
    );
});

async function ping(ns: string, address: string, count = PING_COUNT): Promise<number> {
  const r = await run(ns, ['ping', '-n', '-c', String(count), '-i', '0.2', '-W', '3', address], {
    timeoutMs: 30_000,
  });
  const m = /(\d+) received/.exec(r.stdout);
  return m === null ? 0 : Number(m[1]);
}

/** Two namespaces joined by a veth; `implA` in A knows B's endpoint, `implB` in B does not: A initiates. */
async function topology(implA: Impl, implB: Impl): Promise<Topology> {
  const nsA = createNamespace();
  const nsB = createNamespace();
  linkNamespaces(
    { ns: nsA, name: 'veth0', ipv4: `${OUTER.a4}/24`, ipv6: `${OUTER.a6}/64` },
    { ns: nsB, name: 'veth0', ipv4: `${OUTER.b4}/24`, ipv6: `${OUTER.b6}/64` },
  );
  const [a, b] = await Promise.all([
    startDaemon(nsA, implA, uniqueIface('a')),
    startDaemon(nsB, implB, uniqueIface('b')),
  ]);
  const ka = wgKeypair();
  const kb = wgKeypair();
  await check(nsA, [
    'wg',
    'set',
    a.iface,
    'private-key',
    tempFile(ka.privateKey, 'a.key'),
    'listen-port',
    String(PORT_A),
    'peer',
    kb.publicKey,
    'allowed-ips',
    `${INNER.b4}/32,${INNER.b6}/128`,
    'endpoint',
    `${OUTER.b4}:${PORT_B}`,
  ]);
  await check(nsB, [
    'wg',
    'set',
    b.iface,
    'private-key',
    tempFile(kb.privateKey, 'b.key'),
    'listen-port',
    String(PORT_B),
    'peer',
    ka.publicKey,
    'allowed-ips',
    `${INNER.a4}/32,${INNER.a6}/128`,
  ]);
  for (const [ns, d, v4, v6] of [
    [nsA, a, INNER.a4, INNER.a6],
    [nsB, b, INNER.b4, INNER.b6],
  ] as const) {
    await check(ns, ['ip', 'address', 'add', `${v4}/24`, 'dev', d.iface]);
    await check(ns, ['ip', '-6', 'address', 'add', `${v6}/64`, 'dev', d.iface, 'nodad']);
    await check(ns, ['ip', 'link', 'set', d.iface, 'up']);
  }
  return { nsA, nsB, a, b };
}

/** Reads B, A, B's dumps and checks each direction's tx against the other side's rx. Returns A's and B's peer. */
async function checkCounters(t: Topology) {
  const b1 = (await wgDump(t.nsB, t.b.iface)).peers[0]!;
  const a = (await wgDump(t.nsA, t.a.iface)).peers[0]!;
  const b2 = (await wgDump(t.nsB, t.b.iface)).peers[0]!;
  // Read in this order, A's tx can only be ahead of B's earlier rx, and B's later tx ahead of A's rx.
  expect(a.txBytes).toBeGreaterThanOrEqual(b1.rxBytes);
  expect(a.txBytes - b1.rxBytes).toBeLessThanOrEqual(COUNTER_SLACK_BYTES);
  expect(b2.txBytes).toBeGreaterThanOrEqual(a.rxBytes);
  expect(b2.txBytes - a.rxBytes).toBeLessThanOrEqual(COUNTER_SLACK_BYTES);
  return { a, b: b2 };
}

async function iperf(t: Topology, to = INNER.b4): Promise<{ bps: number; bytes: number }> {
  const server = spawnIn(t.nsB, ['iperf3', '-s', '-1', '-B', to, '-p', String(IPERF_PORT)]);
  try {
    await pollUntil(
      'iperf3 server to listen',
      async () =>
        (await run(t.nsB, ['ss', '-Hltn', `sport = :${IPERF_PORT}`])).stdout.includes(
          String(IPERF_PORT),
        ),
      10_000,
    );
    const out = await check(
      t.nsA,
      ['iperf3', '-c', to, '-p', String(IPERF_PORT), '-t', String(IPERF_SECONDS), '-J'],
      { timeoutMs: (IPERF_SECONDS + 20) * 1000 },
    );
    const result = JSON.parse(out) as {
      end: { sum_received: { bits_per_second: number; bytes: number } };
    };
    return { bps: result.end.sum_received.bits_per_second, bytes: result.end.sum_received.bytes };
  } finally {
    await stopProcess(server, 'SIGKILL', 1000);
  }
}

/**
 * Sends UDP_DATAGRAMS datagrams (datagram i: UDP_BYTES bytes of i) from A to `to` in one batch of
 * wg-tun's own UDP bind, which leaves as one GSO send (a USO super-segment for A's TUN), and
 * returns what B's socket received, sorted, each as "length:first byte:all bytes equal".
 */
async function udpBurst(t: Topology, to: string): Promise<string[]> {
  const v6 = to.includes(':');
  const receiver = spawnIn(t.nsB, [
    process.execPath,
    '-e',
    `const s=require('node:dgram').createSocket('${v6 ? 'udp6' : 'udp4'}');const got=[];` +
      `s.on('message',(m)=>{got.push(m.length+':'+m[0]+':'+m.every((x)=>x===m[0]));if(got.length===${UDP_DATAGRAMS}){console.log('got '+JSON.stringify(got.sort()));process.exit(0)}});` +
      `s.bind(${UDP_PORT},'${to}',()=>console.log('ready'));`,
  ]);
  try {
    await pollUntil(
      'the UDP receiver to bind',
      async () => receiver.output().includes('ready'),
      10_000,
    );
    await check(t.nsA, [
      process.execPath,
      '--input-type=module',
      '-e',
      `const {openUdpBind}=await import(${JSON.stringify(WG_TUN_UDP)});const b=openUdpBind();` +
        `const d=[];for(let i=0;i<${UDP_DATAGRAMS};i++)d.push({data:new Uint8Array(${UDP_BYTES}).fill(i),endpoint:{ip:'${to}',port:${UDP_PORT}}});` +
        `const n=b.send(d);b.close();if(n!==d.length)throw new Error('sent '+n);`,
    ]);
    await pollUntil('every datagram to arrive', async () => !receiver.running, 10_000);
    const m = /got (.*)/.exec(receiver.output());
    return m === null ? [] : (JSON.parse(m[1]!) as string[]);
  } finally {
    await stopProcess(receiver, 'SIGKILL', 1000);
  }
}

const PAIRS: [Impl, Impl][] = [
  ['wgts', 'wgts'],
  ['wgts', 'wireguard-go'],
  ['wireguard-go', 'wgts'],
  ['wireguard-go', 'wireguard-go'],
];

describe.each(PAIRS)('%s initiating to %s', (implA, implB) => {
  test('pings over IPv4 and IPv6 inside, IPv4 then IPv6 outside, both ways; counters agree; iperf3', async () => {
    const t = await topology(implA, implB);

    // A initiates (B has no endpoint for A); then B answers over the session.
    expect(await ping(t.nsA, INNER.b4)).toBe(PING_COUNT);
    const dumpB = await wgDump(t.nsB, t.b.iface);
    expect(dumpB.peers[0]!.endpoint).toBe(`${OUTER.a4}:${PORT_A}`);
    expect(dumpB.peers[0]!.latestHandshake).toBeGreaterThan(0);
    expect(await ping(t.nsA, INNER.b6)).toBe(PING_COUNT);
    expect(await ping(t.nsB, INNER.a4)).toBe(PING_COUNT);
    expect(await ping(t.nsB, INNER.a6)).toBe(PING_COUNT);
    const { a } = await checkCounters(t);
    // Twelve echo requests or replies of 84 (IPv4) / 104 (IPv6) bytes went each way, plus WireGuard's 32 bytes each.
    expect(a.txBytes).toBeGreaterThan(2 * PING_COUNT * (84 + 32) + 2 * PING_COUNT * (104 + 32));

    // IPv6 as the outer transport: A moves its endpoint for B, and B follows A's new source.
    await check(t.nsA, [
      'wg',
      'set',
      t.a.iface,
      'peer',
      dumpB.publicKey,
      'endpoint',
      `[${OUTER.b6}]:${PORT_B}`,
    ]);
    expect(await ping(t.nsA, INNER.b4)).toBe(PING_COUNT);
    expect((await wgDump(t.nsB, t.b.iface)).peers[0]!.endpoint).toBe(`[${OUTER.a6}]:${PORT_A}`);
    expect(await ping(t.nsB, INNER.a6)).toBe(PING_COUNT);
    expect(await ping(t.nsB, INNER.a4)).toBe(PING_COUNT);

    const rxBefore = (await wgDump(t.nsB, t.b.iface)).peers[0]!.rxBytes;
    const { bps, bytes } = await iperf(t);
    figures.push(`${implA} -> ${implB}: ${(bps / 1e6).toFixed(0)} Mbit/s`);
    expect(bps).toBeGreaterThan(0);
    // Under load a receiver may drop datagrams (socket buffer full), so here tx only bounds rx.
    const rxAfter = (await wgDump(t.nsB, t.b.iface)).peers[0]!.rxBytes;
    const txAfter = (await wgDump(t.nsA, t.a.iface)).peers[0]!.txBytes;
    expect(rxAfter - rxBefore).toBeGreaterThanOrEqual(bytes);
    expect(txAfter).toBeGreaterThanOrEqual(rxAfter);
    expect(t.a.proc.running && t.b.proc.running).toBe(true);

    // IPv6 inside (TSO6 and coalescing over IPv6), and UDP super-segments both ways round.
    const v6 = await iperf(t, INNER.b6);
    figures.push(`${implA} -> ${implB} over IPv6 inside: ${(v6.bps / 1e6).toFixed(0)} Mbit/s`);
    expect(v6.bytes).toBeGreaterThan(0);
    const want = Array.from({ length: UDP_DATAGRAMS }, (_, i) => `${UDP_BYTES}:${i}:true`).sort();
    expect(await udpBurst(t, INNER.b4)).toEqual(want);
    expect(await udpBurst(t, INNER.b6)).toEqual(want);
    expect(t.a.proc.running && t.b.proc.running).toBe(true);
  });

  test('B initiates once it has an endpoint for A; A answers and traffic flows both ways', async () => {
    const t = await topology(implA, implB);
    // Give B an endpoint for A and make B send first: B is now the initiator.
    const ka = (await wgDump(t.nsA, t.a.iface)).publicKey;
    await check(t.nsB, ['wg', 'set', t.b.iface, 'peer', ka, 'endpoint', `${OUTER.a4}:${PORT_A}`]);
    expect(await ping(t.nsB, INNER.a4)).toBe(PING_COUNT);
    const peerOnA = (await wgDump(t.nsA, t.a.iface)).peers[0]!;
    expect(peerOnA.latestHandshake).toBeGreaterThan(0);
    expect(await ping(t.nsA, INNER.b6)).toBe(PING_COUNT);
    await checkCounters(t);
  });
});
