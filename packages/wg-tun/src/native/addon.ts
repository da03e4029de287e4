/**
 * Loads wgtun.node, the Linux I/O addon (binding.gyp, src/native/*.c): a source build, else the
 * prebuilt binary shipped in the package, found by node-gyp-build; and types its raw surface.
 * tun.ts and udp.ts are the supported API; nothing else should import this.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
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

/** The package root: build/Release (a source build) and prebuilds/<platform>-<arch> live here. */
const PACKAGE_DIR = fileURLToPath(new URL('../..', import.meta.url));
let addon: NativeAddon | undefined;

/**
 * Where node-gyp-build finds the addon: a source build (build/Release) first, else the prebuilt
 * binary for this platform, architecture and libc (prebuilds/linux-x64/wgtun.napi.glibc.node).
 * Returns undefined when there is neither.
 */
function findAddon(): string | undefined {
  const loader = createRequire(import.meta.url)('node-gyp-build') as { path(dir: string): string };
  try {
    return loader.path(PACKAGE_DIR);
  } catch {
    return undefined;
  }
}

/**
 * Returns the loaded addon, loading it on first use (so importing wg-tun works where it is absent).
 * Throws Error with one line saying what is missing if it is not there, does not load (another
 * architecture or libc), or this is not Linux.
 */
export function loadAddon(): NativeAddon {
  if (addon !== undefined) return addon;
  if (process.platform !== 'linux') {
    throw new Error(
      `wg-tun's TUN and UDP I/O is Linux-only so far (this is ${process.platform}); use the in-memory fakes elsewhere`,
    );
  }
  const path = findAddon();
  if (path === undefined) {
    throw new Error(
      `wg-tun's native addon is missing: no prebuilt binary for linux-${process.arch} in ${join(PACKAGE_DIR, 'prebuilds')} ` +
        `and no source build in ${join(PACKAGE_DIR, 'build', 'Release')}; build it with \`npm rebuild -g wiremesh\` ` +
        '(installed package) or `pnpm --filter @wiremesh/wg-tun run build:native` (repository), which needs python3, ' +
        "make, a C compiler and Node's headers (include/node next to the node binary)",
    );
  }
  let loaded: NativeAddon;
  try {
    loaded = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    const reason = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    throw new Error(
      `wg-tun's native addon at ${path} does not load (${reason}): rebuild it for this host with \`npm rebuild -g wiremesh\` or \`pnpm --filter @wiremesh/wg-tun run build:native\``,
    );
  }
  if (
    loaded.META_STRIDE !== ENDPOINT_RECORD_BYTES ||
    loaded.MAX_BATCH !== MAX_BATCH_SIZE ||
    loaded.MIN_SLOT !== MIN_SLOT_BYTES ||
    typeof loaded.vnetSplit !== 'function'
  ) {
    throw new Error(
      `wg-tun's native addon at ${path} is stale (its layout differs from this code): rebuild it with \`pnpm --filter @wiremesh/wg-tun run build:native\``,
    );
  }
  addon = loaded;
  return addon;
}

/** Path of the addon loadAddon() would load, or undefined (for `status` and the packaging checks). */
export function addonPath(): string | undefined {
  return process.platform === 'linux' ? findAddon() : undefined;
}
