import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { RandomSource } from '../src/crypto/provider.js';
import { IndexTable } from '../src/index-table.js';

/** A deterministic source: xorshift32 from a seed. */
function seeded(seed: number): RandomSource {
  let s = seed >>> 0 || 1;
  return (out) => {
    for (let i = 0; i < out.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      out[i] = s & 0xff;
    }
  };
}

/** A source that returns the given 32-bit values (little-endian) in turn, then throws. */
function scripted(values: number[]): RandomSource & { calls: number } {
  const source = Object.assign(
    (out: Uint8Array) => {
      const v = values[source.calls++];
      if (v === undefined) throw new Error('script exhausted');
      new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(0, v >>> 0, true);
    },
    { calls: 0 },
  );
  return source;
}

describe('IndexTable', () => {
  test('many allocations are unique, non-zero, uint32, and all retrievable', () => {
    const t = new IndexTable<number>(seeded(42));
    const seen = new Map<number, number>();
    let bad = 0;
    for (let i = 0; i < 50_000; i++) {
      const index = t.allocate(i);
      if (index === 0 || index >>> 0 !== index || seen.has(index)) bad++;
      seen.set(index, i);
    }
    expect(bad).toBe(0);
    expect(t.size).toBe(50_000);
    let missing = 0;
    for (const [index, v] of seen) if (t.get(index) !== v) missing++;
    expect(missing).toBe(0);
  });

  test('a source that repeats a used index (or 0) is asked again', () => {
    const src = scripted([7, 7, 0, 0xffff_ffff, 7, 0, 8]);
    const t = new IndexTable<string>(src);
    expect(t.allocate('a')).toBe(7);
    expect(t.allocate('b')).toBe(0xffff_ffff); // 7 taken, 0 never allocated
    expect(src.calls).toBe(4);
    expect(t.allocate('c')).toBe(8);
    expect(src.calls).toBe(7);
    expect([t.get(7), t.get(0xffff_ffff), t.get(-1), t.get(8), t.get(0)]).toEqual([
      'a',
      'b',
      'b',
      'c',
      undefined,
    ]);
  });

  test('a broken source that only repeats throws instead of looping forever', () => {
    const t = new IndexTable<string>(() => {}); // leaves the buffer as it was: 0, 0, ...
    expect(() => t.allocate('x')).toThrow(Error);
    expect(t.size).toBe(0);
  });

  test('delete frees an index for reuse; replace only touches live indices', () => {
    const src = scripted([5, 5, 6, 5]);
    const t = new IndexTable<string>(src);
    expect(t.allocate('handshake')).toBe(5);
    expect(t.replace(5, 'keypair')).toBe(true);
    expect(t.get(5)).toBe('keypair');
    expect(t.replace(99, 'x')).toBe(false);
    expect(t.get(99)).toBeUndefined();
    expect(t.allocate('other')).toBe(6); // 5 is taken
    expect(t.delete(5)).toBe(true);
    expect(t.delete(5)).toBe(false);
    expect(t.get(5)).toBeUndefined();
    expect(t.get(6)).toBe('other');
    expect(t.size).toBe(1);
    expect(t.allocate('again')).toBe(5);
    expect(t.delete(0)).toBe(false);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get(6)).toBeUndefined();
  });

  test('get never throws on odd numbers', () => {
    const t = new IndexTable<string>(seeded(1));
    t.allocate('a');
    for (const x of [NaN, Infinity, -0, 1.5, 2 ** 40, -(2 ** 31)]) expect(t.get(x)).toBeUndefined();
  });

  test('property: allocate/delete/replace/get agree with a Map, including colliding probe runs', () => {
    // A source drawing from few distinct values makes collisions, retries and long probe runs common.
    const op = fc.oneof(
      fc.record({
        k: fc.constant('alloc' as const),
        draws: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 4 }),
      }),
      fc.record({ k: fc.constant('delete' as const), pick: fc.nat(), live: fc.boolean() }),
      fc.record({ k: fc.constant('replace' as const), pick: fc.nat(), v: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        let queue: number[] = [];
        let fallback = 1000;
        const t = new IndexTable<number>((out) => {
          const v = queue.shift() ?? fallback++;
          new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(0, v * 0x1_0000, true);
        });
        const m = new Map<number, number>();
        let serial = 0;
        for (const o of ops) {
          const live = [...m.keys()];
          if (o.k === 'alloc') {
            queue = [...o.draws];
            const v = serial++;
            const index = t.allocate(v);
            expect(index).not.toBe(0);
            expect(m.has(index)).toBe(false);
            m.set(index, v);
          } else if (o.k === 'delete') {
            const index =
              o.live && live.length > 0 ? live[o.pick % live.length]! : (o.pick % 400) * 0x1_0000;
            expect(t.delete(index)).toBe(m.delete(index));
          } else {
            const index = live.length > 0 ? live[o.pick % live.length]! : o.pick;
            expect(t.replace(index, o.v)).toBe(m.has(index));
            if (m.has(index)) m.set(index, o.v);
          }
          expect(t.size).toBe(m.size);
        }
        for (const [index, v] of m) expect(t.get(index)).toBe(v);
        for (let i = 0; i < 400; i++) {
          const index = i * 0x1_0000;
          expect(t.get(index)).toBe(m.get(index));
        }
      }),
      { numRuns: 300 },
    );
  });
});
