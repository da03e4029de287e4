/**
 * The crypto provider: the only primitives wg-core uses (whitepaper §5.4: DH, AEAD, XAEAD, HASH,
 * MAC, HMAC). Two implementations pass the same vectors: `nobleCrypto` (pure TypeScript) and the
 * native one in `@wiremesh/wg-core/native`.
 */

export interface CryptoProvider {
  /** Short name reported at start-up, e.g. "noble" or "native (node:crypto + libsodium)". */
  readonly name: string;
  /**
   * X25519(privateKey, publicKey): the 32-byte shared secret. Never throws on untrusted input:
   * a low-order public key yields 32 zero bytes, which callers must reject. Returns fresh bytes.
   * Throws RangeError if either argument is not 32 bytes.
   */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array;
  /** The X25519 public key of a 32-byte private key (clamped internally). Returns fresh bytes. */
  x25519Public(privateKey: Uint8Array): Uint8Array;
  /**
   * ChaCha20-Poly1305 (RFC 8439) with a 12-byte nonce: writes ciphertext||tag into `dst`, whose
   * length must be plaintext.length + 16. `dst` may not overlap `plaintext` unless identical.
   */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, dst: Uint8Array): void;
  /**
   * Opens ciphertext||tag into `dst` (length ciphertext.length - 16). Returns false, and leaves
   * `dst` unspecified, when authentication fails. Never throws on untrusted bytes of valid length.
   */
  open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array, dst: Uint8Array): boolean;
  /** XChaCha20-Poly1305 with a 24-byte nonce; as `seal`. */
  xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array, dst: Uint8Array): void;
  /** XChaCha20-Poly1305 with a 24-byte nonce; as `open`. */
  xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array, dst: Uint8Array): boolean;
  /** BLAKE2s-256 of the concatenation of `parts`. Returns fresh bytes. */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** Keyed BLAKE2s with a 16-byte output: WireGuard's Mac(key, input). Returns fresh bytes. */
  mac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** HMAC-BLAKE2s-256 (RFC 2104 over BLAKE2s). Returns fresh bytes. */
  hmac(key: Uint8Array, data: Uint8Array): Uint8Array;
  /**
   * Optional: Kdf_n (whitepaper §5.4; HKDF, RFC 5869, over `hmac`) in one call, for a provider
   * that shares the prk's work between outputs. Writes T1..Tn into `out` (n = out.length, 1..3
   * in WireGuard, each 32 bytes); must equal the `hmac` chain kdf.ts runs when this is absent.
   * Throws RangeError on wrong output lengths or counts.
   */
  kdf?(key: Uint8Array, input: Uint8Array, out: readonly Uint8Array[]): void;
}

/** Fills `out` with cryptographically secure random bytes. Injected; wg-core never reads global randomness. */
export type RandomSource = (out: Uint8Array) => void;
