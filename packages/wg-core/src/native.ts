/**
 * The native crypto provider for Node (whitepaper §5.4 primitives, same contract and vectors as
 * `nobleCrypto`): libsodium through the optional `sodium-native`, and node:crypto (OpenSSL).
 * The only wg-core module that imports node: modules; import it as `@wiremesh/wg-core/native`.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  getCiphers,
} from 'node:crypto';
import { createRequire } from 'node:module';
import { AEAD_NONCE_LEN, AEAD_TAG_LEN, HASH_LEN, KEY_LEN, XAEAD_NONCE_LEN } from './constants.js';
import { blake2sHash, blake2sMac, hkdfBlake2s, hmacBlake2s } from './crypto/blake2s.js';
import { nobleCrypto, provideNobleLoader } from './crypto/noble-lazy.js';
import type { CryptoProvider } from './crypto/provider.js';

// The pure-TS primitives load synchronously when first used (require of an ES module, Node >=
// 20.19), so a process on the native provider never pays their ~8 MiB.
provideNobleLoader(
  () =>
    (
      createRequire(import.meta.url)(
        './crypto/noble-impl.js',
      ) as typeof import('./crypto/noble-impl.js')
    ).nobleImpl,
);

/**
 * From this plaintext size on, OpenSSL's ChaCha20-Poly1305 beats libsodium's (its vectorised code
 * amortises node:crypto's ~3 µs per-call cost); below it libsodium wins by 2-6x. Measured on
 * x86-64 (Node 20, OpenSSL 3.0, sodium-native 4.3.3) at 1.4-16 KiB: the two meet between 8 and
 * 16 KiB. Transport packets (<= MTU) always take the libsodium path.
 */
const OPENSSL_AEAD_MIN_BYTES = 8 * 1024;
/** DER of an X25519 PKCS#8 PrivateKeyInfo up to the raw 32-byte key (RFC 8410 §7, OID 1.3.101.110). */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const OPENSSL_CHACHA = 'chacha20-poly1305';

/** sodium-native's AEAD encrypt: ciphertext c (with tag) from message m. */
type SodiumAeadEncrypt = (
  c: Uint8Array,
  m: Uint8Array,
  ad: Uint8Array,
  nsec: null,
  npub: Uint8Array,
  k: Uint8Array,
) => number;
/** sodium-native's AEAD decrypt: message m from ciphertext c; throws on a bad tag. */
type SodiumAeadDecrypt = (
  m: Uint8Array,
  nsec: null,
  c: Uint8Array,
  ad: Uint8Array,
  npub: Uint8Array,
  k: Uint8Array,
) => number;

/** The few sodium-native 4.x functions used here; each throws on failure (e.g. a bad tag). */
interface SodiumBinding {
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  crypto_aead_chacha20poly1305_ietf_encrypt: SodiumAeadEncrypt;
  crypto_aead_chacha20poly1305_ietf_decrypt: SodiumAeadDecrypt;
  crypto_aead_xchacha20poly1305_ietf_encrypt: SodiumAeadEncrypt;
  crypto_aead_xchacha20poly1305_ietf_decrypt: SodiumAeadDecrypt;
}

const SODIUM_FUNCTIONS: readonly (keyof SodiumBinding)[] = [
  'crypto_scalarmult',
  'crypto_scalarmult_base',
  'crypto_aead_chacha20poly1305_ietf_encrypt',
  'crypto_aead_chacha20poly1305_ietf_decrypt',
  'crypto_aead_xchacha20poly1305_ietf_encrypt',
  'crypto_aead_xchacha20poly1305_ietf_decrypt',
];

type Sealer = (
  key: Uint8Array,
  nonce: Uint8Array,
  pt: Uint8Array,
  ad: Uint8Array,
  dst: Uint8Array,
) => void;
type Opener = (
  key: Uint8Array,
  nonce: Uint8Array,
  ct: Uint8Array,
  ad: Uint8Array,
  dst: Uint8Array,
) => boolean;

function loadSodium(): { binding: SodiumBinding } | { error: string } {
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)('sodium-native');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return {
      error:
        code === 'MODULE_NOT_FOUND'
          ? 'sodium-native is not installed'
          : `sodium-native failed to load (${String(code ?? err)})`,
    };
  }
  const missing = SODIUM_FUNCTIONS.filter(
    (f) => typeof (mod as Record<string, unknown>)[f] !== 'function',
  );
  if (missing.length > 0) return { error: `sodium-native lacks ${missing.join(', ')}` };
  return { binding: mod as SodiumBinding };
}

function bytes(name: string, b: unknown): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
}

function len(name: string, b: unknown, n: number): asserts b is Uint8Array {
  bytes(name, b);
  if (b.length !== n) throw new RangeError(`${name} must be ${n} bytes, got ${b.length}`);
}

/** A Uint8Array over a Buffer's bytes, so callers get the documented type and no copy is made. */
function plain(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Key, nonce, input and ad checks of every AEAD call, in the order the caller names them. */
function checkAead(
  nonceLen: number,
  key: Uint8Array,
  nonce: Uint8Array,
  inputName: 'plaintext' | 'ciphertext',
  input: Uint8Array,
  ad: Uint8Array,
): void {
  len('key', key, KEY_LEN);
  len('nonce', nonce, nonceLen);
  bytes(inputName, input);
  bytes('ad', ad);
}

/** Argument checks shared by every seal: programmer errors throw before any native call. */
function checkSeal(
  nonceLen: number,
  key: Uint8Array,
  nonce: Uint8Array,
  pt: Uint8Array,
  ad: Uint8Array,
  dst: Uint8Array,
): void {
  checkAead(nonceLen, key, nonce, 'plaintext', pt, ad);
  len('dst', dst, pt.length + AEAD_TAG_LEN);
}

/** As checkSeal; false (not a throw) for a ciphertext too short to hold a tag: that is untrusted input. */
function checkOpen(
  nonceLen: number,
  key: Uint8Array,
  nonce: Uint8Array,
  ct: Uint8Array,
  ad: Uint8Array,
  dst: Uint8Array,
): boolean {
  checkAead(nonceLen, key, nonce, 'ciphertext', ct, ad);
  bytes('dst', dst);
  if (ct.length < AEAD_TAG_LEN) return false;
  len('dst', dst, ct.length - AEAD_TAG_LEN);
  return true;
}

const opensslSeal: Sealer = (key, nonce, pt, ad, dst) => {
  const c = createCipheriv(OPENSSL_CHACHA, key, nonce, { authTagLength: AEAD_TAG_LEN });
  c.setAAD(ad, { plaintextLength: pt.length });
  // update() returns a copy before dst is written, so in-place sealing (pt inside dst) is safe.
  const body = c.update(pt);
  const tail = c.final();
  dst.set(body, 0);
  dst.set(tail, body.length);
  dst.set(c.getAuthTag(), pt.length);
};

const opensslOpen: Opener = (key, nonce, ct, ad, dst) => {
  const n = ct.length - AEAD_TAG_LEN;
  const d = createDecipheriv(OPENSSL_CHACHA, key, nonce, { authTagLength: AEAD_TAG_LEN });
  d.setAAD(ad, { plaintextLength: n });
  d.setAuthTag(ct.subarray(n));
  const body = d.update(ct.subarray(0, n));
  try {
    d.final();
  } catch {
    body.fill(0);
    return false;
  }
  dst.set(body, 0);
  body.fill(0);
  return true;
};

function opensslX25519Private(privateKey: Uint8Array): ReturnType<typeof createPrivateKey> {
  const der = Buffer.concat([PKCS8_X25519_PREFIX, privateKey]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/**
 * X25519 through OpenSSL. The private key goes in as PKCS#8 DER (the raw-key JWK form would need
 * its public half); the public key as a JWK, which imports ~7x faster than SPKI DER (measured).
 */
function opensslX25519(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.length);
    const pub = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: x.toString('base64url') },
      format: 'jwk',
    });
    return plain(diffieHellman({ privateKey: opensslX25519Private(privateKey), publicKey: pub }));
  } catch {
    // OpenSSL refuses an all-zero result (a low-order point); the contract asks for zeros instead.
    return new Uint8Array(KEY_LEN);
  }
}

function sodiumAead(
  encrypt: SodiumAeadEncrypt,
  decrypt: SodiumAeadDecrypt,
): { seal: Sealer; open: Opener } {
  return {
    seal: (key, nonce, pt, ad, dst) => {
      encrypt(dst, pt, ad, null, nonce, key);
    },
    open: (key, nonce, ct, ad, dst) => {
      try {
        decrypt(dst, null, ct, ad, nonce, key);
        return true;
      } catch {
        return false;
      }
    },
  };
}

/** Which implementation serves each primitive; reported by `selectCrypto`. */
interface Plan {
  readonly x25519: 'libsodium' | 'OpenSSL (public keys: noble)';
  readonly aead: 'libsodium' | 'OpenSSL' | 'libsodium+OpenSSL';
  readonly xaead: 'libsodium' | 'noble';
}

function build(
  sodium: SodiumBinding | null,
): { provider: CryptoProvider; plan: Plan } | { error: string } {
  const opensslChacha = getCiphers().includes(OPENSSL_CHACHA);
  let opensslX25519Works = false;
  try {
    opensslX25519Private(new Uint8Array(KEY_LEN));
    opensslX25519Works = true;
  } catch {
    // An OpenSSL without X25519 (FIPS builds): fall through to libsodium or to "unavailable".
  }
  if (!sodium && !(opensslChacha && opensslX25519Works)) {
    return { error: 'neither libsodium nor OpenSSL X25519 + ChaCha20-Poly1305 is available' };
  }

  const x25519 = sodium
    ? (privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array => {
        const q = new Uint8Array(KEY_LEN);
        try {
          sodium.crypto_scalarmult(q, privateKey, publicKey);
        } catch {
          // libsodium refuses low-order points; the contract asks for zeros instead.
          q.fill(0);
        }
        return q;
      }
    : opensslX25519;
  const x25519Public = sodium
    ? (privateKey: Uint8Array): Uint8Array => {
        const q = new Uint8Array(KEY_LEN);
        sodium.crypto_scalarmult_base(q, privateKey);
        return q;
      }
    : // OpenSSL needs a PKCS#8 import plus an SPKI export here, slower than noble's base-point mult.
      nobleCrypto.x25519Public;

  const small = sodium
    ? sodiumAead(
        sodium.crypto_aead_chacha20poly1305_ietf_encrypt,
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt,
      )
    : { seal: opensslSeal, open: opensslOpen };
  const big = opensslChacha ? { seal: opensslSeal, open: opensslOpen } : small;
  const x = sodium
    ? sodiumAead(
        sodium.crypto_aead_xchacha20poly1305_ietf_encrypt,
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt,
      )
    : { seal: nobleCrypto.xseal, open: nobleCrypto.xopen };

  const provider: CryptoProvider = {
    name: sodium ? 'native (libsodium + node:crypto)' : 'native (node:crypto)',
    x25519(privateKey, publicKey) {
      len('privateKey', privateKey, KEY_LEN);
      len('publicKey', publicKey, KEY_LEN);
      return x25519(privateKey, publicKey);
    },
    x25519Public(privateKey) {
      len('privateKey', privateKey, KEY_LEN);
      return x25519Public(privateKey);
    },
    seal(key, nonce, pt, ad, dst) {
      checkSeal(AEAD_NONCE_LEN, key, nonce, pt, ad, dst);
      (pt.length < OPENSSL_AEAD_MIN_BYTES ? small : big).seal(key, nonce, pt, ad, dst);
    },
    open(key, nonce, ct, ad, dst) {
      if (!checkOpen(AEAD_NONCE_LEN, key, nonce, ct, ad, dst)) return false;
      return (dst.length < OPENSSL_AEAD_MIN_BYTES ? small : big).open(key, nonce, ct, ad, dst);
    },
    xseal(key, nonce, pt, ad, dst) {
      checkSeal(XAEAD_NONCE_LEN, key, nonce, pt, ad, dst);
      x.seal(key, nonce, pt, ad, dst);
    },
    xopen(key, nonce, ct, ad, dst) {
      if (!checkOpen(XAEAD_NONCE_LEN, key, nonce, ct, ad, dst)) return false;
      return x.open(key, nonce, ct, ad, dst);
    },
    // BLAKE2s in TypeScript (crypto/blake2s.ts): the handshake hashes 32-116 bytes at a time, where
    // node:crypto's per-call object costs more than the compression (hash 1.7x, HMAC 2x faster)
    // and OpenSSL's keyed BLAKE2s (BLAKE2SMAC) is not reachable at all. (OpenSSL wins from tens of
    // KiB on, 900 vs 580 MB/s, sizes wg-core never hashes.)
    hash(...parts) {
      for (const p of parts) bytes('part', p);
      return blake2sHash(parts);
    },
    mac(key, data) {
      bytes('key', key);
      bytes('data', data);
      return blake2sMac(key, data);
    },
    hmac(key, data) {
      bytes('key', key);
      bytes('data', data);
      return hmacBlake2s(key, data);
    },
    // Kdf_n with the prk's pads compressed once: 6 + 2n compressions where n hmac calls take 4 + 4n.
    kdf(key, input, out) {
      bytes('key', key);
      bytes('input', input);
      if (!Array.isArray(out)) throw new TypeError('out must be an array of Uint8Array');
      for (const o of out) bytes('out[i]', o);
      hkdfBlake2s(key, input, out);
    },
  };
  const plan: Plan = {
    x25519: sodium ? 'libsodium' : 'OpenSSL (public keys: noble)',
    aead: sodium ? (opensslChacha ? 'libsodium+OpenSSL' : 'libsodium') : 'OpenSSL',
    xaead: sodium ? 'libsodium' : 'noble',
  };
  let mismatch: string | null;
  try {
    mismatch = selfCheck(provider);
  } catch {
    mismatch = 'a primitive threw';
  }
  if (mismatch) return { error: `self-check against known answers failed (${mismatch})` };
  return { provider, plan };
}

/**
 * Known answers of every primitive on fixed inputs (computed with noble, the reference), both AEAD
 * paths included, so a broken or mismatched binding is never selected. Long outputs are compared
 * by their BLAKE2s digest, whose own answer is checked first. Answers rather than a live noble
 * comparison keep the pure-TS primitives unloaded.
 */
const KNOWN = {
  aPub: '07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c',
  bPub: '5714769d116bf76436ae74bc793d2c30ad1903c59ac5273805c7e2698b410c36',
  shared: 'c9ea6a3f79a000b60b076d4afc990b272f3f0b5aaa3f0b8713c209273e363863',
  hash: 'b208aa24c2db734fc3a29bf987280c8fd5a105d56979b06ae00ee61b700ade2e',
  hmac: '13f70b043987a6ad6fac8467abd2e5bbe92ffaa97f1268f07abd68bcafc480ce',
  mac: 'dd1f4de3b65146db9797bdedb99c1ca0',
  /** BLAKE2s of T1||T2||T3 of Kdf3(a, b), and of Kdf3(a, ε) (which derives transport keys). */
  kdf: '791560ad68b433768f91d2d41cd97d50188df6a085897e50ece2d8272bac4c36',
  kdfEmpty: '8d8e912fd95625e7a2d9c25334897552fa713f2546c0c5d7ecb87e078dea76b0',
  /** BLAKE2s of ciphertext||tag, by plaintext size: the libsodium and the OpenSSL path. */
  seal: new Map([
    [AEAD_TAG_LEN, '3619137d53cf71d82e5f15f461eb153825c621060db818a898c4baf86a824859'],
    [OPENSSL_AEAD_MIN_BYTES, 'c4bd24cc1d3ee0a85e9c299037ede2a9dab7cd227199ca6eab8ff20d00ea207f'],
  ]),
  xseal: new Map([
    [AEAD_TAG_LEN, 'c3fce5c5be6059bb584242a62967f2365e770385c40cca9184ec039ba2ee8df1'],
    [OPENSSL_AEAD_MIN_BYTES, 'fc186a63d3c91811c9e5a9d23dc6db16b632e58d9413cdd8f162e27c19865aec'],
  ]),
} as const;

/** Checks every primitive against KNOWN. Returns the failing primitive's name or null. */
function selfCheck(p: CryptoProvider): string | null {
  const fill = (n: number, seed: number): Uint8Array =>
    Uint8Array.from({ length: n }, (_, i) => seed + i);
  const hex = (b: Uint8Array): string =>
    Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
  const a = fill(KEY_LEN, 1);
  const b = fill(KEY_LEN, 101);
  if (hex(p.hash(a, b)) !== KNOWN.hash) return 'hash';
  if (hex(p.hmac(a, b)) !== KNOWN.hmac) return 'hmac';
  const ad = fill(AEAD_TAG_LEN, 7);
  if (hex(p.mac(a, ad)) !== KNOWN.mac) return 'mac';
  if (hex(p.x25519Public(a)) !== KNOWN.aPub || hex(p.x25519Public(b)) !== KNOWN.bPub)
    return 'x25519Public';
  if (hex(p.x25519(a, Buffer.from(KNOWN.bPub, 'hex'))) !== KNOWN.shared) return 'x25519';
  for (const size of [AEAD_TAG_LEN, OPENSSL_AEAD_MIN_BYTES]) {
    const pt = fill(size, 3);
    const sealed = new Uint8Array(size + AEAD_TAG_LEN);
    p.seal(a, fill(AEAD_NONCE_LEN, 9), pt, ad, sealed);
    const back = new Uint8Array(size);
    if (
      hex(p.hash(sealed)) !== KNOWN.seal.get(size) ||
      !p.open(a, fill(AEAD_NONCE_LEN, 9), sealed, ad, back) ||
      hex(back) !== hex(pt)
    )
      return 'seal/open';
    sealed[0]! ^= 1;
    if (p.open(a, fill(AEAD_NONCE_LEN, 9), sealed, ad, back)) return 'open accepted a forgery';
    p.xseal(a, fill(XAEAD_NONCE_LEN, 9), pt, ad, sealed);
    if (
      hex(p.hash(sealed)) !== KNOWN.xseal.get(size) ||
      !p.xopen(a, fill(XAEAD_NONCE_LEN, 9), sealed, ad, back) ||
      hex(back) !== hex(pt)
    )
      return 'xseal/xopen';
  }
  for (const [input, known] of p.kdf
    ? ([
        [b, KNOWN.kdf],
        [new Uint8Array(0), KNOWN.kdfEmpty],
      ] as const)
    : []) {
    const out = [new Uint8Array(HASH_LEN), new Uint8Array(HASH_LEN), new Uint8Array(HASH_LEN)];
    p.kdf!(a, input, out);
    if (hex(p.hash(...out)) !== known) return 'kdf';
  }
  return null;
}

/** Options of `nativeCrypto`. */
export interface NativeCryptoOptions {
  /** Use libsodium (sodium-native) where present. Default true; false tests the OpenSSL-only path. */
  readonly libsodium?: boolean;
}

type Probe = { provider: CryptoProvider; detail: string } | { provider: null; detail: string };
const probes = new Map<boolean, Probe>();

function probe(useSodium: boolean): Probe {
  const cached = probes.get(useSodium);
  if (cached) return cached;
  const loaded = useSodium ? loadSodium() : { error: 'libsodium disabled by option' };
  const sodiumNote = 'error' in loaded ? `libsodium unavailable: ${loaded.error}` : null;
  const built = build('binding' in loaded ? loaded.binding : null);
  let result: Probe;
  if ('error' in built) {
    result = { provider: null, detail: [built.error, sodiumNote].filter(Boolean).join('; ') };
  } else {
    const { plan } = built;
    const aead =
      plan.aead === 'libsodium+OpenSSL'
        ? `libsodium below ${OPENSSL_AEAD_MIN_BYTES} B, OpenSSL from ${OPENSSL_AEAD_MIN_BYTES} B`
        : plan.aead;
    result = {
      provider: built.provider,
      detail:
        `X25519: ${plan.x25519}; ChaCha20-Poly1305: ${aead}; XChaCha20-Poly1305: ${plan.xaead}; ` +
        'BLAKE2s: wg-core (TypeScript)' +
        (sodiumNote ? ` (${sodiumNote})` : ''),
    };
  }
  probes.set(useSodium, result);
  return result;
}

/**
 * The native provider, or null when this runtime has neither libsodium nor OpenSSL's X25519 and
 * ChaCha20-Poly1305, or when it fails its start-up self-check (known answers). Built once per
 * option set and shared; the provider keeps no per-call state and no secrets.
 */
export function nativeCrypto(options: NativeCryptoOptions = {}): CryptoProvider | null {
  return probe(options.libsodium ?? true).provider;
}

/** What `selectCrypto` chose and why, in words fit for a start-up log line (no secrets). */
export interface CryptoSelection {
  readonly provider: CryptoProvider;
  readonly reason: string;
}

/**
 * Picks the crypto provider: the native one when available (it is the faster: libsodium AEAD is
 * 2-6x node:crypto's and far faster than noble on packet-sized data), else noble. `force` pins
 * one. Throws TypeError on an unknown `force`, Error when `force: 'native'` is unavailable.
 */
export function selectCrypto(options: { force?: 'noble' | 'native' } = {}): CryptoSelection {
  const { force } = options;
  if (force !== undefined && force !== 'noble' && force !== 'native') {
    throw new TypeError(`force must be 'noble' or 'native', got ${JSON.stringify(force)}`);
  }
  if (force === 'noble') return { provider: nobleCrypto, reason: 'noble forced by option' };
  const native = probe(true);
  if (force === 'native') {
    if (!native.provider) {
      throw new Error(
        `native crypto was forced but is unavailable: ${native.detail}. ` +
          `Install the optional dependency sodium-native, or use force 'noble'.`,
      );
    }
    return { provider: native.provider, reason: `native forced by option; ${native.detail}` };
  }
  if (native.provider)
    return {
      provider: native.provider,
      reason: `native is the fastest available; ${native.detail}`,
    };
  return { provider: nobleCrypto, reason: `noble: native unavailable (${native.detail})` };
}
