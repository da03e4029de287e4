/**
 * The Device: the sans-IO WireGuard engine. It owns the static identity, peers, index table,
 * allowed-IPs table, cookie checker and rate limiter, and turns datagrams, tunnel packets and the
 * passage of time into actions (whitepaper §5-§6; wireguard-go device/send.go, receive.go, timers.go).
 * It reads no clock and no global randomness: `now` (monotonic ms), `random` and `wallClock` come in.
 */
import { AllowedIps } from './allowed-ips.js';
import {
  AEAD_NONCE_LEN,
  AEAD_TAG_LEN,
  DEFAULT_MTU,
  KEEPALIVE_TIMEOUT_MS,
  KEY_LEN,
  MAX_STAGED_PACKETS,
  MAX_TIMER_HANDSHAKES,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  PADDING_MULTIPLE,
  REKEY_AFTER_TIME_MS,
  REKEY_ON_RECEIVE_AFTER_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  UNDER_LOAD_AFTER_TIME_MS,
  UNDER_LOAD_HANDSHAKES_PER_SECOND,
  ZERO_KEYS_AFTER_MS,
} from './constants.js';
import { CookieChecker, endpointBytes } from './cookie.js';
import type { CryptoProvider, RandomSource } from './crypto/provider.js';
import { consumeInitiation, consumeResponse, LocalIdentity } from './handshake.js';
import { IndexTable } from './index-table.js';
import { clampPrivateKey, equalBytes, isZeroKey } from './keys.js';
import {
  IPV4_DST_OFFSET,
  IPV4_SRC_OFFSET,
  IPV6_DST_OFFSET,
  IPV6_SRC_OFFSET,
  ipPacketLength,
} from './ip-packet.js';
import { Keypair } from './keypair.js';
import { messageType } from './messages.js';
import { Peer } from './peer.js';
import { RandomPool } from './random-pool.js';
import { RateLimiter } from './ratelimiter.js';
import { tai64n } from './tai64n.js';
import { TIMER_NAMES, type TimerName } from './timers.js';
import type { Action, DropReason, Endpoint, WallClock } from './types.js';
import type { UapiDeviceState, UapiSetRequest } from './uapi.js';

/** Options of a Device. */
export interface DeviceOptions {
  crypto: CryptoProvider;
  /**
   * Cryptographically secure randomness: ephemerals, indices, cookie secrets, jitter. Keys are
   * drawn directly; indices, jitter and cookie-reply nonces come through a RandomPool, which draws
   * RANDOM_POOL_BYTES at a time and serves them in order (a fixed source gives a fixed run).
   */
  random: RandomSource;
  /** Wall-clock ms since the Unix epoch, for TAI64N timestamps and last-handshake times. */
  wallClock: WallClock;
  /** Tunnel MTU: transport plaintext is padded to a multiple of 16 but never beyond it. */
  mtu?: number;
  /** Handshake messages per second above which MAC2 (a cookie) is demanded. */
  underLoadThreshold?: number;
  /**
   * Where transport messages and decrypted packets are written: returns `length` bytes of any
   * content (the engine overwrites every byte it hands out). The default allocates fresh memory,
   * so action data is the caller's to keep. A shell that consumes every action before its next
   * call into the engine may hand out slices of a reused slab instead, saving an allocation per packet.
   */
  allocate?: (length: number) => Uint8Array;
}

/** Options when adding a peer. */
export interface PeerOptions {
  presharedKey?: Uint8Array | null;
  endpoint?: Endpoint | null;
  /** Seconds; 0 is off. */
  persistentKeepaliveInterval?: number;
  allowedIps?: ReadonlyArray<{ address: Uint8Array; cidr: number }>;
}

/** An index-table entry: a pending handshake (keypair null) or a keypair of a peer. */
interface IndexEntry {
  peer: Peer;
  keypair: Keypair | null;
}

const EMPTY = new Uint8Array(0);

function hex(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, '0');
  return s;
}

/** The sans-IO WireGuard device. Not thread-safe; one shell drives it. */
export class Device {
  readonly crypto: CryptoProvider;
  private readonly random: RandomSource;
  private readonly wallClock: WallClock;
  /** Tunnel MTU that bounds padding; the shell updates it when the interface MTU changes. */
  mtu: number;
  private readonly underLoadThreshold: number;
  private readonly allocate: (length: number) => Uint8Array;

  private local: LocalIdentity | null = null;
  private readonly cookieChecker: CookieChecker;
  private readonly peerMap = new Map<string, Peer>();
  private readonly indexTable: IndexTable<IndexEntry>;
  /** Cryptokey routing: allowed IPs of every peer, used both ways. */
  readonly allowedIps = new AllowedIps<Peer>();
  private readonly rateLimiter = new RateLimiter();

  /** UDP port the shell should listen on (0 = any); the shell owns the socket. */
  listenPort = 0;
  /** SO_MARK for outgoing datagrams (0 = off); applied by the shell. */
  fwmark = 0;

  private handshakeWindowStart = -Infinity;
  private handshakeWindowCount = 0;
  private underLoadUntil = -Infinity;
  private forcedUnderLoad = false;

  /** Packets dropped, by reason. */
  readonly drops: Record<DropReason, number> = {
    malformed: 0,
    'mac1-invalid': 0,
    'mac2-missing': 0,
    ratelimited: 0,
    'no-private-key': 0,
    'handshake-invalid': 0,
    'unknown-peer': 0,
    'initiation-replay': 0,
    'initiation-flood': 0,
    'low-order-point': 0,
    'unknown-index': 0,
    'unexpected-response': 0,
    'decrypt-failed': 0,
    'replayed-counter': 0,
    'keypair-expired': 0,
    'invalid-inner-packet': 0,
    'source-not-allowed': 0,
    'no-route': 0,
    'no-endpoint': 0,
    'queue-full': 0,
  };

  private readonly nonce = new Uint8Array(AEAD_NONCE_LEN);
  /** Jitter, indices and cookie-reply nonces: many small draws, refilled in bulk. */
  private readonly randomPool: RandomPool;

  constructor(opts: DeviceOptions) {
    if (typeof opts.random !== 'function') throw new TypeError('random must be a function');
    if (typeof opts.wallClock !== 'function') throw new TypeError('wallClock must be a function');
    this.crypto = opts.crypto;
    this.random = opts.random;
    this.wallClock = opts.wallClock;
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.underLoadThreshold = opts.underLoadThreshold ?? UNDER_LOAD_HANDSHAKES_PER_SECOND;
    this.allocate = opts.allocate ?? ((length) => new Uint8Array(length));
    this.cookieChecker = new CookieChecker(this.crypto, null);
    this.randomPool = new RandomPool(this.random);
    this.indexTable = new IndexTable<IndexEntry>(this.randomPool.fill);
  }

  // ---------------------------------------------------------------- configuration

  /** The device's static public key, or null without a private key. Returns a copy. */
  get publicKey(): Uint8Array | null {
    return this.local ? this.local.publicKey.slice() : null;
  }

  /** True when a private key is set. */
  get hasPrivateKey(): boolean {
    return this.local !== null;
  }

  /**
   * Sets (or with null / all-zero, removes) the static private key. As wireguard-go does, a peer
   * whose public key equals the new public key is removed, and every session is expired so the
   * next packet starts a handshake under the new identity. Copies the key.
   * Throws RangeError if the key is not 32 bytes.
   */
  setPrivateKey(privateKey: Uint8Array | null): void {
    if (privateKey !== null && privateKey.length !== KEY_LEN) {
      throw new RangeError(`private key must be ${KEY_LEN} bytes`);
    }
    if (privateKey && this.local && equalBytes(clampPrivateKey(privateKey), this.local.privateKey))
      return;
    // Stored clamped, as wireguard-go stores it, so get=1 reports the key X25519 really uses.
    const local =
      privateKey && !isZeroKey(privateKey)
        ? new LocalIdentity(this.crypto, clampPrivateKey(privateKey))
        : null;
    if (local) {
      const self = this.peerMap.get(hex(local.publicKey));
      if (self) this.removePeer(self.publicKey);
    }
    const old = this.local;
    this.local = local;
    this.cookieChecker.setLocal(local);
    for (const peer of this.peerMap.values()) {
      peer.handshake.setLocal(local);
      this.expireCurrentKeypairs(peer);
    }
    old?.wipe();
  }

  /** Peers in insertion order. */
  peers(): IterableIterator<Peer> {
    return this.peerMap.values();
  }

  /** The peer with this public key, if any. */
  peer(publicKey: Uint8Array): Peer | undefined {
    return this.peerMap.get(hex(publicKey));
  }

  /**
   * Adds a peer, or updates an existing one with the given options (allowed IPs are added to the
   * existing ones). Returns the peer. Throws RangeError for a key that is not 32 bytes, and Error
   * if it is the device's own public key.
   */
  addPeer(publicKey: Uint8Array, opts: PeerOptions = {}, now = 0, out: Action[] = []): Peer {
    if (publicKey.length !== KEY_LEN) throw new RangeError(`public key must be ${KEY_LEN} bytes`);
    if (this.local && equalBytes(publicKey, this.local.publicKey)) {
      throw new Error("a peer's public key cannot be the device's own public key");
    }
    const id = hex(publicKey);
    let peer = this.peerMap.get(id);
    if (!peer) {
      // The handshake copies the key; the peer shares that copy.
      peer = new Peer(this.crypto, this.local, publicKey, id, () => this.jitter());
      this.peerMap.set(id, peer);
    }
    if (opts.presharedKey !== undefined) this.setPresharedKey(peer, opts.presharedKey);
    if (opts.endpoint !== undefined) peer.endpoint = opts.endpoint;
    if (opts.allowedIps)
      for (const a of opts.allowedIps) this.allowedIps.insert(a.address, a.cidr, peer);
    if (opts.persistentKeepaliveInterval !== undefined) {
      this.setPersistentKeepalive(peer, opts.persistentKeepaliveInterval, now, out);
    }
    return peer;
  }

  /** Sets a peer's preshared key; null or all-zero means none. Copies the key. */
  setPresharedKey(peer: Peer, psk: Uint8Array | null): void {
    if (psk !== null && psk.length !== KEY_LEN)
      throw new RangeError(`preshared key must be ${KEY_LEN} bytes`);
    peer.handshake.presharedKey = psk && !isZeroKey(psk) ? psk.slice() : null;
  }

  /**
   * Sets the persistent keepalive interval in seconds (0 = off). Turning it on sends a keepalive
   * at once (which starts a handshake if needed), as wireguard-go does, so NAT mappings open.
   */
  setPersistentKeepalive(peer: Peer, seconds: number, now: number, out: Action[]): void {
    if (!Number.isInteger(seconds) || seconds < 0 || seconds > 0xffff) {
      throw new RangeError('persistent keepalive must be an integer from 0 to 65535 seconds');
    }
    const wasOff = peer.persistentKeepaliveInterval === 0;
    peer.persistentKeepaliveInterval = seconds;
    if (seconds === 0) peer.timers.stop('persistentKeepalive');
    else if (wasOff && this.local) this.sendKeepalive(peer, now, out);
  }

  /** Removes a peer, wiping its keys and its allowed IPs. Returns whether it existed. */
  removePeer(publicKey: Uint8Array): boolean {
    const peer = this.peerMap.get(hex(publicKey));
    if (!peer) return false;
    this.zeroKeyMaterial(peer);
    peer.timers.stopAll();
    peer.staged.length = 0;
    this.allowedIps.removeValue(peer);
    this.peerMap.delete(peer.id);
    return true;
  }

  /** Removes every peer. */
  clearPeers(): void {
    for (const peer of [...this.peerMap.values()]) this.removePeer(peer.publicKey);
  }

  /** Forces (or stops forcing) the under-load mode in which MAC2 is demanded; for shells that measure their own queue. */
  setUnderLoad(on: boolean): void {
    this.forcedUnderLoad = on;
  }

  /**
   * Applies a set=1 request that `parseSet` validated, whole and in order, with wireguard-go's
   * semantics (see UapiPeerConfig). The shell binds a changed listen_port before calling this, so
   * a request either applies completely or not at all. Keepalives it triggers go to `out`.
   */
  applyUapi(req: UapiSetRequest, now: number, out: Action[]): void {
    if (req.privateKey !== undefined) this.setPrivateKey(req.privateKey);
    if (req.listenPort !== undefined) this.listenPort = req.listenPort;
    if (req.fwmark !== undefined) this.fwmark = req.fwmark;
    if (req.replacePeers) this.clearPeers();
    for (const pc of req.peers) {
      if (this.local && equalBytes(pc.publicKey, this.local.publicKey)) continue;
      if (pc.remove) {
        this.removePeer(pc.publicKey);
        continue;
      }
      let peer = this.peer(pc.publicKey);
      if (!peer) {
        if (pc.updateOnly) continue;
        peer = this.addPeer(pc.publicKey);
      }
      if (pc.presharedKey !== undefined) this.setPresharedKey(peer, pc.presharedKey);
      if (pc.endpoint !== undefined) peer.endpoint = pc.endpoint;
      if (pc.replaceAllowedIps) this.allowedIps.removeValue(peer);
      for (const a of pc.allowedIps) {
        if (a.remove) this.allowedIps.remove(a.address, a.cidr, peer);
        else this.allowedIps.insert(a.address, a.cidr, peer);
      }
      if (pc.persistentKeepaliveInterval !== undefined) {
        this.setPersistentKeepalive(peer, pc.persistentKeepaliveInterval, now, out);
      }
    }
  }

  /** The device as get=1 reports it; `listenPort` is the port the shell actually bound. Returns copies. */
  uapiState(listenPort: number): UapiDeviceState {
    const peers = [...this.peerMap.values()].map((p) => ({
      publicKey: p.publicKey,
      ...(p.handshake.presharedKey ? { presharedKey: p.handshake.presharedKey.slice() } : {}),
      ...(p.endpoint ? { endpoint: p.endpoint } : {}),
      lastHandshakeWallMs: p.lastHandshakeWallMs,
      txBytes: p.txBytes,
      rxBytes: p.rxBytes,
      persistentKeepaliveInterval: p.persistentKeepaliveInterval,
      allowedIps: this.allowedIps.entriesFor(p),
    }));
    return {
      ...(this.local ? { privateKey: this.local.privateKey.slice() } : {}),
      listenPort,
      fwmark: this.fwmark,
      peers,
    };
  }

  // ---------------------------------------------------------------- data path

  /**
   * A datagram arrived from `from`. Pushes actions to `out`: replies to send, IP packets to
   * deliver to the tunnel, or a drop with its reason. Never throws on untrusted bytes.
   * `datagram` must not be reused by the caller until the actions are consumed (delivered
   * packets are fresh buffers; sent ones too).
   */
  receive(datagram: Uint8Array, from: Endpoint, now: number, out: Action[]): void {
    switch (messageType(datagram)) {
      case 1:
      case 2:
        this.receiveHandshake(datagram, from, now, out);
        return;
      case 3:
        this.receiveCookieReply(datagram, now, out);
        return;
      case 4:
        this.receiveTransport(datagram, from, now, out);
        return;
      default:
        this.drop('malformed', out);
    }
  }

  /**
   * An IP packet from the tunnel: route it by destination to a peer (cryptokey routing),
   * encrypt and send, or stage it and start a handshake. The engine keeps no reference to
   * `packet` (it is encrypted into a fresh message, or copied when staged), so the caller may
   * reuse it once `send` returns.
   */
  send(packet: Uint8Array, now: number, out: Action[]): void {
    const len = ipPacketLength(packet);
    if (len === 0) return this.drop('invalid-inner-packet', out);
    const peer =
      packet[0]! >> 4 === 4
        ? this.allowedIps.lookupV4(packet, IPV4_DST_OFFSET)
        : this.allowedIps.lookupV6(packet, IPV6_DST_OFFSET);
    if (!peer) return this.drop('no-route', out);
    if (!peer.endpoint) return this.drop('no-endpoint', out);
    const keypair = peer.keypairs.current;
    if (peer.staged.length === 0 && keypair !== null && keypair.canSend(now)) {
      // The common case (a session, nothing queued) skips the staging copy and goes straight to
      // the message, exactly as sendStaged would send it: that copy was about 8 % of the CPU
      // profile of bench/engine.ts's transport runs.
      const data = len === packet.length ? packet : packet.subarray(0, len);
      this.sendTo(peer, this.encrypt(keypair, data), out);
      this.transportSent(peer, keypair, true, now, out);
      return;
    }
    this.stage(peer, packet.slice(0, len), out);
    this.sendStaged(peer, now, out);
  }

  /** Sends a keepalive to a peer now (starting a handshake if there is no session). */
  sendKeepalive(peer: Peer, now: number, out: Action[]): void {
    if (peer.staged.length === 0) peer.staged.push(EMPTY);
    this.sendStaged(peer, now, out);
  }

  /** Fires every timer due at `now`. Call at `nextDeadline()` (or earlier; it is idempotent). */
  tick(now: number, out: Action[]): void {
    for (const peer of [...this.peerMap.values()]) {
      for (const name of TIMER_NAMES) {
        if (peer.timers.deadline[name] <= now && this.peerMap.has(peer.id)) {
          peer.timers.stop(name);
          this.fire(peer, name, now, out);
        }
      }
    }
  }

  /** The earliest monotonic ms at which `tick` has work, or Infinity. */
  nextDeadline(): number {
    let next = Infinity;
    for (const peer of this.peerMap.values()) next = Math.min(next, peer.timers.next());
    return next;
  }

  // ---------------------------------------------------------------- receive

  private receiveHandshake(msg: Uint8Array, from: Endpoint, now: number, out: Action[]): void {
    if (!this.local) return this.drop('no-private-key', out);
    if (!this.cookieChecker.checkMac1(msg)) return this.drop('mac1-invalid', out);
    if (this.isUnderLoad(now)) {
      const source = endpointBytes(from);
      if (!this.cookieChecker.checkMac2(msg, source, now)) {
        out.push({
          type: 'send',
          endpoint: from,
          data: this.cookieChecker.createReply(msg, source, now, this.randomPool.fill),
        });
        return this.drop('mac2-missing', out);
      }
      if (!this.rateLimiter.allow(from.ip, now)) return this.drop('ratelimited', out);
    }
    if (msg[0] === 1) this.receiveInitiation(msg, from, now, out);
    else this.receiveResponse(msg, from, now, out);
  }

  private receiveInitiation(msg: Uint8Array, from: Endpoint, now: number, out: Action[]): void {
    const local = this.local!;
    const result = consumeInitiation(
      this.crypto,
      local,
      msg,
      now,
      (pk) => this.peerMap.get(hex(pk))?.handshake,
    );
    if (typeof result === 'string') return this.drop(result, out);
    const peer = this.peerMap.get(hex(result.remoteStatic))!;
    peer.rxBytes += msg.length;
    peer.endpoint = from;
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepaliveMs);
    peer.timers.anyAuthenticatedPacketReceived();

    // Answer: (whitepaper §5.4.3) then derive the responder's keys at once (§5.4.5).
    this.freePendingIndex(peer);
    const localIndex = this.indexTable.allocate({ peer, keypair: null });
    const response = peer.handshake.createResponse(localIndex, this.randomKey());
    if (!response) {
      this.indexTable.delete(localIndex);
      return this.drop('low-order-point', out);
    }
    const keypair = this.beginSession(peer, now);
    if (!keypair) return this.drop('handshake-invalid', out);
    peer.cookieGenerator.addMacs(response, now);
    this.sendTo(peer, response, out);
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepaliveMs);
    peer.timers.anyAuthenticatedPacketSent();
  }

  private receiveResponse(msg: Uint8Array, from: Endpoint, now: number, out: Action[]): void {
    const local = this.local!;
    let peer: Peer | undefined;
    const result = consumeResponse(this.crypto, local, msg, (index) => {
      const entry = this.indexTable.get(index);
      if (!entry || entry.keypair) return undefined;
      peer = entry.peer;
      return entry.peer.handshake;
    });
    if (typeof result === 'string' || !peer)
      return this.drop(typeof result === 'string' ? result : 'unexpected-response', out);
    const keypair = this.beginSession(peer, now);
    if (!keypair) return this.drop('handshake-invalid', out);
    peer.rxBytes += msg.length;
    peer.endpoint = from;
    this.handshakeComplete(peer);
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepaliveMs);
    peer.timers.anyAuthenticatedPacketReceived();
    // Confirm the session to the responder at once: staged data, or a keepalive (§5.4.5).
    this.sendKeepalive(peer, now, out);
  }

  private receiveCookieReply(msg: Uint8Array, now: number, out: Action[]): void {
    const entry = this.indexTable.get(readLe32(msg, 4));
    if (!entry) return this.drop('unknown-index', out);
    if (!entry.peer.cookieGenerator.consumeReply(msg, now)) this.drop('unexpected-response', out);
  }

  private receiveTransport(msg: Uint8Array, from: Endpoint, now: number, out: Action[]): void {
    const entry = this.indexTable.get(readLe32(msg, 4));
    if (!entry || !entry.keypair) return this.drop('unknown-index', out);
    const keypair = entry.keypair;
    if (!keypair.canReceive(now)) return this.drop('keypair-expired', out);
    const lo = readLe32(msg, 8);
    const hi = readLe32(msg, 12);
    const plaintext = this.allocate(msg.length - MESSAGE_TRANSPORT_MIN_SIZE);
    this.setNonce(lo, hi);
    if (
      !this.crypto.open(
        keypair.receiveKey,
        this.nonce,
        msg.subarray(MESSAGE_TRANSPORT_HEADER_SIZE),
        EMPTY,
        plaintext,
      )
    ) {
      return this.drop('decrypt-failed', out);
    }
    if (!keypair.replay.check(lo, hi)) return this.drop('replayed-counter', out);

    const peer = entry.peer;
    if (keypair === peer.keypairs.next) {
      // The initiator used the responder's new keypair: it becomes current (wireguard-go ReceivedWithKeypair).
      const kps = peer.keypairs;
      this.deleteKeypair(kps.previous);
      kps.previous = kps.current;
      kps.current = keypair;
      kps.next = null;
      this.handshakeComplete(peer);
      this.sendStaged(peer, now, out);
    }
    peer.endpoint = from;
    peer.rxBytes += msg.length;
    this.keepKeyFreshReceiving(peer, now, out);
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepaliveMs);
    peer.timers.anyAuthenticatedPacketReceived();
    if (plaintext.length === 0) return; // a keepalive

    peer.timers.dataReceived(now);
    const len = ipPacketLength(plaintext);
    if (len === 0) return this.drop('invalid-inner-packet', out);
    const owner =
      plaintext[0]! >> 4 === 4
        ? this.allowedIps.lookupV4(plaintext, IPV4_SRC_OFFSET)
        : this.allowedIps.lookupV6(plaintext, IPV6_SRC_OFFSET);
    if (owner !== peer) return this.drop('source-not-allowed', out);
    out.push({
      type: 'deliver',
      data: len === plaintext.length ? plaintext : plaintext.subarray(0, len),
    });
  }

  // ---------------------------------------------------------------- send

  private stage(peer: Peer, packet: Uint8Array, out: Action[]): void {
    if (peer.staged.length >= MAX_STAGED_PACKETS) {
      peer.staged.shift();
      this.drop('queue-full', out);
    }
    peer.staged.push(packet);
  }

  private sendStaged(peer: Peer, now: number, out: Action[]): void {
    if (peer.staged.length === 0) return;
    const keypair = peer.keypairs.current;
    if (!keypair || !keypair.canSend(now)) {
      this.sendInitiation(peer, false, now, out);
      return;
    }
    if (!peer.endpoint) {
      for (let i = 0; i < peer.staged.length; i++) this.drop('no-endpoint', out);
      peer.staged.length = 0;
      return;
    }
    const staged = peer.staged.splice(0);
    let sentData = false;
    for (const packet of staged) {
      this.sendTo(peer, this.encrypt(keypair, packet), out);
      if (packet.length > 0) sentData = true;
    }
    this.transportSent(peer, keypair, sentData, now, out);
  }

  /** Timer events and the rekey check after transport messages went out (`sentData`: not only keepalives). */
  private transportSent(
    peer: Peer,
    keypair: Keypair,
    sentData: boolean,
    now: number,
    out: Action[],
  ): void {
    if (sentData) peer.timers.dataSent(now);
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepaliveMs);
    peer.timers.anyAuthenticatedPacketSent();
    this.keepKeyFreshSending(peer, keypair, now, out);
  }

  /** Encrypts one packet into a fresh transport message (whitepaper §5.4.6). */
  private encrypt(keypair: Keypair, packet: Uint8Array): Uint8Array {
    const padded = paddedLength(packet.length, this.mtu);
    const msg = this.allocate(MESSAGE_TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_LEN);
    const lo = keypair.sendLo;
    const hi = keypair.sendHi;
    keypair.incrementSend();
    // Every byte is written: `allocate` may return reused memory.
    writeLe32(msg, 0, MESSAGE_TRANSPORT_TYPE); // type and three reserved zero bytes
    writeLe32(msg, 4, keypair.remoteIndex);
    writeLe32(msg, 8, lo);
    writeLe32(msg, 12, hi);
    msg.set(packet, MESSAGE_TRANSPORT_HEADER_SIZE);
    msg.fill(
      0,
      MESSAGE_TRANSPORT_HEADER_SIZE + packet.length,
      MESSAGE_TRANSPORT_HEADER_SIZE + padded,
    );
    this.setNonce(lo, hi);
    const body = msg.subarray(MESSAGE_TRANSPORT_HEADER_SIZE);
    this.crypto.seal(keypair.sendKey, this.nonce, body.subarray(0, padded), EMPTY, body);
    return msg;
  }

  /** Starts a handshake (whitepaper §5.4.2), unless one was sent less than REKEY_TIMEOUT ago. */
  private sendInitiation(peer: Peer, isRetry: boolean, now: number, out: Action[]): void {
    if (!isRetry) peer.timers.handshakeAttempts = 0;
    if (now - peer.lastSentInitiation < REKEY_TIMEOUT_MS) return;
    if (!this.local || !peer.endpoint) return;
    this.freePendingIndex(peer);
    const localIndex = this.indexTable.allocate({ peer, keypair: null });
    const msg = peer.handshake.createInitiation(
      localIndex,
      this.randomKey(),
      tai64n(this.wallClock()),
    );
    if (!msg) {
      this.indexTable.delete(localIndex);
      return;
    }
    peer.pendingIndex = localIndex;
    peer.lastSentInitiation = now;
    peer.cookieGenerator.addMacs(msg, now);
    this.sendTo(peer, msg, out);
    peer.timers.anyAuthenticatedPacketTraversal(now, peer.persistentKeepaliveMs);
    peer.timers.anyAuthenticatedPacketSent();
    peer.timers.handshakeInitiated(now);
  }

  private sendTo(peer: Peer, data: Uint8Array, out: Action[]): void {
    peer.txBytes += data.length;
    out.push({ type: 'send', endpoint: peer.endpoint!, data });
  }

  // ---------------------------------------------------------------- sessions

  /** Derives the keypair of a finished handshake and rotates it into place (wireguard-go BeginSymmetricSession). */
  private beginSession(peer: Peer, now: number): Keypair | null {
    const keys = peer.handshake.deriveKeys();
    if (!keys) return null;
    const localIndex = keys.localIndex;
    const keypair = new Keypair(
      keys.sendKey,
      keys.receiveKey,
      keys.isInitiator,
      localIndex,
      keys.remoteIndex,
      now,
    );
    this.indexTable.replace(localIndex, { peer, keypair });
    if (peer.pendingIndex === localIndex) peer.pendingIndex = 0;
    const kps = peer.keypairs;
    if (keys.isInitiator) {
      if (kps.next) {
        this.deleteKeypair(kps.current);
        kps.previous = kps.next;
        kps.next = null;
      } else {
        this.deleteKeypair(kps.previous);
        kps.previous = kps.current;
      }
      kps.current = keypair;
    } else {
      this.deleteKeypair(kps.next);
      this.deleteKeypair(kps.previous);
      kps.previous = null;
      kps.next = keypair;
    }
    peer.timers.sessionDerived(now);
    return keypair;
  }

  private handshakeComplete(peer: Peer): void {
    peer.timers.handshakeComplete();
    peer.sentLastMinuteHandshake = false;
    peer.lastHandshakeWallMs = this.wallClock();
  }

  /** Initiator rekeys after REKEY_AFTER_TIME or REKEY_AFTER_MESSAGES (whitepaper §6.2). */
  private keepKeyFreshSending(peer: Peer, keypair: Keypair, now: number, out: Action[]): void {
    if (!keypair.isInitiator) return;
    if (keypair.needsRekeyByMessages() || now - keypair.created >= REKEY_AFTER_TIME_MS) {
      this.sendInitiation(peer, false, now, out);
    }
  }

  /** An initiator whose session nears REJECT_AFTER_TIME rekeys once on receipt (whitepaper §6.2). */
  private keepKeyFreshReceiving(peer: Peer, now: number, out: Action[]): void {
    if (peer.sentLastMinuteHandshake) return;
    const kp = peer.keypairs.current;
    if (kp && kp.isInitiator && now - kp.created >= REKEY_ON_RECEIVE_AFTER_MS) {
      peer.sentLastMinuteHandshake = true;
      this.sendInitiation(peer, false, now, out);
    }
  }

  private expireCurrentKeypairs(peer: Peer): void {
    peer.handshake.clear();
    // The next packet must handshake under the new identity at once, not after REKEY_TIMEOUT.
    peer.lastSentInitiation = -Infinity;
    this.freePendingIndex(peer);
    if (peer.keypairs.current) peer.keypairs.current.expired = true;
    if (peer.keypairs.next) peer.keypairs.next.expired = true;
  }

  private zeroKeyMaterial(peer: Peer): void {
    const kps = peer.keypairs;
    this.deleteKeypair(kps.current);
    this.deleteKeypair(kps.previous);
    this.deleteKeypair(kps.next);
    kps.current = kps.previous = kps.next = null;
    peer.handshake.clear();
    this.freePendingIndex(peer);
  }

  private deleteKeypair(keypair: Keypair | null): void {
    if (!keypair) return;
    const entry = this.indexTable.get(keypair.localIndex);
    if (entry && entry.keypair === keypair) this.indexTable.delete(keypair.localIndex);
    keypair.wipe();
  }

  private freePendingIndex(peer: Peer): void {
    if (peer.pendingIndex !== 0) {
      const entry = this.indexTable.get(peer.pendingIndex);
      if (entry && !entry.keypair) this.indexTable.delete(peer.pendingIndex);
      peer.pendingIndex = 0;
    }
  }

  // ---------------------------------------------------------------- timers

  private fire(peer: Peer, name: TimerName, now: number, out: Action[]): void {
    const t = peer.timers;
    switch (name) {
      case 'retransmitHandshake':
        if (t.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
          // Give up (whitepaper §6.4): drop what waits, and zero keys later unless already scheduled.
          t.stop('sendKeepalive');
          peer.staged.length = 0;
          if (!t.pending('zeroKeyMaterial')) t.arm('zeroKeyMaterial', now + ZERO_KEYS_AFTER_MS);
        } else {
          t.handshakeAttempts++;
          this.sendInitiation(peer, true, now, out);
        }
        return;
      case 'sendKeepalive':
        this.sendKeepalive(peer, now, out);
        if (t.needAnotherKeepalive) {
          t.needAnotherKeepalive = false;
          t.arm('sendKeepalive', now + KEEPALIVE_TIMEOUT_MS);
        }
        return;
      case 'newHandshake':
        // Data was sent but nothing came back for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (§6.5).
        this.sendInitiation(peer, false, now, out);
        return;
      case 'zeroKeyMaterial':
        this.zeroKeyMaterial(peer);
        return;
      case 'persistentKeepalive':
        if (peer.persistentKeepaliveInterval > 0) this.sendKeepalive(peer, now, out);
        return;
    }
  }

  // ---------------------------------------------------------------- helpers

  private isUnderLoad(now: number): boolean {
    if (now - this.handshakeWindowStart >= 1000) {
      this.handshakeWindowStart = now;
      this.handshakeWindowCount = 0;
    }
    if (++this.handshakeWindowCount > this.underLoadThreshold)
      this.underLoadUntil = now + UNDER_LOAD_AFTER_TIME_MS;
    return this.forcedUnderLoad || now < this.underLoadUntil;
  }

  private drop(reason: DropReason, out: Action[]): void {
    this.drops[reason]++;
    out.push({ type: 'drop', reason });
  }

  private randomKey(): Uint8Array {
    const k = new Uint8Array(KEY_LEN);
    this.random(k);
    return k;
  }

  /** Uniform jitter in [0, REKEY_TIMEOUT_JITTER_MAX_MS) ms for handshake timers (whitepaper §6.1). */
  private jitter(): number {
    return this.randomPool.uint32() % REKEY_TIMEOUT_JITTER_MAX_MS;
  }

  private setNonce(lo: number, hi: number): void {
    // 32 zero bits then the little-endian 64-bit counter (RFC 8439 nonce as WireGuard lays it out).
    writeLe32(this.nonce, 4, lo);
    writeLe32(this.nonce, 8, hi);
  }
}

/**
 * Transport plaintext length after padding: the next multiple of 16, never past the MTU
 * (whitepaper §5.4.6, wireguard-go calculatePaddingSize).
 */
export function paddedLength(length: number, mtu: number): number {
  const last = mtu > 0 && length > mtu ? length % mtu : length;
  let padded = (last + PADDING_MULTIPLE - 1) & ~(PADDING_MULTIPLE - 1);
  if (mtu > 0 && padded > mtu) padded = mtu;
  return length + padded - last;
}

function readLe32(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

function writeLe32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}
