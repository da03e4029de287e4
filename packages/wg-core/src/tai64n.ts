/**
 * TAI64N timestamps for handshake initiations (whitepaper §5.1 and §5.4.2): the responder keeps the
 * greatest one it accepted per peer and drops anything not newer, which defeats replayed initiations.
 */
import { TAI64N_LEN } from './constants.js';

/** TAI64 labels second s of the Unix epoch as 2^62 + 10 + s (cr.yp.to/libtai/tai64.html). */
const TAI64_BASE = 0x400000000000000an;
const TAI64N_SECONDS_LEN = 8;
const MS_PER_SECOND = 1_000;
const NS_PER_MS = 1_000_000;
/**
 * wireguard-go rounds nanoseconds down to a multiple of 2^24 (about 16.8 ms) so that the
 * timestamp does not reveal the sender's fine-grained clock (tai64n.go "whitenerMask").
 */
const WHITENER_MASK = 0xffffff;

/**
 * The TAI64N label of `wallMs` (milliseconds since the Unix epoch; fractions allowed): 8 bytes
 * big-endian 0x400000000000000a + seconds, then 4 bytes big-endian nanoseconds with the low 24 bits
 * cleared. Returns 12 fresh bytes the caller owns. Throws RangeError if `wallMs` is negative or
 * not finite.
 */
export function tai64n(wallMs: number): Uint8Array {
  if (!Number.isFinite(wallMs) || wallMs < 0) {
    throw new RangeError('tai64n: wallMs must be a finite, non-negative number of milliseconds');
  }
  const seconds = Math.floor(wallMs / MS_PER_SECOND);
  const nanos = Math.floor((wallMs - seconds * MS_PER_SECOND) * NS_PER_MS);
  const whitened = (nanos & ~WHITENER_MASK) >>> 0;
  const out = new Uint8Array(TAI64N_LEN);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, TAI64_BASE + BigInt(seconds), false);
  view.setUint32(TAI64N_SECONDS_LEN, whitened, false);
  return out;
}

/**
 * Orders two TAI64N labels: negative if `a` is earlier, 0 if equal, positive if later. Both are
 * big-endian, so byte order is time order. Throws RangeError if either is not 12 bytes.
 */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== TAI64N_LEN || b.length !== TAI64N_LEN) {
    throw new RangeError(`compareTai64n: both timestamps must be ${TAI64N_LEN} bytes`);
  }
  for (let i = 0; i < TAI64N_LEN; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}
