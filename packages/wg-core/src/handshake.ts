/**
 * The Noise_IKpsk2 handshake (whitepaper §5.4.2-§5.4.5): creating and consuming the initiation and
 * the response, and deriving the transport keys. Each step carries its whitepaper formula.
 */
import {
  AEAD_NONCE_LEN,
  HANDSHAKE_INITIATION_RATE_MS,
  KEY_LEN,
  LABEL_COOKIE,
  LABEL_MAC1,
  TAI64N_LEN,
} from './constants.js';
import type { CryptoProvider } from './crypto/provider.js';
import { initialNoiseState, kdf1, kdf2, kdf3, labelledHash, mixHash } from './kdf.js';
import {
  INITIATION_STATIC_LEN,
  INITIATION_TIMESTAMP_LEN,
  RESPONSE_EMPTY_LEN,
  readInitiation,
  readResponse,
  writeInitiation,
  writeResponse,
} from './messages.js';
import { compareTai64n } from './tai64n.js';
import type { DropReason } from './types.js';

/** Handshake fields are sealed once per key, so their nonce is always counter 0. */
const ZERO_NONCE = new Uint8Array(AEAD_NONCE_LEN);
/** ε, the empty plaintext of the response and the input of the final Kdf2. */
const EMPTY = new Uint8Array(0);
const UINT32_MAX = 0xffff_ffff;

function checkBytes(name: string, b: unknown, len: number): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (b.length !== len) throw new RangeError(`${name} must be ${len} bytes, got ${b.length}`);
}

function checkIndex(name: string, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > UINT32_MAX) {
    throw new RangeError(`${name} must be an integer in 0..2^32-1`);
  }
}

function checkCrypto(crypto: CryptoProvider): void {
  if (typeof crypto !== 'object' || crypto === null || typeof crypto.x25519 !== 'function') {
    throw new TypeError('crypto must be a CryptoProvider');
  }
}

function checkLocal(local: unknown): asserts local is LocalIdentity {
  if (!(local instanceof LocalIdentity)) throw new TypeError('local must be a LocalIdentity');
}

/** DH(Spriv, Spub_remote), or zeros (no handshake possible) while the device has no identity. */
function staticStaticOf(
  crypto: CryptoProvider,
  local: LocalIdentity | null,
  remoteStatic: Uint8Array,
): Uint8Array {
  return local === null ? new Uint8Array(KEY_LEN) : crypto.x25519(local.privateKey, remoteStatic);
}

/** An all-zero DH result means a low-order point (whitepaper §5.4: reject, never use). */
function isZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

function wipe(...bufs: Uint8Array[]): void {
  for (const b of bufs) b.fill(0);
}

/** C, H and an AEAD key k at one point of the chain, fresh and owned by the caller. */
interface ChainStep {
  chainingKey: Uint8Array;
  hash: Uint8Array;
  key: Uint8Array;
}

/**
 * The initiation's chain up to its first key (whitepaper §5.4.2), the same on both sides once
 * each has es (the initiator's DH(Epriv_i, Spub_r), the responder's DH(Spriv_r, Epub_i)).
 * `initialHash` is HASH(HASH(Hi || Spub_r)). Wipes `es`; null when es is zero (low-order point).
 */
function chainInitiationEphemeral(
  crypto: CryptoProvider,
  initialHash: Uint8Array,
  ephemeral: Uint8Array,
  es: Uint8Array,
): ChainStep | null {
  if (isZero(es)) {
    wipe(es);
    return null;
  }
  // C := Kdf1(HASH(Construction), Epub_i); H := HASH(HASH(HASH(Hi || Spub_r)) || Epub_i)
  const c1 = kdf1(crypto, initialNoiseState(crypto).chainingKey, ephemeral);
  const hash = mixHash(crypto, initialHash, ephemeral);
  // (C, k) := Kdf2(C, es)
  const [chainingKey, key] = kdf2(crypto, c1, es);
  wipe(c1, es);
  return { chainingKey, hash, key };
}

/**
 * The response's chain up to its key (whitepaper §5.4.3), the same on both sides once each has ee
 * = DH(Epriv_r, Epub_i) and se = DH(Epriv_r, Spub_i) (the initiator computes them as
 * DH(Epriv_i, Epub_r) and DH(Spriv_i, Epub_r)). Wipes `ee` and `se`; null when either is zero.
 */
function chainResponse(
  crypto: CryptoProvider,
  s: HandshakeInternals,
  ephemeral: Uint8Array,
  ee: Uint8Array,
  se: Uint8Array,
): ChainStep | null {
  if (isZero(ee) || isZero(se)) {
    wipe(ee, se);
    return null;
  }
  // H := HASH(H || Epub_r); C := Kdf1(C, Epub_r)
  let hash = mixHash(crypto, s.hash, ephemeral);
  const c1 = kdf1(crypto, s.chainingKey, ephemeral);
  // C := Kdf1(C, ee); C := Kdf1(C, se)
  const c2 = kdf1(crypto, c1, ee);
  const c3 = kdf1(crypto, c2, se);
  wipe(c1, c2, ee, se);
  // (C, τ, k) := Kdf3(C, Q); H := HASH(H || τ)
  const [chainingKey, tau, key] = kdf3(crypto, c3, s.presharedKey);
  wipe(c3);
  hash = mixHash(crypto, hash, tau);
  wipe(tau);
  return { chainingKey, hash, key };
}

/**
 * The device's static identity with everything derived from it that the handshake and the cookie
 * layer need. Immutable; replace it (and call `Handshake.setLocal`) when the private key changes.
 * The private key is kept out of enumerable fields so that `inspect` and JSON never show it.
 */
export class LocalIdentity {
  readonly #privateKey: Uint8Array;
  /** Spub: our X25519 public key. Do not modify. */
  readonly publicKey: Uint8Array;
  /** HASH(LABEL_MAC1 || Spub): the key of mac1 on messages sent to us (whitepaper §5.4.4). */
  readonly mac1Key: Uint8Array;
  /** HASH(LABEL_COOKIE || Spub): encrypts the cookie replies we send (whitepaper §5.4.7). */
  readonly cookieKey: Uint8Array;
  /** HASH(Hi || Spub): the hash a handshake we respond to starts from (whitepaper §5.4.2). */
  readonly responderInitialHash: Uint8Array;

  /**
   * Takes a 32-byte X25519 private key and copies it. Throws TypeError/RangeError on a wrong
   * provider or key length.
   */
  constructor(crypto: CryptoProvider, privateKey: Uint8Array) {
    checkCrypto(crypto);
    checkBytes('privateKey', privateKey, KEY_LEN);
    this.#privateKey = privateKey.slice();
    this.publicKey = crypto.x25519Public(this.#privateKey);
    this.mac1Key = labelledHash(crypto, LABEL_MAC1, this.publicKey);
    this.cookieKey = labelledHash(crypto, LABEL_COOKIE, this.publicKey);
    this.responderInitialHash = mixHash(crypto, initialNoiseState(crypto).hash, this.publicKey);
  }

  /** Spriv, our private key: the identity's own copy. Do not modify; never log it. */
  get privateKey(): Uint8Array {
    return this.#privateKey;
  }

  /** Zeroes the private key copy when the identity is retired. The identity is unusable after. */
  wipe(): void {
    this.#privateKey.fill(0);
  }
}

/** Where a peer's handshake stands (whitepaper §5.4; wireguard-go handshakeState). */
export type HandshakeState =
  | 'zeroed'
  | 'initiation-created'
  | 'initiation-consumed'
  | 'response-created'
  | 'response-consumed';

/** The session keys of a completed handshake; the caller owns every array. */
export interface TransportKeys {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly isInitiator: boolean;
  readonly localIndex: number;
  readonly remoteIndex: number;
}

/** Everything mutable about a Handshake; reachable only from this module. */
interface HandshakeInternals {
  readonly crypto: CryptoProvider;
  /** Null while the device has no private key. */
  local: LocalIdentity | null;
  state: HandshakeState;
  localIndex: number;
  remoteIndex: number;
  /** C, H, Epriv (ours), Epub (theirs): fixed buffers, overwritten in place and wiped. */
  readonly chainingKey: Uint8Array;
  readonly hash: Uint8Array;
  readonly localEphemeral: Uint8Array;
  readonly remoteEphemeral: Uint8Array;
  /** Q: 32 zero bytes when there is no preshared key. */
  readonly presharedKey: Uint8Array;
  hasPresharedKey: boolean;
  /** DH(Spriv, Spub_remote). */
  readonly staticStatic: Uint8Array;
  /** HASH(Hi || Spub_remote): the hash an initiation we create starts from. */
  readonly initiatorInitialHash: Uint8Array;
  lastTimestamp: Uint8Array | null;
  lastInitiationConsumedMs: number | null;
}

/** The 32-byte fields of HandshakeInternals that share one buffer. */
const HANDSHAKE_FIELDS = 7;

let internalsOf: (hs: Handshake) => HandshakeInternals;

/**
 * One peer's handshake state. Methods that take untrusted bytes never throw on them; every failure
 * leaves the state exactly as it was. Secrets live in private fields, out of `inspect` and JSON.
 */
export class Handshake {
  /** Spub of the peer. Do not modify. */
  readonly remoteStatic: Uint8Array;
  readonly #s: HandshakeInternals;

  static {
    internalsOf = (hs) => hs.#s;
  }

  /**
   * Takes the device identity (null while the device has no private key: nothing can be created
   * or consumed until `setLocal`), the peer's 32-byte static public key and an optional 32-byte
   * preshared key (keys copied). Throws TypeError/RangeError on wrong types or lengths.
   */
  constructor(
    crypto: CryptoProvider,
    local: LocalIdentity | null,
    remoteStatic: Uint8Array,
    presharedKey: Uint8Array | null,
  ) {
    checkCrypto(crypto);
    if (local !== null) checkLocal(local);
    checkBytes('remoteStatic', remoteStatic, KEY_LEN);
    this.remoteStatic = remoteStatic.slice();
    // One buffer for the seven fixed 32-byte fields: a peer holds one of these for its lifetime,
    // and each separate small Uint8Array costs V8 about 240 bytes where a view costs about 90.
    const fields = new Uint8Array(HANDSHAKE_FIELDS * KEY_LEN);
    const field = (i: number): Uint8Array => fields.subarray(i * KEY_LEN, (i + 1) * KEY_LEN);
    const staticStatic = field(5);
    staticStatic.set(staticStaticOf(crypto, local, this.remoteStatic));
    const initiatorInitialHash = field(6);
    initiatorInitialHash.set(mixHash(crypto, initialNoiseState(crypto).hash, this.remoteStatic));
    this.#s = {
      crypto,
      local,
      state: 'zeroed',
      localIndex: 0,
      remoteIndex: 0,
      chainingKey: field(0),
      hash: field(1),
      localEphemeral: field(2),
      remoteEphemeral: field(3),
      presharedKey: field(4),
      hasPresharedKey: false,
      staticStatic,
      initiatorInitialHash,
      lastTimestamp: null,
      lastInitiationConsumedMs: null,
    };
    this.presharedKey = presharedKey;
  }

  /** Q, or null when none is set (then 32 zero bytes are used). Do not modify the returned bytes. */
  get presharedKey(): Uint8Array | null {
    return this.#s.hasPresharedKey ? this.#s.presharedKey : null;
  }

  /** Sets or removes Q (copied). Throws RangeError unless null or 32 bytes. */
  set presharedKey(psk: Uint8Array | null) {
    if (psk !== null) checkBytes('presharedKey', psk, KEY_LEN);
    const s = this.#s;
    if (psk === null) s.presharedKey.fill(0);
    else s.presharedKey.set(psk);
    s.hasPresharedKey = psk !== null;
  }

  /**
   * DH(Spriv, Spub_remote), computed once per identity. All zero when the peer's key is a
   * low-order point: then no handshake with this peer can ever complete. Do not modify.
   */
  get precomputedStaticStatic(): Uint8Array {
    return this.#s.staticStatic;
  }

  /** Where this handshake stands. */
  get state(): HandshakeState {
    return this.#s.state;
  }

  /** Our sender index of the last initiation or response we created (kept after `clear`). */
  get localIndex(): number {
    return this.#s.localIndex;
  }

  /** The peer's sender index from the last initiation or response we consumed. */
  get remoteIndex(): number {
    return this.#s.remoteIndex;
  }

  /** TAI64N of the last accepted initiation, or null before the first. Do not modify. */
  get lastTimestamp(): Uint8Array | null {
    return this.#s.lastTimestamp;
  }

  /** `now` (monotonic ms) of the last accepted initiation, or null before the first. */
  get lastInitiationConsumedMs(): number | null {
    return this.#s.lastInitiationConsumedMs;
  }

  /** C, the chaining key in progress (zeros when zeroed). Do not modify; never log it. */
  get chainingKey(): Uint8Array {
    return this.#s.chainingKey;
  }

  /** H, the handshake hash in progress (zeros when zeroed). Do not modify. */
  get hash(): Uint8Array {
    return this.#s.hash;
  }

  /** Epub of the peer from the last consumed message (zeros when zeroed). Do not modify. */
  get remoteEphemeral(): Uint8Array {
    return this.#s.remoteEphemeral;
  }

  /**
   * Switches to a new device identity (null: none): recomputes DH(Spriv, Spub_remote) and clears
   * any handshake in progress, which was bound to the old key. Throws TypeError if `local` is
   * neither null nor a LocalIdentity.
   */
  setLocal(local: LocalIdentity | null): void {
    if (local !== null) checkLocal(local);
    const s = this.#s;
    const ss = staticStaticOf(s.crypto, local, this.remoteStatic);
    s.staticStatic.set(ss);
    wipe(ss);
    s.local = local;
    this.clear();
  }

  /**
   * Creates a handshake initiation (whitepaper §5.4.2) as the initiator: 148 fresh bytes the caller
   * owns, with mac1 and mac2 zero for the cookie layer to fill. Takes our sender index, a fresh
   * 32-byte ephemeral private key (copied; the caller may wipe its own) and a 12-byte TAI64N.
   * Returns null, changing nothing, when a DH result is zero (the peer's key is low-order) or
   * there is no local identity.
   * Throws RangeError/TypeError on wrong argument types or lengths.
   */
  createInitiation(
    localIndex: number,
    ephemeralPrivate: Uint8Array,
    timestamp: Uint8Array,
  ): Uint8Array | null {
    checkIndex('localIndex', localIndex);
    checkBytes('ephemeralPrivate', ephemeralPrivate, KEY_LEN);
    checkBytes('timestamp', timestamp, TAI64N_LEN);
    const s = this.#s;
    const crypto = s.crypto;
    if (s.local === null || isZero(s.staticStatic)) return null;

    // Epub_i := DH-Pubkey(Epriv_i)
    const ephemeral = crypto.x25519Public(ephemeralPrivate);
    // es := DH(Epriv_i, Spub_r)
    const es = crypto.x25519(ephemeralPrivate, this.remoteStatic);
    const first = chainInitiationEphemeral(crypto, s.initiatorInitialHash, ephemeral, es);
    if (first === null) return null;
    const { chainingKey: c2, key: k1 } = first;
    let h = first.hash;
    // msg.static := AEAD(k, 0, Spub_i, H); H := HASH(H || msg.static)
    const encryptedStatic = new Uint8Array(INITIATION_STATIC_LEN);
    crypto.seal(k1, ZERO_NONCE, s.local.publicKey, h, encryptedStatic);
    h = mixHash(crypto, h, encryptedStatic);
    wipe(k1);
    // (C, k) := Kdf2(C, DH(Spriv_i, Spub_r))
    const [c3, k2] = kdf2(crypto, c2, s.staticStatic);
    wipe(c2);
    // msg.timestamp := AEAD(k, 0, Timestamp(), H); H := HASH(H || msg.timestamp)
    const encryptedTimestamp = new Uint8Array(INITIATION_TIMESTAMP_LEN);
    crypto.seal(k2, ZERO_NONCE, timestamp, h, encryptedTimestamp);
    h = mixHash(crypto, h, encryptedTimestamp);
    wipe(k2);

    s.chainingKey.set(c3);
    s.hash.set(h);
    s.localEphemeral.set(ephemeralPrivate);
    s.remoteEphemeral.fill(0);
    s.localIndex = localIndex;
    s.state = 'initiation-created';
    wipe(c3, h);
    return writeInitiation({
      senderIndex: localIndex,
      ephemeral,
      encryptedStatic,
      encryptedTimestamp,
    });
  }

  /**
   * Creates the response (whitepaper §5.4.3) to the initiation this handshake consumed: 92 fresh
   * bytes the caller owns, macs zero. Takes our sender index and a fresh 32-byte ephemeral private
   * key (not kept). Returns null, changing nothing, unless the state is 'initiation-consumed' and
   * every DH result is non-zero. Throws RangeError/TypeError on wrong argument types or lengths.
   */
  createResponse(localIndex: number, ephemeralPrivate: Uint8Array): Uint8Array | null {
    checkIndex('localIndex', localIndex);
    checkBytes('ephemeralPrivate', ephemeralPrivate, KEY_LEN);
    const s = this.#s;
    const crypto = s.crypto;
    if (s.state !== 'initiation-consumed') return null;

    // Epub_r := DH-Pubkey(Epriv_r)
    const ephemeral = crypto.x25519Public(ephemeralPrivate);
    // ee := DH(Epriv_r, Epub_i); se := DH(Epriv_r, Spub_i)
    const ee = crypto.x25519(ephemeralPrivate, s.remoteEphemeral);
    const se = crypto.x25519(ephemeralPrivate, this.remoteStatic);
    const chained = chainResponse(crypto, s, ephemeral, ee, se);
    if (chained === null) return null;
    const { chainingKey: c4, key: k } = chained;
    let h = chained.hash;
    // msg.empty := AEAD(k, 0, ε, H); H := HASH(H || msg.empty)
    const encryptedNothing = new Uint8Array(RESPONSE_EMPTY_LEN);
    crypto.seal(k, ZERO_NONCE, EMPTY, h, encryptedNothing);
    h = mixHash(crypto, h, encryptedNothing);
    wipe(k);

    s.chainingKey.set(c4);
    s.hash.set(h);
    s.localEphemeral.fill(0);
    s.localIndex = localIndex;
    s.state = 'response-created';
    wipe(c4, h);
    return writeResponse({
      senderIndex: localIndex,
      receiverIndex: s.remoteIndex,
      ephemeral,
      encryptedNothing,
    });
  }

  /**
   * Derives the transport keys (whitepaper §5.4.5): (T_send_i, T_recv_i) := Kdf2(C, ε), the
   * responder taking them swapped. Only in 'response-created' (responder) or 'response-consumed'
   * (initiator); otherwise returns null and changes nothing. On success wipes C, H and both
   * ephemerals and returns to 'zeroed'. The caller owns the returned keys.
   */
  deriveKeys(): TransportKeys | null {
    const s = this.#s;
    if (s.state !== 'response-created' && s.state !== 'response-consumed') return null;
    const isInitiator = s.state === 'response-consumed';
    const [t1, t2] = kdf2(s.crypto, s.chainingKey, EMPTY);
    const keys: TransportKeys = {
      sendKey: isInitiator ? t1 : t2,
      receiveKey: isInitiator ? t2 : t1,
      isInitiator,
      localIndex: s.localIndex,
      remoteIndex: s.remoteIndex,
    };
    this.clear();
    return keys;
  }

  /**
   * Abandons any handshake in progress: wipes C, H and both ephemerals and returns to 'zeroed'.
   * Keeps the indices (so the caller can free its index-table entry) and the replay/flood
   * memory (lastTimestamp, lastInitiationConsumedMs), which must outlive handshakes.
   */
  clear(): void {
    const s = this.#s;
    wipe(s.chainingKey, s.hash, s.localEphemeral, s.remoteEphemeral);
    s.state = 'zeroed';
  }
}

/**
 * Consumes a handshake initiation as the responder (whitepaper §5.4.2). Assumes the caller checked
 * mac1 (and mac2 when under load). `lookup` maps the decrypted initiator static key to that peer's
 * Handshake. On success returns that Handshake in 'initiation-consumed', holding Epub_i, C, H and
 * the peer's sender index; on failure returns a DropReason and changes no Handshake:
 * 'malformed' (not a 148-byte initiation), 'low-order-point', 'handshake-invalid' (decryption
 * failed), 'unknown-peer', 'initiation-replay' (timestamp not newer than the last accepted one),
 * 'initiation-flood' (within HANDSHAKE_INITIATION_RATE_MS of the last accepted one).
 * Never throws on `msg` bytes; throws TypeError/RangeError on wrong argument types.
 */
export function consumeInitiation(
  crypto: CryptoProvider,
  local: LocalIdentity,
  msg: Uint8Array,
  now: number,
  lookup: (remoteStatic: Uint8Array) => Handshake | undefined,
): Handshake | DropReason {
  checkCrypto(crypto);
  checkLocal(local);
  if (!(msg instanceof Uint8Array)) throw new TypeError('msg must be a Uint8Array');
  if (!Number.isFinite(now)) throw new RangeError('now must be a finite number of milliseconds');
  const m = readInitiation(msg);
  if (m === null) return 'malformed';

  // es := DH(Spriv_r, Epub_i)
  const es = crypto.x25519(local.privateKey, m.ephemeral);
  const first = chainInitiationEphemeral(crypto, local.responderInitialHash, m.ephemeral, es);
  if (first === null) return 'low-order-point';
  const { chainingKey: c2, key: k1 } = first;
  let h = first.hash;
  // Spub_i := AEAD-Open(k, 0, msg.static, H); H := HASH(H || msg.static)
  const remoteStatic = new Uint8Array(KEY_LEN);
  const staticOk = crypto.open(k1, ZERO_NONCE, m.encryptedStatic, h, remoteStatic);
  wipe(k1);
  if (!staticOk) {
    wipe(c2);
    return 'handshake-invalid';
  }
  h = mixHash(crypto, h, m.encryptedStatic);
  const hs = lookup(remoteStatic);
  if (hs === undefined) {
    wipe(c2);
    return 'unknown-peer';
  }
  const s = internalsOf(hs);
  if (isZero(s.staticStatic)) {
    wipe(c2);
    return 'low-order-point';
  }
  // (C, k) := Kdf2(C, DH(Spriv_r, Spub_i))
  const [c3, k2] = kdf2(crypto, c2, s.staticStatic);
  wipe(c2);
  // timestamp := AEAD-Open(k, 0, msg.timestamp, H); H := HASH(H || msg.timestamp)
  const timestamp = new Uint8Array(TAI64N_LEN);
  const timestampOk = crypto.open(k2, ZERO_NONCE, m.encryptedTimestamp, h, timestamp);
  wipe(k2);
  if (!timestampOk) {
    wipe(c3);
    return 'handshake-invalid';
  }
  h = mixHash(crypto, h, m.encryptedTimestamp);

  // Only now, authenticated, may the initiation count against the peer's replay and flood memory.
  if (s.lastTimestamp !== null && compareTai64n(timestamp, s.lastTimestamp) <= 0) {
    wipe(c3);
    return 'initiation-replay';
  }
  if (
    s.lastInitiationConsumedMs !== null &&
    now - s.lastInitiationConsumedMs <= HANDSHAKE_INITIATION_RATE_MS
  ) {
    wipe(c3);
    return 'initiation-flood';
  }

  s.chainingKey.set(c3);
  s.hash.set(h);
  s.remoteEphemeral.set(m.ephemeral);
  s.localEphemeral.fill(0);
  s.remoteIndex = m.senderIndex;
  s.lastTimestamp = timestamp;
  s.lastInitiationConsumedMs = now;
  s.state = 'initiation-consumed';
  wipe(c3, h);
  return hs;
}

/**
 * Consumes a handshake response as the initiator (whitepaper §5.4.3). `lookup` maps the
 * response's receiver index to the Handshake that sent the initiation. On success returns it in
 * 'response-consumed' (call `deriveKeys` next); on failure returns a DropReason and changes no
 * Handshake: 'malformed' (not a 92-byte response), 'unexpected-response' (unknown index, or that
 * handshake is not in 'initiation-created'), 'low-order-point', 'handshake-invalid'
 * (authentication failed, e.g. a preshared-key mismatch). Never throws on `msg` bytes; throws
 * TypeError on wrong argument types.
 */
export function consumeResponse(
  crypto: CryptoProvider,
  local: LocalIdentity,
  msg: Uint8Array,
  lookup: (receiverIndex: number) => Handshake | undefined,
): Handshake | DropReason {
  checkCrypto(crypto);
  checkLocal(local);
  if (!(msg instanceof Uint8Array)) throw new TypeError('msg must be a Uint8Array');
  const m = readResponse(msg);
  if (m === null) return 'malformed';
  const hs = lookup(m.receiverIndex);
  if (hs === undefined) return 'unexpected-response';
  const s = internalsOf(hs);
  if (s.state !== 'initiation-created' || s.localIndex !== m.receiverIndex) {
    return 'unexpected-response';
  }

  // ee := DH(Epriv_i, Epub_r); se := DH(Spriv_i, Epub_r)
  const ee = crypto.x25519(s.localEphemeral, m.ephemeral);
  const se = crypto.x25519(local.privateKey, m.ephemeral);
  const chained = chainResponse(crypto, s, m.ephemeral, ee, se);
  if (chained === null) return 'low-order-point';
  const { chainingKey: c4, key: k } = chained;
  let h = chained.hash;
  // ε := AEAD-Open(k, 0, msg.empty, H); H := HASH(H || msg.empty)
  const ok = crypto.open(k, ZERO_NONCE, m.encryptedNothing, h, new Uint8Array(0));
  wipe(k);
  if (!ok) {
    wipe(c4);
    return 'handshake-invalid';
  }
  h = mixHash(crypto, h, m.encryptedNothing);

  s.chainingKey.set(c4);
  s.hash.set(h);
  s.remoteEphemeral.set(m.ephemeral);
  s.remoteIndex = m.senderIndex;
  s.state = 'response-consumed';
  wipe(c4, h);
  return hs;
}
