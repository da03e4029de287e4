/**
 * A token bucket per client address (registration rate limit): each address may burst `burst`
 * requests and regains `refillPerS` per second. The oldest addresses are forgotten past a bound.
 */
import { RATE_LIMITER_MAX_CLIENTS } from './constants.js';

const MS_PER_S = 1000;

/** Rate limiter state. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst: number,
    private readonly refillPerS: number,
    private readonly clock: () => number = Date.now,
  ) {
    if (!(burst >= 1) || !(refillPerS > 0))
      throw new RangeError('burst must be >= 1 and refill > 0');
  }

  /** Takes one token for `client`. Returns 0 when allowed, else the seconds to wait. */
  take(client: string): number {
    const now = this.clock();
    const b = this.buckets.get(client) ?? { tokens: this.burst, at: now };
    this.buckets.delete(client);
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / MS_PER_S) * this.refillPerS);
    b.at = now;
    this.buckets.set(client, b);
    if (this.buckets.size > RATE_LIMITER_MAX_CLIENTS) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.refillPerS);
  }
}
