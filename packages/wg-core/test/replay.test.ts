import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { REJECT_AFTER_MESSAGES, REPLAY_WINDOW_SIZE } from '../src/constants.js';
import { ReplayFilter, counterToBigInt, counterToNumber } from '../src/replay.js';

const lo = (c: bigint) => Number(c & 0xffff_ffffn);
const hi = (c: bigint) => Number(c >> 32n);
const check = (f: ReplayFilter, c: bigint) => f.check(lo(c), hi(c));

/** The acceptance rule written plainly: a set of accepted counters and the newest one. */
class NaiveWindow {
  private seen = new Set<bigint>();
  private newest = -1n;
  check(c: bigint): boolean {
    if (c >= REJECT_AFTER_MESSAGES) return false;
    if (this.newest >= 0n && c + BigInt(REPLAY_WINDOW_SIZE) < this.newest) return false;
    if (this.seen.has(c)) return false;
    this.seen.add(c);
    if (c > this.newest) this.newest = c;
    return true;
  }
}

describe('kernel selftest/counter.c cases', () => {
  const W = BigInt(REPLAY_WINDOW_SIZE);
  const LIM = W + 1n;
  const R = REJECT_AFTER_MESSAGES;

  test('the 34 numbered steps', () => {
    const f = new ReplayFilter();
    const steps: Array<[bigint, boolean]> = [
      [0n, true],
      [1n, true],
      [1n, false],
      [9n, true],
      [8n, true],
      [7n, true],
      [7n, false],
      [LIM, true],
      [LIM - 1n, true],
      [LIM - 1n, false],
      [LIM - 2n, true],
      [2n, true],
      [2n, false],
      [LIM + 16n, true],
      [3n, false],
      [LIM + 16n, false],
      [LIM * 4n, true],
      [LIM * 4n - (LIM - 1n), true],
      [10n, false],
      [LIM * 4n - LIM, false],
      [LIM * 4n - (LIM + 1n), false],
      [LIM * 4n - (LIM - 2n), true],
      [LIM * 4n + 1n - LIM, false],
      [0n, false],
      [R, false],
      [R - 1n, true],
      [R, false],
      [R - 1n, false],
      [R - 2n, true],
      [R + 1n, false],
      [R + 2n, false],
      [R - 2n, false],
      [R - 3n, true],
      [0n, false],
    ];
    const got = steps.map(([c]) => check(f, c));
    expect(got).toEqual(steps.map(([, v]) => v));
  });

  test('1..W in order, then 0 is still inside the window', () => {
    const f = new ReplayFilter();
    for (let i = 1n; i <= W; i++) expect(check(f, i)).toBe(true);
    expect(check(f, 0n)).toBe(true);
    expect(check(f, 0n)).toBe(false);
  });

  test('2..W+1 in order: 1 is inside, 0 just outside', () => {
    const f = new ReplayFilter();
    for (let i = 2n; i <= W + 1n; i++) expect(check(f, i)).toBe(true);
    expect(check(f, 1n)).toBe(true);
    expect(check(f, 0n)).toBe(false);
  });

  test('W..0 descending all accepted', () => {
    const f = new ReplayFilter();
    for (let i = W + 1n; i-- > 0n;) expect(check(f, i)).toBe(true);
  });

  test('W+1..1 descending, then 0 is too old', () => {
    const f = new ReplayFilter();
    for (let i = W + 2n; i-- > 1n;) expect(check(f, i)).toBe(true);
    expect(check(f, 0n)).toBe(false);
  });

  test('W..1 descending, then W+1 moves the window past 0', () => {
    const f = new ReplayFilter();
    for (let i = W + 1n; i-- > 1n;) expect(check(f, i)).toBe(true);
    expect(check(f, W + 1n)).toBe(true);
    expect(check(f, 0n)).toBe(false);
  });

  test('W..1 descending, 0, then W+1', () => {
    const f = new ReplayFilter();
    for (let i = W + 1n; i-- > 1n;) expect(check(f, i)).toBe(true);
    expect(check(f, 0n)).toBe(true);
    expect(check(f, W + 1n)).toBe(true);
  });
});

describe('ReplayFilter', () => {
  test('REJECT_AFTER_MESSAGES boundary is compared exactly on both halves', () => {
    const f = new ReplayFilter();
    expect(hi(REJECT_AFTER_MESSAGES)).toBe(0xffff_ffff);
    expect(lo(REJECT_AFTER_MESSAGES)).toBe(0xffff_dfff);
    expect(f.check(0xffff_dfff, 0xffff_ffff)).toBe(false);
    expect(f.check(0xffff_ffff, 0xffff_ffff)).toBe(false);
    expect(f.check(0xffff_dffe, 0xffff_ffff)).toBe(true);
    // the same bit patterns given as int32 (as `|`-based byte reads produce them)
    expect(f.check(0xffff_dffd | 0, -1)).toBe(true);
    expect(f.check(0xffff_dfff | 0, -1)).toBe(false);
  });

  test('window edges across the 2^32 boundary of the halves', () => {
    const f = new ReplayFilter();
    const top = 2n ** 32n + 100n;
    expect(check(f, top)).toBe(true);
    expect(check(f, top - BigInt(REPLAY_WINDOW_SIZE))).toBe(true);
    expect(check(f, top - BigInt(REPLAY_WINDOW_SIZE) - 1n)).toBe(false);
    expect(check(f, 2n ** 32n - 1n)).toBe(true);
    expect(check(f, 2n ** 32n - 1n)).toBe(false);
    // a jump of exactly 2^32 clears everything, even though the low half is unchanged
    expect(check(f, top + 2n ** 32n)).toBe(true);
    expect(check(f, top + 2n ** 32n - 1n)).toBe(true);
    expect(check(f, top)).toBe(false);
  });

  test('a jump of exactly one ring clears the aliased bits', () => {
    const f = new ReplayFilter();
    expect(check(f, 5n)).toBe(true);
    expect(check(f, 5n + 8192n)).toBe(true); // same ring bit as 5
    expect(check(f, 5n + 8192n - 8128n)).toBe(true);
    expect(check(f, 5n + 8192n)).toBe(false);
  });

  test('a jump of exactly the window size keeps the old newest counter a duplicate', () => {
    const W = BigInt(REPLAY_WINDOW_SIZE);
    for (const start of [0n, 31n, 32n, 63n, 2n ** 32n - 5n]) {
      const f = new ReplayFilter();
      expect(check(f, start)).toBe(true);
      expect(check(f, start + W)).toBe(true);
      expect(check(f, start)).toBe(false);
      expect(check(f, start + 1n)).toBe(true);
      expect(check(f, start + W + 1n)).toBe(true);
      expect(check(f, start + 1n)).toBe(false);
      expect(check(f, start + 2n)).toBe(true);
    }
  });

  test('reset forgets everything', () => {
    const f = new ReplayFilter();
    expect(check(f, 100_000n)).toBe(true);
    expect(check(f, 0n)).toBe(false);
    f.reset();
    expect(check(f, 0n)).toBe(true);
    expect(check(f, 100_000n)).toBe(true);
  });

  test('checkAt reads the little-endian field in place', () => {
    const f = new ReplayFilter();
    const packet = new Uint8Array(32);
    const view = new DataView(packet.buffer);
    view.setBigUint64(8, 0x0102_0304_8506_0708n, true);
    expect(f.checkAt(packet, 8)).toBe(true);
    expect(f.check(0x8506_0708, 0x0102_0304)).toBe(false);
    view.setBigUint64(8, REJECT_AFTER_MESSAGES, true);
    expect(f.checkAt(packet, 8)).toBe(false);
    expect(() => f.checkAt(packet, 25)).toThrow(RangeError);
  });

  test('counter conversions', () => {
    expect(counterToNumber(0xffff_ffff, 0x1f_ffff)).toBe(Number.MAX_SAFE_INTEGER);
    expect(counterToNumber(-1, 0)).toBe(0xffff_ffff);
    expect(counterToBigInt(-1, -1)).toBe(2n ** 64n - 1n);
    expect(counterToBigInt(7, 1)).toBe(2n ** 32n + 7n);
  });

  test('property: agrees with a set-based model over random sequences with large jumps', () => {
    const U64 = 2n ** 64n;
    const op = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ k: fc.constant('near' as const), d: fc.bigInt(-8300n, 300n) }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ k: fc.constant('edge' as const), d: fc.bigInt(-8200n, -8000n) }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ k: fc.constant('ahead' as const), d: fc.bigInt(0n, 20_000n) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ k: fc.constant('jump' as const), d: fc.bigInt(0n, 2n ** 40n) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ k: fc.constant('abs' as const), d: fc.bigInt(0n, U64 - 1n) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ k: fc.constant('top' as const), d: fc.bigInt(-20_000n, 4n) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          k: fc.constant('half' as const),
          d: fc.bigInt(-300n, 300n),
          m: fc.bigInt(0n, 2n ** 32n - 1n),
        }),
      },
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 400 }), (ops) => {
        const f = new ReplayFilter();
        const model = new NaiveWindow();
        let newest = 0n;
        for (const o of ops) {
          let c: bigint;
          switch (o.k) {
            case 'near':
            case 'edge':
            case 'ahead':
            case 'jump':
              c = newest + o.d;
              break;
            case 'abs':
              c = o.d;
              break;
            case 'top':
              c = REJECT_AFTER_MESSAGES + o.d;
              break;
            case 'half':
              c = (o.m << 32n) + o.d;
              break;
          }
          c = BigInt.asUintN(64, c);
          const want = model.check(c);
          if (check(f, c) !== want) return false;
          if (want && c > newest) newest = c;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });

  test('property: after random moves, a sweep of the whole window agrees with the model', () => {
    // Below the newest counter, checking c marks only c, so one descending sweep reads out the
    // complete state: every stale or missing bit of the ring shows up as a disagreement.
    const W = BigInt(REPLAY_WINDOW_SIZE);
    const step = fc.oneof(
      { weight: 4, arbitrary: fc.bigInt(-100n, 64n) },
      { weight: 2, arbitrary: fc.bigInt(-8200n, 0n) },
      { weight: 2, arbitrary: fc.bigInt(1n, 8300n) },
      { weight: 1, arbitrary: fc.bigInt(W - 40n, W + 100n) },
      { weight: 1, arbitrary: fc.bigInt(8000n, 17_000n) },
    );
    fc.assert(
      fc.property(
        fc.bigInt(0n, 2n ** 64n - 2n ** 20n),
        fc.array(step, { minLength: 1, maxLength: 120 }),
        (start, steps) => {
          const f = new ReplayFilter();
          const model = new NaiveWindow();
          let newest = start;
          model.check(start);
          check(f, start);
          for (const d of steps) {
            const c = newest + d < 0n ? 0n : newest + d;
            if (check(f, c) !== model.check(c)) return false;
            if (c > newest) newest = c;
          }
          for (let c = newest; c >= 0n && c >= newest - W - 64n; c--) {
            if (check(f, c) !== model.check(c)) return false;
          }
          return true;
        },
      ),
      { numRuns: 200 },
    );
  });
});
