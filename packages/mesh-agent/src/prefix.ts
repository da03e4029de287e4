/**
 * CIDR arithmetic the agent needs to turn allowed IPs into routes: canonical form (host bits
 * cleared, RFC 4632 §3.1) and containment of one prefix in another. Built on wg-core's parsers.
 */
import { formatCidr, parseCidr, parseIp } from '@wiremesh/wg-core';

const BITS_PER_BYTE = 8;
const BYTE_MASK = 0xff;

function masked(address: Uint8Array, cidr: number): Uint8Array {
  const out = new Uint8Array(address);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.min(BITS_PER_BYTE, Math.max(0, cidr - i * BITS_PER_BYTE));
    out[i] = out[i]! & ((BYTE_MASK << (BITS_PER_BYTE - keep)) & BYTE_MASK);
  }
  return out;
}

/**
 * The canonical text of a prefix: host bits cleared, RFC 5952 IPv6 ("10.8.0.5/16" -> "10.8.0.0/16").
 * A bare address becomes a host prefix (/32 or /128). Returns null (never throws) for bad text.
 */
export function canonicalCidr(text: string): string | null {
  const p = parseCidr(text);
  if (p !== null) return formatCidr(masked(p.address, p.cidr), p.cidr);
  const a = parseIp(text);
  return a === null ? null : formatCidr(a, a.length * BITS_PER_BYTE);
}

/** Whether `text` is an IPv6 prefix or address (by its text; no validation). */
export function isIpv6(text: string): boolean {
  return text.includes(':');
}

/**
 * Whether prefix `inner` lies inside prefix `outer` (same family, outer no longer, same leading
 * bits). Returns false for unparsable text; never throws.
 */
export function cidrContains(outer: string, inner: string): boolean {
  const o = parseCidr(outer);
  const i = parseCidr(inner);
  if (o === null || i === null || o.address.length !== i.address.length || o.cidr > i.cidr)
    return false;
  const a = masked(o.address, o.cidr);
  const b = masked(i.address, o.cidr);
  return a.every((byte, k) => byte === b[k]);
}
