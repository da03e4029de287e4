/**
 * Tunnel benchmark (issue 4): wgts against wireguard-go through real TUN devices in two network
 * namespaces joined by a veth (MTU 1500, tunnel MTU 1420). iperf3 TCP with one and four streams,
 * a ping series, CPU seconds per GB of each daemon, the raw veth as the ceiling, and RSS idle and
 * with 1,000 peers. Configurations alternate within each round; each figure is the median of rounds.
 *
 * Run as root: pnpm --filter @wiremesh/bench exec node --import tsx tunnel/run.ts [--quick]
 * Flags: --quick (1 round, 2 s runs), --rounds N, --seconds S, --json FILE (results as JSON).
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

import { check, cleanupAll } from '../../test/harness/netns.js';
import { tempFile } from '../../test/harness/wgts.js';
import {
  cpuSeconds,
  createPair,
  createStage,
  figure,
  iperf,
  median,
  oneLine,
  OUTER,
  pingSeries,
  rssMiB,
  startDaemon,
  TUNNEL_MTU,
  VETH_MTU,
  wgtsCryptoLine,
  type DaemonSpec,
  type Figure,
  type Pair,
  type Stage,
} from './lib.js';
import {
  alignedTable,
  FigureTable,
  fmt,
  Notes,
  peersConfig,
  preflight,
  toolVersion,
  wgtsBuildNote,
} from './table.js';

const FULL = { rounds: 3, seconds: 5 };
const QUICK = { rounds: 1, seconds: 2 };
const WARMUP_SECONDS = 1;
const PING_COUNT = 50;
const PING_INTERVAL_S = 0.01;
const STREAMS = [1, 4] as const;
const MEMORY_PEERS = 1000;
/** Let a freshly started or reconfigured daemon settle before its RSS is read. */
const RSS_SETTLE_MS = 1000;
const MEMORY_LISTEN_PORT = 21_000;
const BYTES_PER_GB = 1e9;
const BITS_PER_MBIT = 1e6;
/** Issue 4's targets, as ratios wgts / wireguard-go. */
const TARGET_THROUGHPUT_RATIO = 1.0;
const TARGET_PING_RATIO = 1.2;

/** Issue 14's target: wgts with TUN offloads over wgts without them (today's data path), one run. */
const TARGET_OFFLOAD_RATIO = 2.0;

type ColumnKey = 'veth' | 'wgts' | 'wgts-no-tun-offload' | 'wireguard-go' | 'wgts-noble';
interface Column {
  key: ColumnKey;
  label: string;
  /** Absent for the raw veth. */
  spec?: DaemonSpec;
}
const COLUMNS: Column[] = [
  { key: 'veth', label: 'veth (ceiling)' },
  { key: 'wgts', label: 'wgts', spec: { impl: 'wgts' } },
  {
    key: 'wgts-no-tun-offload',
    label: 'wgts TUN offloads off',
    spec: { impl: 'wgts', env: { WGTS_OFFLOAD: 'udp' } },
  },
  { key: 'wireguard-go', label: 'wireguard-go', spec: { impl: 'wireguard-go' } },
  { key: 'wgts-noble', label: 'wgts noble', spec: { impl: 'wgts', env: { WGTS_CRYPTO: 'noble' } } },
];
const TUNNELS = COLUMNS.filter((c) => c.spec !== undefined);
/** Offloads change the data path only: memory is measured for the others. */
const MEMORY_TUNNELS = TUNNELS.filter((c) => c.key !== 'wgts-no-tun-offload');

type RowKey =
  | 'tcp1'
  | 'tcp4'
  | 'ping'
  | 'cpuSend1'
  | 'cpuRecv1'
  | 'cpuSend4'
  | 'cpuRecv4'
  | 'rssIdle'
  | 'rssPeers'
  | 'setconf';
/** The rows one round of a configuration fills. */
const THROUGHPUT_ROW_KEYS: RowKey[] = [
  'tcp1',
  'tcp4',
  'ping',
  'cpuSend1',
  'cpuRecv1',
  'cpuSend4',
  'cpuRecv4',
];
interface Row {
  key: RowKey;
  label: string;
  decimals: number;
  /** Measured for the raw veth too. */
  veth: boolean;
}
const ROWS: Row[] = [
  { key: 'tcp1', label: 'TCP 1 stream, Mbit/s', decimals: 0, veth: true },
  { key: 'tcp4', label: 'TCP 4 streams, Mbit/s', decimals: 0, veth: true },
  { key: 'ping', label: 'ping RTT median, ms', decimals: 3, veth: true },
  { key: 'cpuSend1', label: 'CPU s/GB sender, 1 stream', decimals: 2, veth: false },
  { key: 'cpuRecv1', label: 'CPU s/GB receiver, 1 stream', decimals: 2, veth: false },
  { key: 'cpuSend4', label: 'CPU s/GB sender, 4 streams', decimals: 2, veth: false },
  { key: 'cpuRecv4', label: 'CPU s/GB receiver, 4 streams', decimals: 2, veth: false },
  { key: 'rssIdle', label: 'RSS idle, MiB', decimals: 1, veth: false },
  {
    key: 'rssPeers',
    label: `RSS ${MEMORY_PEERS.toLocaleString('en')} peers, MiB`,
    decimals: 1,
    veth: false,
  },
  {
    key: 'setconf',
    label: `wg setconf ${MEMORY_PEERS.toLocaleString('en')} peers, ms`,
    decimals: 0,
    veth: false,
  },
];

const USAGE =
  'usage: tunnel/run.ts [--quick] [--rounds N] [--seconds S] [--json FILE]   (as root)\n';

interface Options {
  rounds: number;
  seconds: number;
  quick: boolean;
  json?: string;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { ...FULL, quick: false };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${flag} needs a positive integer`);
    return n;
  };
  const rest = [...argv];
  let rounds: number | undefined;
  let seconds: number | undefined;
  while (rest.length > 0) {
    const a = rest.shift()!;
    if (a === '--quick') o.quick = true;
    else if (a === '--rounds') rounds = num(a, rest.shift());
    else if (a === '--seconds') seconds = num(a, rest.shift());
    else if (a === '--json') o.json = rest.shift();
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new RangeError(`unknown argument ${a}`);
  }
  if (o.quick) Object.assign(o, QUICK);
  if (rounds !== undefined) o.rounds = rounds;
  if (seconds !== undefined) o.seconds = seconds;
  return o;
}

/** One Figure per round for each row and column (one in all for the memory rows). */
const table = new FigureTable<RowKey, ColumnKey>();
const record = table.record.bind(table);
const cell = table.cell.bind(table);
const ratio = table.ratio.bind(table);

const progress = (line: string): void => void process.stderr.write(`[bench/tunnel] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One round of a configuration: iperf3 with 1 and 4 streams (charging the CPU both daemons used to
 * the bytes moved; none for the raw veth, pair undefined), then the ping series. Never throws.
 */
async function measureThroughput(
  stage: Stage,
  pair: Pair | undefined,
  seconds: number,
  put: (row: RowKey, f: Figure) => void,
): Promise<void> {
  const server = pair?.innerB ?? OUTER.b;
  const dead = pair && [pair.a, pair.b].find((d) => !d.proc.running);
  if (dead !== undefined) {
    const na = { na: `${dead.iface} has exited: ${oneLine(dead.proc.output()) || 'no output'}` };
    for (const row of THROUGHPUT_ROW_KEYS) put(row, na);
    return;
  }
  for (const streams of STREAMS) {
    const tcpRow: RowKey = streams === 1 ? 'tcp1' : 'tcp4';
    const sendRow: RowKey = streams === 1 ? 'cpuSend1' : 'cpuSend4';
    const recvRow: RowKey = streams === 1 ? 'cpuRecv1' : 'cpuRecv4';
    let cpu: Figure[] = [];
    const tcp = await figure(async () => {
      const before = pair && [cpuSeconds(pair.a.proc.pid), cpuSeconds(pair.b.proc.pid)];
      const r = await iperf(stage.nsA, server, seconds, streams);
      if (pair && before) {
        const gb = r.bytes / BYTES_PER_GB;
        cpu = [pair.a, pair.b].map((d, i) =>
          d.proc.running
            ? { value: (cpuSeconds(d.proc.pid) - before[i]!) / gb }
            : { na: `${d.iface} exited during the run: ${d.proc.output().trim().slice(-120)}` },
        );
      }
      return { value: r.bitsPerSecond / BITS_PER_MBIT };
    });
    put(tcpRow, tcp);
    if (pair) {
      const why = 'na' in tcp ? { na: tcp.na } : undefined;
      put(sendRow, why ?? cpu[0] ?? { na: 'no CPU reading' });
      put(recvRow, why ?? cpu[1] ?? { na: 'no CPU reading' });
    }
  }
  put(
    'ping',
    await figure(async () => ({
      value: (await pingSeries(stage.nsA, server, PING_COUNT, PING_INTERVAL_S)).medianMs,
    })),
  );
}

/** 1,000 peers with fresh keys, /32 allowed IPs and an endpoint each, as `wg setconf` text. */
function memoryConfig(port: number): Promise<string> {
  return peersConfig({
    peers: MEMORY_PEERS,
    listenPort: port,
    allowedIp: (i) => `10.211.${i >> 8}.${i & 0xff}`,
    endpoint: (i) => `${OUTER.b}:${port + 1 + (i % 1000)}`,
  });
}

async function measureMemory(stage: Stage, col: Column, configPath: string): Promise<void> {
  const spec = col.spec!;
  let daemon;
  try {
    daemon = await startDaemon(stage.nsA, spec, 'm');
    await check(stage.nsA, ['ip', 'link', 'set', daemon.iface, 'mtu', String(TUNNEL_MTU), 'up']);
  } catch (err) {
    const na = { na: `could not start: ${err instanceof Error ? err.message : String(err)}` };
    for (const row of ['rssIdle', 'setconf', 'rssPeers'] as const) record(row, col.key, na);
    return;
  }
  const pid = daemon.proc.pid;
  await sleep(RSS_SETTLE_MS);
  record('rssIdle', col.key, await figure(async () => ({ value: rssMiB(pid) })));
  const set = await figure(async () => {
    const t0 = performance.now();
    await check(stage.nsA, ['wg', 'setconf', daemon.iface, configPath], { timeoutMs: 60_000 });
    return { value: performance.now() - t0 };
  });
  record('setconf', col.key, set);
  if ('na' in set) record('rssPeers', col.key, { na: `wg setconf failed: ${set.na}` });
  else {
    await sleep(RSS_SETTLE_MS);
    record('rssPeers', col.key, await figure(async () => ({ value: rssMiB(pid) })));
  }
  await daemon.stop();
}

// ---- the table ----

function render(o: Options, header: string[]): string {
  const notes = new Notes();
  const note = (reason: string): string => notes.mark(reason);
  const heads = [
    'figure (median)',
    'veth (ceiling)',
    'wgts',
    'wgts/veth',
    'TUN offl. off',
    'wgts/off',
    'wireguard-go',
    'wgts/wg-go',
    'wgts noble',
    'noble/wg-go',
  ];
  const body: string[][] = [];
  for (const row of ROWS) {
    const show = (col: Column): string => {
      if (col.key === 'veth' && !row.veth) return '-';
      if (!MEMORY_TUNNELS.includes(col) && !THROUGHPUT_ROW_KEYS.includes(row.key)) return '-';
      const c = cell(row.key, col.key);
      if (c === undefined) return `n/a ${note(`${col.label}: ${row.label} was not measured`)}`;
      if (c.median === undefined) return `n/a ${note(`${col.label}, ${row.label}: ${c.na}`)}`;
      const v = fmt(c.median, row.decimals);
      return c.na === undefined ? v : `${v} ${note(`${col.label}, ${row.label}: ${c.na}`)}`;
    };
    const r = (num: ColumnKey, den: ColumnKey = 'wireguard-go'): string => {
      if (den === 'veth' && !row.veth) return '-';
      if (den === 'wgts-no-tun-offload' && !THROUGHPUT_ROW_KEYS.includes(row.key)) return '-';
      const x = ratio(row.key, num, den);
      return x === undefined ? 'n/a' : `${x.toFixed(2)}x`;
    };
    const col = (key: ColumnKey): Column => COLUMNS.find((c) => c.key === key)!;
    body.push([
      row.label,
      show(col('veth')),
      show(col('wgts')),
      r('wgts', 'veth'),
      show(col('wgts-no-tun-offload')),
      r('wgts', 'wgts-no-tun-offload'),
      show(col('wireguard-go')),
      r('wgts'),
      show(col('wgts-noble')),
      r('wgts-noble'),
    ]);
  }
  const out = [...header, '', ...alignedTable(heads, body), ''];
  const verdict = (key: RowKey, label: string, target: number, atMost: boolean): string => {
    const x = ratio(key, 'wgts', 'wireguard-go');
    if (x === undefined) return `${label}: n/a`;
    const met = atMost ? x <= target : x >= target;
    return `${label} ${x.toFixed(2)}x (target ${atMost ? '<=' : '>='} ${target.toFixed(1)}x): ${met ? 'met' : 'not met'}`;
  };
  out.push(
    `Issue 4 targets, wgts/wireguard-go: ${[
      verdict('tcp1', '1 stream', TARGET_THROUGHPUT_RATIO, false),
      verdict('tcp4', '4 streams', TARGET_THROUGHPUT_RATIO, false),
      verdict('ping', 'ping', TARGET_PING_RATIO, true),
    ].join('; ')}`,
  );
  const offloadVerdict = (key: RowKey, label: string): string => {
    const x = ratio(key, 'wgts', 'wgts-no-tun-offload');
    if (x === undefined) return `${label}: n/a`;
    return `${label} ${x.toFixed(2)}x (target >= ${TARGET_OFFLOAD_RATIO.toFixed(1)}x): ${x >= TARGET_OFFLOAD_RATIO ? 'met' : 'not met'}`;
  };
  const veth = ratio('tcp1', 'wgts', 'veth');
  out.push(
    `Issue 14 targets, wgts/wgts TUN offloads off: ${[offloadVerdict('tcp1', '1 stream'), offloadVerdict('tcp4', '4 streams')].join('; ')}; 1 stream at ${veth === undefined ? 'n/a' : `${(veth * 100).toFixed(1)} %`} of the veth ceiling`,
  );
  if (o.rounds > 1) {
    out.push('', 'Per round (configurations alternate in order within each round):');
    for (const row of ROWS.slice(0, 3)) {
      const parts = COLUMNS.map((col) => {
        const c = cell(row.key, col.key);
        const vals = c?.samples.map((v) => (v === null ? 'n/a' : fmt(v, row.decimals))) ?? [];
        return `${col.key} ${vals.join(' ')}`;
      });
      out.push(`  ${row.label}: ${parts.join(' | ')}`);
    }
  }
  out.push(...notes.lines());
  return `${out.join('\n')}\n`;
}

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const refused = preflight('bench/tunnel', ['ip', 'wg', 'iperf3', 'ping', 'setpriv', 'ss']);
  if (refused !== undefined) return refused;
  const started = performance.now();
  const load0 = loadavg()[0]!;
  const buildNote = wgtsBuildNote(progress);

  const stage = await createStage();
  const pairs = new Map<ColumnKey, Pair>();
  const pairErrors = new Map<ColumnKey, string>();
  for (const [i, col] of TUNNELS.entries()) {
    progress(`starting ${col.label} <-> ${col.label}`);
    try {
      pairs.set(col.key, await createPair(stage, col.spec!, i));
    } catch (err) {
      pairErrors.set(
        col.key,
        `could not set up: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  // One throwaway run each so V8 has compiled wgts's hot path before anything is timed.
  for (const [key, pair] of pairs) {
    progress(`warm-up ${key}`);
    await figure(async () => {
      await iperf(stage.nsA, pair.innerB, WARMUP_SECONDS, 1);
      return { value: 0 };
    });
  }

  for (let round = 0; round < o.rounds; round++) {
    // A/B alternation: odd rounds run the configurations in reverse order.
    const order = round % 2 === 0 ? COLUMNS : [...COLUMNS].reverse();
    for (const col of order) {
      progress(`round ${round + 1}/${o.rounds}: ${col.label}`);
      const failed = pairErrors.get(col.key);
      if (failed !== undefined) {
        for (const row of THROUGHPUT_ROW_KEYS) record(row, col.key, { na: failed });
        continue;
      }
      await measureThroughput(stage, pairs.get(col.key), o.seconds, (row, f) =>
        record(row, col.key, f),
      );
    }
  }
  for (const pair of pairs.values()) await Promise.all([pair.a.stop(), pair.b.stop()]);

  progress(`memory: idle, then ${MEMORY_PEERS} peers`);
  let configPath: string | undefined;
  try {
    configPath = tempFile(await memoryConfig(MEMORY_LISTEN_PORT), 'peers.conf');
  } catch (err) {
    const na = { na: `no peer config: ${err instanceof Error ? err.message : String(err)}` };
    for (const col of MEMORY_TUNNELS)
      for (const row of ['setconf', 'rssPeers'] as const) record(row, col.key, na);
  }
  for (const col of MEMORY_TUNNELS) {
    if (configPath !== undefined) await measureMemory(stage, col, configPath);
    else {
      const d = await figure(async () => {
        const daemon = await startDaemon(stage.nsA, col.spec!, 'm');
        await sleep(RSS_SETTLE_MS);
        const v = rssMiB(daemon.proc.pid);
        await daemon.stop();
        return { value: v };
      });
      record('rssIdle', col.key, d);
    }
  }

  const elapsed = (performance.now() - started) / 1000;
  const header = [
    `bench/tunnel${o.quick ? ' --quick' : ''}: ${o.rounds} round${o.rounds === 1 ? '' : 's'}, iperf3 TCP IPv4 ${o.seconds} s (1 and 4 streams), ${PING_COUNT} pings at ${PING_INTERVAL_S * 1000} ms; veth MTU ${VETH_MTU}, tunnel MTU ${TUNNEL_MTU}; A sends to B`,
    `node ${process.version}; ${toolVersion(['wireguard-go', '--version'])}; ${toolVersion(['iperf3', '--version'])}; wgts crypto (auto): ${wgtsCryptoLine()}; wgts noble: WGTS_CRYPTO=noble on both ends; TUN offloads off: WGTS_OFFLOAD=udp on both ends (one packet per TUN read/write, UDP GSO/GRO kept)`,
    `${cpus().length} CPUs, load average ${load0.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end; ${elapsed.toFixed(0)} s; CPU s/GB = daemon utime+stime / GB of iperf3 payload received`,
    ...(buildNote === undefined ? [] : [`NOTE: ${buildNote}`]),
  ];
  const table = render(o, header);
  process.stdout.write(table);
  if (o.json !== undefined) {
    const rows = ROWS.map((row) => ({
      key: row.key,
      label: row.label,
      cells: Object.fromEntries(COLUMNS.map((col) => [col.key, cell(row.key, col.key) ?? null])),
      wgtsOverWireguardGo: ratio(row.key, 'wgts', 'wireguard-go') ?? null,
      wgtsOverTunOffloadsOff: ratio(row.key, 'wgts', 'wgts-no-tun-offload') ?? null,
      wgtsOverVeth: row.veth ? (ratio(row.key, 'wgts', 'veth') ?? null) : null,
      nobleOverWireguardGo: ratio(row.key, 'wgts-noble', 'wireguard-go') ?? null,
    }));
    writeFileSync(o.json, `${JSON.stringify({ header, options: o, rows, table }, null, 2)}\n`);
  }
  return 0;
}

main()
  .then(
    (status) => {
      process.exitCode = status;
    },
    (err: unknown) => {
      process.stderr.write(
        `bench/tunnel could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  )
  .finally(() => cleanupAll());
