// A userspace WireGuard device (wireguard-go, or anything with its CLI: `PROGRAM -f IFACE` and a UAPI
// socket at /var/run/wireguard/IFACE.sock) run in a test's namespace and configured with `wg`.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { check, pollUntil, spawnChild, stopChild, trackFile } from '../netns.js';
import { parseDump, type WgDump } from '../wg-dump.js';

const UAPI_DIR = '/var/run/wireguard';
const STOP_GRACE_MS = 3_000;
const START_TIMEOUT_MS = 10_000;
const SOCKET_POLL_MS = 50;
const LOG_KEEP_CHARS = 16_384;

/** Options of startUserspaceWg. */
export interface UserspaceWgOptions {
  /** Namespace to run in (e.g. KernelVm.netns). */
  netns: string;
  /** Program and leading arguments; `-f IFACE` is appended. Default ['wireguard-go']. */
  command?: readonly string[];
  /** Interface name (at most 15 bytes, unique across namespaces). Default `wmk` + 6 hex digits. */
  iface?: string;
  /** Extra environment (e.g. LOG_LEVEL=debug). */
  env?: Record<string, string>;
  /** Bound on the UAPI socket appearing. Default 10 s. */
  startTimeoutMs?: number;
}

/** A running userspace device. Owns its process until stop(). */
export interface UserspaceWg {
  readonly iface: string;
  readonly netns: string;
  readonly process: ChildProcess;
  /** The program's stdout+stderr so far (last 16 KiB), for failure messages. */
  log(): string;
  /** `wg setconf IFACE` with this config text (wg(8) format), via stdin: no key file on disk. */
  setConf(conf: string): Promise<void>;
  /** `ip addr add CIDR dev IFACE` then link up. */
  addAddress(cidr: string): Promise<void>;
  /** Parsed `wg show IFACE dump`. */
  wgDump(): Promise<WgDump>;
  /** SIGTERM (then SIGKILL after 3 s); resolves when the process is gone. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts `command -f IFACE` in namespace netns and waits for its UAPI socket. Resolves with the
 * device; rejects (after killing it) with its output if it exits or the socket does not appear.
 */
export async function startUserspaceWg(options: UserspaceWgOptions): Promise<UserspaceWg> {
  const { netns } = options;
  const [program, ...lead] = options.command ?? ['wireguard-go'];
  if (program === undefined) throw new TypeError('startUserspaceWg: empty command');
  const iface = options.iface ?? `wmk${randomBytes(3).toString('hex')}`;
  if (Buffer.byteLength(iface) > 15)
    throw new RangeError(`interface name ${iface} is longer than 15 bytes`);

  const socket = `${UAPI_DIR}/${iface}.sock`;
  if (existsSync(socket)) throw new Error(`${socket} exists: interface name ${iface} is taken`);
  const removeSocket = trackFile(socket);
  const child = spawnChild(netns, [program, ...lead, '-f', iface], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let output = '';
  const keep = (s: Buffer): void => {
    output = (output + s.toString('utf8')).slice(-LOG_KEEP_CHARS);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitErr: Error | null = null;
  child.once('exit', (code, signal) => {
    exitErr = new Error(
      `${program} ${iface} exited (${signal ?? `status ${code}`}): ${output.trim()}`,
    );
  });
  child.once('error', (e) => {
    exitErr = new Error(`cannot start ${program}: ${e.message}`);
  });

  try {
    await pollUntil(
      `${program}'s UAPI socket ${socket}`,
      async () => {
        if (exitErr !== null) throw exitErr;
        return existsSync(socket);
      },
      options.startTimeoutMs ?? START_TIMEOUT_MS,
      SOCKET_POLL_MS,
    );
  } catch (err) {
    await stopChild(child, STOP_GRACE_MS);
    removeSocket();
    throw exitErr ?? err;
  }

  let stopped: Promise<void> | null = null;
  const dev: UserspaceWg = {
    iface,
    netns,
    process: child,
    log: () => output,
    async setConf(conf) {
      // Node's child stdin is a socket, which /dev/stdin cannot be opened on; cat makes it a pipe.
      await check(netns, ['sh', '-c', 'cat | wg setconf "$1" /dev/stdin', 'sh', iface], {
        input: conf,
      });
    },
    async addAddress(cidr) {
      await check(null, [
        'ip',
        '-n',
        netns,
        'addr',
        'add',
        cidr,
        'dev',
        iface,
        ...(cidr.includes(':') ? ['nodad'] : []),
      ]);
      await check(null, ['ip', '-n', netns, 'link', 'set', iface, 'up']);
    },
    async wgDump() {
      return parseDump(await check(netns, ['wg', 'show', iface, 'dump']));
    },
    stop() {
      // A clean exit removes the socket; one killed after the grace period leaves it behind.
      stopped ??= stopChild(child, STOP_GRACE_MS).then(removeSocket);
      return stopped;
    },
  };
  return dev;
}
