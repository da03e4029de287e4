/**
 * Network maps as the coordinator builds them: one snapshot per network revision holds every
 * approved node's peer entry and self entry, each serialised once, so a change fans out to a
 * thousand streams by string concatenation. Pure: no I/O, no clock.
 */
import {
  NetworkMap,
  PROTOCOL_VERSION,
  type MapExternalClient,
  type MapNetwork,
  type MapPeer,
  type MapSelf,
  type NodeState,
  type PeerRelay,
} from '@wiremesh/protocol';
import { addressesOf, rangesOf, type NetworkState, type NodeRecord } from './store/index.js';

const HOST_PREFIX_V4 = 32;
const HOST_PREFIX_V6 = 128;

/** One entry, with its JSON made once. */
interface Entry<T> {
  value: T;
  json: string;
}

/** A network at one revision, ready to serve maps and patches. */
export interface Snapshot {
  networkId: string;
  revision: number;
  /** The state of every node in the network (streams of non-approved nodes get state events). */
  states: ReadonlyMap<string, NodeState>;
  network: Entry<MapNetwork>;
  /** Peer entries of approved nodes, in a stable order. */
  peers: ReadonlyMap<string, Entry<MapPeer>>;
  selves: ReadonlyMap<string, Entry<MapSelf>>;
  reflectPort: number | null;
}

function hostCidrs(v4: string, v6: string | null): string[] {
  return v6 === null
    ? [`${v4}/${HOST_PREFIX_V4}`]
    : [`${v4}/${HOST_PREFIX_V4}`, `${v6}/${HOST_PREFIX_V6}`];
}

function entry<T>(value: T): Entry<T> {
  return { value, json: JSON.stringify(value) };
}

/**
 * Builds the snapshot of `state`: only approved nodes are peers; a relay or ingress role counts
 * only while its node is approved. `reflectPort` is the coordinator's reflector port or null.
 */
export function buildSnapshot(state: NetworkState, reflectPort: number | null): Snapshot {
  const net = state.network;
  const ranges = rangesOf(net);
  const approved = state.nodes.filter((n) => n.state === 'approved');
  const approvedIds = new Set(approved.map((n) => n.id));
  const relaysOf = new Map<string, string[]>();
  for (const n of approved) {
    if (n.relayedBy === null || !approvedIds.has(n.relayedBy)) continue;
    const list = relaysOf.get(n.relayedBy) ?? [];
    list.push(n.id);
    relaysOf.set(n.relayedBy, list);
  }
  // Relay fallback: each relayed pair appears in both nodes' self entries (mirror images). A row
  // whose nodes or relay no longer qualify is ignored here; the path monitor deletes it.
  const byId = new Map(approved.map((n) => [n.id, n]));
  const peerRelaysOf = new Map<string, PeerRelay[]>();
  for (const r of state.pairRelays ?? []) {
    const a = byId.get(r.a);
    const b = byId.get(r.b);
    const relay = byId.get(r.relayId);
    if (a === undefined || b === undefined || relay === undefined || !relay.isRelay) continue;
    if (relay.id === a.id || relay.id === b.id) continue;
    if (a.isRelay || b.isRelay || a.relayedBy !== null || b.relayedBy !== null) continue;
    for (const [self, peer] of [
      [a.id, b.id],
      [b.id, a.id],
    ] as const) {
      const list = peerRelaysOf.get(self) ?? [];
      list.push({ peerId: peer, relayId: relay.id });
      peerRelaysOf.set(self, list);
    }
  }
  const clientsOf = new Map<string, MapExternalClient[]>();
  for (const c of state.extClients) {
    const a = addressesOf(ranges, c.hostIndex);
    const list = clientsOf.get(c.ingressNodeId) ?? [];
    list.push({
      id: c.id,
      name: c.name,
      publicKey: c.publicKey,
      addressV4: a.v4,
      addressV6: a.v6,
      allowedIps: hostCidrs(a.v4, a.v6),
    });
    clientsOf.set(c.ingressNodeId, list);
  }
  const network: MapNetwork = {
    name: net.name,
    ipv4Cidr: net.ipv4Cidr,
    ipv6Cidr: net.ipv6Cidr,
    dnsDomain: net.name,
  };
  const prefix = (cidr: string): string => cidr.slice(cidr.indexOf('/'));
  const networkCidrs = net.ipv6Cidr === null ? [net.ipv4Cidr] : [net.ipv4Cidr, net.ipv6Cidr];
  const peers = new Map<string, Entry<MapPeer>>();
  const selves = new Map<string, Entry<MapSelf>>();
  for (const n of approved) {
    const a = addressesOf(ranges, n.hostIndex);
    const egress = n.egress;
    const isIngress = n.isIngress;
    const clients = isIngress ? (clientsOf.get(n.id) ?? []) : [];
    const isRelay = n.isRelay;
    const relays = isRelay ? (relaysOf.get(n.id) ?? []) : [];
    const relayedBy = n.relayedBy !== null && approvedIds.has(n.relayedBy) ? n.relayedBy : null;
    const dnsName = `${n.name}.${network.dnsDomain}`;
    peers.set(
      n.id,
      entry<MapPeer>({
        id: n.id,
        name: n.name,
        dnsName,
        publicKey: n.publicKey,
        addressV4: a.v4,
        addressV6: a.v6,
        allowedIps: [
          ...hostCidrs(a.v4, a.v6),
          ...(egress?.ranges ?? []),
          ...clients.flatMap((c) => c.allowedIps),
        ],
        endpoints: endpointsOf(n),
        listenPort: n.listenPort,
        persistentKeepalive: net.persistentKeepalive,
        relayedBy,
        isRelay,
        relays,
        isEgressGateway: egress !== null,
        egressRanges: egress?.ranges ?? [],
        isIngressGateway: isIngress,
      }),
    );
    selves.set(
      n.id,
      entry<MapSelf>({
        id: n.id,
        name: n.name,
        dnsName,
        publicKey: n.publicKey,
        addressV4: a.v4,
        addressV6: a.v6,
        interfaceAddresses:
          a.v6 === null || net.ipv6Cidr === null
            ? [`${a.v4}${prefix(net.ipv4Cidr)}`]
            : [`${a.v4}${prefix(net.ipv4Cidr)}`, `${a.v6}${prefix(net.ipv6Cidr)}`],
        networkCidrs,
        listenPort: n.listenPort,
        mtu: net.mtu,
        persistentKeepalive: net.persistentKeepalive,
        egress,
        isIngressGateway: isIngress,
        externalClients: clients,
        isRelay,
        relays,
        relayedBy,
        ...(peerRelaysOf.has(n.id) ? { peerRelays: peerRelaysOf.get(n.id) } : {}),
      }),
    );
  }
  return {
    networkId: net.id,
    revision: net.revision,
    states: new Map(state.nodes.map((n) => [n.id, n.state])),
    network: entry(network),
    peers,
    selves,
    reflectPort,
  };
}

function endpointsOf(n: NodeRecord): MapPeer['endpoints'] {
  return { reflected: n.reflectedEndpoint, local: [...n.localEndpoints] };
}

/**
 * The full map of approved node `nodeId` as JSON text (the same bytes `mapFor` would stringify
 * to), or null when the node is not approved in this snapshot.
 */
export function mapJsonFor(s: Snapshot, nodeId: string): string | null {
  const self = s.selves.get(nodeId);
  if (self === undefined) return null;
  const parts: string[] = [];
  for (const [id, p] of s.peers) if (id !== nodeId) parts.push(p.json);
  return (
    `{"protocolVersion":${PROTOCOL_VERSION},"version":${s.revision},"network":${s.network.json},` +
    `"self":${self.json},"peers":[${parts.join(',')}],"reflectPort":${JSON.stringify(s.reflectPort)}}`
  );
}

function isNetworkMap(v: unknown): v is NetworkMap {
  return NetworkMap.safeParse(v).success;
}

/**
 * The full map of approved node `nodeId` exactly as a stream sends it, or null when it is not
 * approved in this snapshot. Throws TypeError when the map does not pass the protocol's schema.
 */
export function mapFor(s: Snapshot, nodeId: string): NetworkMap | null {
  const text = mapJsonFor(s, nodeId);
  if (text === null) return null;
  const map: unknown = JSON.parse(text);
  if (!isNetworkMap(map)) throw new TypeError(`the map of node ${nodeId} fails the schema`);
  return map;
}

/** What changed between two snapshots of one network, shared by every node's patch. */
export interface SnapshotDiff {
  from: number;
  to: number;
  network: string | null;
  reflectPort: boolean;
  /** Ids and JSON of peers that are new or different. */
  upserts: [string, string][];
  removed: string[];
  /** Ids of nodes whose own self entry changed. */
  selfChanged: ReadonlySet<string>;
}

/** Compares two snapshots of the same network. */
export function diffSnapshots(prev: Snapshot, next: Snapshot): SnapshotDiff {
  const upserts: [string, string][] = [];
  for (const [id, p] of next.peers)
    if (prev.peers.get(id)?.json !== p.json) upserts.push([id, p.json]);
  const removed: string[] = [];
  for (const id of prev.peers.keys()) if (!next.peers.has(id)) removed.push(id);
  const selfChanged = new Set<string>();
  for (const [id, e] of next.selves) if (prev.selves.get(id)?.json !== e.json) selfChanged.add(id);
  return {
    from: prev.revision,
    to: next.revision,
    network: prev.network.json === next.network.json ? null : next.network.json,
    reflectPort: prev.reflectPort !== next.reflectPort,
    upserts,
    removed,
    selfChanged,
  };
}

/** The patch event payload (`MapPatch` JSON) that moves node `nodeId` from `d.from` to `d.to`. */
export function patchJsonFor(d: SnapshotDiff, next: Snapshot, nodeId: string): string {
  const ups: string[] = [];
  for (const [id, text] of d.upserts) if (id !== nodeId) ups.push(text);
  const rm = d.removed.filter((id) => id !== nodeId);
  let out = `{"fromVersion":${d.from},"version":${d.to}`;
  if (d.network !== null) out += `,"network":${d.network}`;
  if (d.selfChanged.has(nodeId)) out += `,"self":${next.selves.get(nodeId)?.json ?? 'null'}`;
  if (d.reflectPort) out += `,"reflectPort":${JSON.stringify(next.reflectPort)}`;
  return `${out},"upsertPeers":[${ups.join(',')}],"removePeerIds":${JSON.stringify(rm)}}`;
}
