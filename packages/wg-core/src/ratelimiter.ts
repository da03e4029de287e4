/**
 * The handshake rate limiter applied under load (whitepaper §5.3: per-source token buckets, after
 * wireguard-go ratelimiter/): each source IP gets RATELIMIT_PACKETS_PER_SECOND with a burst of
 * RATELIMIT_BURST. Time comes in as `now` (monotonic ms).
 */
import { RATELIMIT_BURST, RATELIMIT_PACKETS_PER_SECOND } from './constants.js';

const MS_PER_PACKET = 1000 / RATELIMIT_PACKETS_PER_SECOND;
const MAX_TOKENS_MS = MS_PER_PACKET * RATELIMIT_BURST;
/** Buckets idle this long are full again and can be forgotten. */
const GC_INTERVAL_MS = 1000;

/** Token buckets per source address. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; last: number }>();
  private lastGc = -Infinity;

  /** True if a packet from `source` (an address string) may pass at `now`; consumes a token. */
  allow(source: string, now: number): boolean {
    if (now - this.lastGc >= GC_INTERVAL_MS) this.gc(now);
    let b = this.buckets.get(source);
    if (!b) {
      b = { tokens: MAX_TOKENS_MS, last: now };
      this.buckets.set(source, b);
    }
    b.tokens = Math.min(MAX_TOKENS_MS, b.tokens + (now - b.last));
    b.last = now;
    if (b.tokens < MS_PER_PACKET) return false;
    b.tokens -= MS_PER_PACKET;
    return true;
  }

  /** Number of sources currently tracked. */
  get size(): number {
    return this.buckets.size;
  }

  private gc(now: number): void {
    this.lastGc = now;
    for (const [k, b] of this.buckets) if (now - b.last >= MAX_TOKENS_MS) this.buckets.delete(k);
  }
}
