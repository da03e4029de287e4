/**
 * The cacophony Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector, run through a small generic Noise
 * (rev 34) handshake built on kdf.ts: its payloads (16 and 15 bytes) do not fit WireGuard's framing,
 * so this checks the symmetric-state primitives the WireGuard handshake is made of.
 */
import { expect, test } from 'vitest';
import type { CryptoProvider } from '../src/crypto/provider.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import { nativeCrypto } from '../src/native.js';
import { kdf1, kdf2, kdf3, mixHash } from '../src/kdf.js';
import noise from './vectors/noise-ikpsk2.json' with { type: 'json' };

// noble's Kdf is kdf.ts's hmac chain, native's its own `kdf`: both must give the vector.
const native = nativeCrypto();
if (native === null) throw new Error('the native provider must be available for these tests');
const providers: [string, CryptoProvider][] = [
  ['noble', nobleCrypto],
  ['native', native],
];
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const EMPTY = new Uint8Array(0);

function nonce(n: number): Uint8Array {
  const out = new Uint8Array(12);
  new DataView(out.buffer).setBigUint64(4, BigInt(n), true);
  return out;
}

/** Noise SymmetricState (rev 34 §5.2) with n reset on every MixKey. */
class Symmetric {
  ck: Uint8Array;
  h: Uint8Array;
  k: Uint8Array | null = null;
  n = 0;
  constructor(
    private readonly crypto: CryptoProvider,
    protocolName: string,
  ) {
    const name = new Uint8Array(Buffer.from(protocolName, 'ascii'));
    // A name longer than HASHLEN is hashed (rev 34 §5.2 InitializeSymmetric).
    this.h =
      name.length <= 32 ? cat(name, new Uint8Array(32 - name.length)) : this.crypto.hash(name);
    this.ck = this.h;
  }
  mixHash(data: Uint8Array) {
    this.h = mixHash(this.crypto, this.h, data);
  }
  mixKey(input: Uint8Array) {
    [this.ck, this.k] = kdf2(this.crypto, this.ck, input);
    this.n = 0;
  }
  mixKeyAndHash(input: Uint8Array) {
    const [ck, tmp, k] = kdf3(this.crypto, this.ck, input);
    this.ck = ck;
    this.mixHash(tmp);
    this.k = k;
    this.n = 0;
  }
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ct = new Uint8Array(plaintext.length + 16);
    this.crypto.seal(this.k!, nonce(this.n++), plaintext, this.h, ct);
    this.mixHash(ct);
    return ct;
  }
  decryptAndHash(ct: Uint8Array): Uint8Array {
    const pt = new Uint8Array(ct.length - 16);
    expect(this.crypto.open(this.k!, nonce(this.n++), ct, this.h, pt)).toBe(true);
    this.mixHash(ct);
    return pt;
  }
  split(): [Uint8Array, Uint8Array] {
    return kdf2(this.crypto, this.ck, EMPTY);
  }
}

test.each(providers)(
  'cacophony IKpsk2 (%s): both handshake messages, the handshake hash and 4 transport messages',
  (_name, crypto) => {
    const v = noise.vector;
    const psk = bytes(v.init_psks[0]!);
    const iS = bytes(v.init_static);
    const iE = bytes(v.init_ephemeral);
    const rS = bytes(v.resp_static);
    const rE = bytes(v.resp_ephemeral);
    const rSpub = crypto.x25519Public(rS);
    expect(hex(rSpub)).toBe(v.init_remote_static);

    // Initiator: <- s ... -> e, es, s, ss
    const i = new Symmetric(crypto, v.protocol_name);
    i.mixHash(bytes(v.init_prologue));
    i.mixHash(rSpub);
    const iEpub = crypto.x25519Public(iE);
    i.mixHash(iEpub);
    i.ck = kdf1(crypto, i.ck, iEpub); // psk modifier: e also mixes the key
    i.mixKey(crypto.x25519(iE, rSpub));
    const encS = i.encryptAndHash(crypto.x25519Public(iS));
    i.mixKey(crypto.x25519(iS, rSpub));
    const msg0 = cat(iEpub, encS, i.encryptAndHash(bytes(v.messages[0]!.payload)));
    expect(hex(msg0)).toBe(v.messages[0]!.ciphertext);

    // Responder reads message 0.
    const r = new Symmetric(crypto, v.protocol_name);
    r.mixHash(bytes(v.resp_prologue));
    r.mixHash(rSpub);
    const re = msg0.subarray(0, 32);
    r.mixHash(re);
    r.ck = kdf1(crypto, r.ck, re);
    r.mixKey(crypto.x25519(rS, re));
    const rs = r.decryptAndHash(msg0.subarray(32, 80));
    r.mixKey(crypto.x25519(rS, rs));
    expect(hex(r.decryptAndHash(msg0.subarray(80)))).toBe(v.messages[0]!.payload);

    // Responder: <- e, ee, se, psk
    const rEpub = crypto.x25519Public(rE);
    r.mixHash(rEpub);
    r.ck = kdf1(crypto, r.ck, rEpub);
    r.mixKey(crypto.x25519(rE, re));
    r.mixKey(crypto.x25519(rE, rs));
    r.mixKeyAndHash(bytes(v.resp_psks[0]!));
    const msg1 = cat(rEpub, r.encryptAndHash(bytes(v.messages[1]!.payload)));
    expect(hex(msg1)).toBe(v.messages[1]!.ciphertext);

    // Initiator reads message 1.
    const ie = msg1.subarray(0, 32);
    i.mixHash(ie);
    i.ck = kdf1(crypto, i.ck, ie);
    i.mixKey(crypto.x25519(iE, ie));
    i.mixKey(crypto.x25519(iS, ie));
    i.mixKeyAndHash(psk);
    expect(hex(i.decryptAndHash(msg1.subarray(32)))).toBe(v.messages[1]!.payload);
    expect(hex(i.h)).toBe(v.handshake_hash);
    expect(hex(r.h)).toBe(v.handshake_hash);

    // Split: the initiator sends with the first key, as WireGuard's T_send_i.
    const [k1, k2] = i.split();
    expect(hex(k1)).toBe(v.derived_computed.transport_key_initiator_to_responder);
    expect(hex(k2)).toBe(v.derived_computed.transport_key_responder_to_initiator);
    expect(r.split().map(hex)).toEqual([hex(k1), hex(k2)]);
    const counters = [0, 0, 1, 1];
    v.messages.slice(2).forEach((m, j) => {
      const key = j % 2 === 0 ? k1 : k2;
      const pt = bytes(m.payload);
      const ct = new Uint8Array(pt.length + 16);
      crypto.seal(key, nonce(counters[j]!), pt, EMPTY, ct);
      expect(hex(ct)).toBe(m.ciphertext);
    });
  },
);
