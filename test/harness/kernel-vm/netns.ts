// Network namespaces and child processes of the system-test harness, removed on every exit path:
// normal stop, a failed test, process exit, SIGINT/SIGTERM/SIGHUP. Children also get a parent-death
// SIGKILL (setpriv --pdeathsig), so even a SIGKILLed test process leaves no qemu behind; a namespace
// left by such a process is removed by the next run (its name carries the owner's PID).
import {
  execFile,
  execFileSync,
  spawn,
  type ChildProcess,
  type SpawnOptions,
} from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';

/** Prefix of every namespace this harness makes: `wmk-<owner pid>-<random>`. */
export const NETNS_PREFIX = 'wmk-';

const NETNS_DIR = '/var/run/netns';
const RUN_TIMEOUT_MS = 20_000;
const RUN_MAX_OUTPUT_BYTES = 64 << 20;
const liveNamespaces = new Set<string>();
const liveChildren = new Set<ChildProcess>();
const liveFiles = new Set<string>();
let hooksInstalled = false;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `name` is a namespace name of this harness whose owner process is gone. */
export function isStaleName(name: string): boolean {
  const m = /^wmk-(\d+)-[0-9a-f]+$/.exec(name);
  if (m?.[1] === undefined) return false;
  const owner = Number(m[1]);
  return owner !== process.pid && !pidAlive(owner);
}

/** Deletes namespaces named by this harness whose owner process is gone. Never throws. */
export function removeStaleNamespaces(): void {
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_DIR);
  } catch {
    return;
  }
  for (const name of names) {
    if (!isStaleName(name)) continue;
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // Someone else removed it first.
    }
  }
}

/** Kills every child and deletes every namespace still registered, synchronously. Never throws. */
export function cleanupAllSync(): void {
  for (const child of liveChildren) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  liveChildren.clear();
  for (const ns of liveNamespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
  liveNamespaces.clear();
  for (const path of liveFiles) rmSync(path, { force: true });
  liveFiles.clear();
}

/**
 * Registers a file that a child makes and removes on a clean exit (e.g. a UAPI socket), so that it
 * is removed when the child has to be killed. Returns a function that removes it now (idempotent).
 */
export function trackFile(path: string): () => void {
  installHooks();
  liveFiles.add(path);
  return () => {
    liveFiles.delete(path);
    rmSync(path, { force: true });
  };
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupAllSync();
      process.removeListener(sig, onSignal);
      // Die of the same signal unless someone else (e.g. the test runner) handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/**
 * Creates a fresh network namespace `wmk-<pid>-<hex>` with loopback up, registered for cleanup.
 * Returns its name. Throws if `ip netns add` fails (not root, no iproute2).
 */
export function createNamespace(): string {
  installHooks();
  removeStaleNamespaces();
  const ns = `${NETNS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns], { stdio: ['ignore', 'ignore', 'pipe'] });
  liveNamespaces.add(ns);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return ns;
}

/** Deletes a namespace made by createNamespace (its processes must be gone first). Never throws. */
export function deleteNamespace(ns: string): void {
  liveNamespaces.delete(ns);
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}

/**
 * Spawns `command args` inside namespace `ns` (or in the current one when ns is null) with a
 * parent-death SIGKILL, registered for cleanup. Returns the ChildProcess; its pid is the program's
 * own (setpriv and `ip netns exec` exec into it).
 */
export function spawnTracked(
  ns: string | null,
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ChildProcess {
  installHooks();
  const inNs = ns === null ? [] : ['ip', 'netns', 'exec', ns];
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', ...inNs, command, ...args], options);
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

/**
 * Sends SIGTERM to a child from spawnTracked, then SIGKILL if it has not exited after graceMs.
 * Resolves when it has exited. Never rejects.
 */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
    liveChildren.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  liveChildren.delete(child);
}

/** Result of nsRun. */
export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit status; null when killed by a signal (e.g. the timeout). */
  status: number | null;
}

/**
 * Runs `argv` to completion inside namespace `ns` (null: the current one), feeding `input` on stdin,
 * killing it after timeoutMs. Resolves with its output and status; never rejects for a non-zero
 * status (rejects only when the program cannot be started).
 */
export function nsRun(
  ns: string | null,
  argv: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const [cmd, ...rest] = ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv];
  if (cmd === undefined) throw new TypeError('nsRun: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      rest,
      {
        timeout: options.timeoutMs ?? RUN_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: RUN_MAX_OUTPUT_BYTES,
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
        if (e !== null && typeof e.code === 'string') {
          reject(new Error(`cannot run ${cmd}: ${e.message}`));
          return;
        }
        resolve({ stdout, stderr, status: child.exitCode });
      },
    );
    // A program that exits without reading its stdin must not crash the test with EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}

/**
 * Like nsRun but resolves with stdout only and rejects with an Error carrying stderr when the
 * status is not 0.
 */
export async function nsCheck(
  ns: string | null,
  argv: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  const r = await nsRun(ns, argv, options);
  if (r.status !== 0) {
    throw new Error(
      `${argv.join(' ')} failed (status ${r.status}): ${r.stderr.trim() || r.stdout.trim()}`,
    );
  }
  return r.stdout;
}
