/**
 * Test helpers for wg-tun's I/O tests: network namespaces the test makes and removes itself (after
 * the kernel's selftests/wireguard/netns.sh), unique names, and bounded waits for events.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** A short random tag; interface names built from it stay within 15 bytes and unique across namespaces. */
export function uniqueTag(): string {
  return randomBytes(3).toString('hex');
}

/** Runs a command, returning stdout; throws with its stderr on failure. */
export function run(cmd: string, args: readonly string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A network namespace that exists until remove(). */
export interface Netns {
  readonly name: string;
  /** `ip -n NAME ...` */
  ip(...args: string[]): string;
  remove(): void;
}

const NETNS_PATTERN = /^wgtun-[a-z]+-(\d+)-[0-9a-f]+$/;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes namespaces an earlier run of these tests left behind when it was killed (its pid is gone). */
function sweepStaleNetns(): void {
  for (const line of run('ip', ['netns', 'list']).split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const owner = NETNS_PATTERN.exec(name)?.[1];
    if (owner !== undefined && !alive(Number(owner))) {
      try {
        run('ip', ['netns', 'del', name]);
      } catch {
        // raced with another sweeper
      }
    }
  }
}

/** Creates a namespace named wgtun-<purpose>-<pid>-<tag> with loopback up. */
export function createNetns(purpose: string): Netns {
  sweepStaleNetns();
  const name = `wgtun-${purpose}-${process.pid}-${uniqueTag()}`;
  run('ip', ['netns', 'add', name]);
  const ns: Netns = {
    name,
    ip: (...args) => run('ip', ['-n', name, ...args]),
    remove: () => {
      try {
        run('ip', ['netns', 'del', name]);
      } catch {
        // already gone
      }
    },
  };
  try {
    ns.ip('link', 'set', 'lo', 'up');
  } catch (err) {
    ns.remove();
    throw err;
  }
  return ns;
}

/** The outcome of a child process. */
export interface Exit {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Starts a command without blocking the event loop (so the test's devices keep working) and
 * resolves when it exits; it is killed after timeoutMs. extraFds become the child's fds 3, 4, ...
 * The caller must await the promise.
 */
export function spawnBounded(
  cmd: string,
  args: readonly string[],
  timeoutMs: number,
  extraFds: readonly number[] = [],
): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe', ...extraFds] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A promise settled from callbacks: `done()` resolves it, and it rejects with `what` after timeoutMs.
 * For waiting on I/O callbacks with a bound, never a fixed sleep.
 */
export function deadline(
  what: string,
  timeoutMs: number,
): { promise: Promise<void>; done: () => void; fail: (err: unknown) => void } {
  let done!: () => void;
  let fail!: (err: unknown) => void;
  const promise = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)),
      timeoutMs,
    );
    done = () => {
      clearTimeout(timer);
      resolve();
    };
    fail = (err) => {
      clearTimeout(timer);
      reject(err);
    };
  });
  return { promise, done, fail };
}
