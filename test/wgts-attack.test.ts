// wgts under attack (whitepaper §5.3 DoS mitigation, §5.4.7 cookie replies): a flood of initiations
// with a valid mac1 from a static key the device does not know is answered with cookie replies
// while a legitimate peer still completes its handshake; a flood of garbage and mangled real
// messages changes nothing. The attacker (harness/attacker.mjs) runs in its own namespace.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import {
  CookieGenerator,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  keyFromBase64,
  nobleCrypto,
} from '@wiremesh/wg-core';
import { afterEach, describe, expect, test } from 'vitest';

import {
  check,
  cleanupAll,
  createNamespace,
  linkNamespaces,
  pollUntil,
  run,
  spawnIn,
  type TrackedProcess,
} from './harness/netns.js';
import {
  buildWgts,
  startDaemon,
  tempFile,
  uniqueIface,
  wgDump,
  wgKeypair,
  type Daemon,
  type Impl,
  type WgDump,
  type WgKeypair,
} from './harness/wgts.js';

const ATTACKER = fileURLToPath(new URL('./harness/attacker.mjs', import.meta.url));

/** Victim V between the attacker A and the legitimate peer L, one veth each. */
const OUTER = { va: '192.168.243.1', a: '192.168.243.2', vl: '192.168.244.1', l: '192.168.244.2' };
const INNER = { v: '10.203.0.1', l: '10.203.0.2', p: '10.203.0.3' };
const PORT_V = 12001;
const PORT_L = 12002;

/**
 * Initiation flood: fast enough to keep the victim under load, long enough that the legitimate
 * peer's retry (sent REKEY_TIMEOUT after the cookie reply) still lands inside it.
 */
const INITIATION_RATE = 3_000;
const INITIATION_FLOOD_MS = 10_000;
/** The legitimate peer: a cookie reply to its first initiation, then its retry with mac2. */
const LEGIT_HANDSHAKE_BOUND_MS = 2 * REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS + 2_000;
/** Garbage flood. */
const GARBAGE_RATE = 5_000;
const GARBAGE_FLOOD_MS = 3_000;
const PING_INTERVAL_S = 0.2;
const EVENT_TIMEOUT_MS = 20_000;
/** /proc reports CPU times in USER_HZ ticks, 100 per second on Linux whatever the kernel's HZ. */
const USER_HZ = 100;

afterEach(() => cleanupAll());

interface Scene {
  nsV: string;
  nsA: string;
  nsL: string;
  v: Daemon;
  l: Daemon;
  kv: WgKeypair;
  kl: WgKeypair;
}

/** V (wgts with this crypto) with L as its peer; L knows V's endpoint and initiates. Nothing sent yet. */
async function scene(legit: Impl, victimCrypto: 'auto' | 'noble' = 'auto'): Promise<Scene> {
  buildWgts();
  const nsV = createNamespace();
  const nsA = createNamespace();
  const nsL = createNamespace();
  linkNamespaces(
    { ns: nsV, name: 'veth-a', ipv4: `${OUTER.va}/24` },
    { ns: nsA, name: 'veth-v', ipv4: `${OUTER.a}/24` },
  );
  linkNamespaces(
    { ns: nsV, name: 'veth-l', ipv4: `${OUTER.vl}/24` },
    { ns: nsL, name: 'veth-v', ipv4: `${OUTER.l}/24` },
  );
  const [v, l] = await Promise.all([
    startDaemon(
      nsV,
      'wgts',
      uniqueIface('v'),
      process.env.VICTIM_CRYPTO ? { WGTS_CRYPTO: process.env.VICTIM_CRYPTO } : {},
    ),
    startDaemon(nsL, legit, uniqueIface('l')),
  ]);
  const kv = wgKeypair();
  const kl = wgKeypair();
  await check(nsV, [
    'wg',
    'set',
    v.iface,
    'private-key',
    tempFile(kv.privateKey, 'k'),
    'listen-port',
    String(PORT_V),
    'peer',
    kl.publicKey,
    'allowed-ips',
    `${INNER.l}/32`,
  ]);
  await check(nsL, [
    'wg',
    'set',
    l.iface,
    'private-key',
    tempFile(kl.privateKey, 'k'),
    'listen-port',
    String(PORT_L),
    'peer',
    kv.publicKey,
    'allowed-ips',
    `${INNER.v}/32`,
    'endpoint',
    `${OUTER.vl}:${PORT_V}`,
  ]);
  for (const [ns, d, addr] of [
    [nsV, v, INNER.v],
    [nsL, l, INNER.l],
  ] as const) {
    await check(ns, ['ip', 'address', 'add', `${addr}/24`, 'dev', d.iface]);
    await check(ns, ['ip', 'link', 'set', d.iface, 'up']);
  }
  return { nsV, nsA, nsL, v, l, kv, kl };
}

async function ping(ns: string, address: string, count: number, waitS = 1): Promise<number> {
  const r = await run(
    ns,
    [
      'ping',
      '-n',
      '-c',
      String(count),
      '-i',
      String(PING_INTERVAL_S),
      '-W',
      String(waitS),
      address,
    ],
    { timeoutMs: 60_000 },
  );
  const m = /(\d+) received/.exec(r.stdout);
  return m === null ? 0 : Number(m[1]);
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/PID/stat. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/** Starts the attacker in `ns` with this configuration. */
function attacker(ns: string, config: Record<string, unknown>): TrackedProcess {
  return spawnIn(ns, [process.execPath, ATTACKER, JSON.stringify(config)]);
}

type AttackerEvent = Record<string, unknown> & { event: string };

function events(p: TrackedProcess): AttackerEvent[] {
  return p
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as AttackerEvent);
}

/** Waits (bounded) for the attacker's next report named `name`; rejects with its output if it exits first. */
async function nextEvent(p: TrackedProcess, name: string): Promise<AttackerEvent> {
  return pollUntil(
    `the attacker's '${name}' report`,
    () => {
      const e = events(p).find((x) => x.event === name);
      if (e !== undefined) return e;
      if (!p.running) throw new Error(`the attacker exited: ${p.output().trim()}`);
      return undefined;
    },
    EVENT_TIMEOUT_MS,
    20,
  );
}

/** A dump with the fields an attack must not move: everything but traffic counters. */
function withoutCounters(d: WgDump) {
  return { ...d, peers: d.peers.map((p) => ({ ...p, rxBytes: 0, txBytes: 0 })) };
}

describe('wgts under attack', () => {
  // The pure-TS provider is the slow one (about 1 ms per X25519): the one that must notice the load.
  test.each([
    { crypto: 'auto', legit: 'wireguard-go' },
    { crypto: 'noble', legit: 'wgts' },
  ] as const)(
    'initiations with a valid mac1 from an unknown key get cookie replies (victim crypto $crypto); a legitimate $legit peer still handshakes',
    async ({ crypto, legit }) => {
      const s = await scene(legit, crypto);
      const count = (INITIATION_RATE * INITIATION_FLOOD_MS) / 1000;
      const a = attacker(s.nsA, {
        mode: 'initiations',
        target: { address: OUTER.va, port: PORT_V },
        victimPublicKey: s.kv.publicKey,
        rate: INITIATION_RATE,
        count,
      });
      await nextEvent(a, 'ready');
      const floodStart = performance.now();
      const cpuStart = cpuMs(s.v.proc.pid);
      // The first cookie reply: the victim is under load, so the legitimate peer meets it too.
      await nextEvent(a, 'cookie');
      const t0 = performance.now();
      await pollUntil(
        `a ping from the legitimate ${legit} peer through the flood`,
        async () => (await ping(s.nsL, INNER.v, 1)) === 1,
        LEGIT_HANDSHAKE_BOUND_MS,
        0,
      );
      const handshakeMs = performance.now() - t0;
      const duringFlood = !events(a).some((e) => e.event === 'flood-done');
      expect(await ping(s.nsL, INNER.v, 3)).toBe(3);
      const stats = (await nextEvent(a, 'flood-done')) as AttackerEvent & {
        sent: number;
        floodMs: number;
        cookieReplies: number;
        firstReplyMs: number;
        lastReplyMs: number;
        sample: { initiation: string; reply: string } | null;
      };
      const cpu = (cpuMs(s.v.proc.pid) - cpuStart) / (performance.now() - floodStart);
      const rate =
        (stats.cookieReplies * 1000) / Math.max(1, stats.lastReplyMs - stats.firstReplyMs);
      console.log(
        `initiation flood vs wgts (crypto ${crypto}, legit ${legit}): ${stats.sent} initiations in ${stats.floodMs} ms, ` +
          `${stats.cookieReplies} cookie replies (${Math.round(rate)}/s, first after ${stats.firstReplyMs} ms); ` +
          `legit handshake + ping ${Math.round(handshakeMs)} ms after the first cookie, ` +
          `${Math.round(t0 - floodStart)} ms into the flood; the victim used ${Math.round(cpu * 100)} % of a core`,
      );

      // The legitimate peer finished while the flood still ran, on its retry with the cookie:
      // its first initiation, sent under load without mac2, could not have been accepted.
      expect(duringFlood).toBe(true);
      expect(handshakeMs).toBeGreaterThanOrEqual(REKEY_TIMEOUT_MS - 1_000);
      expect(stats.sent).toBe(count);
      // Cookie replies for most of the flood: all but what arrived before the victim noticed.
      expect(stats.cookieReplies).toBeGreaterThan(stats.sent / 2);
      // They are genuine: the cookie opens under the victim's key with the initiation's mac1 as AD.
      expect(stats.sample).not.toBeNull();
      const gen = new CookieGenerator(nobleCrypto, keyFromBase64(s.kv.publicKey));
      gen.addMacs(Uint8Array.from(Buffer.from(stats.sample!.initiation, 'hex')), 0);
      expect(gen.consumeReply(Uint8Array.from(Buffer.from(stats.sample!.reply, 'hex')), 0)).toBe(
        true,
      );
      // The forged key never became a peer; the daemon is fine.
      expect(s.v.proc.running).toBe(true);
      const dump = await wgDump(s.nsV, s.v.iface);
      expect(dump.peers.map((p) => p.publicKey)).toEqual([s.kl.publicKey]);
      expect(dump.peers[0]!.latestHandshake).toBeGreaterThan(0);
      expect(dump.peers[0]!.endpoint).toBe(`${OUTER.l}:${PORT_L}`);
    },
  );

  test('garbage and mangled real messages change nothing', async () => {
    const s = await scene('wireguard-go');
    // P: a peer the victim knows, whose key the attacker holds, so the flood can mangle real
    // messages of a live session (valid receiver indices, real counters, a real initiation).
    const kp = wgKeypair();
    await check(s.nsV, [
      'wg',
      'set',
      s.v.iface,
      'peer',
      kp.publicKey,
      'allowed-ips',
      `${INNER.p}/32`,
    ]);
    expect(await ping(s.nsL, INNER.v, 3)).toBe(3);
    const count = (GARBAGE_RATE * GARBAGE_FLOOD_MS) / 1000;
    const a = attacker(s.nsA, {
      mode: 'garbage',
      target: { address: OUTER.va, port: PORT_V },
      victimPublicKey: s.kv.publicKey,
      rate: GARBAGE_RATE,
      count,
      peerPrivateKey: kp.privateKey,
      peerInner: INNER.p,
      victimInner: INNER.v,
    });
    const ready = await nextEvent(a, 'ready');
    const before = await wgDump(s.nsV, s.v.iface);
    expect(before.peers.map((p) => p.publicKey)).toEqual([s.kl.publicKey, kp.publicKey]);
    expect(before.peers[1]!.endpoint).toMatch(
      new RegExp(`^${OUTER.a.replaceAll('.', '\\.')}:\\d+$`),
    );

    a.kill('SIGUSR2');
    const pings = Math.round(GARBAGE_FLOOD_MS / 1000 / PING_INTERVAL_S);
    const [received, done] = await Promise.all([
      ping(s.nsL, INNER.v, pings),
      nextEvent(a, 'flood-done'),
    ]);
    const after = await wgDump(s.nsV, s.v.iface);
    console.log(
      `garbage flood vs wgts: ${String(done.sent)} datagrams in ${String(done.floodMs)} ms ` +
        `(${String(ready.realMessages)} real messages mangled), ${received}/${pings} pings through it, ` +
        `${String(done.repliesDuringFlood)} datagrams back to the attacker`,
    );
    expect(done.sent).toBe(count);
    expect(received).toBe(pings);
    expect(s.v.proc.running).toBe(true);
    // Nothing but L's traffic counters moved: no endpoint taken over, no handshake, no key change,
    // and nothing the flood sent was accepted as P's (its counters are exactly as before).
    expect(withoutCounters(after)).toEqual(withoutCounters(before));
    expect(after.peers[1]).toEqual(before.peers[1]);
    expect(after.peers[0]!.rxBytes).toBeGreaterThan(before.peers[0]!.rxBytes);

    a.kill('SIGUSR2');
    const post = await nextEvent(a, 'post-check');
    expect(post.ok, a.output()).toBe(true);
    expect(await ping(s.nsL, INNER.v, 3)).toBe(3);
    await a.exited;
  });
});
