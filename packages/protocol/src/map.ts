/**
 * The per-node network map: everything one node needs to configure its WireGuard interface and
 * routes (itself, its peers, gateways, relays, DNS names), and the patch that moves a map from one
 * version to the next on the push stream. Maps are immutable values; `applyMapPatch` makes a new one.
 */
import { z } from 'zod';
import {
  MAX_DNS_RECORDS,
  MAX_EGRESS_RANGES,
  MAX_MTU,
  MAX_PERSISTENT_KEEPALIVE_S,
  MIN_MTU,
  MAX_RELAYED_NODES,
  MAX_LOCAL_ENDPOINTS,
  MAX_PEER_RELAYS,
} from './constants.js';
import {
  Cidr,
  Endpoint,
  Id,
  InterfaceName,
  Ipv4,
  Ipv4Cidr,
  Ipv6,
  Ipv6Cidr,
  Name,
  Port,
  WgKey,
} from './primitives.js';

/** Lifecycle of a node: registered and waiting, admitted, refused, or gone. */
export const NodeState = z.enum(['pending', 'approved', 'rejected', 'removed']);
/** Lifecycle of a node. */
export type NodeState = z.infer<typeof NodeState>;

/** Which WireGuard implementation a node runs. */
export const Backend = z.enum(['kernel', 'userspace']);
/** Which WireGuard implementation a node runs. */
export type Backend = z.infer<typeof Backend>;

/** Seconds between persistent keepalives; 0 turns them off (wg(8) `persistent-keepalive`). */
export const Keepalive = z.int().min(0).max(MAX_PERSISTENT_KEEPALIVE_S);
/** Tunnel MTU in bytes. */
export const Mtu = z.int().min(MIN_MTU).max(MAX_MTU);

/**
 * A name in the network's domain that is not a node: an external client (its overlay addresses)
 * or a record an admin added (`dns add NAME IP`, e.g. a printer on an egress LAN).
 */
export const MapDnsRecord = z.object({
  name: Name,
  /** `<name>.<dnsDomain>`. */
  dnsName: z.string(),
  kind: z.enum(['external', 'custom']),
  addressV4: Ipv4.nullable(),
  addressV6: Ipv6.nullable(),
});
/** A name in the network's domain that is not a node. */
export type MapDnsRecord = z.infer<typeof MapDnsRecord>;

/** Network-wide settings as one node sees them. */
export const MapNetwork = z.object({
  name: Name,
  ipv4Cidr: Ipv4Cidr,
  ipv6Cidr: Ipv6Cidr.nullable(),
  /** DNS suffix of the network's names: `<node>.<dnsDomain>`. */
  dnsDomain: z.string(),
  /**
   * Names of the domain besides the nodes' own (`dnsName` of self and peers): external clients
   * and custom records. Absent from coordinators before it existed, which means none.
   */
  dnsRecords: z.array(MapDnsRecord).max(MAX_DNS_RECORDS).optional(),
});
/** Network-wide settings as one node sees them. */
export type MapNetwork = z.infer<typeof MapNetwork>;

/**
 * How a peer's public endpoint was learned:
 * - `reflector`: the node probed the coordinator's reflector from its WireGuard socket;
 * - `observed`: a public node (`byId`, `byName`: a relay, an ingress, or a node whose reflected
 *   endpoint is its own address) saw the node's packets arrive from there after a handshake. The
 *   coordinator uses it for nodes that cannot probe from their socket (kernel WireGuard, a
 *   detached userspace device), and instead of the reflector's answer when the two disagree (the
 *   NAT gave the node's later flows another public port): then `reflector` is what the reflector
 *   saw, else null.
 */
export const EndpointSource = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('reflector') }),
  z.object({
    kind: z.literal('observed'),
    byId: Id,
    byName: Name,
    reflector: Endpoint.nullable(),
  }),
]);
/** How a peer's public endpoint was learned. */
export type EndpointSource = z.infer<typeof EndpointSource>;

/** Where a peer may be reached: the public ip:port the coordinator saw, and its LAN addresses. */
export const EndpointCandidates = z.object({
  /** The public ip:port reported after UDP reflection (reflect.ts); null until known. */
  reflected: Endpoint.nullable(),
  /** The node's own interface addresses with its listen port, for peers on the same LAN. */
  local: z.array(Endpoint).max(MAX_LOCAL_ENDPOINTS),
  /** How `reflected` was learned; absent (coordinators before 2026-12-04) means the reflector. */
  reflectedSource: EndpointSource.optional(),
});
/** Where a peer may be reached. */
export type EndpointCandidates = z.infer<typeof EndpointCandidates>;

/** Egress gateway role: the node forwards traffic for these ranges out of `interface`. */
export const EgressRole = z.object({
  ranges: z.array(Cidr).min(1).max(MAX_EGRESS_RANGES),
  /** Outgoing interface for NAT on the gateway; empty means the gateway's default route. */
  interface: InterfaceName,
});
/** Egress gateway role. */
export type EgressRole = z.infer<typeof EgressRole>;

/**
 * A peer of the node. `allowedIps` is the complete WireGuard allowed-IPs list for the peer when
 * the path is direct: its overlay addresses, its egress ranges when it is an egress gateway, and
 * the addresses of external clients behind it when it is an ingress gateway. Routes follow it.
 */
export const MapPeer = z.object({
  id: Id,
  name: Name,
  dnsName: z.string(),
  publicKey: WgKey,
  addressV4: Ipv4,
  addressV6: Ipv6.nullable(),
  allowedIps: z.array(Cidr),
  endpoints: EndpointCandidates,
  listenPort: Port,
  persistentKeepalive: Keepalive,
  /** Id of the relay node this peer is reached through when no direct path works; null if none. */
  relayedBy: Id.nullable(),
  /** Whether this peer offers relaying (it forwards between peers that cannot reach each other). */
  isRelay: z.boolean(),
  /** Ids of nodes this peer relays for (their allowed IPs move to it when the direct path fails). */
  relays: z.array(Id).max(MAX_RELAYED_NODES),
  isEgressGateway: z.boolean(),
  egressRanges: z.array(Cidr).max(MAX_EGRESS_RANGES),
  isIngressGateway: z.boolean(),
});
/** A peer of the node. */
export type MapPeer = z.infer<typeof MapPeer>;

/** An external (stock WireGuard) client, present only in its ingress gateway's map. */
export const MapExternalClient = z.object({
  id: Id,
  name: Name,
  publicKey: WgKey,
  addressV4: Ipv4,
  addressV6: Ipv6.nullable(),
  /** The client's addresses as allowed IPs on the ingress gateway. */
  allowedIps: z.array(Cidr),
});
/** An external client behind this node. */
export type MapExternalClient = z.infer<typeof MapExternalClient>;

/**
 * One peer this node reaches through a relay because no direct handshake succeeded in time (the
 * coordinator assigns it per pair; both nodes of the pair get the mirror entry). The peer's
 * allowed IPs move to the relay's peer entry; the peer's own entry stays configured with its
 * endpoint and keepalive but no allowed IPs, so a direct path can still appear and be reported.
 */
export const PeerRelay = z.object({
  peerId: Id,
  relayId: Id,
  /**
   * Why the pair is relayed: `no_direct_handshake` (none within the coordinator's wait; e.g. NATs
   * that answer unsolicited packets on both sides), or `nat_mapping_split` (a NAT of the pair
   * gives the node's flows more than one public port: what the reflector saw and what a public
   * peer observes differ, so no endpoint is sure to reach it). Absent from older coordinators.
   */
  reason: z.enum(['no_direct_handshake', 'nat_mapping_split']).optional(),
});
/** One peer reached through a relay. */
export type PeerRelay = z.infer<typeof PeerRelay>;

/** The node itself: what to put on its interface and which roles it plays. */
export const MapSelf = z.object({
  id: Id,
  name: Name,
  dnsName: z.string(),
  publicKey: WgKey,
  addressV4: Ipv4,
  addressV6: Ipv6.nullable(),
  /** Addresses with the network's prefix length, ready for `ip address add`. */
  interfaceAddresses: z.array(Cidr).min(1),
  /** The network's ranges (the routes an interface address implies). */
  networkCidrs: z.array(Cidr).min(1),
  listenPort: Port,
  mtu: Mtu,
  persistentKeepalive: Keepalive,
  egress: EgressRole.nullable(),
  isIngressGateway: z.boolean(),
  /** External clients this node serves as their ingress gateway (its extra WireGuard peers). */
  externalClients: z.array(MapExternalClient),
  isRelay: z.boolean(),
  relays: z.array(Id).max(MAX_RELAYED_NODES),
  relayedBy: Id.nullable(),
  /**
   * Peers reached through a relay node (automatic fallback, PeerRelay); absent from coordinators
   * before this field existed, which means none.
   */
  peerRelays: z.array(PeerRelay).max(MAX_PEER_RELAYS).optional(),
  /**
   * This node's public endpoint as its peers are given it, when it came from a public peer's
   * observation (EndpointSource `observed`): a node that cannot probe the reflector learns here
   * whether a peer is behind the same public address. Absent otherwise and from older coordinators.
   */
  observed: z.object({ endpoint: Endpoint, source: EndpointSource }).optional(),
});
/** The node itself. */
export type MapSelf = z.infer<typeof MapSelf>;

/** One node's view of its network at one version. */
export const NetworkMap = z.object({
  protocolVersion: z.int().min(1),
  /** Grows with every change the coordinator makes in the network; skip a map not newer than yours. */
  version: z.int().min(0),
  network: MapNetwork,
  self: MapSelf,
  /** Every approved node but this one; their order carries no meaning. */
  peers: z.array(MapPeer),
  /** UDP port of the coordinator's endpoint reflector (same host as the API); null when off. */
  reflectPort: Port.nullable(),
});
/** One node's view of its network at one version. */
export type NetworkMap = z.infer<typeof NetworkMap>;

/**
 * The difference between two versions of one node's map, sent on the push stream when the agent
 * already holds `fromVersion`. Absent `self`/`network` mean unchanged; `upsertPeers` replace peers
 * with the same id or add them; `removePeerIds` drop peers.
 */
export const MapPatch = z.object({
  fromVersion: z.int().min(0),
  version: z.int().min(0),
  network: MapNetwork.optional(),
  self: MapSelf.optional(),
  reflectPort: Port.nullable().optional(),
  upsertPeers: z.array(MapPeer),
  removePeerIds: z.array(Id),
});
/** The difference between two versions of one node's map. */
export type MapPatch = z.infer<typeof MapPatch>;

/**
 * Applies `patch` to `map`. Returns a new map (the input is not modified) or null when the patch
 * does not start at `map.version`: the caller then fetches the full map. Never throws on a valid
 * map and a valid patch. Peers keep their order; new ones are appended.
 */
export function applyMapPatch(map: NetworkMap, patch: MapPatch): NetworkMap | null {
  if (patch.fromVersion !== map.version) return null;
  const removed = new Set(patch.removePeerIds);
  const upserts = new Map(patch.upsertPeers.map((p) => [p.id, p]));
  const peers: MapPeer[] = [];
  for (const p of map.peers) {
    if (removed.has(p.id)) continue;
    const next = upserts.get(p.id);
    if (next !== undefined) {
      peers.push(next);
      upserts.delete(p.id);
    } else {
      peers.push(p);
    }
  }
  for (const p of upserts.values()) if (!removed.has(p.id)) peers.push(p);
  return {
    protocolVersion: map.protocolVersion,
    version: patch.version,
    network: patch.network ?? map.network,
    self: patch.self ?? map.self,
    peers,
    reflectPort: patch.reflectPort === undefined ? map.reflectPort : patch.reflectPort,
  };
}
