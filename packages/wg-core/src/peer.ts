/**
 * A Peer: one remote static public key with its handshake, cookie state, keypairs, timers,
 * endpoint, staged packets and counters (whitepaper §2-§6, wireguard-go device/peer.go).
 */
import { CookieGenerator } from './cookie.js';
import type { CryptoProvider } from './crypto/provider.js';
import { Handshake, type LocalIdentity } from './handshake.js';
import { Keypairs } from './keypair.js';
import { PeerTimers } from './timers.js';
import type { Endpoint } from './types.js';

/** Per-peer state owned by a Device. Read its public fields; change it only through the Device. */
export class Peer {
  readonly handshake: Handshake;
  readonly cookieGenerator: CookieGenerator;
  readonly keypairs = new Keypairs();
  readonly timers: PeerTimers;
  /** Latest authenticated source address of the peer, or its configured endpoint (roaming, §2.1). */
  endpoint: Endpoint | null = null;
  /** Persistent keepalive interval in seconds; 0 is off. */
  persistentKeepaliveInterval = 0;
  /** Packets waiting for a usable keypair; an empty packet is a keepalive. */
  readonly staged: Uint8Array[] = [];
  /** Index of an in-flight handshake in the device's index table, 0 when none. */
  pendingIndex = 0;
  /** Monotonic ms of the last initiation sent, for the REKEY_TIMEOUT spacing of initiations. */
  lastSentInitiation = -Infinity;
  /** A last-minute rekey for an old session was already sent (whitepaper §6.2). */
  sentLastMinuteHandshake = false;
  /** Wall-clock ms of the latest completed handshake, 0 when none. */
  lastHandshakeWallMs = 0;
  rxBytes = 0;
  txBytes = 0;

  /** The peer's static public key (the handshake's copy). Do not modify. */
  readonly publicKey: Uint8Array;

  constructor(
    crypto: CryptoProvider,
    local: LocalIdentity | null,
    publicKey: Uint8Array,
    /** Hex of the public key: the peer's key in the device's map. */
    readonly id: string,
    jitter: () => number,
  ) {
    this.handshake = new Handshake(crypto, local, publicKey, null);
    this.publicKey = this.handshake.remoteStatic;
    this.cookieGenerator = new CookieGenerator(crypto, this.publicKey);
    this.timers = new PeerTimers(jitter);
  }

  get persistentKeepaliveMs(): number {
    return this.persistentKeepaliveInterval * 1000;
  }
}
