/**
 * The admin side of the REST API (used by the CLI, the web UI and tests): networks, enrollment
 * keys, nodes, gateway roles, relays and external clients. Admin routes need
 * `Authorization: Bearer wma_...`. Secrets (enrollment keys, generated private keys) appear once.
 * Request bodies are strict: an unknown field is refused, never silently ignored.
 */
import { z } from 'zod';
import {
  MAX_EGRESS_RANGES,
  MAX_KEY_LIFETIME_S,
  MAX_KEY_USES,
  MAX_LOCAL_ENDPOINTS,
  MAX_RELAYED_NODES,
} from './constants.js';
import { Backend, EgressRole, EndpointSource, Keepalive, Mtu, NodeState } from './map.js';
import { PeerStatus } from './node-api.js';
import {
  Cidr,
  DnsDomain,
  Endpoint,
  HostPort,
  Id,
  InterfaceName,
  IpAddress,
  Ipv4,
  Ipv4Cidr,
  Ipv6,
  Ipv6Cidr,
  Name,
  Port,
  UnixMs,
  WgKey,
} from './primitives.js';

/** Body of `POST /api/v1/networks`. */
export const CreateNetworkRequest = z.strictObject({
  name: Name,
  ipv4Cidr: Ipv4Cidr,
  /** An IPv6 ULA prefix (fc00::/7) of length 64-120, or omitted for IPv4 only. */
  ipv6Cidr: Ipv6Cidr.optional(),
  listenPort: Port.optional(),
  persistentKeepalive: Keepalive.optional(),
  mtu: Mtu.optional(),
  /** Let nodes register without an enrollment key; they then wait for approval. */
  allowJoinWithoutKey: z.boolean().optional(),
  /** Allow an IPv4 range outside private space (RFC 1918, 100.64.0.0/10): it hides real hosts. */
  allowPublicRange: z.boolean().optional(),
  /** Allow ranges that overlap another network's on this coordinator. */
  allowOverlap: z.boolean().optional(),
});
/** Body of a network creation. */
export type CreateNetworkRequest = z.infer<typeof CreateNetworkRequest>;

/** Body of `PATCH /api/v1/networks/:network`: the settings that can change without renumbering. */
export const UpdateNetworkRequest = z.strictObject({
  listenPort: Port.optional(),
  persistentKeepalive: Keepalive.optional(),
  mtu: Mtu.optional(),
  allowJoinWithoutKey: z.boolean().optional(),
});
/** Body of a network update. */
export type UpdateNetworkRequest = z.infer<typeof UpdateNetworkRequest>;

/** A network as the admin API returns it. */
export const Network = z.object({
  id: Id,
  name: Name,
  ipv4Cidr: Ipv4Cidr,
  ipv6Cidr: Ipv6Cidr.nullable(),
  listenPort: Port,
  persistentKeepalive: Keepalive,
  mtu: Mtu,
  allowJoinWithoutKey: z.boolean(),
  /** The current map version of the network. */
  revision: z.int().min(0),
  createdAt: UnixMs,
});
/** A network. */
export type Network = z.infer<typeof Network>;

/** Body of `POST /api/v1/networks/:network/keys`. */
export const CreateKeyRequest = z.strictObject({
  name: Name.optional(),
  /** How many registrations the key admits; omitted means unlimited (reusable). */
  maxUses: z.int().min(1).max(MAX_KEY_USES).optional(),
  /** Lifetime in seconds from now; omitted means it never expires. */
  expiresInS: z.int().min(1).max(MAX_KEY_LIFETIME_S).optional(),
  /** Nodes registering with this key are approved at once. */
  autoApprove: z.boolean().optional(),
});
/** Body of an enrollment-key creation. */
export type CreateKeyRequest = z.infer<typeof CreateKeyRequest>;

/** An enrollment key. `key` is present only in the creation response (shown once). */
export const EnrollmentKey = z.object({
  id: Id,
  network: Name,
  name: z.string().nullable(),
  maxUses: z.int().nullable(),
  uses: z.int().min(0),
  expiresAt: UnixMs.nullable(),
  autoApprove: z.boolean(),
  revoked: z.boolean(),
  createdAt: UnixMs,
  key: z.string().optional(),
  /**
   * The key carrying the fingerprint of the coordinator's TLS certificate (pinning.ts): present
   * in the creation response when the coordinator serves TLS. For self-signed certificates.
   */
  pinnedKey: z.string().optional(),
});
/** An enrollment key. */
export type EnrollmentKey = z.infer<typeof EnrollmentKey>;

/** A node as the admin API returns it. */
export const Node = z.object({
  id: Id,
  network: Name,
  name: Name,
  publicKey: WgKey,
  state: NodeState,
  addressV4: Ipv4,
  addressV6: Ipv6.nullable(),
  os: z.string(),
  version: z.string(),
  backend: Backend,
  listenPort: Port,
  localEndpoints: z.array(Endpoint).max(MAX_LOCAL_ENDPOINTS),
  reflectedEndpoint: Endpoint.nullable(),
  egress: EgressRole.nullable(),
  isIngressGateway: z.boolean(),
  ingressEndpoint: z.string().nullable(),
  isRelay: z.boolean(),
  relayedBy: Id.nullable(),
  lastSeenAt: UnixMs.nullable(),
  /** Per-peer status the node reported at its last check-in. */
  peers: z.array(PeerStatus),
  createdAt: UnixMs,
});
/** A node. */
export type Node = z.infer<typeof Node>;

/** Body of `PUT /api/v1/nodes/:id/egress`. */
export const SetEgressRequest = z.strictObject({
  ranges: z.array(Cidr).min(1).max(MAX_EGRESS_RANGES),
  interface: InterfaceName.optional(),
});
/** Body of an egress-gateway change. */
export type SetEgressRequest = z.infer<typeof SetEgressRequest>;

/** Body of `PUT /api/v1/nodes/:id/ingress`. */
export const SetIngressRequest = z.strictObject({
  /**
   * The `host:port` external clients dial (written into their config). Omitted means the node's
   * reflected public endpoint, else its first local endpoint.
   */
  endpoint: HostPort.optional(),
});
/** Body of an ingress-gateway change. */
export type SetIngressRequest = z.infer<typeof SetIngressRequest>;

/** Body of `PUT /api/v1/nodes/:id/relay`: the node relays for these nodes (ids or names) of its network. */
export const SetRelayRequest = z.strictObject({
  relayedNodeIds: z.array(Id).max(MAX_RELAYED_NODES),
});
/** Body of a relay change. */
export type SetRelayRequest = z.infer<typeof SetRelayRequest>;

/** Body of `POST /api/v1/networks/:network/extclients`. */
export const CreateExtClientRequest = z.strictObject({
  name: Name,
  /** The ingress gateway node; omitted means the network's only ingress gateway. */
  ingressNodeId: Id.optional(),
  /** The client's own public key; omitted means the coordinator generates the key pair. */
  publicKey: WgKey.optional(),
  /** DNS servers for the client's wg-quick `DNS =` line. */
  dns: z.array(IpAddress).max(4).optional(),
  /**
   * Put the ingress gateway's mesh address first in `dns` (its agent's resolver answers for the
   * network's domain) and the domain as the search domain of the wg-quick file. Default true;
   * false leaves `dns` as given (a Linux client whose wg-quick has no resolvconf, say).
   */
  meshDns: z.boolean().optional(),
});
/** Body of an external-client creation. */
export type CreateExtClientRequest = z.infer<typeof CreateExtClientRequest>;

/** An external (stock WireGuard) client. */
export const ExtClient = z.object({
  id: Id,
  network: Name,
  name: Name,
  publicKey: WgKey,
  /** Whether the coordinator holds the private key (generated) so it can render a full config. */
  hasPrivateKey: z.boolean(),
  ingressNodeId: Id,
  addressV4: Ipv4,
  addressV6: Ipv6.nullable(),
  dns: z.array(IpAddress),
  createdAt: UnixMs,
});
/** An external client. */
export type ExtClient = z.infer<typeof ExtClient>;

/** Response of `POST /api/v1/admin/token/rotate`: the new admin token, shown once. */
export const RotateTokenResponse = z.object({ token: z.string() });
/** Response of an admin-token rotation. */
export type RotateTokenResponse = z.infer<typeof RotateTokenResponse>;

/** Body of `PUT /api/v1/nodes/:id/name`: a new name (the node's DNS name follows). */
export const RenameNodeRequest = z.strictObject({ name: Name });
/** Body of a node rename. */
export type RenameNodeRequest = z.infer<typeof RenameNodeRequest>;

/** Body of `PUT /api/v1/networks/:network/dns`: the network's DNS domain. */
export const SetDnsDomainRequest = z.strictObject({
  domain: DnsDomain,
  /** Confirms a domain that ends in a public top-level domain (its real names stop resolving). */
  force: z.boolean().optional(),
});
/** Body of a DNS domain change. */
export type SetDnsDomainRequest = z.infer<typeof SetDnsDomainRequest>;

/** Body of `POST /api/v1/networks/:network/dns/records`: `<name>.<domain>` answers with `ip`. */
export const CreateDnsRecordRequest = z.strictObject({ name: Name, ip: IpAddress });
/** Body of a custom DNS record creation. */
export type CreateDnsRecordRequest = z.infer<typeof CreateDnsRecordRequest>;

/** A custom DNS record an admin added. */
export const DnsRecord = z.object({
  id: Id,
  network: Name,
  name: Name,
  dnsName: z.string(),
  ip: IpAddress,
  createdAt: UnixMs,
});
/** A custom DNS record. */
export type DnsRecord = z.infer<typeof DnsRecord>;

/** Response of `GET /api/v1/networks/:network/dns`: the domain and every name in it. */
export const NetworkDns = z.object({
  network: Name,
  domain: DnsDomain,
  /** Every name of the domain: nodes (approved), external clients and custom records. */
  names: z.array(
    z.object({
      name: Name,
      dnsName: z.string(),
      kind: z.enum(['node', 'external', 'custom']),
      addresses: z.array(IpAddress),
      /** The record's id (custom records), the node's or the client's id otherwise. */
      id: Id,
    }),
  ),
});
/** A network's DNS names. */
export type NetworkDns = z.infer<typeof NetworkDns>;

/**
 * What a named admin token may do: `read` every GET route (and /metrics with network names),
 * `approve` also approve and reject nodes, `full` everything (the first admin token is `full`).
 */
export const AdminScope = z.enum(['read', 'approve', 'full']);
/** A scope of an admin token. */
export type AdminScope = z.infer<typeof AdminScope>;

/** Body of `POST /api/v1/admin/tokens`. */
export const CreateAdminTokenRequest = z.strictObject({ name: Name, scope: AdminScope });
/** Body of a named-token creation. */
export type CreateAdminTokenRequest = z.infer<typeof CreateAdminTokenRequest>;

/** A named admin token. `token` is present only in the creation response (shown once). */
export const AdminToken = z.object({
  id: Id,
  name: Name,
  scope: AdminScope,
  createdAt: UnixMs,
  lastUsedAt: UnixMs.nullable(),
  revoked: z.boolean(),
  token: z.string().optional(),
});
/** A named admin token. */
export type AdminToken = z.infer<typeof AdminToken>;

/**
 * One mutating admin call as the audit log keeps it: who (the token's name; `admin` for the first
 * token), what (method, route pattern, path, status), when, and
 * from where (client address). Bodies are never kept, so no secret is.
 */
export const AuditEntry = z.object({
  id: Id,
  at: UnixMs,
  actor: z.string(),
  method: z.string(),
  route: z.string(),
  path: z.string(),
  status: z.int(),
  ip: z.string(),
});
/** One audit-log entry. */
export type AuditEntry = z.infer<typeof AuditEntry>;

/**
 * How traffic between two approved nodes flows, from the agents' last reports and the
 * coordinator's relay decisions:
 * - `direct`: a handshake younger than the coordinator's freshness bound (195 s) on the direct entry;
 * - `lan`: the same, and the endpoint in use is one of the peer's LAN addresses;
 * - `relay`: through `relayId` (the relay fallback's pair relay, or a relay an admin set);
 * - `down`: the nodes report each other but no fresh handshake (waiting for a direct path);
 * - `unknown`: neither node has reported the other yet.
 */
export const PathKind = z.enum(['direct', 'lan', 'relay', 'down', 'unknown']);
/** How traffic between two nodes flows. */
export type PathKind = z.infer<typeof PathKind>;

/** One approved node in the paths view. */
export const PathsNode = z.object({
  id: Id,
  name: Name,
  addressV4: Ipv4,
  /** It checked in within the coordinator's online window (3 minutes). */
  online: z.boolean(),
  lastSeenAt: UnixMs.nullable(),
  isRelay: z.boolean(),
  isIngressGateway: z.boolean(),
  isEgressGateway: z.boolean(),
  /** The relay an admin routes all of this node's peers through, or null. */
  relayedBy: Id.nullable(),
  /** The public endpoint its peers are given, and how it was learned (null: none known). */
  publicEndpoint: Endpoint.nullable(),
  endpointSource: EndpointSource.nullable(),
  /** Its LAN endpoints (candidates for peers on the same LAN). */
  localEndpoints: z.array(Endpoint).max(MAX_LOCAL_ENDPOINTS),
});
/** One node in the paths view. */
export type PathsNode = z.infer<typeof PathsNode>;

/** The path between approved nodes `a` and `b` (`a` < `b`). */
export const PathLink = z.object({
  a: Id,
  b: Id,
  path: PathKind,
  /** The relay node of a `relay` path, else null. */
  relayId: Id.nullable(),
  /**
   * Why a pair is relayed: `admin` (an admin set a relay for one of the nodes), or the relay
   * fallback's `no_direct_handshake` / `nat_mapping_split` (PeerRelay); null otherwise.
   */
  reason: z.enum(['admin', 'no_direct_handshake', 'nat_mapping_split']).nullable(),
  /** The latest handshake on the direct entries either node reported, on the coordinator's clock. */
  latestHandshakeAt: UnixMs.nullable(),
  /** The endpoint `a` sends to `b` at, and `b` to `a`, as each last reported (null: none). */
  endpointAtoB: Endpoint.nullable(),
  endpointBtoA: Endpoint.nullable(),
});
/** The path between two nodes. */
export type PathLink = z.infer<typeof PathLink>;

/** Response of `GET /api/v1/networks/:network/paths`: the network's nodes and every pair's path. */
export const NetworkPaths = z.object({
  network: Name,
  revision: z.int().min(0),
  /** When the view was computed (coordinator's clock). */
  at: UnixMs,
  nodes: z.array(PathsNode),
  /** One entry per pair of approved nodes. */
  links: z.array(PathLink),
  /** External clients with the ingress gateway they dial. */
  extClients: z.array(z.object({ id: Id, name: Name, ingressNodeId: Id })),
});
/** A network's paths view. */
export type NetworkPaths = z.infer<typeof NetworkPaths>;
