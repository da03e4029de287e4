/**
 * The userspace WireGuard device: the I/O shell around wg-core's sans-IO Device (whitepaper §5-§6)
 * that wireguard-go's device package is: a TUN interface, a UDP bind, one engine timer, and the
 * UAPI configuration protocol (wireguard.com/xplatform) applied through one path.
 */
import { randomFillSync } from 'node:crypto';

import {
  Device,
  KEY_LEN,
  UAPI_ERRNO,
  errnoReply,
  formatCidr,
  formatGet,
  formatIp,
  keyFromBase64,
  keyToBase64,
  messageType,
  nobleCrypto,
  parseCidr,
  parseIp,
  parseSet,
  type Action,
  type CryptoProvider,
  type DropReason,
  type Endpoint,
  type UapiAllowedIp,
  type UapiPeerConfig,
  type UapiSetRequest,
} from '@wiremesh/wg-core/engine';
import { selectCrypto } from '@wiremesh/wg-core/native';

import {
  DEFAULT_TUN_MTU,
  MAX_TIMER_DELAY_MS,
  MTU_CHECK_INTERVAL_MS,
  OUTPUT_SLAB_BYTES,
  TIMER_SLACK_MS,
} from './constants.js';
import { Slab } from './slab.js';
import { silentLogger, type Logger } from './log.js';
import { openTun, type PacketBatch, type TunDevice } from './tun.js';
import { UapiSession, startUapiServer, type UapiHandler, type UapiServer } from './uapi-server.js';
import { openUdpBind, type Datagram, type DatagramBatch, type UdpBind } from './udp.js';

/** Which crypto provider to use: the fastest available ('auto'), or one pinned. */
export type CryptoChoice = 'auto' | 'noble' | 'native';

/** A key: base64 text as wg(8) prints it, or its 32 bytes (copied). */
export type KeyInput = string | Uint8Array;

/** One peer of a `configure` call: the fields of a UAPI `public_key=` section, typed. */
export interface PeerConfig {
  publicKey: KeyInput;
  /** Remove this peer (every other field is ignored). */
  remove?: boolean;
  /** Only change the peer if it exists; never create it. */
  updateOnly?: boolean;
  /** null or 32 zero bytes remove the preshared key. */
  presharedKey?: KeyInput | null;
  /** "192.0.2.1:51820", "[2001:db8::1]:51820", or { ip, port } with a numeric address. */
  endpoint?: string | Endpoint;
  /** Seconds, 0 turns it off. */
  persistentKeepalive?: number;
  /** Drop the peer's allowed IPs before adding `allowedIps`. */
  replaceAllowedIps?: boolean;
  /** Prefixes such as "10.8.0.0/16" or "fd00::/64"; a leading '-' removes that prefix from this peer. */
  allowedIps?: readonly string[];
}

/** A `configure` call: the fields of a UAPI set=1 request, typed. Absent fields stay as they are. */
export interface DeviceConfig {
  /** null or 32 zero bytes remove the private key. */
  privateKey?: KeyInput | null;
  /** UDP port, 0 = any free one. */
  listenPort?: number;
  /** SO_MARK of outgoing datagrams, 0 = off. */
  fwmark?: number;
  /** Remove every peer before applying `peers`. */
  replacePeers?: boolean;
  peers?: readonly PeerConfig[];
}

/** A peer's state, as `wg show` reports it. */
export interface PeerStats {
  /** Base64. */
  readonly publicKey: string;
  readonly hasPresharedKey: boolean;
  /** The latest authenticated source address, or the configured endpoint; null when none. */
  readonly endpoint: Endpoint | null;
  /** Wall-clock ms since the epoch of the latest handshake; 0 = never. */
  readonly lastHandshakeMs: number;
  /** Bytes of WireGuard messages received from / sent to this peer (as wg show's transfer). */
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Seconds, 0 = off. */
  readonly persistentKeepalive: number;
  /** Prefixes in "address/cidr" text. */
  readonly allowedIps: readonly string[];
}

/** Packets the device dropped, by reason: the engine's reasons plus 'internal-error' (a caught bug). */
export type DeviceDrops = Readonly<Record<DropReason | 'internal-error', number>>;

/** Options of createUserspaceDevice. */
export interface UserspaceDeviceOptions {
  /** Interface name (at most 15 bytes); with `tun` given, only used in log lines. */
  name: string;
  /** Tunnel MTU set on a new interface and used for padding; default 1420 (as wireguard-go). */
  mtu?: number;
  /** Crypto provider; default 'auto' (native when it works, else the pure-TS one). */
  crypto?: CryptoChoice;
  /** A TUN device to use instead of creating one (a fake, in tests); the device owns and closes it. */
  tun?: TunDevice;
  /** Opens the UDP bind; default openUdpBind. Throws (e.g. code EADDRINUSE) when it cannot. */
  openBind?: (port: number, fwmark: number) => UdpBind;
  logger?: Logger;
}

/** A running userspace WireGuard interface. */
export interface UserspaceDevice {
  /** The interface name. */
  readonly name: string;
  /** The UDP port bound now (the kernel's choice after listen_port 0). */
  readonly listenPort: number;
  /** The crypto provider in use ('native' or 'noble'), and why it was chosen. */
  readonly cryptoName: 'native' | 'noble';
  readonly cryptoReason: string;
  /** The device's public key (base64), or null without a private key. */
  readonly publicKey: string | null;
  /**
   * The tunnel MTU transport messages are padded to: the interface's, followed within
   * MTU_CHECK_INTERVAL_MS when it changes (`ip link set dev NAME mtu N`).
   */
  readonly mtu: number;
  /** True once closed. */
  readonly closed: boolean;
  /**
   * Settles when the device has closed: with null after close(), or with the error that closed it
   * (the TUN interface was deleted, code EBADFD; the UDP socket failed and could not be reopened).
   */
  readonly done: Promise<Error | null>;
  /**
   * Applies a configuration whole or not at all, as a UAPI set=1 would. Throws TypeError/RangeError
   * for malformed input (a bad key, prefix or endpoint), and Error with `code` 'EADDRINUSE' and
   * `errno` 98 when the listen port or fwmark cannot be applied (then nothing changed).
   */
  configure(config: DeviceConfig): void;
  /**
   * Answers UAPI request text ("get=1\n\n", "set=1\n…\n\n", several in a row) as the socket would,
   * with the replies concatenated; the text is treated as ending there. Never rejects.
   */
  uapi(requestText: string): Promise<string>;
  /** Every peer's state, in configuration order. */
  peerStats(): PeerStats[];
  /** Drop counters since start. */
  drops(): DeviceDrops;
  /**
   * Receives the datagrams arriving on the WireGuard port that are not WireGuard messages (e.g.
   * endpoint-reflection replies), instead of the engine dropping them as malformed. The payload is
   * a copy the callback may keep. Pass null to stop. Exceptions it throws are logged and counted.
   */
  onForeignDatagram(callback: ((data: Uint8Array, from: Endpoint) => void) | null): void;
  /**
   * Sends datagrams from the WireGuard socket itself, so that NATs map them like the tunnel's own
   * traffic (endpoint reflection probes). Returns how many the kernel took. Throws as UdpBind.send.
   */
  sendRaw(datagrams: readonly Datagram[]): number;
  /** The UAPI request handler of this device, for a socket server (startUapiServer). */
  readonly uapiHandler: UapiHandler;
  /**
   * Serves the UAPI socket DIR/NAME.sock (default /var/run/wireguard, where wg(8) looks) until the
   * device closes. Rejects as startUapiServer does (code EADDRINUSE: another daemon serves NAME).
   */
  listenUapi(options?: { socketDir?: string }): Promise<UapiServer>;
  /** Closes the UAPI socket, the bind and the TUN (which removes the interface) and wipes keys. Idempotent. */
  close(): void;
}

/** An Error carrying a UAPI errno (positive), as configure() throws it. */
export class UapiError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(errno: number, code: string, message: string) {
    super(message);
    this.name = 'UapiError';
    this.errno = errno;
    this.code = code;
  }
}

const ERRNO_CODES: Readonly<Record<number, string>> = {
  [UAPI_ERRNO.EIO]: 'EIO',
  [UAPI_ERRNO.EINVAL]: 'EINVAL',
  [UAPI_ERRNO.ENOANO]: 'ENOANO',
  [UAPI_ERRNO.EPROTO]: 'EPROTO',
  [UAPI_ERRNO.EADDRINUSE]: 'EADDRINUSE',
};

const PORT_MAX = 0xffff;
const FWMARK_MAX = 0xffff_ffff;

function toKey(input: KeyInput, what: string): Uint8Array {
  if (input instanceof Uint8Array) {
    if (input.length !== KEY_LEN)
      throw new RangeError(`${what} must be ${KEY_LEN} bytes, got ${input.length}`);
    return input.slice();
  }
  if (typeof input !== 'string') throw new TypeError(`${what} must be base64 text or a Uint8Array`);
  try {
    return keyFromBase64(input.trim());
  } catch (err) {
    throw new TypeError(`${what}: ${(err as Error).message}`);
  }
}

function checkUint(value: unknown, what: string, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} must be an integer from 0 to ${max}, got ${String(value)}`);
  }
  return value;
}

/** "a.b.c.d:port", "[v6]:port" or { ip, port } -> an Endpoint with the address in canonical text. */
function toEndpoint(input: string | Endpoint, what: string): Endpoint {
  let host: string;
  let port: unknown;
  if (typeof input === 'string') {
    const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(input) ?? /^([^:[\]]+):(\d{1,5})$/.exec(input);
    if (m === null) throw new TypeError(`${what} must be IPv4:port or [IPv6]:port, got '${input}'`);
    host = m[1]!;
    port = Number(m[2]);
  } else if (typeof input === 'object' && input !== null && typeof input.ip === 'string') {
    host = input.ip;
    port = input.port;
  } else {
    throw new TypeError(`${what} must be a string or { ip, port }`);
  }
  const bytes = parseIp(host);
  if (bytes === null) {
    throw new TypeError(
      `${what}: '${host}' is not a numeric IPv4 or IPv6 address (resolve host names first)`,
    );
  }
  return { ip: formatIp(bytes), port: checkUint(port, `${what}.port`, PORT_MAX) };
}

function toAllowedIp(text: string, what: string): UapiAllowedIp {
  if (typeof text !== 'string') throw new TypeError(`${what} must be a string such as 10.8.0.0/16`);
  const remove = text.startsWith('-');
  const p = parseCidr(remove ? text.slice(1) : text);
  if (p === null)
    throw new TypeError(`${what} must be address/prefix-length such as 10.8.0.0/16, got '${text}'`);
  return remove
    ? { address: p.address, cidr: p.cidr, remove: true }
    : { address: p.address, cidr: p.cidr };
}

/**
 * The UapiSetRequest a DeviceConfig stands for. Throws TypeError/RangeError for malformed fields.
 * Returns fresh key bytes the caller wipes after use.
 */
export function configToRequest(config: DeviceConfig): UapiSetRequest {
  if (typeof config !== 'object' || config === null)
    throw new TypeError('config must be an object');
  const req: UapiSetRequest = { replacePeers: config.replacePeers === true, peers: [] };
  if (config.privateKey !== undefined) {
    req.privateKey =
      config.privateKey === null ? new Uint8Array(KEY_LEN) : toKey(config.privateKey, 'privateKey');
  }
  if (config.listenPort !== undefined)
    req.listenPort = checkUint(config.listenPort, 'listenPort', PORT_MAX);
  if (config.fwmark !== undefined) req.fwmark = checkUint(config.fwmark, 'fwmark', FWMARK_MAX);
  const peers = config.peers ?? [];
  if (!Array.isArray(peers)) throw new TypeError('peers must be an array');
  peers.forEach((p: PeerConfig, i) => {
    const what = `peers[${i}]`;
    if (typeof p !== 'object' || p === null) throw new TypeError(`${what} must be an object`);
    const pc: UapiPeerConfig = {
      publicKey: toKey(p.publicKey, `${what}.publicKey`),
      remove: p.remove === true,
      updateOnly: p.updateOnly === true,
      replaceAllowedIps: p.replaceAllowedIps === true,
      allowedIps: [],
    };
    if (!pc.remove) {
      if (p.presharedKey !== undefined) {
        pc.presharedKey =
          p.presharedKey === null
            ? new Uint8Array(KEY_LEN)
            : toKey(p.presharedKey, `${what}.presharedKey`);
      }
      if (p.endpoint !== undefined) pc.endpoint = toEndpoint(p.endpoint, `${what}.endpoint`);
      if (p.persistentKeepalive !== undefined) {
        pc.persistentKeepaliveInterval = checkUint(
          p.persistentKeepalive,
          `${what}.persistentKeepalive`,
          PORT_MAX,
        );
      }
      const ips = p.allowedIps ?? [];
      if (!Array.isArray(ips))
        throw new TypeError(`${what}.allowedIps must be an array of strings`);
      ips.forEach((t: string, j) => pc.allowedIps.push(toAllowedIp(t, `${what}.allowedIps[${j}]`)));
    }
    req.peers.push(pc);
  });
  return req;
}

function wipeRequest(req: UapiSetRequest): void {
  req.privateKey?.fill(0);
  for (const p of req.peers) p.presharedKey?.fill(0);
}

const DEFAULT_OPEN_BIND = (port: number, fwmark: number): UdpBind =>
  openUdpBind(fwmark === 0 ? { port } : { port, fwmark });

class Shell implements UserspaceDevice {
  readonly name: string;
  readonly cryptoName: 'native' | 'noble';
  readonly cryptoReason: string;
  readonly done: Promise<Error | null>;

  readonly #engine: Device;
  readonly #tun: TunDevice;
  readonly #openBind: (port: number, fwmark: number) => UdpBind;
  readonly #log: Logger;
  #bind: UdpBind;
  #closed = false;
  #resolveDone!: (err: Error | null) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  readonly #mtuTimer: ReturnType<typeof setInterval>;
  #internalErrors = 0;
  readonly #servers = new Set<UapiServer>();
  // Reused per batch: the data path allocates no arrays of its own.
  readonly #out: Action[] = [];
  /** Memory the engine writes its output into; reset after each flush. */
  readonly #slab: Slab;
  readonly #datagrams: Datagram[] = [];
  readonly #packets: Uint8Array[] = [];

  constructor(
    name: string,
    engine: Device,
    crypto: { name: 'native' | 'noble'; reason: string },
    tun: TunDevice,
    bind: UdpBind,
    openBind: (port: number, fwmark: number) => UdpBind,
    log: Logger,
    slab: Slab,
  ) {
    this.#slab = slab;
    this.name = name;
    this.#engine = engine;
    this.cryptoName = crypto.name;
    this.cryptoReason = crypto.reason;
    this.#tun = tun;
    this.#bind = bind;
    this.#openBind = openBind;
    this.#log = log;
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
    tun.onError((err) => {
      this.#log.verbose(`TUN interface ${name} failed: ${err.message}`);
      this.#shutdown(err);
    });
    tun.onPackets(this.#onTunPackets);
    this.#attachBind(bind);
    this.#mtuTimer = setInterval(this.#followMtu, MTU_CHECK_INTERVAL_MS);
    // The sockets keep a daemon alive; this poll alone must not keep a library user's process up.
    this.#mtuTimer.unref();
  }

  get listenPort(): number {
    return this.#bind.port;
  }

  get publicKey(): string | null {
    const pk = this.#engine.publicKey;
    return pk === null ? null : keyToBase64(pk);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get mtu(): number {
    return this.#engine.mtu;
  }

  // ------------------------------------------------------------------ configuration

  configure(config: DeviceConfig): void {
    if (this.#closed) throw new Error(`device ${this.name} is closed`);
    const req = configToRequest(config);
    try {
      const errno = this.#applySet(req);
      if (errno !== 0) {
        throw new UapiError(
          errno,
          ERRNO_CODES[errno] ?? 'EUNKNOWN',
          errno === UAPI_ERRNO.EADDRINUSE
            ? `cannot apply listenPort ${String(config.listenPort ?? this.listenPort)} / fwmark ${String(config.fwmark ?? this.#engine.fwmark)}: the port is in use or the mark was refused (nothing changed)`
            : `configuration failed with errno ${errno}`,
        );
      }
    } finally {
      wipeRequest(req);
    }
  }

  readonly uapiHandler: UapiHandler = {
    get: () => this.#uapiGet(),
    set: (body: string) => this.#uapiSet(body),
  };

  async uapi(requestText: string): Promise<string> {
    if (typeof requestText !== 'string') throw new TypeError('requestText must be a string');
    return new UapiSession(this.uapiHandler).feed(requestText, true).reply;
  }

  async listenUapi(options: { socketDir?: string } = {}): Promise<UapiServer> {
    if (this.#closed) throw new Error(`device ${this.name} is closed`);
    const server = await startUapiServer({
      name: this.name,
      handler: this.uapiHandler,
      logger: this.#log,
      ...(options.socketDir === undefined ? {} : { socketDir: options.socketDir }),
    });
    if (this.#closed) server.close();
    else this.#servers.add(server);
    return server;
  }

  #uapiGet(): string {
    const state = this.#engine.uapiState(this.#closed ? 0 : this.#bind.port);
    try {
      return formatGet(state);
    } finally {
      state.privateKey?.fill(0);
      for (const p of state.peers) p.presharedKey?.fill(0);
    }
  }

  #uapiSet(body: string): string {
    if (this.#closed) return errnoReply(UAPI_ERRNO.ENOANO);
    const parsed = parseSet(body);
    if (!parsed.ok) {
      this.#log.verbose(`UAPI: set rejected (errno ${parsed.errno}): ${parsed.message}`);
      return errnoReply(parsed.errno);
    }
    try {
      return errnoReply(this.#applySet(parsed.request));
    } finally {
      wipeRequest(parsed.request);
    }
  }

  /**
   * The one apply path of set=1 and configure(): a new listen port is bound (and the fwmark set)
   * before anything changes, so a refused port leaves the device as it was (errno EADDRINUSE).
   */
  #applySet(req: UapiSetRequest): number {
    const engine = this.#engine;
    const fwmark = req.fwmark ?? engine.fwmark;
    let newBind: UdpBind | undefined;
    const port = req.listenPort;
    // listen_port 0 asks for a fresh random port, as wireguard-go's BindUpdate rebinds.
    if (port !== undefined && (port === 0 || port !== this.#bind.port)) {
      try {
        newBind = this.#openBind(port, fwmark);
      } catch (err) {
        this.#log.error(`UAPI: failed to set listen_port ${port}: ${(err as Error).message}`);
        return UAPI_ERRNO.EADDRINUSE;
      }
    } else if (req.fwmark !== undefined && req.fwmark !== engine.fwmark) {
      try {
        this.#bind.setMark(req.fwmark);
      } catch (err) {
        this.#log.error(`UAPI: failed to update fwmark ${req.fwmark}: ${(err as Error).message}`);
        return UAPI_ERRNO.EADDRINUSE;
      }
    }
    const out = this.#out;
    out.length = 0;
    const now = performance.now();
    try {
      engine.applyUapi(req, now, out);
    } catch (err) {
      // parseSet validated the request, so this is a bug; what applied so far stays applied.
      newBind?.close();
      this.#log.error(`UAPI: applying a set request failed: ${(err as Error).message}`);
      this.#flush(out);
      return UAPI_ERRNO.ENOANO;
    }
    if (newBind !== undefined) {
      const old = this.#bind;
      this.#bind = newBind;
      this.#attachBind(newBind);
      old.close();
      this.#log.verbose(`UAPI: listening on UDP port ${newBind.port}`);
    }
    this.#flush(out);
    return 0;
  }

  // ------------------------------------------------------------------ stats

  peerStats(): PeerStats[] {
    const engine = this.#engine;
    return [...engine.peers()].map((p) => ({
      publicKey: keyToBase64(p.publicKey),
      hasPresharedKey: p.handshake.presharedKey !== null,
      endpoint: p.endpoint,
      lastHandshakeMs: p.lastHandshakeWallMs,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepaliveInterval,
      allowedIps: engine.allowedIps.entriesFor(p).map((a) => formatCidr(a.address, a.cidr)),
    }));
  }

  drops(): DeviceDrops {
    return { ...this.#engine.drops, 'internal-error': this.#internalErrors };
  }

  #onForeign: ((data: Uint8Array, from: Endpoint) => void) | null = null;

  onForeignDatagram(callback: ((data: Uint8Array, from: Endpoint) => void) | null): void {
    this.#onForeign = callback;
  }

  sendRaw(datagrams: readonly Datagram[]): number {
    return this.#closed ? 0 : this.#bind.send(datagrams);
  }

  // ------------------------------------------------------------------ data path

  #onTunPackets = (batch: PacketBatch): void => {
    const out = this.#out;
    out.length = 0;
    const now = performance.now();
    const engine = this.#engine;
    for (let i = 0; i < batch.count; i++) {
      try {
        engine.send(batch.packet(i), now, out);
      } catch (err) {
        this.#internalError('sending', err);
      }
    }
    this.#flush(out);
  };

  #onDatagrams = (batch: DatagramBatch): void => {
    const out = this.#out;
    out.length = 0;
    const now = performance.now();
    const engine = this.#engine;
    const foreign = this.#onForeign;
    for (let i = 0; i < batch.count; i++) {
      if (foreign !== null && messageType(batch.packet(i)) === 0) {
        try {
          foreign(batch.packet(i).slice(), batch.endpoint(i));
        } catch (err) {
          this.#internalError('handing on a non-WireGuard datagram', err);
        }
        continue;
      }
      try {
        engine.receive(batch.packet(i), batch.endpoint(i), now, out);
      } catch (err) {
        this.#internalError('receiving', err);
      }
    }
    this.#flush(out);
  };

  /** Gives the engine the interface's MTU when it changed (wireguard-go: tun.EventMTUUpdate). */
  #followMtu = (): void => {
    if (this.#closed) return;
    let mtu: number;
    try {
      mtu = this.#tun.mtu();
    } catch {
      return; // The interface is going away; the TUN's error closes the device.
    }
    if (mtu === this.#engine.mtu) return;
    this.#log.verbose(`Interface ${this.name}: MTU updated from ${this.#engine.mtu} to ${mtu}`);
    this.#engine.mtu = mtu;
  };

  #internalError(what: string, err: unknown): void {
    this.#internalErrors++;
    const e = err as Error;
    this.#log.error(`internal error while ${what} a packet (dropped): ${e?.stack ?? String(err)}`);
  }

  /**
   * Carries out the engine's actions: one UDP send and one TUN write per batch. The engine counted
   * each datagram in its peer's tx bytes when it made it, so a datagram the kernel refuses still
   * counts, where wireguard-go counts only what its bind sent. Undoing that needs to know which
   * datagrams failed (the bind reports a count, and refused ones are skipped mid-batch) and whose
   * they were (a send action names no peer), so it stays: it matters only while sends fail.
   */
  #flush(out: Action[]): void {
    const datagrams = this.#datagrams;
    const packets = this.#packets;
    for (let i = 0; i < out.length; i++) {
      const a = out[i]!;
      if (a.type === 'send') datagrams.push(a);
      else if (a.type === 'deliver') packets.push(a.data);
    }
    out.length = 0;
    try {
      if (datagrams.length > 0 && !this.#closed) this.#bind.send(datagrams);
      if (packets.length > 0 && !this.#closed) this.#tun.writePackets(packets);
    } catch (err) {
      // e.g. an endpoint the bind cannot encode: count it, never let it kill the daemon.
      this.#internalError('writing', err);
    } finally {
      datagrams.length = 0;
      packets.length = 0;
      // Every action's data was copied out above: the engine's output memory is free again.
      this.#slab.reset();
    }
    this.#armTimer();
  }

  /** Keeps one timer armed at the engine's next deadline (only ever moved earlier here). */
  #armTimer(): void {
    if (this.#closed) return;
    const deadline = this.#engine.nextDeadline();
    if (deadline === Infinity || deadline >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = deadline;
    const delay = Math.min(
      MAX_TIMER_DELAY_MS,
      Math.max(0, Math.ceil(deadline - performance.now())) + TIMER_SLACK_MS,
    );
    this.#timer = setTimeout(this.#onTimer, delay);
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#closed) return;
    const out = this.#out;
    out.length = 0;
    try {
      this.#engine.tick(performance.now(), out);
    } catch (err) {
      this.#internalError('running timers for', err);
    }
    this.#flush(out);
  };

  #attachBind(bind: UdpBind): void {
    bind.onError((err) => this.#onBindError(bind, err));
    bind.onDatagrams(this.#onDatagrams);
  }

  #onBindError(bind: UdpBind, err: Error): void {
    if (bind !== this.#bind || this.#closed) return;
    this.#log.error(`UDP socket on port ${bind.port} failed: ${err.message}; reopening it`);
    bind.close();
    try {
      this.#bind = this.#openBind(bind.port, this.#engine.fwmark);
      this.#attachBind(this.#bind);
    } catch (e) {
      this.#log.error(`cannot reopen UDP port ${bind.port}: ${(e as Error).message}`);
      this.#shutdown(e as Error);
    }
  }

  // ------------------------------------------------------------------ lifetime

  close(): void {
    this.#shutdown(null);
  }

  #shutdown(reason: Error | null): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    clearInterval(this.#mtuTimer);
    for (const server of this.#servers) server.close();
    this.#servers.clear();
    this.#bind.close();
    this.#tun.close();
    // Wipe key material: peers' sessions and the static private key.
    this.#engine.clearPeers();
    this.#engine.setPrivateKey(null);
    this.#resolveDone(reason);
  }
}

/**
 * Creates a userspace WireGuard device: selects the crypto provider, creates the TUN interface
 * `name` (unless `tun` is given) with the MTU, binds a UDP port (any; set listenPort to choose),
 * and starts the data path. The caller owns the device and must close() it.
 * Throws TypeError/RangeError for bad options; Error with `code` when the TUN cannot be created
 * (ENOENT no /dev/net/tun, EPERM no CAP_NET_ADMIN, EBUSY name in use, RangeError name too long),
 * or when native crypto was forced but is unavailable.
 */
export function createUserspaceDevice(options: UserspaceDeviceOptions): UserspaceDevice {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('options must be an object');
  const { name } = options;
  if (typeof name !== 'string' || name === '')
    throw new TypeError('name must be a non-empty string');
  const choice = options.crypto ?? 'auto';
  if (choice !== 'auto' && choice !== 'noble' && choice !== 'native') {
    throw new TypeError(`crypto must be 'auto', 'noble' or 'native', got ${String(choice)}`);
  }
  const log = options.logger ?? silentLogger;
  const openBind = options.openBind ?? DEFAULT_OPEN_BIND;
  if (typeof openBind !== 'function') throw new TypeError('openBind must be a function');

  const selection = selectCrypto(choice === 'auto' ? {} : { force: choice });
  const provider: CryptoProvider = selection.provider;
  const cryptoName = provider === nobleCrypto ? 'noble' : 'native';

  const mtu = options.mtu ?? (options.tun === undefined ? DEFAULT_TUN_MTU : options.tun.mtu());
  const tun = options.tun ?? openTun({ name, mtu });
  let bind: UdpBind;
  try {
    bind = openBind(0, 0);
  } catch (err) {
    tun.close();
    throw err;
  }
  const slab = new Slab(OUTPUT_SLAB_BYTES);
  const engine = new Device({
    crypto: provider,
    random: (buf) => void randomFillSync(buf),
    wallClock: Date.now,
    mtu,
    allocate: slab.alloc,
  });
  return new Shell(
    name,
    engine,
    { name: cryptoName, reason: selection.reason },
    tun,
    bind,
    openBind,
    log,
    slab,
  );
}
