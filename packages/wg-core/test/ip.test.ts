import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { formatCidr, formatIp, formatIpv6Groups, parseCidr, parseIp } from '../src/ip.js';

/** Node's own parser and WHATWG's IPv6 serializer (RFC 5952 compression, no dotted tail) as oracles. */
const nodeAccepts = (s: string) => isIP(s) !== 0 && !s.includes('%');
const whatwgV6 = (bytes: Uint8Array) => {
  const groups = Array.from({ length: 8 }, (_, i) =>
    ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16),
  );
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
};
const isMapped = (b: Uint8Array) =>
  b.length === 16 && b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;

describe('parseIp', () => {
  test('accepts strict dotted quads and IPv6 text', () => {
    expect(parseIp('0.0.0.0')).toEqual(new Uint8Array(4));
    expect(parseIp('10.8.0.1')).toEqual(new Uint8Array([10, 8, 0, 1]));
    expect(parseIp('255.255.255.255')).toEqual(new Uint8Array([255, 255, 255, 255]));
    expect(parseIp('::')).toEqual(new Uint8Array(16));
    expect(parseIp('::1')).toEqual(Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? 1 : 0)));
    expect(parseIp('FD00:0DB8::A')).toEqual(parseIp('fd00:db8::a'));
    expect(parseIp('1:2:3:4:5:6:7::')).toEqual(parseIp('1:2:3:4:5:6:7:0'));
    expect(parseIp('::2:3:4:5:6:7:8')).toEqual(parseIp('0:2:3:4:5:6:7:8'));
    expect(parseIp('::ffff:192.0.2.1')!.subarray(10)).toEqual(
      new Uint8Array([0xff, 0xff, 192, 0, 2, 1]),
    );
    expect(parseIp('1:2:3:4:5:6:1.2.3.4')).toEqual(parseIp('1:2:3:4:5:6:102:304'));
  });

  test('rejects malformed text', () => {
    for (const s of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '1.2.3.00',
      '256.0.0.0',
      '1..2.3',
      ' 1.2.3.4',
      '1.2.3.4 ',
      '0x1.2.3.4',
      '1.2.3.-4',
      '+1.2.3.4',
      '1e2.0.0.0',
      '١.2.3.4',
      '1.2.3.4/32',
      ':',
      ':::',
      '1::2::3',
      ':1::',
      '::1:',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7::8',
      '12345::',
      'g::',
      'fe80::1%eth0',
      '[::1]',
      '::1.2.3.04',
      '::1.2.3',
      '1.2.3.4::',
      '::1.2.3.4:1',
      '1:2:3:4:5:6:7:1.2.3.4',
      '1:2:3:4:5:6::1.2.3.4',
      '0000000000000000000000000000000000000000000000::',
    ]) {
      expect([s, parseIp(s)]).toEqual([s, null]);
    }
  });

  test('property: never throws; accepts exactly what node:net accepts (zones aside); bytes match', () => {
    const ipish = fc.string({
      unit: fc.constantFrom(...'0123456789abcdefABCDEF:.:.:.%x '.split('')),
      maxLength: 48,
    });
    fc.assert(
      fc.property(fc.oneof(fc.string(), ipish, fc.ipV4(), fc.ipV6(), fc.ipV4Extended()), (s) => {
        const b = parseIp(s);
        expect(b !== null).toBe(nodeAccepts(s));
        if (b !== null && b.length === 16) {
          // the same bytes as the WHATWG parser reads, printed as its serializer prints them
          expect(new URL(`http://[${s}]/`).hostname.slice(1, -1)).toBe(whatwgV6(b));
          if (!isMapped(b)) expect(formatIp(b)).toBe(whatwgV6(b));
        }
      }),
      { numRuns: 3000 },
    );
  });

  test('never throws on non-strings', () => {
    expect(parseIp(undefined as unknown as string)).toBeNull();
    expect(parseIp(42 as unknown as string)).toBeNull();
    expect(parseCidr(null as unknown as string)).toBeNull();
  });
});

describe('formatIp', () => {
  test('RFC 5952 canonical forms', () => {
    const cases: Array<[string, string]> = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a lone zero group stays
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of equal runs
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['ABCD:EF01::', 'abcd:ef01::'],
      ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'],
      ['::ffff:0:0', '::ffff:0.0.0.0'],
      ['::1.2.3.4', '::102:304'], // only the mapped prefix is printed dotted
      ['64:ff9b::c000:201', '64:ff9b::c000:201'],
    ];
    for (const [input, want] of cases) expect(formatIp(parseIp(input)!)).toBe(want);
    expect(formatIp(new Uint8Array([192, 168, 100, 1]))).toBe('192.168.100.1');
  });

  test('formatIpv6Groups: the same RFC 5952 text, but a mapped address stays in hex groups', () => {
    expect(formatIpv6Groups([0, 0, 0, 0, 0, 0xffff, 0x102, 0x304])).toBe('::ffff:102:304');
    expect(formatIpv6Groups([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])).toBe('2001:db8::1:0:0:1');
    expect(() => formatIpv6Groups([0, 0, 0, 0, 0, 0, 0])).toThrow(RangeError);
    expect(() => formatIpv6Groups([0, 0, 0, 0, 0, 0, 0, 0x10000])).toThrow(RangeError);
  });

  test('property: random bytes round-trip and match the WHATWG serializer', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 4, maxLength: 4 }),
          fc.uint8Array({ minLength: 16, maxLength: 16 }),
          // mostly-zero addresses exercise "::" placement
          fc
            .array(fc.constantFrom(0, 0, 0, 1, 0xffff), { minLength: 8, maxLength: 8 })
            .map((g) => Uint8Array.from(g.flatMap((x) => [x >> 8, x & 0xff]))),
        ),
        (b) => {
          const s = formatIp(b);
          expect(parseIp(s)).toEqual(b);
          if (b.length === 16 && !isMapped(b)) expect(s).toBe(whatwgV6(b));
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('throws on wrong input', () => {
    expect(() => formatIp(new Uint8Array(5))).toThrow(RangeError);
    expect(() => formatIp('1.2.3.4' as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('parseCidr / formatCidr', () => {
  test('parses explicit prefixes, keeps host bits', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: new Uint8Array([10, 0, 0, 0]), cidr: 8 });
    expect(parseCidr('10.1.2.3/8')).toEqual({ address: new Uint8Array([10, 1, 2, 3]), cidr: 8 });
    expect(parseCidr('fd00::/64')).toEqual({ address: parseIp('fd00::'), cidr: 64 });
    expect(parseCidr('0.0.0.0/0')!.cidr).toBe(0);
    expect(parseCidr('::/0')!.cidr).toBe(0);
    expect(parseCidr('::1/128')!.cidr).toBe(128);
  });

  test('rejects bare addresses and malformed prefixes', () => {
    for (const s of [
      '10.0.0.1',
      'fd00::',
      '10.0.0.0/',
      '10.0.0.0/33',
      '10.0.0.0/08',
      '10.0.0.0/-1',
      '10.0.0.0/+8',
      '10.0.0.0/8/8',
      '10.0.0.0/ 8',
      'fd00::/129',
      'fd00::/1000',
      '/8',
      '10.0.0.0/8 ',
    ]) {
      expect([s, parseCidr(s)]).toEqual([s, null]);
    }
  });

  test('property: never throws; formatCidr(parseCidr(x)) re-parses to the same prefix', () => {
    const cidrish = fc.string({
      unit: fc.constantFrom(...'0123456789abcdef:./'.split('')),
      maxLength: 50,
    });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          cidrish,
          fc.tuple(fc.ipV6(), fc.nat(140)).map(([a, n]) => `${a}/${n}`),
        ),
        (s) => {
          const p = parseCidr(s);
          if (p !== null) expect(parseCidr(formatCidr(p.address, p.cidr))).toEqual(p);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('formatCidr', () => {
    expect(formatCidr(new Uint8Array([10, 8, 0, 0]), 16)).toBe('10.8.0.0/16');
    expect(formatCidr(parseIp('fd00::')!, 64)).toBe('fd00::/64');
    expect(() => formatCidr(new Uint8Array(4), 33)).toThrow(RangeError);
    expect(() => formatCidr(new Uint8Array(16), -1)).toThrow(RangeError);
  });
});
