// wg-core's own BLAKE2s (RFC 7693) and HMAC-BLAKE2s (RFC 2104): the RFC and BLAKE2 KAT vectors,
// then random inputs of every length around the block boundaries against @noble/hashes.
import { randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { describe, expect, test } from 'vitest';
import {
  Blake2s,
  blake2sHash,
  blake2sMac,
  hkdfBlake2s,
  hmacBlake2s,
} from '../src/crypto/blake2s.js';
import blake2sVectors from './vectors/blake2s.json' with { type: 'json' };
import blake2sKat from './vectors/blake2s-kat.json' with { type: 'json' };
import kdfVectors from './vectors/wireguard-kdf.json' with { type: 'json' };

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));
/** Lengths 0..200 cover the empty message, one, two and three blocks and every boundary. */
const LENGTHS = Array.from({ length: 201 }, (_, i) => i);

describe('vectors', () => {
  test('RFC 7693 Appendix B: BLAKE2s-256("abc")', () => {
    const v = blake2sVectors.rfc7693_appendix_b;
    expect(toHex(blake2sHash([hex(v.input)]))).toBe(v.digest);
    expect(toHex(blake2sHash([hex('61'), new Uint8Array(0), hex('6263')]))).toBe(v.digest);
  });

  test('BLAKE2 KAT: all 256 unkeyed and 256 keyed BLAKE2s-256 vectors', () => {
    expect(blake2sKat.unkeyed).toHaveLength(256);
    expect(blake2sKat.keyed).toHaveLength(256);
    for (const c of blake2sKat.unkeyed) expect(toHex(blake2sHash([hex(c.input)]))).toBe(c.digest);
    for (const c of blake2sKat.keyed) {
      expect(toHex(blake2sMac(hex(c.key), hex(c.input), 32))).toBe(c.digest);
    }
  });

  test('keyed BLAKE2s-128 (hashes128): all 256 vectors', () => {
    const v = blake2sVectors.keyed_blake2s_128;
    const key = hex(v.key);
    for (const c of v.vectors) expect(toHex(blake2sMac(key, hex(c.input)))).toBe(c.digest);
  });

  test.each(kdfVectors.vectors)('HMAC chained as in wireguard-go TestKDF (key $key)', (v) => {
    const prk = hmacBlake2s(hex(v.key), hex(v.input));
    const t1 = hmacBlake2s(prk, Uint8Array.of(1));
    const t2 = hmacBlake2s(prk, concat(t1, Uint8Array.of(2)));
    const t3 = hmacBlake2s(prk, concat(t2, Uint8Array.of(3)));
    expect([prk, t1, t2, t3].map(toHex)).toEqual([v.prk_computed, v.t0, v.t1, v.t2]);
  });

  test.each(kdfVectors.vectors)('HKDF in one call as in wireguard-go TestKDF (key $key)', (v) => {
    for (const n of [1, 2, 3]) {
      const out = Array.from({ length: n }, () => new Uint8Array(32));
      hkdfBlake2s(hex(v.key), hex(v.input), out);
      expect(out.map(toHex)).toEqual([v.t0, v.t1, v.t2].slice(0, n));
    }
  });
});

describe('against @noble/hashes on random inputs', () => {
  test('hash: whole, and split in two at every position', () => {
    for (const n of LENGTHS) {
      const d = randomBytes(n);
      const want = toHex(blake2s(d));
      expect(toHex(blake2sHash([d])), `length ${n}`).toBe(want);
      for (let cut = 0; cut <= n; cut += n > 70 ? 7 : 1) {
        expect(toHex(blake2sHash([d.subarray(0, cut), d.subarray(cut)])), `${n} at ${cut}`).toBe(
          want,
        );
      }
    }
  });

  test('the streaming state: many parts, reused after each digest', () => {
    const s = new Blake2s();
    for (const n of LENGTHS) {
      const d = randomBytes(n);
      s.reset();
      for (let i = 0; i < n; i += 13) s.update(d.subarray(i, i + 13));
      const out = new Uint8Array(40).fill(0xee);
      s.digestInto(out, 3);
      expect(toHex(out.subarray(3, 35)), `length ${n}`).toBe(toHex(blake2s(d)));
      expect(out[2]).toBe(0xee);
      expect(out[35]).toBe(0xee);
    }
  });

  test('keyed: every key length 1..32, outputs of 16 and 32 bytes', () => {
    for (const n of LENGTHS) {
      const d = randomBytes(n);
      const key = randomBytes(1 + (n % 32));
      for (const dkLen of [16, 32]) {
        expect(toHex(blake2sMac(key, d, dkLen)), `length ${n}`).toBe(
          toHex(blake2s(d, { key, dkLen })),
        );
      }
    }
  });

  test('HMAC: keys of 0..100 bytes (longer than a block ones are hashed first)', () => {
    for (const n of LENGTHS) {
      const d = randomBytes(n);
      const key = randomBytes(n % 101);
      expect(toHex(hmacBlake2s(key, d)), `length ${n}`).toBe(toHex(hmac(blake2s, key, d)));
    }
  });
});

/** HKDF (RFC 5869) the long way: one hmacBlake2s per step. */
function hkdfByHmac(key: Uint8Array, input: Uint8Array, n: number): string[] {
  const prk = hmacBlake2s(key, input);
  const out: Uint8Array[] = [];
  let previous: Uint8Array = new Uint8Array(0);
  for (let i = 1; i <= n; i++) {
    previous = hmacBlake2s(prk, concat(previous, Uint8Array.of(i)));
    out.push(previous);
  }
  return out.map(toHex);
}

test('HKDF in one call equals the hmac chain: empty to long inputs and keys, 1..5 outputs', () => {
  for (const n of LENGTHS) {
    const input = randomBytes(n);
    const key = randomBytes(n % 3 === 0 ? 32 : n % 101);
    const count = 1 + (n % 5);
    const out = Array.from({ length: count }, () => new Uint8Array(32));
    hkdfBlake2s(key, input, out);
    expect(out.map(toHex), `input ${n} bytes, key ${key.length} bytes`).toEqual(
      hkdfByHmac(key, input, count),
    );
  }
});

test('HKDF may write over its own key and input (both are read first)', () => {
  const key = randomBytes(32);
  const input = randomBytes(32);
  const want = hkdfByHmac(key, input, 2);
  hkdfBlake2s(key, input, [key, input]);
  expect([key, input].map(toHex)).toEqual(want);
});

test('HKDF rejects 0 or more than 255 outputs, and outputs that are not 32 bytes', () => {
  const k = new Uint8Array(32);
  expect(() => hkdfBlake2s(k, k, [])).toThrow(RangeError);
  expect(() =>
    hkdfBlake2s(
      k,
      k,
      Array.from({ length: 256 }, () => new Uint8Array(32)),
    ),
  ).toThrow(RangeError);
  expect(() => hkdfBlake2s(k, k, [new Uint8Array(32), new Uint8Array(31)])).toThrow(RangeError);
});

test('inputs are left as they were and every output is fresh', () => {
  const key = randomBytes(32);
  const d = randomBytes(100);
  const [k0, d0] = [toHex(key), toHex(d)];
  const a = hmacBlake2s(key, d);
  const b = blake2sMac(key, d);
  const h = blake2sHash([key, d]);
  expect([toHex(key), toHex(d)]).toEqual([k0, d0]);
  a.fill(0);
  b.fill(0);
  h.fill(0);
  expect(toHex(hmacBlake2s(key, d))).toBe(toHex(hmac(blake2s, key, d)));
  expect(toHex(blake2sMac(key, d))).toBe(toHex(blake2s(d, { key, dkLen: 16 })));
  expect(toHex(blake2sHash([key, d]))).toBe(toHex(blake2s(concat(key, d))));
});

test('rejects keys and output lengths BLAKE2s cannot take with RangeError', () => {
  const d = new Uint8Array(8);
  expect(() => blake2sMac(new Uint8Array(0), d)).toThrow(RangeError);
  expect(() => blake2sMac(new Uint8Array(33), d)).toThrow(RangeError);
  expect(() => blake2sMac(new Uint8Array(16), d, 0)).toThrow(RangeError);
  expect(() => blake2sMac(new Uint8Array(16), d, 33)).toThrow(RangeError);
});
