#!/usr/bin/env node
/**
 * `wiremesh-coordinator`: `serve` runs the coordinator; `admin-token rotate` replaces the admin
 * token directly in the database; network/key/node/gateway/extclient are admin commands over
 * the REST API (human tables, or `--json` for scripts).
 */
import { realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import {
  ADMIN_ROUTES,
  PROTOCOL_VERSION,
  formatEndpoint,
  type DnsRecord,
  formatFingerprint,
  type AdminToken,
  type AuditEntry,
  type EnrollmentKey,
  type ExtClient,
  type Network,
  type NetworkDns,
  type Node,
} from '@wiremesh/protocol';
import { DEFAULT_DATA_DIR, DEFAULT_LISTEN, SQLITE_FILE_NAME } from './constants.js';
import { COORDINATOR_VERSION, openDatabase, startCoordinator } from './coordinator.js';
import { migrate } from './migrations.js';
import {
  coordinatorUnit,
  installCoordinatorService,
  SERVICE_DATA_DIR,
  SERVICE_NAME,
  ServiceError,
} from './service.js';
import { Store } from './store/index.js';
import { table } from './table.js';

const PROG = 'wiremesh-coordinator';
const DEFAULT_SERVER = `http://${DEFAULT_LISTEN}`;
const S_PER_H = 3600;
const S_PER_D = 24 * S_PER_H;
const S_PER_M = 60;
const MS_PER_S = 1000;

const USAGE = `usage: ${PROG} <command> [options]

  serve [--listen HOST:PORT] [--data-dir DIR] [--database postgres://...] [--reflect-port N]
        [--admin-token-file FILE] [--log-level LEVEL] [--register-burst N] [--register-rate PER_S]
        [--seal-key-file FILE]   (seals generated client keys; default DIR/seal.key, 0600)
        [--metrics-public]       (network names at /metrics without the admin token)
        [--tls-cert FILE --tls-key FILE]   (HTTPS; both re-read on SIGHUP)
        [--insecure-http]        (plain HTTP beyond loopback: only behind a TLS-terminating proxy)
        [--relay-after S]   (seconds without a direct handshake before a pair is relayed; 0 = never)
  admin-token rotate [--data-dir DIR | --database URL]
  install-service [--listen HOST:PORT] [--reflect-port N] [--print]
        (a hardened systemd unit running as user ${SERVICE_NAME}, data in ${SERVICE_DATA_DIR})

Admin commands (over the REST API; --server URL or $WIREMESH_SERVER, default ${DEFAULT_SERVER};
--token TOKEN or $WIREMESH_ADMIN_TOKEN; --json for machine output):
  network list | show NAME | delete NAME
  network create NAME --cidr 10.8.0.0/16 [--ipv6 fd00:8::/64] [--port N] [--keepalive S] [--mtu N] [--allow-without-key]
                 [--allow-public-range] [--allow-overlap]
  network update NAME [--port N] [--keepalive S] [--mtu N] [--allow-without-key | --require-key]
  key list --network NET | revoke --network NET ID
  key create --network NET [--uses N] [--expires 24h] [--auto-approve] [--name NAME]
  node list [--network NET] [--state pending|approved|rejected|removed] | show ID | map ID
  node approve ID | reject ID | remove ID | release ID | rename ID NAME
  gateway egress ID --ranges CIDR[,CIDR...] [--interface IFACE] | egress-off ID
  gateway ingress ID [--endpoint HOST:PORT] | ingress-off ID
  gateway relay ID [--nodes ID[,ID...]] | relay-off ID
  extclient list --network NET | show ID | delete ID | config ID [--out FILE]
  extclient create --network NET --name NAME [--ingress ID] [--public-key KEY] [--dns IP[,IP]] [--no-mesh-dns]
  extclient qr ID [--png FILE]
  dns show --network NET | domain --network NET DOMAIN [--force]
  dns add --network NET NAME IP | list --network NET | remove --network NET NAME|ID
  token list | create NAME --scope read|approve|full | revoke ID|NAME
        (named admin tokens: read = every GET and /metrics, approve = also approve/reject, full)
  audit list [--limit N]   (mutating admin calls: who, what, when, from where)
`;

class CliError extends Error {}

const OPTIONS = {
  listen: { type: 'string' },
  'data-dir': { type: 'string' },
  database: { type: 'string' },
  'reflect-port': { type: 'string' },
  'admin-token-file': { type: 'string' },
  'seal-key-file': { type: 'string' },
  'metrics-public': { type: 'boolean' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'insecure-http': { type: 'boolean' },
  'log-level': { type: 'string' },
  'register-burst': { type: 'string' },
  'register-rate': { type: 'string' },
  'relay-after': { type: 'string' },
  server: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  cidr: { type: 'string' },
  ipv6: { type: 'string' },
  port: { type: 'string' },
  keepalive: { type: 'string' },
  mtu: { type: 'string' },
  'allow-without-key': { type: 'boolean' },
  'allow-public-range': { type: 'boolean' },
  'allow-overlap': { type: 'boolean' },
  'require-key': { type: 'boolean' },
  network: { type: 'string' },
  uses: { type: 'string' },
  expires: { type: 'string' },
  'auto-approve': { type: 'boolean' },
  name: { type: 'string' },
  state: { type: 'string' },
  ranges: { type: 'string' },
  interface: { type: 'string' },
  endpoint: { type: 'string' },
  nodes: { type: 'string' },
  ingress: { type: 'string' },
  'public-key': { type: 'string' },
  dns: { type: 'string' },
  out: { type: 'string' },
  png: { type: 'string' },
  print: { type: 'boolean' },
  'no-mesh-dns': { type: 'boolean' },
  force: { type: 'boolean' },
  scope: { type: 'string' },
  limit: { type: 'string' },
} as const;

type Values = ReturnType<
  typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>
>['values'];

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new CliError(`--${flag} must be a whole number, got ${v}`);
  return Number(v);
}

/** Parses a duration like 90s, 30m, 24h, 7d (or plain seconds) into seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text);
  if (m === null)
    throw new CliError(`--expires ${text}: use a number with s, m, h or d (e.g. 24h)`);
  const unit = { '': 1, s: 1, m: S_PER_M, h: S_PER_H, d: S_PER_D }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

function list(v: string | undefined): string[] | undefined {
  return v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
}

function need(v: string | undefined, what: string): string {
  if (v === undefined || v === '') throw new CliError(`missing ${what}`);
  return v;
}

/** A REST client with the admin token. */
class Client {
  constructor(
    private readonly server: string,
    private readonly token: string,
  ) {}

  async call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; bytes: Buffer; json: unknown }> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let r: Response;
    try {
      r = await fetch(this.server.replace(/\/$/, '') + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new CliError(
        `cannot reach the coordinator at ${this.server} (${(e as Error).cause ?? (e as Error).message}); is it running? set --server`,
      );
    }
    const bytes = Buffer.from(await r.arrayBuffer());
    let json: unknown = null;
    if ((r.headers.get('content-type') ?? '').includes('json') && bytes.length > 0)
      json = JSON.parse(bytes.toString('utf8'));
    if (r.status >= 400) {
      const e = json as { code?: string; message?: string } | null;
      throw new CliError(
        e?.message !== undefined ? `${e.message} (${e.code})` : `HTTP ${r.status}`,
      );
    }
    return { status: r.status, bytes, json };
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.call(method, path, body)).json as T;
  }
}

const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};

function ago(ms: number | null): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < S_PER_M
    ? `${s}s ago`
    : s < S_PER_H
      ? `${Math.round(s / S_PER_M)}m ago`
      : `${Math.round(s / S_PER_H)}h ago`;
}

function showNetworks(ns: Network[]): string {
  return table(
    ['NAME', 'IPV4', 'IPV6', 'PORT', 'KEEPALIVE', 'MTU', 'OPEN JOIN', 'REVISION'],
    ns.map((n) => [
      n.name,
      n.ipv4Cidr,
      n.ipv6Cidr,
      n.listenPort,
      n.persistentKeepalive,
      n.mtu,
      n.allowJoinWithoutKey ? 'yes' : 'no',
      n.revision,
    ]),
  );
}

function showKeys(ks: EnrollmentKey[]): string {
  return table(
    ['ID', 'NAME', 'USES', 'EXPIRES', 'AUTO-APPROVE', 'REVOKED'],
    ks.map((k) => [
      k.id,
      k.name,
      k.maxUses === null ? `${k.uses}/unlimited` : `${k.uses}/${k.maxUses}`,
      k.expiresAt === null ? 'never' : new Date(k.expiresAt).toISOString(),
      k.autoApprove ? 'yes' : 'no',
      k.revoked ? 'yes' : 'no',
    ]),
  );
}

function showTokens(ts: AdminToken[]): string {
  return table(
    ['ID', 'NAME', 'SCOPE', 'CREATED', 'LAST USED', 'REVOKED'],
    ts.map((t) => [
      t.id,
      t.name,
      t.scope,
      new Date(t.createdAt).toISOString(),
      t.lastUsedAt === null ? 'never' : ago(t.lastUsedAt),
      t.revoked ? 'yes' : 'no',
    ]),
  );
}

function showAudit(es: AuditEntry[]): string {
  return table(
    ['WHEN', 'WHO', 'FROM', 'WHAT', 'STATUS'],
    es.map((e) => [
      new Date(e.at).toISOString(),
      e.actor,
      e.ip,
      `${e.method} ${e.path}`,
      String(e.status),
    ]),
  );
}

function showNodes(ns: Node[]): string {
  return table(
    ['ID', 'NETWORK', 'NAME', 'STATE', 'ADDRESS', 'ENDPOINT', 'BACKEND', 'ROLES', 'LAST SEEN'],
    ns.map((n) => [
      n.id,
      n.network,
      n.name,
      n.state,
      n.addressV6 === null ? n.addressV4 : `${n.addressV4}, ${n.addressV6}`,
      n.reflectedEndpoint !== null
        ? formatEndpoint(n.reflectedEndpoint)
        : n.localEndpoints[0]
          ? formatEndpoint(n.localEndpoints[0])
          : null,
      n.backend,
      [
        n.egress ? `egress(${n.egress.ranges.join(' ')})` : '',
        n.isIngressGateway ? 'ingress' : '',
        n.isRelay ? 'relay' : '',
        n.relayedBy ? `relayed-by ${n.relayedBy}` : '',
      ]
        .filter(Boolean)
        .join(' '),
      ago(n.lastSeenAt),
    ]),
  );
}

function showExtClients(cs: ExtClient[]): string {
  return table(
    ['ID', 'NETWORK', 'NAME', 'ADDRESS', 'INGRESS', 'PUBLIC KEY'],
    cs.map((c) => [
      c.id,
      c.network,
      c.name,
      c.addressV6 === null ? c.addressV4 : `${c.addressV4}, ${c.addressV6}`,
      c.ingressNodeId,
      c.publicKey,
    ]),
  );
}

function showDns(d: NetworkDns): string {
  return `domain ${d.domain} (network ${d.network})\n${table(
    ['NAME', 'KIND', 'ADDRESSES', 'ID'],
    d.names.map((n) => [n.dnsName, n.kind, n.addresses.join(', '), n.id]),
  )}`;
}

function showRecords(rs: DnsRecord[]): string {
  return table(
    ['ID', 'NETWORK', 'NAME', 'IP'],
    rs.map((r) => [r.id, r.network, r.dnsName, r.ip]),
  );
}

async function serve(v: Values): Promise<void> {
  const reflect = int(v['reflect-port'], 'reflect-port');
  const relayAfterS = int(v['relay-after'], 'relay-after');
  const c = await startCoordinator({
    ...(relayAfterS !== undefined
      ? { relayAfterMs: relayAfterS === 0 ? null : relayAfterS * MS_PER_S }
      : {}),
    listen: v.listen ?? DEFAULT_LISTEN,
    dataDir: v['data-dir'] ?? DEFAULT_DATA_DIR,
    database: v.database,
    reflectPort: reflect ?? null,
    adminTokenFile: v['admin-token-file'],
    sealKeyFile: v['seal-key-file'],
    metricsPublic: v['metrics-public'] === true,
    tlsCert: v['tls-cert'],
    tlsKey: v['tls-key'],
    insecureHttp: v['insecure-http'] === true,
    registerBurst: int(v['register-burst'], 'register-burst'),
    registerRefillPerS: int(v['register-rate'], 'register-rate'),
    logger: pino({ level: v['log-level'] ?? 'info', base: { service: PROG } }, pino.destination(2)),
  }).catch((e: unknown) => {
    // Refusals (no TLS beyond loopback, bad certificate files, a port in use) as one line.
    throw new CliError((e as Error).message);
  });
  if (c.adminToken !== null) {
    out(`${PROG}: first start: admin token (shown once; store it now): ${c.adminToken}`);
  }
  const storage =
    v.database !== undefined
      ? 'postgresql'
      : `sqlite ${v['data-dir'] ?? DEFAULT_DATA_DIR}/${SQLITE_FILE_NAME}`;
  out(
    `${PROG}: listening on ${c.url} (${storage})${c.reflectPort === null ? '' : `, reflect port ${c.reflectPort}/udp`}`,
  );
  if (c.tlsFingerprint !== null) {
    out(`${PROG}: TLS certificate SHA-256 ${formatFingerprint(c.tlsFingerprint)}`);
    // certbot and friends renew the files, then signal: new connections get the new certificate.
    process.on('SIGHUP', () => {
      try {
        out(`${PROG}: TLS certificate reloaded: SHA-256 ${formatFingerprint(c.reloadTls())}`);
      } catch (e) {
        process.stderr.write(
          `${PROG}: TLS reload failed, still serving the old certificate: ${(e as Error).message}\n`,
        );
      }
    });
  }
  const stop = (): void => {
    c.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function installService(v: Values): Promise<void> {
  const options = {
    argv0: [process.execPath, realpathSync(fileURLToPath(import.meta.url))],
    listen: v.listen ?? DEFAULT_LISTEN,
    reflectPort: int(v['reflect-port'], 'reflect-port') ?? null,
  };
  try {
    if (v.print) return void process.stdout.write(coordinatorUnit(options));
    await installCoordinatorService(options, pino({ level: 'warn' }, pino.destination(2)), out);
  } catch (e) {
    if (e instanceof ServiceError) throw new CliError(e.message);
    throw e;
  }
}

async function rotate(v: Values): Promise<void> {
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const db = await openDatabase(
    { dataDir: v['data-dir'] ?? DEFAULT_DATA_DIR, database: v.database },
    logger,
  );
  try {
    await migrate(db, Date.now());
    const token = await new Store(db).adminToken.rotate();
    if (v.json) out(JSON.stringify({ token }));
    else out(`${PROG}: new admin token (shown once; the old one no longer works): ${token}`);
  } finally {
    await db.close();
  }
}

async function adminCommand(group: string, args: string[], v: Values): Promise<void> {
  const token = v.token ?? process.env.WIREMESH_ADMIN_TOKEN;
  if (token === undefined || token === '')
    throw new CliError('no admin token: pass --token or set WIREMESH_ADMIN_TOKEN');
  const c = new Client(v.server ?? process.env.WIREMESH_SERVER ?? DEFAULT_SERVER, token);
  const [verb, arg, arg2] = args;
  const print = (value: unknown, human: () => string): void =>
    out(v.json ? JSON.stringify(value, null, 2) : human());
  const id = (): string => need(arg, 'an ID argument');
  switch (`${group} ${verb ?? ''}`) {
    case 'network list': {
      const ns = await c.json<Network[]>('GET', ADMIN_ROUTES.networks);
      return print(ns, () => showNetworks(ns));
    }
    case 'network show': {
      const n = await c.json<Network>('GET', ADMIN_ROUTES.network(id()));
      return print(n, () => showNetworks([n]));
    }
    case 'network create': {
      const n = await c.json<Network>('POST', ADMIN_ROUTES.networks, {
        name: id(),
        ipv4Cidr: need(v.cidr, '--cidr'),
        ipv6Cidr: v.ipv6,
        listenPort: int(v.port, 'port'),
        persistentKeepalive: int(v.keepalive, 'keepalive'),
        mtu: int(v.mtu, 'mtu'),
        allowJoinWithoutKey: v['allow-without-key'] === true,
        ...(v['allow-public-range'] === true ? { allowPublicRange: true } : {}),
        ...(v['allow-overlap'] === true ? { allowOverlap: true } : {}),
      });
      return print(n, () => showNetworks([n]));
    }
    case 'network update': {
      const n = await c.json<Network>('PATCH', ADMIN_ROUTES.network(id()), {
        listenPort: int(v.port, 'port'),
        persistentKeepalive: int(v.keepalive, 'keepalive'),
        mtu: int(v.mtu, 'mtu'),
        allowJoinWithoutKey: v['allow-without-key'] ? true : v['require-key'] ? false : undefined,
      });
      return print(n, () => showNetworks([n]));
    }
    case 'network delete':
      await c.call('DELETE', ADMIN_ROUTES.network(id()));
      return print({ deleted: arg }, () => `network ${arg} deleted`);
    case 'key list': {
      const ks = await c.json<EnrollmentKey[]>(
        'GET',
        ADMIN_ROUTES.keys(need(v.network, '--network')),
      );
      return print(ks, () => showKeys(ks));
    }
    case 'key create': {
      const k = await c.json<EnrollmentKey>(
        'POST',
        ADMIN_ROUTES.keys(need(v.network, '--network')),
        {
          name: v.name,
          maxUses: int(v.uses, 'uses'),
          expiresInS: v.expires === undefined ? undefined : parseDuration(v.expires),
          autoApprove: v['auto-approve'] === true,
        },
      );
      return print(
        k,
        () =>
          `${showKeys([k])}\n\nenrollment key (shown once): ${k.key}\n` +
          (k.pinnedKey === undefined
            ? ''
            : `the same key pinning this coordinator's TLS certificate (for a self-signed one): ${k.pinnedKey}\n`) +
          `join with: wiremesh join --server ${v.server ?? process.env.WIREMESH_SERVER ?? DEFAULT_SERVER} --network ${k.network} --key ${k.pinnedKey ?? k.key}`,
      );
    }
    case 'token list': {
      const ts = await c.json<AdminToken[]>('GET', ADMIN_ROUTES.tokens);
      return print(ts, () => showTokens(ts));
    }
    case 'token create': {
      const t = await c.json<AdminToken>('POST', ADMIN_ROUTES.tokens, {
        name: id(),
        scope: need(v.scope, '--scope read|approve|full'),
      });
      return print(t, () => `${showTokens([t])}\n\nadmin token ${t.name} (shown once): ${t.token}`);
    }
    case 'token revoke': {
      const t = await c.json<AdminToken>('DELETE', ADMIN_ROUTES.token(id()));
      return print(t, () => showTokens([t]));
    }
    case 'audit list': {
      const limit = int(v.limit, 'limit');
      const es = await c.json<AuditEntry[]>(
        'GET',
        `${ADMIN_ROUTES.audit}${limit === undefined ? '' : `?limit=${limit}`}`,
      );
      return print(es, () => showAudit(es));
    }
    case 'key revoke': {
      const k = await c.json<EnrollmentKey>(
        'DELETE',
        ADMIN_ROUTES.key(need(v.network, '--network'), id()),
      );
      return print(k, () => showKeys([k]));
    }
    case 'node list': {
      const q = new URLSearchParams();
      if (v.network !== undefined) q.set('network', v.network);
      if (v.state !== undefined) q.set('state', v.state);
      const ns = await c.json<Node[]>(
        'GET',
        `${ADMIN_ROUTES.nodes}${q.size > 0 ? `?${q.toString()}` : ''}`,
      );
      return print(ns, () => showNodes(ns));
    }
    case 'node show': {
      const n = await c.json<Node>('GET', ADMIN_ROUTES.node(id()));
      return print(
        n,
        () =>
          `${showNodes([n])}\n\npublic key: ${n.publicKey}\nOS: ${n.os}, version: ${n.version}\n` +
          (n.peers.length === 0
            ? 'no peer status reported'
            : table(
                ['PEER', 'HANDSHAKE', 'RX', 'TX', 'PATH'],
                n.peers.map((p) => [
                  p.publicKey,
                  ago(p.latestHandshakeMs),
                  p.rxBytes,
                  p.txBytes,
                  p.path ?? '',
                ]),
              )),
      );
    }
    case 'node map':
      return out(JSON.stringify(await c.json('GET', ADMIN_ROUTES.nodeMap(id())), null, 2));
    case 'node approve':
    case 'node reject': {
      const n = await c.json<Node>(
        'POST',
        verb === 'approve' ? ADMIN_ROUTES.approve(id()) : ADMIN_ROUTES.reject(id()),
      );
      return print(n, () => showNodes([n]));
    }
    case 'node remove': {
      const n = await c.json<Node>('DELETE', ADMIN_ROUTES.node(id()));
      return print(n, () => showNodes([n]));
    }
    case 'node rename': {
      const n = await c.json<Node>('PUT', ADMIN_ROUTES.nodeName(id()), {
        name: need(arg2, 'the new NAME'),
      });
      return print(n, () => showNodes([n]));
    }
    case 'dns show': {
      const d = await c.json<NetworkDns>('GET', ADMIN_ROUTES.dns(need(v.network, '--network')));
      return print(d, () => showDns(d));
    }
    case 'dns domain': {
      const d = await c.json<NetworkDns>('PUT', ADMIN_ROUTES.dns(need(v.network, '--network')), {
        domain: need(arg, 'the DOMAIN argument'),
        force: v.force === true,
      });
      return print(d, () => showDns(d));
    }
    case 'dns add': {
      const r = await c.json<DnsRecord>(
        'POST',
        ADMIN_ROUTES.dnsRecords(need(v.network, '--network')),
        { name: need(arg, 'the NAME argument'), ip: need(arg2, 'the IP argument') },
      );
      return print(r, () => showRecords([r]));
    }
    case 'dns list': {
      const rs = await c.json<DnsRecord[]>(
        'GET',
        ADMIN_ROUTES.dnsRecords(need(v.network, '--network')),
      );
      return print(rs, () => showRecords(rs));
    }
    case 'dns remove':
      await c.call(
        'DELETE',
        ADMIN_ROUTES.dnsRecord(need(v.network, '--network'), need(arg, 'a NAME or ID argument')),
      );
      return print({ removed: arg }, () => `DNS record ${arg} removed`);
    case 'node release':
      await c.call('POST', ADMIN_ROUTES.release(id()));
      return print({ released: arg }, () => `node ${arg} released; its address is free`);
    case 'gateway egress': {
      const n = await c.json<Node>('PUT', ADMIN_ROUTES.egress(id()), {
        ranges: list(need(v.ranges, '--ranges')),
        interface: v.interface,
      });
      return print(n, () => showNodes([n]));
    }
    case 'gateway egress-off':
      return print(
        await c.json<Node>('DELETE', ADMIN_ROUTES.egress(id())),
        () => `node ${arg} is no longer an egress gateway`,
      );
    case 'gateway ingress': {
      const n = await c.json<Node>('PUT', ADMIN_ROUTES.ingress(id()), { endpoint: v.endpoint });
      return print(n, () => showNodes([n]));
    }
    case 'gateway ingress-off':
      return print(
        await c.json<Node>('DELETE', ADMIN_ROUTES.ingress(id())),
        () => `node ${arg} is no longer an ingress gateway`,
      );
    case 'gateway relay': {
      const n = await c.json<Node>('PUT', ADMIN_ROUTES.relay(id()), {
        // Without --nodes the node only offers relaying: the automatic fallback may use it.
        relayedNodeIds: list(v.nodes) ?? [],
      });
      return print(n, () => showNodes([n]));
    }
    case 'gateway relay-off':
      return print(
        await c.json<Node>('DELETE', ADMIN_ROUTES.relay(id())),
        () => `node ${arg} is no longer a relay`,
      );
    case 'extclient list': {
      const cs = await c.json<ExtClient[]>(
        'GET',
        ADMIN_ROUTES.extClients(need(v.network, '--network')),
      );
      return print(cs, () => showExtClients(cs));
    }
    case 'extclient show': {
      const x = await c.json<ExtClient>('GET', ADMIN_ROUTES.extClient(id()));
      return print(x, () => showExtClients([x]));
    }
    case 'extclient create': {
      const x = await c.json<ExtClient>(
        'POST',
        ADMIN_ROUTES.extClients(need(v.network, '--network')),
        {
          name: need(v.name, '--name'),
          ingressNodeId: v.ingress,
          publicKey: v['public-key'],
          dns: list(v.dns),
          meshDns: v['no-mesh-dns'] === true ? false : undefined,
        },
      );
      return print(
        x,
        () =>
          `${showExtClients([x])}\n\nconfig: ${PROG} extclient config ${x.id}\nQR:     ${PROG} extclient qr ${x.id}`,
      );
    }
    case 'extclient delete':
      await c.call('DELETE', ADMIN_ROUTES.extClient(id()));
      return print({ deleted: arg }, () => `external client ${arg} deleted`);
    case 'extclient config': {
      const r = await c.call('GET', ADMIN_ROUTES.extClientConfig(id()));
      if (v.out !== undefined) {
        writeFileSync(v.out, r.bytes, { mode: 0o600 });
        return out(`wrote ${v.out}`);
      }
      return void process.stdout.write(r.bytes);
    }
    case 'extclient qr': {
      if (v.png !== undefined) {
        writeFileSync(v.png, (await c.call('GET', ADMIN_ROUTES.extClientQrPng(id()))).bytes, {
          mode: 0o600,
        });
        return out(`wrote ${v.png}`);
      }
      return void process.stdout.write(
        (await c.call('GET', ADMIN_ROUTES.extClientQrText(id()))).bytes,
      );
    }
    default:
      throw new CliError(`unknown command: ${group} ${verb ?? ''}\n\n${USAGE}`);
  }
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new CliError(`${(e as Error).message}\n\n${USAGE}`);
  }
  const { values: v, positionals } = parsed;
  const [cmd, ...rest] = positionals;
  if (v.version) return out(`${PROG} ${COORDINATOR_VERSION} (protocol ${PROTOCOL_VERSION})`);
  if (v.help || cmd === undefined || cmd === 'help') return out(USAGE);
  if (cmd === 'serve') return serve(v);
  if (cmd === 'admin-token') {
    if (rest[0] !== 'rotate')
      throw new CliError(`usage: ${PROG} admin-token rotate [--data-dir DIR | --database URL]`);
    return rotate(v);
  }
  if (cmd === 'install-service') return installService(v);
  if (['network', 'key', 'node', 'gateway', 'extclient', 'dns', 'token', 'audit'].includes(cmd))
    return adminCommand(cmd, rest, v);
  throw new CliError(`unknown command ${cmd}\n\n${USAGE}`);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(
    `${PROG}: ${e instanceof CliError ? e.message : ((e as Error).stack ?? String(e))}\n`,
  );
  process.exit(1);
});
