/**
 * WireGuard's key derivation: HKDF (RFC 5869) over HMAC-BLAKE2s, and the Noise symmetric-state
 * helpers built on it (whitepaper §5.4: Kdf_n, MixHash; Noise rev 34 §5.2). A provider's own `kdf`
 * is used when it has one; otherwise Kdf_n is the chain of `hmac` calls below.
 */
import { CONSTRUCTION, HASH_LEN, IDENTIFIER } from './constants.js';
import type { CryptoProvider } from './crypto/provider.js';

/** HKDF-Expand counters are single bytes appended to the previous output (RFC 5869 §2.3). */
const KDF_COUNTER_1 = Uint8Array.of(1);
const KDF_COUNTER_2 = Uint8Array.of(2);
const KDF_COUNTER_3 = Uint8Array.of(3);

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Kdf1(key, input) = T1 where prk = HMAC(key, input), T1 = HMAC(prk, 0x01).
 * Takes a key and input of any length; returns 32 fresh bytes the caller owns.
 */
export function kdf1(crypto: CryptoProvider, key: Uint8Array, input: Uint8Array): Uint8Array {
  if (crypto.kdf) {
    const t1 = new Uint8Array(HASH_LEN);
    crypto.kdf(key, input, [t1]);
    return t1;
  }
  const prk = crypto.hmac(key, input);
  const t1 = crypto.hmac(prk, KDF_COUNTER_1);
  prk.fill(0);
  return t1;
}

/**
 * Kdf2(key, input) = (T1, T2) with T2 = HMAC(prk, T1 || 0x02).
 * Returns two fresh 32-byte arrays the caller owns.
 */
export function kdf2(
  crypto: CryptoProvider,
  key: Uint8Array,
  input: Uint8Array,
): [Uint8Array, Uint8Array] {
  if (crypto.kdf) {
    const out: [Uint8Array, Uint8Array] = [new Uint8Array(HASH_LEN), new Uint8Array(HASH_LEN)];
    crypto.kdf(key, input, out);
    return out;
  }
  const prk = crypto.hmac(key, input);
  const t1 = crypto.hmac(prk, KDF_COUNTER_1);
  const block = concat2(t1, KDF_COUNTER_2);
  const t2 = crypto.hmac(prk, block);
  block.fill(0);
  prk.fill(0);
  return [t1, t2];
}

/**
 * Kdf3(key, input) = (T1, T2, T3) with T3 = HMAC(prk, T2 || 0x03).
 * Returns three fresh 32-byte arrays the caller owns.
 */
export function kdf3(
  crypto: CryptoProvider,
  key: Uint8Array,
  input: Uint8Array,
): [Uint8Array, Uint8Array, Uint8Array] {
  if (crypto.kdf) {
    const out: [Uint8Array, Uint8Array, Uint8Array] = [
      new Uint8Array(HASH_LEN),
      new Uint8Array(HASH_LEN),
      new Uint8Array(HASH_LEN),
    ];
    crypto.kdf(key, input, out);
    return out;
  }
  const prk = crypto.hmac(key, input);
  const t1 = crypto.hmac(prk, KDF_COUNTER_1);
  const block2 = concat2(t1, KDF_COUNTER_2);
  const t2 = crypto.hmac(prk, block2);
  const block3 = concat2(t2, KDF_COUNTER_3);
  const t3 = crypto.hmac(prk, block3);
  block2.fill(0);
  block3.fill(0);
  prk.fill(0);
  return [t1, t2, t3];
}

/** MixHash: H := HASH(H || data). Returns a fresh 32-byte hash; neither argument is modified. */
export function mixHash(crypto: CryptoProvider, hash: Uint8Array, data: Uint8Array): Uint8Array {
  return crypto.hash(hash, data);
}

/**
 * MixKey for a DH result or public key: C := Kdf1(C, input). Returns the fresh chaining key; the
 * caller wipes the old one if it is secret.
 */
export function mixKey(
  crypto: CryptoProvider,
  chainingKey: Uint8Array,
  input: Uint8Array,
): Uint8Array {
  return kdf1(crypto, chainingKey, input);
}

/**
 * An ASCII protocol string as bytes: wg-core's type libraries have no TextEncoder, and every
 * WireGuard label is ASCII.
 */
function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) throw new RangeError('asciiBytes: the string is not ASCII');
    out[i] = c;
  }
  return out;
}

/**
 * HASH(label || publicKey): the MAC1 key (label "mac1----") or the cookie encryption key (label
 * "cookie--") tied to a static public key (whitepaper §5.4.4, §5.4.7). Returns 32 fresh bytes.
 * Throws RangeError if `label` is not ASCII.
 */
export function labelledHash(
  crypto: CryptoProvider,
  label: string,
  publicKey: Uint8Array,
): Uint8Array {
  return crypto.hash(asciiBytes(label), publicKey);
}

/** The chaining key and hash every handshake starts from (whitepaper §5.4.2). */
export interface InitialNoiseState {
  /** Ci = HASH(Construction). */
  readonly chainingKey: Uint8Array;
  /** Hi = HASH(Ci || Identifier). */
  readonly hash: Uint8Array;
}

const initialStates = new WeakMap<CryptoProvider, InitialNoiseState>();

/**
 * The initial (C, H) computed with `crypto`, cached per provider. The returned arrays are shared
 * and public: callers must never write into them.
 */
export function initialNoiseState(crypto: CryptoProvider): InitialNoiseState {
  let s = initialStates.get(crypto);
  if (s === undefined) {
    const chainingKey = crypto.hash(asciiBytes(CONSTRUCTION));
    const hash = crypto.hash(chainingKey, asciiBytes(IDENTIFIER));
    s = { chainingKey, hash };
    initialStates.set(crypto, s);
  }
  return s;
}
