/**
 * The TUN device boundary (Linux Documentation/networking/tuntap.rst, IFF_TUN | IFF_NO_PI: callers
 * read and write bare IPv4/IPv6 packets; with offloads the addon splits and coalesces TCP/UDP
 * super-segments underneath, offload.ts): the TunDevice interface, the native implementation
 * `openTun`, and the in-memory fake `createFakeTun` (after wireguard-go's tun/tuntest).
 */
import { loadAddon, type IoStats, type NativeTun, type TunOffloads } from './native/addon.js';
import {
  DEFAULT_BATCH_SIZE,
  DEFAULT_SLOT_BYTES,
  MAX_BATCH_SIZE,
  MAX_INTERFACE_NAME_BYTES,
  MAX_PACKET_BYTES,
  MIN_MTU,
  MIN_SLOT_BYTES,
  TUN_DEVICE_PATH,
} from './io-constants.js';
import { NativePort } from './native-port.js';

export type { IoStats, TunOffloads } from './native/addon.js';

/**
 * One batch of packets, handed to a callback. Packet i is `buffer[offsets[i] .. offsets[i] +
 * lengths[i])` for i < count. The batch and every view of it belong to the reader and are valid only
 * until the callback returns (the next batch reuses the memory): copy what you keep.
 */
export interface PacketBatch {
  /** Number of packets in the batch, at least 1 (for UDP with GRO, possibly more than batchSize). */
  readonly count: number;
  /** The bytes of packet i as a view (no copy). Throws RangeError unless 0 <= i < count. */
  packet(i: number): Uint8Array;
  /** The memory the packets live in, for callers that want no view per packet. */
  readonly buffer: Uint8Array;
  /** Start of packet i in `buffer`; entries past `count` are stale. */
  readonly offsets: Uint32Array;
  /** Length of packet i in bytes; entries past `count` are stale. */
  readonly lengths: Uint32Array;
}

/** A TUN interface as the WireGuard device uses it. */
export interface TunDevice {
  /** The interface's current name (the kernel's choice when none was given). */
  readonly name: string;
  /** True once close() ran. */
  readonly closed: boolean;
  /**
   * The file descriptor (-1 for a fake or once closed), e.g. to pass to a daemonized child as
   * wireguard-go passes WG_TUN_FD; the child adopts it with openTun({ fd }). Still owned by this device.
   */
  readonly fd: number;
  /** Reads the interface MTU. Throws Error (code ENODEV...) if the interface is gone or elsewhere. */
  mtu(): number;
  /**
   * What the device offloads: with TSO a read may be a TCP super-segment the device splits into
   * MTU-sized packets before the callback sees them, and writes coalesce TCP segments; callers see
   * plain IP packets either way.
   */
  readonly offloads: TunOffloads;
  /** Sets the interface MTU (needs CAP_NET_ADMIN). Throws RangeError outside 68..65535, Error if refused. */
  setMtu(mtu: number): void;
  /**
   * Sets the one packet callback (replacing any earlier one) and starts reading unless paused. It is
   * called once per batch of packets the kernel routed into the interface, on the event loop.
   * Exceptions it throws are not caught here: they reach process 'uncaughtException'.
   */
  onPackets(callback: (batch: PacketBatch) => void): void;
  /**
   * Sets the callback for the one fatal error: the interface was deleted (code EBADFD) or the fd
   * failed. Reading has stopped when it is called; the owner should close(). Without a callback the
   * error is thrown on the event loop.
   */
  onError(callback: (error: Error) => void): void;
  /**
   * Writes packets into the interface (the kernel then routes them), in order, copying them; the
   * caller keeps its buffers. Returns how many the kernel accepted; the rest were dropped and counted
   * in stats() (EIO while the link is down, EINVAL for a packet that is not IPv4/IPv6). Returns 0
   * after close(). Throws TypeError for a non-Uint8Array, RangeError for an empty packet or one over
   * 65535 bytes (nothing is written then).
   */
  writePackets(packets: readonly Uint8Array[]): number;
  /** Stops reading (packets wait in the kernel's queue, which drops past its length); idempotent. */
  pause(): void;
  /** Reads again after pause(); idempotent. */
  resume(): void;
  /** A snapshot of the device's counters. */
  stats(): IoStats;
  /** Stops reading and closes the fd, which removes the interface unless it is persistent. Idempotent. */
  close(): void;
}

/** Options of openTun. */
export interface TunOptions {
  /** Interface name, at most 15 bytes; a `%d` in it is filled by the kernel. Default: the kernel picks (tunN). */
  readonly name?: string;
  /** MTU to set right after creation; default: leave the kernel's (1500). wgts passes 1420. */
  readonly mtu?: number;
  /** Packets per read batch and per write syscall loop, 1..1024; default 128. */
  readonly batchSize?: number;
  /** Bytes per ring slot, 1500..65536; default 65536 so no packet is ever truncated. */
  readonly slotBytes?: number;
  /** The clone device; default /dev/net/tun. Tests point it elsewhere to see ENOENT. */
  readonly devicePath?: string;
  /**
   * Adopt this already-attached TUN fd (IFF_TUN | IFF_NO_PI, e.g. inherited from a parent) instead of
   * opening one; `name` and `devicePath` are then ignored. The device owns the fd once this returns.
   */
  readonly fd?: number;
  /**
   * TUN offloads (IFF_VNET_HDR, TSO4/TSO6, USO4/USO6) where the kernel has them; default true.
   * Each one the kernel refuses falls back to plain packets (see `offloads.note`). They need
   * 64 KiB slots and batches of 16 or more, and are off otherwise.
   */
  readonly offload?: boolean;
}

/**
 * Checks an interface name as the kernel's dev_valid_name does. Throws TypeError for a non-string or
 * a name with '/', ':', whitespace, or '.'/'..'; RangeError for more than 15 bytes.
 */
export function checkInterfaceName(name: string): void {
  if (typeof name !== 'string') throw new TypeError('interface name must be a string');
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_INTERFACE_NAME_BYTES) {
    throw new RangeError(
      `interface name '${name}' is ${bytes} bytes; Linux allows at most ${MAX_INTERFACE_NAME_BYTES} (IFNAMSIZ - 1): choose a shorter name`,
    );
  }
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw new TypeError(
      `interface name '${name}' is not valid: Linux refuses '.', '..', and names with '/', ':' or whitespace`,
    );
  }
}

function checkBatchAndSlot(batchSize: number, slotBytes: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new RangeError(
      `batchSize must be an integer from 1 to ${MAX_BATCH_SIZE}, got ${batchSize}`,
    );
  }
  if (
    !Number.isInteger(slotBytes) ||
    slotBytes < MIN_SLOT_BYTES ||
    slotBytes > DEFAULT_SLOT_BYTES
  ) {
    throw new RangeError(
      `slotBytes must be an integer from ${MIN_SLOT_BYTES} to ${DEFAULT_SLOT_BYTES}, got ${slotBytes}`,
    );
  }
}

function checkMtu(mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_PACKET_BYTES) {
    throw new RangeError(
      `MTU must be an integer from ${MIN_MTU} to ${MAX_PACKET_BYTES}, got ${mtu}`,
    );
  }
}

/** Throws TypeError unless `p` is a Uint8Array, RangeError unless it has 1..65535 bytes. */
export function checkPacket(p: unknown, what: string): void {
  if (!(p instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (p.length === 0 || p.length > MAX_PACKET_BYTES) {
    throw new RangeError(`${what} is ${p.length} bytes; 1 to ${MAX_PACKET_BYTES} allowed`);
  }
}

/** checkPacket for every entry of an array (TypeError if it is not one). */
export function checkPackets(packets: readonly Uint8Array[], what: string): void {
  if (!Array.isArray(packets)) throw new TypeError(`${what} must be an array of Uint8Array`);
  for (let i = 0; i < packets.length; i++) checkPacket(packets[i], `${what}[${i}]`);
}

/** A PacketBatch over a ring whose contents change each call; reused to allocate nothing per batch. */
export class RingBatch implements PacketBatch {
  count = 0;
  constructor(
    readonly buffer: Uint8Array,
    readonly offsets: Uint32Array,
    readonly lengths: Uint32Array,
  ) {}

  packet(i: number): Uint8Array {
    if (!(i >= 0 && i < this.count)) {
      throw new RangeError(`packet index ${i} is outside this batch of ${this.count}`);
    }
    const start = this.offsets[i]!;
    return this.buffer.subarray(start, start + this.lengths[i]!);
  }
}

class NativeTunDevice extends NativePort<NativeTun, RingBatch, Uint8Array> implements TunDevice {
  #lastName: string;

  constructor(native: NativeTun, batchSize: number, slotBytes: number) {
    super(
      native,
      new RingBatch(native.rxBuffer, native.rxOffsets, native.rxLengths),
      batchSize,
      slotBytes,
    );
    this.#lastName = native.createdName;
  }

  get name(): string {
    if (!this.closed) {
      try {
        this.#lastName = this.native.name();
      } catch {
        // a detached interface has no name any more: keep the last one
      }
    }
    return this.#lastName;
  }

  get fd(): number {
    return this.native.fd();
  }

  get offloads(): TunOffloads {
    return this.native.offloads();
  }

  mtu(): number {
    return this.native.mtu();
  }

  setMtu(mtu: number): void {
    checkMtu(mtu);
    this.native.mtu(mtu);
  }

  onPackets(callback: (batch: PacketBatch) => void): void {
    if (typeof callback !== 'function') throw new TypeError('onPackets(callback): not a function');
    this.setOnBatch(callback);
  }

  writePackets(packets: readonly Uint8Array[]): number {
    checkPackets(packets, 'packets');
    return this.transmit(packets);
  }

  override close(): void {
    if (this.closed) return;
    this.#lastName = this.name;
    super.close();
  }

  protected failure(): Error {
    return new Error(`TUN interface ${this.#lastName} failed`);
  }

  protected fillSlot(packet: Uint8Array): Uint8Array {
    return packet;
  }

  protected flush(count: number): number {
    return this.native.write(count);
  }
}

/**
 * Creates (or attaches to an existing, unused) TUN interface with IFF_TUN | IFF_NO_PI, non-blocking.
 * The interface starts down and without addresses; reading starts at onPackets().
 * Throws TypeError/RangeError for bad options (a name over 15 bytes is refused before any syscall),
 * and Error with `code` for the system: ENOENT (no /dev/net/tun), EPERM (no CAP_NET_ADMIN), EBUSY
 * (the name is in use by another process), EINVAL (the name belongs to a non-TUN interface); with
 * `fd`: EBADF (not open), ENOTTY (not a TUN fd), EBADFD (not attached), EINVAL (not IFF_TUN |
 * IFF_NO_PI), leaving the fd to the caller. Each message says what to do. The caller owns the device
 * and must close() it.
 */
export function openTun(options: TunOptions = {}): TunDevice {
  const name = options.name ?? '';
  checkInterfaceName(name);
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const slotBytes = options.slotBytes ?? DEFAULT_SLOT_BYTES;
  checkBatchAndSlot(batchSize, slotBytes);
  if (options.mtu !== undefined) checkMtu(options.mtu);
  const devicePath = options.devicePath ?? TUN_DEVICE_PATH;
  if (typeof devicePath !== 'string') throw new TypeError('devicePath must be a string');
  const fd = options.fd ?? -1;
  if (!Number.isInteger(fd) || fd < -1 || fd > 0x7fff_ffff) {
    throw new RangeError(`fd must be a file descriptor number, got ${fd}`);
  }
  const offload = options.offload ?? true;
  if (typeof offload !== 'boolean') throw new TypeError('offload must be a boolean');
  const { Tun } = loadAddon();
  const device = new NativeTunDevice(
    new Tun(devicePath, name, batchSize, slotBytes, fd, offload ? 1 : 0),
    batchSize,
    slotBytes,
  );
  if (options.mtu !== undefined) {
    try {
      device.setMtu(options.mtu);
    } catch (err) {
      device.close();
      throw err;
    }
  }
  return device;
}

/** The test's side of a fake TUN device. */
export interface FakeTun {
  /** The TunDevice to hand to the code under test. */
  readonly device: TunDevice;
  /**
   * Makes the device read these packets (as if the kernel routed them into the interface), copied,
   * in batches of at most batchSize. Delivered at once when reading, else queued until onPackets()
   * or resume(). Ignored after close().
   */
  inject(packets: readonly Uint8Array[]): void;
  /** Copies of the packets the device wrote, oldest first; the test may empty it. */
  readonly written: Uint8Array[];
  /** Called with each packet the device writes (a copy), after it is added to `written`. */
  onWrite(callback: (packet: Uint8Array) => void): void;
  /** Fails the device as a deleted interface would (onError with code EBADFD). */
  fail(error?: Error): void;
}

/** Options of createFakeTun. */
export interface FakeTunOptions {
  readonly name?: string;
  readonly mtu?: number;
  readonly batchSize?: number;
  /** When false, writePackets accepts nothing (a link that is down: every packet counted in txErrors). */
  readonly up?: boolean;
}

/**
 * An in-memory TunDevice with the native one's contract (batches, copies, counters, pause/resume,
 * errors), for device tests without root. Throws like openTun for bad options.
 */
export function createFakeTun(options: FakeTunOptions = {}): FakeTun {
  const name = options.name ?? 'faketun0';
  checkInterfaceName(name);
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  checkBatchAndSlot(batchSize, DEFAULT_SLOT_BYTES);
  let mtu = options.mtu ?? 1500;
  checkMtu(mtu);
  const up = options.up ?? true;
  const queue: Uint8Array[] = [];
  const written: Uint8Array[] = [];
  let onPackets: ((batch: PacketBatch) => void) | undefined;
  let onError: ((error: Error) => void) | undefined;
  let onWrite: ((packet: Uint8Array) => void) | undefined;
  let paused = false;
  let failed = false;
  let closed = false;
  let delivering = false;
  const stats = { rxPackets: 0, rxBatches: 0, txPackets: 0, txErrors: 0 };

  const drain = (): void => {
    // Not re-entrant: packets injected from inside a callback go out after it returns.
    if (delivering) return;
    delivering = true;
    try {
      while (queue.length > 0 && onPackets !== undefined && !paused && !failed && !closed) {
        const chunk = queue.splice(0, batchSize);
        const total = chunk.reduce((sum, p) => sum + p.length, 0);
        const batch = new RingBatch(
          new Uint8Array(total),
          new Uint32Array(chunk.length),
          new Uint32Array(chunk.length),
        );
        let offset = 0;
        chunk.forEach((p, i) => {
          batch.buffer.set(p, offset);
          batch.offsets[i] = offset;
          batch.lengths[i] = p.length;
          offset += p.length;
        });
        batch.count = chunk.length;
        stats.rxPackets += chunk.length;
        stats.rxBatches++;
        try {
          onPackets(batch);
        } finally {
          batch.count = 0;
        }
      }
    } finally {
      delivering = false;
    }
  };

  const device: TunDevice = {
    get name() {
      return name;
    },
    get closed() {
      return closed;
    },
    fd: -1,
    offloads: Object.freeze({ vnetHeader: false, tso: false, uso: false, note: 'a fake device' }),
    mtu: () => mtu,
    setMtu(value: number) {
      checkMtu(value);
      mtu = value;
    },
    onPackets(callback) {
      if (typeof callback !== 'function')
        throw new TypeError('onPackets(callback): not a function');
      onPackets = callback;
      drain();
    },
    onError(callback) {
      if (typeof callback !== 'function') throw new TypeError('onError(callback): not a function');
      onError = callback;
    },
    writePackets(packets) {
      checkPackets(packets, 'packets');
      if (closed) return 0;
      if (!up) {
        stats.txErrors += packets.length;
        return 0;
      }
      for (const p of packets) {
        const copy = p.slice();
        written.push(copy);
        stats.txPackets++;
        onWrite?.(copy);
      }
      return packets.length;
    },
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
      drain();
    },
    stats: () => ({
      ...stats,
      rxMessages: stats.rxPackets,
      txMessages: stats.txPackets,
      rxDroppedTruncated: 0,
      rxDroppedKernel: 0,
      rxDroppedInvalid: 0,
      rxErrors: 0,
      txDroppedFull: 0,
      lastError: up ? undefined : 'EIO',
    }),
    close() {
      closed = true;
      queue.length = 0;
    },
  };

  return {
    device,
    written,
    inject(packets) {
      checkPackets(packets, 'packets');
      if (closed) return;
      for (const p of packets) queue.push(p.slice());
      drain();
    },
    onWrite(callback) {
      onWrite = callback;
    },
    fail(error) {
      if (closed || failed) return;
      failed = true;
      const err =
        error ??
        Object.assign(
          new Error(
            `TUN interface ${name} is gone (EBADFD): the interface was deleted; create it again`,
          ),
          {
            code: 'EBADFD',
          },
        );
      if (onError === undefined) throw err;
      onError(err);
    },
  };
}
