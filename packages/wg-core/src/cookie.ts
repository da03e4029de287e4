/**
 * MAC1, MAC2 and cookie replies: WireGuard's DoS mitigation (whitepaper §5.3 and §5.4.4, §5.4.7).
 * The checker is device-wide (messages sent to us); the generator is per peer (messages we send).
 */
import {
  COOKIE_LEN,
  COOKIE_REFRESH_TIME_MS,
  HASH_LEN,
  KEY_LEN,
  LABEL_COOKIE,
  LABEL_MAC1,
  MAC_LEN,
  MESSAGE_INITIATION_TYPE,
  XAEAD_NONCE_LEN,
} from './constants.js';
import type { CryptoProvider, RandomSource } from './crypto/provider.js';
import { LocalIdentity } from './handshake.js';
import { labelledHash } from './kdf.js';
import {
  COOKIE_REPLY_COOKIE_LEN,
  INITIATION_SENDER_INDEX_OFFSET,
  RESPONSE_SENDER_INDEX_OFFSET,
  macOffsets,
  messageType,
  readCookieReply,
  readLe32,
  writeCookieReply,
} from './messages.js';
import type { Endpoint } from './types.js';

/** Compares two equal-length MACs without an early exit, so timing does not reveal the prefix. */
function macEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

function checkTime(now: number): void {
  if (!Number.isFinite(now)) throw new RangeError('now must be a finite number of milliseconds');
}

function checkSource(source: unknown): asserts source is Uint8Array {
  if (!(source instanceof Uint8Array)) throw new TypeError('source must be a Uint8Array');
}

/** A cookie secret or a received cookie is usable while younger than COOKIE_REFRESH_TIME_MS. */
function fresh(setAtMs: number | null, now: number): boolean {
  return setAtMs !== null && now - setAtMs < COOKIE_REFRESH_TIME_MS;
}

/**
 * Verifies mac1/mac2 on handshake messages sent to us and answers with cookie replies
 * (whitepaper §5.4.7). Device-wide; keyed on our LocalIdentity.
 */
export class CookieChecker {
  readonly #crypto: CryptoProvider;
  #local: LocalIdentity | null;
  /** Rotating secret R_m; drawn lazily from the RandomSource when a reply needs it. */
  readonly #secret = new Uint8Array(KEY_LEN);
  #secretSetAtMs: number | null = null;

  /**
   * Takes our identity, or null while the device has no private key (then no MAC validates).
   * Throws TypeError on a wrong provider or identity.
   */
  constructor(crypto: CryptoProvider, local: LocalIdentity | null) {
    if (typeof crypto !== 'object' || crypto === null)
      throw new TypeError('crypto must be a CryptoProvider');
    this.#crypto = crypto;
    this.#local = CookieChecker.#checkedLocal(local);
  }

  static #checkedLocal(local: unknown): LocalIdentity | null {
    if (local !== null && !(local instanceof LocalIdentity)) {
      throw new TypeError('local must be a LocalIdentity or null');
    }
    return local;
  }

  /**
   * Switches to a new identity (new mac1 and cookie keys). The cookie secret is independent of
   * the identity and stays. Throws TypeError if `local` is neither null nor a LocalIdentity.
   */
  setLocal(local: LocalIdentity | null): void {
    this.#local = CookieChecker.#checkedLocal(local);
  }

  /**
   * True when `msg` is a full initiation or response whose mac1 = Mac(HASH(LABEL_MAC1 || Spub),
   * msg[0..mac1]) with our public key. False for anything else; never throws on a Uint8Array.
   */
  checkMac1(msg: Uint8Array): boolean {
    if (!(msg instanceof Uint8Array) || this.#local === null) return false;
    const offsets = macOffsets(msg);
    if (offsets === null) return false;
    const mac1 = this.#crypto.mac(this.#local.mac1Key, msg.subarray(0, offsets.mac1));
    return macEqual(mac1, msg.subarray(offsets.mac1, offsets.mac2));
  }

  /**
   * True when `msg`'s mac2 = Mac(cookie, msg[0..mac2]) with cookie = Mac(R_m, source) and R_m
   * younger than COOKIE_REFRESH_TIME_MS at `now`. False when no secret is live; never throws on
   * `msg` bytes. `source` is `endpointBytes` of the sender. Throws TypeError on a wrong `source`.
   */
  checkMac2(msg: Uint8Array, source: Uint8Array, now: number): boolean {
    checkSource(source);
    checkTime(now);
    if (!(msg instanceof Uint8Array)) return false;
    const offsets = macOffsets(msg);
    if (offsets === null || !fresh(this.#secretSetAtMs, now)) return false;
    const cookie = this.#crypto.mac(this.#secret, source);
    const mac2 = this.#crypto.mac(cookie, msg.subarray(0, offsets.mac2));
    cookie.fill(0);
    return macEqual(mac2, msg.subarray(offsets.mac2, offsets.mac2 + MAC_LEN));
  }

  /**
   * The 64-byte cookie reply to `msg` (an initiation or response whose mac1 the caller checked):
   * receiver index = msg's sender index, cookie = Mac(R_m, source) sealed with XChaCha20-Poly1305
   * under HASH(LABEL_COOKIE || Spub), AD = msg's mac1. R_m is redrawn from `random` when it is
   * unset or COOKIE_REFRESH_TIME_MS old at `now`; the nonce is drawn from `random` every time.
   * Returns fresh bytes the caller owns. Throws RangeError if `msg` is not a handshake message or
   * there is no local identity (both caller bugs: mac1 cannot have been checked).
   */
  createReply(msg: Uint8Array, source: Uint8Array, now: number, random: RandomSource): Uint8Array {
    checkSource(source);
    checkTime(now);
    if (typeof random !== 'function') throw new TypeError('random must be a RandomSource');
    const offsets = msg instanceof Uint8Array ? macOffsets(msg) : null;
    if (offsets === null) {
      throw new RangeError('createReply: msg must be a handshake initiation or response');
    }
    const local = this.#local;
    if (local === null) throw new RangeError('createReply: the device has no local identity');
    if (!fresh(this.#secretSetAtMs, now)) {
      random(this.#secret);
      this.#secretSetAtMs = now;
    }
    const cookie = this.#crypto.mac(this.#secret, source);
    const nonce = new Uint8Array(XAEAD_NONCE_LEN);
    random(nonce);
    const encryptedCookie = new Uint8Array(COOKIE_REPLY_COOKIE_LEN);
    const mac1 = msg.subarray(offsets.mac1, offsets.mac2);
    this.#crypto.xseal(local.cookieKey, nonce, cookie, mac1, encryptedCookie);
    cookie.fill(0);
    const senderIndexOffset =
      messageType(msg) === MESSAGE_INITIATION_TYPE
        ? INITIATION_SENDER_INDEX_OFFSET
        : RESPONSE_SENDER_INDEX_OFFSET;
    const receiverIndex = readLe32(msg, senderIndexOffset);
    return writeCookieReply({ receiverIndex, nonce, encryptedCookie });
  }
}

/** CookieGenerator's fixed fields: views of one buffer. */
interface CookieFields {
  readonly mac1Key: Uint8Array;
  readonly cookieKey: Uint8Array;
  readonly cookie: Uint8Array;
  readonly lastMac1: Uint8Array;
}

/**
 * Adds mac1/mac2 to the handshake messages we send to one peer and takes the cookies it replies
 * with (whitepaper §5.4.4, §5.4.7). Keyed on the peer's static public key.
 */
export class CookieGenerator {
  readonly #crypto: CryptoProvider;
  readonly #remoteStatic: Uint8Array;
  /**
   * HASH(LABEL_MAC1 || Spub_peer), HASH(LABEL_COOKIE || Spub_peer) (opens the peer's cookie
   * replies), the cookie and the last mac1 sent, in one buffer made by the first addMacs: a
   * configured peer that never handshakes holds none of them (see Handshake's fields on why).
   */
  #fields: CookieFields | null = null;
  #cookieSetAtMs: number | null = null;
  #hasLastMac1 = false;

  /**
   * Takes the peer's 32-byte static public key, kept by reference (a Peer passes its handshake's
   * copy): do not modify it afterwards. Throws TypeError/RangeError on a wrong one.
   */
  constructor(crypto: CryptoProvider, remoteStatic: Uint8Array) {
    if (typeof crypto !== 'object' || crypto === null)
      throw new TypeError('crypto must be a CryptoProvider');
    if (!(remoteStatic instanceof Uint8Array))
      throw new TypeError('remoteStatic must be a Uint8Array');
    if (remoteStatic.length !== KEY_LEN)
      throw new RangeError(`remoteStatic must be ${KEY_LEN} bytes`);
    this.#crypto = crypto;
    this.#remoteStatic = remoteStatic;
  }

  #state(): CookieFields {
    if (this.#fields !== null) return this.#fields;
    const buf = new Uint8Array(2 * HASH_LEN + COOKIE_LEN + MAC_LEN);
    const f: CookieFields = {
      mac1Key: buf.subarray(0, HASH_LEN),
      cookieKey: buf.subarray(HASH_LEN, 2 * HASH_LEN),
      cookie: buf.subarray(2 * HASH_LEN, 2 * HASH_LEN + COOKIE_LEN),
      lastMac1: buf.subarray(2 * HASH_LEN + COOKIE_LEN),
    };
    f.mac1Key.set(labelledHash(this.#crypto, LABEL_MAC1, this.#remoteStatic));
    f.cookieKey.set(labelledHash(this.#crypto, LABEL_COOKIE, this.#remoteStatic));
    this.#fields = f;
    return f;
  }

  /**
   * Writes mac1 into `msg` (an initiation or response we are about to send) and remembers it;
   * writes mac2 = Mac(cookie, msg[0..mac2]) when a cookie younger than COOKIE_REFRESH_TIME_MS is
   * held, else 16 zero bytes. Mutates `msg` in place. Throws RangeError if `msg` is not a
   * 148-byte initiation or 92-byte response.
   */
  addMacs(msg: Uint8Array, now: number): void {
    checkTime(now);
    const offsets = msg instanceof Uint8Array ? macOffsets(msg) : null;
    if (offsets === null) {
      throw new RangeError('addMacs: msg must be a handshake initiation or response');
    }
    const f = this.#state();
    const mac1 = this.#crypto.mac(f.mac1Key, msg.subarray(0, offsets.mac1));
    msg.set(mac1, offsets.mac1);
    f.lastMac1.set(mac1);
    this.#hasLastMac1 = true;
    if (fresh(this.#cookieSetAtMs, now)) {
      msg.set(this.#crypto.mac(f.cookie, msg.subarray(0, offsets.mac2)), offsets.mac2);
    } else {
      msg.fill(0, offsets.mac2, offsets.mac2 + MAC_LEN);
    }
  }

  /**
   * Takes a cookie reply from the peer: opens it with AD = the last mac1 we sent and keeps the
   * cookie, stamped `now`. Returns false, changing nothing, for anything that is not a 64-byte
   * cookie reply that authenticates, or when we have sent nothing yet. The caller matched the
   * reply's receiver index to this peer. Never throws on `msg` bytes.
   */
  consumeReply(msg: Uint8Array, now: number): boolean {
    checkTime(now);
    if (!(msg instanceof Uint8Array) || !this.#hasLastMac1) return false;
    const f = this.#state();
    const reply = readCookieReply(msg);
    if (reply === null) return false;
    const cookie = new Uint8Array(COOKIE_LEN);
    if (!this.#crypto.xopen(f.cookieKey, reply.nonce, reply.encryptedCookie, f.lastMac1, cookie)) {
      return false;
    }
    f.cookie.set(cookie);
    cookie.fill(0);
    this.#cookieSetAtMs = now;
    return true;
  }
}

// ---- Source address bytes for the cookie ----
const IPV4_LEN = 4;
const IPV6_LEN = 16;
const IPV6_GROUPS = 8;
const PORT_LEN = 2;
const BYTE_MAX = 0xff;
const PORT_MAX = 0xffff;
const GROUP_MAX = 0xffff;

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== IPV4_LEN) return null;
  const out = new Uint8Array(IPV4_LEN);
  for (let i = 0; i < IPV4_LEN; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const v = Number(p);
    if (v > BYTE_MAX) return null;
    out[i] = v;
  }
  return out;
}

function parseIpv6(text: string): Uint8Array | null {
  // A zone ("fe80::1%eth0") names the link, not the address; the address bytes are what we key on.
  const zone = text.indexOf('%');
  const addr = zone === -1 ? text : text.slice(0, zone);
  const halves = addr.split('::');
  if (halves.length > 2) return null;
  const groups: number[][] = [];
  for (const [h, half] of halves.entries()) {
    const words: number[] = [];
    if (half !== '') {
      const parts = half.split(':');
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!;
        // An embedded IPv4 address ("::ffff:192.0.2.1") may only end the whole address.
        if (h === halves.length - 1 && i === parts.length - 1 && p.includes('.')) {
          const v4 = parseIpv4(p);
          if (v4 === null) return null;
          words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        } else {
          if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
          words.push(Number.parseInt(p, 16) & GROUP_MAX);
        }
      }
    }
    groups.push(words);
  }
  const head = groups[0]!;
  const tail = groups[1] ?? [];
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== IPV6_GROUPS : total > IPV6_GROUPS - 1) return null;
  const words = [...head, ...new Array<number>(IPV6_GROUPS - total).fill(0), ...tail];
  const out = new Uint8Array(IPV6_LEN);
  words.forEach((w, i) => {
    out[2 * i] = w >>> 8;
    out[2 * i + 1] = w & BYTE_MAX;
  });
  return out;
}

/**
 * The bytes a cookie is bound to (A_m in whitepaper §5.4.7): the endpoint's IP address (4 bytes
 * for IPv4, 16 for IPv6, zone dropped) followed by the UDP port as 2 bytes BIG-endian. The port
 * order is ours to choose, since only the responder that issued a cookie ever recomputes it; we
 * follow the Linux kernel (network byte order, as the port sits in the UDP header) rather than
 * wireguard-go (little-endian). Returns fresh bytes. Throws RangeError on an unparsable address
 * or a port outside 0..65535.
 */
export function endpointBytes(ep: Endpoint): Uint8Array {
  if (typeof ep !== 'object' || ep === null || typeof ep.ip !== 'string') {
    throw new TypeError('endpointBytes: ep must be an Endpoint');
  }
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > PORT_MAX) {
    throw new RangeError('endpointBytes: port must be an integer in 0..65535');
  }
  const ip = ep.ip.includes(':') ? parseIpv6(ep.ip) : parseIpv4(ep.ip);
  if (ip === null) throw new RangeError(`endpointBytes: not an IP address: ${ep.ip}`);
  const out = new Uint8Array(ip.length + PORT_LEN);
  out.set(ip, 0);
  out[ip.length] = ep.port >>> 8;
  out[ip.length + 1] = ep.port & BYTE_MAX;
  return out;
}
