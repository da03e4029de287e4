/**
 * The inner IP packet as far as cryptokey routing needs it (whitepaper §3): version, length, and
 * where the source and destination addresses sit. RFC 791 (IPv4) and RFC 8200 (IPv6) headers.
 */

export const IPV4_HEADER_MIN_LEN = 20;
export const IPV6_HEADER_LEN = 40;
export const IPV4_SRC_OFFSET = 12;
export const IPV4_DST_OFFSET = 16;
export const IPV6_SRC_OFFSET = 8;
export const IPV6_DST_OFFSET = 24;
const IPV4_TOTAL_LEN_OFFSET = 2;
const IPV6_PAYLOAD_LEN_OFFSET = 4;

/**
 * The length the packet's own header claims (IPv4 total length, IPv6 40 + payload length), or 0
 * when `packet` is not a well-formed IPv4/IPv6 packet that fits in `length` bytes.
 * Never throws; reads only the first `length` bytes of `packet`.
 */
export function ipPacketLength(packet: Uint8Array, length = packet.length): number {
  if (length < 1) return 0;
  const version = packet[0]! >> 4;
  if (version === 4) {
    if (length < IPV4_HEADER_MIN_LEN) return 0;
    const total = (packet[IPV4_TOTAL_LEN_OFFSET]! << 8) | packet[IPV4_TOTAL_LEN_OFFSET + 1]!;
    return total >= IPV4_HEADER_MIN_LEN && total <= length ? total : 0;
  }
  if (version === 6) {
    if (length < IPV6_HEADER_LEN) return 0;
    const total =
      IPV6_HEADER_LEN +
      ((packet[IPV6_PAYLOAD_LEN_OFFSET]! << 8) | packet[IPV6_PAYLOAD_LEN_OFFSET + 1]!);
    return total <= length ? total : 0;
  }
  return 0;
}

/** The IP version nibble of a packet (4, 6, or anything else for garbage). */
export function ipVersion(packet: Uint8Array): number {
  return packet.length > 0 ? packet[0]! >> 4 : 0;
}
