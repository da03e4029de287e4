/**
 * The four WireGuard messages on the wire (whitepaper §5.4.2-§5.4.7, §5.4.6): exact-length
 * classification, little-endian header fields, and views onto each field. Offsets are derived
 * from the field sizes, never written out.
 */
import {
  AEAD_TAG_LEN,
  COOKIE_LEN,
  KEY_LEN,
  MAC_LEN,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_RESPONSE_TYPE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  TAI64N_LEN,
  XAEAD_NONCE_LEN,
} from './constants.js';

// ---- Field sizes ----
/** Byte 0 is the type, bytes 1..3 are reserved zero. */
export const MESSAGE_HEADER_LEN = 4;
const MESSAGE_RESERVED_OFFSET = 1;
export const INDEX_LEN = 4;
export const COUNTER_LEN = 8;
const UINT32_MAX = 0xffff_ffff;
const UINT64_MAX = (1n << 64n) - 1n;

// ---- Handshake initiation (type 1, 148 bytes) ----
export const INITIATION_SENDER_INDEX_OFFSET = MESSAGE_HEADER_LEN;
export const INITIATION_EPHEMERAL_OFFSET = INITIATION_SENDER_INDEX_OFFSET + INDEX_LEN;
export const INITIATION_STATIC_OFFSET = INITIATION_EPHEMERAL_OFFSET + KEY_LEN;
export const INITIATION_STATIC_LEN = KEY_LEN + AEAD_TAG_LEN;
export const INITIATION_TIMESTAMP_OFFSET = INITIATION_STATIC_OFFSET + INITIATION_STATIC_LEN;
export const INITIATION_TIMESTAMP_LEN = TAI64N_LEN + AEAD_TAG_LEN;
export const INITIATION_MAC1_OFFSET = INITIATION_TIMESTAMP_OFFSET + INITIATION_TIMESTAMP_LEN;
export const INITIATION_MAC2_OFFSET = INITIATION_MAC1_OFFSET + MAC_LEN;

// ---- Handshake response (type 2, 92 bytes) ----
export const RESPONSE_SENDER_INDEX_OFFSET = MESSAGE_HEADER_LEN;
export const RESPONSE_RECEIVER_INDEX_OFFSET = RESPONSE_SENDER_INDEX_OFFSET + INDEX_LEN;
export const RESPONSE_EPHEMERAL_OFFSET = RESPONSE_RECEIVER_INDEX_OFFSET + INDEX_LEN;
export const RESPONSE_EMPTY_OFFSET = RESPONSE_EPHEMERAL_OFFSET + KEY_LEN;
/** AEAD(k, 0, ε, H) is just the tag. */
export const RESPONSE_EMPTY_LEN = AEAD_TAG_LEN;
export const RESPONSE_MAC1_OFFSET = RESPONSE_EMPTY_OFFSET + RESPONSE_EMPTY_LEN;
export const RESPONSE_MAC2_OFFSET = RESPONSE_MAC1_OFFSET + MAC_LEN;

// ---- Cookie reply (type 3, 64 bytes) ----
export const COOKIE_REPLY_RECEIVER_INDEX_OFFSET = MESSAGE_HEADER_LEN;
export const COOKIE_REPLY_NONCE_OFFSET = COOKIE_REPLY_RECEIVER_INDEX_OFFSET + INDEX_LEN;
export const COOKIE_REPLY_COOKIE_OFFSET = COOKIE_REPLY_NONCE_OFFSET + XAEAD_NONCE_LEN;
export const COOKIE_REPLY_COOKIE_LEN = COOKIE_LEN + AEAD_TAG_LEN;

// ---- Transport data (type 4, 32 bytes or more) ----
export const TRANSPORT_RECEIVER_INDEX_OFFSET = MESSAGE_HEADER_LEN;
export const TRANSPORT_COUNTER_OFFSET = TRANSPORT_RECEIVER_INDEX_OFFSET + INDEX_LEN;
export const TRANSPORT_DATA_OFFSET = TRANSPORT_COUNTER_OFFSET + COUNTER_LEN;

/** A WireGuard message type, or 0 for bytes that are none of them. */
export type MessageType =
  | typeof MESSAGE_INITIATION_TYPE
  | typeof MESSAGE_RESPONSE_TYPE
  | typeof MESSAGE_COOKIE_REPLY_TYPE
  | typeof MESSAGE_TRANSPORT_TYPE
  | 0;

/**
 * Classifies untrusted bytes: 1-4 when the type byte is known, the reserved bytes are zero and
 * the length is exact for the type (transport: at least 32), else 0. Never throws on a Uint8Array.
 */
export function messageType(buf: Uint8Array): 1 | 2 | 3 | 4 | 0 {
  if (buf.length < MESSAGE_HEADER_LEN) return 0;
  for (let i = MESSAGE_RESERVED_OFFSET; i < MESSAGE_HEADER_LEN; i++) if (buf[i] !== 0) return 0;
  switch (buf[0]) {
    case MESSAGE_INITIATION_TYPE:
      return buf.length === MESSAGE_INITIATION_SIZE ? MESSAGE_INITIATION_TYPE : 0;
    case MESSAGE_RESPONSE_TYPE:
      return buf.length === MESSAGE_RESPONSE_SIZE ? MESSAGE_RESPONSE_TYPE : 0;
    case MESSAGE_COOKIE_REPLY_TYPE:
      return buf.length === MESSAGE_COOKIE_REPLY_SIZE ? MESSAGE_COOKIE_REPLY_TYPE : 0;
    case MESSAGE_TRANSPORT_TYPE:
      return buf.length >= MESSAGE_TRANSPORT_MIN_SIZE ? MESSAGE_TRANSPORT_TYPE : 0;
    default:
      return 0;
  }
}

function checkRange(buf: Uint8Array, off: number, len: number): void {
  if (!Number.isInteger(off) || off < 0 || off + len > buf.length) {
    throw new RangeError(`offset ${off} + ${len} is outside a ${buf.length}-byte buffer`);
  }
}

/** Reads an unsigned little-endian 32-bit integer. Throws RangeError when out of bounds. */
export function readLe32(buf: Uint8Array, off: number): number {
  checkRange(buf, off, INDEX_LEN);
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}

/**
 * Writes `value` (an integer in 0..2^32-1) little-endian at `off`. Throws RangeError when out of
 * bounds or when `value` is not such an integer.
 */
export function writeLe32(buf: Uint8Array, off: number, value: number): void {
  checkRange(buf, off, INDEX_LEN);
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
    throw new RangeError('writeLe32: value must be an integer in 0..2^32-1');
  }
  buf[off] = value & 0xff;
  buf[off + 1] = (value >>> 8) & 0xff;
  buf[off + 2] = (value >>> 16) & 0xff;
  buf[off + 3] = value >>> 24;
}

/** Reads an unsigned little-endian 64-bit integer. Throws RangeError when out of bounds. */
export function readLe64(buf: Uint8Array, off: number): bigint {
  checkRange(buf, off, COUNTER_LEN);
  const lo = readLe32(buf, off);
  const hi = readLe32(buf, off + INDEX_LEN);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * Writes `value` (0..2^64-1) little-endian at `off`. Throws RangeError when out of bounds or out
 * of range.
 */
export function writeLe64(buf: Uint8Array, off: number, value: bigint): void {
  checkRange(buf, off, COUNTER_LEN);
  if (typeof value !== 'bigint' || value < 0n || value > UINT64_MAX) {
    throw new RangeError('writeLe64: value must be a bigint in 0..2^64-1');
  }
  writeLe32(buf, off, Number(value & 0xffff_ffffn));
  writeLe32(buf, off + INDEX_LEN, Number(value >> 32n));
}

/** A handshake initiation's fields. From a reader they are views into the message's bytes. */
export interface MessageInitiation {
  readonly senderIndex: number;
  /** Epub_i, 32 bytes. */
  readonly ephemeral: Uint8Array;
  /** AEAD(k, 0, Spub_i, H), 48 bytes. */
  readonly encryptedStatic: Uint8Array;
  /** AEAD(k, 0, TAI64N, H), 28 bytes. */
  readonly encryptedTimestamp: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

/** A handshake response's fields. From a reader they are views into the message's bytes. */
export interface MessageResponse {
  readonly senderIndex: number;
  readonly receiverIndex: number;
  /** Epub_r, 32 bytes. */
  readonly ephemeral: Uint8Array;
  /** AEAD(k, 0, ε, H): the 16-byte tag. */
  readonly encryptedNothing: Uint8Array;
  readonly mac1: Uint8Array;
  readonly mac2: Uint8Array;
}

/** A cookie reply's fields. From a reader they are views into the message's bytes. */
export interface MessageCookieReply {
  readonly receiverIndex: number;
  /** 24 random bytes. */
  readonly nonce: Uint8Array;
  /** XAEAD(key, nonce, cookie, mac1 of the answered message), 32 bytes. */
  readonly encryptedCookie: Uint8Array;
}

/** A transport message's fields. `encryptedPacket` is a view into the message's bytes. */
export interface MessageTransport {
  readonly receiverIndex: number;
  readonly counter: bigint;
  /** The encrypted, padded inner packet followed by the 16-byte tag. */
  readonly encryptedPacket: Uint8Array;
}

/**
 * Views onto an initiation's fields, or null when `messageType(buf) !== 1`. Never throws; the
 * views alias `buf`, which the caller keeps owning.
 */
export function readInitiation(buf: Uint8Array): MessageInitiation | null {
  if (messageType(buf) !== MESSAGE_INITIATION_TYPE) return null;
  return {
    senderIndex: readLe32(buf, INITIATION_SENDER_INDEX_OFFSET),
    ephemeral: buf.subarray(INITIATION_EPHEMERAL_OFFSET, INITIATION_STATIC_OFFSET),
    encryptedStatic: buf.subarray(INITIATION_STATIC_OFFSET, INITIATION_TIMESTAMP_OFFSET),
    encryptedTimestamp: buf.subarray(INITIATION_TIMESTAMP_OFFSET, INITIATION_MAC1_OFFSET),
    mac1: buf.subarray(INITIATION_MAC1_OFFSET, INITIATION_MAC2_OFFSET),
    mac2: buf.subarray(INITIATION_MAC2_OFFSET, MESSAGE_INITIATION_SIZE),
  };
}

/** Views onto a response's fields, or null when `messageType(buf) !== 2`. Never throws. */
export function readResponse(buf: Uint8Array): MessageResponse | null {
  if (messageType(buf) !== MESSAGE_RESPONSE_TYPE) return null;
  return {
    senderIndex: readLe32(buf, RESPONSE_SENDER_INDEX_OFFSET),
    receiverIndex: readLe32(buf, RESPONSE_RECEIVER_INDEX_OFFSET),
    ephemeral: buf.subarray(RESPONSE_EPHEMERAL_OFFSET, RESPONSE_EMPTY_OFFSET),
    encryptedNothing: buf.subarray(RESPONSE_EMPTY_OFFSET, RESPONSE_MAC1_OFFSET),
    mac1: buf.subarray(RESPONSE_MAC1_OFFSET, RESPONSE_MAC2_OFFSET),
    mac2: buf.subarray(RESPONSE_MAC2_OFFSET, MESSAGE_RESPONSE_SIZE),
  };
}

/** Views onto a cookie reply's fields, or null when `messageType(buf) !== 3`. Never throws. */
export function readCookieReply(buf: Uint8Array): MessageCookieReply | null {
  if (messageType(buf) !== MESSAGE_COOKIE_REPLY_TYPE) return null;
  return {
    receiverIndex: readLe32(buf, COOKIE_REPLY_RECEIVER_INDEX_OFFSET),
    nonce: buf.subarray(COOKIE_REPLY_NONCE_OFFSET, COOKIE_REPLY_COOKIE_OFFSET),
    encryptedCookie: buf.subarray(COOKIE_REPLY_COOKIE_OFFSET, MESSAGE_COOKIE_REPLY_SIZE),
  };
}

/** A transport message's header and a view of its payload, or null when `messageType(buf) !== 4`. */
export function readTransport(buf: Uint8Array): MessageTransport | null {
  if (messageType(buf) !== MESSAGE_TRANSPORT_TYPE) return null;
  return {
    receiverIndex: readLe32(buf, TRANSPORT_RECEIVER_INDEX_OFFSET),
    counter: readLe64(buf, TRANSPORT_COUNTER_OFFSET),
    encryptedPacket: buf.subarray(TRANSPORT_DATA_OFFSET),
  };
}

function putField(dst: Uint8Array, off: number, len: number, name: string, b?: Uint8Array): void {
  if (b === undefined) return;
  if (!(b instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (b.length !== len) throw new RangeError(`${name} must be ${len} bytes, got ${b.length}`);
  dst.set(b, off);
}

function header(size: number, type: number): Uint8Array {
  const out = new Uint8Array(size);
  out[0] = type;
  return out;
}

/** Initiation fields to serialize; mac1 and mac2 default to zeros (the cookie layer fills them). */
export type MessageInitiationFields = Omit<MessageInitiation, 'mac1' | 'mac2'> &
  Partial<Pick<MessageInitiation, 'mac1' | 'mac2'>>;

/**
 * Serializes an initiation into 148 fresh bytes the caller owns. Throws RangeError on a field of
 * the wrong length or an index outside 0..2^32-1.
 */
export function writeInitiation(m: MessageInitiationFields): Uint8Array {
  const out = header(MESSAGE_INITIATION_SIZE, MESSAGE_INITIATION_TYPE);
  writeLe32(out, INITIATION_SENDER_INDEX_OFFSET, m.senderIndex);
  putField(out, INITIATION_EPHEMERAL_OFFSET, KEY_LEN, 'ephemeral', m.ephemeral);
  putField(
    out,
    INITIATION_STATIC_OFFSET,
    INITIATION_STATIC_LEN,
    'encryptedStatic',
    m.encryptedStatic,
  );
  putField(
    out,
    INITIATION_TIMESTAMP_OFFSET,
    INITIATION_TIMESTAMP_LEN,
    'encryptedTimestamp',
    m.encryptedTimestamp,
  );
  putField(out, INITIATION_MAC1_OFFSET, MAC_LEN, 'mac1', m.mac1);
  putField(out, INITIATION_MAC2_OFFSET, MAC_LEN, 'mac2', m.mac2);
  return out;
}

/** Response fields to serialize; mac1 and mac2 default to zeros. */
export type MessageResponseFields = Omit<MessageResponse, 'mac1' | 'mac2'> &
  Partial<Pick<MessageResponse, 'mac1' | 'mac2'>>;

/**
 * Serializes a response into 92 fresh bytes the caller owns. Throws RangeError on a field of the
 * wrong length or an index outside 0..2^32-1.
 */
export function writeResponse(m: MessageResponseFields): Uint8Array {
  const out = header(MESSAGE_RESPONSE_SIZE, MESSAGE_RESPONSE_TYPE);
  writeLe32(out, RESPONSE_SENDER_INDEX_OFFSET, m.senderIndex);
  writeLe32(out, RESPONSE_RECEIVER_INDEX_OFFSET, m.receiverIndex);
  putField(out, RESPONSE_EPHEMERAL_OFFSET, KEY_LEN, 'ephemeral', m.ephemeral);
  putField(out, RESPONSE_EMPTY_OFFSET, RESPONSE_EMPTY_LEN, 'encryptedNothing', m.encryptedNothing);
  putField(out, RESPONSE_MAC1_OFFSET, MAC_LEN, 'mac1', m.mac1);
  putField(out, RESPONSE_MAC2_OFFSET, MAC_LEN, 'mac2', m.mac2);
  return out;
}

/**
 * Serializes a cookie reply into 64 fresh bytes the caller owns. Throws RangeError on a field of
 * the wrong length or an index outside 0..2^32-1.
 */
export function writeCookieReply(m: MessageCookieReply): Uint8Array {
  const out = header(MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_COOKIE_REPLY_TYPE);
  writeLe32(out, COOKIE_REPLY_RECEIVER_INDEX_OFFSET, m.receiverIndex);
  putField(out, COOKIE_REPLY_NONCE_OFFSET, XAEAD_NONCE_LEN, 'nonce', m.nonce);
  putField(
    out,
    COOKIE_REPLY_COOKIE_OFFSET,
    COOKIE_REPLY_COOKIE_LEN,
    'encryptedCookie',
    m.encryptedCookie,
  );
  return out;
}

/**
 * Writes the 16-byte transport header (type 4, receiver index, counter) at the start of `dst`, so
 * the data path can seal straight into the bytes after it. Throws RangeError if `dst` is shorter
 * than a keepalive (32 bytes) or a field is out of range.
 */
export function writeTransportHeader(
  dst: Uint8Array,
  receiverIndex: number,
  counter: bigint,
): void {
  if (dst.length < MESSAGE_TRANSPORT_MIN_SIZE) {
    throw new RangeError(`a transport message is at least ${MESSAGE_TRANSPORT_MIN_SIZE} bytes`);
  }
  dst[0] = MESSAGE_TRANSPORT_TYPE;
  dst.fill(0, MESSAGE_RESERVED_OFFSET, MESSAGE_HEADER_LEN);
  writeLe32(dst, TRANSPORT_RECEIVER_INDEX_OFFSET, receiverIndex);
  writeLe64(dst, TRANSPORT_COUNTER_OFFSET, counter);
}

/**
 * Where mac1 and mac2 sit in a handshake message (type 1 or 2; they are its last 32 bytes), or
 * null for any other bytes. Never throws.
 */
export function macOffsets(msg: Uint8Array): { mac1: number; mac2: number } | null {
  switch (messageType(msg)) {
    case MESSAGE_INITIATION_TYPE:
      return { mac1: INITIATION_MAC1_OFFSET, mac2: INITIATION_MAC2_OFFSET };
    case MESSAGE_RESPONSE_TYPE:
      return { mac1: RESPONSE_MAC1_OFFSET, mac2: RESPONSE_MAC2_OFFSET };
    default:
      return null;
  }
}
