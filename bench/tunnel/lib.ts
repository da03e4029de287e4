// Building blocks of the tunnel benchmark: two namespaces joined by a veth, userspace WireGuard
// daemon pairs across it, and the probes (iperf3, ping, /proc CPU and RSS) that measure them.
// Everything started here is tracked by test/harness/netns.ts and removed on every exit path.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import {
  check,
  createNamespace,
  linkNamespaces,
  onCleanup,
  pollUntil,
  run,
  spawnIn,
  stopProcess,
  type TrackedProcess,
} from '../../test/harness/netns.js';
import {
  buildWgts,
  SOCKET_DIR,
  socketAnswers,
  tempFile,
  uniqueIface,
  WGTS_JS,
  wgKeypair,
  type Impl,
} from '../../test/harness/wgts.js';

/** Namespaces of this bench are `wgbench-<pid>-<hex>`; stale ones of a killed run are removed at the next start. */
export const NS_TAG = 'wgbench';
export const VETH_MTU = 1500;
export const TUNNEL_MTU = 1420;
const VETH_NAME = 'wbveth0';
/** The veth's addresses: the raw (ceiling) figures run between these. */
export const OUTER = { a: '192.168.251.1', b: '192.168.251.2', prefix: 24 } as const;
/** Pair i's tunnel addresses are 10.210.<i+1>.1 and .2. */
const INNER_NET = '10.210';
const INNER_PREFIX = 24;
const LISTEN_PORT_BASE = 20_000;
export const IPERF_PORT = 5201;
const SOCKET_WAIT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const HANDSHAKE_WAIT_MS = 15_000;
/** iperf3 needs time beyond -t for its control exchange; a run past this is hung. */
const IPERF_EXTRA_MS = 20_000;
const IPERF_BUSY_RETRIES = 5;
const IPERF_BUSY_WAIT_MS = 500;
/** A reply slower than this counts as lost in the ping series. */
const PING_WAIT_S = 1;
const PROC_STAT_UTIME_FIELD = 11; // utime is field 14 of /proc/PID/stat; fields after ')' start at 3
const PROC_STAT_STIME_FIELD = 12;

/** A measured number or why there is none. */
export type Figure = { value: number } | { na: string };

/** Runs probe; an exception becomes { na: message } so a figure never fails the bench. */
export async function figure(probe: () => Promise<Figure>): Promise<Figure> {
  try {
    return await probe();
  } catch (err) {
    return { na: oneLine(err instanceof Error ? err.message : String(err)) };
  }
}

/** The first line of a message, at most 160 characters: reasons go into a table footnote. */
export function oneLine(text: string): string {
  const line = text.trim().split('\n')[0] ?? '';
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

/** Median of a non-empty list (mean of the middle two for an even count). Throws RangeError on an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of nothing');
  const s = [...values].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const CLK_TCK = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

function statCpuSeconds(path: string): number {
  const stat = readFileSync(path, 'utf8');
  // The command name may hold spaces or parentheses: the fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[PROC_STAT_UTIME_FIELD]) + Number(fields[PROC_STAT_STIME_FIELD]);
  if (!Number.isFinite(ticks)) throw new Error(`cannot parse ${path}`);
  return ticks / CLK_TCK;
}

/** User + system CPU seconds the process (all its threads) has used. Throws if it is gone. */
export function cpuSeconds(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** CPU seconds per live thread of pid, keyed `comm (tid)`. Throws if the process is gone. */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(`${comm} (${tid})`, statCpuSeconds(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** Resident set size in MiB (VmRSS of /proc/PID/status). Throws if it is gone. */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Two namespaces joined by a veth (MTU 1500) and an iperf3 server in B. */
export interface Stage {
  nsA: string;
  nsB: string;
  iperfServer: TrackedProcess;
}

/** Creates the namespaces, the veth and B's iperf3 server. Throws if any step fails. */
export async function createStage(): Promise<Stage> {
  const nsA = createNamespace(NS_TAG);
  const nsB = createNamespace(NS_TAG);
  linkNamespaces(
    { ns: nsA, name: VETH_NAME, ipv4: `${OUTER.a}/${OUTER.prefix}`, mtu: VETH_MTU },
    { ns: nsB, name: VETH_NAME, ipv4: `${OUTER.b}/${OUTER.prefix}`, mtu: VETH_MTU },
  );
  const iperfServer = spawnIn(nsB, ['iperf3', '-s', '-p', String(IPERF_PORT)]);
  await pollUntil(
    'the iperf3 server to listen',
    async () => {
      if (!iperfServer.running) throw new Error(`iperf3 -s exited: ${iperfServer.output()}`);
      return (await run(nsB, ['ss', '-Hltn', `sport = :${IPERF_PORT}`])).stdout.includes(
        String(IPERF_PORT),
      );
    },
    10_000,
  );
  return { nsA, nsB, iperfServer };
}

/** How to start one daemon: which program, extra environment, extra node flags (wgts only). */
export interface DaemonSpec {
  impl: Impl;
  env?: Record<string, string>;
  /** e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/p']; wgts only. */
  nodeArgs?: string[];
}

/** A daemon started by startDaemon. */
export interface BenchDaemon {
  readonly spec: DaemonSpec;
  readonly ns: string;
  readonly iface: string;
  readonly proc: TrackedProcess;
  /** SIGTERM (SIGKILL after a grace period), then its socket file is removed if left behind. */
  stop(): Promise<void>;
}

let wgtsBuild: string | undefined;

/**
 * Builds wgts once (incremental tsc -b). If the build fails but an older dist exists, that is used
 * and the returned note says so; returns undefined when the build is current. Throws when there is
 * nothing to run.
 */
export function ensureWgts(): string | undefined {
  if (wgtsBuild !== undefined) return wgtsBuild === '' ? undefined : wgtsBuild;
  try {
    buildWgts();
    wgtsBuild = '';
    return undefined;
  } catch (err) {
    if (!existsSync(WGTS_JS)) throw err;
    wgtsBuild = `wg-tun build failed, the existing ${WGTS_JS} was used (may be stale): ${oneLine(
      err instanceof Error ? err.message : String(err),
    )}`;
    return wgtsBuild;
  }
}

/** `wgts --version`'s crypto line (what WGTS_CRYPTO=auto picks here), for the header. */
export function wgtsCryptoLine(): string {
  try {
    const out = execFileSync(process.execPath, [WGTS_JS, '--version'], { encoding: 'utf8' });
    return /^Crypto \(auto\): (.*)$/m.exec(out)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function daemonEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'error', ...extra };
  // A loader from the bench's own command line (tsx) must not ride along into the daemon.
  delete env.NODE_OPTIONS;
  return env;
}

/**
 * Starts `impl -f <unique iface>` in ns and waits until its UAPI socket answers. The process is
 * killed by PID and its socket file removed at cleanup. Rejects with its output if it fails.
 */
export async function startDaemon(ns: string, spec: DaemonSpec, tag: string): Promise<BenchDaemon> {
  const iface = uniqueIface(tag);
  const argv =
    spec.impl === 'wgts'
      ? [process.execPath, ...(spec.nodeArgs ?? []), WGTS_JS, '-f', iface]
      : ['wireguard-go', '-f', iface];
  if (spec.impl === 'wgts') ensureWgts();
  const proc = spawnIn(ns, argv, { env: daemonEnv(spec.env) });
  const socket = join(SOCKET_DIR, `${iface}.sock`);
  const removeSocket = (): void => rmSync(socket, { force: true });
  onCleanup(() => {
    proc.kill('SIGKILL');
    removeSocket();
  });
  try {
    await pollUntil(
      `${spec.impl} ${iface} to answer on its UAPI socket`,
      async () => {
        if (!proc.running) throw new Error(`${spec.impl} exited: ${oneLine(proc.output())}`);
        return socketAnswers(ns, iface);
      },
      SOCKET_WAIT_MS,
    );
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  return {
    spec,
    ns,
    iface,
    proc,
    async stop() {
      await stopProcess(proc, 'SIGTERM', STOP_GRACE_MS);
      removeSocket();
    },
  };
}

/** Two daemons with a tunnel between them: A (iperf3 client side) sends to B's inner address. */
export interface Pair {
  readonly a: BenchDaemon;
  readonly b: BenchDaemon;
  readonly innerB: string;
}

/**
 * Starts spec in both namespaces, keys them to each other (A knows B's endpoint), gives the
 * tunnel interfaces MTU 1420 and pair index `index`'s addresses, and waits for a first reply
 * across it (the handshake). Rejects if any step fails; started daemons are stopped at cleanup.
 */
export async function createPair(stage: Stage, spec: DaemonSpec, index: number): Promise<Pair> {
  const [a, b] = await Promise.all([
    startDaemon(stage.nsA, spec, 'a'),
    startDaemon(stage.nsB, spec, 'b'),
  ]);
  const ka = wgKeypair();
  const kb = wgKeypair();
  const portA = LISTEN_PORT_BASE + 10 * index + 1;
  const portB = LISTEN_PORT_BASE + 10 * index + 2;
  const inner = (host: number): string => `${INNER_NET}.${index + 1}.${host}`;
  await check(stage.nsA, [
    'wg',
    'set',
    a.iface,
    'private-key',
    tempFile(ka.privateKey, 'a.key'),
    'listen-port',
    String(portA),
    'peer',
    kb.publicKey,
    'allowed-ips',
    `${inner(2)}/32`,
    'endpoint',
    `${OUTER.b}:${portB}`,
  ]);
  await check(stage.nsB, [
    'wg',
    'set',
    b.iface,
    'private-key',
    tempFile(kb.privateKey, 'b.key'),
    'listen-port',
    String(portB),
    'peer',
    ka.publicKey,
    'allowed-ips',
    `${inner(1)}/32`,
  ]);
  for (const [d, host] of [
    [a, 1],
    [b, 2],
  ] as const) {
    await check(d.ns, ['ip', 'address', 'add', `${inner(host)}/${INNER_PREFIX}`, 'dev', d.iface]);
    await check(d.ns, ['ip', 'link', 'set', d.iface, 'mtu', String(TUNNEL_MTU), 'up']);
  }
  await pollUntil(
    `a first ping through ${a.iface} -> ${b.iface}`,
    async () =>
      (await run(stage.nsA, ['ping', '-n', '-c', '1', '-W', '1', inner(2)], { timeoutMs: 5_000 }))
        .status === 0,
    HANDSHAKE_WAIT_MS,
    0,
  );
  return { a, b, innerB: inner(2) };
}

/** What one iperf3 run moved. */
export interface IperfResult {
  bitsPerSecond: number;
  /** Payload bytes the receiver counted. */
  bytes: number;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number; bytes?: number } };
}

/**
 * `iperf3 -4 -c server -t seconds -P streams` from ns. Resolves with the receiver's figures;
 * rejects with iperf3's reason (retrying a few times while the server is still busy).
 */
export async function iperf(
  ns: string,
  server: string,
  seconds: number,
  streams: number,
): Promise<IperfResult> {
  for (let attempt = 0; ; attempt++) {
    const r = await run(
      ns,
      [
        'iperf3',
        '-4',
        '-c',
        server,
        '-p',
        String(IPERF_PORT),
        '-t',
        String(seconds),
        '-P',
        String(streams),
        '-J',
      ],
      { timeoutMs: seconds * 1000 + IPERF_EXTRA_MS },
    );
    let j: IperfJson;
    try {
      j = JSON.parse(r.stdout) as IperfJson;
    } catch {
      throw new Error(
        r.status === null
          ? `iperf3 hung past ${seconds} s + ${IPERF_EXTRA_MS / 1000} s and was killed`
          : `iperf3 exited ${r.status}: ${oneLine(r.stderr || r.stdout)}`,
      );
    }
    if (j.error !== undefined) {
      if (/busy/i.test(j.error) && attempt < IPERF_BUSY_RETRIES) {
        await new Promise((res) => setTimeout(res, IPERF_BUSY_WAIT_MS));
        continue;
      }
      throw new Error(`iperf3: ${j.error}`);
    }
    const sum = j.end?.sum_received;
    const bps = sum?.bits_per_second;
    const bytes = sum?.bytes;
    if (typeof bps !== 'number' || typeof bytes !== 'number' || bytes <= 0)
      throw new Error('iperf3 reported no received bytes');
    return { bitsPerSecond: bps, bytes };
  }
}

/** What a ping series saw. */
export interface PingResult {
  medianMs: number;
  sent: number;
  received: number;
}

/** `count` pings from ns to address every intervalS seconds; median RTT of the replies. Rejects if none came back. */
export async function pingSeries(
  ns: string,
  address: string,
  count: number,
  intervalS: number,
): Promise<PingResult> {
  const r = await run(
    ns,
    [
      'ping',
      '-n',
      '-c',
      String(count),
      '-i',
      String(intervalS),
      '-W',
      String(PING_WAIT_S),
      address,
    ],
    { timeoutMs: (count * intervalS + PING_WAIT_S) * 1000 + 10_000 },
  );
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (rtts.length === 0) throw new Error(`no ping replies (${oneLine(r.stderr || r.stdout)})`);
  return { medianMs: median(rtts), sent: count, received: rtts.length };
}
