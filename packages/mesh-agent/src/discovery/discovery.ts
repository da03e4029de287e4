/**
 * Endpoint discovery as a state machine, sans-IO like wg-core's Device: this node's public
 * endpoint (reflection probes), the path check of peers given a new endpoint, and the hold and
 * kick of hole punching. `now` (unix ms) comes in with every call and actions go out; there is no
 * timer, clock or I/O inside. `nextDeadline()` tells the shell when to call `tick()`.
 */
import type { Endpoint } from '@wiremesh/protocol';
import {
  DIRECT_WAIT_MS,
  PATH_CHECK_MS,
  PATH_WATCH_MAX_MS,
  PUNCH_STAGGER_MS,
  REFLECT_INTERVAL_MS,
  REFLECT_RETRY_MS,
} from '../constants.js';
import type { ObservedPeer } from '../reconcile/diff.js';

const MS_PER_S = 1000;

/**
 * How a reflection answer was obtained: `loop` the periodic probe (an action of this machine),
 * `early` the quick probe right after an apply (an action, run inside that apply), `port` the
 * probe from the listen port before the device binds it, `manual` a caller's own probe.
 */
export type ProbeKind = 'loop' | 'early' | 'port' | 'manual';

/** Why discovery asks for a check-in now. */
export type ReportReason = 'peers-added' | 'path-up' | 'path-failed' | 'public-endpoint';

/** What the shell must do. Actions of one call are to be run in order. */
export type DiscoveryAction =
  /** Send one reflection probe from the WireGuard socket; answer with `reflection`. */
  | { readonly type: 'probe'; readonly kind: 'loop' | 'early' }
  /** Read the interface's peers (`wg show dump`); answer with `observed`. */
  | { readonly type: 'observe' }
  /** Send the held first packets to these peers now (an apply with PunchOptions.kick). */
  | { readonly type: 'kick'; readonly peers: readonly string[] }
  /** The public endpoint changed, so endpoint choice may have: apply the current map again. */
  | { readonly type: 'apply'; readonly label: string }
  /** Check in now (coalesced by the control client). */
  | { readonly type: 'report'; readonly reason: ReportReason };

/**
 * What happened outside. Issue 11's "endpoints observed by peers" come in as one more variant
 * (a peer's view of our source ip:port, with the observer), feeding the same `reflected` choice.
 */
export type DiscoveryInput =
  /** An apply went through (`updated`: peers it changed, `endpointSet`: given an endpoint). */
  | {
      readonly type: 'applied';
      readonly reflectPort: number | null;
      readonly updated: readonly {
        readonly publicKey: string;
        readonly isNew: boolean;
        readonly endpointSet: boolean;
      }[];
      readonly removed: readonly string[];
      readonly held: readonly string[];
    }
  /** A new map was taken (after its apply); `reflectPort` null: the map names no reflector. */
  | { readonly type: 'map'; readonly reflectPort: number | null }
  /** The answer to a probe: the endpoint the reflector saw, or null (no reply, failure). */
  | { readonly type: 'reflection'; readonly kind: ProbeKind; readonly endpoint: Endpoint | null }
  /** The answer to `observe`; null when the interface could not be read. */
  | { readonly type: 'observed'; readonly peers: readonly ObservedPeer[] | null }
  /** The LAN endpoints this node reports, as one comparable text (a change: new network). */
  | { readonly type: 'local-endpoints'; readonly key: string };

/** What a Discovery needs to know about its node. */
export interface DiscoveryOptions {
  /** This node's public key (base64): the greater key of a pair holds its first packet. */
  readonly publicKey: string;
  /**
   * Whether the backend can send from the WireGuard socket (only the in-process device can).
   * Asked when needed rather than fixed here, because a fake dataplane gains the ability in tests.
   */
  readonly canReflect: () => boolean;
}

/** A peer whose new endpoint has not yet shown a handshake (hole punching in progress). */
interface Watched {
  /** When its endpoint was set (unix ms). */
  readonly since: number;
  /** Bytes received at the first look (a roamed peer with a live session proves itself so). */
  rx: number | null;
  /** Whether the failed attempt already asked for a new probe. */
  probed: boolean;
}

/** One network's endpoint discovery. Not thread-safe (one shell drives it). */
export class Discovery {
  private readonly opts: DiscoveryOptions;
  private running = false;
  private reflectPort: number | null = null;
  private reflectedNow: Endpoint | null = null;
  /** When the next periodic probe is due (null: none scheduled). */
  private probeAt: number | null = null;
  private probing = false;
  /** Asked for a probe while one was on its way: send another right after it. */
  private probeAgain = false;
  private probedEarly = false;
  private portProbed = false;
  private readonly watched = new Map<string, Watched>();
  private pathCheckAt: number | null = null;
  private observing = false;
  private kicks: { at: number; peers: readonly string[] }[] = [];
  private lastLocal: string | null = null;

  constructor(opts: DiscoveryOptions) {
    this.opts = opts;
  }

  /** This node's public endpoint as the reflector last saw it, or null. */
  get reflected(): Endpoint | null {
    return this.reflectedNow;
  }

  /** How many peers' direct paths are being watched (tests, status). */
  get watching(): number {
    return this.watched.size;
  }

  /**
   * Whether the first packet to `peer`'s new endpoint waits for a kick: on the side of the pair
   * with the greater public key (compared as base64 text, as both sides do), and only while the
   * machine runs (a one-shot round holds nothing: nobody would kick).
   */
  holds(peer: string): boolean {
    return this.running && this.opts.publicKey > peer;
  }

  /**
   * True once, before the first apply of this process (the probe from the listen port before
   * the device binds it); false after.
   */
  takePortProbe(): boolean {
    if (this.portProbed) return false;
    this.portProbed = true;
    return true;
  }

  /** The periodic work begins (the daemon's loops). Returns actions due now. */
  start(now: number): DiscoveryAction[] {
    this.running = true;
    if (this.watched.size > 0) this.pathCheckAt = now + PATH_CHECK_MS;
    if (this.canProbe()) this.probeAt = now;
    return this.tick(now);
  }

  /** The periodic work ends; nothing is due any more. */
  stop(): void {
    this.running = false;
    this.probeAt = null;
    this.pathCheckAt = null;
    this.kicks = [];
  }

  /** When `tick` must be called next (unix ms), or null when nothing is scheduled. */
  nextDeadline(): number | null {
    let next: number | null = null;
    const consider = (t: number | null) => {
      if (t !== null && (next === null || t < next)) next = t;
    };
    if (!this.probing) consider(this.probeAt);
    if (!this.observing) consider(this.pathCheckAt);
    for (const k of this.kicks) consider(k.at);
    return next;
  }

  /** Runs the rules whose time has come. */
  tick(now: number): DiscoveryAction[] {
    const out: DiscoveryAction[] = [];
    if (!this.running) return out;
    const due = this.kicks.filter((k) => k.at <= now);
    if (due.length > 0) {
      this.kicks = this.kicks.filter((k) => k.at > now);
      for (const k of due) out.push({ type: 'kick', peers: k.peers });
    }
    if (!this.observing && this.pathCheckAt !== null && this.pathCheckAt <= now) {
      this.pathCheckAt = null;
      this.observing = true;
      out.push({ type: 'observe' });
    }
    if (!this.probing && this.probeAt !== null && this.probeAt <= now) {
      this.probeAt = null;
      this.probing = true;
      out.push({ type: 'probe', kind: 'loop' });
    }
    return out;
  }

  /** Takes one input; returns what to do now (further work is in `nextDeadline`). */
  handle(now: number, input: DiscoveryInput): DiscoveryAction[] {
    switch (input.type) {
      case 'applied':
        return this.applied(now, input);
      case 'map':
        this.reflectPort = input.reflectPort;
        if (this.reflectedNow === null) this.probeSoon(now);
        else this.schedule(now);
        return this.tick(now);
      case 'reflection':
        return this.reflection(now, input.kind, input.endpoint);
      case 'observed':
        return this.observed(now, input.peers);
      case 'local-endpoints': {
        // New LAN addresses: the host changed networks, so its public endpoint changed too.
        const changed = this.lastLocal !== null && input.key !== this.lastLocal;
        this.lastLocal = input.key;
        if (changed) this.probeSoon(now);
        return this.tick(now);
      }
    }
  }

  private canProbe(): boolean {
    return this.running && this.opts.canReflect() && this.reflectPort !== null;
  }

  /** Schedules the periodic probe when none is (a reflector became known while running). */
  private schedule(now: number): void {
    if (!this.canProbe() || this.probing || this.probeAt !== null) return;
    this.probeAt = this.reflectedNow === null ? now : now + REFLECT_INTERVAL_MS;
  }

  /** Makes a periodic probe due now (or right after the one on its way). */
  private probeSoon(now: number): void {
    if (!this.canProbe()) return;
    if (this.probing) this.probeAgain = true;
    else this.probeAt = now;
  }

  /**
   * Starts watching every peer the apply gave a new endpoint (the keepalive it sent starts a
   * handshake); held first packets are kicked PUNCH_STAGGER_MS later. Peers added: report at
   * once, so the coordinator knows this node configured them (its relay-fallback wait starts).
   * The first apply that knows a reflector is followed by one quick probe, run inside it, so the
   * first report already has the public endpoint.
   */
  private applied(now: number, a: Extract<DiscoveryInput, { type: 'applied' }>): DiscoveryAction[] {
    this.reflectPort = a.reflectPort;
    const out: DiscoveryAction[] = [];
    let added = false;
    for (const u of a.updated) {
      if (u.isNew) added = true;
      if (u.endpointSet) this.watched.set(u.publicKey, { since: now, rx: null, probed: false });
    }
    for (const k of a.removed) this.watched.delete(k);
    if (this.running && this.watched.size > 0 && this.pathCheckAt === null && !this.observing)
      this.pathCheckAt = now + PATH_CHECK_MS;
    if (this.running && a.held.length > 0)
      this.kicks.push({ at: now + PUNCH_STAGGER_MS, peers: [...a.held] });
    if (added) out.push({ type: 'report', reason: 'peers-added' });
    if (!this.probedEarly && a.reflectPort !== null && this.opts.canReflect()) {
      this.probedEarly = true;
      out.push({ type: 'probe', kind: 'early' });
    }
    return out;
  }

  private reflection(now: number, kind: ProbeKind, got: Endpoint | null): DiscoveryAction[] {
    if (kind === 'port') {
      // Kept only where the socket can be probed again later (the in-process device).
      if (got === null || !this.opts.canReflect()) return [];
      this.probedEarly = true;
      this.setReflected(got);
      return [];
    }
    const changed = got !== null && this.setReflected(got);
    const out: DiscoveryAction[] = [];
    if (kind === 'early') {
      if (changed) out.push({ type: 'apply', label: 'public endpoint' });
      return out;
    }
    if (changed) {
      out.push({ type: 'apply', label: 'new public endpoint' });
      out.push({ type: 'report', reason: 'public-endpoint' });
    }
    if (kind === 'loop') {
      this.probing = false;
      if (this.canProbe()) {
        const every = this.reflectedNow === null ? REFLECT_RETRY_MS : REFLECT_INTERVAL_MS;
        this.probeAt = this.probeAgain ? now : now + every;
      }
      this.probeAgain = false;
      out.push(...this.tick(now));
    }
    return out;
  }

  private setReflected(e: Endpoint): boolean {
    const before = this.reflectedNow;
    if (before !== null && before.ip === e.ip && before.port === e.port) return false;
    this.reflectedNow = e;
    return true;
  }

  /**
   * One look at the watched peers: a handshake since the endpoint was set (or traffic over a
   * session that survived the change) settles a peer and is reported; none after DIRECT_WAIT_MS
   * counts as a failed direct attempt: probe the public endpoint again (the NAT may have changed
   * it) and report. Peers still silent after PATH_WATCH_MAX_MS are left to the relay fallback.
   */
  private observed(now: number, peers: readonly ObservedPeer[] | null): DiscoveryAction[] {
    this.observing = false;
    const out: DiscoveryAction[] = [];
    if (peers !== null) {
      const byKey = new Map(peers.map((p) => [p.publicKey, p]));
      let settled = false;
      let failed = false;
      for (const [key, w] of this.watched) {
        const p = byKey.get(key);
        if (p === undefined) {
          this.watched.delete(key);
          continue;
        }
        // wg shows whole seconds: a handshake just after `since` may read up to 1 s before it.
        const handshakeMs = p.latestHandshakeS * MS_PER_S;
        const fresh = p.latestHandshakeS > 0 && handshakeMs >= w.since - MS_PER_S;
        if (w.rx === null) w.rx = p.rxBytes;
        if (fresh || (p.latestHandshakeS > 0 && p.rxBytes > w.rx)) {
          this.watched.delete(key);
          settled = true;
        } else if (now - w.since >= PATH_WATCH_MAX_MS) {
          this.watched.delete(key);
        } else if (now - w.since >= DIRECT_WAIT_MS && !w.probed) {
          w.probed = true;
          failed = true;
        }
      }
      if (failed) this.probeSoon(now);
      if (failed) out.push({ type: 'report', reason: 'path-failed' });
      else if (settled) out.push({ type: 'report', reason: 'path-up' });
    }
    if (this.running && this.watched.size > 0) this.pathCheckAt = now + PATH_CHECK_MS;
    out.push(...this.tick(now));
    return out;
  }
}
