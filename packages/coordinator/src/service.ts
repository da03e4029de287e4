/**
 * `wiremesh-coordinator install-service`: the coordinator as a hardened systemd service
 * (systemd.exec(5)) running as a dedicated system user, with its SQLite database in a systemd
 * state directory and the first admin token made at install and printed once.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { openDatabase } from './coordinator.js';
import { migrate } from './migrations.js';
import { Store } from './store/index.js';

/** The service's name, user and group, and its state directory under /var/lib. */
export const SERVICE_NAME = 'wiremesh-coordinator';
/** Where its database lives (StateDirectory=, owned by the service user). */
export const SERVICE_DATA_DIR = `/var/lib/${SERVICE_NAME}`;
/** Where the unit is installed. */
export const SERVICE_UNIT_PATH = `/etc/systemd/system/${SERVICE_NAME}.service`;
/** systemd is PID 1 when this directory exists (sd_booted(3)). */
const SYSTEMD_RUN_DIR = '/run/systemd/system';
/** Ports below this need CAP_NET_BIND_SERVICE. */
const FIRST_UNPRIVILEGED_PORT = 1024;
const DATA_DIR_MODE = 0o700;
const UNIT_FILE_MODE = 0o644;

/** An installation error: one line saying what to do. */
export class ServiceError extends Error {}

/** What the unit runs. */
export interface ServiceOptions {
  /** The program and its leading arguments (node and this CLI's real path). */
  argv0: readonly string[];
  /** HTTP listen address HOST:PORT. */
  listen: string;
  /** The UDP reflector's port, or null. */
  reflectPort: number | null;
}

const quote = (s: string): string =>
  /^[A-Za-z0-9_./:=@+-]+$/.test(s) ? s : `"${s.replace(/["\\]/g, '\\$&')}"`;

/** The port of HOST:PORT ([v6]:PORT too); throws ServiceError when there is none. */
function listenPort(listen: string): number {
  const m = /:(\d+)$/.exec(listen);
  const port = m === null ? NaN : Number(m[1]);
  if (!(port >= 1 && port <= 65535))
    throw new ServiceError(`--listen ${listen}: give HOST:PORT, e.g. 0.0.0.0:8080`);
  return port;
}

/**
 * The unit file text. Pure. The service keeps no capability (one, CAP_NET_BIND_SERVICE, when a
 * port is below 1024), sees the file system read-only except its state directory, and no devices.
 */
export function coordinatorUnit(o: ServiceOptions): string {
  const privileged = [listenPort(o.listen), o.reflectPort ?? FIRST_UNPRIVILEGED_PORT].some(
    (p) => p < FIRST_UNPRIVILEGED_PORT,
  );
  const caps = privileged ? 'CAP_NET_BIND_SERVICE' : '';
  const argv = [
    ...o.argv0,
    'serve',
    '--listen',
    o.listen,
    '--data-dir',
    SERVICE_DATA_DIR,
    ...(o.reflectPort === null ? [] : ['--reflect-port', String(o.reflectPort)]),
  ];
  return [
    '[Unit]',
    'Description=wiremesh coordinator',
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${argv.map(quote).join(' ')}`,
    'Restart=on-failure',
    'RestartSec=2',
    `User=${SERVICE_NAME}`,
    `Group=${SERVICE_NAME}`,
    `StateDirectory=${SERVICE_NAME}`,
    'StateDirectoryMode=0700',
    `CapabilityBoundingSet=${caps}`,
    ...(privileged ? [`AmbientCapabilities=${caps}`] : []),
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'ProtectProc=invisible',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'SystemCallArchitectures=native',
    'UMask=0077',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** Runs a system command; throws ServiceError with its first stderr line. */
function system(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const line = (err.stderr ?? '').trim().split('\n')[0] || err.message.split('\n')[0];
    throw new ServiceError(`${cmd} ${args.join(' ')} failed: ${line}`);
  }
}

/**
 * Installs and starts the service: the system user, the state directory with the database and
 * its first admin token, the unit, `systemctl enable --now`. Calls `out` with the token once (before
 * systemctl runs, so a failure there cannot lose it). Throws ServiceError, having changed nothing,
 * when this is not root or systemd does not run this host.
 */
export async function installCoordinatorService(
  o: ServiceOptions,
  logger: Logger,
  out: (line: string) => void,
): Promise<void> {
  const unit = coordinatorUnit(o);
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    throw new ServiceError('install-service must run as root: run it with sudo');
  if (!existsSync(SYSTEMD_RUN_DIR))
    throw new ServiceError(
      `systemd does not run this host (no ${SYSTEMD_RUN_DIR}): start "${SERVICE_NAME} serve --data-dir DIR" from its init system instead (--print shows the unit)`,
    );
  let known = true;
  try {
    execFileSync('getent', ['passwd', SERVICE_NAME], { stdio: 'ignore' });
  } catch {
    known = false;
  }
  if (!known)
    system('useradd', [
      '--system',
      '--user-group',
      '--home-dir',
      SERVICE_DATA_DIR,
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      SERVICE_NAME,
    ]);
  mkdirSync(SERVICE_DATA_DIR, { recursive: true, mode: DATA_DIR_MODE });
  const db = await openDatabase({ dataDir: SERVICE_DATA_DIR }, logger);
  let token: string | null;
  try {
    await migrate(db, Date.now());
    token = await new Store(db).adminToken.ensure();
  } finally {
    await db.close();
  }
  system('chown', ['-R', `${SERVICE_NAME}:${SERVICE_NAME}`, SERVICE_DATA_DIR]);
  writeFileSync(SERVICE_UNIT_PATH, unit, { mode: UNIT_FILE_MODE });
  out(
    token === null
      ? `${SERVICE_NAME}: kept the existing admin token (replace it with: ${SERVICE_NAME} admin-token rotate --data-dir ${SERVICE_DATA_DIR})`
      : `${SERVICE_NAME}: admin token (shown once; store it now): ${token}`,
  );
  system('systemctl', ['daemon-reload']);
  system('systemctl', ['enable', `${SERVICE_NAME}.service`]);
  system('systemctl', ['restart', `${SERVICE_NAME}.service`]);
  out(
    `${SERVICE_NAME}: installed and started ${SERVICE_UNIT_PATH} (listening on ${o.listen}; journalctl -u ${SERVICE_NAME} for its log)`,
  );
}
