/**
 * IP address and prefix text, as wg's allowed-ips and endpoints use it: strict dotted-quad IPv4
 * (RFC 791 text without octal or shorthand), IPv6 text (RFC 4291 §2.2) printed canonically (RFC 5952).
 */

/** Bytes of an IPv4 address. */
export const IPV4_LEN = 4;
/** Bytes of an IPv6 address. */
export const IPV6_LEN = 16;
const IPV4_BITS = IPV4_LEN * 8;
const IPV6_BITS = IPV6_LEN * 8;
const IPV6_GROUPS = 8;
const HEX_DIGITS_PER_GROUP = 4;
const DEC_DIGITS_PER_OCTET = 3;
const OCTET_MAX = 255;
const GROUP_MAX = 0xffff;
/** "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255": nothing longer can be an address. */
const MAX_ADDRESS_TEXT = 45;
const MAX_PREFIX_DIGITS = 3;
/** The IPv4-mapped prefix ::ffff:0:0/96 is printed with its IPv4 part dotted (RFC 5952 §5). */
const MAPPED_MARKER_GROUP = 5;

const CH_0 = 0x30;
const CH_9 = 0x39;
const CH_A_LOWER = 0x61;
const CH_F_LOWER = 0x66;
const CH_A_UPPER = 0x41;
const CH_F_UPPER = 0x46;
const CH_DOT = 0x2e;

/** An address with a prefix length: the unit of allowed-ips and routes. */
export interface IpPrefix {
  readonly address: Uint8Array;
  readonly cidr: number;
}

function hexValue(code: number): number {
  if (code >= CH_0 && code <= CH_9) return code - CH_0;
  if (code >= CH_A_LOWER && code <= CH_F_LOWER) return code - CH_A_LOWER + 10;
  if (code >= CH_A_UPPER && code <= CH_F_UPPER) return code - CH_A_UPPER + 10;
  return -1;
}

/** A decimal number of 1..maxDigits digits without leading zeros, or -1. */
function parseDecimal(text: string, maxDigits: number): number {
  const n = text.length;
  if (n === 0 || n > maxDigits) return -1;
  if (n > 1 && text.charCodeAt(0) === CH_0) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < CH_0 || c > CH_9) return -1;
    v = v * 10 + (c - CH_0);
  }
  return v;
}

/** Writes a dotted quad into out[at..at+4]; false if the text is not exactly one. */
function parseV4Into(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split('.');
  if (parts.length !== IPV4_LEN) return false;
  for (let i = 0; i < IPV4_LEN; i++) {
    const v = parseDecimal(parts[i]!, DEC_DIGITS_PER_OCTET);
    if (v < 0 || v > OCTET_MAX) return false;
    out[at + i] = v;
  }
  return true;
}

/** Appends the 16-bit groups of `pieces` to `groups`; false on a malformed piece. */
function parseGroups(pieces: string[], groups: number[], allowV4Last: boolean): boolean {
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i]!;
    if (piece.includes('.')) {
      if (!allowV4Last || i !== pieces.length - 1) return false;
      const v4 = new Uint8Array(IPV4_LEN);
      if (!parseV4Into(piece, v4, 0)) return false;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      continue;
    }
    if (piece.length === 0 || piece.length > HEX_DIGITS_PER_GROUP) return false;
    let v = 0;
    for (let j = 0; j < piece.length; j++) {
      const h = hexValue(piece.charCodeAt(j));
      if (h < 0) return false;
      v = (v << 4) | h;
    }
    groups.push(v);
  }
  return true;
}

function parseV6(text: string): Uint8Array | null {
  const gap = text.indexOf('::');
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) return null;
  const headText = gap === -1 ? text : text.slice(0, gap);
  const tailText = gap === -1 ? '' : text.slice(gap + 2);
  const head: number[] = [];
  const tail: number[] = [];
  if (headText !== '' && !parseGroups(headText.split(':'), head, gap === -1)) return null;
  if (tailText !== '' && !parseGroups(tailText.split(':'), tail, true)) return null;
  const count = head.length + tail.length;
  // "::" stands for one or more zero groups (RFC 4291 §2.2).
  if (gap === -1 ? count !== IPV6_GROUPS : count > IPV6_GROUPS - 1) return null;
  const out = new Uint8Array(IPV6_LEN);
  for (let i = 0; i < head.length; i++) {
    out[2 * i] = head[i]! >> 8;
    out[2 * i + 1] = head[i]! & OCTET_MAX;
  }
  const tailStart = IPV6_GROUPS - tail.length;
  for (let i = 0; i < tail.length; i++) {
    out[2 * (tailStart + i)] = tail[i]! >> 8;
    out[2 * (tailStart + i) + 1] = tail[i]! & OCTET_MAX;
  }
  return out;
}

/**
 * Parses an IPv4 dotted quad (exactly four decimal octets, no leading zeros) or IPv6 text (with
 * optional "::" and a trailing embedded dotted quad; no zone index). Returns fresh 4 or 16 bytes
 * owned by the caller, or null for anything else. Never throws, whatever `text` is.
 */
export function parseIp(text: string): Uint8Array | null {
  if (typeof text !== 'string' || text.length > MAX_ADDRESS_TEXT) return null;
  if (text.includes(':')) return parseV6(text);
  const out = new Uint8Array(IPV4_LEN);
  return parseV4Into(text, out, 0) ? out : null;
}

function formatV4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * Formats 4 bytes as a dotted quad or 16 bytes as RFC 5952 canonical IPv6: lowercase, no leading
 * zeros, the first longest run of two or more zero groups as "::", and IPv4-mapped addresses as
 * "::ffff:a.b.c.d". Throws TypeError if `bytes` is not a Uint8Array, RangeError if not 4 or 16 long.
 */
export function formatIp(bytes: Uint8Array): string {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('address must be a Uint8Array');
  if (bytes.length === IPV4_LEN) return formatV4(bytes, 0);
  if (bytes.length !== IPV6_LEN)
    throw new RangeError(`address must be 4 or 16 bytes, got ${bytes.length}`);
  const groups: number[] = [];
  for (let i = 0; i < IPV6_GROUPS; i++) groups.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let mapped = groups[MAPPED_MARKER_GROUP] === GROUP_MAX;
  for (let i = 0; i < MAPPED_MARKER_GROUP; i++) mapped &&= groups[i] === 0;
  if (mapped) return `::ffff:${formatV4(bytes, IPV6_LEN - IPV4_LEN)}`;
  return formatIpv6Groups(groups);
}

/**
 * Formats eight 16-bit groups as RFC 5952 §4 IPv6 text: lowercase, no leading zeros, the first
 * longest run of two or more zero groups as "::". Unlike `formatIp` it never prints a dotted IPv4
 * tail. Throws RangeError if `groups` is not eight integers in 0..0xffff.
 */
export function formatIpv6Groups(groups: readonly number[]): string {
  if (
    groups.length !== IPV6_GROUPS ||
    !groups.every((g) => Number.isInteger(g) && g >= 0 && g <= GROUP_MAX)
  )
    throw new RangeError(`IPv6 needs ${IPV6_GROUPS} groups in 0..0xffff`);
  let bestStart = -1;
  let bestLen = 1; // a lone zero group is never shortened (RFC 5952 §4.2.2)
  for (let i = 0; i < IPV6_GROUPS;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < IPV6_GROUPS && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    groups
      .slice(from, to)
      .map((g) => g.toString(16))
      .join(':');
  if (bestStart < 0) return hex(0, IPV6_GROUPS);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, IPV6_GROUPS)}`;
}

/**
 * Parses "address/cidr" ("10.0.0.0/8", "fd00::/64"). The prefix length is required (a bare
 * address is null, not /32 or /128), decimal without leading zeros, at most 32 or 128. Host bits
 * are kept as written (AllowedIps.insert masks them). Returns fresh bytes, or null; never throws.
 */
export function parseCidr(text: string): IpPrefix | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const address = parseIp(text.slice(0, slash));
  if (address === null) return null;
  const cidr = parseDecimal(text.slice(slash + 1), MAX_PREFIX_DIGITS);
  if (cidr < 0 || cidr > (address.length === IPV4_LEN ? IPV4_BITS : IPV6_BITS)) return null;
  return { address, cidr };
}

/**
 * Formats a prefix as "address/cidr" with `formatIp`. Throws as `formatIp` does, and RangeError if
 * `cidr` is not an integer in 0..32 (IPv4) or 0..128 (IPv6).
 */
export function formatCidr(address: Uint8Array, cidr: number): string {
  const text = formatIp(address);
  const max = address.length === IPV4_LEN ? IPV4_BITS : IPV6_BITS;
  if (!Number.isInteger(cidr) || cidr < 0 || cidr > max) {
    throw new RangeError(`cidr must be an integer in 0..${max}, got ${cidr}`);
  }
  return `${text}/${cidr}`;
}
