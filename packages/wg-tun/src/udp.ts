/**
 * The UDP boundary WireGuard datagrams cross (whitepaper §5.4: every message is one datagram): the
 * UdpBind interface, the native implementation `openUdpBind` (recvmmsg/sendmmsg batches on one
 * dual-stack socket), and the in-memory fake network `createFakeNetwork` (after wireguard-go's
 * conn/bindtest).
 */
import { isIP } from 'node:net';

import type { Endpoint } from '@wiremesh/wg-core/engine';

import { loadAddon, type IoStats, type NativeAddon, type NativeUdp } from './native/addon.js';
import {
  DEFAULT_BATCH_SIZE,
  DEFAULT_SLOT_BYTES,
  DEFAULT_SOCKET_BUFFER_BYTES,
  ENDPOINT_CACHE_SIZE,
  ENDPOINT_RECORD_BYTES,
  MAX_BATCH_SIZE,
  MAX_PACKET_BYTES,
  MIN_SLOT_BYTES,
} from './io-constants.js';
import { NativePort } from './native-port.js';
import { RingBatch, checkPacket, type PacketBatch } from './tun.js';

export type { IoStats } from './native/addon.js';

/** A datagram to send: its payload and where it goes. */
export interface Datagram {
  readonly endpoint: Endpoint;
  readonly data: Uint8Array;
}

/**
 * One batch of received datagrams: packet(i) is the payload, endpoint(i) the source. Same lifetime
 * as PacketBatch: valid only until the callback returns. Endpoint objects are frozen and may be kept;
 * equal sources in a row give the same object.
 */
export interface DatagramBatch extends PacketBatch {
  /** The source of datagram i; IPv4 as a dotted quad (never ::ffff:-mapped), IPv6 as `wg` prints it. */
  endpoint(i: number): Endpoint;
}

/** The address family a bind serves. */
export type BindFamily = 'dual' | 'ipv4' | 'ipv6';

/** A bound UDP socket as the WireGuard device uses it. */
export interface UdpBind {
  /** The local port (the kernel's choice when 0 was asked for). */
  readonly port: number;
  /** 'dual': one AF_INET6 socket serving IPv4 and IPv6; 'ipv4' where IPv6 is off or an IPv4 host was given. */
  readonly family: BindFamily;
  /** Which UDP offloads are on now: gso, runs of equal datagrams to one endpoint sent as one
   * message (off for good once a route refuses it with EIO); gro, the kernel handing over coalesced
   * runs, split again before the callback. */
  readonly offloads: { readonly gso: boolean; readonly gro: boolean };
  /** True once close() ran. */
  readonly closed: boolean;
  /**
   * Sets the one datagram callback (replacing any earlier one) and starts receiving unless paused.
   * Called once per batch, on the event loop; exceptions it throws reach 'uncaughtException'.
   */
  onDatagrams(callback: (batch: DatagramBatch) => void): void;
  /** Sets the callback for a fatal socket error (receiving has stopped); without one it is thrown. */
  onError(callback: (error: Error) => void): void;
  /**
   * Sends each datagram to its endpoint, in order, copying the payloads. Returns how many the kernel
   * took; the others were dropped and counted in stats(): txErrors for a refused destination
   * (unreachable, IPv6 on an IPv4-only bind), txDroppedFull for EAGAIN. Returns 0 after close().
   * Throws TypeError for a payload that is not a Uint8Array or an address that is not a numeric
   * IPv4/IPv6 address, RangeError for an empty or >65535-byte payload or a bad port (nothing is sent).
   */
  send(datagrams: readonly Datagram[]): number;
  /** Sets SO_MARK for routing (UAPI fwmark); 0 clears it. Throws Error EPERM without CAP_NET_ADMIN or CAP_NET_RAW. */
  setMark(mark: number): void;
  /** Stops receiving (datagrams wait in the receive buffer); idempotent. */
  pause(): void;
  /** Receives again after pause(); idempotent. */
  resume(): void;
  /** A snapshot of the bind's counters. */
  stats(): IoStats;
  /** Closes the socket; idempotent. */
  close(): void;
}

/** Options of openUdpBind. */
export interface UdpBindOptions {
  /** Local port, 0..65535; 0 (default) lets the kernel pick, read it back from `port`. */
  readonly port?: number;
  /** Numeric local address to bind; default: all addresses, IPv4 and IPv6. */
  readonly host?: string;
  /**
   * Datagrams per recvmmsg/sendmmsg, 1..1024; default 128. With GRO one read can hold up to 64
   * coalesced datagrams, so a received batch can hold up to 64 times this many.
   */
  readonly batchSize?: number;
  /** Bytes per ring slot, 1500..65536; default 65536 (nothing truncated). */
  readonly slotBytes?: number;
  /** SO_RCVBUF to request (forced past rmem_max as root); default 7 MiB. */
  readonly receiveBufferBytes?: number;
  /** SO_SNDBUF to request; default 7 MiB. */
  readonly sendBufferBytes?: number;
  /** SO_MARK to set; default none. */
  readonly fwmark?: number;
  /**
   * Use UDP GSO and GRO where the kernel has them (default true). GRO needs the default slotBytes.
   * Neither changes what the callbacks see: one datagram per packet, in order.
   */
  readonly offload?: boolean;
}

function checkUint(value: number, what: string, max: number, min = 0): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${what} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

const RECORD_WORDS = ENDPOINT_RECORD_BYTES / Uint32Array.BYTES_PER_ELEMENT;
const FAMILY_BYTE = 0;
const PORT_BYTE = 2;
const ADDRESS_BYTE = 8;
const ADDRESS_WORD = ADDRESS_BYTE / Uint32Array.BYTES_PER_ELEMENT;
const PORT_KEY_SCALE = 0x10000;

class NativeDatagramBatch extends RingBatch implements DatagramBatch {
  #addon: NativeAddon;
  #meta: Uint8Array;
  #words: Uint32Array;
  #last = new Uint32Array(RECORD_WORDS);
  #lastEndpoint: Endpoint | undefined;
  #ipv4 = new Map<number, Endpoint>();

  constructor(addon: NativeAddon, native: NativeUdp) {
    super(native.rxBuffer, native.rxOffsets, native.rxLengths);
    this.#addon = addon;
    this.#meta = native.rxMeta;
    this.#words = new Uint32Array(
      native.rxMeta.buffer,
      native.rxMeta.byteOffset,
      native.rxMeta.length / 4,
    );
  }

  endpoint(i: number): Endpoint {
    if (!(i >= 0 && i < this.count)) {
      throw new RangeError(`datagram index ${i} is outside this batch of ${this.count}`);
    }
    const w = i * RECORD_WORDS;
    const words = this.#words;
    const last = this.#last;
    if (
      this.#lastEndpoint !== undefined &&
      words[w] === last[0] &&
      words[w + 1] === last[1] &&
      words[w + 2] === last[2] &&
      words[w + 3] === last[3] &&
      words[w + 4] === last[4] &&
      words[w + 5] === last[5]
    ) {
      return this.#lastEndpoint;
    }
    last.set(words.subarray(w, w + RECORD_WORDS));
    const m = this.#meta;
    const b = i * ENDPOINT_RECORD_BYTES;
    const port = (m[b + PORT_BYTE]! << 8) | m[b + PORT_BYTE + 1]!;
    let endpoint: Endpoint | undefined;
    if (m[b + FAMILY_BYTE] === 4) {
      const key = words[w + ADDRESS_WORD]! * PORT_KEY_SCALE + port;
      endpoint = this.#ipv4.get(key);
      if (endpoint === undefined) {
        const a = b + ADDRESS_BYTE;
        endpoint = Object.freeze({ ip: `${m[a]}.${m[a + 1]}.${m[a + 2]}.${m[a + 3]}`, port });
        if (this.#ipv4.size >= ENDPOINT_CACHE_SIZE) this.#ipv4.clear();
        this.#ipv4.set(key, endpoint);
      }
    } else {
      endpoint = Object.freeze({ ip: this.#addon.decodeAddress(m, i), port });
    }
    this.#lastEndpoint = endpoint;
    return endpoint;
  }
}

function checkEndpoint(endpoint: Endpoint, index: number): void {
  if (typeof endpoint !== 'object' || endpoint === null || typeof endpoint.ip !== 'string') {
    throw new TypeError(`datagrams[${index}].endpoint must be { ip: string, port: number }`);
  }
  checkUint(endpoint.port, `datagrams[${index}].endpoint.port`, MAX_PACKET_BYTES, 1);
}

class NativeUdpBind
  extends NativePort<NativeUdp, NativeDatagramBatch, Datagram>
  implements UdpBind
{
  #addon: NativeAddon;
  #records = new WeakMap<Endpoint, Uint8Array>();
  #recordsByText = new Map<string, Uint8Array>();
  #lastTx: Endpoint | undefined;
  #lastTxRecord: Uint8Array | undefined;
  readonly port: number;
  readonly family: BindFamily;

  constructor(addon: NativeAddon, native: NativeUdp, batchSize: number, slotBytes: number) {
    super(native, new NativeDatagramBatch(addon, native), batchSize, slotBytes);
    this.#addon = addon;
    this.port = native.port;
    this.family = native.family;
  }

  get offloads(): { readonly gso: boolean; readonly gro: boolean } {
    return this.native.offloads();
  }

  onDatagrams(callback: (batch: DatagramBatch) => void): void {
    if (typeof callback !== 'function')
      throw new TypeError('onDatagrams(callback): not a function');
    this.setOnBatch(callback);
  }

  send(datagrams: readonly Datagram[]): number {
    if (!Array.isArray(datagrams)) throw new TypeError('datagrams must be an array of Datagram');
    for (let i = 0; i < datagrams.length; i++) {
      const d = datagrams[i]!;
      checkPacket(d.data, `datagrams[${i}].data`);
      this.#record(d.endpoint, i);
    }
    return this.transmit(datagrams);
  }

  setMark(mark: number): void {
    checkUint(mark, 'fwmark', 0xffff_ffff);
    this.native.setMark(mark);
  }

  protected failure(): Error {
    return new Error(`UDP socket on port ${this.port} failed`);
  }

  protected fillSlot(d: Datagram, slot: number, index: number): Uint8Array {
    this.native.txMeta.set(this.#record(d.endpoint, index), slot * ENDPOINT_RECORD_BYTES);
    return d.data;
  }

  protected flush(count: number): number {
    return this.native.send(count);
  }

  /** The encoded address record of an endpoint, cached by object and by text. */
  #record(endpoint: Endpoint, index: number): Uint8Array {
    if (endpoint === this.#lastTx && this.#lastTxRecord !== undefined) return this.#lastTxRecord;
    checkEndpoint(endpoint, index);
    let record = this.#records.get(endpoint);
    if (record === undefined) {
      const text = `${endpoint.ip} ${endpoint.port}`;
      record = this.#recordsByText.get(text);
      if (record === undefined) {
        record = new Uint8Array(ENDPOINT_RECORD_BYTES);
        if (!this.#addon.encodeAddress(endpoint.ip, endpoint.port, record, 0)) {
          throw new TypeError(
            `datagrams[${index}].endpoint.ip '${endpoint.ip}' is not a numeric IPv4 or IPv6 address`,
          );
        }
        if (this.#recordsByText.size >= ENDPOINT_CACHE_SIZE) this.#recordsByText.clear();
        this.#recordsByText.set(text, record);
      }
      this.#records.set(endpoint, record);
    }
    this.#lastTx = endpoint;
    this.#lastTxRecord = record;
    return record;
  }
}

/**
 * Opens a non-blocking UDP socket: by default one AF_INET6 socket with IPV6_V6ONLY off on all
 * addresses (IPv4 arrives v4-mapped and is reported as plain IPv4), AF_INET where IPv6 is disabled.
 * Requests large buffers (SO_RCVBUFFORCE as root) and turns on SO_RXQ_OVFL so kernel drops are
 * counted. Throws RangeError/TypeError for bad options, Error with `code` for the system:
 * EADDRINUSE (port taken), EACCES (privileged port), EPERM (fwmark without CAP_NET_ADMIN); each
 * message says what to do. The caller owns the bind and must close() it.
 */
export function openUdpBind(options: UdpBindOptions = {}): UdpBind {
  const port = options.port ?? 0;
  checkUint(port, 'port', MAX_PACKET_BYTES);
  const host = options.host ?? '';
  if (typeof host !== 'string') throw new TypeError('host must be a numeric IP address string');
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  checkUint(batchSize, 'batchSize', MAX_BATCH_SIZE, 1);
  const slotBytes = options.slotBytes ?? DEFAULT_SLOT_BYTES;
  checkUint(slotBytes, 'slotBytes', DEFAULT_SLOT_BYTES, MIN_SLOT_BYTES);
  const receiveBufferBytes = options.receiveBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
  const sendBufferBytes = options.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES;
  checkUint(receiveBufferBytes, 'receiveBufferBytes', 0x7fff_ffff);
  checkUint(sendBufferBytes, 'sendBufferBytes', 0x7fff_ffff);
  const fwmark = options.fwmark ?? 0;
  checkUint(fwmark, 'fwmark', 0xffff_ffff);
  const offload = options.offload ?? true;
  if (typeof offload !== 'boolean') throw new TypeError('offload must be a boolean');
  const addon = loadAddon();
  const native = new addon.Udp(
    host,
    port,
    batchSize,
    slotBytes,
    receiveBufferBytes,
    sendBufferBytes,
    fwmark,
    offload ? 1 : 0,
  );
  return new NativeUdpBind(addon, native, batchSize, slotBytes);
}

/** A datagram crossing the fake network, as a FakeNetwork filter sees it. */
export interface TransitDatagram {
  readonly from: Endpoint;
  readonly to: Endpoint;
  readonly data: Uint8Array;
}

/** Options of FakeNetwork.bind. */
export interface FakeBindOptions {
  /** The bind's address, as its datagrams' source; default '127.0.0.1'. */
  readonly address?: string;
  /** Port; 0 (default) takes the next free one from 40000. */
  readonly port?: number;
  readonly batchSize?: number;
}

/** An in-memory network of UdpBinds that deliver to each other by (address, port). */
export interface FakeNetwork {
  /** Creates a bind reachable at (address, port). Throws Error EADDRINUSE if taken. */
  bind(options?: FakeBindOptions): UdpBind;
  /**
   * Decides the fate of each datagram as it is sent: return false to drop it (loss, firewall), or
   * a TransitDatagram to deliver instead (a NAT rewriting `from`, a corruption). Default: deliver.
   */
  setFilter(filter: ((d: TransitDatagram) => TransitDatagram | boolean) | undefined): void;
  /** Delivers every queued datagram now (with autoFlush off, nothing moves until this). */
  flush(): void;
  /** Datagrams sent to an (address, port) no bind holds, dropped by the network. */
  readonly unroutable: number;
}

/** Options of createFakeNetwork. */
export interface FakeNetworkOptions {
  /** Deliver on a microtask after each send (default true); false: only on flush(). */
  readonly autoFlush?: boolean;
}

const FAKE_FIRST_PORT = 40_000;

function checkNumeric(address: string, what: string): void {
  if (isIP(address) === 0)
    throw new TypeError(`${what} '${address}' is not a numeric IPv4 or IPv6 address`);
}

/**
 * A fake network for device tests: binds exchange datagrams in memory with the native bind's
 * contract (copies, batches, frozen source endpoints, pause/resume). Delivery is never synchronous
 * inside send(), so two devices can answer each other without recursion.
 */
export function createFakeNetwork(options: FakeNetworkOptions = {}): FakeNetwork {
  const autoFlush = options.autoFlush ?? true;
  const binds = new Map<string, FakeBind>();
  let filter: ((d: TransitDatagram) => TransitDatagram | boolean) | undefined;
  let inTransit: TransitDatagram[] = [];
  let scheduled = false;
  let nextPort = FAKE_FIRST_PORT;
  let unroutable = 0;
  const key = (e: Endpoint): string => `${e.ip} ${e.port}`;

  class FakeBind implements UdpBind {
    readonly family: BindFamily = 'dual';
    readonly offloads = Object.freeze({ gso: false, gro: false });
    readonly inbox: { from: Endpoint; data: Uint8Array }[] = [];
    #onDatagrams: ((batch: DatagramBatch) => void) | undefined;
    #paused = false;
    #closed = false;
    #delivering = false;
    #stats = { rxPackets: 0, rxBatches: 0, txPackets: 0 };

    constructor(
      readonly self: Endpoint,
      readonly batchSize: number,
    ) {}

    get port(): number {
      return this.self.port;
    }
    get closed(): boolean {
      return this.#closed;
    }
    onDatagrams(callback: (batch: DatagramBatch) => void): void {
      if (typeof callback !== 'function')
        throw new TypeError('onDatagrams(callback): not a function');
      this.#onDatagrams = callback;
      this.drain();
    }
    onError(callback: (error: Error) => void): void {
      if (typeof callback !== 'function') throw new TypeError('onError(callback): not a function');
    }
    send(datagrams: readonly Datagram[]): number {
      if (!Array.isArray(datagrams)) throw new TypeError('datagrams must be an array of Datagram');
      datagrams.forEach((d, i) => {
        checkPacket(d.data, `datagrams[${i}].data`);
        checkEndpoint(d.endpoint, i);
        checkNumeric(d.endpoint.ip, `datagrams[${i}].endpoint.ip`);
      });
      if (this.#closed) return 0;
      for (const d of datagrams) {
        inTransit.push({ from: this.self, to: d.endpoint, data: d.data.slice() });
      }
      this.#stats.txPackets += datagrams.length;
      schedule();
      return datagrams.length;
    }
    setMark(mark: number): void {
      checkUint(mark, 'fwmark', 0xffff_ffff);
    }
    pause(): void {
      this.#paused = true;
    }
    resume(): void {
      this.#paused = false;
      this.drain();
    }
    stats(): IoStats {
      return {
        ...this.#stats,
        rxMessages: this.#stats.rxPackets,
        txMessages: this.#stats.txPackets,
        rxDroppedTruncated: 0,
        rxDroppedKernel: 0,
        rxDroppedInvalid: 0,
        rxErrors: 0,
        txDroppedFull: 0,
        txErrors: 0,
        lastError: undefined,
      };
    }
    close(): void {
      if (this.#closed) return;
      this.#closed = true;
      this.inbox.length = 0;
      binds.delete(key(this.self));
    }
    drain(): void {
      if (this.#delivering) return;
      this.#delivering = true;
      try {
        while (
          this.inbox.length > 0 &&
          this.#onDatagrams !== undefined &&
          !this.#paused &&
          !this.#closed
        ) {
          const chunk = this.inbox.splice(0, this.batchSize);
          const total = chunk.reduce((sum, d) => sum + d.data.length, 0);
          const buffer = new Uint8Array(total);
          const offsets = new Uint32Array(chunk.length);
          const lengths = new Uint32Array(chunk.length);
          let offset = 0;
          chunk.forEach((d, i) => {
            buffer.set(d.data, offset);
            offsets[i] = offset;
            lengths[i] = d.data.length;
            offset += d.data.length;
          });
          const batch = new FakeDatagramBatch(
            buffer,
            offsets,
            lengths,
            chunk.map((d) => d.from),
          );
          batch.count = chunk.length;
          this.#stats.rxPackets += chunk.length;
          this.#stats.rxBatches++;
          try {
            this.#onDatagrams(batch);
          } finally {
            batch.count = 0;
          }
        }
      } finally {
        this.#delivering = false;
      }
    }
  }

  const flush = (): void => {
    scheduled = false;
    const touched = new Set<FakeBind>();
    while (inTransit.length > 0) {
      const batch = inTransit;
      inTransit = [];
      for (const d of batch) {
        const verdict = filter === undefined ? true : filter(d);
        if (verdict === false) continue;
        const out = verdict === true ? d : verdict;
        const target = binds.get(key(out.to));
        if (target === undefined) {
          unroutable++;
          continue;
        }
        target.inbox.push({
          from: Object.freeze({ ip: out.from.ip, port: out.from.port }),
          data: out.data,
        });
        touched.add(target);
      }
      for (const b of touched) b.drain();
      touched.clear();
    }
  };

  const schedule = (): void => {
    if (!autoFlush || scheduled) return;
    scheduled = true;
    queueMicrotask(flush);
  };

  return {
    bind(opts: FakeBindOptions = {}) {
      const address = opts.address ?? '127.0.0.1';
      checkNumeric(address, 'address');
      let port = opts.port ?? 0;
      checkUint(port, 'port', MAX_PACKET_BYTES);
      const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
      checkUint(batchSize, 'batchSize', MAX_BATCH_SIZE, 1);
      if (port === 0) {
        while (binds.has(`${address} ${nextPort}`)) nextPort++;
        port = nextPort++;
      }
      const self = Object.freeze({ ip: address, port });
      if (binds.has(key(self))) {
        throw Object.assign(
          new Error(
            `cannot bind UDP port ${port} on ${address} (EADDRINUSE): another bind uses it`,
          ),
          {
            code: 'EADDRINUSE',
          },
        );
      }
      const b = new FakeBind(self, batchSize);
      binds.set(key(self), b);
      return b;
    },
    setFilter(f) {
      filter = f;
    },
    flush,
    get unroutable() {
      return unroutable;
    },
  };
}

class FakeDatagramBatch extends RingBatch implements DatagramBatch {
  constructor(
    buffer: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    readonly sources: readonly Endpoint[],
  ) {
    super(buffer, offsets, lengths);
  }
  endpoint(i: number): Endpoint {
    if (!(i >= 0 && i < this.count)) {
      throw new RangeError(`datagram index ${i} is outside this batch of ${this.count}`);
    }
    return this.sources[i]!;
  }
}
