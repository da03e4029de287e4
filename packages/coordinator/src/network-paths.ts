/**
 * The paths view of a network (protocol `NetworkPaths`, the web UI's map): each pair of approved
 * nodes is direct, LAN, relayed or down, from the agents' last peer reports and the relays in
 * force (an admin's, the relay fallback's). Pure: the clock comes in.
 */
import type {
  Endpoint,
  NetworkPaths,
  PathKind,
  PathLink,
  PathsNode,
  PeerStatus,
} from '@wiremesh/protocol';
import { DIRECT_HANDSHAKE_FRESH_MS, ONLINE_WINDOW_MS } from './constants.js';
import { resolveEndpoints } from './observed-endpoints.js';
import { addressesOf, rangesOf, type NetworkState, type NodeRecord } from './store/index.js';

/** What one node reported about one peer, its handshake on the coordinator's clock. */
interface Report {
  handshakeAt: number | null;
  endpoint: Endpoint | null;
}

/**
 * The latest direct handshake of a report on the coordinator's clock: the agent's age is on its
 * own clock, so it is counted back from the check-in that carried it (as the relay fallback does).
 */
function handshakeAt(p: PeerStatus, seen: number | null): number | null {
  if (p.handshakeAgeMs === undefined) return p.latestHandshakeMs;
  return p.handshakeAgeMs === null || seen === null ? null : seen - p.handshakeAgeMs;
}

function reportsOf(n: NodeRecord, peers: readonly PeerStatus[] | undefined): Map<string, Report> {
  const out = new Map<string, Report>();
  for (const p of peers ?? [])
    out.set(p.publicKey, { handshakeAt: handshakeAt(p, n.lastSeenAt), endpoint: p.endpoint });
  return out;
}

const latest = (x: number | null, y: number | null): number | null =>
  x === null ? y : y === null ? x : Math.max(x, y);

/** Whether `e` is one of `n`'s LAN endpoints and not the public one its peers are given. */
function isLan(e: Endpoint | null, n: NodeRecord, publicEndpoint: Endpoint | null): boolean {
  if (e === null) return false;
  if (publicEndpoint !== null && publicEndpoint.ip === e.ip) return false;
  return n.localEndpoints.some((l) => l.ip === e.ip);
}

/**
 * The paths view of `state` at `now` (unix ms). Only approved nodes appear; a pair is `relay`
 * while a relay is in force for it (whatever the agents say), else `direct` or `lan` while either
 * node reports a direct handshake younger than DIRECT_HANDSHAKE_FRESH_MS, `down` when they
 * report each other without one, `unknown` when neither has reported the other.
 */
export function networkPaths(state: NetworkState, now: number): NetworkPaths {
  const approved = state.nodes.filter((n) => n.state === 'approved');
  const byId = new Map(approved.map((n) => [n.id, n]));
  const peerStatus = state.peerStatus ?? new Map<string, readonly PeerStatus[]>();
  const resolved = resolveEndpoints(approved, peerStatus);
  const reports = new Map(approved.map((n) => [n.id, reportsOf(n, peerStatus.get(n.id))]));
  const adminRelayOf = (n: NodeRecord): string | null =>
    n.relayedBy !== null && byId.has(n.relayedBy) ? n.relayedBy : null;

  // The relay fallback's pairs, under the rules the maps apply (snapshot.ts).
  const split = (id: string): boolean => {
    const src = resolved.get(id)?.source;
    return src?.kind === 'observed' && src.reflector !== null;
  };
  const pairRelays = new Map<string, { relayId: string; reason: PathLink['reason'] }>();
  for (const r of state.pairRelays ?? []) {
    const a = byId.get(r.a);
    const b = byId.get(r.b);
    const relay = byId.get(r.relayId);
    if (a === undefined || b === undefined || relay === undefined || !relay.isRelay) continue;
    if (relay.id === a.id || relay.id === b.id) continue;
    if (a.isRelay || b.isRelay || a.relayedBy !== null || b.relayedBy !== null) continue;
    const reason = split(a.id) || split(b.id) ? 'nat_mapping_split' : 'no_direct_handshake';
    pairRelays.set(`${a.id}/${b.id}`, { relayId: relay.id, reason });
  }

  const ranges = rangesOf(state.network);
  const nodes: PathsNode[] = approved.map((n) => {
    const r = resolved.get(n.id);
    return {
      id: n.id,
      name: n.name,
      addressV4: addressesOf(ranges, n.hostIndex).v4,
      online: n.lastSeenAt !== null && now - n.lastSeenAt < ONLINE_WINDOW_MS,
      lastSeenAt: n.lastSeenAt,
      isRelay: n.isRelay,
      isIngressGateway: n.isIngress,
      isEgressGateway: n.egress !== null,
      relayedBy: adminRelayOf(n),
      publicEndpoint: r?.reflected ?? null,
      endpointSource: r?.source ?? null,
      localEndpoints: [...n.localEndpoints],
    };
  });

  const sorted = [...approved].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  const links: PathLink[] = [];
  for (let i = 0; i < sorted.length; i++) {
    for (let j = i + 1; j < sorted.length; j++) {
      const a = sorted[i] as NodeRecord;
      const b = sorted[j] as NodeRecord;
      const ab = reports.get(a.id)?.get(b.publicKey);
      const ba = reports.get(b.id)?.get(a.publicKey);
      const at = latest(ab?.handshakeAt ?? null, ba?.handshakeAt ?? null);
      // An admin's relay routes everything of its node but the relay itself (netmap.ts).
      const adminRelay = [adminRelayOf(a), adminRelayOf(b)].find(
        (r) => r !== null && r !== a.id && r !== b.id,
      );
      const pair = pairRelays.get(`${a.id}/${b.id}`) ?? pairRelays.get(`${b.id}/${a.id}`);
      let path: PathKind;
      let relayId: string | null = null;
      let reason: PathLink['reason'] = null;
      if (adminRelay !== undefined && adminRelay !== null) {
        path = 'relay';
        relayId = adminRelay;
        reason = 'admin';
      } else if (pair !== undefined) {
        path = 'relay';
        relayId = pair.relayId;
        reason = pair.reason;
      } else if (at !== null && now - at <= DIRECT_HANDSHAKE_FRESH_MS) {
        const lan =
          isLan(ab?.endpoint ?? null, b, resolved.get(b.id)?.reflected ?? null) ||
          isLan(ba?.endpoint ?? null, a, resolved.get(a.id)?.reflected ?? null);
        path = lan ? 'lan' : 'direct';
      } else {
        path = ab === undefined && ba === undefined ? 'unknown' : 'down';
      }
      links.push({
        a: a.id,
        b: b.id,
        path,
        relayId,
        reason,
        latestHandshakeAt: at,
        endpointAtoB: ab?.endpoint ?? null,
        endpointBtoA: ba?.endpoint ?? null,
      });
    }
  }
  return {
    network: state.network.name,
    revision: state.network.revision,
    at: now,
    nodes,
    links,
    extClients: state.extClients.map((c) => ({
      id: c.id,
      name: c.name,
      ingressNodeId: c.ingressNodeId,
    })),
  };
}
