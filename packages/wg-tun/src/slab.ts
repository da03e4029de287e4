/**
 * A bump allocator over one reused buffer, for the engine's per-packet output: every action of a
 * batch is consumed (sent, written; both copy) before the next batch, so the memory is reused
 * instead of allocating and zeroing a buffer per packet.
 */

/** Slices of one buffer, valid until `reset()`. Falls back to fresh memory when the slab is full. */
export class Slab {
  readonly #buf: Uint8Array;
  #offset = 0;

  /** `bytes`: the slab's size; a batch whose output exceeds it allocates the rest normally. */
  constructor(bytes: number) {
    if (!Number.isInteger(bytes) || bytes <= 0)
      throw new RangeError('slab size must be a positive integer');
    this.#buf = new Uint8Array(bytes);
  }

  /** `length` bytes of unspecified content (the caller writes every byte it uses). */
  readonly alloc = (length: number): Uint8Array => {
    const start = this.#offset;
    const end = start + length;
    if (end > this.#buf.length) return new Uint8Array(length);
    this.#offset = (end + ALIGN - 1) & ~(ALIGN - 1);
    return this.#buf.subarray(start, end);
  };

  /** Makes the whole slab available again; every slice handed out before is now reused. */
  reset(): void {
    this.#offset = 0;
  }
}

/** Slices start on 8-byte boundaries, which keeps the native crypto on its aligned paths. */
const ALIGN = 8;
