#!/usr/bin/env node
/**
 * `wgts [-f|--foreground] INTERFACE-NAME`: the userspace WireGuard daemon, a drop-in for
 * wireguard-go (its main.go): daemonizes unless told not to, logs by LOG_LEVEL, serves the UAPI
 * socket wg(8) and wg-quick(8) use, and cleans up on SIGINT/SIGTERM or when the interface is deleted.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

import { selectCrypto } from '@wiremesh/wg-core/native';

import {
  DAEMON_READY_TIMEOUT_MS,
  DEFAULT_TUN_MTU,
  EXIT_SETUP_FAILED,
  EXIT_SETUP_SUCCESS,
} from '../constants.js';
import { createLogger, parseLogLevel, type Logger } from '../log.js';
import { openTun, type TunDevice } from '../tun.js';
import type { UapiServer } from '../uapi-server.js';
import { openUdpBind } from '../udp.js';
import {
  createUserspaceDevice,
  type CryptoChoice,
  type UserspaceDevice,
} from '../userspace-device.js';

/** Environment variables: wireguard-go's, then wgts' own. */
const ENV_FOREGROUND = 'WG_PROCESS_FOREGROUND';
const ENV_LOG_LEVEL = 'LOG_LEVEL';
/** auto | noble | native: which crypto provider the daemon uses. */
const ENV_CRYPTO = 'WGTS_CRYPTO';
/** auto | udp | off: TUN and UDP offloads, UDP's only (one packet per TUN read/write), or none. */
const ENV_OFFLOAD = 'WGTS_OFFLOAD';
/** A file the daemonized process appends its log to (instead of /dev/null). */
const ENV_LOG_FILE = 'WGTS_LOG_FILE';
/** Set by the daemonizing parent: the fd on which the child reports "ready" or "failed <why>". */
const ENV_READY_FD = 'WGTS_READY_FD';
const READY_FD = 3;
const READY_MESSAGE = 'ready';
const FAILED_PREFIX = 'failed ';

const SCRIPT = fileURLToPath(import.meta.url);

function version(): string {
  try {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function usage(): string {
  return 'Usage: wgts [-f/--foreground] INTERFACE-NAME\n';
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

type OffloadChoice = 'auto' | 'udp' | 'off';

function parseOffload(text: string | undefined): OffloadChoice | null {
  if (text === undefined || text === '' || text === 'auto') return 'auto';
  return text === 'udp' || text === 'off' ? text : null;
}

function parseCrypto(text: string | undefined): CryptoChoice | null {
  if (text === undefined || text === '' || text === 'auto') return 'auto';
  return text === 'noble' || text === 'native' ? text : null;
}

/** Where the daemonized child writes: as wireguard-go, its output only when LOG_LEVEL asks for it. */
function daemonStdio(level: ReturnType<typeof parseLogLevel>): StdioOptions {
  const logFile = process.env[ENV_LOG_FILE];
  if (logFile !== undefined && logFile !== '') {
    const fd = openSync(logFile, 'a', 0o600);
    return ['ignore', fd, fd, 'pipe'];
  }
  const inherit = process.env[ENV_LOG_LEVEL] !== undefined && level !== 'silent';
  return inherit
    ? ['ignore', 'inherit', 'inherit', 'pipe']
    : ['ignore', 'ignore', 'ignore', 'pipe'];
}

/**
 * Re-runs this program detached with WG_PROCESS_FOREGROUND=1 and waits for it to report: exits 0
 * once its UAPI socket is up (so wg-quick may configure it at once), 1 if it failed or went silent.
 */
function daemonize(
  args: readonly string[],
  logger: Logger,
  level: ReturnType<typeof parseLogLevel>,
): void {
  let stdio: StdioOptions;
  try {
    stdio = daemonStdio(level);
  } catch (err) {
    logger.error(`Failed to open ${process.env[ENV_LOG_FILE]}: ${message(err)}`);
    process.exit(EXIT_SETUP_FAILED);
  }
  const child = spawn(process.execPath, [...process.execArgv, SCRIPT, ...args], {
    detached: true,
    stdio,
    env: { ...process.env, [ENV_FOREGROUND]: '1', [ENV_READY_FD]: String(READY_FD) },
  });
  const report = child.stdio[READY_FD] as Readable;
  let text = '';
  let settled = false;
  const finish = (ok: boolean, why?: string): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    report.destroy();
    if (!ok) {
      if (why !== undefined) logger.error(why);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      process.exit(EXIT_SETUP_FAILED);
    }
    child.unref();
    process.exit(EXIT_SETUP_SUCCESS);
  };
  const timer = setTimeout(
    () =>
      finish(
        false,
        `Failed to daemonize: no report from the daemon within ${DAEMON_READY_TIMEOUT_MS} ms`,
      ),
    DAEMON_READY_TIMEOUT_MS,
  );
  child.once('error', (err) => finish(false, `Failed to daemonize: ${err.message}`));
  report.setEncoding('utf8');
  report.on('data', (chunk: string) => {
    text += chunk;
    const nl = text.indexOf('\n');
    if (nl < 0) return;
    const line = text.slice(0, nl);
    if (line === READY_MESSAGE) finish(true);
    else finish(false, line.startsWith(FAILED_PREFIX) ? line.slice(FAILED_PREFIX.length) : line);
  });
  report.on('end', () => {
    // Let the exit status arrive, so the message can say how the daemon ended.
    child.once('exit', (code, signal) =>
      finish(
        false,
        `Failed to daemonize: the daemon exited before it was ready (${signal ?? `status ${code}`})`,
      ),
    );
    if (child.exitCode !== null || child.signalCode !== null) {
      finish(false, `Failed to daemonize: the daemon exited before it was ready`);
    }
  });
}

/** The daemon's report channel to a daemonizing parent, if there is one. */
function takeReadyFd(): number | null {
  const value = process.env[ENV_READY_FD];
  delete process.env[ENV_READY_FD];
  return value === String(READY_FD) ? READY_FD : null;
}

function report(fd: number | null, line: string): void {
  if (fd === null) return;
  try {
    writeSync(fd, `${line.replace(/\n/g, ' ')}\n`);
    closeSync(fd);
  } catch {
    // The parent gave up waiting; nothing to tell.
  }
}

/** Runs the device in this process until a signal or the interface's deletion. */
async function runForeground(iface: string): Promise<void> {
  const readyFd = takeReadyFd();
  const level = parseLogLevel(process.env[ENV_LOG_LEVEL]);
  let logger = createLogger({ level, prefix: `(${iface}) ` });
  logger.verbose(`Starting wgts version ${version()}`);

  let tun: TunDevice | undefined;
  let device: UserspaceDevice | undefined;
  let uapi: UapiServer | undefined;
  const fail = (why: string): never => {
    // With a parent waiting, it prints the line; printing here too would show it twice.
    if (readyFd === null) logger.error(why);
    else report(readyFd, `${FAILED_PREFIX}${why}`);
    uapi?.close();
    device?.close();
    tun?.close();
    process.exit(EXIT_SETUP_FAILED);
  };

  const crypto = parseCrypto(process.env[ENV_CRYPTO]);
  if (crypto === null)
    fail(`${ENV_CRYPTO} must be auto, noble or native, got '${process.env[ENV_CRYPTO]}'`);

  const offload = parseOffload(process.env[ENV_OFFLOAD]);
  if (offload === null)
    fail(`${ENV_OFFLOAD} must be auto, udp or off, got '${process.env[ENV_OFFLOAD]}'`);

  try {
    tun = openTun({ name: iface, mtu: DEFAULT_TUN_MTU, offload: offload === 'auto' });
  } catch (err) {
    fail(`Failed to create TUN device: ${message(err)}`);
  }
  const name = tun!.name;
  if (name !== iface) logger = createLogger({ level, prefix: `(${name}) ` });
  try {
    device = createUserspaceDevice({
      name,
      tun: tun!,
      mtu: DEFAULT_TUN_MTU,
      crypto: crypto!,
      logger,
      ...(offload === 'off'
        ? {
            openBind: (port: number, fwmark: number) =>
              openUdpBind({ port, fwmark, offload: false }),
          }
        : {}),
    });
  } catch (err) {
    fail(`Failed to start the device: ${message(err)}`);
  }
  const dev = device!;
  logger.info(`Crypto: ${dev.cryptoName} (${dev.cryptoReason})`);
  const tunOffloads = tun!.offloads;
  logger.info(
    tunOffloads.tso
      ? `TUN offloads: TSO4/TSO6${tunOffloads.uso ? ', USO4/USO6' : ''}${tunOffloads.note === '' ? '' : ` (${tunOffloads.note})`}`
      : `TUN offloads ${tunOffloads.note}${offload === 'auto' ? '; one packet per TUN read and write' : ` (${ENV_OFFLOAD}=${offload})`}`,
  );
  logger.verbose('Device started');
  try {
    uapi = await dev.listenUapi();
  } catch (err) {
    fail(`UAPI listen error: ${message(err)}`);
  }

  let stopping = false;
  const stop = (why: string, status: number): void => {
    if (stopping) return;
    stopping = true;
    logger.verbose(why);
    dev.close();
    logger.verbose('Shutting down');
    process.exit(status);
  };
  process.on('SIGINT', () => stop('Received SIGINT', EXIT_SETUP_SUCCESS));
  process.on('SIGTERM', () => stop('Received SIGTERM', EXIT_SETUP_SUCCESS));
  process.on('uncaughtException', (err) => {
    logger.error(`Unexpected error: ${err.stack ?? err.message}`);
    stop('Closing after an unexpected error', EXIT_SETUP_FAILED);
  });
  void dev.done.then((err) => {
    if (err !== null) stop(`Interface ${name} is gone (${message(err)})`, EXIT_SETUP_SUCCESS);
  });
  report(readyFd, READY_MESSAGE);
}

function main(argv: readonly string[]): void {
  if (argv.length === 1 && argv[0] === '--version') {
    const { reason } = selectCrypto();
    process.stdout.write(
      `wgts v${version()}\n\nUserspace WireGuard daemon (wiremesh, TypeScript) for ${process.platform}-${process.arch}.\n` +
        `Crypto (auto): ${reason}\n`,
    );
    return;
  }
  if (argv.length === 1 && (argv[0] === '-h' || argv[0] === '--help')) {
    process.stdout.write(usage());
    return;
  }
  let foreground = false;
  let iface: string | undefined;
  if (argv.length === 2 && (argv[0] === '-f' || argv[0] === '--foreground')) {
    foreground = true;
    iface = argv[1];
  } else if (argv.length === 1 && !argv[0]!.startsWith('-')) {
    iface = argv[0];
  }
  if (iface === undefined || iface === '') {
    process.stderr.write(usage());
    process.exit(EXIT_SETUP_FAILED);
  }
  if (!foreground) foreground = process.env[ENV_FOREGROUND] === '1';
  const level = parseLogLevel(process.env[ENV_LOG_LEVEL]);
  if (!foreground) {
    daemonize(argv, createLogger({ level, prefix: `(${iface}) ` }), level);
    return;
  }
  runForeground(iface).catch((err: unknown) => {
    process.stderr.write(`wgts: ${message(err)}\n`);
    process.exit(EXIT_SETUP_FAILED);
  });
}

main(process.argv.slice(2));
