// Network namespaces, veth links and processes for system tests, after the kernel's
// tools/testing/selftests/wireguard/netns.sh: everything made here is registered and removed on
// every exit path (normal cleanup, a failed test, process exit, SIGINT/SIGTERM/SIGHUP).
import {
  execFile,
  execFileSync,
  spawn,
  type ChildProcess,
  type SpawnOptions,
} from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';

/** Namespaces made here are named `<tag>-<owner pid>-<hex>`; the default tag. */
export const DEFAULT_NS_TAG = 'wgts';
const NETNS_DIR = '/var/run/netns';
const DEFAULT_RUN_TIMEOUT_MS = 20_000;
const MAX_OUTPUT_BYTES = 64 << 20;
/** How much of a tracked process's output is kept for error messages. */
const KEPT_OUTPUT_CHARS = 64 * 1024;

const namespaces = new Set<string>();
const children = new Set<ChildProcess>();
const cleanups = new Set<() => void>();
let hooked = false;

/** A short random hex string, for names that must not collide with other tests or runs. */
export function uniqueId(bytes = 3): string {
  return randomBytes(bytes).toString('hex');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function quiet(argv: string[]): void {
  try {
    execFileSync(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: DEFAULT_RUN_TIMEOUT_MS });
  } catch {
    // Already gone, or nothing to do.
  }
}

/** Kills every process still inside `ns` (they are ours: the namespace is), then deletes it. */
function destroyNamespace(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], {
      encoding: 'utf8',
      timeout: DEFAULT_RUN_TIMEOUT_MS,
    })
      .split('\n')
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Exited meanwhile.
      }
    }
  } catch {
    // No such namespace.
  }
  quiet(['ip', 'netns', 'del', ns]);
  rmSync(`${ETC_NETNS_DIR}/${ns}`, { recursive: true, force: true });
}

/** Where `ip netns exec NS` finds files it bind-mounts over /etc (ip-netns(8)). */
const ETC_NETNS_DIR = '/etc/netns';
/**
 * Gives `ns` its own /etc/hosts and /etc/resolv.conf (copies, bind-mounted by `ip netns exec`),
 * so nothing run inside (an agent's mesh DNS) can change the host's, which every namespace shares.
 */
function privateEtc(ns: string): void {
  mkdirSync(`${ETC_NETNS_DIR}/${ns}`, { recursive: true });
  for (const f of ['hosts', 'resolv.conf'])
    copyFileSync(`/etc/${f}`, `${ETC_NETNS_DIR}/${ns}/${f}`);
}

/**
 * Whether `name` has the form of a namespace createNamespace(tag) makes (`<tag>-<pid>-<hex>`) and
 * its owner process is gone; other places named after a namespace (work dirs) use it too.
 */
export function isStaleName(name: string, tag = DEFAULT_NS_TAG): boolean {
  const owner = Number(new RegExp(`^${tag}-(\\d+)-[0-9a-f]+$`).exec(name)?.[1] ?? NaN);
  return Number.isInteger(owner) && owner !== process.pid && !alive(owner);
}

/** Removes namespaces of this harness whose owner process is gone (a SIGKILLed earlier run). Never throws. */
export function removeStaleNamespaces(tag = DEFAULT_NS_TAG): void {
  let names: string[];
  try {
    names = readdirSync(NETNS_DIR);
  } catch {
    return;
  }
  for (const name of names) if (isStaleName(name, tag)) destroyNamespace(name);
  try {
    for (const name of readdirSync(ETC_NETNS_DIR))
      if (isStaleName(name, tag))
        rmSync(`${ETC_NETNS_DIR}/${name}`, { recursive: true, force: true });
  } catch {
    // No /etc/netns.
  }
}

/** Runs every registered cleanup, stops every tracked process, deletes every namespace. Sync; never throws. */
export function cleanupAll(): void {
  for (const fn of [...cleanups].reverse()) {
    try {
      fn();
    } catch {
      // Keep cleaning.
    }
  }
  cleanups.clear();
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  children.clear();
  for (const ns of namespaces) destroyNamespace(ns);
  namespaces.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      cleanupAll();
      process.removeListener(sig, handler);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Registers a synchronous cleanup step run by cleanupAll (last registered, first run). Returns its remover. */
export function onCleanup(fn: () => void): () => void {
  hook();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/**
 * Registers a file a child makes and removes on a clean exit (e.g. a UAPI socket), so that
 * cleanupAll removes it when the child had to be killed. Returns a function that removes it now
 * and unregisters it (idempotent).
 */
export function trackFile(path: string): () => void {
  const remove = (): void => rmSync(path, { force: true });
  const unregister = onCleanup(remove);
  return () => {
    unregister();
    remove();
  };
}

/**
 * Creates namespace `<tag>-<pid>-<hex>` with loopback up and its own /etc/hosts and
 * /etc/resolv.conf, registered for cleanup. Returns its name.
 */
export function createNamespace(tag = DEFAULT_NS_TAG): string {
  hook();
  removeStaleNamespaces(tag);
  const ns = `${tag}-${process.pid}-${uniqueId()}`;
  execFileSync('ip', ['netns', 'add', ns], { stdio: ['ignore', 'ignore', 'pipe'] });
  namespaces.add(ns);
  privateEtc(ns);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return ns;
}

/** Kills what runs inside `ns` and deletes it. Never throws. */
export function deleteNamespace(ns: string): void {
  namespaces.delete(ns);
  destroyNamespace(ns);
}

/** One end of a veth link: its name and the addresses to give it (with prefix length). */
export interface VethEnd {
  ns: string;
  name: string;
  /** e.g. '192.168.241.1/24' */
  ipv4?: string;
  /** e.g. 'fd00:aa::1/64' (added with nodad, usable at once) */
  ipv6?: string;
  mtu?: number;
}

/** Joins two namespaces by a veth pair made directly inside them, addressed and up. */
export function linkNamespaces(a: VethEnd, b: VethEnd): void {
  execFileSync(
    'ip',
    ['link', 'add', a.name, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.name, 'netns', b.ns],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  for (const end of [a, b]) {
    const ip = (...args: string[]): void =>
      void execFileSync('ip', ['-n', end.ns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    if (end.ipv4 !== undefined) ip('address', 'add', end.ipv4, 'dev', end.name);
    if (end.ipv6 !== undefined) ip('-6', 'address', 'add', end.ipv6, 'dev', end.name, 'nodad');
    if (end.mtu !== undefined) ip('link', 'set', end.name, 'mtu', String(end.mtu));
    ip('link', 'set', end.name, 'up');
  }
}

/** What run() resolves with. */
export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit status, null when killed (e.g. by the timeout). */
  status: number | null;
}

/** Options of run()/check(). */
export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

function inNs(ns: string | null, argv: readonly string[]): string[] {
  return ns === null ? [...argv] : ['ip', 'netns', 'exec', ns, ...argv];
}

/**
 * Runs argv to completion inside `ns` (null: here) with `input` on stdin, killed after timeoutMs.
 * Resolves with output and status whatever the status; rejects only if it cannot start.
 */
export function run(
  ns: string | null,
  argv: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const [cmd, ...args] = inNs(ns, argv);
  if (cmd === undefined) throw new TypeError('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        timeout: options.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: MAX_OUTPUT_BYTES,
        ...(options.env === undefined ? {} : { env: options.env }),
      },
      (err, stdout, stderr) => {
        const e = err as NodeJS.ErrnoException | null;
        if (e !== null && typeof e.code === 'string')
          reject(new Error(`cannot run ${cmd}: ${e.message}`));
        else resolve({ stdout, stderr, status: child.exitCode });
      },
    );
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

/** run() that resolves with stdout and rejects (with stderr in the message) unless the status is 0. */
export async function check(
  ns: string | null,
  argv: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const r = await run(ns, argv, options);
  if (r.status !== 0) {
    throw new Error(
      `${argv.join(' ')} failed (status ${r.status}): ${(r.stderr || r.stdout).trim()}`,
    );
  }
  return r.stdout;
}

/** A long-running process started by spawnIn, tracked until it exits. */
export interface TrackedProcess {
  readonly child: ChildProcess;
  /** The program's own PID (ip netns exec and setpriv exec into it). */
  readonly pid: number;
  /** Settles with how it ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True until it has exited. */
  readonly running: boolean;
  /** Its stdout and stderr so far (the last 64 KiB), for messages. */
  output(): string;
  /** Sends a signal if it still runs. */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Spawns argv inside `ns` (null: here) with a parent-death SIGKILL (so it never outlives the test
 * process), killed by cleanupAll while it runs. Returns the ChildProcess; its pid is the program's
 * own (setpriv and `ip netns exec` exec into it). For a child whose stdio the caller drives.
 */
export function spawnChild(
  ns: string | null,
  argv: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  hook();
  const full = ['setpriv', '--pdeathsig', 'KILL', '--', ...inNs(ns, argv)];
  const child = spawn(full[0]!, full.slice(1), options);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/**
 * Sends `signal` to a child from spawnChild, then SIGKILL if it has not exited after graceMs.
 * Resolves when it has exited (at once if it already has). Never rejects.
 */
export async function stopChild(
  child: ChildProcess,
  graceMs: number,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Spawns argv inside `ns` as spawnChild does, with its output captured. Throws if it cannot be
 * spawned.
 */
export function spawnIn(
  ns: string | null,
  argv: readonly string[],
  options: { env?: NodeJS.ProcessEnv } = {},
): TrackedProcess {
  const child = spawnChild(ns, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  if (child.pid === undefined) throw new Error(`cannot spawn ${argv.join(' ')}`);
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString('utf8')).slice(-KEPT_OUTPUT_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      running = false;
      resolve({ code, signal });
    }),
  );
  const tracked: TrackedProcess = {
    child,
    pid: child.pid,
    exited,
    get running() {
      return running;
    },
    output: () => out,
    kill(signal = 'SIGTERM') {
      if (!running) return;
      try {
        process.kill(child.pid!, signal);
      } catch {
        // Exited meanwhile.
      }
    },
  };
  return tracked;
}

/** Sends `signal`, then SIGKILL after graceMs; resolves with how it ended. Never rejects. */
export async function stopProcess(
  p: TrackedProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  await stopChild(p.child, graceMs, signal);
  return p.exited;
}

/**
 * Calls probe every intervalMs until it returns something other than undefined/false, or timeoutMs
 * passes. Resolves with that value; rejects naming `what` and the last error.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (performance.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
