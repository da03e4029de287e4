import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { HANDSHAKE_INITIATION_RATE_MS } from '../src/constants.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import { CookieChecker, CookieGenerator } from '../src/cookie.js';
import { consumeInitiation, consumeResponse, Handshake, LocalIdentity } from '../src/handshake.js';
import { tai64n } from '../src/tai64n.js';
import x25519Vectors from './vectors/x25519.json' with { type: 'json' };

const crypto = nobleCrypto;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
/** Deterministic 32-byte secrets for tests. */
const secret = (label: string) => crypto.hash(new Uint8Array(Buffer.from(label)));
const WALL = 1_700_000_000_000;

/** Everything observable about a handshake, as plain data. */
function snapshot(hs: Handshake) {
  return {
    state: hs.state,
    localIndex: hs.localIndex,
    remoteIndex: hs.remoteIndex,
    chainingKey: hex(hs.chainingKey),
    hash: hex(hs.hash),
    remoteEphemeral: hex(hs.remoteEphemeral),
    lastTimestamp: hs.lastTimestamp && hex(hs.lastTimestamp),
    lastInitiationConsumedMs: hs.lastInitiationConsumedMs,
    presharedKey: hs.presharedKey && hex(hs.presharedKey),
    precomputedStaticStatic: hex(hs.precomputedStaticStatic),
  };
}

/** Two devices that know each other, plus a third peer the responder also knows. */
function pair(pskI: Uint8Array | null = null, pskR: Uint8Array | null = pskI) {
  const a = new LocalIdentity(crypto, secret('initiator'));
  const b = new LocalIdentity(crypto, secret('responder'));
  const c = new LocalIdentity(crypto, secret('bystander'));
  const hsI = new Handshake(crypto, a, b.publicKey, pskI);
  const hsR = new Handshake(crypto, b, a.publicKey, pskR);
  const hsRc = new Handshake(crypto, b, c.publicKey, null);
  const peersOfB = new Map([
    [hex(a.publicKey), hsR],
    [hex(c.publicKey), hsRc],
  ]);
  const lookupR = (pk: Uint8Array) => peersOfB.get(hex(pk));
  const lookupI = (i: number) => (i === hsI.localIndex ? hsI : undefined);
  return { a, b, c, hsI, hsR, hsRc, lookupR, lookupI };
}

let ephemeralCounter = 0;
const ephemeral = () => secret(`ephemeral ${ephemeralCounter++}`);

describe('full handshake', () => {
  test.each([
    ['without a preshared key', null],
    ['with a preshared key', secret('psk')],
  ])('%s both sides derive matching transport keys', (_, psk) => {
    const { a, b, hsI, hsR, lookupR, lookupI } = pair(psk);
    const init = hsI.createInitiation(11, ephemeral(), tai64n(WALL))!;
    expect(consumeInitiation(crypto, b, init, 0, lookupR)).toBe(hsR);
    const resp = hsR.createResponse(22, ephemeral())!;
    expect(resp.length).toBe(92);
    expect(consumeResponse(crypto, a, resp, lookupI)).toBe(hsI);
    const kI = hsI.deriveKeys()!;
    const kR = hsR.deriveKeys()!;
    expect(hex(kI.sendKey)).toBe(hex(kR.receiveKey));
    expect(hex(kI.receiveKey)).toBe(hex(kR.sendKey));
    expect(hex(kI.sendKey)).not.toBe(hex(kI.receiveKey));
    expect([kI.localIndex, kI.remoteIndex, kR.localIndex, kR.remoteIndex]).toEqual([
      11, 22, 22, 11,
    ]);
  });

  test('a preshared-key mismatch fails at consumeResponse and changes nothing', () => {
    const { a, b, hsI, hsR, lookupR, lookupI } = pair(secret('psk one'), secret('psk two'));
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    expect(consumeInitiation(crypto, b, init, 0, lookupR)).toBe(hsR);
    const resp = hsR.createResponse(2, ephemeral())!;
    const before = snapshot(hsI);
    expect(consumeResponse(crypto, a, resp, lookupI)).toBe('handshake-invalid');
    expect(snapshot(hsI)).toEqual(before);
    expect(hsI.state).toBe('initiation-created');
  });

  test('one side with a PSK and the other without also fails', () => {
    const { a, b, hsI, lookupR, lookupI } = pair(null, secret('psk'));
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    const hsR = consumeInitiation(crypto, b, init, 0, lookupR) as Handshake;
    const resp = hsR.createResponse(2, ephemeral())!;
    expect(consumeResponse(crypto, a, resp, lookupI)).toBe('handshake-invalid');
  });
});

describe('consumeInitiation drops', () => {
  test("an initiator the responder does not know gives 'unknown-peer'", () => {
    const { b, hsI, hsR, hsRc } = pair();
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    const before = [snapshot(hsR), snapshot(hsRc)];
    const lookup = (pk: Uint8Array) => (hex(pk) === hex(hsRc.remoteStatic) ? hsRc : undefined);
    expect(consumeInitiation(crypto, b, init, 0, lookup)).toBe('unknown-peer');
    expect([snapshot(hsR), snapshot(hsRc)]).toEqual(before);
  });

  test("an initiation to a different responder gives 'handshake-invalid'", () => {
    const { c, hsI, lookupR } = pair();
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    expect(consumeInitiation(crypto, c, init, 0, lookupR)).toBe('handshake-invalid');
  });

  test("a replayed initiation gives 'initiation-replay'", () => {
    const { b, hsI, hsR, lookupR } = pair();
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    expect(consumeInitiation(crypto, b, init, 0, lookupR)).toBe(hsR);
    const after = snapshot(hsR);
    expect(consumeInitiation(crypto, b, init, 5_000, lookupR)).toBe('initiation-replay');
    expect(snapshot(hsR)).toEqual(after);
    // An older timestamp is a replay as well, and so is an equal one in a fresh message.
    const older = hsI.createInitiation(2, ephemeral(), tai64n(WALL - 1_000))!;
    expect(consumeInitiation(crypto, b, older, 10_000, lookupR)).toBe('initiation-replay');
    const same = hsI.createInitiation(3, ephemeral(), tai64n(WALL))!;
    expect(consumeInitiation(crypto, b, same, 10_000, lookupR)).toBe('initiation-replay');
  });

  test("two initiations 10 ms apart give 'initiation-flood'; the rate limit is per peer", () => {
    const { b, c, hsI, hsR, hsRc, lookupR } = pair();
    const first = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    expect(consumeInitiation(crypto, b, first, 1_000, lookupR)).toBe(hsR);
    const second = hsI.createInitiation(2, ephemeral(), tai64n(WALL + 1_000))!;
    const after = snapshot(hsR);
    expect(consumeInitiation(crypto, b, second, 1_010, lookupR)).toBe('initiation-flood');
    expect(
      consumeInitiation(crypto, b, second, 1_000 + HANDSHAKE_INITIATION_RATE_MS, lookupR),
    ).toBe('initiation-flood');
    expect(snapshot(hsR)).toEqual(after);
    // Another peer is not limited by the first one's initiation.
    const fromC = new Handshake(crypto, c, b.publicKey, null).createInitiation(
      9,
      ephemeral(),
      tai64n(WALL),
    )!;
    expect(consumeInitiation(crypto, b, fromC, 1_010, lookupR)).toBe(hsRc);
    // Once the rate interval has passed, the same message is accepted.
    expect(
      consumeInitiation(crypto, b, second, 1_001 + HANDSHAKE_INITIATION_RATE_MS, lookupR),
    ).toBe(hsR);
    expect(hsR.remoteIndex).toBe(2);
  });

  test("a low-order ephemeral gives 'low-order-point'", () => {
    const { b, hsI, hsR, lookupR } = pair();
    for (const point of x25519Vectors.low_order_points.points) {
      const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
      init.set(bytes(point), 8);
      const before = snapshot(hsR);
      expect(consumeInitiation(crypto, b, init, 0, lookupR)).toBe('low-order-point');
      expect(snapshot(hsR)).toEqual(before);
    }
  });

  test("wrong lengths or types give 'malformed'", () => {
    const { b, hsI, lookupR, lookupI, a } = pair();
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    expect(consumeInitiation(crypto, b, init.subarray(0, 147), 0, lookupR)).toBe('malformed');
    expect(consumeResponse(crypto, a, init, lookupI)).toBe('malformed');
  });
});

describe('consumeResponse drops', () => {
  test("an unknown index or a handshake not waiting for a response gives 'unexpected-response'", () => {
    const { a, b, hsI, hsR, lookupR, lookupI } = pair();
    const init = hsI.createInitiation(5, ephemeral(), tai64n(WALL))!;
    consumeInitiation(crypto, b, init, 0, lookupR);
    const resp = hsR.createResponse(6, ephemeral())!;
    expect(consumeResponse(crypto, a, resp, () => undefined)).toBe('unexpected-response');
    // The index-table entry points at a handshake whose own index differs.
    const other = new Handshake(crypto, a, b.publicKey, null);
    other.createInitiation(77, ephemeral(), tai64n(WALL));
    expect(consumeResponse(crypto, a, resp, () => other)).toBe('unexpected-response');
    expect(consumeResponse(crypto, a, resp, lookupI)).toBe(hsI);
    // A second copy arrives after the first was consumed.
    expect(consumeResponse(crypto, a, resp, lookupI)).toBe('unexpected-response');
    hsI.deriveKeys();
    expect(consumeResponse(crypto, a, resp, lookupI)).toBe('unexpected-response');
  });

  test('a response to an older initiation fails after a new one was created', () => {
    const { a, b, hsI, hsR, lookupR } = pair();
    const init = hsI.createInitiation(5, ephemeral(), tai64n(WALL))!;
    consumeInitiation(crypto, b, init, 0, lookupR);
    const resp = hsR.createResponse(6, ephemeral())!;
    hsI.createInitiation(5, ephemeral(), tai64n(WALL + 1_000));
    expect(consumeResponse(crypto, a, resp, () => hsI)).toBe('handshake-invalid');
  });
});

describe('state rules', () => {
  test('createResponse and deriveKeys need the right state; clear wipes', () => {
    const { b, hsI, hsR, lookupR } = pair();
    expect(hsR.createResponse(1, ephemeral())).toBeNull();
    expect(hsR.deriveKeys()).toBeNull();
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    expect(hsI.deriveKeys()).toBeNull();
    expect(hsI.createResponse(1, ephemeral())).toBeNull();
    expect(hsI.state).toBe('initiation-created');
    consumeInitiation(crypto, b, init, 0, lookupR);
    expect(hsR.deriveKeys()).toBeNull();
    hsR.clear();
    expect(hsR.state).toBe('zeroed');
    expect(hex(hsR.chainingKey)).toBe('00'.repeat(32));
    expect(hex(hsR.hash)).toBe('00'.repeat(32));
    expect(hex(hsR.remoteEphemeral)).toBe('00'.repeat(32));
    expect(hsR.lastTimestamp).not.toBeNull(); // replay memory outlives the handshake
    expect(hsR.createResponse(1, ephemeral())).toBeNull();
  });

  test('a low-order peer key makes the static-static DH zero: nothing is created or consumed', () => {
    const { a, b, lookupR } = pair();
    const bad = new Handshake(crypto, a, new Uint8Array(32), null);
    expect(hex(bad.precomputedStaticStatic)).toBe('00'.repeat(32));
    expect(bad.createInitiation(1, ephemeral(), tai64n(WALL))).toBeNull();
    expect(bad.state).toBe('zeroed');
    // The responder side: its Handshake for the initiator has a zero static-static DH.
    const { hsI } = pair();
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    const zeroed = new Handshake(crypto, b, a.publicKey, null);
    zeroed.setLocal(null);
    expect(consumeInitiation(crypto, b, init, 0, () => zeroed)).toBe('low-order-point');
    void lookupR;
  });

  test('setLocal recomputes the static-static DH and clears the handshake in progress', () => {
    const { a, b, hsI } = pair();
    const ss = hex(hsI.precomputedStaticStatic);
    hsI.createInitiation(1, ephemeral(), tai64n(WALL));
    hsI.setLocal(null);
    expect(hsI.state).toBe('zeroed');
    expect(hex(hsI.precomputedStaticStatic)).toBe('00'.repeat(32));
    expect(hsI.createInitiation(1, ephemeral(), tai64n(WALL))).toBeNull();
    hsI.setLocal(b);
    expect(hex(hsI.precomputedStaticStatic)).toBe(hex(crypto.x25519(b.privateKey, b.publicKey)));
    hsI.setLocal(a);
    expect(hex(hsI.precomputedStaticStatic)).toBe(ss);
  });

  test('argument errors throw at once', () => {
    const { a, b, hsI } = pair();
    expect(() => new LocalIdentity(crypto, new Uint8Array(31))).toThrow(RangeError);
    expect(() => new Handshake(crypto, a, new Uint8Array(33), null)).toThrow(RangeError);
    expect(() => new Handshake(crypto, a, b.publicKey, new Uint8Array(1))).toThrow(RangeError);
    expect(() => hsI.createInitiation(-1, ephemeral(), tai64n(WALL))).toThrow(RangeError);
    expect(() => hsI.createInitiation(2 ** 32, ephemeral(), tai64n(WALL))).toThrow(RangeError);
    expect(() => hsI.createInitiation(1, new Uint8Array(32), new Uint8Array(11))).toThrow(
      RangeError,
    );
    expect(() => {
      hsI.presharedKey = new Uint8Array(16);
    }).toThrow(RangeError);
    expect(hsI.state).toBe('zeroed');
  });

  test('secrets stay out of inspect and JSON', async () => {
    const { inspect } = await import('node:util');
    const { a, hsI, b } = pair(secret('psk'));
    hsI.createInitiation(1, ephemeral(), tai64n(WALL));
    const privHex = hex(a.privateKey);
    for (const shown of [
      inspect(a, { depth: 5 }),
      inspect(hsI, { depth: 5 }),
      JSON.stringify(a),
      JSON.stringify(hsI),
    ]) {
      expect(shown).not.toContain(privHex);
      expect(shown).not.toContain(hex(secret('psk')));
      expect(shown).not.toContain('chainingKey');
    }
    expect(hex(b.publicKey)).toHaveLength(64);
  });
});

/** A RandomSource for tests: a counter stream, so runs repeat. */
function counterRandom(seed: number) {
  let n = seed;
  return (out: Uint8Array) => {
    for (let i = 0; i < out.length; i++) out[i] = (n++ * 131 + 7) & 0xff;
  };
}

/**
 * The responder's receive path for a handshake message under load: mac1, then mac2 (a cookie is
 * demanded), then the handshake itself.
 */
function receive(
  checker: CookieChecker,
  source: Uint8Array,
  consume: (m: Uint8Array) => Handshake | string,
  m: Uint8Array,
): Handshake | string {
  if (!checker.checkMac1(m)) return 'mac1-invalid';
  if (!checker.checkMac2(m, source, 0)) return 'mac2-missing';
  return consume(m);
}

/** Gives `gen` a cookie from `checker`, then re-MACs `msg` so it carries a valid mac2. */
function withCookie(
  checker: CookieChecker,
  gen: CookieGenerator,
  source: Uint8Array,
  msg: Uint8Array,
) {
  gen.addMacs(msg, 0);
  const reply = checker.createReply(msg, source, 0, counterRandom(1));
  expect(gen.consumeReply(reply, 0)).toBe(true);
  gen.addMacs(msg, 0);
  expect(hex(msg.subarray(msg.length - 16))).not.toBe('00'.repeat(16));
}

/** (position, xor mask, re-MAC?) with the sender index left out of re-MACed cases. */
function mutation(length: number, mac1Offset: number) {
  const mask = fc.integer({ min: 1, max: 255 });
  return fc.oneof(
    fc.tuple(fc.integer({ min: 0, max: length - 1 }), mask, fc.constant(false)),
    fc.tuple(
      fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 8, max: mac1Offset - 1 })),
      mask,
      fc.constant(true),
    ),
  );
}

function reMac(gen: CookieGenerator, m: Uint8Array): void {
  try {
    gen.addMacs(m, 0);
  } catch (e) {
    // A changed type or reserved byte: no longer a handshake message, nothing to MAC.
    expect(e).toBeInstanceOf(RangeError);
  }
}

describe('mutations and garbage (property)', () => {
  const source = Uint8Array.of(192, 0, 2, 1, 0xca, 0x6c);

  test('every single-byte change of a valid initiation is dropped and changes no handshake', () => {
    const { b, hsI, hsR, hsRc, lookupR } = pair();
    const checker = new CookieChecker(crypto, b);
    const gen = new CookieGenerator(crypto, b.publicKey);
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    withCookie(checker, gen, source, init);
    // The unmutated message passes the whole path (on a responder with the same keys).
    const twin = pair();
    expect(
      receive(checker, source, (m) => consumeInitiation(crypto, b, m, 0, twin.lookupR), init),
    ).toBe(twin.hsR);

    const before = [snapshot(hsR), snapshot(hsRc)];
    const consume = (m: Uint8Array) => consumeInitiation(crypto, b, m, 0, lookupR);
    fc.assert(
      fc.property(mutation(init.length, 116), ([pos, mask, again]) => {
        const m = init.slice();
        m[pos]! ^= mask;
        if (again) reMac(gen, m);
        const r = receive(checker, source, consume, m);
        expect(typeof r).toBe('string');
        if (again && pos >= 8) expect(r).not.toMatch(/^mac/);
        expect([snapshot(hsR), snapshot(hsRc)]).toEqual(before);
      }),
      { numRuns: 400 },
    );
  });

  test('every single-byte change of a valid response is dropped and changes no handshake', () => {
    const { a, b, hsI, hsR, lookupR, lookupI } = pair();
    const checker = new CookieChecker(crypto, a);
    const gen = new CookieGenerator(crypto, a.publicKey);
    const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
    consumeInitiation(crypto, b, init, 0, lookupR);
    const resp = hsR.createResponse(2, ephemeral())!;
    withCookie(checker, gen, source, resp);

    const before = snapshot(hsI);
    const consume = (m: Uint8Array) => consumeResponse(crypto, a, m, lookupI);
    fc.assert(
      fc.property(mutation(resp.length, 60), ([pos, mask, again]) => {
        const m = resp.slice();
        m[pos]! ^= mask;
        if (again) reMac(gen, m);
        const r = receive(checker, source, consume, m);
        expect(typeof r).toBe('string');
        if (again && pos >= 8) expect(r).not.toMatch(/^mac/);
        expect(snapshot(hsI)).toEqual(before);
      }),
      { numRuns: 400 },
    );
    // The unmutated response still completes the handshake afterwards.
    expect(receive(checker, source, consume, resp)).toBe(hsI);
  });

  test('sender indices rest on mac1 alone: a re-MACed index change is accepted (whitepaper §5.4)', () => {
    {
      const { b, hsI, hsR, lookupR } = pair();
      const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
      init[4]! ^= 0x80;
      new CookieGenerator(crypto, b.publicKey).addMacs(init, 0);
      expect(consumeInitiation(crypto, b, init, 0, lookupR)).toBe(hsR);
      expect(hsR.remoteIndex).toBe(1 ^ 0x80);
    }
    {
      const { a, b, hsI, hsR, lookupR, lookupI } = pair();
      const init = hsI.createInitiation(1, ephemeral(), tai64n(WALL))!;
      consumeInitiation(crypto, b, init, 0, lookupR);
      const resp = hsR.createResponse(2, ephemeral())!;
      resp[5]! ^= 0x01;
      new CookieGenerator(crypto, a.publicKey).addMacs(resp, 0);
      expect(consumeResponse(crypto, a, resp, lookupI)).toBe(hsI);
      expect(hsI.remoteIndex).toBe(2 ^ 0x100);
    }
  });

  test('random bytes never throw', () => {
    const { a, b, lookupR, lookupI } = pair();
    const checkerB = new CookieChecker(crypto, b);
    const gen = new CookieGenerator(crypto, b.publicKey);
    gen.addMacs(
      new Handshake(crypto, a, b.publicKey, null).createInitiation(1, ephemeral(), tai64n(WALL))!,
      0,
    );
    const shaped = (len: number, type: number) =>
      fc.uint8Array({ minLength: len, maxLength: len }).map((u) => {
        u.set([type, 0, 0, 0]);
        return u;
      });
    const anyMessage = fc.oneof(
      shaped(148, 1),
      shaped(92, 2),
      shaped(64, 3),
      fc.uint8Array({ maxLength: 200 }),
    );
    fc.assert(
      fc.property(anyMessage, fc.uint8Array({ maxLength: 18 }), (m, src) => {
        expect(() => {
          checkerB.checkMac1(m);
          checkerB.checkMac2(m, src, 0);
          expect(typeof consumeInitiation(crypto, b, m, 0, lookupR)).toBe('string');
          expect(typeof consumeResponse(crypto, a, m, lookupI)).toBe('string');
          expect(gen.consumeReply(m, 0)).toBe(false);
        }).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });
});
