/**
 * From network map to desired configuration (tailscale's netmap -> wgcfg step): a pure function of
 * the map and the host's own addresses, with no I/O, so the rest of the agent only ever applies
 * the difference between two of its results.
 */
import { formatEndpoint, type MapPeer, type NetworkMap } from '@wiremesh/protocol';
import { canonicalCidr, cidrContains, isIpv6 } from './prefix.js';

/** A WireGuard peer as the interface should have it. */
export interface DesiredPeer {
  /** Base64 public key: the peer's identity on the interface. */
  readonly publicKey: string;
  /** Node or external-client id from the map. */
  readonly id: string;
  readonly name: string;
  /** Mesh node, or a stock WireGuard client behind this ingress gateway. */
  readonly kind: 'node' | 'external';
  /** Canonical prefixes, sorted. Includes the allowed IPs of peers this one relays for us. */
  readonly allowedIps: readonly string[];
  /** `ip:port` to send to first, or null to wait for the peer to reach us. */
  readonly endpoint: string | null;
  /** Seconds, 0 = off. */
  readonly persistentKeepalive: number;
}

/** How traffic to one peer of the map travels. */
export interface PeerPath {
  readonly id: string;
  readonly name: string;
  readonly publicKey: string;
  readonly path: 'direct' | 'relay';
  /** Public key of the relay peer when `path` is relay. */
  readonly via: string | null;
}

/** Egress gateway role: forward the mesh to `ranges` out of `outInterface`, masqueraded. */
export interface DesiredEgress {
  /** Canonical prefixes, sorted. */
  readonly ranges: readonly string[];
  /** Outgoing interface; '' means whichever interface the host routes each range through. */
  readonly outInterface: string;
  /** The mesh's own prefixes: the sources whose traffic is forwarded and masqueraded. */
  readonly sources: readonly string[];
}

/** Forwarding the node does for others (firewall and sysctl). */
export interface DesiredForwarding {
  readonly egress: DesiredEgress | null;
  /**
   * IP families to forward between peers on the interface itself (an ingress gateway's external
   * clients, a relay's relayed nodes); empty when the node does neither.
   */
  readonly meshToMesh: readonly (4 | 6)[];
}

/** Everything the backend, router and firewall should make true for one network. */
export interface DesiredConfig {
  readonly network: string;
  readonly mapVersion: number;
  readonly listenPort: number;
  readonly mtu: number;
  /** Interface addresses with prefix length (`10.8.0.2/16`), sorted. */
  readonly addresses: readonly string[];
  /** Sorted by public key. */
  readonly peers: readonly DesiredPeer[];
  /** Prefixes routed into the interface (beyond its own subnets), canonical, sorted. */
  readonly routes: readonly string[];
  readonly forwarding: DesiredForwarding;
  /** For status: each mesh peer's path. */
  readonly paths: readonly PeerPath[];
}

/** One address of the host with its prefix length, as `os.networkInterfaces()` gives it. */
export interface LocalAddress {
  readonly address: string;
  /** `address/len`. */
  readonly cidr: string;
}

/** What besides the map shapes the config: the host's own addresses (endpoint and route choice). */
export interface NetmapContext {
  readonly localAddresses: readonly LocalAddress[];
}

const EMPTY_CONTEXT: NetmapContext = { localAddresses: [] };

function hostPrefix(ip: string): string {
  return `${ip}/${isIpv6(ip) ? 128 : 32}`;
}

/**
 * The endpoint to configure for `peer`: one of its LAN addresses when it shares a subnet with one
 * of ours (same LAN, no hairpin through a NAT), else the public endpoint the coordinator reflected,
 * else its first LAN address, else null. Pure; never throws.
 */
export function chooseEndpoint(peer: MapPeer, ctx: NetmapContext = EMPTY_CONTEXT): string | null {
  const mine = new Set(ctx.localAddresses.map((a) => a.address));
  for (const e of peer.endpoints.local) {
    if (mine.has(e.ip)) continue;
    if (ctx.localAddresses.some((a) => cidrContains(a.cidr, hostPrefix(e.ip))))
      return formatEndpoint(e);
  }
  if (peer.endpoints.reflected !== null) return formatEndpoint(peer.endpoints.reflected);
  const first = peer.endpoints.local[0];
  return first === undefined ? null : formatEndpoint(first);
}

function canonicalList(list: Iterable<string>): string[] {
  const out = new Set<string>();
  for (const c of list) {
    const k = canonicalCidr(c);
    if (k !== null) out.add(k);
  }
  return [...out].sort();
}

function isDefaultRoute(cidr: string): boolean {
  return cidr.endsWith('/0');
}

/** Whether routing `cidr` into the mesh would steal a subnet the host reaches directly. */
function overlapsLocal(cidr: string, ctx: NetmapContext): boolean {
  return ctx.localAddresses.some((a) => {
    const subnet = canonicalCidr(a.cidr);
    return subnet !== null && (cidrContains(subnet, cidr) || cidrContains(cidr, subnet));
  });
}

/**
 * Turns a (validated) network map into the configuration the interface should have:
 * - peers: every map peer (the relay carries a relayed peer's allowed IPs, and when this node is
 *   relayed the relay carries everyone's), plus external clients when this node is their ingress;
 * - routes: every configured allowed IP outside the interface's own subnets, gateway ranges
 *   included, except default routes and prefixes overlapping a subnet the host is on (either would
 *   cut the host off from its LAN or from the coordinator);
 * - forwarding: egress ranges with their interface, and mesh-to-mesh forwarding for an ingress
 *   gateway or relay.
 * Pure; returns new arrays; never throws on a schema-valid map.
 */
export function netmapToConfig(map: NetworkMap, ctx: NetmapContext = EMPTY_CONTEXT): DesiredConfig {
  const self = map.self;
  const byId = new Map(map.peers.map((p) => [p.id, p]));
  const relayOf = (p: MapPeer): MapPeer | null => {
    // This node is relayed: everything but the relay itself goes through it.
    if (self.relayedBy !== null && p.id !== self.relayedBy) return byId.get(self.relayedBy) ?? null;
    // The peer is relayed by someone other than us.
    if (p.relayedBy !== null && p.relayedBy !== self.id) return byId.get(p.relayedBy) ?? null;
    return null;
  };

  const extra = new Map<string, string[]>();
  const paths: PeerPath[] = [];
  for (const p of map.peers) {
    if (p.publicKey === self.publicKey) continue;
    const relay = relayOf(p);
    if (relay !== null && relay.publicKey !== self.publicKey) {
      const list = extra.get(relay.id) ?? [];
      list.push(...p.allowedIps);
      extra.set(relay.id, list);
      paths.push({
        id: p.id,
        name: p.name,
        publicKey: p.publicKey,
        path: 'relay',
        via: relay.publicKey,
      });
    } else {
      paths.push({ id: p.id, name: p.name, publicKey: p.publicKey, path: 'direct', via: null });
    }
  }

  const peers: DesiredPeer[] = [];
  for (const p of map.peers) {
    if (p.publicKey === self.publicKey) continue;
    const relayed = paths.find((x) => x.id === p.id)?.path === 'relay';
    const own = relayed ? [] : p.allowedIps;
    const allowedIps = canonicalList([...own, ...(extra.get(p.id) ?? [])]);
    if (relayed && allowedIps.length === 0) continue;
    peers.push({
      publicKey: p.publicKey,
      id: p.id,
      name: p.name,
      kind: 'node',
      allowedIps,
      endpoint: chooseEndpoint(p, ctx),
      persistentKeepalive: p.persistentKeepalive,
    });
  }
  if (self.isIngressGateway) {
    for (const c of self.externalClients) {
      peers.push({
        publicKey: c.publicKey,
        id: c.id,
        name: c.name,
        kind: 'external',
        allowedIps: canonicalList(c.allowedIps),
        endpoint: null,
        persistentKeepalive: 0,
      });
    }
  }
  peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0));

  const ownSubnets = canonicalList([...self.interfaceAddresses, ...self.networkCidrs]);
  const routes = canonicalList(peers.flatMap((p) => p.allowedIps)).filter(
    (r) =>
      !isDefaultRoute(r) && !ownSubnets.some((s) => cidrContains(s, r)) && !overlapsLocal(r, ctx),
  );

  const egress: DesiredEgress | null =
    self.egress === null
      ? null
      : {
          ranges: canonicalList(self.egress.ranges),
          outInterface: self.egress.interface,
          sources: canonicalList(self.networkCidrs),
        };

  return {
    network: map.network.name,
    mapVersion: map.version,
    listenPort: self.listenPort,
    mtu: self.mtu,
    addresses: [...new Set(self.interfaceAddresses)].sort(),
    peers,
    routes,
    forwarding: {
      egress,
      meshToMesh:
        self.isIngressGateway || self.isRelay || self.relays.length > 0
          ? [...new Set(self.networkCidrs.map((c) => (isIpv6(c) ? 6 : 4) as 4 | 6))].sort()
          : [],
    },
    paths,
  };
}
