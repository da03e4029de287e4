/**
 * Limits of wg-tun's native I/O layer (tun.ts, udp.ts, the addon in src/native). Linux values cite
 * their header; the addon checks the same bounds (src/native/io.h).
 */

// ---- Linux ----
/** include/uapi/linux/if.h: an interface name buffer, NUL included. */
export const IFNAMSIZ = 16;
/** The longest interface name the kernel accepts, in bytes. */
export const MAX_INTERFACE_NAME_BYTES = IFNAMSIZ - 1;
/** The TUN/TAP clone device (Documentation/networking/tuntap.rst). */
export const TUN_DEVICE_PATH = '/dev/net/tun';
/** An IPv4 or IPv6 packet (without jumbograms) or a UDP datagram is at most this long. */
export const MAX_PACKET_BYTES = 65_535;
/** include/uapi/linux/virtio_net.h: struct virtio_net_hdr, before each packet with IFF_VNET_HDR. */
export const VNET_HDR_BYTES = 10;
/** RFC 791: the smallest MTU every IPv4 link carries; the kernel refuses to go lower. */
export const MIN_MTU = 68;

// ---- Implementation ----
/** Packets per read/write batch (wireguard-go conn.IdealBatchSize). */
export const DEFAULT_BATCH_SIZE = 128;
/** Largest batch the addon accepts. */
export const MAX_BATCH_SIZE = 1_024;
/** Bytes per ring slot: any IP packet or UDP datagram fits, so nothing is ever truncated. */
export const DEFAULT_SLOT_BYTES = MAX_PACKET_BYTES + 1;
/** Smallest slot the addon accepts (an Ethernet MTU). */
export const MIN_SLOT_BYTES = 1_500;
/** Requested SO_RCVBUF/SO_SNDBUF (wireguard-go socketBufferSize): the receive buffer is the first
 * place packets drop under load. As root it is forced past net.core.rmem_max. */
export const DEFAULT_SOCKET_BUFFER_BYTES = 7 * 1024 * 1024;
/** Bytes per address record in rxMeta/txMeta (layout in src/native/io.h). */
export const ENDPOINT_RECORD_BYTES = 24;
/** Distinct IPv4 source endpoints remembered for reuse before the cache starts over. */
export const ENDPOINT_CACHE_SIZE = 4_096;
