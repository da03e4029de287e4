/**
 * Runs the path monitor (path-monitor.ts) for every network: check-ins carrying peer status poke
 * it, a burst of them is looked at once, and a timer looks again when a pair's wait runs out.
 * Decisions become pair relays in the store, which bumps the network's revision and pushes maps;
 * the waits are stored too (no revision bump), so a restart goes on with them.
 */
import {
  DIRECT_HANDSHAKE_FRESH_MS,
  ONLINE_WINDOW_MS,
  PATH_EVAL_DELAY_MS,
  RELAY_AFTER_MS,
  RELAY_RETRY_MS,
} from './constants.js';
import { PathMonitor, type PathDecision, type PathNode } from './path-monitor.js';
import type { RelayState, Store } from './store/index.js';

/** Options of RelayFallback. */
export interface RelayFallbackOptions {
  /** How long a pair may lack a direct handshake before it is relayed (default RELAY_AFTER_MS). */
  relayAfterMs?: number;
  /** Wall clock in unix ms (the store's). */
  clock?: () => number;
  /** Called with errors of background evaluations (they are retried on the next check-in). */
  onError?: (e: unknown) => void;
  /** Called after a decision changed pairs (for the log). */
  onDecision?: (networkId: string, d: PathDecision) => void;
}

/** The monitor's view of a network's nodes at time `now`. Pure. */
export function pathNodes(state: RelayState, now: number): PathNode[] {
  return state.nodes.map((n) => {
    const seen = n.lastSeenAt;
    const handshakes = new Map<string, number | null>();
    for (const p of state.peerStatus.get(n.id) ?? []) {
      // The age is on the agent's clock, so the handshake's time on ours needs no clock sync.
      let at: number | null;
      if (p.handshakeAgeMs === undefined) at = p.latestHandshakeMs;
      else at = p.handshakeAgeMs === null || seen === null ? null : seen - p.handshakeAgeMs;
      handshakes.set(p.publicKey, at);
    }
    const approved = n.state === 'approved';
    const reflected = n.reflectedEndpoint === null ? '' : JSON.stringify(n.reflectedEndpoint);
    return {
      id: n.id,
      publicKey: n.publicKey,
      approved,
      online: approved && seen !== null && now - seen < ONLINE_WINDOW_MS,
      isRelay: n.isRelay,
      relayedBy: n.relayedBy,
      endpoints: `${reflected}/${JSON.stringify(n.localEndpoints)}`,
      handshakes,
    };
  });
}

/** Relay fallback for all networks of one coordinator. */
export class RelayFallback {
  private readonly scheduled = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly clock: () => number;
  private readonly relayAfterMs: number;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly o: RelayFallbackOptions = {},
  ) {
    this.clock = o.clock ?? Date.now;
    this.relayAfterMs = o.relayAfterMs ?? RELAY_AFTER_MS;
  }

  /** A node of `networkId` reported: look at the network soon (bursts share one look). */
  poke(networkId: string): void {
    this.schedule(networkId, this.clock() + PATH_EVAL_DELAY_MS);
  }

  private schedule(networkId: string, at: number): void {
    if (this.closed) return;
    const cur = this.scheduled.get(networkId);
    if (cur !== undefined && cur.at <= at) return;
    if (cur !== undefined) clearTimeout(cur.timer);
    const timer = setTimeout(
      () => {
        this.scheduled.delete(networkId);
        this.evaluate(networkId).catch((e: unknown) => this.o.onError?.(e));
      },
      Math.max(0, at - this.clock()),
    );
    timer.unref();
    this.scheduled.set(networkId, { at, timer });
  }

  /**
   * Looks at `networkId` now and applies the decision; evaluations of one network never overlap.
   * Resolves with the decision (tests call this directly with a fake clock).
   */
  evaluate(networkId: string): Promise<PathDecision> {
    const prev = this.chains.get(networkId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.evaluateNow(networkId));
    this.chains.set(networkId, next);
    return next;
  }

  private async evaluateNow(networkId: string): Promise<PathDecision> {
    const none: PathDecision = { add: [], remove: [], nextCheckAt: null };
    const state = await this.store.relayState(networkId);
    if (state === null || this.closed) return none;
    // Without keepalives an idle pair shows no handshakes, which would look like a broken path.
    if (state.network.persistentKeepalive === 0) return none;
    // The waits live in the database: a restarted coordinator, or another replica, goes on
    // with them instead of waiting the whole bound again.
    const monitor = new PathMonitor(
      {
        relayAfterMs: this.relayAfterMs,
        freshMs: DIRECT_HANDSHAKE_FRESH_MS,
        retryMs: RELAY_RETRY_MS,
      },
      state.pairWaits,
    );
    const now = this.clock();
    const d = monitor.evaluate(pathNodes(state, now), state.pairRelays, now);
    await this.store.gateways.savePairWaits(networkId, state.pairWaits, monitor.waits());
    if (await this.store.gateways.applyPairRelays(networkId, d.add, d.remove))
      this.o.onDecision?.(networkId, d);
    if (d.nextCheckAt !== null) this.schedule(networkId, d.nextCheckAt);
    return d;
  }

  /** Stops every timer. */
  close(): void {
    this.closed = true;
    for (const s of this.scheduled.values()) clearTimeout(s.timer);
    this.scheduled.clear();
  }
}
