import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { compareTai64n, tai64n } from '../src/tai64n.js';
import capture from './vectors/wireguard-handshake-wireshark.json' with { type: 'json' };

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('tai64n', () => {
  test('0x400000000000000a + seconds, then whitened nanoseconds, both big-endian', () => {
    const ts = capture.session1.timestamp_tai64n_computed;
    const t = tai64n(ts.unix_seconds * 1000 + 356.537872);
    expect(t.length).toBe(12);
    // Seconds as in the capture; nanoseconds rounded down to a multiple of 2^24.
    expect(hex(t.subarray(0, 8))).toBe(ts.hex.slice(0, 16));
    const nanos = Buffer.from(t.subarray(8)).readUInt32BE(0);
    expect(nanos).toBe(ts.nanoseconds - (ts.nanoseconds % 2 ** 24));
    expect(nanos % 2 ** 24).toBe(0);
  });

  test('the epoch and a whole second', () => {
    expect(hex(tai64n(0))).toBe('400000000000000a00000000');
    expect(hex(tai64n(1_000))).toBe('400000000000000b00000000');
    // 999 ms = 999000000 ns = 0x3b8b87c0; whitened to 0x3b000000.
    expect(hex(tai64n(999))).toBe('400000000000000a3b000000');
  });

  test('rejects negative and non-finite times', () => {
    expect(() => tai64n(-1)).toThrow(RangeError);
    expect(() => tai64n(Number.NaN)).toThrow(RangeError);
    expect(() => tai64n(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  test('within one whitening step (2^24 ns) timestamps are equal, so a second initiation is a replay', () => {
    const base = 1_700_000_000_000; // a whole second: nanoseconds start at 0
    expect(compareTai64n(tai64n(base), tai64n(base + 16))).toBe(0);
    expect(compareTai64n(tai64n(base), tai64n(base + 17))).toBe(-1);
  });

  test('order of timestamps follows order of times (property)', () => {
    const ms = fc.integer({ min: 0, max: 2 ** 42 });
    fc.assert(
      fc.property(ms, ms, (a, b) => {
        const c = compareTai64n(tai64n(a), tai64n(b));
        if (a === b) expect(c).toBe(0);
        else if (a < b) expect(c).toBeLessThanOrEqual(0);
        else expect(c).toBeGreaterThanOrEqual(0);
        expect(compareTai64n(tai64n(b), tai64n(a)) + c).toBe(0);
      }),
    );
  });

  test('compareTai64n compares bytes in order and checks lengths', () => {
    const a = new Uint8Array(12);
    const b = new Uint8Array(12);
    b[11] = 1;
    expect(compareTai64n(a, b)).toBe(-1);
    a[0] = 1;
    expect(compareTai64n(a, b)).toBe(1);
    expect(() => compareTai64n(a, new Uint8Array(11))).toThrow(RangeError);
  });
});
