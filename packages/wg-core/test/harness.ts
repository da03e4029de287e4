/**
 * Two (or more) engines in memory with a fake clock and a lossless, instant, scriptable network
 * between them. No sleeps: time moves only when a test advances it.
 */
import { Device, type DeviceOptions } from '../src/device.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import type { CryptoProvider, RandomSource } from '../src/crypto/provider.js';
import type { Action, Endpoint } from '../src/types.js';

/** A deterministic byte source (xorshift32): reproducible tests, never for real keys. */
export function seededRandom(seed: number): RandomSource {
  let x = seed >>> 0 || 1;
  return (out: Uint8Array) => {
    for (let i = 0; i < out.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      out[i] = x & 0xff;
    }
  };
}

export const WALL_EPOCH_MS = Date.UTC(2026, 0, 1);

/** Minimal IPv4 packet (no options) from src to dst with `payload`. */
export function ipv4Packet(
  src: string,
  dst: string,
  payload: Uint8Array = new Uint8Array(8),
): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  p.set(payload, 20);
  return p;
}

/** Minimal IPv6 packet from src to dst (addresses as 16 bytes) with `payload`. */
export function ipv6Packet(
  src: Uint8Array,
  dst: Uint8Array,
  payload: Uint8Array = new Uint8Array(8),
): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  p[0] = 0x60;
  p[4] = payload.length >> 8;
  p[5] = payload.length & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(payload, 40);
  return p;
}

export interface Node {
  name: string;
  device: Device;
  endpoint: Endpoint;
  delivered: Uint8Array[];
  sent: Uint8Array[];
  drops: string[];
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

/** A set of devices on an in-memory network. `filter` may drop or rewrite datagrams in flight. */
export class Net {
  now = 0;
  readonly nodes = new Map<string, Node>();
  /** Return false to lose a datagram. */
  filter: (from: Node, to: Node, data: Uint8Array) => boolean = () => true;
  /** Source endpoint the receiver sees for datagrams from a node (NAT, roaming). */
  readonly seenAs = new Map<string, Endpoint>();
  log: Array<{ from: string; to: string; type: number; size: number; at: number }> = [];

  constructor(readonly crypto: CryptoProvider = nobleCrypto) {}

  add(name: string, address: string, seed: number, opts: Partial<DeviceOptions> = {}): Node {
    const random = seededRandom(seed);
    const device = new Device({
      crypto: this.crypto,
      random,
      wallClock: () => WALL_EPOCH_MS + this.now,
      ...opts,
    });
    const privateKey = new Uint8Array(32);
    random(privateKey);
    device.setPrivateKey(privateKey);
    const node: Node = {
      name,
      device,
      endpoint: { ip: address, port: 51820 },
      delivered: [],
      sent: [],
      drops: [],
      privateKey,
      publicKey: device.publicKey!,
    };
    this.nodes.set(name, node);
    return node;
  }

  /** Makes a and b peers: each routes the other's /32 and knows its endpoint. */
  link(
    a: Node,
    aIp: string,
    b: Node,
    bIp: string,
    extra: { psk?: Uint8Array; keepalive?: number } = {},
  ): void {
    const out: Action[] = [];
    a.device.addPeer(b.publicKey, {
      endpoint: b.endpoint,
      allowedIps: [{ address: new Uint8Array(bIp.split('.').map(Number)), cidr: 32 }],
      presharedKey: extra.psk ?? null,
    });
    b.device.addPeer(a.publicKey, {
      endpoint: a.endpoint,
      allowedIps: [{ address: new Uint8Array(aIp.split('.').map(Number)), cidr: 32 }],
      presharedKey: extra.psk ?? null,
    });
    if (extra.keepalive) {
      a.device.setPersistentKeepalive(a.device.peer(b.publicKey)!, extra.keepalive, this.now, out);
      b.device.setPersistentKeepalive(b.device.peer(a.publicKey)!, extra.keepalive, this.now, out);
    }
    this.flush(a, out);
  }

  private byEndpoint(ep: Endpoint): Node | undefined {
    for (const n of this.nodes.values())
      if (n.endpoint.ip === ep.ip && n.endpoint.port === ep.port) return n;
    return undefined;
  }

  /** Delivers every action of `from`, recursively, until the network is quiet. */
  flush(from: Node, actions: Action[]): void {
    const queue: Array<[Node, Action]> = actions.map((a) => [from, a]);
    let guard = 0;
    while (queue.length > 0) {
      if (++guard > 100_000) throw new Error('network did not settle');
      const [src, action] = queue.shift()!;
      if (action.type === 'deliver') {
        src.delivered.push(action.data);
        continue;
      }
      if (action.type === 'drop') {
        src.drops.push(action.reason);
        continue;
      }
      src.sent.push(action.data);
      const dst = this.byEndpoint(action.endpoint);
      this.log.push({
        from: src.name,
        to: dst?.name ?? '?',
        type: action.data[0]!,
        size: action.data.length,
        at: this.now,
      });
      if (!dst || !this.filter(src, dst, action.data)) continue;
      const out: Action[] = [];
      dst.device.receive(action.data, this.seenAs.get(src.name) ?? src.endpoint, this.now, out);
      for (const a of out) queue.push([dst, a]);
    }
  }

  /** `node` sends an IP packet into its tunnel. */
  send(node: Node, packet: Uint8Array): void {
    const out: Action[] = [];
    node.device.send(packet, this.now, out);
    this.flush(node, out);
  }

  /** Advances time to `until`, firing every timer of every device at its deadline, in order. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      let next = Infinity;
      let who: Node | undefined;
      for (const n of this.nodes.values()) {
        const d = n.device.nextDeadline();
        if (d < next) {
          next = d;
          who = n;
        }
      }
      if (!who || next > until) break;
      this.now = Math.max(this.now, next);
      const out: Action[] = [];
      who.device.tick(this.now, out);
      this.flush(who, out);
    }
    this.now = until;
  }

  /** Messages of a type sent from one node to another so far. */
  count(from: string, to: string, type: number): number {
    return this.log.filter((l) => l.from === from && l.to === to && l.type === type).length;
  }
}
