// Declarative network topologies for system tests, in namespaces: an "internet" bridge carrying
// documentation addresses (RFC 5737 203.0.113.0/24, RFC 3849 2001:db8::/32), NAT routers with a
// LAN bridge each, hosts on LANs. Built on netns.ts, so everything is removed on every exit path.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import {
  check,
  createNamespace,
  deleteNamespace,
  onCleanup,
  run,
  spawnIn,
  stopProcess,
  uniqueId,
  type RunOptions,
  type RunResult,
  type TrackedProcess,
} from './netns.js';

/** The segment and namespace every public address lives on. */
export const INTERNET = 'internet';
/** The internet's IPv4 subnet (RFC 5737 TEST-NET-3); the internet namespace itself is `.1`. */
export const INTERNET_IPV4 = '203.0.113.0/24';
/** The internet's IPv6 subnet (RFC 3849 documentation prefix); the internet namespace is `::1`. */
export const INTERNET_IPV6 = '2001:db8::/64';
/** Where WireGuard userspace daemons keep their UAPI sockets (shared by every namespace). */
const WG_SOCKET_DIR = '/var/run/wireguard';
/** Linux IFNAMSIZ - 1. */
const MAX_IFNAME_BYTES = 15;
/** How long destroy() lets processes exit on SIGTERM (removing their sockets) before SIGKILL. */
const STOP_GRACE_MS = 3_000;
const STOP_POLL_MS = 50;
const HOST_UPLINK = 'eth0';
const ROUTER_UPLINK = 'wan0';
const INTERNET_BRIDGE = 'br0';
/** Host index of a segment's owner (internet namespace or LAN router): `.1` / `::1`. */
const GATEWAY_INDEX = 1;
const IPV4_BITS = 32;
const IPV6_BITS = 128;
const IPV6_GROUPS = 8;
const PREFIX_RE = /^[a-z][a-z0-9]{0,11}$/;
const NAME_RE = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;

/**
 * What a router does to traffic leaving through its WAN leg:
 * - `none`: routes, no NAT (its LAN subnets are routed to it from upstream);
 * - `masquerade`: bare MASQUERADE (keeps source ports when it can);
 * - `home`: MASQUERADE and drops unsolicited inbound (conntrack state NEW on the WAN leg);
 * - `symmetric`: MASQUERADE --random-fully (a new random public port per destination).
 */
export type NatKind = 'none' | 'masquerade' | 'home' | 'symmetric';

/** A router: a namespace with a WAN leg on its upstream segment and a bridge per LAN it owns. */
export interface RouterSpec {
  name: string;
  nat: NatKind;
  /** The segment its WAN leg plugs into: the internet (default) or a LAN name (double NAT). */
  upstream?: string;
  /** WAN addresses without prefix length; default: the next free ones on the upstream segment. */
  ipv4?: string;
  ipv6?: string;
  /** Drop conntrack state NEW arriving on the WAN leg (INPUT and FORWARD). Default: nat === 'home'. */
  dropUnsolicited?: boolean;
  /** `net.netfilter.nf_conntrack_udp_timeout` in this router, seconds (new namespaces: 30). */
  udpTimeoutS?: number;
  /** `net.netfilter.nf_conntrack_udp_timeout_stream`, seconds (new namespaces: 120). */
  udpStreamTimeoutS?: number;
  /**
   * Keep `net.bridge.bridge-nf-call-ip(6)tables` on, so traffic bridged between its LAN hosts
   * passes iptables and conntrack too (the kernel default in new namespaces). Default: off.
   */
  bridgeNetfilter?: boolean;
}

/** A LAN: a bridge inside its router's namespace; the router is the subnet's `.1` / `::1`. */
export interface LanSpec {
  name: string;
  router: string;
  /** CIDR, e.g. '192.168.1.0/24'. Two LANs may use the same subnet (they are separate networks). */
  ipv4: string;
  /** CIDR, e.g. 'fd00:1::/64'; without it the LAN is IPv4-only. NAT routers masquerade it too. */
  ipv6?: string;
}

/** A host: a namespace with one veth (`eth0`) on a LAN or on the internet. */
export interface HostSpec {
  name: string;
  /** A LAN name, or 'internet' for a public host. */
  lan: string;
  /** Addresses without prefix length; default: the next free ones on its segment. */
  ipv4?: string;
  ipv6?: string;
}

/** What buildTopology() builds. */
export interface TopologySpec {
  /** Namespace names are `<prefix>-<pid>-<random>`; 1-12 of [a-z0-9], starting with a letter. */
  prefix: string;
  routers?: RouterSpec[];
  lans?: LanSpec[];
  hosts?: HostSpec[];
}

/** A node of a built topology, as it is now (moveHost/readdress change it). */
export interface NodeInfo {
  readonly name: string;
  readonly kind: 'internet' | 'router' | 'host';
  /** Its namespace, for `ip netns exec` and the netns.ts/wgts.ts helpers. */
  readonly ns: string;
  /** The segment its uplink is on ('internet' or a LAN name); undefined for the internet itself. */
  readonly segment: string | undefined;
  /** Its uplink interface: 'eth0' (host), 'wan0' (router), 'br0' (internet). */
  readonly uplink: string;
  /** Its address on its uplink segment. */
  readonly ipv4: string;
  readonly ipv6: string | undefined;
}

/** One address/port tuple of a conntrack entry (ports absent for ICMP and others). */
export interface FlowTuple {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
}

/** One line of `conntrack -L`, parsed. */
export interface ConntrackEntry {
  proto: string;
  /** Seconds left before the entry expires. */
  timeoutS: number;
  /** TCP state (ESTABLISHED...), undefined for other protocols. */
  state: string | undefined;
  /** As the first packet arrived. */
  original: FlowTuple;
  /** As replies are expected: for a masqueraded flow, reply.dst:reply.dport is the public mapping. */
  reply: FlowTuple;
  /** e.g. ['UNREPLIED'], ['ASSURED']. */
  flags: string[];
  raw: string;
}

/** A long-running process a topology started; destroy() stops it. */
export interface TopologyProcess extends TrackedProcess {
  readonly node: string;
  readonly label: string;
}

/** A built topology. All methods taking a node name throw RangeError for an unknown one. */
export interface Topology {
  /** `<prefix>-<pid>-<random>`: names this run in logs. */
  readonly id: string;
  /** Every node: the internet, then routers, then hosts, in spec order. */
  readonly nodes: readonly string[];
  /** The node as it is now (a copy). */
  node(name: string): NodeInfo;
  /** The node's namespace name. */
  ns(name: string): string;
  /** The gateway of a LAN (its router's address on it), or the internet namespace's address. */
  gateway(segment: string): { ipv4: string; ipv6: string | undefined };
  /**
   * The address the internet sees when `name` sends: its own if it is public or behind `none`
   * routers only, else the WAN address of the outermost NAT router. (Ports are the NAT's choice.)
   */
  publicAddress(name: string): { ipv4: string; ipv6: string | undefined };
  /** Runs `cmd args` to completion in the node's namespace; resolves whatever the status. */
  exec(
    name: string,
    cmd: string,
    args?: readonly string[],
    options?: RunOptions,
  ): Promise<RunResult>;
  /** exec() that resolves with stdout and rejects (with stderr) unless the status is 0. */
  check(name: string, cmd: string, args?: readonly string[], options?: RunOptions): Promise<string>;
  /**
   * Starts `cmd args` in the node's namespace with output captured (TrackedProcess.output(), and
   * logs()); it gets a parent-death SIGKILL and is stopped by destroy(). Throws if it cannot spawn.
   */
  spawn(
    name: string,
    cmd: string,
    args?: readonly string[],
    options?: { env?: NodeJS.ProcessEnv; label?: string },
  ): TopologyProcess;
  /** Every process spawn() started, running or not. */
  processes(): readonly TopologyProcess[];
  /** The captured output of every spawned process, labelled: for failure messages. */
  logs(): string;
  /** The topology as a table: node, kind, namespace, addresses (for logs). */
  describe(): string;
  /** A router's conntrack table (`conntrack -L -p proto`), parsed. Rejects on a non-router. */
  conntrack(router: string, proto?: 'udp' | 'tcp' | 'icmp'): Promise<ConntrackEntry[]>;
  /** Empties a router's conntrack table (`conntrack -F`). */
  flushConntrack(router: string): Promise<void>;
  /** Sets a router's UDP conntrack timeouts (seconds); either may be omitted. */
  setUdpTimeouts(router: string, timeouts: { udpS?: number; streamS?: number }): Promise<void>;
  /**
   * Unplugs a host and plugs it into another segment (a LAN or the internet) with new addresses
   * (default: next free), default routes via the new gateway. Processes keep running: this is a
   * laptop changing networks. Resolves with the node as it is now.
   */
  moveHost(
    host: string,
    segment: string,
    addr?: { ipv4?: string; ipv6?: string },
  ): Promise<NodeInfo>;
  /** Gives a host new addresses on the same segment (the old ones are removed, routes kept). */
  readdress(host: string, addr: { ipv4?: string; ipv6?: string }): Promise<NodeInfo>;
  /**
   * Moves interface `link` from namespace `fromNs` into a LAN's bridge (a VM's tap: the guest is
   * then a host of that LAN) and reserves `ipv4` (default: the next free) on the LAN for the
   * device behind it, which configures that address itself. Resolves with the address, the LAN's
   * prefix length and its gateway; the link is removed with the LAN's router.
   */
  attachLink(
    segment: string,
    fromNs: string,
    link: string,
    addr?: { ipv4?: string },
  ): Promise<{ ipv4: string; prefixLength: number; gateway: string }>;
  /**
   * Stops every process in the topology's namespaces (SIGTERM, SIGKILL after a grace period),
   * deletes the namespaces (and with them every bridge and veth) and any WireGuard UAPI socket an
   * interface of these namespaces left behind. Idempotent; never rejects.
   */
  destroy(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Addresses

interface Subnet4 {
  base: number;
  len: number;
}
interface Subnet6 {
  base: bigint;
  len: number;
}

function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255))
    throw new RangeError(`not an IPv4 address: ${text}`);
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function parseIpv6(text: string): bigint {
  const halves = text.split('::');
  if (halves.length > 2) throw new RangeError(`not an IPv6 address: ${text}`);
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 1 || halves[1] === '' ? [] : halves[1]!.split(':');
  const fill = IPV6_GROUPS - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || (halves.length === 2 && fill < 1))
    throw new RangeError(`not an IPv6 address: ${text}`);
  const groups = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g)))
    throw new RangeError(`not an IPv6 address: ${text}`);
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function formatIpv6(n: bigint): string {
  const groups: string[] = [];
  for (let i = IPV6_GROUPS - 1; i >= 0; i--)
    groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  // The URL parser writes the canonical compressed form, as `wg show` and `ip` print it.
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1);
}

function parseCidr4(text: string): Subnet4 {
  const [addr, len, extra] = text.split('/');
  const bits = Number(len);
  if (extra !== undefined || !Number.isInteger(bits) || bits < 8 || bits > 30)
    throw new RangeError(`not an IPv4 subnet (/8 to /30): ${text}`);
  const base = parseIpv4(addr!);
  const size = 2 ** (IPV4_BITS - bits);
  if (base % size !== 0) throw new RangeError(`${text} has host bits set`);
  return { base, len: bits };
}

function parseCidr6(text: string): Subnet6 {
  const [addr, len, extra] = text.split('/');
  const bits = Number(len);
  if (extra !== undefined || !Number.isInteger(bits) || bits < 16 || bits > 120)
    throw new RangeError(`not an IPv6 subnet (/16 to /120): ${text}`);
  const base = parseIpv6(addr!);
  if (base & ((1n << BigInt(IPV6_BITS - bits)) - 1n))
    throw new RangeError(`${text} has host bits set`);
  return { base, len: bits };
}

/** Host addresses of one segment, allocated in order, explicit ones reserved first. */
class Pool {
  private readonly used4 = new Set<number>();
  private readonly used6 = new Set<bigint>();

  constructor(
    readonly name: string,
    readonly v4: Subnet4,
    readonly v6: Subnet6 | undefined,
  ) {}

  get cidr4(): string {
    return `${formatIpv4(this.v4.base)}/${this.v4.len}`;
  }
  get cidr6(): string | undefined {
    return this.v6 === undefined ? undefined : `${formatIpv6(this.v6.base)}/${this.v6.len}`;
  }

  /** Reserves `text` (throws if outside the subnet, the network/broadcast address, or taken). */
  take4(text: string): string {
    const n = parseIpv4(text);
    const index = n - this.v4.base;
    const size = 2 ** (IPV4_BITS - this.v4.len);
    if (index <= 0 || index >= size - 1)
      throw new RangeError(`${text} is not a host address of ${this.name} (${this.cidr4})`);
    if (this.used4.has(index)) throw new RangeError(`${text} is used twice on ${this.name}`);
    this.used4.add(index);
    return formatIpv4(n);
  }

  take6(text: string): string {
    if (this.v6 === undefined) throw new RangeError(`${this.name} has no IPv6 subnet for ${text}`);
    const n = parseIpv6(text);
    const index = n - this.v6.base;
    if (index <= 0n || index >= 1n << BigInt(IPV6_BITS - this.v6.len))
      throw new RangeError(`${text} is not in ${this.name} (${this.cidr6})`);
    if (this.used6.has(index)) throw new RangeError(`${text} is used twice on ${this.name}`);
    this.used6.add(index);
    return formatIpv6(n);
  }

  /** The next free IPv4 host address (and the IPv6 one with the same index if that is free). */
  next(): { ipv4: string; ipv6: string | undefined } {
    const size = 2 ** (IPV4_BITS - this.v4.len);
    for (let i = GATEWAY_INDEX; i < size - 1; i++) {
      if (this.used4.has(i)) continue;
      this.used4.add(i);
      return { ipv4: formatIpv4(this.v4.base + i), ipv6: this.next6(BigInt(i)) };
    }
    throw new RangeError(`${this.name} (${this.cidr4}) is full`);
  }

  private next6(preferred: bigint): string | undefined {
    if (this.v6 === undefined) return undefined;
    const size = 1n << BigInt(IPV6_BITS - this.v6.len);
    for (let i = preferred; ; i++) {
      if (i >= size - 1n) throw new RangeError(`${this.name} (${this.cidr6}) is full`);
      if (this.used6.has(i)) continue;
      this.used6.add(i);
      return formatIpv6(this.v6.base + i);
    }
  }

  /** Takes explicit addresses or the next free ones. */
  assign(addr: { ipv4?: string; ipv6?: string }): { ipv4: string; ipv6: string | undefined } {
    if (addr.ipv4 === undefined) {
      const auto = this.next();
      return { ipv4: auto.ipv4, ipv6: addr.ipv6 === undefined ? auto.ipv6 : this.take6(addr.ipv6) };
    }
    const ipv4 = this.take4(addr.ipv4);
    if (addr.ipv6 !== undefined) return { ipv4, ipv6: this.take6(addr.ipv6) };
    return {
      ipv4,
      ipv6: this.v6 === undefined ? undefined : this.next6(BigInt(parseIpv4(ipv4) - this.v4.base)),
    };
  }

  release(addr: { ipv4: string; ipv6: string | undefined }): void {
    this.used4.delete(parseIpv4(addr.ipv4) - this.v4.base);
    if (addr.ipv6 !== undefined && this.v6 !== undefined)
      this.used6.delete(parseIpv6(addr.ipv6) - this.v6.base);
  }
}

// ---------------------------------------------------------------------------------------------
// conntrack

/** Parses `conntrack -L` output (one entry per line; other lines ignored). Never throws. */
export function parseConntrack(text: string): ConntrackEntry[] {
  const entries: ConntrackEntry[] = [];
  for (const raw of text.split('\n')) {
    const tokens = raw.trim().split(/\s+/);
    const timeoutS = Number(tokens[2]);
    if (tokens.length < 4 || !/^\d+$/.test(tokens[1] ?? '') || !Number.isFinite(timeoutS)) continue;
    const tuples: FlowTuple[] = [];
    const flags: string[] = [];
    let state: string | undefined;
    for (const token of tokens.slice(3)) {
      const flag = /^\[(\w+)\]$/.exec(token);
      if (flag !== null) {
        flags.push(flag[1]!);
        continue;
      }
      const eq = token.indexOf('=');
      if (eq < 0) {
        if (tuples.length === 0) state = token;
        continue;
      }
      const key = token.slice(0, eq);
      const value = token.slice(eq + 1);
      if (key === 'src') tuples.push({ src: value, dst: '' });
      const t = tuples[tuples.length - 1];
      if (t === undefined || tuples.length > 2) continue;
      if (key === 'dst') t.dst = value;
      else if (key === 'sport') t.sport = Number(value);
      else if (key === 'dport') t.dport = Number(value);
    }
    if (tuples.length < 2) continue;
    entries.push({
      proto: tokens[0]!,
      timeoutS,
      state,
      original: tuples[0]!,
      reply: tuples[1]!,
      flags,
      raw: raw.trim(),
    });
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Plan: validate the spec and place every address before touching the system.

interface PlannedNode {
  name: string;
  kind: 'internet' | 'router' | 'host';
  segment: string | undefined;
  uplink: string;
  ipv4: string;
  ipv6: string | undefined;
  router?: RouterSpec;
}

interface PlannedSegment {
  name: string;
  /** 'internet' or the router owning the LAN. */
  owner: string;
  bridge: string;
  pool: Pool;
  gateway4: string;
  gateway6: string | undefined;
}

interface Plan {
  prefix: string;
  nodes: Map<string, PlannedNode>;
  segments: Map<string, PlannedSegment>;
}

function checkName(what: string, name: string, taken: Set<string>): void {
  if (!NAME_RE.test(name))
    throw new TypeError(`${what} name ${JSON.stringify(name)} must match ${NAME_RE}`);
  if (taken.has(name)) throw new RangeError(`${what} name ${name} is used twice`);
  taken.add(name);
}

function plan(spec: TopologySpec): Plan {
  if (!PREFIX_RE.test(spec.prefix))
    throw new TypeError(`prefix ${JSON.stringify(spec.prefix)} must match ${PREFIX_RE}`);
  const routers = spec.routers ?? [];
  const lans = spec.lans ?? [];
  const hosts = spec.hosts ?? [];
  const nodeNames = new Set<string>([INTERNET]);
  const segNames = new Set<string>([INTERNET]);
  for (const r of routers) checkName('router', r.name, nodeNames);
  for (const h of hosts) checkName('host', h.name, nodeNames);
  for (const l of lans) checkName('LAN', l.name, segNames);

  const segments = new Map<string, PlannedSegment>();
  const internetPool = new Pool(INTERNET, parseCidr4(INTERNET_IPV4), parseCidr6(INTERNET_IPV6));
  const gw = internetPool.next();
  segments.set(INTERNET, {
    name: INTERNET,
    owner: INTERNET,
    bridge: INTERNET_BRIDGE,
    pool: internetPool,
    gateway4: gw.ipv4,
    gateway6: gw.ipv6,
  });
  const lanIndex = new Map<string, number>();
  for (const l of lans) {
    const r = routers.find((x) => x.name === l.router);
    if (r === undefined) throw new RangeError(`LAN ${l.name}: no router named ${l.router}`);
    const i = lanIndex.get(r.name) ?? 0;
    lanIndex.set(r.name, i + 1);
    const pool = new Pool(
      l.name,
      parseCidr4(l.ipv4),
      l.ipv6 === undefined ? undefined : parseCidr6(l.ipv6),
    );
    const g = pool.next();
    segments.set(l.name, {
      name: l.name,
      owner: r.name,
      bridge: `lan${i}`,
      pool,
      gateway4: g.ipv4,
      gateway6: g.ipv6,
    });
  }

  const nodes = new Map<string, PlannedNode>();
  nodes.set(INTERNET, {
    name: INTERNET,
    kind: 'internet',
    segment: undefined,
    uplink: INTERNET_BRIDGE,
    ipv4: gw.ipv4,
    ipv6: gw.ipv6,
  });
  // Routers before hosts so that a spec's order of hosts does not move router addresses.
  for (const r of routers) {
    if (!['none', 'masquerade', 'home', 'symmetric'].includes(r.nat))
      throw new TypeError(`router ${r.name}: unknown nat ${String(r.nat)}`);
    for (const t of [r.udpTimeoutS, r.udpStreamTimeoutS])
      if (t !== undefined && (!Number.isInteger(t) || t < 1))
        throw new RangeError(`router ${r.name}: timeouts are whole seconds >= 1`);
    const up = r.upstream ?? INTERNET;
    const seg = segments.get(up);
    if (seg === undefined) throw new RangeError(`router ${r.name}: no segment named ${up}`);
    // An upstream chain must end at the internet.
    for (
      let s: PlannedSegment | undefined = seg, hops = 0;
      s !== undefined && s.owner !== INTERNET;
      hops++
    ) {
      if (s.owner === r.name || hops > routers.length)
        throw new RangeError(`router ${r.name}: its upstream chain loops`);
      const owner = routers.find((x) => x.name === s!.owner);
      s = segments.get(owner?.upstream ?? INTERNET);
    }
    nodes.set(r.name, {
      name: r.name,
      kind: 'router',
      segment: up,
      uplink: ROUTER_UPLINK,
      ...addrs(seg.pool, r),
      router: r,
    });
  }
  for (const h of hosts) {
    const seg = segments.get(h.lan);
    if (seg === undefined) throw new RangeError(`host ${h.name}: no segment named ${h.lan}`);
    nodes.set(h.name, {
      name: h.name,
      kind: 'host',
      segment: h.lan,
      uplink: HOST_UPLINK,
      ...addrs(seg.pool, h),
    });
  }
  return { prefix: spec.prefix, nodes, segments };
}

function addrs(
  pool: Pool,
  a: { ipv4?: string; ipv6?: string },
): { ipv4: string; ipv6: string | undefined } {
  return pool.assign({
    ...(a.ipv4 === undefined ? {} : { ipv4: a.ipv4 }),
    ...(a.ipv6 === undefined ? {} : { ipv6: a.ipv6 }),
  });
}

// ---------------------------------------------------------------------------------------------
// The built topology

function processGone(pid: number): boolean {
  try {
    // "pid (comm) S ...": a zombie has exited; its parent reaps it.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

function namespacePids(ns: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 10_000 })
      .split('\n')
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}

function namespaceLinks(ns: string): string[] {
  try {
    return execFileSync('ip', ['-n', ns, '-o', 'link', 'show'], {
      encoding: 'utf8',
      timeout: 10_000,
    })
      .split('\n')
      .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1])
      .filter((n): n is string => n !== undefined);
  } catch {
    return [];
  }
}

const liveTopologies = new Set<BuiltTopology>();
let snapshotsHooked = false;

/**
 * On exit and on signals, records every live topology's daemon interfaces before any cleanup
 * runs: netns.ts runs cleanups last-registered first, so a daemon's own cleanup (wgts.ts
 * startDaemon) may kill it, and its TUN vanishes, before ours can see which socket it left.
 * Prepended so it runs first; a signal listener removes itself so netns.ts still re-raises.
 */
function hookSnapshots(): void {
  if (snapshotsHooked) return;
  snapshotsHooked = true;
  const snapshot = (): void => {
    for (const t of liveTopologies) t.snapshotForeignLinks();
  };
  process.prependListener('exit', snapshot);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const once = (): void => {
      process.removeListener(sig, once);
      snapshot();
    };
    process.prependListener(sig, once);
  }
}

class BuiltTopology implements Topology {
  readonly id: string;
  readonly nodes: readonly string[];
  private readonly nsOf = new Map<string, string>();
  private readonly procs: TopologyProcess[] = [];
  /** Interfaces this harness made, per namespace; any other one left a UAPI socket is someone's daemon. */
  private readonly ownLinks = new Map<string, Set<string>>();
  private readonly foreignLinks = new Set<string>();
  private portCounter = 0;
  private destroying: Promise<void> | undefined;
  private removeHook: (() => void) | undefined;

  constructor(private readonly p: Plan) {
    this.id = `${p.prefix}-${process.pid}-${uniqueId()}`;
    this.nodes = [...p.nodes.keys()];
  }

  private planned(name: string): PlannedNode {
    const n = this.p.nodes.get(name);
    if (n === undefined) throw new RangeError(`no node named ${name} in topology ${this.id}`);
    return n;
  }

  private segment(name: string): PlannedSegment {
    const s = this.p.segments.get(name);
    if (s === undefined) throw new RangeError(`no segment named ${name} in topology ${this.id}`);
    return s;
  }

  private router(name: string): PlannedNode {
    const n = this.planned(name);
    if (n.kind !== 'router') throw new RangeError(`${name} is not a router`);
    return n;
  }

  node(name: string): NodeInfo {
    const n = this.planned(name);
    return {
      name: n.name,
      kind: n.kind,
      ns: this.ns(name),
      segment: n.segment,
      uplink: n.uplink,
      ipv4: n.ipv4,
      ipv6: n.ipv6,
    };
  }

  ns(name: string): string {
    this.planned(name);
    const ns = this.nsOf.get(name);
    if (ns === undefined)
      throw new Error(`topology ${this.id} has no namespace for ${name} (destroyed?)`);
    return ns;
  }

  gateway(segment: string): { ipv4: string; ipv6: string | undefined } {
    const s = this.segment(segment);
    return { ipv4: s.gateway4, ipv6: s.gateway6 };
  }

  publicAddress(name: string): { ipv4: string; ipv6: string | undefined } {
    let n = this.planned(name);
    let out = { ipv4: n.ipv4, ipv6: n.ipv6 };
    for (let hops = 0; n.segment !== undefined && n.segment !== INTERNET; hops++) {
      if (hops > this.p.nodes.size) throw new Error('upstream loop');
      n = this.planned(this.segment(n.segment).owner);
      if (n.router?.nat !== 'none')
        out = { ipv4: n.ipv4, ipv6: out.ipv6 === undefined ? undefined : n.ipv6 };
    }
    return out;
  }

  exec(
    name: string,
    cmd: string,
    args: readonly string[] = [],
    options: RunOptions = {},
  ): Promise<RunResult> {
    return run(this.ns(name), [cmd, ...args], options);
  }

  check(
    name: string,
    cmd: string,
    args: readonly string[] = [],
    options: RunOptions = {},
  ): Promise<string> {
    return check(this.ns(name), [cmd, ...args], options);
  }

  spawn(
    name: string,
    cmd: string,
    args: readonly string[] = [],
    options: { env?: NodeJS.ProcessEnv; label?: string } = {},
  ): TopologyProcess {
    if (this.destroying !== undefined) throw new Error(`topology ${this.id} is destroyed`);
    const tracked = spawnIn(
      this.ns(name),
      [cmd, ...args],
      options.env === undefined ? {} : { env: options.env },
    );
    const proc: TopologyProcess = Object.assign(Object.create(tracked) as TrackedProcess, {
      node: name,
      label: options.label ?? `${cmd} ${args.join(' ')}`.trim(),
    });
    this.procs.push(proc);
    return proc;
  }

  processes(): readonly TopologyProcess[] {
    return [...this.procs];
  }

  logs(): string {
    return this.procs
      .map(
        (p) =>
          `--- ${p.label} on ${p.node} (pid ${p.pid}, ${p.running ? 'running' : 'exited'}) ---\n${p.output().trimEnd()}`,
      )
      .join('\n');
  }

  describe(): string {
    const rows = [...this.p.nodes.values()].map((n) => {
      const nat = n.router === undefined ? '' : ` nat=${n.router.nat}`;
      const lans = [...this.p.segments.values()].filter(
        (s) => s.owner === n.name && s.name !== INTERNET,
      );
      const lanText = lans
        .map(
          (s) =>
            ` ${s.name}=${s.pool.cidr4}${s.pool.cidr6 === undefined ? '' : `,${s.pool.cidr6}`}`,
        )
        .join('');
      return `${n.name.padEnd(10)} ${n.kind.padEnd(8)} ${this.nsOf.get(n.name) ?? '-'} ${n.segment ?? ''}:${n.ipv4}${n.ipv6 === undefined ? '' : `,${n.ipv6}`}${nat}${lanText}`;
    });
    return `topology ${this.id}\n${rows.join('\n')}`;
  }

  async conntrack(
    router: string,
    proto: 'udp' | 'tcp' | 'icmp' = 'udp',
  ): Promise<ConntrackEntry[]> {
    this.router(router);
    return parseConntrack(await this.check(router, 'conntrack', ['-L', '-p', proto]));
  }

  async flushConntrack(router: string): Promise<void> {
    this.router(router);
    await this.check(router, 'conntrack', ['-F']);
  }

  async setUdpTimeouts(router: string, t: { udpS?: number; streamS?: number }): Promise<void> {
    this.router(router);
    const settings: string[] = [];
    for (const [key, v] of [
      ['net.netfilter.nf_conntrack_udp_timeout', t.udpS],
      ['net.netfilter.nf_conntrack_udp_timeout_stream', t.streamS],
    ] as const) {
      if (v === undefined) continue;
      if (!Number.isInteger(v) || v < 1)
        throw new RangeError(`conntrack timeouts are whole seconds >= 1, not ${v}`);
      settings.push(`${key}=${v}`);
    }
    if (settings.length > 0) await this.check(router, 'sysctl', ['-q', '-w', ...settings]);
  }

  async moveHost(
    host: string,
    segment: string,
    addr: { ipv4?: string; ipv6?: string } = {},
  ): Promise<NodeInfo> {
    const n = this.planned(host);
    if (n.kind !== 'host') throw new RangeError(`${host} is not a host`);
    const to = this.segment(segment);
    const from = this.segment(n.segment!);
    const placed = to.pool.assign(addr);
    try {
      await this.check(host, 'ip', ['link', 'del', n.uplink]);
    } catch (err) {
      to.pool.release(placed);
      throw err;
    }
    from.pool.release({ ipv4: n.ipv4, ipv6: n.ipv6 });
    n.segment = segment;
    n.ipv4 = placed.ipv4;
    n.ipv6 = placed.ipv6;
    await this.plug(n);
    return this.node(host);
  }

  async attachLink(
    segment: string,
    fromNs: string,
    link: string,
    addr: { ipv4?: string } = {},
  ): Promise<{ ipv4: string; prefixLength: number; gateway: string }> {
    const seg = this.segment(segment);
    if (segment === INTERNET) throw new RangeError('attachLink takes a LAN, not the internet');
    const placed = addr.ipv4 === undefined ? seg.pool.next().ipv4 : seg.pool.take4(addr.ipv4);
    await check(null, ['ip', '-n', fromNs, 'link', 'set', link, 'netns', this.ns(seg.owner)]);
    this.ownLinks.get(seg.owner)!.add(link);
    await this.ipBatch(seg.owner, [`link set ${link} master ${seg.bridge}`, `link set ${link} up`]);
    return { ipv4: placed, prefixLength: seg.pool.v4.len, gateway: seg.gateway4 };
  }

  async readdress(host: string, addr: { ipv4?: string; ipv6?: string }): Promise<NodeInfo> {
    const n = this.planned(host);
    if (n.kind !== 'host') throw new RangeError(`${host} is not a host`);
    const seg = this.segment(n.segment!);
    const ns = this.ns(host);
    const lines: string[] = [];
    if (addr.ipv4 !== undefined) {
      const ipv4 = seg.pool.take4(addr.ipv4);
      // Add before delete (promote_secondaries is on) so the connected and default routes stay.
      lines.push(
        `address add ${ipv4}/${seg.pool.v4.len} dev ${n.uplink}`,
        `address del ${n.ipv4}/${seg.pool.v4.len} dev ${n.uplink}`,
      );
      seg.pool.release({ ipv4: n.ipv4, ipv6: undefined });
      n.ipv4 = ipv4;
    }
    if (addr.ipv6 !== undefined) {
      const ipv6 = seg.pool.take6(addr.ipv6);
      lines.push(`address add ${ipv6}/${seg.pool.v6!.len} dev ${n.uplink} nodad`);
      if (n.ipv6 !== undefined)
        lines.push(`address del ${n.ipv6}/${seg.pool.v6!.len} dev ${n.uplink}`);
      n.ipv6 = ipv6;
    }
    lines.push(...this.defaultRoutes(n, 'replace'));
    await check(ns, ['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
    return this.node(host);
  }

  // --- building ---

  async build(): Promise<void> {
    this.removeHook = onCleanup(() => this.destroySync());
    liveTopologies.add(this);
    hookSnapshots();
    for (const n of this.p.nodes.values()) {
      this.nsOf.set(n.name, createNamespace(this.p.prefix));
      this.ownLinks.set(n.name, new Set(['lo']));
    }
    await Promise.all(
      [...this.p.nodes.values()].map((n) =>
        this.check(n.name, 'sysctl', ['-q', '-w', ...this.sysctls(n)]),
      ),
    );
    await Promise.all(
      [...this.p.nodes.values()]
        .filter((n) => n.kind !== 'host')
        .map((n) => this.ipBatch(n.name, this.bridgeLines(n))),
    );
    await Promise.all(
      [...this.p.nodes.values()].filter((n) => n.kind !== 'internet').map((n) => this.plug(n)),
    );
    await Promise.all([...this.p.nodes.values()].map((n) => this.routedLanRoutes(n)));
    await Promise.all(
      [...this.p.nodes.values()].filter((n) => n.router !== undefined).map((n) => this.firewall(n)),
    );
  }

  private sysctls(n: PlannedNode): string[] {
    const s = [
      // Keep IPv4 addresses when readdress() deletes the primary one.
      'net.ipv4.conf.all.promote_secondaries=1',
      'net.ipv4.conf.default.promote_secondaries=1',
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
    ];
    if (n.kind !== 'host' && n.router?.bridgeNetfilter !== true) {
      // New namespaces pass bridged frames through iptables and conntrack on this kernel (NAT.md).
      s.push(
        'net.bridge.bridge-nf-call-iptables=0',
        'net.bridge.bridge-nf-call-ip6tables=0',
        'net.bridge.bridge-nf-call-arptables=0',
      );
    }
    if (n.router !== undefined) {
      s.push(
        'net.ipv4.ip_forward=1',
        'net.ipv6.conf.all.forwarding=1',
        'net.ipv4.conf.all.send_redirects=0',
        'net.ipv4.conf.default.send_redirects=0',
      );
      if (n.router.udpTimeoutS !== undefined)
        s.push(`net.netfilter.nf_conntrack_udp_timeout=${n.router.udpTimeoutS}`);
      if (n.router.udpStreamTimeoutS !== undefined)
        s.push(`net.netfilter.nf_conntrack_udp_timeout_stream=${n.router.udpStreamTimeoutS}`);
    }
    return s;
  }

  private bridgeLines(n: PlannedNode): string[] {
    const lines: string[] = [];
    for (const s of this.p.segments.values()) {
      if (s.owner !== n.name) continue;
      this.ownLinks.get(n.name)!.add(s.bridge);
      lines.push(
        `link add ${s.bridge} type bridge`,
        `address add ${s.gateway4}/${s.pool.v4.len} dev ${s.bridge}`,
        ...(s.gateway6 === undefined
          ? []
          : [`address add ${s.gateway6}/${s.pool.v6!.len} dev ${s.bridge} nodad`]),
        `link set ${s.bridge} up`,
      );
    }
    return lines;
  }

  /** Connects a router's or host's uplink to its segment's bridge, addressed, with default routes. */
  private async plug(n: PlannedNode): Promise<void> {
    const seg = this.segment(n.segment!);
    const owner = seg.owner;
    const port = `p${++this.portCounter}`;
    if (port.length > MAX_IFNAME_BYTES) throw new RangeError(`too many ports: ${port}`);
    this.ownLinks.get(n.name)!.add(n.uplink);
    this.ownLinks.get(owner)!.add(port);
    await check(null, [
      'ip',
      'link',
      'add',
      n.uplink,
      'netns',
      this.ns(n.name),
      'type',
      'veth',
      'peer',
      'name',
      port,
      'netns',
      this.ns(owner),
    ]);
    await this.ipBatch(owner, [`link set ${port} master ${seg.bridge}`, `link set ${port} up`]);
    await this.ipBatch(n.name, [
      `address add ${n.ipv4}/${seg.pool.v4.len} dev ${n.uplink}`,
      ...(n.ipv6 === undefined
        ? []
        : [`address add ${n.ipv6}/${seg.pool.v6!.len} dev ${n.uplink} nodad`]),
      `link set ${n.uplink} up`,
      ...this.defaultRoutes(n, 'add'),
    ]);
  }

  /** Hosts and routers below a LAN route everything via its router; the internet has no default route. */
  private defaultRoutes(n: PlannedNode, verb: 'add' | 'replace'): string[] {
    if (n.segment === undefined || n.segment === INTERNET) return [];
    const s = this.segment(n.segment);
    return [
      `route ${verb} default via ${s.gateway4} dev ${n.uplink}`,
      ...(s.gateway6 === undefined || n.ipv6 === undefined
        ? []
        : [`route ${verb} default via ${s.gateway6} dev ${n.uplink}`]),
    ];
  }

  /** Subnets reachable without NAT through router `r`: its LANs and those of `none` routers on them. */
  private routedSubnets(r: PlannedNode, depth = 0): string[] {
    if (r.router?.nat !== 'none' || depth > this.p.nodes.size) return [];
    const out: string[] = [];
    for (const s of this.p.segments.values()) {
      if (s.owner !== r.name) continue;
      out.push(s.pool.cidr4, ...(s.pool.cidr6 === undefined ? [] : [s.pool.cidr6]));
      for (const m of this.p.nodes.values())
        if (m.segment === s.name) out.push(...this.routedSubnets(m, depth + 1));
    }
    return out;
  }

  /** Routes to the LANs of `none` routers on `n`'s segments, installed in `n` (owner or member). */
  private async routedLanRoutes(n: PlannedNode): Promise<void> {
    const lines: string[] = [];
    const add = (via: PlannedNode): void => {
      for (const subnet of this.routedSubnets(via)) {
        const v6 = subnet.includes(':');
        const gw = v6 ? via.ipv6 : via.ipv4;
        if (gw !== undefined) lines.push(`route add ${subnet} via ${gw}`);
      }
    };
    for (const m of this.p.nodes.values()) {
      if (m === n || m.router?.nat !== 'none' || m.segment === undefined) continue;
      // The owner of m's upstream LAN needs the route; on the internet every member does.
      const seg = this.segment(m.segment);
      if (seg.owner === n.name || (seg.name === INTERNET && n.segment === INTERNET)) add(m);
    }
    if (lines.length > 0) await this.ipBatch(n.name, lines);
  }

  private async firewall(n: PlannedNode): Promise<void> {
    const r = n.router!;
    const drop = r.dropUnsolicited ?? r.nat === 'home';
    const nat =
      r.nat === 'none'
        ? []
        : [
            `-A POSTROUTING -o ${ROUTER_UPLINK} -j MASQUERADE${r.nat === 'symmetric' ? ' --random-fully' : ''}`,
          ];
    const filter = drop
      ? ['INPUT', 'FORWARD'].map(
          (chain) => `-A ${chain} -i ${ROUTER_UPLINK} -m conntrack --ctstate NEW -j DROP`,
        )
      : [];
    const rules = ['*nat', ...nat, 'COMMIT', '*filter', ...filter, 'COMMIT', ''].join('\n');
    await this.check(n.name, 'iptables-restore', [], { input: rules });
    await this.check(n.name, 'ip6tables-restore', [], { input: rules });
  }

  private async ipBatch(name: string, lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    await check(this.ns(name), ['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
  }

  // --- teardown ---

  /**
   * Records the interfaces in our namespaces that this harness did not make (daemons' TUNs), and
   * returns the UAPI socket paths of every such interface seen so far. Sync.
   */
  snapshotForeignLinks(): string[] {
    for (const [name, ns] of this.nsOf) {
      const own = this.ownLinks.get(name) ?? new Set<string>();
      for (const link of namespaceLinks(ns)) if (!own.has(link)) this.foreignLinks.add(link);
    }
    return [...this.foreignLinks].map((link) => join(WG_SOCKET_DIR, `${link}.sock`));
  }

  private removeSockets(paths: string[]): void {
    for (const path of paths) rmSync(path, { force: true });
  }

  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      const sockets = this.snapshotForeignLinks();
      const pids = new Set<number>(this.procs.filter((p) => p.running).map((p) => p.pid));
      for (const ns of this.nsOf.values()) for (const pid of namespacePids(ns)) pids.add(pid);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // Exited meanwhile.
        }
      }
      const deadline = performance.now() + STOP_GRACE_MS;
      while ([...pids].some((pid) => !processGone(pid)) && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, STOP_POLL_MS));
      await Promise.all(this.procs.map((p) => stopProcess(p, 'SIGKILL', 0)));
      this.destroySync(sockets);
    })().catch(() => undefined);
    return this.destroying;
  }

  /** Kills and deletes at once (exit paths cannot wait). */
  private destroySync(sockets = this.snapshotForeignLinks()): void {
    for (const p of this.procs) p.kill('SIGKILL');
    for (const ns of this.nsOf.values()) deleteNamespace(ns);
    this.nsOf.clear();
    // Every process in those namespaces is dead now, so these sockets answer nobody.
    this.removeSockets(sockets);
    this.removeHook?.();
    this.removeHook = undefined;
    liveTopologies.delete(this);
  }
}

/**
 * Builds `spec` in fresh namespaces: validates it whole first (TypeError/RangeError on a bad spec,
 * before anything is made), then creates it. On a failure half-way everything made is removed
 * before the promise rejects. The caller owns the result and calls destroy() (withTopology does).
 */
export async function buildTopology(spec: TopologySpec): Promise<Topology> {
  const topo = new BuiltTopology(plan(spec));
  try {
    await topo.build();
  } catch (err) {
    await topo.destroy();
    throw err;
  }
  return topo;
}

/**
 * Builds `spec`, runs `fn` with it and destroys it whatever happens. If `fn` throws an Error, the
 * topology and its processes' output are appended to the message. Resolves with fn's result.
 */
export async function withTopology<T>(
  spec: TopologySpec,
  fn: (topo: Topology) => Promise<T>,
): Promise<T> {
  const topo = await buildTopology(spec);
  try {
    return await fn(topo);
  } catch (err) {
    if (err instanceof Error) err.message += `\n${topo.describe()}\n${topo.logs()}`;
    throw err;
  } finally {
    await topo.destroy();
  }
}
