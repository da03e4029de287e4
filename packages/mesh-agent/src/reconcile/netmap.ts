/**
 * From network map to desired configuration (tailscale's netmap -> wgcfg step): a pure function of
 * the map and the host's own addresses, with no I/O, so the rest of the agent only ever applies
 * the difference between two of its results.
 */
import { formatEndpoint, type Endpoint, type MapPeer, type NetworkMap } from '@wiremesh/protocol';
import { canonicalCidr, cidrContains, isIpv6 } from '../prefix.js';

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
  /** Name of the relay node when `path` is relay. */
  readonly viaName: string | null;
  /**
   * For a relayed peer: whether its own entry stays configured (endpoint and keepalive, no allowed
   * IPs) so a direct path can come back (the automatic fallback), or is left out (an admin relay).
   */
  readonly keepsDirectEntry: boolean;
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
  /**
   * This node's public endpoint as the coordinator's reflector saw it, or null/absent when unknown
   * (kernel backend, no reflector, not probed yet).
   */
  readonly reflected?: Endpoint | null;
}

const EMPTY_CONTEXT: NetmapContext = { localAddresses: [] };

function hostPrefix(ip: string): string {
  return `${ip}/${isIpv6(ip) ? 128 : 32}`;
}

/** An IP address in one canonical text form, for comparing what different sources wrote. */
function sameIp(a: string, b: string): boolean {
  const norm = (ip: string) => canonicalCidr(hostPrefix(ip)) ?? ip;
  return norm(a) === norm(b);
}

/**
 * The endpoint to configure for `peer`. Pure; never throws.
 * - Behind the same public address as us (equal reflected IPs): one of its LAN addresses, on a
 *   subnet of ours if it has one (NATs do not hairpin: the public address would not work).
 * - Both public addresses known and different: its reflected endpoint, never a LAN address (two
 *   homes often use the same private subnet, so a shared subnet proves nothing).
 * - Otherwise (ours or its unknown): a LAN address on a subnet of ours, else its reflected
 *   endpoint, else its first LAN address that is not also ours, else null (wait for the peer).
 */
export function chooseEndpoint(peer: MapPeer, ctx: NetmapContext = EMPTY_CONTEXT): string | null {
  const mine = new Set(ctx.localAddresses.map((a) => a.address));
  const local = peer.endpoints.local.filter((e) => !mine.has(e.ip));
  const onMyLan = local.find((e) =>
    ctx.localAddresses.some((a) => cidrContains(a.cidr, hostPrefix(e.ip))),
  );
  const theirs = peer.endpoints.reflected;
  const ours = ctx.reflected ?? null;
  if (theirs !== null && ours !== null) {
    if (sameIp(theirs.ip, ours.ip)) {
      const lan = onMyLan ?? local[0];
      if (lan !== undefined) return formatEndpoint(lan);
    }
    return formatEndpoint(theirs);
  }
  if (onMyLan !== undefined) return formatEndpoint(onMyLan);
  if (theirs !== null) return formatEndpoint(theirs);
  // Not one of our own addresses: two LANs numbered alike often give both hosts the same one.
  const first = local[0];
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
  const pairRelays = new Map((self.peerRelays ?? []).map((r) => [r.peerId, r.relayId]));
  const relayOf = (p: MapPeer): { relay: MapPeer; keep: boolean } | null => {
    const found = (id: string, keep: boolean) => {
      const relay = byId.get(id);
      return relay === undefined || relay.id === p.id ? null : { relay, keep };
    };
    // This node is relayed: everything but the relay itself goes through it.
    if (self.relayedBy !== null && p.id !== self.relayedBy) return found(self.relayedBy, false);
    // The peer is relayed by someone other than us.
    if (p.relayedBy !== null && p.relayedBy !== self.id) return found(p.relayedBy, false);
    // No direct handshake with this peer: the coordinator picked a relay for the pair.
    const pair = pairRelays.get(p.id);
    if (pair !== undefined && pair !== self.id) return found(pair, true);
    return null;
  };

  const extra = new Map<string, string[]>();
  const paths: PeerPath[] = [];
  for (const p of map.peers) {
    if (p.publicKey === self.publicKey) continue;
    const r = relayOf(p);
    if (r !== null && r.relay.publicKey !== self.publicKey) {
      const list = extra.get(r.relay.id) ?? [];
      list.push(...p.allowedIps);
      extra.set(r.relay.id, list);
      paths.push({
        id: p.id,
        name: p.name,
        publicKey: p.publicKey,
        path: 'relay',
        via: r.relay.publicKey,
        viaName: r.relay.name,
        keepsDirectEntry: r.keep,
      });
    } else {
      paths.push({
        id: p.id,
        name: p.name,
        publicKey: p.publicKey,
        path: 'direct',
        via: null,
        viaName: null,
        keepsDirectEntry: true,
      });
    }
  }

  const pathOf = new Map(paths.map((x) => [x.id, x]));
  const peers: DesiredPeer[] = [];
  for (const p of map.peers) {
    if (p.publicKey === self.publicKey) continue;
    const path = pathOf.get(p.id);
    const relayed = path?.path === 'relay';
    const own = relayed ? [] : p.allowedIps;
    const allowedIps = canonicalList([...own, ...(extra.get(p.id) ?? [])]);
    // An admin relay replaces the peer; the automatic one keeps its entry trying the direct path.
    if (relayed && allowedIps.length === 0 && path?.keepsDirectEntry !== true) continue;
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
