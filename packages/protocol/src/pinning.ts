/**
 * Certificate pinning for self-signed coordinators: the SHA-256 fingerprint of the coordinator's
 * TLS certificate (DER), given to the agent as `--server-fingerprint` or carried inside the
 * enrollment key. A pinned key is `wmk_<random>.<fingerprint as base64url>`: `.` is not in the
 * base64url alphabet of the random part, so a plain `wmk_...` key is the same token without a pin.
 */
import { ENROLLMENT_KEY_PREFIX } from './constants.js';

/** Bytes of a SHA-256 certificate fingerprint. */
export const FINGERPRINT_BYTES = 32;
/** Separates an enrollment key from the fingerprint it carries. */
export const PIN_SEPARATOR = '.';

const HEX_RE = /^(?:sha256:)?((?:[0-9a-f]{2}:){31}[0-9a-f]{2}|[0-9a-f]{64})$/i;
const B64_RE = /^(?:sha256:)?([A-Za-z0-9+/_-]{43})=?$/;

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Decodes unpadded base64url (`+` and `/` also accepted); null for a bad character. */
function fromBase64Url(text: string): Uint8Array | null {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of text.replace(/\+/g, '-').replace(/\//g, '_')) {
    const v = B64_ALPHABET.indexOf(ch);
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

/** Encodes bytes as unpadded base64url. */
function toBase64Url(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = ((acc << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += B64_ALPHABET[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += B64_ALPHABET[(acc << (6 - bits)) & 0x3f];
  return out;
}

/**
 * Parses a fingerprint as people copy it: hex with or without colons (`openssl x509 -fingerprint
 * -sha256` prints `AB:CD:...`), or base64/base64url, each optionally after `sha256:`. Returns the
 * 32 bytes (a new array), or null for anything else (never throws).
 */
export function parseFingerprint(text: string): Uint8Array | null {
  const hex = HEX_RE.exec(text.trim());
  if (hex?.[1] !== undefined) {
    const h = hex[1].replace(/:/g, '');
    return Uint8Array.from({ length: FINGERPRINT_BYTES }, (_, i) =>
      parseInt(h.slice(2 * i, 2 * i + 2), 16),
    );
  }
  const b64 = B64_RE.exec(text.trim());
  if (b64?.[1] === undefined) return null;
  const bytes = fromBase64Url(b64[1]);
  return bytes !== null && bytes.length === FINGERPRINT_BYTES ? bytes : null;
}

/** Formats a fingerprint as colon-separated upper-case hex, the way openssl and Node print it. */
export function formatFingerprint(fp: Uint8Array): string {
  return Array.from(fp, (b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
}

/** The enrollment key `key` carrying `fingerprint`. */
export function pinnedKey(key: string, fingerprint: Uint8Array): string {
  return `${key}${PIN_SEPARATOR}${toBase64Url(fingerprint)}`;
}

/**
 * Splits an enrollment key into the key the coordinator checks and the fingerprint it carries
 * (null when it carries none). Returns a problem text for a key whose pin part is malformed.
 */
export function splitEnrollmentKey(
  token: string,
): { key: string; fingerprint: Uint8Array | null } | { problem: string } {
  const at = token.indexOf(PIN_SEPARATOR);
  if (at < 0 || !token.startsWith(ENROLLMENT_KEY_PREFIX)) return { key: token, fingerprint: null };
  const fingerprint = parseFingerprint(token.slice(at + 1));
  if (fingerprint === null)
    return {
      problem:
        'the certificate fingerprint after the "." in the enrollment key is damaged; copy the whole key again',
    };
  return { key: token.slice(0, at), fingerprint };
}
