/**
 * A Keypair: the transport keys of one completed handshake (whitepaper §5.4.5) with their
 * counters, and the current/previous/next rotation of a peer (whitepaper §6.1, wireguard-go
 * device/keypair.go).
 */
import { REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS, REKEY_AFTER_MESSAGES } from './constants.js';
import { ReplayFilter } from './replay.js';

const TWO_POW_32 = 2 ** 32;
// The 64-bit limits as uint32 halves: counters are kept as two halves so they stay exact (no BigInt).
const REKEY_HI = Number(REKEY_AFTER_MESSAGES >> 32n);
const REKEY_LO = Number(REKEY_AFTER_MESSAGES & 0xffff_ffffn);
const REJECT_HI = Number(REJECT_AFTER_MESSAGES >> 32n);
const REJECT_LO = Number(REJECT_AFTER_MESSAGES & 0xffff_ffffn);

/** Transport keys and counters of one session. Owned by the engine; `wipe()` zeroes the keys. */
export class Keypair {
  /** Next counter to send with, low and high 32 bits. */
  sendLo = 0;
  sendHi = 0;
  readonly replay = new ReplayFilter();
  /** Set when the keypair must no longer be used for sending (private key change, expiry). */
  expired = false;

  constructor(
    readonly sendKey: Uint8Array,
    readonly receiveKey: Uint8Array,
    readonly isInitiator: boolean,
    readonly localIndex: number,
    readonly remoteIndex: number,
    /** Monotonic ms at which the keys were derived. */
    readonly created: number,
  ) {}

  /** True while the keypair may encrypt: younger than REJECT_AFTER_TIME and counters left. */
  canSend(now: number): boolean {
    return !this.expired && now - this.created < REJECT_AFTER_TIME_MS && !this.exhausted();
  }

  /** The send counter reached REJECT_AFTER_MESSAGES (whitepaper §6.1). */
  exhausted(): boolean {
    return this.sendHi > REJECT_HI || (this.sendHi === REJECT_HI && this.sendLo >= REJECT_LO);
  }

  /** The send counter passed REKEY_AFTER_MESSAGES (whitepaper §6.2). */
  needsRekeyByMessages(): boolean {
    return this.sendHi > REKEY_HI || (this.sendHi === REKEY_HI && this.sendLo > REKEY_LO);
  }

  /** Advances the send counter by one (callers check `canSend` first). */
  incrementSend(): void {
    if (++this.sendLo === TWO_POW_32) {
      this.sendLo = 0;
      this.sendHi++;
    }
  }

  /** The send counter as an exact bigint (tests, statistics). */
  get sendCounter(): bigint {
    return (BigInt(this.sendHi) << 32n) | BigInt(this.sendLo);
  }

  /** Sets the send counter (tests that exercise the message limits). */
  set sendCounter(v: bigint) {
    this.sendHi = Number(v >> 32n);
    this.sendLo = Number(v & 0xffff_ffffn);
  }

  /** True while packets encrypted with it may be accepted (REJECT_AFTER_TIME, whitepaper §6.1). */
  canReceive(now: number): boolean {
    return now - this.created < REJECT_AFTER_TIME_MS;
  }

  /** Zeroes the transport keys. */
  wipe(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
    this.expired = true;
  }
}

/** A peer's three keypair slots (whitepaper §6.1: current, previous, next). */
export class Keypairs {
  current: Keypair | null = null;
  previous: Keypair | null = null;
  /** The responder's fresh keypair, promoted once the initiator has used it. */
  next: Keypair | null = null;

  /** All keypairs held, for index-table cleanup. */
  all(): Keypair[] {
    const out: Keypair[] = [];
    if (this.current) out.push(this.current);
    if (this.previous) out.push(this.previous);
    if (this.next) out.push(this.next);
    return out;
  }
}
