// The random pool (random-pool.ts): bulk refills, the source's bytes served in order, wiped after.
import { describe, expect, test } from 'vitest';
import fc from 'fast-check';

import { RANDOM_POOL_BYTES } from '../src/constants.js';
import { RandomPool } from '../src/random-pool.js';
import { Device } from '../src/device.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import type { RandomSource } from '../src/crypto/provider.js';
import type { Endpoint } from '../src/types.js';

/** A source whose output is one counting stream, and which records each call's size. */
function stream() {
  let next = 0;
  const calls: number[] = [];
  const source: RandomSource = (out) => {
    calls.push(out.length);
    for (let i = 0; i < out.length; i++) out[i] = next++ & 0xff;
  };
  const expected = (from: number, n: number) =>
    Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff);
  return { source, calls, expected };
}

describe('RandomPool', () => {
  test('serves the source stream in order, whatever the draw sizes (against a naive model)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 150 }), { maxLength: 40 }), (sizes) => {
        const size = 64;
        const s = stream();
        const pool = new RandomPool(s.source, size);
        // The model: the stream position, and the unserved rest of the last refill.
        let pos = 0;
        let rest: number[] = [];
        for (const n of sizes) {
          const out = new Uint8Array(n);
          pool.fill(out);
          const want: number[] = [];
          if (n > size) {
            want.push(...s.expected(pos, n));
            pos += n;
          } else {
            while (want.length < n) {
              if (rest.length === 0) {
                rest = [...s.expected(pos, size)];
                pos += size;
              }
              want.push(...rest.splice(0, n - want.length));
            }
          }
          expect([...out]).toEqual(want);
        }
      }),
    );
  });

  test('small draws concatenate to the source stream, one refill per pool of bytes', () => {
    const s = stream();
    const pool = new RandomPool(s.source, RANDOM_POOL_BYTES);
    const got: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const b = new Uint8Array(i % 7);
      pool.fill(b);
      got.push(...b);
    }
    expect(Uint8Array.from(got)).toEqual(s.expected(0, got.length));
    expect(s.calls).toEqual(
      new Array(Math.ceil(got.length / RANDOM_POOL_BYTES)).fill(RANDOM_POOL_BYTES),
    );
  });

  test('uint32 reads the next four bytes little-endian, across a refill too', () => {
    const s = stream();
    const pool = new RandomPool(s.source, 6);
    expect(pool.uint32()).toBe(0x03020100);
    expect(pool.uint32()).toBe(0x07060504); // bytes 4-5 from the first fill, 6-7 from the next
    expect(pool.uint32()).toBe(0x0b0a0908);
    expect(s.calls).toEqual([6, 6]);
  });

  test('wipes what it served: the source buffer holds no served byte afterwards', () => {
    let pool: Uint8Array | undefined;
    const p = new RandomPool((out) => {
      pool = out;
      out.fill(0xaa);
    }, 16);
    p.fill(new Uint8Array(10));
    expect([...pool!.subarray(0, 10)]).toEqual(new Array(10).fill(0));
    expect([...pool!.subarray(10)]).toEqual(new Array(6).fill(0xaa));
  });

  test('rejects a missing source, a bad size and a non-Uint8Array', () => {
    expect(() => new RandomPool(undefined as unknown as RandomSource)).toThrow(TypeError);
    expect(() => new RandomPool(() => {}, 0)).toThrow(RangeError);
    expect(() => new RandomPool(() => {}).fill([] as unknown as Uint8Array)).toThrow(TypeError);
  });
});

const ENDPOINT: Endpoint = { ip: '192.0.2.1', port: 51820 };

describe('the Device draws its small randomness from the pool', () => {
  test('initiations to many peers: the source sees keys and whole refills, never a 4-byte draw', () => {
    const s = stream();
    const device = new Device({ crypto: nobleCrypto, random: s.source, wallClock: () => 0 });
    device.setPrivateKey(Uint8Array.from({ length: 32 }, (_, i) => i + 1));
    const peers = 20;
    for (let i = 0; i < peers; i++) {
      const peer = device.addPeer(
        nobleCrypto.x25519Public(Uint8Array.from({ length: 32 }, () => i + 50)),
        { endpoint: ENDPOINT },
      );
      const out: Parameters<Device['sendKeepalive']>[2] = [];
      // No keypair yet: the keepalive is staged and an initiation goes out (index, ephemeral,
      // jitter); the tick retransmits it (another of each).
      device.sendKeepalive(peer, 1_000, out);
      device.tick(1_000 + 10_000, out);
    }
    expect(s.calls.length).toBeGreaterThan(peers); // one ephemeral per initiation at least
    expect(s.calls.filter((c) => c !== 32 && c !== RANDOM_POOL_BYTES)).toEqual([]);
    expect(s.calls.filter((c) => c === RANDOM_POOL_BYTES).length).toBeLessThan(peers);
  });
});
