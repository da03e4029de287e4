/**
 * Public endpoints learned from what public nodes observe: a node that cannot probe the reflector
 * from its WireGuard socket (kernel WireGuard, a detached userspace device) is reachable where a
 * public peer's `wg show` saw its packets come from after a handshake (protocol EndpointSource).
 * Pure: no I/O, no clock (reports carry handshake ages on the agents' clocks).
 */
import type { Endpoint, EndpointSource, PeerStatus } from '@wiremesh/protocol';
import { DIRECT_HANDSHAKE_FRESH_MS } from './constants.js';
import type { NodeRecord } from './store/index.js';

/** A node's public endpoint as peers get it in their maps. */
export interface ResolvedEndpoint {
  reflected: Endpoint | null;
  /** How it was learned; undefined when there is none. */
  source: EndpointSource | undefined;
}

interface Observation {
  endpoint: Endpoint;
  byId: string;
  byName: string;
  ageMs: number;
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.ip === b.ip && a.port === b.port;
}

/**
 * Whether `n` sits on a public address, so what it observes of its peers is their public side:
 * an approved relay or ingress gateway (admins give those roles to reachable hosts), or a node
 * whose reflected endpoint is one of its own addresses with its listen port (no NAT in between).
 */
export function isPublicNode(n: NodeRecord): boolean {
  if (n.state !== 'approved') return false;
  if (n.isRelay || n.isIngress) return true;
  const reflected = n.reflectedEndpoint;
  if (reflected === null) return false;
  return n.localEndpoints.some((l) => sameEndpoint(l, reflected));
}

/** The usable observations in one report: a recent handshake and an observed endpoint. */
function freshObservations(peers: readonly PeerStatus[]): [string, Endpoint, number][] {
  const out: [string, Endpoint, number][] = [];
  for (const p of peers) {
    const e = p.observedEndpoint;
    const age = p.handshakeAgeMs;
    if (e === undefined || e === null || age === undefined || age === null) continue;
    if (age > DIRECT_HANDSHAKE_FRESH_MS) continue;
    out.push([p.publicKey, e, age]);
  }
  return out;
}

/**
 * What of node `n`'s report (`peers`) other nodes' maps depend on: the fresh observations of a
 * public node, as text (empty for a node that is not public). A check-in whose key differs from
 * the stored one changes peers' maps.
 */
export function observationKey(n: NodeRecord, peers: readonly PeerStatus[]): string {
  if (!isPublicNode(n)) return '';
  return freshObservations(peers)
    .map(([key, e]) => `${key}=${e.ip}:${e.port}`)
    .sort()
    .join(',');
}

/**
 * The public endpoint of every node in `nodes` (one network), by id, from what each last reported
 * about its peers (`peerStatus`, by node id). A node's own reflected
 * endpoint stands while no public node observes it elsewhere; a node without one gets what the
 * public nodes observe (never one of the node's own LAN addresses, which a public node on the
 * same LAN sees); a node whose reflector answer has the observed address but another port (its
 * NAT mapped its peer flows to a second public port) gets the observation, with the reflector's
 * answer kept in the source. Public nodes that disagree (a symmetric NAT) give nothing: the node
 * keeps its own answer, or has none.
 */
export function resolveEndpoints(
  nodes: readonly NodeRecord[],
  peerStatus: ReadonlyMap<string, readonly PeerStatus[]>,
): Map<string, ResolvedEndpoint> {
  const byKey = new Map<string, Observation[]>();
  for (const observer of nodes) {
    if (!isPublicNode(observer)) continue;
    for (const [key, endpoint, ageMs] of freshObservations(peerStatus.get(observer.id) ?? [])) {
      const list = byKey.get(key) ?? [];
      list.push({ endpoint, byId: observer.id, byName: observer.name, ageMs });
      byKey.set(key, list);
    }
  }
  const out = new Map<string, ResolvedEndpoint>();
  for (const n of nodes) {
    const own = n.reflectedEndpoint;
    const lan = new Set(n.localEndpoints.map((e) => e.ip));
    const seen = (byKey.get(n.publicKey) ?? [])
      .filter((o) => o.byId !== n.id && !lan.has(o.endpoint.ip))
      .sort((a, b) => (a.byName < b.byName ? -1 : a.byName > b.byName ? 1 : 0));
    // Public nodes that see the node at different places: its NAT gives every destination its
    // own port (a symmetric mapping), so what one observer saw is of no use to anyone else. The
    // first by name is named otherwise, not the freshest: handshake ages change with every
    // report, and a choice that flips would restart every pair's wait for a direct path.
    const symmetric = new Set(seen.map((o) => `${o.endpoint.ip}:${o.endpoint.port}`)).size > 1;
    const best = symmetric ? undefined : seen[0];
    if (own === null) {
      out.set(
        n.id,
        best === undefined
          ? { reflected: null, source: undefined }
          : {
              reflected: best.endpoint,
              source: { kind: 'observed', byId: best.byId, byName: best.byName, reflector: null },
            },
      );
    } else if (
      best !== undefined &&
      best.endpoint.ip === own.ip &&
      best.endpoint.port !== own.port
    ) {
      out.set(n.id, {
        reflected: best.endpoint,
        source: { kind: 'observed', byId: best.byId, byName: best.byName, reflector: own },
      });
    } else {
      out.set(n.id, { reflected: own, source: { kind: 'reflector' } });
    }
  }
  return out;
}
