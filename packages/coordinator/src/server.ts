/**
 * The coordinator's HTTP API (fastify): node routes (register, check-in, map, push stream,
 * leave), admin routes (networks, keys, nodes, gateways, relays, external clients, token
 * rotation), /metrics, /healthz and the web UI. Every body is validated with the protocol's
 * schemas; every error is `{code, message}` with the registry's status.
 */
import { readFile } from 'node:fs/promises';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  ADMIN_ROUTES,
  ADMIN_TOKEN_PREFIX,
  API_PREFIX,
  CheckinRequest,
  CreateAdminTokenRequest,
  CreateExtClientRequest,
  CreateKeyRequest,
  CreateNetworkRequest,
  DEFAULT_POLL_INTERVAL_MS,
  Id,
  MIN_SUPPORTED_PROTOCOL_VERSION,
  NODE_ROUTES,
  NodeState,
  PROTOCOL_VERSION,
  RegisterRequest,
  STREAM_CONTENT_TYPE,
  SetEgressRequest,
  SetIngressRequest,
  SetRelayRequest,
  UpdateNetworkRequest,
  pinnedKey,
  splitEnrollmentKey,
  statusOf,
  type AdminScope,
  type ErrorCode,
  type InfoResponse,
} from '@wiremesh/protocol';
import { ApiError, parseBody } from './api-error.js';
import {
  BODY_LIMIT_BYTES,
  CONNECTION_IDLE_TIMEOUT_MS,
  MAX_PATH_PARAM_LENGTH,
  REQUEST_TIMEOUT_MS,
  TIMEOUT_CHECK_INTERVAL_MS,
} from './constants.js';
import { dnsRoutes } from './dns-routes.js';
import { qrPng, qrText, renderWgQuick } from './ext-config.js';
import type { Hub } from './hub.js';
import type { Metrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { localEndpointProblem, weakKeyProblem } from './registration-policy.js';
import { networkPaths } from './network-paths.js';
import { mapJsonFor } from './snapshot.js';
import { allows, domainOf, type NodeRecord, type Principal, type Store } from './store/index.js';

/** What the HTTP layer needs from the rest of the coordinator. */
export interface ServerDeps {
  store: Store;
  hub: Hub;
  metrics: Metrics;
  logger: Logger;
  reflectPort: number | null;
  version: string;
  registerLimiter: RateLimiter;
  /** Directory of the web UI's static files. */
  webRoot: string;
  /** Told about check-ins that carry peer status (automatic relay fallback); null when off. */
  relayFallback?: { poke(networkId: string): void } | null;
  /** Longest time a request may take to arrive (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /** Show network names at /metrics to unauthenticated scrapes too. */
  metricsPublic?: boolean;
  /** Serve HTTPS with this certificate and key (PEM); null or absent for plain HTTP. */
  tls?: { cert: Buffer; key: Buffer } | null;
  /** The fingerprint of the certificate served now (pinned keys carry it), or null. */
  fingerprint?: () => Uint8Array | null;
  /** Wall clock in unix ms (the store's; default Date.now). */
  clock?: () => number;
}

const WEB_FILES: Record<string, string> = {
  '/': 'index.html',
  '/ui/app.js': 'app.js',
  '/ui/map.js': 'map.js',
  '/ui/style.css': 'style.css',
};
const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

const IdParam = z.object({ id: Id });
const DEFAULT_AUDIT_LIMIT = 100;
const MAX_AUDIT_LIMIT = 10_000;
const MAX_AUDIT_PATH = 300;
const AuditQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_AUDIT_LIMIT).optional(),
});

/**
 * The scope a route needs: reads need `read` (but an external client's config, which holds its
 * private key, `full`), approving and rejecting nodes `approve`, the rest `full`.
 */
function scopeOf(method: string, route: string): AdminScope {
  // An external client's config and QR codes hold its private key.
  if (/\/extclients\/:id\/(?:config|qr\.png|qr\.txt)$/.test(route)) return 'full';
  if (method === 'GET' || method === 'HEAD') return 'read';
  if (method === 'POST' && /\/nodes\/:id\/(?:approve|reject)$/.test(route)) return 'approve';
  return 'full';
}
const NetworkParam = z.object({ network: Id });
const NetworkKeyParam = z.object({ network: Id, id: Id });
const NodeQuery = z.object({ network: z.string().optional(), state: NodeState.optional() });
const StateQuery = z.object({ state: NodeState.optional() });

/** The default web UI directory: `web/` beside `src/` and `dist/`. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../web/', import.meta.url));

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (h === undefined) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1] ?? '';
}

function checkProtocol(v: number): void {
  if (v < MIN_SUPPORTED_PROTOCOL_VERSION || v > PROTOCOL_VERSION) {
    throw new ApiError(
      'unsupported_protocol_version',
      `protocol version ${v} is not supported (this coordinator speaks ${MIN_SUPPORTED_PROTOCOL_VERSION}..${PROTOCOL_VERSION}); ${v > PROTOCOL_VERSION ? 'upgrade the coordinator' : 'upgrade the agent'}`,
    );
  }
}

function checkAlive(node: NodeRecord): void {
  if (node.state === 'rejected')
    throw new ApiError(
      'node_rejected',
      'an admin rejected this node; ask the admin, then join again',
    );
  if (node.state === 'removed')
    throw new ApiError('node_removed', 'this node was removed from the network; join again');
}

const REQUEST_TIMEOUT_MESSAGE = 'the request did not arrive in time; send it again';

/** Writes a registry error straight onto a connection no reply can use, and closes it. */
function answerAndClose(socket: Duplex, code: ErrorCode, message: string): void {
  const status = statusOf(code);
  const body = JSON.stringify({ code, message });
  if (socket.writable)
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  socket.destroy();
}

/** `wiremesh_nodes` summed over networks, for scrapes that may not see network names. */
export function withoutNetworks(text: string): string {
  const byState = new Map<string, number>();
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^wiremesh_nodes\{network="(?:[^"\\]|\\.)*",state="([a-z]+)"\} (\d+)$/.exec(line);
    if (m === null) {
      out.push(line);
      continue;
    }
    if (!byState.has(m[1] ?? '')) out.push(`\0${m[1]}`);
    byState.set(m[1] ?? '', (byState.get(m[1] ?? '') ?? 0) + Number(m[2]));
  }
  return out
    .map((l) =>
      l.startsWith('\0') ? `wiremesh_nodes{state="${l.slice(1)}"} ${byState.get(l.slice(1))}` : l,
    )
    .join('\n');
}

/** Builds the fastify app (not yet listening). */
export function buildServer(d: ServerDeps): FastifyInstance {
  const { store, hub, metrics } = d;
  const requestTimeoutMs = d.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const app = Fastify({
    ...(d.tls === null || d.tls === undefined
      ? {}
      : { https: { cert: d.tls.cert, key: d.tls.key } }),
    loggerInstance: d.logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    // Node's requestTimeout (off in fastify's defaults) bounds the headers; bodies are bound below.
    requestTimeout: requestTimeoutMs,
    connectionTimeout: CONNECTION_IDLE_TIMEOUT_MS,
    http: { connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_INTERVAL_MS, requestTimeoutMs) },
    forceCloseConnections: true,
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    // Requests the router cannot even look up still get a registry error, never fastify's own body.
    frameworkErrors: (err, _req, reply) =>
      err.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? fail(
            reply,
            'validation_failed',
            `invalid path: a path segment is longer than ${MAX_PATH_PARAM_LENGTH} characters`,
          )
        : fail(
            reply,
            'bad_request',
            'the URL is not valid percent-encoded UTF-8; encode path segments (encodeURIComponent)',
          ),
    clientErrorHandler: (err: Error & { code?: string }, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [code, message]: [ErrorCode, string] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ['request_timeout', REQUEST_TIMEOUT_MESSAGE]
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? ['headers_too_large', 'the request line and headers are too large']
            : ['bad_request', 'the request is not valid HTTP/1.1'];
      answerAndClose(socket, code, message);
    },
  });
  // Node's requestTimeout stops counting once the headers are in: a body that trickles is cut
  // off here, as slow headers are there.
  app.addHook('onRequest', async (req) => {
    const raw = req.raw;
    const hasBody =
      raw.headers['transfer-encoding'] !== undefined ||
      Number(raw.headers['content-length'] ?? 0) > 0;
    if (!hasBody || raw.complete) return;
    const timer = setTimeout(() => {
      if (!raw.complete) answerAndClose(raw.socket, 'request_timeout', REQUEST_TIMEOUT_MESSAGE);
    }, requestTimeoutMs);
    const clear = (): void => clearTimeout(timer);
    raw.once('end', clear);
    raw.once('close', clear);
  });
  // Node answers an Expect other than 100-continue itself (417, empty body) unless told otherwise.
  app.server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({
      code: 'bad_request',
      message:
        'only Expect: 100-continue is supported; send the request without this Expect header',
    });
    res.writeHead(statusOf('bad_request'), {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  });

  metrics.counter('wiremesh_http_requests_total', 'HTTP requests by method, route and status.');
  metrics.counter('wiremesh_registrations_total', 'Node registrations by result.');
  metrics.gauge(
    'wiremesh_nodes',
    d.metricsPublic === true
      ? 'Nodes by network and state (serve --metrics-public: network names shown to every scrape).'
      : 'Nodes by state; by network and state when the scrape sends Authorization: Bearer <admin token> (or serve --metrics-public).',
  );
  metrics.gauge('process_resident_memory_bytes', 'Resident set size of the coordinator.');
  metrics.collect(async () => {
    metrics.reset('wiremesh_nodes');
    for (const c of await store.nodes.counts())
      metrics.set('wiremesh_nodes', { network: c.network, state: c.state }, c.count);
    metrics.set('process_resident_memory_bytes', {}, process.memoryUsage.rss());
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.inc('wiremesh_http_requests_total', {
      method: req.method,
      route: req.routeOptions.url ?? 'unmatched',
      status: String(reply.statusCode),
    });
  });

  const fail = (
    reply: FastifyReply,
    code: ErrorCode,
    message: string,
    status?: number,
  ): FastifyReply => {
    if (code === 'auth_required' || code === 'invalid_token')
      reply.header('www-authenticate', 'Bearer');
    return reply.code(status ?? new ApiError(code, message).status).send({ code, message });
  };

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ApiError) {
      if (err.retryAfterS !== undefined) reply.header('retry-after', String(err.retryAfterS));
      return fail(reply, err.code, err.message);
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413)
      return fail(
        reply,
        'payload_too_large',
        `the request body is larger than ${BODY_LIMIT_BYTES} bytes`,
      );
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.statusCode === 415) {
      return fail(
        reply,
        'unsupported_media_type',
        'send the body as JSON with Content-Type: application/json',
      );
    }
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY')
      return fail(
        reply,
        'invalid_json',
        'the request body is not valid JSON (keys named __proto__ or constructor are refused)',
      );
    // Any other client error fastify detects (Content-Length not matching the body, an aborted
    // upload): the text of fastify's error may describe internals, so it is not passed on.
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)
      return fail(
        reply,
        'bad_request',
        'the request body did not arrive as announced; send it again',
      );
    req.log.error({ err }, 'request failed');
    return fail(reply, 'internal', 'internal error; see the coordinator log');
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? '';
    const shown =
      path.length > MAX_PATH_PARAM_LENGTH ? `${path.slice(0, MAX_PATH_PARAM_LENGTH)}...` : path;
    return fail(reply, 'route_not_found', `no route ${req.method} ${shown}`);
  });

  const principals = new WeakMap<FastifyRequest, Principal>();
  const requireAdmin = async (req: FastifyRequest): Promise<Principal> => {
    const token = bearer(req);
    if (token === null)
      throw new ApiError(
        'auth_required',
        'this route needs the admin token: Authorization: Bearer wma_...',
      );
    if (token.startsWith(ADMIN_TOKEN_PREFIX)) {
      const p: Principal | null = (await store.adminToken.matches(token))
        ? { actor: 'admin', scope: 'full' }
        : await store.adminTokens.authenticate(token);
      if (p !== null) {
        principals.set(req, p);
        return p;
      }
    }
    if ((await store.nodes.authenticate(token)) !== null)
      throw new ApiError('forbidden', 'a node secret cannot use admin routes');
    throw new ApiError('invalid_token', 'the admin token is wrong or was rotated');
  };

  const requireNode = async (req: FastifyRequest): Promise<NodeRecord> => {
    const token = bearer(req);
    if (token === null)
      throw new ApiError(
        'auth_required',
        'this route needs the node secret: Authorization: Bearer wmn_...',
      );
    const node = await store.nodes.authenticate(token);
    if (node !== null) return node;
    if (token.startsWith(ADMIN_TOKEN_PREFIX) && (await store.adminToken.matches(token))) {
      throw new ApiError(
        'forbidden',
        'node routes act for one node and need its node secret, not the admin token',
      );
    }
    throw new ApiError(
      'invalid_token',
      'the node secret is wrong, or the node was released; join again',
    );
  };

  // --- public ---

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async (req, reply) => {
    // Network names tell a stranger what this coordinator serves: only for an admin's scrape.
    let detailed = d.metricsPublic === true;
    if (!detailed && bearer(req) !== null) {
      await requireAdmin(req);
      detailed = true;
    }
    const text = await metrics.render();
    return reply
      .type('text/plain; version=0.0.4; charset=utf-8')
      .send(detailed ? text : withoutNetworks(text));
  });
  app.get(NODE_ROUTES.info, async (): Promise<InfoResponse> => ({
    name: 'wiremesh-coordinator',
    version: d.version,
    protocolVersion: PROTOCOL_VERSION,
    minProtocolVersion: MIN_SUPPORTED_PROTOCOL_VERSION,
    reflectPort: d.reflectPort,
  }));
  for (const [path, file] of Object.entries(WEB_FILES)) {
    app.get(path, async (_req, reply) => {
      let body: Buffer;
      try {
        body = await readFile(`${d.webRoot}/${file}`);
      } catch {
        return fail(reply, 'route_not_found', 'the web UI is not installed');
      }
      const ext = file.slice(file.lastIndexOf('.') + 1);
      return reply
        .type(CONTENT_TYPES[ext] ?? 'application/octet-stream')
        .header('cache-control', 'no-cache')
        .send(body);
    });
  }

  // --- node routes ---

  app.post(NODE_ROUTES.register, async (req, reply) => {
    const wait = d.registerLimiter.take(req.ip);
    if (wait > 0) {
      metrics.inc('wiremesh_registrations_total', { result: 'rate_limited' });
      const e = new ApiError(
        'rate_limited',
        `too many registrations from this address; retry in ${wait} s`,
      );
      e.retryAfterS = wait;
      throw e;
    }
    const body = parseBody(RegisterRequest, req.body);
    checkProtocol(body.protocolVersion);
    // A pinned key's fingerprint is the agent's business; the coordinator checks the key part.
    if (body.enrollmentKey !== undefined) {
      const split = splitEnrollmentKey(body.enrollmentKey);
      if ('problem' in split) throw new ApiError('enrollment_key_invalid', split.problem);
      body.enrollmentKey = split.key;
    }
    const claim = weakKeyProblem(body.publicKey) ?? localEndpointProblem(body.localEndpoints);
    if (claim !== null) throw new ApiError('validation_failed', `invalid body: ${claim}`);
    let out;
    try {
      out = await store.nodes.register(body);
    } catch (e) {
      metrics.inc('wiremesh_registrations_total', {
        result: e instanceof ApiError ? e.code : 'error',
      });
      throw e;
    }
    metrics.inc('wiremesh_registrations_total', { result: out.node.state });
    req.log.info(
      { node: out.node.id, network: body.network, state: out.node.state },
      'node registered',
    );
    let map = 'null';
    if (out.node.state === 'approved') {
      const snap = await hub.snapshot(out.node.networkId);
      map = (snap && mapJsonFor(snap, out.node.id)) ?? 'null';
    }
    return reply
      .code(201)
      .type('application/json')
      .send(
        `{"protocolVersion":${PROTOCOL_VERSION},"nodeId":${JSON.stringify(out.node.id)},"nodeSecret":${JSON.stringify(out.secret)},` +
          `"state":${JSON.stringify(out.node.state)},"map":${map}}`,
      );
  });

  app.post(NODE_ROUTES.checkin, async (req, reply) => {
    const node = await requireNode(req);
    const body = parseBody(CheckinRequest, req.body);
    checkProtocol(body.protocolVersion);
    const local = localEndpointProblem(body.localEndpoints);
    if (local !== null) throw new ApiError('validation_failed', `invalid body: ${local}`);
    checkAlive(node);
    await store.nodes.checkin(node, body);
    if (body.peers !== undefined && node.state === 'approved')
      d.relayFallback?.poke(node.networkId);
    let version: number | null = null;
    let map = 'null';
    if (node.state === 'approved') {
      const snap = await hub.snapshot(node.networkId);
      if (snap !== null) {
        version = snap.revision;
        if (body.knownMapVersion !== snap.revision) map = mapJsonFor(snap, node.id) ?? 'null';
      }
    }
    return reply
      .type('application/json')
      .send(
        `{"protocolVersion":${PROTOCOL_VERSION},"state":${JSON.stringify(node.state)},"mapVersion":${JSON.stringify(version)},` +
          `"map":${map},"pollIntervalMs":${DEFAULT_POLL_INTERVAL_MS}}`,
      );
  });

  app.get(NODE_ROUTES.map, async (req, reply) => {
    const node = await requireNode(req);
    checkAlive(node);
    if (node.state !== 'approved')
      throw new ApiError('node_pending', 'the node waits for an admin to approve it');
    const snap = await hub.snapshot(node.networkId);
    const map = snap === null ? null : mapJsonFor(snap, node.id);
    if (map === null) throw new ApiError('node_removed', 'the node is no longer in the network');
    return reply.type('application/json').send(map);
  });

  app.get(NODE_ROUTES.stream, async (req, reply) => {
    const node = await requireNode(req);
    checkAlive(node);
    // Loaded before the reply is taken over, so a database failure is still an error answer.
    await hub.snapshot(node.networkId);
    reply.hijack();
    // Listening before attaching: a client gone while the stream attaches is detached too.
    let detach: (() => void) | null = null;
    let closed = false;
    reply.raw.on('close', () => {
      closed = true;
      detach?.();
    });
    reply.raw.writeHead(200, {
      'content-type': `${STREAM_CONTENT_TYPE}; charset=utf-8`,
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      connection: 'keep-alive',
    });
    reply.raw.flushHeaders();
    try {
      detach = await hub.attach(node, reply.raw);
    } catch (e) {
      req.log.error({ err: e }, 'push stream failed to start');
      reply.raw.end();
      return;
    }
    // Gone before the listener was added (its 'close' already fired), or while attaching.
    if (closed || reply.raw.destroyed) detach();
  });

  app.delete(NODE_ROUTES.self, async (req, reply) => {
    const node = await requireNode(req);
    if (node.state !== 'removed') await store.nodes.setState(node.id, 'removed');
    req.log.info({ node: node.id }, 'node left');
    return reply.code(204).send();
  });

  // --- admin routes ---

  app.register(async (admin) => {
    admin.addHook('onRequest', async (req) => {
      const p = await requireAdmin(req);
      const need = scopeOf(req.method, req.routeOptions.url ?? '');
      if (!allows(p.scope, need))
        throw new ApiError(
          'forbidden',
          `admin token ${p.actor} has scope ${p.scope}; ${req.method} ${req.routeOptions.url ?? ''} needs ${need}`,
        );
    });
    // Every mutating call with a valid token, refused ones too: who, what, when, from where
    // (never a body). Calls without one are not kept: strangers could grow the table at will.
    admin.addHook('onResponse', async (req, reply) => {
      const who = principals.get(req);
      if (req.method === 'GET' || req.method === 'HEAD' || who === undefined) return;
      await store.audit
        .record({
          actor: who.actor,
          method: req.method,
          route: req.routeOptions.url ?? 'unmatched',
          path: (req.url.split('?')[0] ?? '').slice(0, MAX_AUDIT_PATH),
          status: reply.statusCode,
          ip: req.ip,
        })
        .catch((e: unknown) => req.log.error({ err: e }, 'audit log write failed'));
    });

    admin.get(ADMIN_ROUTES.networks, async () => store.networks.list());
    admin.post(ADMIN_ROUTES.networks, async (req, reply) =>
      reply.code(201).send(await store.networks.create(parseBody(CreateNetworkRequest, req.body))),
    );
    admin.get(`${API_PREFIX}/networks/:network`, async (req) =>
      store.networks.get(parseBody(NetworkParam, req.params, 'path').network),
    );
    admin.patch(`${API_PREFIX}/networks/:network`, async (req) =>
      store.networks.update(
        parseBody(NetworkParam, req.params, 'path').network,
        parseBody(UpdateNetworkRequest, req.body),
      ),
    );
    admin.delete(`${API_PREFIX}/networks/:network`, async (req, reply) => {
      await store.networks.delete(parseBody(NetworkParam, req.params, 'path').network);
      return reply.code(204).send();
    });

    admin.get(`${API_PREFIX}/networks/:network/paths`, async (req) => {
      const net = await store.networks.get(parseBody(NetworkParam, req.params, 'path').network);
      const state = await store.networkState(net.id);
      if (state === null) throw new ApiError('not_found', `no network ${net.name}`);
      return networkPaths(state, (d.clock ?? Date.now)());
    });

    admin.get(`${API_PREFIX}/networks/:network/keys`, async (req) =>
      store.keys.list(parseBody(NetworkParam, req.params, 'path').network),
    );
    admin.post(`${API_PREFIX}/networks/:network/keys`, async (req, reply) => {
      const k = await store.keys.create(
        parseBody(NetworkParam, req.params, 'path').network,
        parseBody(CreateKeyRequest, req.body),
      );
      const fp = d.fingerprint?.() ?? null;
      return reply
        .code(201)
        .send(fp === null || k.key === undefined ? k : { ...k, pinnedKey: pinnedKey(k.key, fp) });
    });
    admin.delete(`${API_PREFIX}/networks/:network/keys/:id`, async (req) => {
      const p = parseBody(NetworkKeyParam, req.params, 'path');
      return store.keys.revoke(p.network, p.id);
    });

    admin.get(`${API_PREFIX}/networks/:network/nodes`, async (req) =>
      store.nodes.list(
        parseBody(NetworkParam, req.params, 'path').network,
        parseBody(StateQuery, req.query, 'query').state,
      ),
    );
    admin.get(ADMIN_ROUTES.nodes, async (req) => {
      const q = parseBody(NodeQuery, req.query, 'query');
      return store.nodes.list(q.network, q.state);
    });
    admin.get(`${API_PREFIX}/nodes/:id`, async (req) =>
      store.nodes.get(parseBody(IdParam, req.params, 'path').id),
    );
    admin.get(`${API_PREFIX}/nodes/:id/map`, async (req, reply) => {
      const node = await store.nodes.record(parseBody(IdParam, req.params, 'path').id);
      const snap = await hub.snapshot(node.networkId);
      const map = snap === null ? null : mapJsonFor(snap, node.id);
      if (map === null)
        throw new ApiError(
          'conflict',
          `node ${node.name} is ${node.state}; only approved nodes have a map`,
        );
      return reply.type('application/json').send(map);
    });
    const stateRoute = (suffix: string, to: 'approved' | 'rejected') =>
      admin.post(`${API_PREFIX}/nodes/:id/${suffix}`, async (req) => {
        const node = await store.nodes.setState(parseBody(IdParam, req.params, 'path').id, to);
        req.log.info({ node: node.id, state: to }, 'node state changed');
        return node;
      });
    stateRoute('approve', 'approved');
    stateRoute('reject', 'rejected');
    admin.delete(`${API_PREFIX}/nodes/:id`, async (req) =>
      store.nodes.setState(parseBody(IdParam, req.params, 'path').id, 'removed'),
    );
    admin.post(`${API_PREFIX}/nodes/:id/release`, async (req, reply) => {
      await store.nodes.release(parseBody(IdParam, req.params, 'path').id);
      return reply.code(204).send();
    });
    admin.put(`${API_PREFIX}/nodes/:id/egress`, async (req) =>
      store.gateways.setEgress(
        parseBody(IdParam, req.params, 'path').id,
        parseBody(SetEgressRequest, req.body),
      ),
    );
    admin.delete(`${API_PREFIX}/nodes/:id/egress`, async (req) =>
      store.gateways.clearEgress(parseBody(IdParam, req.params, 'path').id),
    );
    admin.put(`${API_PREFIX}/nodes/:id/ingress`, async (req) =>
      store.gateways.setIngress(
        parseBody(IdParam, req.params, 'path').id,
        parseBody(SetIngressRequest, req.body),
      ),
    );
    admin.delete(`${API_PREFIX}/nodes/:id/ingress`, async (req) =>
      store.gateways.clearIngress(parseBody(IdParam, req.params, 'path').id),
    );
    admin.put(`${API_PREFIX}/nodes/:id/relay`, async (req) =>
      store.gateways.setRelay(
        parseBody(IdParam, req.params, 'path').id,
        parseBody(SetRelayRequest, req.body).relayedNodeIds,
      ),
    );
    admin.delete(`${API_PREFIX}/nodes/:id/relay`, async (req) =>
      store.gateways.clearRelay(parseBody(IdParam, req.params, 'path').id),
    );

    admin.get(`${API_PREFIX}/networks/:network/extclients`, async (req) =>
      store.extClients.list(parseBody(NetworkParam, req.params, 'path').network),
    );
    admin.post(`${API_PREFIX}/networks/:network/extclients`, async (req, reply) => {
      const network = parseBody(NetworkParam, req.params, 'path').network;
      const body = parseBody(CreateExtClientRequest, req.body);
      const weak = body.publicKey === undefined ? null : weakKeyProblem(body.publicKey);
      if (weak !== null) throw new ApiError('validation_failed', `invalid body: ${weak}`);
      return reply.code(201).send(await store.extClients.create(network, body));
    });
    admin.get(`${API_PREFIX}/extclients/:id`, async (req) =>
      store.extClients.get(parseBody(IdParam, req.params, 'path').id),
    );
    admin.delete(`${API_PREFIX}/extclients/:id`, async (req, reply) => {
      await store.extClients.delete(parseBody(IdParam, req.params, 'path').id);
      return reply.code(204).send();
    });
    const configOf = async (req: FastifyRequest): Promise<{ name: string; text: string }> => {
      const { client, network } = await store.extClients.record(
        parseBody(IdParam, req.params, 'path').id,
      );
      const state = await store.networkState(network.id);
      const nodes = state?.nodes ?? [];
      const ingress = nodes.find((n) => n.id === client.ingressNodeId);
      const gateways = nodes.filter((n) => n.state === 'approved' && n.egress !== null);
      const domain = domainOf(network, state?.dns);
      return { name: client.name, text: renderWgQuick(client, network, ingress, gateways, domain) };
    };
    admin.get(`${API_PREFIX}/extclients/:id/config`, async (req, reply) => {
      const c = await configOf(req);
      return reply
        .type('text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename="${c.name}.conf"`)
        .header('cache-control', 'no-store')
        .send(c.text);
    });
    admin.get(`${API_PREFIX}/extclients/:id/qr.png`, async (req, reply) =>
      reply
        .type('image/png')
        .header('cache-control', 'no-store')
        .send(await qrPng((await configOf(req)).text)),
    );
    admin.get(`${API_PREFIX}/extclients/:id/qr.txt`, async (req, reply) =>
      reply
        .type('text/plain; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(await qrText((await configOf(req)).text)),
    );

    dnsRoutes(admin, store);
    admin.get(ADMIN_ROUTES.tokens, async () => store.adminTokens.list());
    admin.post(ADMIN_ROUTES.tokens, async (req, reply) => {
      const body = parseBody(CreateAdminTokenRequest, req.body);
      return reply.code(201).send(await store.adminTokens.create(body.name, body.scope));
    });
    admin.delete(`${API_PREFIX}/admin/tokens/:id`, async (req) =>
      store.adminTokens.revoke(parseBody(IdParam, req.params, 'path').id),
    );
    admin.get(ADMIN_ROUTES.audit, async (req) =>
      store.audit.list(parseBody(AuditQuery, req.query, 'query').limit ?? DEFAULT_AUDIT_LIMIT),
    );

    admin.post(ADMIN_ROUTES.rotateToken, async (req) => {
      const token = await store.adminToken.rotate();
      req.log.info('admin token rotated');
      return { token };
    });
  });

  return app;
}
