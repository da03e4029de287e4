/**
 * Endpoint discovery (protocol reflect.ts): probes the coordinator's reflection port from the
 * WireGuard socket itself, so the reply names the public ip:port the NAT maps the tunnel's own
 * traffic to. Needs a device that can send and receive non-WireGuard datagrams on its socket (the
 * in-process userspace device); the kernel's socket cannot be used this way.
 */
import { randomFillSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { REFLECT_TXID_LENGTH, decodeReply, encodeProbe, type Endpoint } from '@wiremesh/protocol';
import { formatIp, parseIp } from '@wiremesh/wg-core';
import { REFLECT_ATTEMPTS, REFLECT_TIMEOUT_MS } from '../constants.js';

/** What the prober needs from a device: wg-tun's UserspaceDevice has exactly this. */
export interface RawSocket {
  sendRaw(datagrams: readonly { endpoint: Endpoint; data: Uint8Array }[]): number;
  onForeignDatagram(cb: ((data: Uint8Array, from: Endpoint) => void) | null): void;
}

/** Canonical text of an IP address (as the device prints sources), or null if it is not one. */
function canonicalIp(ip: string): string | null {
  const bytes = parseIp(ip);
  return bytes === null ? null : formatIp(bytes);
}

/**
 * Matches replies to outstanding probes of one socket. Pure apart from the random txids; the
 * caller sends `datagram` of each probe and feeds every foreign datagram to `receive`.
 */
export class ReflectionMatcher {
  private readonly waiting = new Map<
    string,
    { target: string; port: number; resolve: (e: Endpoint) => void }
  >();

  constructor(private readonly random: (b: Uint8Array) => void = (b) => void randomFillSync(b)) {}

  /**
   * Starts a probe to `target`. Returns the datagram to send, a promise of the reflected endpoint,
   * and `cancel` (which leaves the promise pending forever; callers race it with a timeout).
   * Throws TypeError when `target.address` is not an IP literal.
   */
  start(target: Endpoint): {
    datagram: Uint8Array;
    result: Promise<Endpoint>;
    cancel(): void;
  } {
    const addr = canonicalIp(target.ip);
    if (addr === null) throw new TypeError(`reflector address ${target.ip} is not an IP address`);
    const txid = new Uint8Array(REFLECT_TXID_LENGTH);
    this.random(txid);
    const key = Buffer.from(txid).toString('hex');
    let resolve!: (e: Endpoint) => void;
    const result = new Promise<Endpoint>((r) => (resolve = r));
    this.waiting.set(key, { target: addr, port: target.port, resolve });
    return { datagram: encodeProbe(txid), result, cancel: () => void this.waiting.delete(key) };
  }

  /**
   * Takes one datagram that arrived on the socket and was not WireGuard. Returns true when it
   * answered an outstanding probe (from the probed address and port, with its txid). Never throws.
   */
  receive(data: Uint8Array, from: Endpoint): boolean {
    const reply = decodeReply(data);
    if (reply === null) return false;
    const key = Buffer.from(reply.txid).toString('hex');
    const w = this.waiting.get(key);
    if (w === undefined || w.port !== from.port || canonicalIp(from.ip) !== w.target) return false;
    const ip = canonicalIp(reply.ip);
    if (ip === null) return false;
    this.waiting.delete(key);
    w.resolve({ ip, port: reply.port });
    return true;
  }

  /** Number of probes still waiting for a reply. */
  get outstanding(): number {
    return this.waiting.size;
  }
}

/** Resolves `host` (a name or an IP literal, IPv6 possibly in brackets) to one address. Rejects when it cannot. */
export async function resolveHost(host: string): Promise<string> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0) return bare;
  return (await lookup(bare)).address;
}

/** Sends probes from one socket and collects their replies. */
export class Reflector {
  private readonly matcher: ReflectionMatcher;

  /**
   * Takes over `socket`'s foreign-datagram callback (one Reflector per device). `random` fills
   * txids (tests pass a fixed one).
   */
  constructor(
    private readonly socket: RawSocket,
    random?: (b: Uint8Array) => void,
  ) {
    this.matcher = new ReflectionMatcher(random);
    socket.onForeignDatagram((data, from) => void this.matcher.receive(data, from));
  }

  /**
   * Asks the reflector at `target` where this socket's datagrams come from: up to `attempts`
   * probes, each waiting `timeoutMs`. Resolves with the public endpoint, or null when no reply
   * came. Rejects only for a target that is not an IP literal.
   */
  async probe(
    target: Endpoint,
    timeoutMs = REFLECT_TIMEOUT_MS,
    attempts = REFLECT_ATTEMPTS,
  ): Promise<Endpoint | null> {
    for (let i = 0; i < attempts; i++) {
      const p = this.matcher.start(target);
      let timer: NodeJS.Timeout | undefined;
      try {
        this.socket.sendRaw([{ endpoint: target, data: p.datagram }]);
      } catch {
        // No route yet (the host is still coming up): count it as a lost probe.
      }
      const got = await Promise.race([
        p.result,
        new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs))),
      ]);
      clearTimeout(timer);
      p.cancel();
      if (got !== null) return got;
    }
    return null;
  }

  /** Stops listening on the socket. */
  close(): void {
    this.socket.onForeignDatagram(null);
  }
}

/** What probeFromPort found: whether it could bind the port, and the reply if one came. */
export interface PortProbe {
  /** False when the port was taken (the device already listens there): nothing was sent. */
  readonly bound: boolean;
  readonly endpoint: Endpoint | null;
}

/**
 * Sends one reflection probe to `target` from a plain UDP socket bound to local `port` (wildcard
 * address), before the WireGuard device listens there, and closes it after the reply or
 * `timeoutMs`. The NAT keys its mapping on the local address and port, so the reply names the
 * mapping the device's traffic will use; and this probe is the port's first packet through the
 * NAT. Resolves `{ bound: false }` when the port is in use. Never rejects for network errors;
 * throws TypeError when `target.address` is not an IP literal.
 */
export function probeFromPort(
  port: number,
  target: Endpoint,
  timeoutMs: number,
): Promise<PortProbe> {
  const family = isIP(target.ip);
  if (family === 0) throw new TypeError(`reflector address ${target.ip} is not an IP address`);
  return probeFrom(port, family, target, timeoutMs);
}

async function probeFrom(
  port: number,
  family: number,
  target: Endpoint,
  timeoutMs: number,
): Promise<PortProbe> {
  const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  const matcher = new ReflectionMatcher();
  socket.on(
    'message',
    (data, from) => void matcher.receive(data, { ip: from.address, port: from.port }),
  );
  const bound = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind({ port, exclusive: true }, () => resolve(true));
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    if (!bound) return { bound: false, endpoint: null };
    socket.on('error', () => undefined);
    const p = matcher.start(target);
    socket.send(p.datagram, target.port, target.ip);
    const endpoint = await Promise.race([
      p.result,
      new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs))),
    ]);
    p.cancel();
    return { bound: true, endpoint };
  } finally {
    clearTimeout(timer);
    await new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve(); // never bound: nothing to close
      }
    });
  }
}
