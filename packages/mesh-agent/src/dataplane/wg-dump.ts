/**
 * Readers for what the host reports: `wg show IFACE dump` (wg(8) "dump": tab-separated, one line
 * for the interface, one per peer) and iproute2's JSON (`ip -j`). Pure and total: malformed text
 * gives empty results, never an exception. The private and preshared keys are never kept. The
 * system tests' harness reads dumps with this parser too (test/harness/wg-dump.ts).
 */
import type { ObservedPeer } from '../reconcile/diff.js';
import { canonicalCidr } from '../prefix.js';

/** The interface line of a dump, without its private key. */
export interface DumpInterface {
  /** Base64, or null when the interface has no private key yet. */
  readonly publicKey: string | null;
  readonly listenPort: number;
  /** The firewall mark, or null for `off`. */
  readonly fwmark: number | null;
}

/** A peer line of a dump: what the agent observes, and whether a preshared key is set (never the key). */
export interface DumpPeer extends ObservedPeer {
  readonly hasPresharedKey: boolean;
}

/** A parsed dump. */
export interface WgDump {
  readonly device: DumpInterface;
  readonly peers: readonly DumpPeer[];
}

const NONE = '(none)';
const OFF = 'off';

function num(text: string | undefined): number {
  const n = Number(text);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

/** Parses `wg show IFACE dump` output. Returns null when there is no interface line. */
export function parseWgDump(text: string): WgDump | null {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const first = lines[0]?.split('\t');
  if (first === undefined || first.length < 4) return null;
  const device: DumpInterface = {
    publicKey: first[1] === NONE || first[1] === undefined ? null : first[1],
    listenPort: num(first[2]),
    fwmark: first[3] === OFF || first[3] === undefined ? null : num(first[3]),
  };
  const peers: DumpPeer[] = [];
  for (const line of lines.slice(1)) {
    const f = line.split('\t');
    if (f.length < 8) continue;
    const allowed = f[3] === NONE || f[3] === undefined ? [] : f[3].split(',');
    peers.push({
      publicKey: f[0] ?? '',
      hasPresharedKey: f[1] !== NONE && f[1] !== undefined,
      endpoint: f[2] === NONE || f[2] === undefined ? null : f[2],
      allowedIps: allowed.map((c) => canonicalCidr(c) ?? c).sort(),
      latestHandshakeS: num(f[4]),
      rxBytes: num(f[5]),
      txBytes: num(f[6]),
      persistentKeepalive: f[7] === OFF ? 0 : num(f[7]),
    });
  }
  return { device, peers };
}

/** The link facts of `ip -j -d addr show dev IFACE`. */
export interface LinkInfo {
  readonly up: boolean;
  readonly mtu: number | null;
  /** `addr/len` of global-scope addresses, sorted. */
  readonly addresses: readonly string[];
  /** The kernel's link kind (`wireguard`, `tun`), or null. */
  readonly kind: string | null;
}

function parseJsonArray(text: string): unknown[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function rec(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
}

/** Parses `ip -j -d addr show dev IFACE`. Returns null when the output names no link. */
export function parseIpAddr(text: string): LinkInfo | null {
  const link = parseJsonArray(text)[0];
  if (link === undefined) return null;
  const l = rec(link);
  const flags = Array.isArray(l['flags']) ? (l['flags'] as unknown[]) : [];
  const addresses: string[] = [];
  for (const a of Array.isArray(l['addr_info']) ? (l['addr_info'] as unknown[]) : []) {
    const r = rec(a);
    if (r['scope'] === 'link' || r['scope'] === 'host') continue;
    if (typeof r['local'] === 'string' && typeof r['prefixlen'] === 'number') {
      addresses.push(`${r['local']}/${r['prefixlen']}`);
    }
  }
  const kind = rec(l['linkinfo'])['info_kind'];
  return {
    up: flags.includes('UP'),
    mtu: typeof l['mtu'] === 'number' ? l['mtu'] : null,
    addresses: addresses.sort(),
    kind: typeof kind === 'string' ? kind : null,
  };
}

/** Parses `ip -j route show ...` into canonical destination prefixes (default -> /0), sorted. */
export function parseIpRoutes(text: string, family: 4 | 6): string[] {
  const out: string[] = [];
  for (const r of parseJsonArray(text)) {
    const dst = rec(r)['dst'];
    if (typeof dst !== 'string') continue;
    const c = dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : canonicalCidr(dst);
    if (c !== null) out.push(c);
  }
  return out.sort();
}
