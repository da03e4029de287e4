/**
 * The index table (whitepaper §5.4.2 sender/receiver indices; wireguard-go indextable.go): random
 * 32-bit session indices mapped to the handshake or keypair they name, looked up per packet.
 */
import type { RandomSource } from './crypto/provider.js';

const INDEX_LEN = 4; // bytes of a sender/receiver index on the wire
const INITIAL_CAPACITY = 16; // a power of two
/** The table grows beyond half full, which keeps linear probe runs short. */
const MAX_LOAD = 0.5;
const WORD_BITS = 32;
/** 2^32 / golden ratio: Fibonacci hashing spreads even a non-random source's indices over the slots. */
const FIBONACCI_MULTIPLIER = 0x9e37_79b9;
/**
 * Allocation gives up after this many draws in a row are 0 or taken: with under 2^18 live indices
 * honest randomness does that with probability below 2^-1700, so it means a broken source.
 */
const MAX_ALLOCATE_ATTEMPTS = 128;

/**
 * Maps the 32-bit indices this side chose to values, in an open-addressing hash table keyed by the
 * index as an int32, so per-packet `get` allocates nothing and hashes no boxed numbers.
 * Index 0 is never allocated: it marks empty slots, and lets callers use 0 as "no index".
 */
export class IndexTable<T> {
  private keys = new Int32Array(INITIAL_CAPACITY);
  private values: Array<T | undefined> = new Array<T | undefined>(INITIAL_CAPACITY).fill(undefined);
  private mask = INITIAL_CAPACITY - 1;
  private shift = WORD_BITS - Math.log2(INITIAL_CAPACITY);
  private count = 0;
  private readonly scratch = new Uint8Array(INDEX_LEN);
  private readonly random: RandomSource;

  /** `random` fills a buffer with secure random bytes; it is called once per allocation attempt. */
  constructor(random: RandomSource) {
    if (typeof random !== 'function') throw new TypeError('random must be a function');
    this.random = random;
  }

  /** Number of live indices. */
  get size(): number {
    return this.count;
  }

  /**
   * Stores `value` under a fresh random index, never 0 and never one in use, drawing again on a
   * collision. Returns the index as a uint32 (write it little-endian on the wire). Throws Error if
   * the random source gives only used indices or 0 many times in a row (it is broken).
   */
  allocate(value: T): number {
    if (this.count + 1 > this.keys.length * MAX_LOAD) this.grow();
    const b = this.scratch;
    for (let attempt = 0; attempt < MAX_ALLOCATE_ATTEMPTS; attempt++) {
      this.random(b);
      const key = b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24);
      if (key === 0 || this.find(key) >= 0) continue;
      this.put(key, value);
      this.count++;
      return key >>> 0;
    }
    throw new Error(`random source gave ${MAX_ALLOCATE_ATTEMPTS} unusable indices in a row`);
  }

  /** The value under `index` (uint32 or the same bits as int32), or undefined. Never throws. */
  get(index: number): T | undefined {
    const key = index | 0;
    if (key === 0) return undefined;
    const keys = this.keys;
    const mask = this.mask;
    let slot = Math.imul(key, FIBONACCI_MULTIPLIER) >>> this.shift;
    for (;;) {
      const k = keys[slot]!;
      if (k === key) return this.values[slot];
      if (k === 0) return undefined;
      slot = (slot + 1) & mask;
    }
  }

  /** Puts `value` under an index already allocated (a handshake becoming a keypair). Returns false if `index` is not in use. */
  replace(index: number, value: T): boolean {
    const slot = this.find(index | 0);
    if (slot < 0) return false;
    this.values[slot] = value;
    return true;
  }

  /** Frees `index` for reuse. Returns false if it was not in use. */
  delete(index: number): boolean {
    let hole = this.find(index | 0);
    if (hole < 0) return false;
    this.count--;
    // Backward-shift deletion: pull later entries of the probe run into the hole, so lookups never
    // need tombstones.
    const keys = this.keys;
    const mask = this.mask;
    for (let j = (hole + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = Math.imul(keys[j]!, FIBONACCI_MULTIPLIER) >>> this.shift;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        keys[hole] = keys[j]!;
        this.values[hole] = this.values[j];
        hole = j;
      }
    }
    keys[hole] = 0;
    this.values[hole] = undefined;
    return true;
  }

  /** Frees every index. */
  clear(): void {
    this.keys.fill(0);
    this.values.fill(undefined);
    this.count = 0;
  }

  private find(key: number): number {
    if (key === 0) return -1;
    const keys = this.keys;
    let slot = Math.imul(key, FIBONACCI_MULTIPLIER) >>> this.shift;
    for (;;) {
      const k = keys[slot]!;
      if (k === key) return slot;
      if (k === 0) return -1;
      slot = (slot + 1) & this.mask;
    }
  }

  private put(key: number, value: T | undefined): void {
    let slot = Math.imul(key, FIBONACCI_MULTIPLIER) >>> this.shift;
    while (this.keys[slot] !== 0) slot = (slot + 1) & this.mask;
    this.keys[slot] = key;
    this.values[slot] = value;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldValues = this.values;
    const capacity = oldKeys.length * 2;
    this.keys = new Int32Array(capacity);
    this.values = new Array<T | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
    this.shift--;
    for (let i = 0; i < oldKeys.length; i++) {
      if (oldKeys[i] !== 0) this.put(oldKeys[i]!, oldValues[i]);
    }
  }
}
