/**
 * What the native TUN device and the native UDP bind share on top of the addon's rings (io.h):
 * one reused batch handed to the reader, pause/resume, one fatal error that stops reading, and
 * writes copied into the transmit ring a batch of slots at a time.
 */
import type { IoStats, NativeIo } from './native/addon.js';
import type { RingBatch } from './tun.js';

/**
 * The lifecycle both native ports follow. `N` is the addon object, `B` the batch handed to the
 * reader, `T` what one write carries (a packet, a datagram). Subclasses own the typed callbacks
 * and say how one item fills a transmit slot and how a filled batch is flushed.
 */
export abstract class NativePort<N extends NativeIo, B extends RingBatch, T> {
  protected readonly native: N;
  readonly #batch: B;
  readonly #batchSize: number;
  readonly #slotBytes: number;
  #onBatch: ((batch: B) => void) | undefined;
  #onError: ((error: Error) => void) | undefined;
  #paused = false;
  #failed = false;
  #closed = false;

  constructor(native: N, batch: B, batchSize: number, slotBytes: number) {
    this.native = native;
    this.#batch = batch;
    this.#batchSize = batchSize;
    this.#slotBytes = slotBytes;
  }

  get closed(): boolean {
    return this.#closed;
  }

  onError(callback: (error: Error) => void): void {
    if (typeof callback !== 'function') throw new TypeError('onError(callback): not a function');
    this.#onError = callback;
  }

  pause(): void {
    this.#paused = true;
    if (!this.#closed) this.native.stop();
  }

  resume(): void {
    this.#paused = false;
    this.#startReading();
  }

  stats(): IoStats {
    return this.native.stats();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.native.close();
  }

  /** Sets the one batch callback (the subclass checked it is a function) and starts reading. */
  protected setOnBatch(callback: (batch: B) => void): void {
    this.#onBatch = callback;
    this.#startReading();
  }

  /** The error reported when the fd dies and the addon gives no error of its own. */
  protected abstract failure(): Error;

  /** Writes `item` (the `index`th of the call) into transmit slot `slot`'s side data; returns its payload. */
  protected abstract fillSlot(item: T, slot: number, index: number): Uint8Array;

  /** Hands the first `count` transmit slots to the kernel; returns how many it took. */
  protected abstract flush(count: number): number;

  /**
   * Copies `items` into the transmit ring, one batch of slots at a time, flushing each. The caller
   * checked every item first, so nothing is written when one is bad. Returns how many the kernel
   * took; 0 after close().
   */
  protected transmit(items: readonly T[]): number {
    if (this.#closed) return 0;
    const { txBuffer, txLengths } = this.native;
    let accepted = 0;
    for (let start = 0; start < items.length; start += this.#batchSize) {
      const n = Math.min(this.#batchSize, items.length - start);
      for (let i = 0; i < n; i++) {
        const data = this.fillSlot(items[start + i]!, i, start + i);
        txBuffer.set(data, i * this.#slotBytes);
        txLengths[i] = data.length;
      }
      accepted += this.flush(n);
    }
    return accepted;
  }

  #startReading(): void {
    if (this.#closed || this.#paused || this.#failed || this.#onBatch === undefined) return;
    this.native.start(this.#dispatch);
  }

  #dispatch = (count: number, error?: Error): void => {
    if (count < 0) {
      this.#failed = true;
      const err = error ?? this.failure();
      if (this.#onError === undefined) throw err;
      this.#onError(err);
      return;
    }
    const batch = this.#batch;
    batch.count = count;
    try {
      this.#onBatch?.(batch);
    } finally {
      batch.count = 0; // a batch kept past its callback reads as empty instead of as later packets
    }
  };
}
