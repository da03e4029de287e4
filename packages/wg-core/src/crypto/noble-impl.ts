/**
 * The pure-TypeScript crypto provider's primitives on @noble/ciphers, @noble/curves and
 * @noble/hashes. Reached through `nobleCrypto` (noble-lazy.ts), which loads this module on first use.
 */
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { AEAD_TAG_LEN, KEY_LEN, MAC_LEN } from '../constants.js';
import type { CryptoProvider } from './provider.js';

function len(name: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (b.length !== n) throw new RangeError(`${name} must be ${n} bytes, got ${b.length}`);
}

function sealWith(
  aead: typeof chacha20poly1305,
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  ad: Uint8Array,
  dst: Uint8Array,
): void {
  if (dst.length !== plaintext.length + AEAD_TAG_LEN)
    throw new RangeError('dst must be plaintext.length + 16 bytes');
  aead(key, nonce, ad).encrypt(plaintext, dst);
}

function openWith(
  aead: typeof chacha20poly1305,
  key: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  ad: Uint8Array,
  dst: Uint8Array,
): boolean {
  if (ciphertext.length < AEAD_TAG_LEN) return false;
  if (dst.length !== ciphertext.length - AEAD_TAG_LEN)
    throw new RangeError('dst must be ciphertext.length - 16 bytes');
  try {
    aead(key, nonce, ad).decrypt(ciphertext, dst);
    return true;
  } catch {
    return false;
  }
}

/** The noble primitives; callers use them as `nobleCrypto`, never directly. */
export const nobleImpl: CryptoProvider = {
  name: 'noble (pure TypeScript)',
  x25519(privateKey, publicKey) {
    len('privateKey', privateKey, KEY_LEN);
    len('publicKey', publicKey, KEY_LEN);
    try {
      return x25519.getSharedSecret(privateKey, publicKey);
    } catch {
      // noble rejects low-order points by throwing; the provider contract says all-zero instead.
      return new Uint8Array(KEY_LEN);
    }
  },
  x25519Public(privateKey) {
    len('privateKey', privateKey, KEY_LEN);
    return x25519.getPublicKey(privateKey);
  },
  seal: (key, nonce, pt, ad, dst) => sealWith(chacha20poly1305, key, nonce, pt, ad, dst),
  open: (key, nonce, ct, ad, dst) => openWith(chacha20poly1305, key, nonce, ct, ad, dst),
  xseal: (key, nonce, pt, ad, dst) => sealWith(xchacha20poly1305, key, nonce, pt, ad, dst),
  xopen: (key, nonce, ct, ad, dst) => openWith(xchacha20poly1305, key, nonce, ct, ad, dst),
  hash(...parts) {
    const h = blake2s.create();
    for (const p of parts) h.update(p);
    return h.digest();
  },
  mac(key, data) {
    return blake2s(data, { key, dkLen: MAC_LEN });
  },
  hmac(key, data) {
    return hmac(blake2s, key, data);
  },
};
