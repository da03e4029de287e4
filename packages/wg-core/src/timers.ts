/**
 * The per-peer timer state machine (whitepaper §6, wireguard-go device/timers.go) as plain
 * deadlines: the engine reads no clock, so each timer is a monotonic-ms deadline (Infinity when not
 * armed) and the device fires those that are due when its shell calls `tick(now)`.
 */
import {
  KEEPALIVE_TIMEOUT_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEYS_AFTER_MS,
} from './constants.js';

export type TimerName =
  | 'retransmitHandshake'
  | 'sendKeepalive'
  | 'newHandshake'
  | 'zeroKeyMaterial'
  | 'persistentKeepalive';

export const TIMER_NAMES: readonly TimerName[] = [
  'retransmitHandshake',
  'sendKeepalive',
  'newHandshake',
  'zeroKeyMaterial',
  'persistentKeepalive',
];

/** A peer's five timers and the counters that go with them. */
export class PeerTimers {
  readonly deadline: Record<TimerName, number> = {
    retransmitHandshake: Infinity,
    sendKeepalive: Infinity,
    newHandshake: Infinity,
    zeroKeyMaterial: Infinity,
    persistentKeepalive: Infinity,
  };
  /** Initiations sent since the last completed handshake (whitepaper §6.4). */
  handshakeAttempts = 0;
  /** Data arrived while a keepalive was already pending: send another after it. */
  needAnotherKeepalive = false;

  /** `jitter` is a uniform random integer in [0, REKEY_TIMEOUT_JITTER_MAX_MS). */
  constructor(private readonly jitter: () => number) {}

  pending(name: TimerName): boolean {
    return this.deadline[name] !== Infinity;
  }
  arm(name: TimerName, at: number): void {
    this.deadline[name] = at;
  }
  stop(name: TimerName): void {
    this.deadline[name] = Infinity;
  }
  stopAll(): void {
    for (const n of TIMER_NAMES) this.deadline[n] = Infinity;
  }
  /** The earliest armed deadline, or Infinity. */
  next(): number {
    const d = this.deadline;
    return Math.min(
      d.retransmitHandshake,
      d.sendKeepalive,
      d.newHandshake,
      d.zeroKeyMaterial,
      d.persistentKeepalive,
    );
  }

  // ---- Events (named as in wireguard-go timers.go) ----

  /** A transport packet with data (not a keepalive) was sent: expect an answer (§6.5). */
  dataSent(now: number): void {
    if (!this.pending('newHandshake'))
      this.arm('newHandshake', now + KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + this.jitter());
  }
  /** A transport packet with data was received: answer with a keepalive if nothing else goes out. */
  dataReceived(now: number): void {
    if (!this.pending('sendKeepalive')) this.arm('sendKeepalive', now + KEEPALIVE_TIMEOUT_MS);
    else this.needAnotherKeepalive = true;
  }
  /** Any authenticated packet was sent: it serves as the keepalive. */
  anyAuthenticatedPacketSent(): void {
    this.stop('sendKeepalive');
  }
  /** Any authenticated packet was received: the peer is alive, no new handshake needed. */
  anyAuthenticatedPacketReceived(): void {
    this.stop('newHandshake');
  }
  /** An initiation was sent: retransmit after REKEY_TIMEOUT plus jitter (§6.4). */
  handshakeInitiated(now: number): void {
    this.arm('retransmitHandshake', now + REKEY_TIMEOUT_MS + this.jitter());
  }
  /** A handshake completed: stop retrying. */
  handshakeComplete(): void {
    this.stop('retransmitHandshake');
    this.handshakeAttempts = 0;
  }
  /** New session keys exist: zero everything after 3 x REJECT_AFTER_TIME of no new session (§6.3). */
  sessionDerived(now: number): void {
    this.arm('zeroKeyMaterial', now + ZERO_KEYS_AFTER_MS);
  }
  /** Any authenticated packet went either way: restart the persistent keepalive interval. */
  anyAuthenticatedPacketTraversal(now: number, persistentKeepaliveMs: number): void {
    if (persistentKeepaliveMs > 0) this.arm('persistentKeepalive', now + persistentKeepaliveMs);
  }
}
