/**
 * Capped exponential backoff with jitter for reconnecting to a coordinator that went away: quick
 * first retries, then at most one attempt per BACKOFF_MAX_MS however long the outage lasts, spread
 * so a fleet of agents does not reconnect in lockstep.
 */
import { BACKOFF_FACTOR, BACKOFF_JITTER, BACKOFF_MAX_MS, BACKOFF_MIN_MS } from '../constants.js';

/** Backoff settings (defaults from constants.ts). */
export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  factor?: number;
  /** Fraction of the delay added or removed at random (0 = none). */
  jitter?: number;
  /** Uniform random in [0, 1) (injected so tests are deterministic). */
  random?: () => number;
}

/** The delay sequence of one connection. */
export class Backoff {
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private attempt = 0;
  private count = 0;

  /** Throws RangeError for non-positive delays, a factor below 1 or a jitter outside [0, 1). */
  constructor(o: BackoffOptions = {}) {
    this.minMs = o.minMs ?? BACKOFF_MIN_MS;
    this.maxMs = o.maxMs ?? BACKOFF_MAX_MS;
    this.factor = o.factor ?? BACKOFF_FACTOR;
    this.jitter = o.jitter ?? BACKOFF_JITTER;
    this.random = o.random ?? Math.random;
    if (!(this.minMs > 0) || !(this.maxMs >= this.minMs))
      throw new RangeError('need 0 < minMs <= maxMs');
    if (!(this.factor >= 1)) throw new RangeError('factor must be at least 1');
    if (!(this.jitter >= 0 && this.jitter < 1)) throw new RangeError('jitter must be in [0, 1)');
  }

  /** The delay before the next attempt, in ms; never above maxMs, never below minMs * (1 - jitter). */
  next(): number {
    const base = Math.min(this.maxMs, this.minMs * this.factor ** this.attempt);
    if (base < this.maxMs) this.attempt++;
    this.count++;
    const spread = base * this.jitter * (2 * this.random() - 1);
    return Math.round(Math.min(this.maxMs, base + spread));
  }

  /** Number of failures since the last reset. */
  get failures(): number {
    return this.count;
  }

  /** Call after a success: the next failure starts again at minMs. */
  reset(): void {
    this.attempt = 0;
    this.count = 0;
  }
}
