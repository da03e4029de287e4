/**
 * The difference between what an interface has and what the map wants (tailscale's wgengine
 * reconfig step): per peer, per address, per route, so that applying it touches only what
 * changed and sessions of unrelated peers never restart. Pure.
 */
import type { DesiredConfig, DesiredPeer } from './netmap.js';

/** A peer as `wg show IFACE dump` reports it. */
export interface ObservedPeer {
  readonly publicKey: string;
  /** `ip:port`, or null before the peer has one. */
  readonly endpoint: string | null;
  /** Canonical prefixes, sorted. */
  readonly allowedIps: readonly string[];
  /** Seconds, 0 = off. */
  readonly persistentKeepalive: number;
  /** Unix seconds of the latest handshake, 0 = never. */
  readonly latestHandshakeS: number;
  readonly rxBytes: number;
  readonly txBytes: number;
}

/** What the interface has now (read from wg and ip), or `exists: false`. */
export interface ObservedInterface {
  readonly exists: boolean;
  readonly up: boolean;
  readonly listenPort: number;
  readonly mtu: number | null;
  /** `addr/len` as on the interface, sorted. */
  readonly addresses: readonly string[];
  /** The agent's own routes into the interface (by route protocol), canonical, sorted. */
  readonly routes: readonly string[];
  readonly peers: readonly ObservedPeer[];
}

/** One `wg set IFACE peer KEY ...`: only the fields that change are present. */
export interface PeerUpdate {
  readonly publicKey: string;
  /** The peer is not on the interface yet. */
  readonly isNew: boolean;
  readonly endpoint?: string;
  readonly persistentKeepalive?: number;
  /** Replaces the peer's allowed IPs (wg set replaces, it never merges). */
  readonly allowedIps?: readonly string[];
  /**
   * Turn persistent keepalive off and on again around this update: WireGuard sends a keepalive
   * when it goes from off to on, which starts a handshake to the new endpoint at once (hole
   * punching: both sides do this when the coordinator's push brings the other's endpoint).
   */
  readonly restartKeepalive?: boolean;
  /**
   * Remove the peer and add it again (endpoint, keepalive and allowed IPs all given): a fresh
   * peer initiates at once, free of the 5 s limit an earlier attempt left (PunchOptions.nowS).
   */
  readonly recreate?: boolean;
}

/**
 * Hole-punching order for one apply. When two nodes learn each other's endpoint from the same
 * push, both would send a handshake initiation at once; initiations that cross leave neither side
 * with a session until WireGuard's 5 s retry. So one side of each pair (`hold`) waits: its peer
 * gets the endpoint but no keepalive yet, and the agent `kick`s it a moment later.
 */
export interface PunchOptions {
  /** Peers whose first packet towards a new endpoint waits for a later kick. */
  readonly hold?: (publicKey: string) => boolean;
  /** Peers to send a keepalive to now (keepalive off and on), whatever else changed. */
  readonly kick?: ReadonlySet<string>;
  /**
   * Unix seconds now. With it, a peer that is punched (new endpoint or kick) while it has no live
   * session is removed and added again in the same `wg set`: WireGuard sends at most one
   * initiation per peer every 5 s, and the one it sent towards an endpoint that was not ready
   * (a LAN guess, a NAT not yet opened) would hold the new one back until its retry.
   */
  readonly nowS?: number;
}

/** A handshake younger than this (s) is a live session (WireGuard's REJECT_AFTER_TIME). */
const SESSION_LIVE_S = 180;

/** Every change one apply makes. Empty lists and nulls mean "leave as is". */
export interface ConfigDiff {
  readonly listenPort: number | null;
  readonly mtu: number | null;
  readonly setUp: boolean;
  readonly addAddresses: readonly string[];
  readonly removeAddresses: readonly string[];
  /** Peers to remove, before any update (so a prefix moving between peers ends on the new one). */
  readonly removePeers: readonly string[];
  readonly updatePeers: readonly PeerUpdate[];
  readonly addRoutes: readonly string[];
  readonly removeRoutes: readonly string[];
  /** Peers given a new endpoint whose first packet was held back (PunchOptions.hold). */
  readonly held: readonly string[];
}

/** The address part of `ip:port` / `[ip]:port`. */
function endpointIp(endpoint: string): string {
  const cut = endpoint.lastIndexOf(':');
  return endpoint.slice(0, cut).replace(/^\[|\]$/g, '');
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function minus(a: readonly string[], b: readonly string[]): string[] {
  const s = new Set(b);
  return a.filter((x) => !s.has(x));
}

function peerUpdate(
  want: DesiredPeer,
  have: ObservedPeer | undefined,
  last: DesiredPeer | undefined,
  punch: PunchOptions,
  held: string[],
): PeerUpdate | null {
  const hold =
    want.endpoint !== null && want.persistentKeepalive > 0 && punch.hold?.(want.publicKey) === true;
  if (have === undefined) {
    // A new peer with a keepalive sends one at once (off -> on). Held, it starts with neither
    // keepalive nor endpoint: traffic for it (a ping as the map arrives) must not send an
    // initiation that crosses the other side's; until the kick, the other side's initiation
    // reaches us, is answered, and sets the endpoint by roaming.
    if (hold) held.push(want.publicKey);
    return {
      publicKey: want.publicKey,
      isNew: true,
      ...(want.endpoint !== null && !hold ? { endpoint: want.endpoint } : {}),
      ...(hold ? {} : { persistentKeepalive: want.persistentKeepalive }),
      allowedIps: want.allowedIps,
    };
  }
  // The observed endpoint roams (NAT rebinding, the peer reaching us first), so an endpoint is
  // set only when the map's choice changed since the last apply or the peer has none at all.
  const live =
    punch.nowS === undefined ||
    (have.latestHandshakeS > 0 && punch.nowS - have.latestHandshakeS < SESSION_LIVE_S);
  const mapChanged =
    want.endpoint !== null &&
    (have.endpoint === null ||
      (last !== undefined && last.endpoint !== want.endpoint) ||
      (last === undefined && have.endpoint !== want.endpoint));
  // With a live session the source we see is the right one for us even when the map says
  // another port of the same address: a symmetric NAT gives each destination its own port, and
  // the map only knows the coordinator's. A new address (the peer moved) is still followed.
  const samePlace =
    live &&
    have.endpoint !== null &&
    want.endpoint !== null &&
    endpointIp(have.endpoint) === endpointIp(want.endpoint);
  // Without a session, whatever it roamed to did not work: go back to the map's choice.
  const stale = !live && want.endpoint !== null && have.endpoint !== want.endpoint;
  const endpointChanged = (mapChanged && !samePlace) || stale;
  const kick = punch.kick?.has(want.publicKey) === true && want.persistentKeepalive > 0;
  // A peer held back earlier has no keepalive yet: any later apply gives it one (and sends),
  // so a kick that never came (a restart) cannot leave it without.
  const keepaliveChanged = have.persistentKeepalive !== want.persistentKeepalive;
  const allowedChanged = !sameList(have.allowedIps, want.allowedIps);
  if (!endpointChanged && !keepaliveChanged && !allowedChanged && !kick) return null;
  // A new endpoint without a keepalive change would wait for the next keepalive (up to its
  // interval) before anything is sent there.
  const heldNow = endpointChanged && hold && !kick;
  if (heldNow) held.push(want.publicKey);
  const restart = ((endpointChanged && !heldNow) || kick) && want.persistentKeepalive > 0;
  if (restart && !live && want.endpoint !== null) {
    return {
      publicKey: want.publicKey,
      isNew: false,
      recreate: true,
      endpoint: want.endpoint,
      persistentKeepalive: want.persistentKeepalive,
      allowedIps: want.allowedIps,
    };
  }
  return {
    publicKey: want.publicKey,
    isNew: false,
    ...(endpointChanged && want.endpoint !== null ? { endpoint: want.endpoint } : {}),
    ...((keepaliveChanged && !heldNow) || restart
      ? { persistentKeepalive: want.persistentKeepalive }
      : {}),
    ...(allowedChanged ? { allowedIps: want.allowedIps } : {}),
    ...(restart ? { restartKeepalive: true } : {}),
  };
}

/**
 * Computes the changes that take `observed` to `desired`. `lastApplied` (the config of the previous
 * apply, or null after a restart) only decides whether a peer's endpoint was re-chosen by the map
 * or merely roamed. Pure; returns new arrays.
 */
export function diffConfig(
  observed: ObservedInterface,
  desired: DesiredConfig,
  lastApplied: DesiredConfig | null,
  punch: PunchOptions = {},
): ConfigDiff {
  const have = new Map(observed.peers.map((p) => [p.publicKey, p]));
  const last = new Map((lastApplied?.peers ?? []).map((p) => [p.publicKey, p]));
  const want = new Set(desired.peers.map((p) => p.publicKey));
  const updatePeers: PeerUpdate[] = [];
  const held: string[] = [];
  for (const p of desired.peers) {
    const u = peerUpdate(p, have.get(p.publicKey), last.get(p.publicKey), punch, held);
    if (u !== null) updatePeers.push(u);
  }
  return {
    listenPort: observed.listenPort === desired.listenPort ? null : desired.listenPort,
    mtu: observed.mtu === desired.mtu ? null : desired.mtu,
    setUp: !observed.up,
    addAddresses: minus(desired.addresses, observed.addresses),
    removeAddresses: minus(observed.addresses, desired.addresses),
    removePeers: observed.peers.map((p) => p.publicKey).filter((k) => !want.has(k)),
    updatePeers,
    addRoutes: minus(desired.routes, observed.routes),
    removeRoutes: minus(observed.routes, desired.routes),
    held,
  };
}

/** Whether `d` changes nothing. */
export function isEmptyDiff(d: ConfigDiff): boolean {
  return (
    d.listenPort === null &&
    d.mtu === null &&
    !d.setUp &&
    d.addAddresses.length === 0 &&
    d.removeAddresses.length === 0 &&
    d.removePeers.length === 0 &&
    d.updatePeers.length === 0 &&
    d.addRoutes.length === 0 &&
    d.removeRoutes.length === 0
  );
}

/** A one-line human summary of `d` ("no changes" when empty). Holds public keys only (short form). */
export function describeDiff(d: ConfigDiff): string {
  if (isEmptyDiff(d)) return 'no changes';
  const parts: string[] = [];
  const short = (k: string) => k.slice(0, 8);
  const added = d.updatePeers.filter((u) => u.isNew).map((u) => short(u.publicKey));
  const changed = d.updatePeers.filter((u) => !u.isNew).map((u) => short(u.publicKey));
  if (added.length > 0) parts.push(`add peers ${added.join(',')}`);
  if (changed.length > 0) parts.push(`update peers ${changed.join(',')}`);
  if (d.removePeers.length > 0) parts.push(`remove peers ${d.removePeers.map(short).join(',')}`);
  if (d.addAddresses.length > 0) parts.push(`add addresses ${d.addAddresses.join(',')}`);
  if (d.removeAddresses.length > 0) parts.push(`remove addresses ${d.removeAddresses.join(',')}`);
  if (d.addRoutes.length > 0) parts.push(`add routes ${d.addRoutes.join(',')}`);
  if (d.removeRoutes.length > 0) parts.push(`remove routes ${d.removeRoutes.join(',')}`);
  if (d.listenPort !== null) parts.push(`listen port ${d.listenPort}`);
  if (d.mtu !== null) parts.push(`mtu ${d.mtu}`);
  if (d.setUp) parts.push('link up');
  return parts.join('; ');
}
