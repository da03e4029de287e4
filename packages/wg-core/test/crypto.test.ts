// One conformance suite for every CryptoProvider (whitepaper §5.4 primitives), driven by the
// shared vectors: RFC 7748 (X25519), RFC 8439 (ChaCha20-Poly1305), draft-irtf-cfrg-xchacha-03,
// RFC 7693 and the BLAKE2 KAT (BLAKE2s), Go x/crypto hashes128 (Mac), wireguard-go kdf_test (HMAC).
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { nobleCrypto, type CryptoProvider } from '@wiremesh/wg-core';
import { nativeCrypto, selectCrypto } from '@wiremesh/wg-core/native';
import x25519Vectors from './vectors/x25519.json' with { type: 'json' };
import aeadVectors from './vectors/chacha20poly1305.json' with { type: 'json' };
import xaeadVectors from './vectors/xchacha20poly1305.json' with { type: 'json' };
import blake2sVectors from './vectors/blake2s.json' with { type: 'json' };
import blake2sKat from './vectors/blake2s-kat.json' with { type: 'json' };
import kdfVectors from './vectors/wireguard-kdf.json' with { type: 'json' };

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));
const TAG = 16;

const native = nativeCrypto();
const nativeOpenssl = nativeCrypto({ libsodium: false });

test('the native provider is available on this machine, with libsodium', () => {
  expect(native).not.toBeNull();
  expect(native!.name).toContain('libsodium');
  expect(nativeOpenssl).not.toBeNull();
  expect(nativeOpenssl!.name).toBe('native (node:crypto)');
});

const providers: [string, CryptoProvider][] = [['noble', nobleCrypto]];
if (native) providers.push(['native', native]);
if (nativeOpenssl) providers.push(['native without libsodium', nativeOpenssl]);

describe.each(providers)('%s', (_label, p) => {
  describe('X25519 (RFC 7748)', () => {
    test.each(x25519Vectors.rfc7748_section_5_2_scalar_mult)(
      '§5.2 scalar mult $scalar (clamping, top bit of u ignored)',
      (v) => {
        expect(toHex(p.x25519(hex(v.scalar), hex(v.u)))).toBe(v.output);
      },
    );

    test('§5.2 iterated, after 1 and 1,000 steps', () => {
      const it = x25519Vectors.rfc7748_section_5_2_iterated;
      let k = hex(it.initial_k);
      let u = hex(it.initial_u);
      for (let i = 1; i <= 1000; i++) {
        const r = p.x25519(k, u);
        u = k;
        k = r;
        if (i === 1) expect(toHex(k)).toBe(it.after_1);
      }
      expect(toHex(k)).toBe(it.after_1000);
    });

    test('§6.1 Diffie-Hellman: public keys and the shared secret both ways', () => {
      const v = x25519Vectors.rfc7748_section_6_1_diffie_hellman;
      expect(toHex(p.x25519Public(hex(v.alice_private)))).toBe(v.alice_public);
      expect(toHex(p.x25519Public(hex(v.bob_private)))).toBe(v.bob_public);
      expect(toHex(p.x25519(hex(v.alice_private), hex(v.bob_public)))).toBe(v.shared);
      expect(toHex(p.x25519(hex(v.bob_private), hex(v.alice_public)))).toBe(v.shared);
    });

    test.each(x25519Vectors.low_order_points.points)('low-order point %s gives all zeros', (u) => {
      const v = x25519Vectors.rfc7748_section_6_1_diffie_hellman;
      for (const k of [
        v.alice_private,
        v.bob_private,
        x25519Vectors.rfc7748_section_5_2_scalar_mult[0]!.scalar,
      ]) {
        expect(toHex(p.x25519(hex(k), hex(u)))).toBe(
          x25519Vectors.low_order_points.expected_output,
        );
      }
    });

    test('rejects wrong key lengths with RangeError', () => {
      const k = new Uint8Array(32);
      expect(() => p.x25519(new Uint8Array(31), k)).toThrow(RangeError);
      expect(() => p.x25519(k, new Uint8Array(33))).toThrow(RangeError);
      expect(() => p.x25519Public(new Uint8Array(0))).toThrow(RangeError);
    });
  });

  describe('ChaCha20-Poly1305 (RFC 8439)', () => {
    test.each(aeadVectors.vectors)(
      '$name: seal gives ciphertext || tag, open gives plaintext',
      (v) => {
        const key = hex(v.key);
        const nonce = hex(v.nonce);
        const ad = hex(v.aad);
        const pt = hex(v.plaintext);
        const sealed = new Uint8Array(pt.length + TAG);
        p.seal(key, nonce, pt, ad, sealed);
        expect(toHex(sealed)).toBe(v.ciphertext + v.tag);
        const opened = new Uint8Array(pt.length);
        expect(p.open(key, nonce, hex(v.ciphertext + v.tag), ad, opened)).toBe(true);
        expect(toHex(opened)).toBe(v.plaintext);
      },
    );

    test.each(aeadVectors.vectors)(
      '$name: tampered tag, ciphertext, AD or nonce fail to open',
      (v) => {
        const key = hex(v.key);
        const nonce = hex(v.nonce);
        const ad = hex(v.aad);
        const good = hex(v.ciphertext + v.tag);
        const out = new Uint8Array(good.length - TAG);
        const flip = (b: Uint8Array, i: number): Uint8Array => {
          const c = Uint8Array.from(b);
          c[i]! ^= 1;
          return c;
        };
        expect(p.open(key, nonce, flip(good, good.length - 1), ad, out)).toBe(false); // tag
        expect(p.open(key, nonce, flip(good, 0), ad, out)).toBe(false); // ciphertext
        expect(p.open(key, nonce, good, flip(ad, 0), out)).toBe(false);
        expect(p.open(key, nonce, good, concat(ad, new Uint8Array(1)), out)).toBe(false);
        expect(p.open(key, flip(nonce, 11), good, ad, out)).toBe(false);
        expect(p.open(flip(key, 31), nonce, good, ad, out)).toBe(false);
        expect(p.open(key, nonce, good, ad, out)).toBe(true);
      },
    );

    test('a ciphertext shorter than the tag is a failed open, not a throw', () => {
      const k = new Uint8Array(32);
      const n = new Uint8Array(12);
      expect(p.open(k, n, new Uint8Array(15), new Uint8Array(0), new Uint8Array(0))).toBe(false);
      expect(p.open(k, n, new Uint8Array(0), new Uint8Array(0), new Uint8Array(0))).toBe(false);
    });

    test('an empty plaintext (a keepalive) seals to a bare tag and opens', () => {
      const k = hex(aeadVectors.vectors[0]!.key);
      const n = hex(aeadVectors.wireguard_nonce_layout.example.nonce);
      const sealed = new Uint8Array(TAG);
      p.seal(k, n, new Uint8Array(0), new Uint8Array(0), sealed);
      const ref = new Uint8Array(TAG);
      nobleCrypto.seal(k, n, new Uint8Array(0), new Uint8Array(0), ref);
      expect(toHex(sealed)).toBe(toHex(ref));
      expect(p.open(k, n, sealed, new Uint8Array(0), new Uint8Array(0))).toBe(true);
    });

    test.each([1, 63, 64, 1420, 8191, 8192, 65536])(
      '%i bytes: matches the noble reference both ways, sealing and opening in place',
      (size) => {
        const key = Uint8Array.from(randomBytes(32));
        const nonce = Uint8Array.from(randomBytes(12));
        const ad = Uint8Array.from(randomBytes(32));
        const pt = Uint8Array.from(randomBytes(size));
        const ref = new Uint8Array(size + TAG);
        nobleCrypto.seal(key, nonce, pt, ad, ref);
        // In place: the plaintext sits at the start of the destination.
        const buf = new Uint8Array(size + TAG);
        buf.set(pt);
        p.seal(key, nonce, buf.subarray(0, size), ad, buf);
        expect(toHex(buf)).toBe(toHex(ref));
        const view = buf.subarray(0, size);
        expect(p.open(key, nonce, buf, ad, view)).toBe(true);
        expect(toHex(view)).toBe(toHex(pt));
        const bad = Uint8Array.from(ref);
        bad[size >> 1]! ^= 0x80;
        expect(p.open(key, nonce, bad, ad, new Uint8Array(size))).toBe(false);
      },
    );

    test('programmer errors throw at once', () => {
      const k = new Uint8Array(32);
      const n = new Uint8Array(12);
      const e = new Uint8Array(0);
      expect(() => p.seal(k, n, new Uint8Array(4), e, new Uint8Array(19))).toThrow(RangeError);
      expect(() => p.open(k, n, new Uint8Array(20), e, new Uint8Array(5))).toThrow(RangeError);
      expect(() => p.seal(new Uint8Array(16), n, e, e, new Uint8Array(TAG))).toThrow(RangeError);
      expect(() => p.seal(k, new Uint8Array(8), e, e, new Uint8Array(TAG))).toThrow(RangeError);
    });
  });

  describe('XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03)', () => {
    const v = xaeadVectors.aead_xchacha20_poly1305_a_3_1;

    test('A.3.1: seal and open', () => {
      const pt = hex(v.plaintext);
      const sealed = new Uint8Array(pt.length + TAG);
      p.xseal(hex(v.key), hex(v.nonce), pt, hex(v.aad), sealed);
      expect(toHex(sealed)).toBe(v.ciphertext + v.tag);
      const opened = new Uint8Array(pt.length);
      expect(p.xopen(hex(v.key), hex(v.nonce), sealed, hex(v.aad), opened)).toBe(true);
      expect(toHex(opened)).toBe(v.plaintext);
    });

    test('A.3.1 through the 12-byte AEAD with the derived subkey and nonce', () => {
      const sealed = new Uint8Array(hex(v.plaintext).length + TAG);
      p.seal(
        hex(v.derived_hchacha20_subkey),
        hex(v.derived_chacha20poly1305_nonce),
        hex(v.plaintext),
        hex(v.aad),
        sealed,
      );
      expect(toHex(sealed)).toBe(v.ciphertext + v.tag);
    });

    test('A.3.1: tampered tag, ciphertext, AD or nonce fail', () => {
      const good = hex(v.ciphertext + v.tag);
      const out = new Uint8Array(good.length - TAG);
      const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
        [hex(v.nonce), Uint8Array.from(good), hex(v.aad)],
        [hex(v.nonce), Uint8Array.from(good), hex(v.aad)],
        [hex(v.nonce), good, hex(v.aad)],
        [hex(v.nonce), good, hex(v.aad)],
      ];
      cases[0]![1][good.length - 1]! ^= 1;
      cases[1]![1][0]! ^= 1;
      cases[2]![2][0]! ^= 1;
      cases[3]![0][23]! ^= 1;
      for (const [nonce, ct, ad] of cases)
        expect(p.xopen(hex(v.key), nonce, ct, ad, out)).toBe(false);
      expect(p.xopen(hex(v.key), hex(v.nonce), good, hex(v.aad), out)).toBe(true);
    });

    test('a cookie-sized payload (16 bytes) round-trips and matches noble', () => {
      const key = Uint8Array.from(randomBytes(32));
      const nonce = Uint8Array.from(randomBytes(24));
      const cookie = Uint8Array.from(randomBytes(16));
      const ad = Uint8Array.from(randomBytes(16));
      const mine = new Uint8Array(32);
      const ref = new Uint8Array(32);
      p.xseal(key, nonce, cookie, ad, mine);
      nobleCrypto.xseal(key, nonce, cookie, ad, ref);
      expect(toHex(mine)).toBe(toHex(ref));
      const out = new Uint8Array(16);
      expect(p.xopen(key, nonce, mine, ad, out)).toBe(true);
      expect(toHex(out)).toBe(toHex(cookie));
      expect(p.xopen(key, nonce, new Uint8Array(15), ad, new Uint8Array(0))).toBe(false);
    });
  });

  describe('BLAKE2s (RFC 7693)', () => {
    test('Appendix B: BLAKE2s-256("abc"), whole and in parts', () => {
      const v = blake2sVectors.rfc7693_appendix_b;
      expect(toHex(p.hash(hex(v.input)))).toBe(v.digest);
      expect(toHex(p.hash(hex('61'), new Uint8Array(0), hex('6263')))).toBe(v.digest);
    });

    test('Appendix E self-test: grand hash, and every case hash()/mac() can express', () => {
      const st = blake2sVectors.rfc7693_appendix_e_selftest;
      // selftest_seq from RFC 7693 Appendix E: a Fibonacci-like generator seeded by `seed`.
      const seq = (n: number, seed: number): Uint8Array => {
        const out = new Uint8Array(n);
        let a = Math.imul(0xdead4bad, seed) >>> 0;
        let b = 1;
        for (let i = 0; i < n; i++) {
          const t = (a + b) >>> 0;
          a = b;
          b = t;
          out[i] = t >>> 24;
        }
        return out;
      };
      const digests: Uint8Array[] = [];
      let checked = 0;
      for (const c of st.cases_computed) {
        const input = seq(c.input_length, c.input_length);
        expect(toHex(seq(c.output_length, c.output_length))).toBe(c.key);
        digests.push(hex(c.unkeyed_digest), hex(c.keyed_digest));
        if (c.output_length === 32) {
          expect(toHex(p.hash(input))).toBe(c.unkeyed_digest);
          checked++;
        }
        // 16-byte output with a 16-byte key: exactly MAC2's shape, Mac(cookie, msg).
        if (c.output_length === 16) {
          expect(toHex(p.mac(hex(c.key), input))).toBe(c.keyed_digest);
          checked++;
        }
      }
      expect(checked).toBe(12);
      // The grand hash (from the RFC) authenticates all 48 per-case digests in the file.
      expect(toHex(p.hash(...digests))).toBe(st.grand_hash);
    });

    test('Mac: all 256 keyed BLAKE2s-128 vectors (hashes128)', () => {
      const v = blake2sVectors.keyed_blake2s_128;
      expect(v.vectors).toHaveLength(256);
      const key = hex(v.key);
      for (const c of v.vectors) expect(toHex(p.mac(key, hex(c.input)))).toBe(c.digest);
    });

    test('hash: all 256 unkeyed BLAKE2s-256 KAT vectors', () => {
      expect(blake2sKat.unkeyed).toHaveLength(256);
      for (const c of blake2sKat.unkeyed) expect(toHex(p.hash(hex(c.input)))).toBe(c.digest);
    });
  });

  describe('HMAC-BLAKE2s (RFC 2104), the building block of WireGuard Kdf_n', () => {
    test.each(kdfVectors.vectors)('chained as in wireguard-go TestKDF (key $key)', (v) => {
      const prk = p.hmac(hex(v.key), hex(v.input));
      const t1 = p.hmac(prk, Uint8Array.of(1));
      const t2 = p.hmac(prk, concat(t1, Uint8Array.of(2)));
      const t3 = p.hmac(prk, concat(t2, Uint8Array.of(3)));
      expect([toHex(prk), toHex(t1), toHex(t2), toHex(t3)]).toEqual([
        v.prk_computed,
        v.t0,
        v.t1,
        v.t2,
      ]);
    });
  });

  test('returns fresh bytes the caller may overwrite', () => {
    const k = hex(x25519Vectors.rfc7748_section_6_1_diffie_hellman.alice_private);
    const a = p.x25519Public(k);
    const h = p.hash(k);
    const m = p.hmac(k, k);
    const mac = p.mac(k, k);
    a.fill(0);
    h.fill(0);
    m.fill(0);
    mac.fill(0);
    expect(toHex(p.x25519Public(k))).toBe(
      x25519Vectors.rfc7748_section_6_1_diffie_hellman.alice_public,
    );
    expect(p.hash(k)).not.toEqual(new Uint8Array(32));
    expect(p.hmac(k, k)).not.toEqual(new Uint8Array(32));
    expect(p.mac(k, k)).not.toEqual(new Uint8Array(16));
    expect(p.hash(k)).toBeInstanceOf(Uint8Array);
  });
});

describe('selectCrypto', () => {
  test('picks native by default and says why', () => {
    const s = selectCrypto();
    expect(s.provider).toBe(native);
    expect(s.reason).toMatch(/^native is the fastest available/);
    expect(s.reason).toContain('X25519: libsodium');
  });

  test('honours force', () => {
    expect(selectCrypto({ force: 'noble' })).toEqual({
      provider: nobleCrypto,
      reason: 'noble forced by option',
    });
    const n = selectCrypto({ force: 'native' });
    expect(n.provider).toBe(native);
    expect(n.reason).toMatch(/^native forced by option/);
  });

  test('rejects an unknown force with TypeError', () => {
    expect(() => selectCrypto({ force: 'fast' as 'native' })).toThrow(TypeError);
  });

  test('nativeCrypto is built once and shared', () => {
    expect(nativeCrypto()).toBe(native);
    expect(nativeCrypto({ libsodium: false })).toBe(nativeOpenssl);
  });
});
