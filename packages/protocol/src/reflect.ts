/**
 * UDP endpoint reflection: an agent sends a probe from its WireGuard socket to the coordinator's
 * reflect port and learns the public ip:port its NAT mapped it to. The reply is never larger than
 * the probe (no amplification), and both start with a byte WireGuard never uses as a message type
 * (WireGuard types are 1-4, whitepaper §5.4), so a userspace engine can tell them apart.
 *
 * Probe (PROBE_LENGTH bytes):  magic "WMR" | kind 0x01 | txid (8) | zero padding
 * Reply (REPLY_LENGTH bytes):  magic "WMR" | kind 0x02 | txid (8) | family (4|6) | 0 | port (u16 BE) | address (16; IPv4 in the first 4)
 */

/** First three bytes of every reflection message: ASCII "WMR". */
export const REFLECT_MAGIC = Uint8Array.of(0x57, 0x4d, 0x52);
/** Kind byte of a probe. */
export const REFLECT_KIND_PROBE = 0x01;
/** Kind byte of a reply. */
export const REFLECT_KIND_REPLY = 0x02;
/** Length of the transaction id that pairs a reply with its probe. */
export const REFLECT_TXID_LENGTH = 8;
const MAGIC_LENGTH = REFLECT_MAGIC.length;
const KIND_OFFSET = MAGIC_LENGTH;
const TXID_OFFSET = KIND_OFFSET + 1;
const FAMILY_OFFSET = TXID_OFFSET + REFLECT_TXID_LENGTH;
const PORT_OFFSET = FAMILY_OFFSET + 2;
const ADDRESS_OFFSET = PORT_OFFSET + 2;
const IPV4_LENGTH = 4;
const IPV6_LENGTH = 16;
/** Length of a reply: header, txid, family, reserved, port, 16 address bytes. */
export const REPLY_LENGTH = ADDRESS_OFFSET + IPV6_LENGTH;
/** Length of a probe: padded to twice the reply so the reflector only ever shrinks traffic. */
export const PROBE_LENGTH = 2 * REPLY_LENGTH;

/** What a reply says: the address and port the coordinator saw the probe come from. */
export interface ReflectedAddress {
  txid: Uint8Array;
  ip: string;
  port: number;
}

function hasMagic(b: Uint8Array): boolean {
  return b[0] === REFLECT_MAGIC[0] && b[1] === REFLECT_MAGIC[1] && b[2] === REFLECT_MAGIC[2];
}

/**
 * Builds a probe carrying `txid` (REFLECT_TXID_LENGTH random bytes the caller keeps to match the
 * reply). Returns fresh bytes owned by the caller. Throws RangeError for a txid of the wrong length.
 */
export function encodeProbe(txid: Uint8Array): Uint8Array {
  if (txid.length !== REFLECT_TXID_LENGTH)
    throw new RangeError(`txid must be ${REFLECT_TXID_LENGTH} bytes`);
  const out = new Uint8Array(PROBE_LENGTH);
  out.set(REFLECT_MAGIC, 0);
  out[KIND_OFFSET] = REFLECT_KIND_PROBE;
  out.set(txid, TXID_OFFSET);
  return out;
}

/** Whether `datagram` is a probe (exact length, magic, kind). Never throws. */
export function isProbe(datagram: Uint8Array): boolean {
  return (
    datagram.length === PROBE_LENGTH &&
    hasMagic(datagram) &&
    datagram[KIND_OFFSET] === REFLECT_KIND_PROBE
  );
}

/** Whether `datagram` looks like a reply (exact length, magic, kind): the demultiplexing test. Never throws. */
export function isReply(datagram: Uint8Array): boolean {
  return (
    datagram.length === REPLY_LENGTH &&
    hasMagic(datagram) &&
    datagram[KIND_OFFSET] === REFLECT_KIND_REPLY
  );
}

function parseIpv4(ip: string): number[] | null {
  const parts = ip.split('.');
  if (parts.length !== IPV4_LENGTH) return null;
  const out = parts.map((p) => (/^\d{1,3}$/.test(p) ? Number(p) : NaN));
  return out.every((n) => n >= 0 && n <= 255) ? out : null;
}

function parseIpv6(ip: string): number[] | null {
  const zone = ip.indexOf('%');
  const text = zone >= 0 ? ip.slice(0, zone) : ip;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const last = tail.length > 0 ? tail[tail.length - 1] : head[head.length - 1];
  const words: number[] = [];
  const toWords = (gs: string[]): boolean => {
    for (const g of gs) {
      if (g.includes('.')) {
        const v4 = parseIpv4(g);
        if (v4 === null || g !== last) return false;
        words.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
        words.push(parseInt(g, 16));
      }
    }
    return true;
  };
  if (!toWords(head)) return null;
  const headWords = words.length;
  if (!toWords(tail)) return null;
  const total = IPV6_LENGTH / 2;
  if (halves.length === 1 ? words.length !== total : words.length > total - 1) return null;
  const full = [
    ...words.slice(0, headWords),
    ...new Array<number>(total - words.length).fill(0),
    ...words.slice(headWords),
  ];
  return full.flatMap((w) => [w >> 8, w & 0xff]);
}

/**
 * Builds the reply to `probe` for a sender seen at `ip`:`port`. Returns fresh bytes of
 * REPLY_LENGTH, or null (never throws) when `probe` is not a probe or `ip` is not a literal address.
 */
export function encodeReply(probe: Uint8Array, ip: string, port: number): Uint8Array | null {
  if (!isProbe(probe) || !Number.isInteger(port) || port < 0 || port > 0xffff) return null;
  const v4 = ip.includes(':') ? null : parseIpv4(ip);
  const bytes = v4 ?? (ip.includes(':') ? parseIpv6(ip) : null);
  if (bytes === null) return null;
  const out = new Uint8Array(REPLY_LENGTH);
  out.set(REFLECT_MAGIC, 0);
  out[KIND_OFFSET] = REFLECT_KIND_REPLY;
  out.set(probe.subarray(TXID_OFFSET, TXID_OFFSET + REFLECT_TXID_LENGTH), TXID_OFFSET);
  out[FAMILY_OFFSET] = v4 !== null ? 4 : 6;
  new DataView(out.buffer).setUint16(PORT_OFFSET, port);
  out.set(bytes, ADDRESS_OFFSET);
  return out;
}

/**
 * Reads a reply. Returns the txid (a copy) and the address seen, or null (never throws) for
 * anything that is not a well-formed reply. IPv6 is returned in full uncompressed hex groups.
 */
export function decodeReply(datagram: Uint8Array): ReflectedAddress | null {
  if (!isReply(datagram)) return null;
  const family = datagram[FAMILY_OFFSET];
  const port = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength).getUint16(
    PORT_OFFSET,
  );
  const addr = datagram.subarray(ADDRESS_OFFSET, ADDRESS_OFFSET + IPV6_LENGTH);
  let ip: string;
  if (family === 4) {
    if (addr.subarray(IPV4_LENGTH).some((b) => b !== 0)) return null;
    ip = Array.from(addr.subarray(0, IPV4_LENGTH)).join('.');
  } else if (family === 6) {
    const groups: string[] = [];
    for (let i = 0; i < IPV6_LENGTH; i += 2)
      groups.push((((addr[i] ?? 0) << 8) | (addr[i + 1] ?? 0)).toString(16));
    ip = groups.join(':');
  } else {
    return null;
  }
  return { txid: datagram.slice(TXID_OFFSET, TXID_OFFSET + REFLECT_TXID_LENGTH), ip, port };
}
