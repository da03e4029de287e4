/**
 * The receive-side replay window of transport counters (whitepaper §5.4.6, RFC 6479), sized as the
 * kernel and wireguard-go size it: a ring of 8192 bits that accepts counters up to 8128 behind the
 * highest one seen. 64-bit counters are handled as two uint32 halves; no BigInt on the fast path.
 */
import {
  REJECT_AFTER_MESSAGES,
  REPLAY_WINDOW_BLOCKS,
  REPLAY_WINDOW_SIZE,
  REPLAY_WINDOW_WORD_BITS,
} from './constants.js';

const WORD_BITS = 32;
const COUNTER_LEN = 8; // bytes of the little-endian counter field
const WORD_SHIFT = 5; // log2(WORD_BITS)
const BIT_MASK = WORD_BITS - 1;
const TWO_POW_32 = 2 ** WORD_BITS;
/** The ring holds exactly as many bits as the kernel's, in 32-bit words (JS bitwise ops are 32-bit). */
const RING_BITS = REPLAY_WINDOW_BLOCKS * REPLAY_WINDOW_WORD_BITS;
const RING_WORDS = RING_BITS / WORD_BITS;
const RING_MASK = RING_WORDS - 1;

/** REJECT_AFTER_MESSAGES split once at load time, so the per-packet comparison is two int compares. */
const REJECT_HI = Number(REJECT_AFTER_MESSAGES >> 32n);
const REJECT_LO = Number(REJECT_AFTER_MESSAGES & 0xffff_ffffn);

/**
 * A 64-bit counter given as uint32 halves, as a number. Exact only below 2^53 (Number.MAX_SAFE_INTEGER);
 * meant for logs and statistics, never for comparisons near the top of the range.
 */
export function counterToNumber(lo: number, hi: number): number {
  return (hi >>> 0) * TWO_POW_32 + (lo >>> 0);
}

/** A 64-bit counter given as uint32 halves, as an exact bigint (slow path: tests, logs, UAPI). */
export function counterToBigInt(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * The sliding window of one receiving keypair. `check` accepts each counter at most once, accepts
 * any counter newer than the newest seen, and accepts older ones only within REPLAY_WINDOW_SIZE
 * (8128) of the newest. Allocates once, in the constructor.
 */
export class ReplayFilter {
  /** Bit (c mod RING_BITS) is set when counter c was accepted; whole words are cleared as the window advances. */
  private readonly ring = new Int32Array(RING_WORDS);
  /** The newest accepted counter (0 before any: the ring is empty then, so 0 itself stays acceptable). */
  private lastLo = 0;
  private lastHi = 0;

  /** Forgets every counter seen: the state of a fresh keypair. */
  reset(): void {
    this.ring.fill(0);
    this.lastLo = 0;
    this.lastHi = 0;
  }

  /**
   * Validates the 64-bit counter `hi * 2^32 + lo` (both uint32; int32 bit patterns are accepted too)
   * and marks it seen. Call only after the packet authenticated, as the spec requires.
   * Returns false for a duplicate, a counter more than REPLAY_WINDOW_SIZE behind the newest, or one
   * >= REJECT_AFTER_MESSAGES. Never throws.
   */
  check(counterLo: number, counterHi: number): boolean {
    const lo = counterLo >>> 0;
    const hi = counterHi >>> 0;
    if (hi === REJECT_HI && lo >= REJECT_LO) return false;
    const lastLo = this.lastLo;
    const lastHi = this.lastHi;
    const ring = this.ring;
    if (hi > lastHi || (hi === lastHi && lo > lastLo)) {
      // Advance: clear the words between the old newest and the new one (at most the whole ring).
      const hiDiff = hi - lastHi;
      let words = RING_WORDS;
      if (hiDiff <= 1) {
        const diff = hiDiff * TWO_POW_32 + lo - lastLo; // exact: < 2^33
        if (diff < RING_BITS) words = ((lastLo & BIT_MASK) + diff) >>> WORD_SHIFT;
      }
      if (words >= RING_WORDS) {
        ring.fill(0);
      } else {
        let w = lastLo >>> WORD_SHIFT;
        for (let i = 0; i < words; i++) ring[++w & RING_MASK] = 0;
      }
      this.lastLo = lo;
      this.lastHi = hi;
    } else {
      const hiDiff = lastHi - hi;
      if (hiDiff > 1 || hiDiff * TWO_POW_32 + lastLo - lo > REPLAY_WINDOW_SIZE) return false;
    }
    const index = (lo >>> WORD_SHIFT) & RING_MASK;
    const bit = 1 << (lo & BIT_MASK);
    const word = ring[index]!;
    if ((word & bit) !== 0) return false;
    ring[index] = word | bit;
    return true;
  }

  /**
   * Validates the counter stored little-endian in `packet` at `offset` (a transport header's counter
   * field is at offset 8), without a DataView. Same result as `check`. Throws RangeError if the
   * counter's bytes are not inside `packet` (callers check lengths first).
   */
  checkAt(packet: Uint8Array, offset: number): boolean {
    if (!(offset >= 0 && offset + COUNTER_LEN <= packet.length))
      throw new RangeError('counter out of bounds');
    const lo =
      packet[offset]! |
      (packet[offset + 1]! << 8) |
      (packet[offset + 2]! << 16) |
      (packet[offset + 3]! << 24);
    const hi =
      packet[offset + 4]! |
      (packet[offset + 5]! << 8) |
      (packet[offset + 6]! << 16) |
      (packet[offset + 7]! << 24);
    return this.check(lo, hi);
  }
}
