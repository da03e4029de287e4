/**
 * Minimal IPv4/IPv6 packet helpers for TUN tests: parse headers, turn ICMP/ICMPv6 echo requests
 * (RFC 792, RFC 4443 §4) into replies, with the Internet checksum (RFC 1071).
 */

const IPV4_PROTO_ICMP = 1;
const IPV4_PROTO_UDP = 17;
const IPV6_NEXT_ICMPV6 = 58;
const IPV6_NEXT_UDP = 17;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const ICMPV6_ECHO_REQUEST = 128;
const ICMPV6_ECHO_REPLY = 129;
const IPV6_HEADER_BYTES = 40;

/** RFC 1071 one's-complement sum folded to 16 bits, not yet inverted. */
function sum16(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

function checksum(bytes: Uint8Array, initial = 0): number {
  return ~sum16(bytes, initial) & 0xffff;
}

/** IP version of a packet (4 or 6), or 0 if it is neither. */
export function ipVersion(p: Uint8Array): number {
  const v = p.length > 0 ? p[0]! >> 4 : 0;
  return v === 4 || v === 6 ? v : 0;
}

/** The echo reply answering an IPv4 ICMP or IPv6 ICMPv6 echo request, or undefined for anything else. */
export function echoReply(request: Uint8Array): Uint8Array | undefined {
  const v = ipVersion(request);
  if (v === 4) {
    const ihl = (request[0]! & 0x0f) * 4;
    if (request[9] !== IPV4_PROTO_ICMP || request[ihl] !== ICMP_ECHO_REQUEST) return undefined;
    const reply = request.slice();
    reply.set(request.subarray(16, 20), 12);
    reply.set(request.subarray(12, 16), 16);
    reply[10] = reply[11] = 0;
    const ipSum = checksum(reply.subarray(0, ihl));
    reply[10] = ipSum >> 8;
    reply[11] = ipSum & 0xff;
    reply[ihl] = ICMP_ECHO_REPLY;
    reply[ihl + 2] = reply[ihl + 3] = 0;
    const icmpSum = checksum(reply.subarray(ihl));
    reply[ihl + 2] = icmpSum >> 8;
    reply[ihl + 3] = icmpSum & 0xff;
    return reply;
  }
  if (v === 6) {
    const h = IPV6_HEADER_BYTES;
    if (request[6] !== IPV6_NEXT_ICMPV6 || request[h] !== ICMPV6_ECHO_REQUEST) return undefined;
    const reply = request.slice();
    reply.set(request.subarray(24, 40), 8);
    reply.set(request.subarray(8, 24), 24);
    reply[h] = ICMPV6_ECHO_REPLY;
    reply[h + 2] = reply[h + 3] = 0;
    const payload = reply.subarray(h);
    // pseudo-header: source, destination, upper-layer length, next header (RFC 8200 §8.1)
    const pseudo = new Uint8Array(40);
    pseudo.set(reply.subarray(8, 40), 0);
    new DataView(pseudo.buffer).setUint32(32, payload.length);
    pseudo[39] = IPV6_NEXT_ICMPV6;
    const sum = checksum(payload, sum16(pseudo));
    reply[h + 2] = sum >> 8;
    reply[h + 3] = sum & 0xff;
    return reply;
  }
  return undefined;
}

/** The UDP payload of an IPv4/IPv6 packet with no options/extension headers, or undefined. */
export function udpPayload(p: Uint8Array): { dstPort: number; payload: Uint8Array } | undefined {
  const v = ipVersion(p);
  let h: number;
  if (v === 4 && p[9] === IPV4_PROTO_UDP) h = (p[0]! & 0x0f) * 4;
  else if (v === 6 && p[6] === IPV6_NEXT_UDP) h = IPV6_HEADER_BYTES;
  else return undefined;
  if (p.length < h + 8) return undefined;
  return { dstPort: (p[h + 2]! << 8) | p[h + 3]!, payload: p.subarray(h + 8) };
}
