/**
 * Relay fallback (issue 7): decides per pair of nodes whether it talks directly or through a relay
 * node, from what the nodes report about their direct peer entries (handshake age). A pair that has
 * configured each other but shows no direct handshake RELAY_AFTER_MS later gets a relay; a relayed
 * pair whose direct entry reports a fresh handshake moves back to direct. Pure: time comes in.
 */

/** What the monitor needs to know about one node of a network. */
export interface PathNode {
  readonly id: string;
  readonly publicKey: string;
  /** Approved and checked in recently. */
  readonly online: boolean;
  readonly approved: boolean;
  /** An admin made it a relay: it may carry pairs (it has a public address). */
  readonly isRelay: boolean;
  /** An admin relays every peer of this node through a fixed relay: the monitor leaves it alone. */
  readonly relayedBy: string | null;
  /** Its endpoint candidates as text: a change restarts the wait (a new hole-punching round). */
  readonly endpoints: string;
  /**
   * From its last report, per peer public key: when the latest handshake on the direct entry
   * happened (monitor's clock, ms), or null for none. A key absent here is a peer the node has
   * not configured yet.
   */
  readonly handshakes: ReadonlyMap<string, number | null>;
}

/** A pair of nodes (ids, `a` < `b`) routed through relay node `relayId`. */
export interface PairRelay {
  readonly a: string;
  readonly b: string;
  readonly relayId: string;
}

/** What to change: pair relays to add (or move to another relay) and pairs to make direct again. */
export interface PathDecision {
  readonly add: readonly PairRelay[];
  readonly remove: readonly { readonly a: string; readonly b: string }[];
  /** When to evaluate again even if no report arrives (a wait runs out), or null. */
  readonly nextCheckAt: number | null;
}

/** Timings of the monitor. */
export interface PathMonitorOptions {
  /** How long a pair may show no direct handshake, after both configured each other, before it is relayed. */
  relayAfterMs: number;
  /** A handshake younger than this counts as a working direct path. */
  freshMs: number;
  /** How soon to look again at a pair that needs a relay when no relay can take it yet. */
  retryMs: number;
}

/**
 * A pair of nodes (`a` < `b`) waiting for a direct handshake since `since` (monitor's clock) with
 * endpoint candidates `endpoints`: what `PathMonitor.waits` returns and its constructor takes back.
 */
export interface PairWait {
  readonly a: string;
  readonly b: string;
  readonly since: number;
  readonly endpoints: string;
}

/** The key of an unordered pair. */
export function pairKey(x: string, y: string): string {
  return x < y ? `${x} ${y}` : `${y} ${x}`;
}

/** Keeps the per-pair waits of one network and turns reports into relay decisions. */
export class PathMonitor {
  private readonly pending = new Map<string, PairWait>();

  /** `waits` are the waits of an earlier monitor of the network (kept across restarts). */
  constructor(
    private readonly o: PathMonitorOptions,
    waits: Iterable<PairWait> = [],
  ) {
    for (const w of waits) this.pending.set(pairKey(w.a, w.b), w);
  }

  /** Pairs currently waiting for a direct handshake, with when the wait began (for tests and metrics). */
  waiting(): ReadonlyMap<string, number> {
    return new Map([...this.pending].map(([k, p]) => [k, p.since]));
  }

  /** Every wait, to give a later monitor of the network (ordered by pair). */
  waits(): PairWait[] {
    const key = (w: PairWait): string => pairKey(w.a, w.b);
    return [...this.pending.values()].sort((x, y) => (key(x) < key(y) ? -1 : 1));
  }

  /**
   * Looks at every pair of `nodes` at time `now` given the pair relays in force (`current`).
   * Returns the changes to make; remembers when each pair started waiting. Never throws.
   */
  evaluate(nodes: readonly PathNode[], current: readonly PairRelay[], now: number): PathDecision {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const relayed = new Map(current.map((r) => [pairKey(r.a, r.b), r]));
    const load = new Map<string, number>();
    for (const r of current) load.set(r.relayId, (load.get(r.relayId) ?? 0) + 1);
    const add: PairRelay[] = [];
    const remove: { a: string; b: string }[] = [];
    const seen = new Set<string>();
    let nextCheckAt: number | null = null;
    const later = (t: number) => {
      nextCheckAt = nextCheckAt === null ? t : Math.min(nextCheckAt, t);
    };

    // A pair whose node left, or whose relay lost its role, is made direct again.
    for (const r of current) {
      const a = byId.get(r.a);
      const b = byId.get(r.b);
      const relay = byId.get(r.relayId);
      const ok = (n: PathNode | undefined): n is PathNode =>
        n !== undefined && n.approved && !n.isRelay && n.relayedBy === null;
      if (!ok(a) || !ok(b) || !relay?.approved || !relay.isRelay) {
        remove.push({ a: r.a, b: r.b });
        relayed.delete(pairKey(r.a, r.b));
      }
    }

    const candidates = nodes.filter((n) => n.isRelay && n.approved && n.relayedBy === null);
    const direct = (x: PathNode, y: PathNode): boolean => {
      const t = Math.max(
        x.handshakes.get(y.publicKey) ?? -Infinity,
        y.handshakes.get(x.publicKey) ?? -Infinity,
      );
      return now - t < this.o.freshMs;
    };
    const pickRelay = (x: PathNode, y: PathNode): PathNode | null => {
      let best: PathNode | null = null;
      for (const r of candidates) {
        if (r.id === x.id || r.id === y.id || !r.online) continue;
        if (!direct(r, x) || !direct(r, y)) continue;
        const l = load.get(r.id) ?? 0;
        const bl = best === null ? Infinity : (load.get(best.id) ?? 0);
        if (best === null || l < bl || (l === bl && r.id < best.id)) best = r;
      }
      return best;
    };

    const eligible = nodes.filter((n) => n.approved && !n.isRelay && n.relayedBy === null);
    for (let i = 0; i < eligible.length; i++) {
      for (let j = i + 1; j < eligible.length; j++) {
        const [x, y] =
          eligible[i]!.id < eligible[j]!.id
            ? [eligible[i]!, eligible[j]!]
            : [eligible[j]!, eligible[i]!];
        const key = pairKey(x.id, y.id);
        const cur = relayed.get(key);
        if (direct(x, y)) {
          if (cur !== undefined) remove.push({ a: x.id, b: y.id });
          continue;
        }
        const configured = x.handshakes.has(y.publicKey) && y.handshakes.has(x.publicKey);
        if (cur !== undefined) {
          // Relayed: move to a better relay only when the current one lost a direct path.
          const r = byId.get(cur.relayId);
          if (r !== undefined && r.online && direct(r, x) && direct(r, y)) continue;
          const better = pickRelay(x, y);
          if (better !== null && better.id !== cur.relayId) {
            add.push({ a: x.id, b: y.id, relayId: better.id });
            load.set(better.id, (load.get(better.id) ?? 0) + 1);
          }
          continue;
        }
        if (!configured || !x.online || !y.online) continue;
        seen.add(key);
        const endpoints = `${x.endpoints}|${y.endpoints}`;
        const p = this.pending.get(key);
        if (p === undefined || p.endpoints !== endpoints) {
          this.pending.set(key, { a: x.id, b: y.id, since: now, endpoints });
          later(now + this.o.relayAfterMs);
          continue;
        }
        if (now - p.since < this.o.relayAfterMs) {
          later(p.since + this.o.relayAfterMs);
          continue;
        }
        const r = pickRelay(x, y);
        if (r === null) {
          // Look again soon only if some relay may yet reach both; else the next report will.
          if (candidates.some((c) => c.id !== x.id && c.id !== y.id)) later(now + this.o.retryMs);
          continue;
        }
        add.push({ a: x.id, b: y.id, relayId: r.id });
        load.set(r.id, (load.get(r.id) ?? 0) + 1);
      }
    }
    for (const k of [...this.pending.keys()]) if (!seen.has(k)) this.pending.delete(k);
    for (const r of add) this.pending.delete(pairKey(r.a, r.b));
    return { add, remove, nextCheckAt };
  }
}
