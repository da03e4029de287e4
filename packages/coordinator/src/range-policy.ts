/**
 * Which address ranges a network may use (RFC 6890 special-purpose registries): private space
 * (RFC 1918, RFC 6598 shared space) by default, public space only when asked, special ranges
 * never; ranges of two networks on one coordinator do not overlap unless asked; an egress range
 * does not overlap the mesh it is routed into.
 */
import { ipv4ToInt, ipv6ToBigInt, type Ipv4Range, type Ipv6Range } from './ip-pool.js';

const IPV4_BITS = 32;
const IPV6_BITS = 128;

/** Private IPv4 space a mesh may use without asking: RFC 1918 and RFC 6598 (100.64.0.0/10). */
const PRIVATE_IPV4: readonly string[] = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '100.64.0.0/10',
];

/** IPv4 ranges no mesh may touch: this network, loopback, link-local, multicast, reserved. */
const SPECIAL_IPV4: readonly { cidr: string; what: string }[] = [
  { cidr: '0.0.0.0/8', what: '"this network" (0.0.0.0/8)' },
  { cidr: '127.0.0.0/8', what: 'loopback (127.0.0.0/8)' },
  { cidr: '169.254.0.0/16', what: 'link-local (169.254.0.0/16)' },
  { cidr: '224.0.0.0/4', what: 'multicast (224.0.0.0/4)' },
  { cidr: '240.0.0.0/4', what: 'reserved and broadcast (240.0.0.0/4)' },
];

function v4(cidr: string): Ipv4Range {
  const [ip, len] = cidr.split('/');
  return { base: ipv4ToInt(ip ?? '') ?? 0, prefix: Number(len) };
}

const size4 = (r: Ipv4Range): number => 2 ** (IPV4_BITS - r.prefix);
const size6 = (r: Ipv6Range): bigint => 1n << BigInt(IPV6_BITS - r.prefix);

/** Whether two IPv4 ranges share an address. */
export function overlaps4(a: Ipv4Range, b: Ipv4Range): boolean {
  return a.base < b.base + size4(b) && b.base < a.base + size4(a);
}

/** Whether two IPv6 ranges share an address. */
export function overlaps6(a: Ipv6Range, b: Ipv6Range): boolean {
  return a.base < b.base + size6(b) && b.base < a.base + size6(a);
}

const inside4 = (inner: Ipv4Range, outer: Ipv4Range): boolean =>
  inner.base >= outer.base && inner.base + size4(inner) <= outer.base + size4(outer);

/**
 * Why a network may not use the IPv4 range `r` (text for validation_failed), or null when it
 * may. Public space needs `allowPublic`; special-purpose space is never allowed.
 */
export function networkRangeProblem(
  cidr: string,
  r: Ipv4Range,
  allowPublic: boolean,
): string | null {
  for (const s of SPECIAL_IPV4)
    if (overlaps4(r, v4(s.cidr)))
      return `${cidr} overlaps ${s.what}; use private space such as 10.8.0.0/16`;
  if (PRIVATE_IPV4.some((p) => inside4(r, v4(p))) || allowPublic) return null;
  return `${cidr} is public address space, where the mesh would hide real hosts; use private space (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10), or allow it with --allow-public-range (allowPublicRange) if this space is yours`;
}

/**
 * Why a gateway may not route `ranges` (canonical CIDRs) into a mesh with `mesh` ranges, or null.
 * A range overlapping the mesh would steal its addresses; a default route (/0) is the one
 * exception, since the longer mesh prefixes still win.
 */
export function egressRangeProblem(
  ranges: readonly string[],
  mesh: { v4: Ipv4Range; v6: Ipv6Range | null },
): string | null {
  for (const cidr of ranges) {
    const [ip, len] = cidr.split('/');
    const prefix = Number(len);
    if (prefix === 0) continue;
    if (cidr.includes(':')) {
      if (mesh.v6 === null) continue;
      const base = ipv6ToBigInt(ip ?? '');
      if (base !== null && overlaps6({ base, prefix }, mesh.v6))
        return `egress range ${cidr} overlaps the mesh's own IPv6 prefix; route only the LAN behind the gateway`;
    } else if (overlaps4(v4(cidr), mesh.v4)) {
      return `egress range ${cidr} overlaps the mesh's own range; route only the LAN behind the gateway`;
    }
  }
  return null;
}
