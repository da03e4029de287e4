/**
 * Overlay address arithmetic: a network's IPv4 range and optional IPv6 ULA prefix share one
 * space of host indexes (index i is base+i in both), so a node has the same host part in both
 * families. Allocation itself (no duplicates under concurrency) is the store's job.
 */
import { formatIpv6Groups, IPV4_LEN, IPV6_LEN, parseIp } from '@wiremesh/wg-core';
import { MAX_IPV4_PREFIX, MAX_IPV6_PREFIX, MIN_IPV6_PREFIX } from './constants.js';

const IPV4_BITS = 32;
const IPV6_BITS = 128;
const IPV6_GROUP_BITS = 16;
const IPV6_GROUPS = IPV6_BITS / IPV6_GROUP_BITS;
const BITS_PER_BYTE = 8;

/** The big-endian value of address bytes from wg-core's parser, or null for the other family. */
function bytesValue(bytes: Uint8Array | null, length: number): bigint | null {
  if (bytes === null || bytes.length !== length) return null;
  let n = 0n;
  for (const b of bytes) n = (n << BigInt(BITS_PER_BYTE)) | BigInt(b);
  return n;
}

/** Parses dotted-quad IPv4 (wg-core's strict text) into an unsigned 32-bit integer; null if malformed. */
export function ipv4ToInt(ip: string): number | null {
  const n = bytesValue(parseIp(ip), IPV4_LEN);
  return n === null ? null : Number(n);
}

/** Formats an unsigned 32-bit integer as dotted-quad IPv4. */
export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** Parses an IPv6 address (with `::` and an optional embedded IPv4 tail) into a bigint; null if malformed. */
export function ipv6ToBigInt(ip: string): bigint | null {
  return bytesValue(parseIp(ip), IPV6_LEN);
}

/**
 * Formats a 128-bit bigint as IPv6 in RFC 5952 canonical form (lower case, longest zero run as
 * `::`), always in hex groups: an IPv4-mapped address stays `::ffff:102:304`.
 */
export function bigIntToIpv6(n: bigint): string {
  const groups: number[] = [];
  for (let i = IPV6_GROUPS - 1; i >= 0; i--)
    groups.push(Number((n >> BigInt(i * IPV6_GROUP_BITS)) & 0xffffn));
  return formatIpv6Groups(groups);
}

/** A parsed network range of one family. */
export interface Ipv4Range {
  base: number;
  prefix: number;
}
/** A parsed IPv6 prefix. */
export interface Ipv6Range {
  base: bigint;
  prefix: number;
}

/** Why a CIDR was refused, for the `validation_failed` message. */
export type CidrProblem = string;

/**
 * Parses an IPv4 CIDR a network may use: host bits zero, prefix at most MAX_IPV4_PREFIX.
 * Returns the range or a problem text (never throws).
 */
export function parseNetworkIpv4(cidr: string): Ipv4Range | CidrProblem {
  const [ip, len] = cidr.split('/');
  const base = ipv4ToInt(ip ?? '');
  const prefix = Number(len);
  if (base === null || !/^\d{1,2}$/.test(len ?? '') || prefix > IPV4_BITS)
    return `${cidr} is not an IPv4 CIDR`;
  if (prefix > MAX_IPV4_PREFIX)
    return `${cidr} is too small: use a prefix of /${MAX_IPV4_PREFIX} or shorter`;
  const hostMask = prefix === 0 ? 0xffffffff : 2 ** (IPV4_BITS - prefix) - 1;
  if ((base & hostMask) >>> 0 !== 0)
    return `${cidr} has host bits set; did you mean ${intToIpv4((base - (base & hostMask)) >>> 0)}/${prefix}?`;
  return { base, prefix };
}

/**
 * Parses an IPv6 prefix a network may use: a ULA (fc00::/7), host bits zero, length
 * MIN_IPV6_PREFIX..MAX_IPV6_PREFIX. Returns the range or a problem text (never throws).
 */
export function parseNetworkIpv6(cidr: string): Ipv6Range | CidrProblem {
  const [ip, len] = cidr.split('/');
  const base = ipv6ToBigInt(ip ?? '');
  const prefix = Number(len);
  if (base === null || !/^\d{1,3}$/.test(len ?? '') || prefix > IPV6_BITS)
    return `${cidr} is not an IPv6 CIDR`;
  if (prefix < MIN_IPV6_PREFIX || prefix > MAX_IPV6_PREFIX)
    return `${cidr}: use a prefix length between /${MIN_IPV6_PREFIX} and /${MAX_IPV6_PREFIX}`;
  if (base >> BigInt(IPV6_BITS - 7) !== 0x7en)
    return `${cidr} is not a unique local (fc00::/7) prefix`;
  if ((base & ((1n << BigInt(IPV6_BITS - prefix)) - 1n)) !== 0n) return `${cidr} has host bits set`;
  return { base, prefix };
}

/** Whether a parse result is a problem text rather than a range. */
export function isProblem<T>(r: T | CidrProblem): r is CidrProblem {
  return typeof r === 'string';
}

/**
 * The usable host indexes of a network: 1 .. last, where IPv4's network and broadcast addresses
 * are excluded and the IPv6 prefix (if any) must be at least as large.
 */
export function lastHostIndex(v4: Ipv4Range, v6: Ipv6Range | null): number {
  const v4Hosts = 2 ** (IPV4_BITS - v4.prefix) - 2;
  if (v6 === null) return v4Hosts;
  const v6Bits = IPV6_BITS - v6.prefix;
  const v6Hosts = v6Bits >= IPV4_BITS ? Number.MAX_SAFE_INTEGER : 2 ** v6Bits - 1;
  return Math.min(v4Hosts, v6Hosts);
}

/** The IPv4 address of host index `i` in `v4`. */
export function ipv4At(v4: Ipv4Range, i: number): string {
  return intToIpv4((v4.base + i) >>> 0);
}

/** The IPv6 address of host index `i` in `v6`. */
export function ipv6At(v6: Ipv6Range, i: number): string {
  return bigIntToIpv6(v6.base + BigInt(i));
}

/** Canonical text of a CIDR (lower-case IPv6 in RFC 5952 form); null if malformed. */
export function canonicalCidr(cidr: string): string | null {
  const [ip, len] = cidr.split('/');
  if (ip === undefined || len === undefined || !/^\d{1,3}$/.test(len)) return null;
  const prefix = Number(len);
  if (ip.includes(':')) {
    const n = ipv6ToBigInt(ip);
    return n === null || prefix > IPV6_BITS ? null : `${bigIntToIpv6(n)}/${prefix}`;
  }
  const n = ipv4ToInt(ip);
  return n === null || prefix > IPV4_BITS ? null : `${intToIpv4(n)}/${prefix}`;
}

/**
 * Canonical form of a routed range (egress): host bits must be zero so that the route and the
 * allowed IP mean the same thing. Returns the canonical CIDR or a problem text (never throws).
 */
export function normalizeRange(cidr: string): { cidr: string } | { problem: CidrProblem } {
  const c = canonicalCidr(cidr);
  if (c === null) return { problem: `${cidr} is not a CIDR range` };
  const [ip, len] = c.split('/');
  const prefix = Number(len);
  if (c.includes(':')) {
    const n = ipv6ToBigInt(ip ?? '') ?? 0n;
    if ((n & ((1n << BigInt(IPV6_BITS - prefix)) - 1n)) !== 0n)
      return { problem: `${cidr} has host bits set` };
  } else {
    const n = ipv4ToInt(ip ?? '') ?? 0;
    const hostMask = prefix === 0 ? 0xffffffff : 2 ** (IPV4_BITS - prefix) - 1;
    if ((n & hostMask) >>> 0 !== 0) return { problem: `${cidr} has host bits set` };
  }
  return { cidr: c };
}
