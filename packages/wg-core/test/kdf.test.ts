import { describe, expect, test } from 'vitest';
import { nobleCrypto } from '../src/crypto/noble.js';
import { initialNoiseState, kdf1, kdf2, kdf3, labelledHash, mixHash } from '../src/kdf.js';
import { LABEL_MAC1 } from '../src/constants.js';
import kdfVectors from './vectors/wireguard-kdf.json' with { type: 'json' };
import constants from './vectors/wireguard-constants.json' with { type: 'json' };

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));

describe('Kdf over HMAC-BLAKE2s (wireguard-go kdf_test.go)', () => {
  test.each(kdfVectors.vectors)('key=$key input=$input', (v) => {
    const key = bytes(v.key);
    const input = bytes(v.input);
    expect(hex(kdf1(nobleCrypto, key, input))).toBe(v.t0);
    expect(kdf2(nobleCrypto, key, input).map(hex)).toEqual([v.t0, v.t1]);
    expect(kdf3(nobleCrypto, key, input).map(hex)).toEqual([v.t0, v.t1, v.t2]);
  });

  test('inputs are not modified and outputs are fresh', () => {
    const key = bytes(kdfVectors.vectors[0]!.key);
    const input = bytes(kdfVectors.vectors[0]!.input);
    const [a, b] = kdf2(nobleCrypto, key, input);
    a.fill(0);
    expect(hex(key)).toBe(kdfVectors.vectors[0]!.key);
    expect(hex(input)).toBe(kdfVectors.vectors[0]!.input);
    expect(hex(b)).toBe(kdfVectors.vectors[0]!.t1);
  });
});

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
