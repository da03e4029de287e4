import { describe, expect, test } from 'vitest';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import { nativeCrypto } from '../src/native.js';
import { initialNoiseState, kdf1, kdf2, kdf3, labelledHash, mixHash } from '../src/kdf.js';
import { LABEL_MAC1 } from '../src/constants.js';
import kdfVectors from './vectors/wireguard-kdf.json' with { type: 'json' };
import constants from './vectors/wireguard-constants.json' with { type: 'json' };

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

// noble has no `kdf` (kdf.ts chains its `hmac`); native has one (crypto/blake2s.ts hkdfBlake2s).
const native = nativeCrypto();
if (native === null) throw new Error('the native provider must be available for these tests');
const providers: [string, CryptoProvider][] = [
  ['noble, hmac chain', nobleCrypto],
  ['native, provider kdf', native],
];

test('the native provider brings its own kdf and noble does not', () => {
  expect(typeof native.kdf).toBe('function');
  expect(nobleCrypto.kdf).toBeUndefined();
});

describe.each(providers)(
  'Kdf over HMAC-BLAKE2s (wireguard-go kdf_test.go), %s',
  (_name, crypto) => {
    test.each(kdfVectors.vectors)('key=$key input=$input', (v) => {
      const key = bytes(v.key);
      const input = bytes(v.input);
      expect(hex(kdf1(crypto, key, input))).toBe(v.t0);
      expect(kdf2(crypto, key, input).map(hex)).toEqual([v.t0, v.t1]);
      expect(kdf3(crypto, key, input).map(hex)).toEqual([v.t0, v.t1, v.t2]);
    });

    test('inputs are not modified and outputs are fresh', () => {
      const key = bytes(kdfVectors.vectors[0]!.key);
      const input = bytes(kdfVectors.vectors[0]!.input);
      const [a, b] = kdf2(crypto, key, input);
      a.fill(0);
      expect(hex(key)).toBe(kdfVectors.vectors[0]!.key);
      expect(hex(input)).toBe(kdfVectors.vectors[0]!.input);
      expect(hex(b)).toBe(kdfVectors.vectors[0]!.t1);
    });

    test('empty input (Kdf2(C, ε) derives the transport keys) and 32-byte keys match noble', () => {
      for (let i = 0; i < 64; i++) {
        const key = Uint8Array.from({ length: 32 }, (_, j) => (i * 31 + j * 7) & 0xff);
        const input = Uint8Array.from({ length: i % 3 === 0 ? 0 : 32 + (i % 5) }, (_, j) => i ^ j);
        expect(kdf3(crypto, key, input).map(hex)).toEqual(kdf3(nobleCrypto, key, input).map(hex));
      }
    });
  },
);

describe('initial noise state (whitepaper §5.4.2)', () => {
  test('C = HASH(Construction), H = HASH(C || Identifier)', () => {
    const s = initialNoiseState(nobleCrypto);
    expect(hex(s.chainingKey)).toBe(constants.derived.initial_chain_key.hex);
    expect(hex(s.hash)).toBe(constants.derived.initial_hash.hex);
    expect(initialNoiseState(nobleCrypto)).toBe(s);
  });

  test('mixHash is HASH(h || data) and labelledHash is HASH(label || key)', () => {
    const h = bytes('00'.repeat(32));
    const d = bytes('0102');
    expect(hex(mixHash(nobleCrypto, h, d))).toBe(hex(nobleCrypto.hash(h, d)));
    const pk = bytes('11'.repeat(32));
    expect(hex(labelledHash(nobleCrypto, LABEL_MAC1, pk))).toBe(
      hex(nobleCrypto.hash(bytes(constants.strings.label_mac1.hex), pk)),
    );
  });
});
