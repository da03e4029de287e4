/**
 * The agent's side of the protocol (tailscale's controlclient): register, check in, fetch the map,
 * leave, and hold the push stream. Every response is validated against packages/protocol; a map
 * that does not validate is returned as a rejection (never applied), so the caller keeps its last
 * good one.
 */
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { Agent as UndiciAgent, buildConnector, fetch as undiciFetch } from 'undici';
import { z } from 'zod';
import {
  ErrorBody,
  formatFingerprint,
  InfoResponse,
  MapPatch,
  NODE_ROUTES,
  NetworkMap,
  NodeState,
  PROTOCOL_VERSION,
  RegisterResponse,
  STREAM_CONTENT_TYPE,
  STREAM_DEAD_AFTER_MS,
  type CheckinRequest,
  type ErrorCode,
  type RegisterRequest,
} from '@wiremesh/protocol';
import { HTTP_TIMEOUT_MS, MAX_MESSAGE_BYTES } from '../constants.js';
import { AgentError, errorMessage } from '../errors.js';
import { SseParser } from './sse.js';

/** A `{code, message}` answer of the coordinator. */
export class CoordinatorError extends Error {
  readonly status: number;
  readonly code: ErrorCode | 'unknown';
  constructor(status: number, code: ErrorCode | 'unknown', message: string) {
    super(message);
    this.name = 'CoordinatorError';
    this.status = status;
    this.code = code;
  }
}

/** A map as received: valid, or rejected with the reason (first schema issue). */
export type MapResult =
  { readonly ok: true; readonly map: NetworkMap } | { readonly ok: false; readonly reason: string };

/** A check-in answer with its map validated on its own. */
export interface CheckinResult {
  readonly state: NodeState;
  readonly mapVersion: number | null;
  /** null when the coordinator sent no map (unchanged, or not approved). */
  readonly map: MapResult | null;
  readonly pollIntervalMs: number;
}

/** One event of the push stream after validation. */
export type StreamEvent =
  | { readonly type: 'map'; readonly map: MapResult }
  | { readonly type: 'patch'; readonly patch: MapPatch }
  | { readonly type: 'state'; readonly state: NodeState; readonly message: string }
  | { readonly type: 'invalid'; readonly reason: string };

/** What the agent loop needs from a coordinator (the fake in tests implements the same). */
export interface CoordinatorApi {
  register(
    req: RegisterRequest,
  ): Promise<{ nodeId: string; nodeSecret: string; state: NodeState; map: MapResult | null }>;
  checkin(req: CheckinRequest): Promise<CheckinResult>;
  fetchMap(): Promise<MapResult>;
  leave(): Promise<void>;
  /**
   * Holds the push stream, calling `onEvent` for each event, until the server ends it (resolves),
   * it fails or stays silent past STREAM_DEAD_AFTER_MS (rejects), or `signal` aborts (resolves).
   */
  stream(onEvent: (e: StreamEvent) => void, signal: AbortSignal): Promise<void>;
}

const CheckinEnvelope = z.object({
  protocolVersion: z.int().min(1),
  state: NodeState,
  mapVersion: z.int().min(0).nullable(),
  map: z.unknown(),
  pollIntervalMs: z.int().min(1),
});

const StateEvent = z.object({ type: z.literal('state'), state: NodeState, message: z.string() });

function issue(e: z.ZodError): string {
  const first = e.issues[0];
  return first === undefined ? 'invalid' : `${first.path.join('.') || '(root)'}: ${first.message}`;
}

/**
 * Why a schema-valid map still cannot be configured, or null: a WireGuard interface holds one peer
 * per public key, so two peers (or external clients) with one key, or two peers with one id,
 * mean a corrupt map. Peers with this node's own key are skipped by netmapToConfig, not counted.
 */
function conflict(m: NetworkMap): string | null {
  const ids = new Set<string>();
  const keys = new Set<string>([m.self.publicKey]);
  for (const p of m.peers) {
    if (ids.has(p.id)) return `peers: id ${p.id} appears twice`;
    ids.add(p.id);
    if (p.publicKey === m.self.publicKey) continue;
    if (keys.has(p.publicKey)) return `peers: public key ${p.publicKey} appears twice`;
    keys.add(p.publicKey);
  }
  if (m.self.isIngressGateway)
    for (const c of m.self.externalClients) {
      if (keys.has(c.publicKey))
        return `self.externalClients: public key ${c.publicKey} is already taken`;
      keys.add(c.publicKey);
    }
  return null;
}

/** Validates an untrusted map: the schema, then peers an interface can hold. Never throws. */
export function validateMap(value: unknown): MapResult {
  const r = NetworkMap.safeParse(value);
  if (!r.success) return { ok: false, reason: issue(r.error) };
  const why = conflict(r.data);
  return why === null ? { ok: true, map: r.data } : { ok: false, reason: why };
}

/** Turns one SSE event into a StreamEvent (validating it). Never throws. */
export function parseStreamEvent(event: string, data: string): StreamEvent {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { type: 'invalid', reason: `event ${event}: data is not JSON` };
  }
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  if (event === 'map') return { type: 'map', map: validateMap(v['map']) };
  if (event === 'patch') {
    const r = MapPatch.safeParse(v['patch']);
    return r.success
      ? { type: 'patch', patch: r.data }
      : { type: 'invalid', reason: `patch ${issue(r.error)}` };
  }
  if (event === 'state') {
    const r = StateEvent.safeParse(value);
    return r.success
      ? { type: 'state', state: r.data.state, message: r.data.message }
      : { type: 'invalid', reason: `state ${issue(r.error)}` };
  }
  return { type: 'invalid', reason: `unknown event ${event}` };
}

/** Options of the HTTP client. */
export interface HttpCoordinatorOptions {
  /** Base URL, e.g. http://10.0.0.1:8080. */
  server: string;
  /** The node secret (after registration). */
  nodeSecret?: string;
  timeoutMs?: number;
  streamDeadAfterMs?: number;
  /** Largest answer (bytes) or push event (characters) accepted; default MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /**
   * SHA-256 of the coordinator's TLS certificate (DER): the connection is refused unless the
   * server presents exactly this certificate (for self-signed coordinators). Absent or null: the
   * certificate is verified against the system's CAs (and NODE_EXTRA_CA_CERTS).
   */
  serverFingerprint?: Uint8Array | null;
}

/** The error a pinned connection fails with when the certificate is another one. */
class PinMismatch extends Error {
  override readonly name = 'PinMismatch';
}

/** Certificate errors of Node's TLS that mean "not trusted", as opposed to "not reachable". */
const UNTRUSTED_CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * A fetch whose TLS connections are accepted only with the certificate `fp`, checked after the
 * handshake and before a byte of the request (the node secret) is sent.
 */
function pinnedFetch(fp: Uint8Array): typeof fetch {
  // No session resumption: a resumed session may carry no peer certificate to check.
  const connect = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
  const dispatcher = new UndiciAgent({
    connect: (opts, callback) =>
      connect(opts, (err, socket) => {
        if (err !== null) return callback(err, null);
        const peer = (socket as TLSSocket).getPeerCertificate?.();
        const got = peer?.raw === undefined ? null : createHash('sha256').update(peer.raw).digest();
        if (got !== null && Buffer.from(fp).equals(got)) return callback(null, socket);
        socket.destroy();
        callback(
          new PinMismatch(
            got === null
              ? `the coordinator at ${opts.protocol}//${opts.hostname}:${opts.port} presented no certificate, but one is pinned (--server-fingerprint ${formatFingerprint(fp)}): refusing to connect`
              : `the coordinator at ${opts.protocol}//${opts.hostname}:${opts.port} presented certificate SHA-256 ${formatFingerprint(got)}, not the pinned ${formatFingerprint(fp)}: refusing to connect (another server, or its certificate changed: check --server-fingerprint or the enrollment key)`,
          ),
          null,
        );
      }),
  });
  return ((input: string, init?: RequestInit) =>
    undiciFetch(input, { ...(init as object), dispatcher } as Parameters<
      typeof undiciFetch
    >[1])) as unknown as typeof fetch;
}

/** The one-line reason a request could not reach the coordinator. */
function unreachable(base: string, e: unknown, what: string): AgentError {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if (cause instanceof PinMismatch) return new AgentError('unreachable', cause.message);
  if (cause?.code !== undefined && UNTRUSTED_CERT_CODES.has(cause.code))
    return new AgentError(
      'unreachable',
      `the coordinator at ${base} has a certificate this host does not trust (${cause.code}); for a self-signed certificate pin it with --server-fingerprint or an enrollment key that carries it`,
    );
  return new AgentError('unreachable', `cannot reach the coordinator at ${base} (${what})`);
}

/**
 * Reads a response body of at most `limit` bytes. Returns the text, or null when the body is
 * larger (the rest is not read). Throws what the body stream throws (a reset, the timeout).
 */
async function readLimited(res: Response, limit: number): Promise<string | null> {
  if (Number(res.headers.get('content-length') ?? 0) > limit) {
    await res.body?.cancel().catch(() => undefined);
    return null;
  }
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > limit) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, length).toString('utf8');
}

/** The error for an answer that redirects: the agent never follows (its secret stays put). */
function redirected(base: string, path: string, res: Response): AgentError {
  const to = res.headers.get('location');
  return new AgentError(
    'protocol',
    `${base}${path} redirects${to === null ? '' : ` to ${to}`} (HTTP ${res.status}); the agent follows no redirects: set --server to the coordinator's own address`,
  );
}

const isRedirect = (status: number) => status >= 300 && status < 400;

/** The coordinator over HTTP (global fetch). Errors: AgentError('unreachable') or CoordinatorError. */
export class HttpCoordinator implements CoordinatorApi {
  private readonly base: string;
  private readonly secret: string | undefined;
  private readonly timeoutMs: number;
  private readonly deadAfterMs: number;
  private readonly maxBytes: number;
  private readonly fetch: typeof fetch;

  constructor(o: HttpCoordinatorOptions) {
    this.fetch =
      o.serverFingerprint === undefined || o.serverFingerprint === null
        ? globalThis.fetch
        : pinnedFetch(o.serverFingerprint);
    this.base = o.server.replace(/\/+$/, '');
    this.secret = o.nodeSecret;
    this.timeoutMs = o.timeoutMs ?? HTTP_TIMEOUT_MS;
    this.deadAfterMs = o.streamDeadAfterMs ?? STREAM_DEAD_AFTER_MS;
    this.maxBytes = o.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: 'application/json' };
    if (json) h['content-type'] = 'application/json';
    if (this.secret !== undefined) h['authorization'] = `Bearer ${this.secret}`;
    return h;
  }

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await this.fetch(`${this.base}${path}`, {
        method,
        headers: this.headers(body !== undefined),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'manual',
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw unreachable(this.base, e, cause?.code ?? cause?.message ?? errorMessage(e));
    }
    if (isRedirect(res.status)) {
      await res.body?.cancel().catch(() => undefined);
      throw redirected(this.base, path, res);
    }
    let text: string | null;
    try {
      text = await readLimited(res, this.maxBytes);
    } catch (e) {
      if (!res.ok) text = '';
      else
        throw new AgentError(
          'unreachable',
          `the coordinator at ${this.base} broke off its answer to ${path} (${errorMessage(e)})`,
        );
    }
    if (text === null) {
      if (!res.ok) text = '';
      else
        throw new AgentError(
          'protocol',
          `the coordinator at ${this.base} answered ${path} with more than ${this.maxBytes} bytes; is --server the coordinator's address?`,
        );
    }
    if (!res.ok) {
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON
      }
      const b = ErrorBody.safeParse(parsed);
      throw b.success
        ? new CoordinatorError(res.status, b.data.code, b.data.message)
        : new CoordinatorError(
            res.status,
            'unknown',
            `HTTP ${res.status} from ${this.base}${path}`,
          );
    }
    if (text === '') return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new AgentError(
        'protocol',
        `the coordinator at ${this.base} answered ${path} with something that is not JSON; is --server the coordinator's address?`,
      );
    }
  }

  /** `GET /api/v1/info`, validated. */
  async info(): Promise<InfoResponse> {
    const r = InfoResponse.safeParse(await this.request('GET', NODE_ROUTES.info));
    if (!r.success)
      throw new AgentError(
        'protocol',
        `${this.base} does not look like a wiremesh coordinator (bad /info answer); check --server`,
      );
    return r.data;
  }

  async register(req: RegisterRequest) {
    const raw = await this.request('POST', NODE_ROUTES.register, req);
    const env = RegisterResponse.omit({ map: true }).extend({ map: z.unknown() }).safeParse(raw);
    if (!env.success)
      throw new AgentError(
        'protocol',
        `the coordinator's registration answer does not match protocol ${PROTOCOL_VERSION} (${issue(env.error)})`,
      );
    return {
      nodeId: env.data.nodeId,
      nodeSecret: env.data.nodeSecret,
      state: env.data.state,
      map: env.data.map === null || env.data.map === undefined ? null : validateMap(env.data.map),
    };
  }

  async checkin(req: CheckinRequest): Promise<CheckinResult> {
    const env = CheckinEnvelope.safeParse(await this.request('POST', NODE_ROUTES.checkin, req));
    if (!env.success)
      throw new AgentError(
        'protocol',
        `the coordinator's check-in answer does not match protocol ${PROTOCOL_VERSION} (${issue(env.error)})`,
      );
    const d = env.data;
    return {
      state: d.state,
      mapVersion: d.mapVersion,
      map: d.map === null || d.map === undefined ? null : validateMap(d.map),
      pollIntervalMs: d.pollIntervalMs,
    };
  }

  async fetchMap(): Promise<MapResult> {
    return validateMap(await this.request('GET', NODE_ROUTES.map));
  }

  async leave(): Promise<void> {
    await this.request('DELETE', NODE_ROUTES.self);
  }

  async stream(onEvent: (e: StreamEvent) => void, signal: AbortSignal): Promise<void> {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let silent: NodeJS.Timeout | undefined;
    let dead = false;
    const arm = () => {
      clearTimeout(silent);
      silent = setTimeout(() => {
        dead = true;
        ctl.abort();
      }, this.deadAfterMs);
    };
    try {
      arm();
      let res: Response;
      try {
        res = await this.fetch(`${this.base}${NODE_ROUTES.stream}`, {
          headers: { ...this.headers(false), accept: STREAM_CONTENT_TYPE },
          signal: ctl.signal,
          redirect: 'manual',
        });
      } catch (e) {
        if (signal.aborted) return;
        const cause = (e as { cause?: { code?: string } }).cause;
        throw unreachable(this.base, e, dead ? 'no answer' : (cause?.code ?? errorMessage(e)));
      }
      if (isRedirect(res.status)) throw redirected(this.base, NODE_ROUTES.stream, res);
      if (!res.ok || res.body === null) {
        const text = (await readLimited(res, this.maxBytes).catch(() => null)) ?? '';
        const b = ErrorBody.safeParse(
          (() => {
            try {
              return JSON.parse(text) as unknown;
            } catch {
              return null;
            }
          })(),
        );
        throw b.success
          ? new CoordinatorError(res.status, b.data.code, b.data.message)
          : new CoordinatorError(res.status, 'unknown', `HTTP ${res.status} on the push stream`);
      }
      const type = res.headers.get('content-type') ?? '';
      if (!type.toLowerCase().startsWith(STREAM_CONTENT_TYPE))
        throw new AgentError(
          'protocol',
          `the push stream at ${this.base} answered with ${type === '' ? 'no content type' : type}, not ${STREAM_CONTENT_TYPE}; is --server the coordinator's address?`,
        );
      const parser = new SseParser(this.maxBytes);
      const decoder = new TextDecoder();
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          // Only whole lines (keepalive comments included) count as life: a server that trickles
          // bytes of a line it never ends is as silent as one that sends nothing.
          const lines = parser.lines;
          const events = parser.push(decoder.decode(value, { stream: true }));
          if (parser.lines > lines) arm();
          for (const ev of events) onEvent(parseStreamEvent(ev.event, ev.data));
          if (parser.tooLarge)
            throw new AgentError(
              'protocol',
              `the push stream sent an event longer than ${this.maxBytes} characters; dropped it and the stream`,
            );
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof AgentError) throw e;
        throw new AgentError(
          'unreachable',
          dead
            ? `the push stream went silent for ${this.deadAfterMs} ms`
            : `the push stream broke (${errorMessage(e)})`,
        );
      }
    } finally {
      clearTimeout(silent);
      signal.removeEventListener('abort', onAbort);
      // Whatever ended the loop, the connection goes with it (nothing keeps reading into memory).
      ctl.abort();
    }
  }
}
