/**
 * Assembles a running coordinator: storage (SQLite in a data directory, or PostgreSQL), schema
 * migrations, the first admin token, the push hub, the UDP reflector and the HTTP server.
 */
import { chmodSync, existsSync, mkdirSync, openSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import pino, { type Logger } from 'pino';
import {
  DEFAULT_DATA_DIR,
  DEFAULT_HTTP_PORT,
  DEFAULT_LISTEN,
  REGISTER_BURST,
  REGISTER_REFILL_PER_S,
  SEAL_KEY_FILE_NAME,
  SQLITE_FILE_NAME,
} from './constants.js';
import type { Db } from './db.js';
import type { Server as TlsServer } from 'node:tls';
import { formatFingerprint } from '@wiremesh/protocol';
import { Hub } from './hub.js';
import { isLoopbackHost, loadTlsFiles } from './tls.js';
import { loadSealKey } from './key-seal.js';
import { Metrics } from './metrics.js';
import { migrate } from './migrations.js';
import { openPostgres } from './postgres.js';
import { RateLimiter } from './rate-limit.js';
import { startReflector, type Reflector } from './reflector.js';
import { RelayFallback } from './relay-fallback.js';
import { DEFAULT_WEB_ROOT, buildServer } from './server.js';
import { openSqlite } from './sqlite.js';
import { Store } from './store/index.js';

/** The coordinator's version string, reported at /api/v1/info. */
export const COORDINATOR_VERSION = '0.1.0';

const DATA_DIR_MODE = 0o700;
const SECRET_FILE_MODE = 0o600;

/** Options of `startCoordinator` (and of `wiremesh-coordinator serve`). */
export interface CoordinatorOptions {
  /** `host:port` or `[v6]:port` to listen on; port 0 picks one. Default 127.0.0.1:8080. */
  listen?: string;
  /** Directory of the SQLite database and the seal key (created 0700, database files 0600). */
  dataDir?: string;
  /**
   * The key that seals generated private keys in the database (created 0600 if missing); default
   * `DATA_DIR/seal.key`. Replicas on one PostgreSQL need the same file.
   */
  sealKeyFile?: string;
  /** A postgres:// URL: use PostgreSQL instead of SQLite. */
  database?: string;
  /** UDP reflector port on the listen host (0 picks one); undefined or null turns it off. */
  reflectPort?: number | null;
  /** Write a newly created admin token to this file (0600) as well as returning it. */
  adminTokenFile?: string;
  /** A pino logger; default JSON logs to stderr at `logLevel`. */
  logger?: Logger;
  logLevel?: string;
  /** Registration rate limit per client address. */
  registerBurst?: number;
  registerRefillPerS?: number;
  /** Directory of the web UI files. */
  webRoot?: string;
  /** Wall clock in unix ms (tests move it to expire keys). */
  clock?: () => number;
  /**
   * How long a pair of nodes may show no direct handshake before the coordinator routes it through
   * a relay node (default RELAY_AFTER_MS); null turns the automatic relay fallback off.
   */
  relayAfterMs?: number | null;
  /** A push stream whose unsent bytes exceed this is closed (default STREAM_MAX_BUFFER_BYTES). */
  streamMaxBufferBytes?: number;
  /** Longest time a request (headers and body) may take to arrive (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /** Show network names at /metrics without authentication (behind a private scraper). */
  metricsPublic?: boolean;
  /** PEM certificate (chain) and key files: serve HTTPS. Re-read by `reloadTls` (SIGHUP). */
  tlsCert?: string;
  tlsKey?: string;
  /** Serve plain HTTP on a non-loopback address (behind a TLS-terminating reverse proxy). */
  insecureHttp?: boolean;
}

/** A running coordinator. */
export interface Coordinator {
  /** Base URL, e.g. http://127.0.0.1:41234. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly reflectPort: number | null;
  /** The admin token when this start created it (first start), else null. Shown once. */
  readonly adminToken: string | null;
  readonly store: Store;
  readonly hub: Hub;
  /** The automatic relay fallback, or null when turned off. */
  readonly relayFallback: RelayFallback | null;
  /** SHA-256 of the served certificate (DER), or null without TLS. */
  readonly tlsFingerprint: Uint8Array | null;
  /**
   * Re-reads the certificate and key files; new connections get the new certificate. Throws (and
   * keeps serving the old one) when the files are unreadable or do not match.
   */
  reloadTls(): Uint8Array;
  /** Answers one HTTP request in process, without a socket (fastify's inject; soak tests). */
  inject(request: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** Splits `host:port`, `[v6]:port` or a bare host. Throws RangeError for a bad port. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  if (m === null || m[1] === undefined)
    throw new RangeError(`--listen ${text}: expected host:port`);
  const port = m[2] === undefined ? DEFAULT_HTTP_PORT : Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError(`--listen ${text}: bad port`);
  return { host: m[1], port };
}

/** Redaction paths: secrets never reach the log even if a future log call passes a body. */
const REDACT = [
  'req.headers.authorization',
  '*.nodeSecret',
  '*.enrollmentKey',
  '*.privateKey',
  '*.token',
  '*.key',
];

/** Opens the database an options object names (SQLite in `dataDir` by default). */
export async function openDatabase(
  opts: Pick<CoordinatorOptions, 'dataDir' | 'database'>,
  logger: Logger,
): Promise<Db> {
  if (opts.database !== undefined) {
    return openPostgres(opts.database, (e) =>
      logger.error({ err: e }, 'postgres connection error'),
    );
  }
  const dir = dataDirOf(opts);
  const file = join(dir, SQLITE_FILE_NAME);
  // The file exists 0600 before SQLite opens it; its -wal and -shm take the same mode.
  if (!existsSync(file)) closeSync(openSync(file, 'a', SECRET_FILE_MODE));
  restrictDatabaseFiles(file);
  return openSqlite(file);
}

/** Creates the data directory if needed and makes it 0700 whatever the umask; returns its path. */
function dataDirOf(opts: Pick<CoordinatorOptions, 'dataDir'>): string {
  const dir = opts.dataDir ?? DEFAULT_DATA_DIR;
  mkdirSync(dir, { recursive: true, mode: DATA_DIR_MODE });
  chmodSync(dir, DATA_DIR_MODE);
  return dir;
}

/** Makes the SQLite database and its WAL files 0600 (they hold generated client keys). */
function restrictDatabaseFiles(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`])
    if (existsSync(f)) chmodSync(f, SECRET_FILE_MODE);
}

/** Starts a coordinator. Rejects when the database or a port cannot be opened. */
export async function startCoordinator(opts: CoordinatorOptions = {}): Promise<Coordinator> {
  const logger =
    opts.logger ??
    pino({
      level: opts.logLevel ?? 'info',
      redact: REDACT,
      base: { service: 'wiremesh-coordinator' },
    });
  const { host, port } = parseListen(opts.listen ?? DEFAULT_LISTEN);
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
    throw new Error('give --tls-cert and --tls-key together');
  let tls = opts.tlsCert === undefined ? null : loadTlsFiles(opts.tlsCert, opts.tlsKey ?? '');
  if (tls === null && !isLoopbackHost(host) && opts.insecureHttp !== true)
    throw new Error(
      `refusing to serve plain HTTP on ${host}: node secrets and tokens would cross the network in the clear; give --tls-cert FILE --tls-key FILE, or --insecure-http behind a TLS-terminating proxy`,
    );
  const db = await openDatabase(opts, logger);
  let reflector: Reflector | null = null;
  try {
    await migrate(db, Date.now());
    if (db.dialect === 'sqlite') restrictDatabaseFiles(join(dataDirOf(opts), SQLITE_FILE_NAME));
    const seal = loadSealKey(opts.sealKeyFile ?? join(dataDirOf(opts), SEAL_KEY_FILE_NAME));
    const store = new Store(db, opts.clock, seal);
    const sealed = await store.extClients.sealStored();
    if (sealed > 0) logger.info({ count: sealed }, 'sealed stored private keys');
    const adminToken = await store.adminToken.ensure();
    if (adminToken !== null && opts.adminTokenFile !== undefined) {
      writeFileSync(opts.adminTokenFile, `${adminToken}\n`, { mode: SECRET_FILE_MODE });
      chmodSync(opts.adminTokenFile, SECRET_FILE_MODE);
    }
    const metrics = new Metrics();
    if (opts.reflectPort !== undefined && opts.reflectPort !== null)
      reflector = await startReflector(host, opts.reflectPort, metrics);
    const reflectPort = reflector?.port ?? null;
    const hub = new Hub(
      store,
      reflectPort,
      metrics,
      (e) => logger.error({ err: e }, 'push fan-out failed'),
      opts.streamMaxBufferBytes === undefined ? {} : { maxBufferBytes: opts.streamMaxBufferBytes },
    );
    const relayFallback =
      opts.relayAfterMs === null
        ? null
        : new RelayFallback(store, {
            ...(opts.relayAfterMs !== undefined ? { relayAfterMs: opts.relayAfterMs } : {}),
            ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
            onError: (e) => logger.error({ err: e }, 'relay fallback failed'),
            onDecision: (networkId, d) =>
              logger.info(
                {
                  network: networkId,
                  relayed: d.add.map((r) => `${r.a}-${r.b} via ${r.relayId}`),
                  direct: d.remove.map((r) => `${r.a}-${r.b}`),
                },
                'relay fallback changed paths',
              ),
          });
    const app = buildServer({
      store,
      hub,
      relayFallback,
      metrics,
      logger,
      reflectPort,
      version: COORDINATOR_VERSION,
      registerLimiter: new RateLimiter(
        opts.registerBurst ?? REGISTER_BURST,
        opts.registerRefillPerS ?? REGISTER_REFILL_PER_S,
      ),
      webRoot: opts.webRoot ?? DEFAULT_WEB_ROOT,
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
      metricsPublic: opts.metricsPublic === true,
      tls: tls === null ? null : { cert: tls.cert, key: tls.key },
      fingerprint: () => tls?.fingerprint ?? null,
      ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
    });
    await app.listen({ host, port });
    const addr = app.server.address();
    const boundPort = typeof addr === 'object' && addr !== null ? addr.port : port;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    logger.info(
      {
        listen: `${urlHost}:${boundPort}`,
        reflectPort,
        storage: db.dialect,
        tls: tls === null ? null : formatFingerprint(tls.fingerprint),
      },
      'coordinator started',
    );
    const r = reflector;
    return {
      url: `${tls === null ? 'http' : 'https'}://${urlHost}:${boundPort}`,
      get tlsFingerprint() {
        return tls?.fingerprint ?? null;
      },
      reloadTls() {
        if (tls === null || opts.tlsCert === undefined || opts.tlsKey === undefined)
          throw new Error('the coordinator serves no TLS; start it with --tls-cert and --tls-key');
        const next = loadTlsFiles(opts.tlsCert, opts.tlsKey);
        (app.server as unknown as TlsServer).setSecureContext({ cert: next.cert, key: next.key });
        tls = next;
        logger.info({ tls: formatFingerprint(next.fingerprint) }, 'TLS certificate reloaded');
        return next.fingerprint;
      },
      host,
      port: boundPort,
      reflectPort,
      adminToken,
      store,
      hub,
      relayFallback,
      inject: (request) => app.inject(request),
      async close() {
        relayFallback?.close();
        hub.close();
        await app.close();
        await r?.close();
        await db.close();
      },
    };
  } catch (e) {
    await reflector?.close();
    await db.close();
    throw e;
  }
}
