/**
 * TUN offloads as pure functions over bytes (the addon's src/native/offload.c, which the native
 * TUN device runs on every read and write): splitting one read made with IFF_VNET_HDR (a
 * virtio_net_hdr, include/uapi/linux/virtio_net.h, then a packet that may be a TCP/UDP
 * super-segment) into IP packets, and coalescing TCP segments into such writes. For tests and benches.
 */
import { loadAddon } from './native/addon.js';
import { MAX_BATCH_SIZE, MAX_PACKET_BYTES, VNET_HDR_BYTES } from './io-constants.js';
import { checkPackets } from './tun.js';

/** Packets one read may split into (WGTUN_VNET_MAX_SEGMENTS in the addon). */
const MAX_SPLIT = 4_096;
/** Per packet: the largest IPv4 + TCP headers, copied into each, and 8-byte alignment. */
const SPLIT_OVERHEAD = 127;

/**
 * Splits one TUN read (virtio_net_hdr then an IP packet) into the IP packets it stands for, each
 * with complete checksums, as copies. Returns null when the read is malformed (the device counts it
 * in rxDroppedInvalid and drops it). Throws TypeError for a non-Uint8Array. Linux only (the addon).
 */
export function splitTunRead(read: Uint8Array): Uint8Array[] | null {
  if (!(read instanceof Uint8Array)) throw new TypeError('read must be a Uint8Array');
  const out = new Uint8Array(MAX_PACKET_BYTES + MAX_SPLIT * SPLIT_OVERHEAD);
  const offsets = new Uint32Array(MAX_SPLIT);
  const lengths = new Uint32Array(MAX_SPLIT);
  const n = loadAddon().vnetSplit(read, out, offsets, lengths);
  if (n < 0) return null;
  const packets: Uint8Array[] = [];
  for (let i = 0; i < n; i++) packets.push(out.slice(offsets[i]!, offsets[i]! + lengths[i]!));
  return packets;
}

/**
 * The writes a TUN device with TSO makes of `packets` (1..1024 IP packets, not modified): each a
 * virtio_net_hdr then a packet, consecutive TCP segments of one flow coalesced into one. Throws
 * TypeError/RangeError for a bad packet list. Linux only (the addon).
 */
export function coalesceTunWrites(packets: readonly Uint8Array[]): Uint8Array[] {
  checkPackets(packets, 'packets');
  if (packets.length > MAX_BATCH_SIZE) {
    throw new RangeError(
      `at most ${MAX_BATCH_SIZE} packets per write batch, got ${packets.length}`,
    );
  }
  const total = packets.reduce((sum, p) => sum + p.length, 0);
  const buffer = new Uint8Array(total);
  const offsets = new Uint32Array(packets.length);
  const lengths = new Uint32Array(packets.length);
  let at = 0;
  packets.forEach((p, i) => {
    buffer.set(p, at);
    offsets[i] = at;
    lengths[i] = p.length;
    at += p.length;
  });
  const out = new Uint8Array(total + packets.length * VNET_HDR_BYTES);
  const outOffsets = new Uint32Array(packets.length);
  const outLengths = new Uint32Array(packets.length);
  const n = loadAddon().groCoalesce(
    buffer,
    offsets,
    lengths,
    packets.length,
    out,
    outOffsets,
    outLengths,
  );
  const writes: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    writes.push(out.slice(outOffsets[i]!, outOffsets[i]! + outLengths[i]!));
  }
  return writes;
}
