/**
 * The agent's side of the REST API: registration, check-in (polling), the push stream's events,
 * and status reports. Routes are in ROUTES (routes.ts); a node authenticates with the node secret
 * it got at registration (`Authorization: Bearer wmn_...`) and can only ever name itself.
 */
import { z } from 'zod';
import { MAX_LOCAL_ENDPOINTS, MAX_PEER_STATUS } from './constants.js';
import { Backend, MapPatch, NetworkMap, NodeState } from './map.js';
import { Endpoint, Id, Name, Port, Text, UnixMs, WgKey } from './primitives.js';

/** Body of `POST /api/v1/register`: a node asks to join `network`. */
export const RegisterRequest = z.object({
  protocolVersion: z.int().min(1),
  network: Name,
  /** Enrollment key (`wmk_...`); omit for networks that allow joining without a key (approval needed). */
  enrollmentKey: z.string().max(256).optional(),
  name: Name,
  publicKey: WgKey,
  os: Text,
  /** Agent version string, e.g. `wiremesh 0.1.0`. */
  version: Text,
  backend: Backend,
  /** WireGuard listen port; omitted means the network's default. */
  listenPort: Port.optional(),
  /** LAN addresses with the listen port: candidates for peers on the same LAN. */
  localEndpoints: z.array(Endpoint).max(MAX_LOCAL_ENDPOINTS).optional(),
});
/** Body of a registration. */
export type RegisterRequest = z.infer<typeof RegisterRequest>;

/** Response of a registration (201). `nodeSecret` is shown once: the agent stores it (0600). */
export const RegisterResponse = z.object({
  protocolVersion: z.int().min(1),
  nodeId: Id,
  /** `wmn_<nodeId>.<random>`: the node's bearer token from now on. The coordinator keeps only a hash. */
  nodeSecret: z.string(),
  state: NodeState,
  /** The map when the node is approved at once (auto-approving key), else null. */
  map: NetworkMap.nullable(),
});
/** Response of a registration. */
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/** What an agent observed about one peer (wg show: latest handshake, transfer, endpoint). */
export const PeerStatus = z.object({
  publicKey: WgKey,
  /** Unix ms of the latest handshake; null if none yet. */
  latestHandshakeMs: UnixMs.nullable(),
  rxBytes: z.int().min(0),
  txBytes: z.int().min(0),
  endpoint: Endpoint.nullable(),
  /** Whether traffic to this peer goes direct or through its relay. */
  path: z.enum(['direct', 'relay']).optional(),
  /**
   * Age of the latest handshake on the direct peer entry when the report was made, by the agent's
   * own clock (so the coordinator needs no synchronised clocks); null if none yet. While the peer
   * is relayed this still describes the direct entry, which keeps trying: the coordinator moves
   * the pair back to direct when it becomes fresh.
   */
  handshakeAgeMs: z.int().min(0).nullable().optional(),
  /**
   * Where the peer's packets came from, as `wg show` has it after a recent handshake (WireGuard
   * roams the endpoint to the source of every authenticated packet), or null when there was none
   * lately; absent from agents before 2026-12-04. Only reports of public nodes are used (a node
   * behind a NAT sees the NAT's view of the path, not the peer's public endpoint).
   */
  observedEndpoint: Endpoint.nullable().optional(),
});
/** What an agent observed about one peer. */
export type PeerStatus = z.infer<typeof PeerStatus>;

/**
 * Body of `POST /api/v1/node/checkin`: the node's report about itself, plus the map version it holds.
 * Optional fields left out keep their stored values. Changing listenPort, localEndpoints or
 * reflectedEndpoint changes what peers see, so their maps get a new version.
 */
export const CheckinRequest = z.object({
  protocolVersion: z.int().min(1),
  /** Version of the map the agent holds; the response omits the map when it is still current. */
  knownMapVersion: z.int().min(0).nullable().optional(),
  listenPort: Port.optional(),
  localEndpoints: z.array(Endpoint).max(MAX_LOCAL_ENDPOINTS).optional(),
  /** The public ip:port learned from the reflector (reflect.ts), or null to clear it. */
  reflectedEndpoint: Endpoint.nullable().optional(),
  backend: Backend.optional(),
  version: Text.optional(),
  os: Text.optional(),
  peers: z.array(PeerStatus).max(MAX_PEER_STATUS).optional(),
});
/** Body of a check-in. */
export type CheckinRequest = z.infer<typeof CheckinRequest>;

/** Response of a check-in. `map` is null when the node is not approved or already holds `mapVersion`. */
export const CheckinResponse = z.object({
  protocolVersion: z.int().min(1),
  state: NodeState,
  mapVersion: z.int().min(0).nullable(),
  map: NetworkMap.nullable(),
  /** When the agent should check in again if it has no push stream. */
  pollIntervalMs: z.int().min(1),
});
/** Response of a check-in. */
export type CheckinResponse = z.infer<typeof CheckinResponse>;

/**
 * One event on the push stream (`GET /api/v1/node/stream`, server-sent events). The SSE `event:`
 * field equals `type`, `id:` is the map version when there is one, and `data:` is this object as JSON.
 * - `map`: the full map (always first once approved, and whenever a patch cannot apply).
 * - `patch`: apply with `applyMapPatch`; when it returns null, fetch `GET /api/v1/node/map`.
 * - `state`: the node is not (or no longer) approved; for `rejected` and `removed` the stream ends.
 */
export const PushEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('map'), map: NetworkMap }),
  z.object({ type: z.literal('patch'), patch: MapPatch }),
  z.object({ type: z.literal('state'), state: NodeState, message: z.string() }),
]);
/** One event on the push stream. */
export type PushEvent = z.infer<typeof PushEvent>;
/** The `type` of a push event, also its SSE event name. */
export type PushEventType = PushEvent['type'];

/** Response of `GET /api/v1/info` (no auth): what a client needs before it registers. */
export const InfoResponse = z.object({
  name: z.literal('wiremesh-coordinator'),
  version: z.string(),
  protocolVersion: z.int().min(1),
  minProtocolVersion: z.int().min(1),
  reflectPort: Port.nullable(),
});
/** Response of `GET /api/v1/info`. */
export type InfoResponse = z.infer<typeof InfoResponse>;

/**
 * Parses one server-sent-events `data:` payload into a PushEvent. Returns null (never throws) for
 * text that is not JSON or does not match the schema.
 */
export function parsePushEvent(data: string): PushEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  const r = PushEvent.safeParse(value);
  return r.success ? r.data : null;
}
