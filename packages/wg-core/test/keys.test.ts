// Key helpers: base64 (wg(8)) and hex (UAPI) forms, clamping (RFC 7748 §5), public-key derivation,
// checked against the Wireshark WireGuard capture keys and RFC 7748 §6.1.
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import {
  equalBytes,
  generatePrivateKey,
  isZeroKey,
  keyFromBase64,
  keyFromHex,
  keyToBase64,
  keyToHex,
  nobleCrypto,
  publicKeyOf,
  wipe,
} from '@wiremesh/wg-core';
import { nativeCrypto } from '@wiremesh/wg-core/native';
import capture from './vectors/wireguard-handshake-wireshark.json' with { type: 'json' };
import x25519Vectors from './vectors/x25519.json' with { type: 'json' };

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const pairs = [
  capture.keys.initiator_static_private,
  capture.keys.initiator_static_public,
  capture.keys.responder_static_private,
  capture.keys.responder_static_public,
  capture.session1.initiator_ephemeral_private,
  capture.session1.responder_ephemeral_private,
  capture.session2_initiation_only.initiator_ephemeral_private,
  capture.psk_capture_initiation_only.initiator_ephemeral_private,
];

describe('base64 and hex forms', () => {
  test.each(pairs)('$base64 <-> $hex', ({ base64, hex: h }) => {
    expect(toHex(keyFromBase64(base64))).toBe(h);
    expect(keyToBase64(hex(h))).toBe(base64);
    expect(keyToHex(keyFromBase64(base64))).toBe(h);
    expect(toHex(keyFromHex(h))).toBe(h);
    expect(toHex(keyFromHex(h.toUpperCase()))).toBe(h);
  });

  test('round-trips 2,000 random keys and agrees with an independent encoder', () => {
    const edge = [
      new Uint8Array(32),
      new Uint8Array(32).fill(0xff),
      Uint8Array.from({ length: 32 }, (_, i) => i * 8),
    ];
    const keys = [...edge, ...Array.from({ length: 2000 }, () => Uint8Array.from(randomBytes(32)))];
    for (const k of keys) {
      const b64 = keyToBase64(k);
      expect(b64).toBe(Buffer.from(k).toString('base64'));
      expect(keyFromBase64(b64)).toEqual(k);
      const h = keyToHex(k);
      expect(h).toBe(Buffer.from(k).toString('hex'));
      expect(keyFromHex(h)).toEqual(k);
    }
  });

  const valid = capture.keys.responder_static_private.base64;
  const badBase64: [string, string][] = [
    ['empty', ''],
    ['43 characters', valid.slice(0, 43)],
    ['45 characters', valid + '='],
    ['no padding', valid.slice(0, 43) + 'A'],
    ['two padding characters', valid.slice(0, 42) + '=='],
    ['url-safe alphabet', valid.replace(/[+/]/g, '-').replace(/^./, '_')],
    ['a space inside', valid.slice(0, 10) + ' ' + valid.slice(11)],
    ['a trailing newline', valid.slice(0, 43) + '\n'],
    ['a non-ASCII character', valid.slice(0, 5) + 'é' + valid.slice(6)],
    ['padding in the middle', valid.slice(0, 20) + '=' + valid.slice(21)],
    // 'a' = 26 = 0b011010: its two low bits are not zero, so this is not canonical.
    ['non-zero unused bits', valid.slice(0, 42) + 'a='],
  ];

  test.each(badBase64)('keyFromBase64 rejects %s without echoing the text', (_name, text) => {
    let message = '';
    try {
      keyFromBase64(text);
    } catch (err) {
      expect(err).toBeInstanceOf(Error);
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid key: /);
    if (text.length >= 8) {
      for (let i = 0; i + 8 <= text.length; i++)
        expect(message).not.toContain(text.slice(i, i + 8));
    }
  });

  test('keyFromBase64 accepts the canonical neighbour of the non-canonical case', () => {
    // 'Y' = 24 = 0b011000: low bits zero.
    expect(keyFromBase64(valid.slice(0, 42) + 'Y=')).toHaveLength(32);
  });

  const validHex = capture.keys.responder_static_private.hex;
  const badHex: [string, string][] = [
    ['empty', ''],
    ['63 digits', validHex.slice(0, 63)],
    ['65 digits', validHex + '0'],
    ['a 0x prefix', '0x' + validHex.slice(2)],
    ['a non-hex letter', validHex.slice(0, 40) + 'g' + validHex.slice(41)],
    ['a space', validHex.slice(0, 63) + ' '],
    ['base64 text of the right length', (valid + valid).slice(0, 64)],
  ];

  test.each(badHex)('keyFromHex rejects %s without echoing the text', (_name, text) => {
    let message = '';
    try {
      keyFromHex(text);
    } catch (err) {
      expect(err).toBeInstanceOf(Error);
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid key: /);
    if (text.length >= 8) {
      for (let i = 0; i + 8 <= text.length; i++)
        expect(message).not.toContain(text.slice(i, i + 8));
    }
  });

  test('encoders reject wrong lengths and types at once', () => {
    expect(() => keyToBase64(new Uint8Array(31))).toThrow(RangeError);
    expect(() => keyToHex(new Uint8Array(33))).toThrow(RangeError);
    expect(() => keyToHex([1, 2] as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => keyFromBase64(42 as unknown as string)).toThrow(TypeError);
    expect(() => keyFromHex(null as unknown as string)).toThrow(TypeError);
  });
});

describe('public keys', () => {
  const providers = [nobleCrypto, nativeCrypto()!];
  const derivations: [string, string, string][] = [
    [
      'capture initiator static',
      capture.keys.initiator_static_private.hex,
      capture.keys.initiator_static_public.hex,
    ],
    [
      'capture responder static',
      capture.keys.responder_static_private.hex,
      capture.keys.responder_static_public.hex,
    ],
    [
      'capture initiator ephemeral',
      capture.session1.initiator_ephemeral_private.hex,
      capture.session1.initiator_ephemeral_public_computed,
    ],
    [
      'capture responder ephemeral',
      capture.session1.responder_ephemeral_private.hex,
      capture.session1.responder_ephemeral_public_computed,
    ],
    [
      'RFC 7748 §6.1 Alice',
      x25519Vectors.rfc7748_section_6_1_diffie_hellman.alice_private,
      x25519Vectors.rfc7748_section_6_1_diffie_hellman.alice_public,
    ],
    [
      'RFC 7748 §6.1 Bob',
      x25519Vectors.rfc7748_section_6_1_diffie_hellman.bob_private,
      x25519Vectors.rfc7748_section_6_1_diffie_hellman.bob_public,
    ],
  ];

  test.each(derivations)('%s', (_name, priv, pub) => {
    for (const p of providers) expect(toHex(publicKeyOf(p, hex(priv)))).toBe(pub);
  });

  test('from base64 text, as `wg pubkey` reads it', () => {
    const pub = publicKeyOf(
      nobleCrypto,
      keyFromBase64(capture.keys.initiator_static_private.base64),
    );
    expect(keyToBase64(pub)).toBe(capture.keys.initiator_static_public.base64);
  });

  test('rejects a private key of the wrong length', () => {
    expect(() => publicKeyOf(nobleCrypto, new Uint8Array(31))).toThrow(RangeError);
  });
});

describe('generatePrivateKey', () => {
  const from = (fill: (out: Uint8Array) => void): Uint8Array => generatePrivateKey(fill);

  test('clamps as wg genkey does', () => {
    const ones = from((out) => out.fill(0xff));
    expect(ones[0]).toBe(0xf8);
    expect(ones.subarray(1, 31).every((b) => b === 0xff)).toBe(true);
    expect(ones[31]).toBe(0x7f);
    const low = from((out) => out.fill(0x01));
    expect(low[0]).toBe(0x00);
    expect(low[31]).toBe(0x41);
  });

  test('takes exactly 32 bytes from the random source, and random keys are clamped and distinct', () => {
    const sizes: number[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const k = generatePrivateKey((out) => {
        sizes.push(out.length);
        out.set(randomBytes(out.length));
      });
      expect(k[0]! & 0b111).toBe(0);
      expect(k[31]! & 0b1100_0000).toBe(0b0100_0000);
      seen.add(toHex(k));
    }
    expect(new Set(sizes)).toEqual(new Set([32]));
    expect(seen.size).toBe(200);
  });

  test('clamping does not change the public key (X25519 clamps too)', () => {
    const raw = Uint8Array.from(randomBytes(32));
    raw[0]! |= 0b111;
    raw[31]! |= 0b1000_0000;
    const clamped = generatePrivateKey((out) => out.set(raw));
    expect(toHex(clamped)).not.toBe(toHex(raw));
    expect(publicKeyOf(nobleCrypto, clamped)).toEqual(publicKeyOf(nobleCrypto, raw));
  });

  test('refuses a random source that returns zeros, and a non-function', () => {
    expect(() => generatePrivateKey(() => {})).toThrow(/all-zero/);
    expect(() => generatePrivateKey(undefined as unknown as () => void)).toThrow(TypeError);
  });
});

describe('byte helpers', () => {
  test('isZeroKey', () => {
    expect(isZeroKey(new Uint8Array(32))).toBe(true);
    const k = new Uint8Array(32);
    k[31] = 1;
    expect(isZeroKey(k)).toBe(false);
    expect(() => isZeroKey(new Uint8Array(16))).toThrow(RangeError);
  });

  test('equalBytes', () => {
    const a = Uint8Array.from(randomBytes(32));
    const b = Uint8Array.from(a);
    expect(equalBytes(a, b)).toBe(true);
    for (const i of [0, 15, 31]) {
      const c = Uint8Array.from(a);
      c[i]! ^= 0x80;
      expect(equalBytes(a, c)).toBe(false);
    }
    expect(equalBytes(a, a.subarray(0, 31))).toBe(false);
    expect(equalBytes(new Uint8Array(0), new Uint8Array(0))).toBe(true);
    expect(() => equalBytes(a, 'x' as unknown as Uint8Array)).toThrow(TypeError);
  });

  test('wipe zeroes in place, views included', () => {
    const buf = Uint8Array.from(randomBytes(64));
    wipe(buf.subarray(16, 48));
    expect(buf.subarray(16, 48).every((b) => b === 0)).toBe(true);
    expect(buf.subarray(0, 16).some((b) => b !== 0) || buf.subarray(48).some((b) => b !== 0)).toBe(
      true,
    );
    wipe(buf);
    expect(buf.every((b) => b === 0)).toBe(true);
  });
});
