import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { AllowedIps } from '../src/allowed-ips.js';
import { formatCidr, parseCidr, parseIp } from '../src/ip.js';

const ip4 = (a: number, b: number, c: number, d: number) => new Uint8Array([a, b, c, d]);
const ip6 = (a: number, b: number, c: number, d: number) => {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  [a, b, c, d].forEach((w, i) => view.setUint32(4 * i, w >>> 0));
  return out;
};
const ip = (text: string) => {
  const b = parseIp(text);
  if (b === null) throw new Error(`bad test address ${text}`);
  return b;
};
const texts = <T>(t: AllowedIps<T>, v: T) =>
  t.entriesFor(v).map((e) => formatCidr(e.address, e.cidr));

describe('kernel selftest/allowedips.c cases', () => {
  test('static inserts and lookups', () => {
    const t = new AllowedIps<string>();
    const ins4 = (v: string, a: number, b: number, c: number, d: number, cidr: number) =>
      t.insert(ip4(a, b, c, d), cidr, v);
    const ins6 = (v: string, a: number, b: number, c: number, d: number, cidr: number) =>
      t.insert(ip6(a, b, c, d), cidr, v);
    ins4('a', 192, 168, 4, 0, 24);
    ins4('b', 192, 168, 4, 4, 32);
    ins4('c', 192, 168, 0, 0, 16);
    ins4('d', 192, 95, 5, 64, 27);
    ins4('c', 192, 95, 5, 65, 27); // replaces the previous entry; host bits must be masked
    ins6('d', 0x26075300, 0x60006b00, 0, 0xc05f0543, 128);
    ins6('c', 0x26075300, 0x60006b00, 0, 0, 64);
    ins4('e', 0, 0, 0, 0, 0);
    ins6('e', 0, 0, 0, 0, 0);
    ins6('f', 0, 0, 0, 0, 0); // replaces
    ins6('g', 0x24046800, 0, 0, 0, 32);
    ins6('h', 0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 64); // host bits masked
    ins6('a', 0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef, 128);
    ins6('c', 0x24446800, 0x40e40800, 0xdeaebeef, 0xdefbeef, 128);
    ins6('b', 0x24446800, 0xf0e40800, 0xeeaebeef, 0, 98);
    ins4('g', 64, 15, 112, 0, 20);
    ins4('h', 64, 15, 123, 211, 25); // host bits masked
    ins4('a', 10, 0, 0, 0, 25);
    ins4('b', 10, 0, 0, 128, 25);
    ins4('a', 10, 1, 0, 0, 30);
    ins4('b', 10, 1, 0, 4, 30);
    ins4('c', 10, 1, 0, 8, 29);
    ins4('d', 10, 1, 0, 16, 29);
    t.debugCheck();

    const cases: Array<[string, Uint8Array]> = [
      ['a', ip4(192, 168, 4, 20)],
      ['a', ip4(192, 168, 4, 0)],
      ['b', ip4(192, 168, 4, 4)],
      ['c', ip4(192, 168, 200, 182)],
      ['c', ip4(192, 95, 5, 68)],
      ['e', ip4(192, 95, 5, 96)],
      ['d', ip6(0x26075300, 0x60006b00, 0, 0xc05f0543)],
      ['c', ip6(0x26075300, 0x60006b00, 0, 0xc02e01ee)],
      ['f', ip6(0x26075300, 0x60006b01, 0, 0)],
      ['g', ip6(0x24046800, 0x40040806, 0, 0x1006)],
      ['g', ip6(0x24046800, 0x40040806, 0x1234, 0x5678)],
      ['f', ip6(0x240467ff, 0x40040806, 0x1234, 0x5678)],
      ['f', ip6(0x24046801, 0x40040806, 0x1234, 0x5678)],
      ['h', ip6(0x24046800, 0x40040800, 0x1234, 0x5678)],
      ['h', ip6(0x24046800, 0x40040800, 0, 0)],
      ['h', ip6(0x24046800, 0x40040800, 0x10101010, 0x10101010)],
      ['a', ip6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)],
      ['g', ip4(64, 15, 116, 26)],
      ['g', ip4(64, 15, 127, 3)],
      ['g', ip4(64, 15, 123, 1)],
      ['h', ip4(64, 15, 123, 128)],
      ['h', ip4(64, 15, 123, 129)],
      ['a', ip4(10, 0, 0, 52)],
      ['b', ip4(10, 0, 0, 220)],
      ['a', ip4(10, 1, 0, 2)],
      ['b', ip4(10, 1, 0, 6)],
      ['c', ip4(10, 1, 0, 10)],
      ['d', ip4(10, 1, 0, 20)],
    ];
    expect(cases.map(([, addr]) => t.lookup(addr))).toEqual(cases.map(([v]) => v));

    for (const first of [1, 64, 128, 192, 255]) ins4('a', first, 0, 0, 0, 32);
    t.removeValue('a');
    t.debugCheck();
    for (const first of [1, 64, 128, 192, 255]) {
      expect(t.lookup(ip4(first, 0, 0, 0))).not.toBe('a');
    }
    expect(t.entriesFor('a')).toEqual([]);
  });

  test('a /16 and a /24 of one value both go with removeValue', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(192, 168, 0, 0), 16, 'a');
    t.insert(ip4(192, 168, 0, 0), 24, 'a');
    t.removeValue('a');
    expect(t.lookup(ip4(192, 168, 0, 1))).toBeUndefined();
    expect(t.size).toBe(0);
    expect(t.debugCheck()).toBe(0);
  });

  test('128 /128s differing in one bit each build the deepest trie and free it', () => {
    const t = new AllowedIps<string>();
    const addrs: Uint8Array[] = [];
    for (let i = 0; i < 128; i++) {
      const a = new Uint8Array(16).fill(0xff);
      a[i >> 3]! &= ~(0x80 >> (i & 7));
      addrs.push(a);
      t.insert(a, 128, 'a');
    }
    t.debugCheck();
    expect(t.size).toBe(128);
    for (const a of addrs) expect(t.lookup(a)).toBe('a');
    expect(t.lookup(new Uint8Array(16).fill(0xff))).toBeUndefined();
    t.removeValue('a');
    expect(t.debugCheck()).toBe(0);
  });

  test('entriesFor lists a peer’s prefixes masked, in insertion order', () => {
    const t = new AllowedIps<string>();
    t.insert(ip4(192, 95, 5, 93), 27, 'a');
    t.insert(ip6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128, 'a');
    t.insert(ip4(10, 1, 0, 20), 29, 'a');
    t.insert(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 83, 'a');
    t.insert(ip6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 21, 'a');
    expect(texts(t, 'a')).toEqual([
      '192.95.5.64/27',
      '2607:5300:6000:6b00::c05f:543/128',
      '10.1.0.16/29',
      '2607:5300:6d8a:6bf8:dab1:e000::/83',
      '2607:5000::/21',
    ]);
    expect(t.entriesFor('a')[4]!.address).toEqual(ip6(0x26075000, 0, 0, 0));
  });
});

describe('AllowedIps semantics', () => {
  test('replacing a prefix moves it to the new value and to the end of its list', () => {
    const t = new AllowedIps<string>();
    t.insert(ip('10.0.0.0'), 8, 'a');
    t.insert(ip('10.1.0.0'), 16, 'a');
    t.insert(ip('10.9.9.9'), 8, 'b'); // same prefix after masking
    expect(t.size).toBe(2);
    expect(t.lookup(ip('10.200.0.1'))).toBe('b');
    expect(texts(t, 'a')).toEqual(['10.1.0.0/16']);
    expect(texts(t, 'b')).toEqual(['10.0.0.0/8']);
    t.insert(ip('10.0.0.0'), 8, 'a');
    expect(texts(t, 'a')).toEqual(['10.1.0.0/16', '10.0.0.0/8']);
    expect(t.entriesFor('b')).toEqual([]);
    t.insert(ip('10.1.0.0'), 16, 'a'); // same value: moves to the end, as wg lists it
    expect(texts(t, 'a')).toEqual(['10.0.0.0/8', '10.1.0.0/16']);
    expect(t.size).toBe(2);
    t.debugCheck();
  });

  test('remove only when the prefix maps to that value; host bits ignored', () => {
    const t = new AllowedIps<string>();
    t.insert(ip('fd00::'), 64, 'a');
    t.insert(ip('fd00::1'), 128, 'b');
    expect(t.remove(ip('fd00::'), 64, 'b')).toBe(false);
    expect(t.remove(ip('fd00::'), 63, 'a')).toBe(false);
    expect(t.remove(ip('fd00::'), 65, 'a')).toBe(false);
    expect(t.lookup(ip('fd00::2'))).toBe('a');
    expect(t.remove(ip('fd00::ffff'), 64, 'a')).toBe(true);
    expect(t.lookup(ip('fd00::2'))).toBeUndefined();
    expect(t.lookup(ip('fd00::1'))).toBe('b');
    expect(t.remove(ip('fd00::'), 64, 'a')).toBe(false);
    expect(t.size).toBe(1);
    t.debugCheck();
  });

  test('families are separate; /0 is a default route; clear empties', () => {
    const t = new AllowedIps<number>();
    t.insert(ip('0.0.0.0'), 0, 4);
    expect(t.lookup(ip('::'))).toBeUndefined();
    expect(t.lookup(ip('255.255.255.255'))).toBe(4);
    t.insert(ip('::'), 0, 6);
    expect(t.lookup(ip('::ffff:1.2.3.4'))).toBe(6);
    expect(t.lookup(ip('1.2.3.4'))).toBe(4);
    expect(t.size).toBe(2);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.lookup(ip('1.2.3.4'))).toBeUndefined();
    expect(t.entriesFor(4)).toEqual([]);
  });

  test('lookupV4/lookupV6 read addresses in place from a packet view', () => {
    const t = new AllowedIps<string>();
    t.insert(ip('192.168.100.0'), 24, 'gw');
    t.insert(ip('fd00:1::'), 48, 'six');
    const buffer = new Uint8Array(200);
    const packet = buffer.subarray(7, 7 + 60); // a view that does not start at byteOffset 0
    packet.set(ip('10.8.0.2'), 12);
    packet.set(ip('192.168.100.77'), 16);
    expect(t.lookupV4(packet, 16)).toBe('gw');
    expect(t.lookupV4(packet, 12)).toBeUndefined();
    packet.set(ip('fd00:1::9'), 24);
    expect(t.lookupV6(packet, 24)).toBe('six');
    expect(() => t.lookupV4(packet, 57)).toThrow(RangeError);
    expect(() => t.lookupV6(packet, 45)).toThrow(RangeError);
    expect(() => t.lookupV4(packet, -1)).toThrow(RangeError);
  });

  test('programmer errors throw', () => {
    const t = new AllowedIps<string>();
    expect(() => t.insert(new Uint8Array(5), 8, 'a')).toThrow(RangeError);
    expect(() => t.insert(ip('1.2.3.4'), 33, 'a')).toThrow(RangeError);
    expect(() => t.insert(ip('::'), 129, 'a')).toThrow(RangeError);
    expect(() => t.insert(ip('::'), 1.5, 'a')).toThrow(RangeError);
    expect(() => t.insert([1, 2, 3, 4] as unknown as Uint8Array, 8, 'a')).toThrow(TypeError);
    expect(() => t.lookup(new Uint8Array(0))).toThrow(RangeError);
    expect(() => t.remove(ip('1.2.3.4'), -1, 'a')).toThrow(RangeError);
  });
});

/** The naive model: a list of prefixes, longest match by linear scan. */
class LinearTable {
  entries: Array<{ bytes: Uint8Array; cidr: number; value: number }> = [];
  static mask(address: Uint8Array, cidr: number): Uint8Array {
    const out = new Uint8Array(address.length);
    for (let i = 0; i < address.length; i++) {
      const keep = Math.max(0, Math.min(8, cidr - 8 * i));
      out[i] = address[i]! & ((0xff << (8 - keep)) & 0xff);
    }
    return out;
  }
  private find(bytes: Uint8Array, cidr: number): number {
    return this.entries.findIndex(
      (e) =>
        e.cidr === cidr &&
        e.bytes.length === bytes.length &&
        e.bytes.every((b, i) => b === bytes[i]),
    );
  }
  insert(address: Uint8Array, cidr: number, value: number): void {
    const bytes = LinearTable.mask(address, cidr);
    const i = this.find(bytes, cidr);
    if (i >= 0) this.entries.splice(i, 1);
    this.entries.push({ bytes, cidr, value });
  }
  remove(address: Uint8Array, cidr: number, value: number): boolean {
    const i = this.find(LinearTable.mask(address, cidr), cidr);
    if (i < 0 || this.entries[i]!.value !== value) return false;
    this.entries.splice(i, 1);
    return true;
  }
  removeValue(value: number): void {
    this.entries = this.entries.filter((e) => e.value !== value);
  }
  lookup(address: Uint8Array): number | undefined {
    let best: { cidr: number; value: number } | undefined;
    for (const e of this.entries) {
      if (e.bytes.length !== address.length) continue;
      const m = LinearTable.mask(address, e.cidr);
      if (!m.every((b, i) => b === e.bytes[i])) continue;
      if (best === undefined || e.cidr > best.cidr) best = e;
    }
    return best?.value;
  }
  entriesFor(value: number): string[] {
    return this.entries.filter((e) => e.value === value).map((e) => formatCidr(e.bytes, e.cidr));
  }
}

describe('AllowedIps against a linear scan', () => {
  // Addresses near a few bases, so that prefixes nest, split and collide often.
  const near = (len: 4 | 16, bases: number[][]) =>
    fc
      .tuple(
        fc.constantFrom(...bases),
        fc.integer({ min: 0, max: len * 8 }),
        fc.uint8Array({ minLength: len, maxLength: len }),
      )
      .map(([base, keep, noise]) => {
        const out = new Uint8Array(len);
        for (let i = 0; i < len; i++) {
          const k = Math.max(0, Math.min(8, keep - 8 * i));
          const m = (0xff << (8 - k)) & 0xff;
          out[i] = (base[i]! & m) | (noise[i]! & ~m & 0xff);
        }
        return out;
      });
  const v4 = near(4, [
    [10, 0, 0, 0],
    [192, 168, 100, 0],
    [255, 255, 255, 255],
    [0, 0, 0, 0],
    [128, 0, 0, 1],
  ]);
  const v6Bases = [
    'fd00::',
    '2001:db8::1',
    '::',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    '::ffff:10.0.0.1',
  ];
  const v6 = near(
    16,
    v6Bases.map((s) => Array.from(ip(s))),
  );
  const addr = fc.oneof(v4, v6);
  const value = fc.integer({ min: 0, max: 5 });
  const cidrFor = (a: Uint8Array) => fc.integer({ min: 0, max: a.length * 8 });
  const op = fc.oneof(
    {
      weight: 5,
      arbitrary: addr.chain((a) =>
        fc.record({
          k: fc.constant('insert' as const),
          a: fc.constant(a),
          cidr: cidrFor(a),
          v: value,
        }),
      ),
    },
    {
      weight: 2,
      arbitrary: addr.chain((a) =>
        fc.record({
          k: fc.constant('remove' as const),
          a: fc.constant(a),
          cidr: cidrFor(a),
          v: value,
        }),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        k: fc.constant('removeEntry' as const),
        i: fc.nat(),
        right: fc.boolean(),
      }),
    },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('removeValue' as const), v: value }) },
    { weight: 4, arbitrary: fc.record({ k: fc.constant('lookup' as const), a: addr }) },
  );

  test('property: random inserts, removes, removeValue and lookups agree', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 80 }),
        fc.array(addr, { maxLength: 40 }),
        (ops, probes) => {
          const t = new AllowedIps<number>();
          const m = new LinearTable();
          for (const o of ops) {
            switch (o.k) {
              case 'insert':
                t.insert(o.a, o.cidr, o.v);
                m.insert(o.a, o.cidr, o.v);
                break;
              case 'remove':
                expect(t.remove(o.a, o.cidr, o.v)).toBe(m.remove(o.a, o.cidr, o.v));
                break;
              case 'removeEntry': {
                const e = m.entries[o.i % Math.max(1, m.entries.length)];
                if (e === undefined) break;
                const v = o.right ? e.value : e.value + 1;
                // remove with the host bits set: they must be ignored
                const withHostBits = e.bytes.map((b, i) => b | (i * 8 >= e.cidr ? 0x5a : 0));
                expect(t.remove(withHostBits, e.cidr, v)).toBe(m.remove(withHostBits, e.cidr, v));
                break;
              }
              case 'removeValue':
                t.removeValue(o.v);
                m.removeValue(o.v);
                break;
              case 'lookup':
                expect(t.lookup(o.a)).toBe(m.lookup(o.a));
                break;
            }
            expect(t.size).toBe(m.entries.length);
          }
          t.debugCheck();
          const allProbes = [...probes, ...m.entries.map((e) => e.bytes)];
          for (const p of allProbes) expect(t.lookup(p)).toBe(m.lookup(p));
          for (let v = 0; v <= 5; v++) {
            expect(texts(t, v)).toEqual(m.entriesFor(v));
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  test('kernel-style randomized test: mutated routes, many queries, removal peer by peer', () => {
    // A small version of selftest/allowedips.c randomized_test, with a seeded generator.
    let seed = 0x1234_5678;
    const rand = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => rand() & 0xff);
    const peers = 40;
    const t = new AllowedIps<number>();
    const m = new LinearTable();
    for (const len of [4, 16]) {
      for (let i = 0; i < 40; i++) {
        const base = bytes(len);
        const cidr = (rand() % (len * 8)) + 1;
        const peer = rand() % peers;
        t.insert(base, cidr, peer);
        m.insert(base, cidr, peer);
        for (let j = 0; j < 12; j++) {
          const keep = rand() % (len * 8);
          const mutated = LinearTable.mask(base, keep);
          const noise = bytes(len);
          const hostMask = LinearTable.mask(new Uint8Array(len).fill(0xff), keep);
          for (let k = 0; k < len; k++) mutated[k]! |= noise[k]! & ~hostMask[k]! & 0xff;
          const c = (rand() % (len * 8)) + 1;
          const p = rand() % peers;
          t.insert(mutated, c, p);
          m.insert(mutated, c, p);
        }
      }
    }
    t.debugCheck();
    const probe = () => {
      for (let q = 0; q < 150; q++) {
        const a4 = bytes(4);
        const a6 = bytes(16);
        if (t.lookup(a4) !== m.lookup(a4) || t.lookup(a6) !== m.lookup(a6)) return false;
      }
      for (const e of m.entries) if (t.lookup(e.bytes) !== m.lookup(e.bytes)) return false;
      return true;
    };
    for (let p = 0; p < peers; p++) {
      expect(probe()).toBe(true);
      t.removeValue(p);
      m.removeValue(p);
      t.debugCheck();
    }
    expect(t.size).toBe(0);
    expect(t.debugCheck()).toBe(0);
  });
});

describe('parseCidr into AllowedIps', () => {
  test('wg-style text round trip through the table', () => {
    const t = new AllowedIps<string>();
    for (const s of ['10.8.0.0/16', '192.168.100.0/24', 'fd00:8::/64', '0.0.0.0/0']) {
      const p = parseCidr(s)!;
      t.insert(p.address, p.cidr, 'peer');
    }
    expect(texts(t, 'peer')).toEqual([
      '10.8.0.0/16',
      '192.168.100.0/24',
      'fd00:8::/64',
      '0.0.0.0/0',
    ]);
  });
});
