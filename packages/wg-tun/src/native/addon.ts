/**
 * Loads wgtun.node, the Linux I/O addon built by node-gyp on install (binding.gyp, src/native/*.c),
 * and types its raw surface. tun.ts and udp.ts are the supported API; nothing else should import this.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import { ENDPOINT_RECORD_BYTES, MAX_BATCH_SIZE, MIN_SLOT_BYTES } from '../io-constants.js';

/** Counters kept by the addon for one TUN device or UDP socket. */
export interface IoStats {
  /** Packets read and delivered to the callback. */
  readonly rxPackets: number;
  /** Callback invocations (rxPackets / rxBatches is the mean batch size). */
  readonly rxBatches: number;
  /** Reads from the kernel: datagrams, or GRO-coalesced runs of them (so fewer than rxPackets). */
  readonly rxMessages: number;
  /** Datagrams larger than a ring slot (UDP), or TUN reads that split into more than the ring holds, dropped. */
  readonly rxDroppedTruncated: number;
  /**
   * Datagrams the kernel dropped because the socket's receive buffer was full (SO_RXQ_OVFL; a
   * GSO/GRO run dropped whole counts once). The kernel stamps its count on each datagram it queues,
   * so this is as of the latest datagram received.
   */
  readonly rxDroppedKernel: number;
  /** Transient receive errors (a queued socket error), counted and passed over. */
  readonly rxErrors: number;
  /** TUN reads with offloads whose virtio_net_hdr or packet could not be split, dropped (TUN only). */
  readonly rxDroppedInvalid: number;
  /** Packets the kernel accepted. */
  readonly txPackets: number;
  /** Messages handed to the kernel: one per packet, or one per GSO run of datagrams. */
  readonly txMessages: number;
  /** Packets dropped because the kernel said EAGAIN (queue or send buffer full). */
  readonly txDroppedFull: number;
  /** Packets the kernel refused (EIO while the link is down, unreachable destination, ...). */
  readonly txErrors: number;
  /** errno name of the most recent error, e.g. 'EIO'. */
  readonly lastError: string | undefined;
}

/** The callback the addon calls: (count) per batch, (-1, error) once when the fd is dead. */
export type NativeBatchCallback = (count: number, error?: Error) => void;

/** The ring I/O surface the addon's Tun and Udp objects share. */
export interface NativeIo {
  /** Receive ring: packet i is rxBuffer[rxOffsets[i] .. rxOffsets[i] + rxLengths[i]). */
  readonly rxBuffer: Uint8Array;
  readonly rxOffsets: Uint32Array;
  readonly rxLengths: Uint32Array;
  /** Transmit ring: packet i goes in slot i, at i * slot bytes, with its length in txLengths[i]. */
  readonly txBuffer: Uint8Array;
  readonly txLengths: Uint32Array;
  start(callback: NativeBatchCallback): void;
  stop(): void;
  close(): void;
  stats(): IoStats;
}

/** The addon's Tun object. */
export interface NativeTun extends NativeIo {
  readonly createdName: string;
  write(count: number): number;
  fd(): number;
  name(): string;
  mtu(set?: number): number;
  offloads(): TunOffloads;
}

/** What a TUN device offloads (IFF_VNET_HDR, TUNSETOFFLOAD). */
export interface TunOffloads {
  /** Reads and writes carry a virtio_net_hdr. */
  readonly vnetHeader: boolean;
  /** TCP super-segments are read (and split here) and coalesced TCP segments written. */
  readonly tso: boolean;
  /** UDP super-segments are read and split here (Linux 6.2+). */
  readonly uso: boolean;
  /** Why an offload is off ('' when all are on). */
  readonly note: string;
}

/** The addon's Udp object. */
export interface NativeUdp extends NativeIo {
  readonly port: number;
  readonly family: 'dual' | 'ipv4' | 'ipv6';
  readonly receiveBufferBytes: number;
  readonly sendBufferBytes: number;
  /** Whether sends use UDP_SEGMENT (it turns itself off if a route refuses it) and reads UDP_GRO. */
  offloads(): { gso: boolean; gro: boolean };
  /** Address records (layout in io.h), one per rx packet / tx slot. */
  readonly rxMeta: Uint8Array;
  readonly txMeta: Uint8Array;
  send(count: number): number;
  setMark(mark: number): void;
}

/** The addon's exports. */
export interface NativeAddon {
  Tun: new (
    devicePath: string,
    name: string,
    batch: number,
    slot: number,
    fd: number,
    offload?: number,
  ) => NativeTun;
  Udp: new (
    host: string,
    port: number,
    batch: number,
    slot: number,
    receiveBufferBytes: number,
    sendBufferBytes: number,
    fwmark: number,
    offload: number,
  ) => NativeUdp;
  encodeAddress(address: string, port: number, meta: Uint8Array, index: number): boolean;
  decodeAddress(meta: Uint8Array, index: number): string;
  vnetSplit(input: Uint8Array, out: Uint8Array, offsets: Uint32Array, lengths: Uint32Array): number;
  groCoalesce(
    buffer: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    out: Uint8Array,
    outOffsets: Uint32Array,
    outLengths: Uint32Array,
  ): number;
  readonly META_STRIDE: number;
  readonly MAX_BATCH: number;
  readonly MIN_SLOT: number;
}

const ADDON_PATH = fileURLToPath(new URL('../../build/Release/wgtun.node', import.meta.url));
let addon: NativeAddon | undefined;

/**
 * Returns the loaded addon, loading it on first use (so importing wg-tun works where it is absent).
 * Throws Error if it is not built or this is not Linux, saying how to build it.
 */
export function loadAddon(): NativeAddon {
  if (addon !== undefined) return addon;
  if (process.platform !== 'linux') {
    throw new Error(
      `wg-tun's TUN and UDP I/O is Linux-only so far (this is ${process.platform}); use the in-memory fakes elsewhere`,
    );
  }
  if (!existsSync(ADDON_PATH)) {
    throw new Error(
      `wg-tun's native addon is not built (${ADDON_PATH} is missing): run \`pnpm install\`, or ` +
        '`pnpm --filter @wiremesh/wg-tun run build:native`; it needs python3, make, a C compiler and ' +
        "Node's headers (include/node next to the node binary)",
    );
  }
  const loaded = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
  if (
    loaded.META_STRIDE !== ENDPOINT_RECORD_BYTES ||
    loaded.MAX_BATCH !== MAX_BATCH_SIZE ||
    loaded.MIN_SLOT !== MIN_SLOT_BYTES ||
    typeof loaded.vnetSplit !== 'function'
  ) {
    throw new Error(
      `wg-tun's native addon at ${ADDON_PATH} is stale (its layout differs from this code): rebuild it with \`pnpm --filter @wiremesh/wg-tun run build:native\``,
    );
  }
  addon = loaded;
  return addon;
}
