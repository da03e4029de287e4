/**
 * The ways to have a WireGuard interface, all configured afterwards by the same wg(8) and ip(8):
 * the kernel module (`ip link add IFACE type wireguard`); a userspace implementation started
 * detached (`wgts -f IFACE`, our drop-in for wireguard-go, serving /var/run/wireguard/IFACE.sock),
 * which outlives the command that started it (one-shot `join --daemon off`, cron `checkin`); and
 * the userspace device run inside the daemon itself (wg-tun's library, serving the same socket),
 * which alone can send endpoint-reflection probes from the WireGuard socket.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Backend as BackendKind, Endpoint } from '@wiremesh/protocol';
import { createUserspaceDevice, type UserspaceDevice } from '@wiremesh/wg-tun';
import {
  DEFAULT_USERSPACE_IMPLEMENTATION,
  PROCESS_EXIT_WAIT_MS,
  SOCKET_POLL_MS,
  SOCKET_WAIT_MS,
  TUN_DEVICE_PATH,
  USERSPACE_IMPLEMENTATION_ENV,
  WG_SOCKET_DIR,
} from '../constants.js';
import { AgentError } from '../errors.js';
import type { Logger } from '../log.js';
import { Reflector } from '../discovery/reflect-client.js';
import { commandError, findExecutable, type Runner } from '../runner.js';
import { parseIpAddr } from './wg-dump.js';

/** How hard one reflection round tries (default REFLECT_ATTEMPTS of REFLECT_TIMEOUT_MS). */
export interface ProbeOptions {
  readonly attempts?: number;
  readonly timeoutMs?: number;
}

/** Creates and removes WireGuard interfaces of one kind. */
export interface Backend {
  readonly kind: BackendKind;
  /** Why this backend was chosen (printed at start-up). */
  readonly reason: string;
  /**
   * Makes `iface` exist (leaves an existing one as it is). Returns true when it created it, so a
   * failed join can remove exactly what it made. Throws AgentError when it cannot.
   */
  create(iface: string): Promise<boolean>;
  /** Removes `iface` and anything that serves it; a missing interface is not an error. */
  destroy(iface: string): Promise<void>;
  /**
   * Asks the reflector at `target` for the public endpoint of `iface`'s WireGuard socket. Resolves
   * with it, or null when no reply came. Only backends that own the socket have it.
   */
  reflect?(iface: string, target: Endpoint, probe?: ProbeOptions): Promise<Endpoint | null>;
  /** Closes the devices this backend runs in this process (the interfaces go with them). Idempotent. */
  close?(): Promise<void>;
}

/** Options of the backends. */
export interface BackendOptions {
  runner: Runner;
  log: Logger;
  /** Where the userspace backend keeps `<iface>.pid` and `<iface>.log`. */
  stateDir: string;
  /** Environment to read the implementation override from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * Run a userspace device inside this process (the daemon) instead of a detached wgts, unless
   * WIREMESH_USERSPACE_IMPLEMENTATION names another implementation. Default false.
   */
  inProcess?: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The kind of an existing interface (`wireguard`, `tun`, ...), or null when it does not exist. */
export async function linkKind(runner: Runner, iface: string): Promise<string | null | undefined> {
  const r = await runner.run('ip', ['-j', '-d', 'link', 'show', 'dev', iface]);
  if (r.code !== 0) return undefined;
  return parseIpAddr(r.stdout)?.kind ?? null;
}

async function linkExists(runner: Runner, iface: string): Promise<boolean> {
  return (await runner.run('ip', ['link', 'show', 'dev', iface])).code === 0;
}

/** The kernel module backend. */
export function kernelBackend(opts: BackendOptions, reason: string): Backend {
  return {
    kind: 'kernel',
    reason,
    async create(iface) {
      if (await linkExists(opts.runner, iface)) return false;
      const r = await opts.runner.run('ip', ['link', 'add', 'dev', iface, 'type', 'wireguard']);
      if (r.code !== 0)
        throw new AgentError(
          'no_backend',
          `cannot create ${iface} with kernel WireGuard (${commandError(r)}): run with --backend userspace`,
        );
      return true;
    },
    async destroy(iface) {
      if (await linkExists(opts.runner, iface))
        await opts.runner.run('ip', ['link', 'del', 'dev', iface]);
    },
  };
}

/**
 * The command that runs the userspace implementation: $WIREMESH_USERSPACE_IMPLEMENTATION if set
 * (a program on PATH or a path; a .js file runs on this Node), else the `wgts` of the
 * @wiremesh/wg-tun installed with this agent (same release, so the same UAPI), else `wgts` on
 * PATH. Returns [program, ...leading args], or null if there is none.
 */
export function userspaceCommand(env: NodeJS.ProcessEnv = process.env): string[] | null {
  const override = env[USERSPACE_IMPLEMENTATION_ENV];
  if (override !== undefined && override !== '') {
    const found =
      override.endsWith('.js') && existsSync(override) ? override : findExecutable(override);
    if (found === null) return null;
    return found.endsWith('.js') ? [process.execPath, found] : [found];
  }
  try {
    const entry = createRequire(import.meta.url).resolve('@wiremesh/wg-tun');
    const script = join(dirname(entry), 'cli', 'wgts.js');
    if (existsSync(script)) return [process.execPath, script];
  } catch {
    // not installed beside us
  }
  const onPath = findExecutable(DEFAULT_USERSPACE_IMPLEMENTATION);
  return onPath === null ? null : [onPath];
}

/** The UAPI socket of `iface`. */
export function socketPath(iface: string): string {
  return join(WG_SOCKET_DIR, `${iface}.sock`);
}

/**
 * Whether process `pid` still runs. An exited process whose parent has not reaped it yet (a
 * detached wgts belongs to init, which may take seconds) is a zombie: it counts as gone.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // "pid (comm) S ...": the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return true;
  }
}

/** Whether process `pid` is still the implementation serving `iface` (not a recycled pid). */
function servesInterface(pid: number, iface: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes(iface);
  } catch {
    return false;
  }
}

function pidFile(stateDir: string, iface: string): string {
  return join(stateDir, `${iface}.pid`);
}

function readPid(stateDir: string, iface: string): number | null {
  try {
    const n = Number(readFileSync(pidFile(stateDir, iface), 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** Stops the detached implementation `pid` serving `iface` (SIGTERM, then SIGKILL). */
async function stopProcess(pid: number, iface: string): Promise<void> {
  if (!alive(pid) || !servesInterface(pid, iface)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + PROCESS_EXIT_WAIT_MS;
  while (alive(pid) && Date.now() < deadline) await sleep(SOCKET_POLL_MS);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/** The userspace backend: one detached implementation process per interface, known by its pid. */
export function userspaceBackend(opts: BackendOptions, reason: string): Backend {
  const pidFileOf = (iface: string) => pidFile(opts.stateDir, iface);
  const readPidOf = (iface: string) => readPid(opts.stateDir, iface);
  const stop = stopProcess;
  return {
    kind: 'userspace',
    reason,
    async create(iface) {
      if ((await linkExists(opts.runner, iface)) && existsSync(socketPath(iface))) return false;
      if (!existsSync(TUN_DEVICE_PATH)) {
        throw new AgentError(
          'no_tun',
          `no TUN device (${TUN_DEVICE_PATH} is missing): load it with "modprobe tun" (in a container: run it with --device /dev/net/tun)`,
        );
      }
      const cmd = userspaceCommand(opts.env);
      if (cmd === null) {
        throw new AgentError(
          'no_backend',
          `no userspace WireGuard found (wgts): install @wiremesh/wg-tun or set ${USERSPACE_IMPLEMENTATION_ENV}`,
        );
      }
      const old = readPidOf(iface);
      if (old !== null) await stop(old, iface);
      const logPath = join(opts.stateDir, `${iface}.log`);
      const logFd = openSync(logPath, 'a', 0o600);
      const [program, ...lead] = cmd as [string, ...string[]];
      const child = spawn(program, [...lead, '-f', iface], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
        env: {
          ...(opts.env ?? process.env),
          WG_PROCESS_FOREGROUND: '1',
          WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1',
        },
      });
      closeSync(logFd);
      let exited: string | null = null;
      child.on('exit', (code, signal) => (exited = signal ?? `exit status ${code}`));
      child.on('error', (e) => (exited = e.message));
      child.unref();
      if (child.pid !== undefined) writeFileSync(pidFileOf(iface), `${child.pid}\n`);
      const deadline = Date.now() + SOCKET_WAIT_MS;
      while (Date.now() < deadline) {
        if (exited !== null) break;
        if (existsSync(socketPath(iface)) && (await linkExists(opts.runner, iface))) {
          opts.log.debug(`${iface}: userspace device ${program} running as pid ${child.pid}`);
          return true;
        }
        await sleep(SOCKET_POLL_MS);
      }
      if (child.pid !== undefined && exited === null) await stop(child.pid, iface);
      rmSync(pidFileOf(iface), { force: true });
      let tail = '';
      try {
        tail = readFileSync(logPath, 'utf8').trim().split('\n').slice(-1)[0] ?? '';
      } catch {
        // no log
      }
      const why = exited !== null ? `it ended (${exited})` : `no socket after ${SOCKET_WAIT_MS} ms`;
      throw new AgentError(
        'no_backend',
        `the userspace WireGuard device for ${iface} did not start: ${why}${tail !== '' ? `: ${tail}` : ''}; see ${logPath}`,
      );
    },
    async destroy(iface) {
      const pid = readPidOf(iface);
      if (pid !== null) await stop(pid, iface);
      rmSync(pidFileOf(iface), { force: true });
      if (await linkExists(opts.runner, iface))
        await opts.runner.run('ip', ['link', 'del', 'dev', iface]);
    },
  };
}

/**
 * Devices this process runs, by interface: shared by every in-process backend object, so the
 * foreground daemon that `join` becomes keeps the device its first round created.
 */
const inProcessDevices = new Map<string, { dev: UserspaceDevice; reflector: Reflector }>();

/** A wg-tun logger writing into the agent's log. */
function deviceLogger(log: Logger, iface: string) {
  return {
    verbose: (m: string) => log.debug(`${iface}: ${m}`),
    info: (m: string) => log.debug(`${iface}: ${m}`),
    error: (m: string) => log.error(`${iface}: ${m}`),
  };
}

/**
 * The userspace device inside this process (the daemon): wg-tun's createUserspaceDevice with its
 * UAPI socket, so wg(8) and `wiremesh status` see it as they see wgts. It can probe the
 * reflector from its own WireGuard socket. The interface lives as long as this process: the
 * daemon closes it on exit (`close`). An interface a detached wgts serves (left by a one-shot
 * join or a cron check-in) is taken over: that process is stopped first.
 */
export function inProcessBackend(opts: BackendOptions, reason: string): Backend {
  const devices = inProcessDevices;
  /** The interfaces this backend object was asked for: `close` closes only these. */
  const mine = new Set<string>();
  const live = (iface: string) => {
    const d = devices.get(iface);
    return d !== undefined && !d.dev.closed ? d : undefined;
  };
  return {
    kind: 'userspace',
    reason,
    async create(iface) {
      mine.add(iface);
      if (live(iface) !== undefined) return false;
      if (!existsSync(TUN_DEVICE_PATH)) {
        throw new AgentError(
          'no_tun',
          `no TUN device (${TUN_DEVICE_PATH} is missing): load it with "modprobe tun" (in a container: run it with --device /dev/net/tun)`,
        );
      }
      const pid = readPid(opts.stateDir, iface);
      if (pid !== null) {
        opts.log.info(`${iface}: taking the interface over from the userspace process ${pid}`);
        await stopProcess(pid, iface);
        rmSync(pidFile(opts.stateDir, iface), { force: true });
        const deadline = Date.now() + PROCESS_EXIT_WAIT_MS;
        while ((await linkExists(opts.runner, iface)) && Date.now() < deadline)
          await sleep(SOCKET_POLL_MS);
      }
      let dev: UserspaceDevice;
      try {
        dev = createUserspaceDevice({ name: iface, logger: deviceLogger(opts.log, iface) });
      } catch (e) {
        const code = (e as { code?: string }).code;
        throw new AgentError(
          code === 'ENOENT' ? 'no_tun' : 'no_backend',
          `cannot create the userspace WireGuard device ${iface}: ${(e as Error).message}${code === 'EBUSY' ? ' (another program has this interface: remove it with ip link del)' : ''}`,
        );
      }
      try {
        await dev.listenUapi();
      } catch (e) {
        dev.close();
        throw new AgentError(
          'no_backend',
          `cannot serve ${socketPath(iface)} for ${iface}: ${(e as Error).message}`,
        );
      }
      const entry = { dev, reflector: new Reflector(dev) };
      devices.set(iface, entry);
      void dev.done.then((err) => {
        if (devices.get(iface) === entry) devices.delete(iface);
        if (err !== null)
          opts.log.warn(
            `${iface}: the userspace device stopped (${err.message}); it is recreated on the next round`,
          );
      });
      opts.log.debug(`${iface}: userspace device in this process (crypto ${dev.cryptoName})`);
      return true;
    },
    async destroy(iface) {
      const d = devices.get(iface);
      devices.delete(iface);
      d?.reflector.close();
      d?.dev.close();
      const pid = readPid(opts.stateDir, iface);
      if (pid !== null) await stopProcess(pid, iface);
      rmSync(pidFile(opts.stateDir, iface), { force: true });
      if (await linkExists(opts.runner, iface))
        await opts.runner.run('ip', ['link', 'del', 'dev', iface]);
    },
    async reflect(iface, target, probe) {
      const d = live(iface);
      return d === undefined ? null : d.reflector.probe(target, probe?.timeoutMs, probe?.attempts);
    },
    async close() {
      for (const iface of mine) {
        const d = devices.get(iface);
        devices.delete(iface);
        d?.reflector.close();
        d?.dev.close();
      }
      mine.clear();
    },
  };
}

/** The in-process device when `opts.inProcess` and no other implementation is named, else a detached one. */
function userspaceKind(opts: BackendOptions, reason: string): Backend {
  const override = (opts.env ?? process.env)[USERSPACE_IMPLEMENTATION_ENV];
  if (opts.inProcess === true && (override === undefined || override === ''))
    return inProcessBackend(opts, `${reason}; the device runs inside the agent`);
  return userspaceBackend(opts, reason);
}

/** Which backend the user asked for. */
export type BackendChoice = 'auto' | 'kernel' | 'userspace';

/**
 * Picks the backend: an existing interface keeps the kind it has; `kernel`/`userspace` are taken
 * as asked; `auto` creates and deletes a probe interface of type wireguard and takes the kernel if
 * that works, else userspace. Returns the Backend with its reason. Throws AgentError when the
 * asked-for backend cannot work here.
 */
export async function selectBackend(
  choice: BackendChoice,
  iface: string,
  opts: BackendOptions,
): Promise<Backend> {
  const existing = await linkKind(opts.runner, iface);
  if (existing === 'wireguard' && choice !== 'userspace')
    return kernelBackend(opts, `${iface} exists as a kernel WireGuard interface`);
  if (existing === 'tun' && choice !== 'kernel')
    return userspaceKind(opts, `${iface} exists as a userspace (TUN) interface`);
  if (existing !== undefined) {
    throw new AgentError(
      'no_backend',
      `${iface} exists as a ${existing ?? 'non-WireGuard'} interface; remove it (ip link del ${iface}) or use --interface`,
    );
  }
  const userspace = (why: string): Backend => {
    if (!existsSync(TUN_DEVICE_PATH)) {
      throw new AgentError(
        'no_tun',
        `${why}, and there is no TUN device (${TUN_DEVICE_PATH}) for the userspace one: load it with "modprobe tun" (in a container: --device /dev/net/tun)`,
      );
    }
    if (userspaceCommand(opts.env) === null) {
      throw new AgentError(
        'no_backend',
        `${why}, and no userspace WireGuard (wgts) is installed: install @wiremesh/wg-tun or set ${USERSPACE_IMPLEMENTATION_ENV}`,
      );
    }
    return userspaceKind(
      opts,
      why === 'asked for'
        ? 'userspace WireGuard as asked (--backend userspace)'
        : `${why}; using the userspace device (wgts)`,
    );
  };
  if (choice === 'userspace') return userspace('asked for');
  const probe = `wmprobe${process.pid % 100_000}`;
  const r = await opts.runner.run('ip', ['link', 'add', 'dev', probe, 'type', 'wireguard']);
  if (r.code === 0) {
    await opts.runner.run('ip', ['link', 'del', 'dev', probe]);
    return kernelBackend(
      opts,
      choice === 'kernel'
        ? 'kernel WireGuard as asked (--backend kernel)'
        : 'the kernel has WireGuard (ip link add type wireguard works)',
    );
  }
  const why = `the kernel has no WireGuard (ip link add type wireguard: ${commandError(r)})`;
  if (choice === 'kernel')
    throw new AgentError('no_backend', `${why}: run with --backend userspace or auto`);
  return userspace(why);
}
