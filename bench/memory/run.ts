/**
 * Memory benchmark (issue 14): the resident set of wgts idle and with 1,000 peers configured over
 * UAPI (`wg setconf`), beside wireguard-go's and a bare `node` process's (the runtime's floor) in
 * the same run. Each daemon runs alone in a network namespace of its own making; figures are medians
 * over rounds, configurations alternating in order.
 *
 * Run as root: pnpm --filter @wiremesh/bench exec node --import tsx memory/run.ts [--rounds N]
 * Flags: --rounds N (default 2), --peers N (default 1000), --settle S (seconds idle before each
 * reading, default 10), --json FILE (results as JSON).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

import {
  check,
  cleanupAll,
  createNamespace,
  pollUntil,
  spawnIn,
  stopProcess,
} from '../../test/harness/netns.js';
import { tempFile } from '../../test/harness/wgts.js';
import {
  figure,
  median,
  NS_TAG,
  oneLine,
  startDaemon,
  TUNNEL_MTU,
  wgtsCryptoLine,
  type DaemonSpec,
  type Figure,
} from '../tunnel/lib.js';
import {
  alignedTable,
  FigureTable,
  fmt,
  Notes,
  peersConfig,
  preflight,
  wgtsBuildNote,
  toolVersion,
  type Cell,
} from '../tunnel/table.js';

const DEFAULT_ROUNDS = 2;
const DEFAULT_PEERS = 1000;
/**
 * A freshly started or reconfigured daemon settles before its RSS is read: V8's memory reducer
 * returns the pages of a configuration's garbage some seconds after the heap goes quiet (and Go's
 * scavenger does likewise), so an idle daemon is read after it has been idle a while.
 */
const DEFAULT_SETTLE_S = 10;
/** RSS is read this many times SAMPLE_GAP_MS apart after settling; the median is kept. */
const SAMPLES = 5;
const SAMPLE_GAP_MS = 100;
const LISTEN_PORT = 21_000;
const SETCONF_TIMEOUT_MS = 120_000;
const KIB_PER_MIB = 1024;
/** Issue 14's targets. */
const TARGET_IDLE_MIB = 45;
const TARGET_PEERS_DELTA_MIB = 8;

type ColumnKey = 'node' | 'wgts' | 'wgts-noble' | 'wireguard-go';
interface Column {
  key: ColumnKey;
  label: string;
  /** Absent for the bare node process, which takes no configuration. */
  spec?: DaemonSpec;
}
const COLUMNS: Column[] = [
  { key: 'node', label: 'bare node' },
  { key: 'wgts', label: 'wgts', spec: { impl: 'wgts' } },
  { key: 'wgts-noble', label: 'wgts noble', spec: { impl: 'wgts', env: { WGTS_CRYPTO: 'noble' } } },
  { key: 'wireguard-go', label: 'wireguard-go', spec: { impl: 'wireguard-go' } },
];

type RowKey = 'idle' | 'idleAnon' | 'peers' | 'peersAnon' | 'delta' | 'perPeer' | 'setconf';
interface Row {
  key: RowKey;
  label: (peers: number) => string;
  decimals: number;
}
const ROWS: Row[] = [
  { key: 'idle', label: () => 'RSS idle, MiB', decimals: 1 },
  { key: 'idleAnon', label: () => '  of it anonymous, MiB', decimals: 1 },
  { key: 'peers', label: (n) => `RSS ${n.toLocaleString('en')} peers, MiB`, decimals: 1 },
  { key: 'peersAnon', label: () => '  of it anonymous, MiB', decimals: 1 },
  { key: 'delta', label: (n) => `+${n.toLocaleString('en')} peers, MiB`, decimals: 1 },
  { key: 'perPeer', label: () => 'per peer, KiB', decimals: 2 },
  { key: 'setconf', label: (n) => `wg setconf ${n.toLocaleString('en')} peers, ms`, decimals: 0 },
];

const USAGE =
  'usage: memory/run.ts [--rounds N] [--peers N] [--settle S] [--json FILE]   (as root)\n';

interface Options {
  rounds: number;
  peers: number;
  settleMs: number;
  json?: string;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    rounds: DEFAULT_ROUNDS,
    peers: DEFAULT_PEERS,
    settleMs: DEFAULT_SETTLE_S * 1000,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    const count = (): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer`);
      i++;
      return n;
    };
    if (flag === '--rounds') o.rounds = count();
    else if (flag === '--peers') o.peers = count();
    else if (flag === '--settle') o.settleMs = count() * 1000;
    else if (flag === '--json') {
      if (value === undefined) throw new Error('--json needs a file name');
      o.json = value;
      i++;
    } else throw new Error(`unknown argument ${flag}`);
  }
  return o;
}

const table = new FigureTable<RowKey, ColumnKey>();
const record = table.record.bind(table);
const cell = table.cell.bind(table);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function progress(text: string): void {
  process.stderr.write(`bench/memory: ${text}\n`);
}

/** VmRSS and RssAnon of /proc/PID/status in KiB. Throws if the process is gone. */
function residentKiB(pid: number): { rss: number; anon: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (m === null) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}

/** After settleMs, the median of SAMPLES readings (a GC or a timer may be running at any one). */
async function settledKiB(pid: number, settleMs: number): Promise<{ rss: number; anon: number }> {
  await sleep(settleMs);
  const rss: number[] = [];
  const anon: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const r = residentKiB(pid);
    rss.push(r.rss);
    anon.push(r.anon);
    await sleep(SAMPLE_GAP_MS);
  }
  return { rss: median(rss), anon: median(anon) };
}

/** `peers` peers with fresh keys, a /32 allowed IP and an endpoint each, as `wg setconf` text. */
function memoryConfig(peers: number): Promise<string> {
  return peersConfig({
    peers,
    listenPort: LISTEN_PORT,
    allowedIp: (i) => `10.${212 + (i >> 16)}.${(i >> 8) & 0xff}.${i & 0xff}`,
    // Documentation addresses (RFC 5737): nothing is sent, no handshake is ever due.
    endpoint: (i) => `192.0.2.${1 + (i % 254)}:${LISTEN_PORT + 1 + (i % 1000)}`,
  });
}

/** One namespace per measurement, so no daemon's interface or socket meets another's. */
async function measureDaemon(
  col: Column,
  configPath: string,
  peers: number,
  settleMs: number,
): Promise<void> {
  const ns = createNamespace(NS_TAG);
  let daemon;
  try {
    daemon = await startDaemon(ns, col.spec!, 'm');
    await check(ns, ['ip', 'link', 'set', daemon.iface, 'mtu', String(TUNNEL_MTU), 'up']);
  } catch (err) {
    const na = {
      na: `could not start: ${oneLine(err instanceof Error ? err.message : String(err))}`,
    };
    for (const row of ROWS) record(row.key, col.key, na);
    return;
  }
  const pid = daemon.proc.pid;
  let idle: { rss: number; anon: number } | undefined;
  const idleF = await figure(async () => {
    idle = await settledKiB(pid, settleMs);
    return { value: idle.rss / KIB_PER_MIB };
  });
  record('idle', col.key, idleF);
  record('idleAnon', col.key, idle ? { value: idle.anon / KIB_PER_MIB } : idleF);
  const set = await figure(async () => {
    const t0 = performance.now();
    await check(ns, ['wg', 'setconf', daemon.iface, configPath], { timeoutMs: SETCONF_TIMEOUT_MS });
    return { value: performance.now() - t0 };
  });
  record('setconf', col.key, set);
  let after: { rss: number; anon: number } | undefined;
  const afterF =
    'na' in set
      ? { na: `wg setconf failed: ${set.na}` }
      : await figure(async () => {
          // Every peer must be in before the reading counts.
          const dump = await check(ns, ['wg', 'show', daemon.iface, 'peers']);
          const n = dump.split('\n').filter((l) => l.trim() !== '').length;
          if (n !== peers) throw new Error(`${n} of ${peers} peers configured`);
          after = await settledKiB(pid, settleMs);
          return { value: after.rss / KIB_PER_MIB };
        });
  record('peers', col.key, afterF);
  record('peersAnon', col.key, after ? { value: after.anon / KIB_PER_MIB } : afterF);
  if (idle && after) {
    record('delta', col.key, { value: (after.rss - idle.rss) / KIB_PER_MIB });
    record('perPeer', col.key, { value: (after.rss - idle.rss) / peers });
  } else {
    const na = 'na' in afterF ? afterF : 'na' in idleF ? idleF : { na: 'not measured' };
    record('delta', col.key, na);
    record('perPeer', col.key, na);
  }
  await daemon.stop();
}

/** The floor: a node process of the same binary doing nothing. */
async function measureNode(settleMs: number): Promise<void> {
  const f = await figure(async () => {
    const proc = spawnIn(null, [process.execPath, '-e', 'setInterval(() => {}, 1 << 30)']);
    try {
      await pollUntil('node to start', () => proc.running || undefined, 5_000);
      const r = await settledKiB(proc.pid, settleMs);
      record('idleAnon', 'node', { value: r.anon / KIB_PER_MIB });
      return { value: r.rss / KIB_PER_MIB };
    } finally {
      await stopProcess(proc, 'SIGTERM', 2_000);
    }
  });
  record('idle', 'node', f);
}

function render(o: Options, header: string[]): string {
  const notes = new Notes();
  const note = (reason: string): string => notes.mark(reason);
  const ratio = (row: RowKey, num: ColumnKey, den: ColumnKey): string => {
    const x = table.ratio(row, num, den);
    return x === undefined ? 'n/a' : `${x.toFixed(2)}x`;
  };
  const heads = ['figure (median)', ...COLUMNS.map((c) => c.label), 'wgts/wg-go', 'wgts-node'];
  const body = ROWS.map((row) => {
    const shown = COLUMNS.map((col) => {
      if (col.key === 'node' && row.key !== 'idle' && row.key !== 'idleAnon') return '-';
      const c = cell(row.key, col.key);
      if (c === undefined)
        return `n/a ${note(`${col.label}, ${row.label(o.peers)}: not measured`)}`;
      if (c.median === undefined) return `n/a ${note(`${col.label}: ${c.na}`)}`;
      const v = fmt(c.median, row.decimals);
      return c.na === undefined ? v : `${v} ${note(`${col.label}: ${c.na}`)}`;
    });
    const w = cell(row.key, 'wgts')?.median;
    const n = cell(row.key, 'node')?.median;
    const overNode =
      (row.key === 'idle' || row.key === 'idleAnon') && w !== undefined && n !== undefined
        ? `+${fmt(w - n, 1)}`
        : '-';
    return [row.label(o.peers), ...shown, ratio(row.key, 'wgts', 'wireguard-go'), overNode];
  });
  const out = [...header, '', ...alignedTable(heads, body), ''];
  const idle = cell('idle', 'wgts')?.median;
  const delta = cell('delta', 'wgts')?.median;
  const scaled = delta === undefined ? undefined : (delta * DEFAULT_PEERS) / o.peers;
  out.push(
    `Issue 14 targets (wgts): idle ${idle === undefined ? 'n/a' : `${fmt(idle, 1)} MiB`} (target <= ${TARGET_IDLE_MIB} MiB): ${idle === undefined ? 'n/a' : idle <= TARGET_IDLE_MIB ? 'met' : 'not met'}; +1,000 peers ${scaled === undefined ? 'n/a' : `${fmt(scaled, 1)} MiB`} (target <= ${TARGET_PEERS_DELTA_MIB} MiB): ${scaled === undefined ? 'n/a' : scaled <= TARGET_PEERS_DELTA_MIB ? 'met' : 'not met'}`,
  );
  if (o.rounds > 1) {
    out.push('', 'Per round (configurations alternate in order within each round):');
    for (const row of ROWS.filter((r) => r.key === 'idle' || r.key === 'peers')) {
      const parts = COLUMNS.map((col) => {
        const vals = cell(row.key, col.key)?.samples ?? [];
        return `${col.key} ${vals.map((v) => (v === null ? 'n/a' : fmt(v, 1))).join(' ')}`;
      });
      out.push(`  ${row.label(o.peers)}: ${parts.join(' | ')}`);
    }
  }
  out.push(
    '',
    'RSS is VmRSS of /proc/PID/status (anonymous: RssAnon; the rest is file-backed, mostly the',
    'node binary, shared between node processes). wgts-node: what wgts adds over a bare node.',
  );
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
  const refused = preflight('bench/memory', ['ip', 'wg', 'setpriv']);
  if (refused !== undefined) return refused;
  const started = performance.now();
  const load0 = loadavg()[0]!;
  const buildNote = wgtsBuildNote(progress);
  progress(`generating ${o.peers} peers`);
  const configPath = tempFile(await memoryConfig(o.peers), 'peers.conf');
  for (let round = 0; round < o.rounds; round++) {
    const order = round % 2 === 0 ? COLUMNS : [...COLUMNS].reverse();
    for (const col of order) {
      progress(`round ${round + 1}/${o.rounds}: ${col.label}`);
      if (col.spec === undefined) await measureNode(o.settleMs);
      else await measureDaemon(col, configPath, o.peers, o.settleMs);
    }
  }
  const elapsed = (performance.now() - started) / 1000;
  const header = [
    `bench/memory: ${o.rounds} round${o.rounds === 1 ? '' : 's'}; each daemon alone in a fresh namespace, link up (MTU ${TUNNEL_MTU}), then \`wg setconf\` with ${o.peers.toLocaleString('en')} peers (key, /32, endpoint each; no traffic)`,
    `node ${process.version}; ${toolVersion(['wireguard-go', '--version'])}; wgts crypto (auto): ${wgtsCryptoLine()}`,
    `${cpus().length} CPUs, load average ${load0.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end; ${elapsed.toFixed(0)} s; RSS read ${o.settleMs / 1000} s after each step, median of ${SAMPLES} readings`,
    ...(buildNote === undefined ? [] : [`NOTE: ${buildNote}`]),
  ];
  const text = render(o, header);
  process.stdout.write(text);
  if (o.json !== undefined) {
    const json: Record<string, Record<string, Cell | undefined>> = {};
    for (const row of ROWS) {
      json[row.key] = {};
      for (const col of COLUMNS) json[row.key]![col.key] = cell(row.key, col.key);
    }
    writeFileSync(o.json, `${JSON.stringify({ header, figures: json }, null, 2)}\n`);
  }
  return 0;
}

main()
  .then((code) => {
    cleanupAll();
    process.exitCode = code;
  })
  .catch((err: unknown) => {
    cleanupAll();
    process.stderr.write(
      `bench/memory failed: ${err instanceof Error ? err.stack : String(err)}\n`,
    );
    process.exitCode = 1;
  });
