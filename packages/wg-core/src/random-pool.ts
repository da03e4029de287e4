/**
 * Pooled randomness for the engine's small, frequent draws (timer jitter, whitepaper §6.1; sender
 * indices, §5.4.2; cookie-reply nonces, §5.4.7): one bulk call to the injected source refills a
 * buffer that serves many draws, instead of one call (a syscall under Node) per 4-byte draw.
 */
import { RANDOM_POOL_BYTES } from './constants.js';
import type { RandomSource } from './crypto/provider.js';

/**
 * Serves bytes from `source` in the order the source produced them, so a fixed source still
 * gives a fixed sequence. Served bytes are wiped from the pool. Not for long-term secrets: keys
 * are drawn from the source directly.
 */
export class RandomPool {
  readonly #source: RandomSource;
  readonly #pool: Uint8Array;
  /** Bytes before this offset are used (and zero); the pool starts empty. */
  #used: number;

  /** Throws TypeError unless `source` is a function, RangeError unless `size` is a positive integer. */
  constructor(source: RandomSource, size: number = RANDOM_POOL_BYTES) {
    if (typeof source !== 'function') throw new TypeError('source must be a RandomSource');
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError('size must be a positive integer');
    this.#source = source;
    this.#pool = new Uint8Array(size);
    this.#used = size;
  }

  /**
   * A RandomSource over the pool: fills `out` with the next bytes. A draw larger than the pool
   * goes to the source directly. Throws TypeError unless `out` is a Uint8Array.
   */
  readonly fill: RandomSource = (out) => {
    if (!(out instanceof Uint8Array)) throw new TypeError('out must be a Uint8Array');
    const pool = this.#pool;
    if (out.length > pool.length) {
      this.#source(out);
      return;
    }
    let done = 0;
    while (done < out.length) {
      if (this.#used === pool.length) {
        this.#source(pool);
        this.#used = 0;
      }
      const n = Math.min(out.length - done, pool.length - this.#used);
      out.set(pool.subarray(this.#used, this.#used + n), done);
      pool.fill(0, this.#used, this.#used + n);
      this.#used += n;
      done += n;
    }
  };

  /** The next four bytes as a little-endian uint32. */
  uint32(): number {
    const pool = this.#pool;
    if (pool.length - this.#used < 4) {
      const b = new Uint8Array(4);
      this.fill(b);
      return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    }
    const i = this.#used;
    const v = (pool[i]! | (pool[i + 1]! << 8) | (pool[i + 2]! << 16) | (pool[i + 3]! << 24)) >>> 0;
    pool.fill(0, i, i + 4);
    this.#used = i + 4;
    return v;
  }
}
