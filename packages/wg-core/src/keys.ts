/**
 * WireGuard keys: Curve25519 private keys clamped as `wg genkey` does (RFC 7748 §5), public-key
 * derivation, the base64 text form of wg(8) and the hex form of the UAPI (wireguard.com/xplatform).
 */
import { KEY_LEN } from './constants.js';
import type { CryptoProvider, RandomSource } from './crypto/provider.js';

/** Length of a key in base64 with padding: 32 bytes -> 44 characters, ending in one '='. */
const KEY_BASE64_LEN = 4 * Math.ceil(KEY_LEN / 3);
const KEY_BASE64_PADDING = KEY_BASE64_LEN - Math.ceil((KEY_LEN * 8) / 6);
const KEY_HEX_LEN = 2 * KEY_LEN;
const BASE64_BITS = 6;
const BYTE_BITS = 8;
const BYTE_MASK = 0xff;
const SIX_BIT_MASK = 0x3f;
const NIBBLE_BITS = 4;
const NIBBLE_MASK = 0x0f;
const PAD = '='.charCodeAt(0);

// decodeScalar25519 (RFC 7748 §5): clear the 3 low bits, clear bit 255, set bit 254.
const CLAMP_FIRST_BYTE_AND = 0b1111_1000;
const CLAMP_LAST_BYTE_AND = 0b0111_1111;
const CLAMP_LAST_BYTE_OR = 0b0100_0000;

const code = (ch: string): number => ch.charCodeAt(0);

function assertBytes(name: string, b: unknown): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
}

function assertKey(name: string, k: unknown): asserts k is Uint8Array {
  assertBytes(name, k);
  if (k.length !== KEY_LEN)
    throw new RangeError(`${name} must be ${KEY_LEN} bytes, got ${k.length}`);
}

/**
 * -1 when lo <= c <= hi, else 0, with no branch on c: key text is secret, so decoding avoids
 * data-dependent branches and table lookups (the same care wireguard-tools takes in encoding.c).
 */
function inRange(c: number, lo: number, hi: number): number {
  return ((lo - 1 - c) & (c - hi - 1)) >> 31;
}

/** The 6-bit value of a standard-alphabet base64 character, or -1. */
function base64Value(c: number): number {
  // Each term is value+1 inside its range and 0 outside; the ranges are disjoint.
  const v =
    (inRange(c, code('A'), code('Z')) & (c - code('A') + 1)) |
    (inRange(c, code('a'), code('z')) & (c - code('a') + 26 + 1)) |
    (inRange(c, code('0'), code('9')) & (c - code('0') + 52 + 1)) |
    (inRange(c, code('+'), code('+')) & (62 + 1)) |
    (inRange(c, code('/'), code('/')) & (63 + 1));
  return v - 1;
}

/** The standard-alphabet base64 character of a 6-bit value, without branching on it. */
function base64Char(v: number): number {
  let c = v + code('A');
  c += inRange(v, 26, 63) & (code('a') - code('A') - 26);
  c += inRange(v, 52, 63) & (code('0') - 52 - (code('a') - 26));
  c += inRange(v, 62, 63) & (code('+') - 62 - (code('0') - 52));
  c += inRange(v, 63, 63) & (code('/') - code('+') - 1);
  return c;
}

/** The value of a hex digit (either case), or -1. */
function hexValue(c: number): number {
  const v =
    (inRange(c, code('0'), code('9')) & (c - code('0') + 1)) |
    (inRange(c, code('a'), code('f')) & (c - code('a') + 10 + 1)) |
    (inRange(c, code('A'), code('F')) & (c - code('A') + 10 + 1));
  return v - 1;
}

/** The lowercase hex digit of a nibble, without branching on it. */
function hexChar(v: number): number {
  return v + code('0') + (inRange(v, 10, 15) & (code('a') - code('0') - 10));
}

function clamp(k: Uint8Array): void {
  k[0]! &= CLAMP_FIRST_BYTE_AND;
  k[KEY_LEN - 1]! &= CLAMP_LAST_BYTE_AND;
  k[KEY_LEN - 1]! |= CLAMP_LAST_BYTE_OR;
}

/**
 * A copy of a 32-byte X25519 private key with RFC 7748 §5 clamping applied, as wg(8) and
 * wireguard-go store it. Returns fresh bytes the caller owns. Throws TypeError/RangeError on a
 * wrong type or length.
 */
export function clampPrivateKey(privateKey: Uint8Array): Uint8Array {
  assertKey('privateKey', privateKey);
  const k = privateKey.slice();
  clamp(k);
  return k;
}

/**
 * A new X25519 private key: 32 bytes from `random`, clamped as `wg genkey` does.
 * Returns fresh bytes the caller owns (and should `wipe` when done).
 * Throws Error if `random` returned all-zero bytes (a broken random source).
 */
export function generatePrivateKey(random: RandomSource): Uint8Array {
  if (typeof random !== 'function') throw new TypeError('random must be a RandomSource function');
  const k = new Uint8Array(KEY_LEN);
  random(k);
  if (isZeroKey(k))
    throw new Error('random source returned all-zero bytes; refusing to make a key');
  clamp(k);
  return k;
}

/**
 * The X25519 public key of `privateKey` (clamped internally, so unclamped keys give what wg(8)
 * gives). Returns fresh bytes. Throws TypeError/RangeError unless `privateKey` is 32 bytes.
 */
export function publicKeyOf(crypto: CryptoProvider, privateKey: Uint8Array): Uint8Array {
  assertKey('privateKey', privateKey);
  return crypto.x25519Public(privateKey);
}

/** The 44-character base64 form of a 32-byte key, as wg(8) prints it. Throws RangeError on other lengths. */
export function keyToBase64(key: Uint8Array): string {
  assertKey('key', key);
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < KEY_LEN; i++) {
    acc = (acc << BYTE_BITS) | key[i]!;
    bits += BYTE_BITS;
    while (bits >= BASE64_BITS) {
      bits -= BASE64_BITS;
      out.push(base64Char((acc >> bits) & SIX_BIT_MASK));
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) out.push(base64Char((acc << (BASE64_BITS - bits)) & SIX_BIT_MASK));
  for (let i = 0; i < KEY_BASE64_PADDING; i++) out.push(PAD);
  return String.fromCharCode(...out);
}

/**
 * Parses the base64 form of a key: exactly 44 characters of the standard alphabet, one trailing
 * '=', canonical (unused low bits zero), no whitespace (trim first). Returns fresh bytes.
 * Throws Error with a message that names the problem but never contains the text itself.
 */
export function keyFromBase64(text: string): Uint8Array {
  if (typeof text !== 'string') throw new TypeError('key must be a string');
  if (text.length !== KEY_BASE64_LEN) {
    throw new Error(
      `invalid key: expected ${KEY_BASE64_LEN} base64 characters for a ${KEY_LEN}-byte key, got ${text.length}`,
    );
  }
  const dataChars = KEY_BASE64_LEN - KEY_BASE64_PADDING;
  const out = new Uint8Array(KEY_LEN);
  let bad = 0;
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < dataChars; i++) {
    const v = base64Value(text.charCodeAt(i));
    bad |= v >> 31;
    acc = (acc << BASE64_BITS) | (v & SIX_BIT_MASK);
    bits += BASE64_BITS;
    if (bits >= BYTE_BITS) {
      bits -= BYTE_BITS;
      out[o++] = (acc >> bits) & BYTE_MASK;
      acc &= (1 << bits) - 1;
    }
  }
  // Leftover bits must be zero, or two different strings would decode to the same key.
  bad |= acc;
  for (let i = dataChars; i < KEY_BASE64_LEN; i++) bad |= text.charCodeAt(i) ^ PAD;
  if (bad !== 0) {
    out.fill(0);
    throw new Error(
      `invalid key: not the canonical base64 (standard alphabet, one '=' of padding) of ${KEY_LEN} bytes`,
    );
  }
  return out;
}

/** The 64-character lowercase hex form of a 32-byte key, as the UAPI writes it. Throws RangeError on other lengths. */
export function keyToHex(key: Uint8Array): string {
  assertKey('key', key);
  const out: number[] = [];
  for (let i = 0; i < KEY_LEN; i++) {
    out.push(hexChar(key[i]! >> NIBBLE_BITS), hexChar(key[i]! & NIBBLE_MASK));
  }
  return String.fromCharCode(...out);
}

/**
 * Parses the hex form of a key: exactly 64 hex digits, either case, nothing else. Returns fresh
 * bytes. Throws Error with a message that never contains the text itself.
 */
export function keyFromHex(text: string): Uint8Array {
  if (typeof text !== 'string') throw new TypeError('key must be a string');
  if (text.length !== KEY_HEX_LEN) {
    throw new Error(
      `invalid key: expected ${KEY_HEX_LEN} hex digits for a ${KEY_LEN}-byte key, got ${text.length}`,
    );
  }
  const out = new Uint8Array(KEY_LEN);
  let bad = 0;
  for (let i = 0; i < KEY_LEN; i++) {
    const hi = hexValue(text.charCodeAt(2 * i));
    const lo = hexValue(text.charCodeAt(2 * i + 1));
    bad |= (hi | lo) >> 31;
    out[i] = ((hi << NIBBLE_BITS) | lo) & BYTE_MASK;
  }
  if (bad !== 0) {
    out.fill(0);
    throw new Error('invalid key: expected only hex digits 0-9, a-f, A-F');
  }
  return out;
}

/** True when the 32-byte `key` is all zero (an unset key, or a rejected DH output); constant time. */
export function isZeroKey(key: Uint8Array): boolean {
  assertKey('key', key);
  let acc = 0;
  for (let i = 0; i < KEY_LEN; i++) acc |= key[i]!;
  return acc === 0;
}

/**
 * True when `a` and `b` hold the same bytes. Time depends only on the lengths, never on the
 * contents (for MACs, keys, cookies). Throws TypeError if either is not a Uint8Array.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  assertBytes('a', a);
  assertBytes('b', b);
  if (a.length !== b.length) return false;
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i]! ^ b[i]!;
  return acc === 0;
}

/** Overwrites `buf` with zeros in place (secrets, temporaries). Throws TypeError if not a Uint8Array. */
export function wipe(buf: Uint8Array): void {
  assertBytes('buf', buf);
  buf.fill(0);
}
