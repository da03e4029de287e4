/**
 * The cross-platform configuration protocol (wireguard.com/xplatform, "Configuration Protocol") as
 * wireguard-go's device/uapi.go speaks it to wg(8): request framing on the socket, set=1 bodies
 * validated whole before anything is applied, get=1 replies, and errno= status lines.
 */
import { KEY_LEN, MAX_UAPI_LINE_BYTES, MAX_UAPI_REQUEST_BYTES } from './constants.js';
import { IPV4_LEN, IPV6_LEN, formatCidr, formatIp, parseCidr, parseIp } from './ip.js';
import { isZeroKey, keyFromHex, keyToHex } from './keys.js';
import type { Endpoint } from './types.js';

/**
 * The errno values of the protocol, in Linux numbering (wireguard-go ipc/uapi_unix.go). Results
 * carry them positive; on the wire a failure is negated ("errno=-22"), which wg(8) turns back into
 * errno 22 and prints as "Invalid argument".
 */
export const UAPI_ERRNO = {
  /** Reading the request failed: a line or the whole request is too long (IpcErrorIO). */
  EIO: 5,
  /** A key or value is invalid, or a key sits in the wrong section (IpcErrorInvalid). */
  EINVAL: 22,
  /** Any other failure; wireguard-go's IpcErrorUnknown. */
  ENOANO: 55,
  /** A line is not key=value (IpcErrorProtocol). */
  EPROTO: 71,
  /** The device could not bind listen_port or set fwmark (IpcErrorPortInUse; the device's answer). */
  EADDRINUSE: 98,
} as const;

/** An allowed IP in a set=1 request. `remove` is `allowed_ip=-prefix` (wireguard-go 2025+, wg 1.0.2025+). */
export interface UapiAllowedIp {
  /** 4 or 16 bytes, host bits already cleared. */
  address: Uint8Array;
  cidr: number;
  /** Present and true only for `allowed_ip=-…`: remove this prefix if this peer owns it. */
  remove?: boolean;
}

/**
 * One `public_key=` section of a set=1 request. A request may hold several sections for the same
 * key; apply them in order. To match wireguard-go, the device applies a section thus: skip it if
 * `publicKey` is the device's own public key (after this request's private_key); if `remove`,
 * remove the peer (the parser has dropped every other field); if `updateOnly` and the peer does
 * not exist, skip it; otherwise create the peer if needed, then set each field present, clear the
 * peer's allowed IPs if `replaceAllowedIps`, then insert or remove `allowedIps` in order (an
 * insert takes the prefix from whichever peer had it). A keepalive interval going from 0 to
 * non-zero on a running device sends one keepalive at once.
 */
export interface UapiPeerConfig {
  publicKey: Uint8Array;
  remove: boolean;
  updateOnly: boolean;
  /** 32 zero bytes = remove the preshared key. */
  presharedKey?: Uint8Array;
  /** A numeric address (canonical text, IPv6 zone kept as "%zone") and port. */
  endpoint?: Endpoint;
  /** Seconds, 0 = off. */
  persistentKeepaliveInterval?: number;
  /** The allowed IPs listed before `replace_allowed_ips=true` in the section are already dropped. */
  replaceAllowedIps: boolean;
  allowedIps: UapiAllowedIp[];
  /** Only ever 1. */
  protocolVersion?: number;
}

/** A whole set=1 request. Fields absent were not in the request; the device leaves them as they are. */
export interface UapiSetRequest {
  /** Clamped as X25519 requires (so get=1 reports what wireguard-go reports); all-zero = remove. */
  privateKey?: Uint8Array;
  listenPort?: number;
  /** 0 = off. */
  fwmark?: number;
  /** Remove every peer before applying `peers`. */
  replacePeers: boolean;
  peers: UapiPeerConfig[];
}

/** A peer as get=1 reports it. */
export interface UapiPeerState {
  publicKey: Uint8Array;
  /** Absent or all-zero: no preshared key (get=1 still prints 64 zeros, as wireguard-go does). */
  presharedKey?: Uint8Array;
  /** Absent: no endpoint line. */
  endpoint?: Endpoint;
  /** Wall-clock time of the last handshake in ms since the Unix epoch; 0 = never. */
  lastHandshakeWallMs: number;
  txBytes: number;
  rxBytes: number;
  /** Seconds, 0 = off. */
  persistentKeepaliveInterval: number;
  allowedIps: ReadonlyArray<{ address: Uint8Array; cidr: number }>;
}

/** A device as get=1 reports it. */
export interface UapiDeviceState {
  /** Absent or all-zero: no private_key line. */
  privateKey?: Uint8Array;
  /** 0 (not bound): no listen_port line, as in wireguard-go. */
  listenPort: number;
  /** 0: no fwmark line. */
  fwmark: number;
  peers: ReadonlyArray<UapiPeerState>;
}

/** What `parseSet` returns: a request to apply whole, or the errno to answer with. */
export type UapiSetResult =
  { ok: true; request: UapiSetRequest } | { ok: false; errno: number; message: string };

/** What `parseGet` returns: the state a get=1 reply describes, or why the reply is unusable. */
export type UapiGetResult =
  { ok: true; state: UapiDeviceState } | { ok: false; errno: number; message: string };

/**
 * One step of reading the socket (see `parseRequest`). `consumed` is how many characters of the
 * buffer the request took; the next request starts there.
 */
export type UapiRequest =
  | { readonly op: 'get'; readonly consumed: number }
  | { readonly op: 'set'; readonly body: string; readonly consumed: number }
  | {
      readonly op: 'error';
      readonly errno: number;
      readonly message: string;
      readonly consumed: number;
      /** Reply with `errnoReply(errno)`, then close if true, else go on after `consumed`. */
      readonly close: boolean;
    }
  | { readonly op: 'incomplete'; readonly resumeAt: number }
  | { readonly op: 'invalid'; readonly message: string };

/** Options of `parseRequest`. */
export interface UapiParseRequestOptions {
  /** The peer closed its side: nothing more will arrive. */
  eof?: boolean;
  /** The `resumeAt` of the previous 'incomplete' answer for this same, now longer, buffer. */
  resumeAt?: number;
}

const GET_LINE = 'get=1\n';
const SET_LINE = 'set=1\n';
const OP_LINE_LEN = GET_LINE.length;
const NEWLINE = 0x0a;
const CR = 0x0d;
const CH_0 = 0x30;
const CH_9 = 0x39;
const BYTE_BITS = 8;
const BYTE_MASK = 0xff;
const U16_MAX = 0xffff;
const U32_MAX = 0xffff_ffff;
const MS_PER_S = 1_000;
const NS_PER_MS = 1_000_000;
const NS_PER_S = MS_PER_S * NS_PER_MS;
const SAFE_DIGITS = String(Number.MAX_SAFE_INTEGER).length;

// X25519 clamping (RFC 7748 §5), applied on set as wireguard-go's NoisePrivateKey.FromMaybeZeroHex does.
const CLAMP_FIRST_BYTE_AND = 0b1111_1000;
const CLAMP_LAST_BYTE_AND = 0b0111_1111;
const CLAMP_LAST_BYTE_OR = 0b0100_0000;

const DEVICE_KEYS = new Set(['private_key', 'listen_port', 'fwmark', 'replace_peers']);
const PEER_KEYS = new Set([
  'update_only',
  'remove',
  'preshared_key',
  'endpoint',
  'persistent_keepalive_interval',
  'replace_allowed_ips',
  'allowed_ip',
  'protocol_version',
]);

const KEY_HINT = `must be ${2 * KEY_LEN} hex digits (${KEY_LEN} bytes)`;

/** A decimal number of digits only (leading zeros allowed, as Go's strconv.ParseUint), or -1. */
function parseUint(text: string, max: number): number {
  const n = text.length;
  if (n === 0) return -1;
  let first = -1;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < CH_0 || c > CH_9) return -1;
    if (first < 0 && c !== CH_0) first = i;
  }
  if (first < 0) return 0;
  if (n - first > SAFE_DIGITS) return -1;
  const v = Number(text.slice(first));
  return v <= max ? v : -1;
}

function parseKey(text: string): Uint8Array | null {
  try {
    return keyFromHex(text);
  } catch {
    return null;
  }
}

/**
 * An address as Go's netip.ParseAddr reads it: parseIp's text plus an IPv6 zone ("fe80::1%eth0"),
 * which Go accepts in endpoints. Returns null for anything else.
 */
function parseAddrZone(text: string): { bytes: Uint8Array; zone: string } | null {
  const pct = text.indexOf('%');
  if (pct < 0) {
    const bytes = parseIp(text);
    return bytes === null ? null : { bytes, zone: '' };
  }
  const zone = text.slice(pct + 1);
  const bytes = parseIp(text.slice(0, pct));
  if (zone === '' || bytes === null || bytes.length !== IPV6_LEN) return null;
  return { bytes, zone };
}

/** Go's AddrPort text: "a.b.c.d:port" or "[v6%zone]:port". */
function endpointText(a: { bytes: Uint8Array; zone: string }, port: number): string {
  return a.bytes.length === IPV4_LEN ? `${formatIp(a.bytes)}:${port}` : `[${addrText(a)}]:${port}`;
}

function addrText(a: { bytes: Uint8Array; zone: string }): string {
  return a.zone === '' ? formatIp(a.bytes) : `${formatIp(a.bytes)}%${a.zone}`;
}

/** "IP:port" or "[IPv6]:port" as Go's netip.ParseAddrPort reads it, or why not. */
function parseEndpoint(text: string): Endpoint | string {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return 'endpoint must be IPv4:port or [IPv6]:port';
  let host = text.slice(0, colon);
  if (host === '') return 'endpoint has no address before the port';
  const port = parseUint(text.slice(colon + 1), U16_MAX);
  if (port < 0) return `endpoint port must be a decimal number 0-${U16_MAX}`;
  const bracketed = host.startsWith('[');
  if (bracketed) {
    if (host.length < 2 || !host.endsWith(']'))
      return 'endpoint has "[" without "]" before the port';
    host = host.slice(1, -1);
  }
  const a = parseAddrZone(host);
  if (a === null) {
    return 'endpoint address must be a numeric IPv4 or IPv6 address (host names are resolved by wg before sending)';
  }
  if (bracketed && a.bytes.length === IPV4_LEN)
    return 'endpoint: square brackets are only for IPv6 addresses';
  if (!bracketed && a.bytes.length === IPV6_LEN) {
    return 'endpoint: an IPv6 address must be in square brackets, as [fd00::1]:51820';
  }
  return { ip: addrText(a), port };
}

/** Clears the host bits after `cidr`, in place, as wireguard-go's allowed-IPs trie does on insert. */
function maskHostBits(address: Uint8Array, cidr: number): void {
  for (let i = 0; i < address.length; i++) {
    const keep = Math.max(0, Math.min(BYTE_BITS, cidr - BYTE_BITS * i));
    address[i]! &= (BYTE_MASK << (BYTE_BITS - keep)) & BYTE_MASK;
  }
}

function clamp(k: Uint8Array): void {
  k[0]! &= CLAMP_FIRST_BYTE_AND;
  k[KEY_LEN - 1]! &= CLAMP_LAST_BYTE_AND;
  k[KEY_LEN - 1]! |= CLAMP_LAST_BYTE_OR;
}

function newPeer(publicKey: Uint8Array): UapiPeerConfig {
  return { publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [] };
}

/** Applies one device-section line to `req`; returns why it is invalid, or null. */
function deviceLine(req: UapiSetRequest, key: string, value: string): string | null {
  switch (key) {
    case 'private_key': {
      const k = parseKey(value);
      if (k === null) return `private_key ${KEY_HINT}; all zeros removes the key`;
      if (!isZeroKey(k)) clamp(k);
      req.privateKey?.fill(0);
      req.privateKey = k;
      return null;
    }
    case 'listen_port': {
      const v = parseUint(value, U16_MAX);
      if (v < 0) return `listen_port must be a decimal number 0-${U16_MAX}`;
      req.listenPort = v;
      return null;
    }
    case 'fwmark': {
      const v = parseUint(value, U32_MAX);
      if (v < 0) return `fwmark must be a decimal number 0-${U32_MAX} (0 turns it off)`;
      req.fwmark = v;
      return null;
    }
    case 'replace_peers':
      if (value !== 'true') return 'replace_peers accepts only the value true';
      req.replacePeers = true;
      return null;
    default:
      if (PEER_KEYS.has(key))
        return `${key} is a peer key, but no public_key line has started a peer yet`;
      return 'unknown key in the device section (expected private_key, listen_port, fwmark, replace_peers or public_key)';
  }
}

/** Applies one peer-section line to `peer`; returns why it is invalid, or null. */
function peerLine(peer: UapiPeerConfig, key: string, value: string): string | null {
  switch (key) {
    case 'update_only':
    case 'remove':
    case 'replace_allowed_ips':
      if (value !== 'true') return `${key} accepts only the value true`;
      if (key === 'update_only') peer.updateOnly = true;
      else if (key === 'remove') peer.remove = true;
      else {
        peer.replaceAllowedIps = true;
        peer.allowedIps.length = 0;
      }
      return null;
    case 'preshared_key': {
      const k = parseKey(value);
      if (k === null) return `preshared_key ${KEY_HINT}; all zeros removes it`;
      peer.presharedKey?.fill(0);
      peer.presharedKey = k;
      return null;
    }
    case 'endpoint': {
      const e = parseEndpoint(value);
      if (typeof e === 'string') return e;
      peer.endpoint = e;
      return null;
    }
    case 'persistent_keepalive_interval': {
      const v = parseUint(value, U16_MAX);
      if (v < 0)
        return `persistent_keepalive_interval must be a decimal number of seconds 0-${U16_MAX}`;
      peer.persistentKeepaliveInterval = v;
      return null;
    }
    case 'allowed_ip': {
      const remove = value.startsWith('-');
      const p = parseCidr(remove ? value.slice(1) : value);
      if (p === null) {
        return 'allowed_ip must be address/prefix-length such as 10.8.0.0/16 or fd00::/64 (at most /32 for IPv4, /128 for IPv6)';
      }
      const address = p.address;
      maskHostBits(address, p.cidr);
      peer.allowedIps.push(remove ? { address, cidr: p.cidr, remove } : { address, cidr: p.cidr });
      return null;
    }
    case 'protocol_version':
      if (value !== '1') return 'protocol_version must be 1, the only version there is';
      peer.protocolVersion = 1;
      return null;
    default:
      if (DEVICE_KEYS.has(key))
        return `${key} is a device key and must come before the first public_key`;
      return 'unknown key in a peer section';
  }
}

function wipeRequest(req: UapiSetRequest): void {
  req.privateKey?.fill(0);
  for (const p of req.peers) p.presharedKey?.fill(0);
}

/**
 * A removed peer keeps only its key, as the kernel ignores a removed peer's other attributes.
 * (wireguard-go would first apply the section's lines before remove=true; only an allowed_ip
 * taken from another peer outlives that, and wg(8) never sends lines with remove=true.)
 */
function normalizeRemoved(p: UapiPeerConfig): UapiPeerConfig {
  if (!p.remove) return p;
  p.presharedKey?.fill(0);
  return { ...newPeer(p.publicKey), remove: true };
}

/**
 * Parses and validates a set=1 body: the text after the "set=1\n" line, up to and including the
 * terminating blank line, which may also be missing (wireguard-go accepts a body ended by EOF).
 * Lines end in "\n"; one "\r" before it is dropped, as Go's bufio.ScanLines does. Nothing is
 * applied here: the device applies `request` whole, so a bad line anywhere means no change at all
 * (wireguard-go would have applied the lines before it). The errno for the first bad line is
 * wireguard-go's: EPROTO for a line without '=', EIO for a line over MAX_UAPI_LINE_BYTES, EINVAL
 * for everything else, including unknown keys, peer keys before any public_key and device keys
 * after one. Text after the blank line is refused with EPROTO (parseRequest never passes any).
 * Line numbers in messages count from 1 at the first line after "set=1"; messages never quote
 * values. Returns fresh objects the caller owns (wipe the keys when done); never throws for any
 * string. Throws TypeError if `body` is not a string.
 */
export function parseSet(body: string): UapiSetResult {
  if (typeof body !== 'string') throw new TypeError('body must be a string');
  const fail = (errno: number, message: string): UapiSetResult => {
    wipeRequest(req);
    return { ok: false, errno, message };
  };
  const req: UapiSetRequest = { replacePeers: false, peers: [] };
  if (body.length > MAX_UAPI_REQUEST_BYTES) {
    return fail(UAPI_ERRNO.EIO, `request is longer than ${MAX_UAPI_REQUEST_BYTES} bytes`);
  }
  let peer: UapiPeerConfig | null = null;
  let pos = 0;
  for (let lineNo = 1; pos < body.length; lineNo++) {
    const nl = body.indexOf('\n', pos);
    const end = nl < 0 ? body.length : nl;
    if (end - pos > MAX_UAPI_LINE_BYTES) {
      return fail(UAPI_ERRNO.EIO, `line ${lineNo} is longer than ${MAX_UAPI_LINE_BYTES} bytes`);
    }
    const line = body.slice(pos, end > pos && body.charCodeAt(end - 1) === CR ? end - 1 : end);
    pos = nl < 0 ? body.length : nl + 1;
    if (line === '') {
      if (pos < body.length) {
        return fail(
          UAPI_ERRNO.EPROTO,
          `line ${lineNo} is the blank line that ends the request, but text follows it`,
        );
      }
      break;
    }
    const eq = line.indexOf('=');
    if (eq < 0) {
      return fail(UAPI_ERRNO.EPROTO, `line ${lineNo} has no '=': every line must be key=value`);
    }
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    let problem: string | null;
    if (key === 'public_key') {
      const k = parseKey(value);
      if (k === null) problem = `public_key ${KEY_HINT}`;
      else {
        peer = newPeer(k);
        req.peers.push(peer);
        problem = null;
      }
    } else if (peer === null) problem = deviceLine(req, key, value);
    else problem = peerLine(peer, key, value);
    if (problem !== null) return fail(UAPI_ERRNO.EINVAL, `line ${lineNo}: ${problem}`);
  }
  req.peers = req.peers.map(normalizeRemoved);
  return { ok: true, request: req };
}

/**
 * Splits the start of a UAPI socket's input into one request, as wireguard-go's IpcHandle reads
 * it: the first line must be exactly "get=1\n" or "set=1\n". "get=1\n" must be followed by "\n"
 * ('get'; any other byte: 'error' EINVAL, not closing, that byte consumed). "set=1\n" runs to
 * the first blank line ('set', `body` including that line's "\n"); with `eof`, to the end of the
 * input. 'incomplete': read more and call again with the longer buffer and `resumeAt`, so each
 * byte is scanned once (with `eof`, 'incomplete' only for an empty buffer: nothing to do).
 * 'invalid': anything else, or EOF inside a request; close without replying, as wireguard-go does.
 * 'error' with EIO and `close`: a line over MAX_UAPI_LINE_BYTES or a request over
 * MAX_UAPI_REQUEST_BYTES. Decode socket bytes as latin1 so characters are bytes (valid requests
 * are ASCII). Never throws for any text; throws TypeError/RangeError for a non-string or a bad
 * `resumeAt`.
 */
export function parseRequest(text: string, options: UapiParseRequestOptions = {}): UapiRequest {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const eof = options.eof === true;
  const resumeAt = options.resumeAt ?? 0;
  if (!Number.isInteger(resumeAt) || resumeAt < 0 || resumeAt > text.length) {
    throw new RangeError(`resumeAt must be an integer in 0..${text.length}`);
  }
  const head = text.slice(0, OP_LINE_LEN);
  if (head.length < OP_LINE_LEN) {
    if (!GET_LINE.startsWith(head) && !SET_LINE.startsWith(head)) {
      return { op: 'invalid', message: 'unknown operation: expected get=1 or set=1' };
    }
    if (eof && head.length > 0)
      return { op: 'invalid', message: 'connection closed inside a request' };
    return { op: 'incomplete', resumeAt: 0 };
  }
  if (head === GET_LINE) {
    if (text.length === OP_LINE_LEN) {
      if (eof) return { op: 'invalid', message: 'connection closed inside a request' };
      return { op: 'incomplete', resumeAt: 0 };
    }
    if (text.charCodeAt(OP_LINE_LEN) === NEWLINE) return { op: 'get', consumed: OP_LINE_LEN + 1 };
    return {
      op: 'error',
      errno: UAPI_ERRNO.EINVAL,
      message: 'get=1 must be followed by a blank line',
      consumed: OP_LINE_LEN + 1,
      close: false,
    };
  }
  if (head !== SET_LINE)
    return { op: 'invalid', message: 'unknown operation: expected get=1 or set=1' };
  const tooLong = (message: string): UapiRequest => ({
    op: 'error',
    errno: UAPI_ERRNO.EIO,
    message,
    consumed: text.length,
    close: true,
  });
  let pos = Math.max(resumeAt, OP_LINE_LEN);
  for (;;) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl;
    if (end - pos > MAX_UAPI_LINE_BYTES) {
      return tooLong(`a set=1 line is longer than ${MAX_UAPI_LINE_BYTES} bytes`);
    }
    if ((nl < 0 ? text.length : nl + 1) > MAX_UAPI_REQUEST_BYTES) {
      return tooLong(`set=1 request is longer than ${MAX_UAPI_REQUEST_BYTES} bytes`);
    }
    if (nl < 0) {
      if (eof) return { op: 'set', body: text.slice(OP_LINE_LEN), consumed: text.length };
      return { op: 'incomplete', resumeAt: pos };
    }
    if (nl === pos || (nl === pos + 1 && text.charCodeAt(pos) === CR)) {
      return { op: 'set', body: text.slice(OP_LINE_LEN, nl + 1), consumed: nl + 1 };
    }
    pos = nl + 1;
  }
}

/**
 * The status that ends every reply: "errno=0\n\n" for 0, else "errno=-N\n\n" (wireguard-go sends
 * its codes negated, and wg(8) negates them back). Takes a `UAPI_ERRNO` value or 0. Throws
 * RangeError unless `errno` is a non-negative integer.
 */
export function errnoReply(errno: number): string {
  if (!Number.isInteger(errno) || errno < 0) {
    throw new RangeError(`errno must be a non-negative integer, got ${errno}`);
  }
  return errno === 0 ? 'errno=0\n\n' : `errno=-${errno}\n\n`;
}

function assertKeyBytes(name: string, k: unknown): asserts k is Uint8Array {
  if (!(k instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (k.length !== KEY_LEN)
    throw new RangeError(`${name} must be ${KEY_LEN} bytes, got ${k.length}`);
}

function assertUint(name: string, v: unknown, max: number): asserts v is number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${name} must be an integer in 0..${max}, got ${String(v)}`);
  }
}

/** "address/cidr" with host bits cleared, as wireguard-go prints what its trie stored. */
function maskedCidr(name: string, a: { address: Uint8Array; cidr: number }): string {
  if (!(a.address instanceof Uint8Array))
    throw new TypeError(`${name}.address must be a Uint8Array`);
  const len = a.address.length;
  if (len !== IPV4_LEN && len !== IPV6_LEN)
    throw new RangeError(`${name}.address must be 4 or 16 bytes`);
  assertUint(`${name}.cidr`, a.cidr, len * BYTE_BITS);
  const address = a.address.slice();
  maskHostBits(address, a.cidr);
  return formatCidr(address, a.cidr);
}

function formatEndpoint(name: string, e: Endpoint): string {
  assertUint(`${name}.port`, e.port, U16_MAX);
  const a = typeof e.ip === 'string' ? parseAddrZone(e.ip) : null;
  if (a === null) throw new TypeError(`${name}.ip must be a numeric IPv4 or IPv6 address`);
  return endpointText(a, e.port);
}

/**
 * The whole reply to get=1, ending in "errno=0\n\n", byte for byte as wireguard-go writes it:
 * private_key (if set), listen_port (if not 0), fwmark (if not 0), then per peer public_key,
 * preshared_key (always; zeros when none), protocol_version=1, endpoint (if known; IPv6 in
 * brackets), last_handshake_time_sec and _nsec, tx_bytes, rx_bytes,
 * persistent_keepalive_interval, and one allowed_ip per prefix (host bits cleared). Peers and
 * prefixes are printed in the order given. The text holds the private key: never log it.
 * Throws TypeError/RangeError if `state` is malformed (wrong key length, port out of range,
 * non-numeric endpoint address, negative counters).
 */
export function formatGet(state: UapiDeviceState): string {
  const out: string[] = [];
  if (state.privateKey !== undefined) {
    assertKeyBytes('privateKey', state.privateKey);
    if (!isZeroKey(state.privateKey)) out.push(`private_key=${keyToHex(state.privateKey)}`);
  }
  assertUint('listenPort', state.listenPort, U16_MAX);
  assertUint('fwmark', state.fwmark, U32_MAX);
  if (state.listenPort !== 0) out.push(`listen_port=${state.listenPort}`);
  if (state.fwmark !== 0) out.push(`fwmark=${state.fwmark}`);
  state.peers.forEach((p, i) => {
    const name = `peers[${i}]`;
    assertKeyBytes(`${name}.publicKey`, p.publicKey);
    out.push(`public_key=${keyToHex(p.publicKey)}`);
    if (p.presharedKey !== undefined) assertKeyBytes(`${name}.presharedKey`, p.presharedKey);
    out.push(`preshared_key=${keyToHex(p.presharedKey ?? new Uint8Array(KEY_LEN))}`);
    out.push('protocol_version=1');
    if (p.endpoint !== undefined)
      out.push(`endpoint=${formatEndpoint(`${name}.endpoint`, p.endpoint)}`);
    const ms = p.lastHandshakeWallMs;
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`${name}.lastHandshakeWallMs must be a finite number >= 0`);
    }
    const sec = Math.floor(ms / MS_PER_S);
    const nsec = Math.min(NS_PER_S - 1, Math.round((ms - sec * MS_PER_S) * NS_PER_MS));
    out.push(`last_handshake_time_sec=${sec}`, `last_handshake_time_nsec=${nsec}`);
    assertUint(`${name}.txBytes`, p.txBytes, Number.MAX_SAFE_INTEGER);
    assertUint(`${name}.rxBytes`, p.rxBytes, Number.MAX_SAFE_INTEGER);
    assertUint(`${name}.persistentKeepaliveInterval`, p.persistentKeepaliveInterval, U16_MAX);
    out.push(`tx_bytes=${p.txBytes}`, `rx_bytes=${p.rxBytes}`);
    out.push(`persistent_keepalive_interval=${p.persistentKeepaliveInterval}`);
    p.allowedIps.forEach((a, j) =>
      out.push(`allowed_ip=${maskedCidr(`${name}.allowedIps[${j}]`, a)}`),
    );
  });
  out.push('');
  return out.join('\n') + errnoReply(0);
}

/**
 * The full set=1 request for `request` ("set=1\n" … blank line), in the order wg(8) writes it:
 * private_key, listen_port, fwmark, replace_peers, then per peer public_key, and either
 * remove=true alone or update_only, protocol_version, preshared_key, endpoint,
 * persistent_keepalive_interval, replace_allowed_ips and allowed_ip lines. For clients of a
 * userspace device (the mesh agent). The text may hold keys: never log it. Throws
 * TypeError/RangeError if `request` is malformed.
 */
export function formatSet(request: UapiSetRequest): string {
  const out: string[] = ['set=1'];
  if (request.privateKey !== undefined) {
    assertKeyBytes('privateKey', request.privateKey);
    out.push(`private_key=${keyToHex(request.privateKey)}`);
  }
  if (request.listenPort !== undefined) {
    assertUint('listenPort', request.listenPort, U16_MAX);
    out.push(`listen_port=${request.listenPort}`);
  }
  if (request.fwmark !== undefined) {
    assertUint('fwmark', request.fwmark, U32_MAX);
    out.push(`fwmark=${request.fwmark}`);
  }
  if (request.replacePeers) out.push('replace_peers=true');
  request.peers.forEach((p, i) => {
    const name = `peers[${i}]`;
    assertKeyBytes(`${name}.publicKey`, p.publicKey);
    out.push(`public_key=${keyToHex(p.publicKey)}`);
    if (p.remove) {
      out.push('remove=true');
      return;
    }
    if (p.updateOnly) out.push('update_only=true');
    if (p.protocolVersion !== undefined) {
      if (p.protocolVersion !== 1) throw new RangeError(`${name}.protocolVersion must be 1`);
      out.push('protocol_version=1');
    }
    if (p.presharedKey !== undefined) {
      assertKeyBytes(`${name}.presharedKey`, p.presharedKey);
      out.push(`preshared_key=${keyToHex(p.presharedKey)}`);
    }
    if (p.endpoint !== undefined)
      out.push(`endpoint=${formatEndpoint(`${name}.endpoint`, p.endpoint)}`);
    if (p.persistentKeepaliveInterval !== undefined) {
      assertUint(`${name}.persistentKeepaliveInterval`, p.persistentKeepaliveInterval, U16_MAX);
      out.push(`persistent_keepalive_interval=${p.persistentKeepaliveInterval}`);
    }
    if (p.replaceAllowedIps) out.push('replace_allowed_ips=true');
    p.allowedIps.forEach((a, j) => {
      const text = maskedCidr(`${name}.allowedIps[${j}]`, a);
      out.push(`allowed_ip=${a.remove === true ? '-' : ''}${text}`);
    });
  });
  out.push('', '');
  return out.join('\n');
}

/**
 * Parses a get=1 reply (as `formatGet` or wireguard-go write it, through "errno=N" and the blank
 * line), for clients of a userspace device. Unknown keys are skipped, as wg(8) skips them. A
 * non-zero errno gives `{ ok: false, errno }` with errno positive; a malformed reply gives EPROTO.
 * Returns fresh objects the caller owns; never throws for any string.
 */
export function parseGet(text: string): UapiGetResult {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  const state: UapiDeviceState & { peers: UapiPeerState[] } = {
    listenPort: 0,
    fwmark: 0,
    peers: [],
  };
  const wipe = (): void => {
    state.privateKey?.fill(0);
    for (const p of state.peers) p.presharedKey?.fill(0);
  };
  const bad = (message: string): UapiGetResult => {
    wipe();
    return { ok: false, errno: UAPI_ERRNO.EPROTO, message };
  };
  let peer: (UapiPeerState & { allowedIps: Array<{ address: Uint8Array; cidr: number }> }) | null =
    null;
  let sec = 0;
  let errno = -1;
  let pos = 0;
  for (let lineNo = 1; ; lineNo++) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) return bad('reply ends before its errno line and blank line');
    const line = text.slice(pos, nl);
    pos = nl + 1;
    if (line === '') {
      if (errno < 0) return bad(`line ${lineNo}: blank line before any errno line`);
      break;
    }
    const eq = line.indexOf('=');
    if (eq < 0) return bad(`line ${lineNo} has no '='`);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'errno') {
      const negative = value.startsWith('-');
      const n = parseUint(negative ? value.slice(1) : value, U32_MAX);
      if (n < 0) return bad(`line ${lineNo}: errno must be a decimal number`);
      errno = n;
      continue;
    }
    if (key === 'public_key') {
      const k = parseKey(value);
      if (k === null) return bad(`line ${lineNo}: public_key ${KEY_HINT}`);
      peer = {
        publicKey: k,
        lastHandshakeWallMs: 0,
        txBytes: 0,
        rxBytes: 0,
        persistentKeepaliveInterval: 0,
        allowedIps: [],
      };
      state.peers.push(peer);
      sec = 0;
      continue;
    }
    if (peer === null) {
      if (key === 'private_key') {
        const k = parseKey(value);
        if (k === null) return bad(`line ${lineNo}: private_key ${KEY_HINT}`);
        state.privateKey = k;
      } else if (key === 'listen_port' || key === 'fwmark') {
        const n = parseUint(value, key === 'fwmark' ? U32_MAX : U16_MAX);
        if (n < 0) return bad(`line ${lineNo}: ${key} is out of range`);
        if (key === 'fwmark') state.fwmark = n;
        else state.listenPort = n;
      }
      continue;
    }
    switch (key) {
      case 'preshared_key': {
        const k = parseKey(value);
        if (k === null) return bad(`line ${lineNo}: preshared_key ${KEY_HINT}`);
        if (isZeroKey(k)) delete peer.presharedKey;
        else peer.presharedKey = k;
        break;
      }
      case 'protocol_version':
        if (value !== '1') return bad(`line ${lineNo}: protocol_version must be 1`);
        break;
      case 'endpoint': {
        const e = parseEndpoint(value);
        if (typeof e === 'string') return bad(`line ${lineNo}: ${e}`);
        peer.endpoint = e;
        break;
      }
      case 'allowed_ip': {
        const p = parseCidr(value);
        if (p === null) return bad(`line ${lineNo}: allowed_ip must be address/prefix-length`);
        peer.allowedIps.push({ address: p.address, cidr: p.cidr });
        break;
      }
      case 'last_handshake_time_sec':
      case 'last_handshake_time_nsec':
      case 'tx_bytes':
      case 'rx_bytes':
      case 'persistent_keepalive_interval': {
        const max =
          key === 'persistent_keepalive_interval'
            ? U16_MAX
            : key === 'last_handshake_time_nsec'
              ? NS_PER_S - 1
              : key === 'last_handshake_time_sec'
                ? Math.floor(Number.MAX_SAFE_INTEGER / MS_PER_S)
                : Number.MAX_SAFE_INTEGER;
        const n = parseUint(value, max);
        if (n < 0) return bad(`line ${lineNo}: ${key} is out of range`);
        if (key === 'last_handshake_time_sec') {
          sec = n;
          peer.lastHandshakeWallMs = sec * MS_PER_S;
        } else if (key === 'last_handshake_time_nsec') {
          peer.lastHandshakeWallMs = sec * MS_PER_S + Math.floor(n / NS_PER_MS);
        } else if (key === 'tx_bytes') peer.txBytes = n;
        else if (key === 'rx_bytes') peer.rxBytes = n;
        else peer.persistentKeepaliveInterval = n;
        break;
      }
      default:
        break;
    }
  }
  if (errno !== 0) {
    wipe();
    return { ok: false, errno, message: `the device answered errno=${errno}` };
  }
  return { ok: true, state };
}
