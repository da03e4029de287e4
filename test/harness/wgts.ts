// Userspace WireGuard daemons for system tests: the built `wgts` (and a PATH wrapper for wg-quick),
// Debian's wireguard-go, started with -f in a namespace by PID, and `wg show dump` parsed.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  check,
  onCleanup,
  pollUntil,
  run,
  spawnIn,
  stopProcess,
  uniqueId,
  type TrackedProcess,
} from './netns.js';
import { parseDump, type WgDump } from './wg-dump.js';

export type { WgDump, WgDumpPeer } from './wg-dump.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The built CLI; system tests run the real program, as wg-quick would. */
export const WGTS_JS = join(ROOT, 'packages/wg-tun/dist/cli/wgts.js');
const BUILD_TIMEOUT_MS = 180_000;
const SOCKET_WAIT_MS = 20_000;
export const SOCKET_DIR = '/var/run/wireguard';

let built = false;
let binDir: string | undefined;

/** Builds wg-tun (tsc -b, incremental) once per process so dist/cli/wgts.js matches the source. Throws on errors. */
export function buildWgts(): void {
  if (built) return;
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', join(ROOT, 'packages/wg-tun')], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: BUILD_TIMEOUT_MS,
    });
  } catch (err) {
    const e = err as { stdout?: Buffer; message: string };
    throw new Error(`building wg-tun failed: ${e.stdout?.toString() ?? e.message}`);
  }
  if (!existsSync(WGTS_JS)) throw new Error(`${WGTS_JS} is missing after the build`);
  built = true;
}

/** The argv that runs wgts: [node, .../wgts.js]. Builds it first. */
export function wgtsCommand(): string[] {
  buildWgts();
  return [process.execPath, WGTS_JS];
}

/**
 * A temporary directory holding an executable `wgts` that runs the built CLI with this node, to put
 * first on PATH (wg-quick runs `$WG_QUICK_USERSPACE_IMPLEMENTATION "$INTERFACE"`). Removed at cleanup.
 */
export function wgtsBinDir(): string {
  buildWgts();
  if (binDir !== undefined && existsSync(binDir)) return binDir;
  const dir = mkdtempSync(join(tmpdir(), 'wgts-bin-'));
  const wrapper = join(dir, 'wgts');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(WGTS_JS)} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  binDir = dir;
  return dir;
}

/** An interface name no other test or helper uses (/var/run/wireguard is shared): `wt<6 hex><tag>`, <= 15 bytes. */
export function uniqueIface(tag = ''): string {
  const name = `wt${uniqueId()}${tag}`;
  if (name.length > 15) throw new RangeError(`interface name ${name} is too long`);
  return name;
}

/** Which userspace implementation runs a daemon. */
export type Impl = 'wgts' | 'wireguard-go';

/** A daemon running `IMPL -f IFACE` in a namespace. */
export interface Daemon {
  readonly impl: Impl;
  readonly ns: string;
  readonly iface: string;
  readonly proc: TrackedProcess;
  /** SIGTERM, SIGKILL after a grace period; resolves when it has exited. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** True when something accepts connections on the interface's UAPI socket. */
export async function socketAnswers(ns: string | null, iface: string): Promise<boolean> {
  if (!existsSync(join(SOCKET_DIR, `${iface}.sock`))) return false;
  const r = await run(ns, ['wg', 'show', iface, 'public-key'], { timeoutMs: 5_000 });
  return r.status === 0;
}

/**
 * Starts `impl -f iface` inside `ns` and waits (bounded) until its UAPI socket answers. The
 * interface is deleted at cleanup in case the daemon is killed without removing it. Rejects with
 * the daemon's output if it exits or never answers.
 */
export async function startDaemon(
  ns: string,
  impl: Impl,
  iface: string,
  env: NodeJS.ProcessEnv = {},
): Promise<Daemon> {
  const argv = impl === 'wgts' ? [...wgtsCommand(), '-f', iface] : ['wireguard-go', '-f', iface];
  const proc = spawnIn(ns, argv, { env: { ...process.env, LOG_LEVEL: 'error', ...env } });
  onCleanup(() => {
    const socket = join(SOCKET_DIR, `${iface}.sock`);
    if (!existsSync(socket)) return;
    if (proc.running) proc.kill('SIGKILL');
    // A killed daemon cannot remove its socket, and wg(8) would go on listing the interface.
    rmSync(socket, { force: true });
  });
  try {
    await pollUntil(
      `${impl} ${iface} to answer on its UAPI socket`,
      async () => {
        if (!proc.running) throw new Error(`${impl} exited: ${proc.output().trim()}`);
        return socketAnswers(ns, iface);
      },
      SOCKET_WAIT_MS,
    );
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  return { impl, ns, iface, proc, stop: () => stopProcess(proc) };
}

/** A WireGuard key pair in base64, from `wg genkey`/`wg pubkey`. */
export interface WgKeypair {
  privateKey: string;
  publicKey: string;
}

/** Makes a key pair with wg(8). */
export function wgKeypair(): WgKeypair {
  const privateKey = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
  const publicKey = execFileSync('wg', ['pubkey'], { input: privateKey, encoding: 'utf8' }).trim();
  return { privateKey, publicKey };
}

/** A preshared key from `wg genpsk`. */
export function wgPsk(): string {
  return execFileSync('wg', ['genpsk'], { encoding: 'utf8' }).trim();
}

/** `wg show IFACE dump` in `ns`, parsed. */
export async function wgDump(ns: string | null, iface: string): Promise<WgDump> {
  return parseDump(await check(ns, ['wg', 'show', iface, 'dump']));
}

/** Writes `text` to a 0600 temporary file (removed at cleanup) and returns its path: for wg setconf and keys. */
export function tempFile(text: string, name = 'wg.conf'): string {
  const dir = mkdtempSync(join(tmpdir(), 'wgts-f-'));
  const path = join(dir, name);
  writeFileSync(path, text, { mode: 0o600 });
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return path;
}

/** True if the file exists (any type). */
export function exists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * wg-quick's steps by hand for a generated wg-quick file `conf` (its DNS step needs resolvconf):
 * wireguard-go as interface `iface` in `ns`, `wg setconf` without the lines wg(8) does not know,
 * the address, the routes of AllowedIPs. Resolves with the interface address (CIDR).
 */
export async function wgQuickByHand(ns: string, iface: string, conf: string): Promise<string> {
  await startDaemon(ns, 'wireguard-go', iface);
  const address = /^Address = ([^,\n]+)/m.exec(conf)![1]!;
  const allowed = /^AllowedIPs = (.+)$/m
    .exec(conf)![1]!
    .split(',')
    .map((x) => x.trim());
  const wgConf = conf
    .split('\n')
    .filter((l) => !/^(Address|DNS|MTU) =/.test(l))
    .join('\n');
  await check(ns, ['wg', 'setconf', iface, tempFile(wgConf)]);
  await check(ns, ['ip', 'address', 'add', address, 'dev', iface]);
  await check(ns, ['ip', 'link', 'set', iface, 'up']);
  for (const r of allowed) await check(ns, ['ip', 'route', 'replace', r, 'dev', iface]);
  return address;
}
