import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/control/backoff.js';
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS } from '../src/constants.js';

describe('Backoff', () => {
  it('doubles from the minimum and stays at the cap', () => {
    const b = new Backoff({ minMs: 100, maxMs: 1000, jitter: 0 });
    expect(Array.from({ length: 7 }, () => b.next())).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000,
    ]);
    expect(b.failures).toBe(7);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('spreads delays by the jitter but never past the cap', () => {
    const lo = new Backoff({ minMs: 100, maxMs: 1000, jitter: 0.2, random: () => 0 });
    const hi = new Backoff({ minMs: 100, maxMs: 1000, jitter: 0.2, random: () => 0.999999 });
    expect(lo.next()).toBe(80);
    expect(hi.next()).toBe(120);
    for (let i = 0; i < 10; i++) {
      expect(hi.next()).toBeLessThanOrEqual(1000);
      expect(lo.next()).toBeGreaterThanOrEqual(80);
    }
  });

  it('uses the documented defaults', () => {
    const b = new Backoff({ jitter: 0 });
    expect(b.next()).toBe(BACKOFF_MIN_MS);
    for (let i = 0; i < 50; i++) b.next();
    expect(b.next()).toBe(BACKOFF_MAX_MS);
  });

  it('rejects nonsense settings', () => {
    expect(() => new Backoff({ minMs: 0 })).toThrow(RangeError);
    expect(() => new Backoff({ minMs: 10, maxMs: 5 })).toThrow(RangeError);
    expect(() => new Backoff({ factor: 0.5 })).toThrow(RangeError);
    expect(() => new Backoff({ jitter: 1 })).toThrow(RangeError);
  });
});
