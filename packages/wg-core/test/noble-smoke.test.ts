import { expect, test } from 'vitest';
import { nobleCrypto } from '../src/crypto/noble.js';
test('x25519 of a low-order point is all zero', () => {
  const sk = new Uint8Array(32).fill(7);
  expect(nobleCrypto.x25519(sk, new Uint8Array(32))).toEqual(new Uint8Array(32));
  const k = new Uint8Array(32), n = new Uint8Array(12), d = new Uint8Array(21);
  nobleCrypto.seal(k, n, new Uint8Array(5), new Uint8Array(0), d);
  const o = new Uint8Array(5);
  expect(nobleCrypto.open(k, n, d, new Uint8Array(0), o)).toBe(true);
  d[0]! ^= 1;
  expect(nobleCrypto.open(k, n, d, new Uint8Array(0), o)).toBe(false);
  expect(nobleCrypto.mac(new Uint8Array(32), new Uint8Array(3)).length).toBe(16);
});
