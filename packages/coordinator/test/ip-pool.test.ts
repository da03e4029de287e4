import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bigIntToIpv6,
  canonicalCidr,
  ipv4At,
  ipv6At,
  ipv6ToBigInt,
  isProblem,
  lastHostIndex,
  normalizeRange,
  parseNetworkIpv4,
  parseNetworkIpv6,
} from '../src/ip-pool.js';

describe('overlay address arithmetic', () => {
  it('parses and formats IPv6 in RFC 5952 form', () => {
    expect(bigIntToIpv6(ipv6ToBigInt('FD00:0008:0:0:0:0:0:1') as bigint)).toBe('fd00:8::1');
    expect(bigIntToIpv6(ipv6ToBigInt('::') as bigint)).toBe('::');
    expect(bigIntToIpv6(ipv6ToBigInt('1:0:0:2:0:0:0:3') as bigint)).toBe('1:0:0:2::3');
    expect(bigIntToIpv6(ipv6ToBigInt('1:0:2:3:4:5:6:7') as bigint)).toBe('1:0:2:3:4:5:6:7');
    expect(bigIntToIpv6(ipv6ToBigInt('::ffff:1.2.3.4') as bigint)).toBe('::ffff:102:304');
    expect(ipv6ToBigInt('1::2::3')).toBeNull();
    expect(ipv6ToBigInt('12345::')).toBeNull();
    expect(ipv6ToBigInt('1:2:3:4:5:6:7')).toBeNull();
  });

  it('round-trips every 128-bit value', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (n) => {
        expect(ipv6ToBigInt(bigIntToIpv6(n))).toBe(n);
      }),
    );
  });

  it('accepts usable network ranges and explains the others', () => {
    expect(parseNetworkIpv4('10.8.0.0/16')).toEqual({ base: 0x0a080000, prefix: 16 });
    expect(parseNetworkIpv4('10.8.0.1/16')).toContain('host bits');
    expect(parseNetworkIpv4('10.8.0.0/31')).toContain('too small');
    expect(isProblem(parseNetworkIpv4('10.8.0/16'))).toBe(true);
    expect(isProblem(parseNetworkIpv6('fd00:8::/64'))).toBe(false);
    expect(parseNetworkIpv6('2001:db8::/64')).toContain('unique local');
    expect(parseNetworkIpv6('fd00::/48')).toContain('between');
    expect(parseNetworkIpv6('fd00::1/64')).toContain('host bits');
  });

  it('maps host indexes to the same host part in both families and bounds the range', () => {
    const v4 = parseNetworkIpv4('10.8.0.0/24');
    const v6 = parseNetworkIpv6('fd00:8::/120');
    if (isProblem(v4) || isProblem(v6)) throw new Error('unreachable');
    expect(ipv4At(v4, 1)).toBe('10.8.0.1');
    expect(ipv4At(v4, 254)).toBe('10.8.0.254');
    expect(ipv6At(v6, 254)).toBe('fd00:8::fe');
    expect(lastHostIndex(v4, null)).toBe(254);
    expect(lastHostIndex(v4, v6)).toBe(254);
    const wide = parseNetworkIpv4('10.0.0.0/8');
    if (isProblem(wide)) throw new Error('unreachable');
    expect(lastHostIndex(wide, v6)).toBe(255);
  });

  it('normalizes routed ranges and refuses host bits', () => {
    expect(normalizeRange('192.168.100.0/24')).toEqual({ cidr: '192.168.100.0/24' });
    expect(normalizeRange('FD00:1:0::/48')).toEqual({ cidr: 'fd00:1::/48' });
    expect(normalizeRange('0.0.0.0/0')).toEqual({ cidr: '0.0.0.0/0' });
    expect(normalizeRange('192.168.100.1/24')).toEqual({
      problem: '192.168.100.1/24 has host bits set',
    });
    expect('problem' in normalizeRange('192.168.100.0/33')).toBe(true);
    expect(canonicalCidr('x/1')).toBeNull();
  });
});
