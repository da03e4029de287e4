import { describe, expect, test } from 'vitest';
import { COOKIE_REFRESH_TIME_MS } from '../src/constants.js';
import { nobleCrypto } from '../src/crypto/noble.js';
import { CookieChecker, CookieGenerator, endpointBytes } from '../src/cookie.js';
import { consumeInitiation, Handshake, LocalIdentity } from '../src/handshake.js';
import { readCookieReply, readInitiation } from '../src/messages.js';
import { tai64n } from '../src/tai64n.js';

const crypto = nobleCrypto;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const secret = (label: string) => crypto.hash(new Uint8Array(Buffer.from(label)));
const ZERO16 = '00'.repeat(16);
const T0 = 50_000;

/** A counting RandomSource: every draw differs, runs repeat, and draws are observable. */
function countingRandom() {
  let n = 1;
  const draws: number[] = [];
  const random = (out: Uint8Array) => {
    draws.push(out.length);
    for (let i = 0; i < out.length; i++) out[i] = (n * 97 + i * 13) & 0xff;
    n++;
  };
  return { random, draws };
}

function setup() {
  const initiator = new LocalIdentity(crypto, secret('cookie initiator'));
  const responder = new LocalIdentity(crypto, secret('cookie responder'));
  const hsI = new Handshake(crypto, initiator, responder.publicKey, null);
  const checker = new CookieChecker(crypto, responder);
  const gen = new CookieGenerator(crypto, responder.publicKey);
  let e = 0;
  let wall = 1_700_000_000_000;
  const initiation = (index: number) => {
    wall += 1_000;
    return hsI.createInitiation(index, secret(`eph ${e++}`), tai64n(wall))!;
  };
  return { initiator, responder, hsI, checker, gen, initiation };
}

const source = endpointBytes({ ip: '192.0.2.1', port: 51820 });

describe('mac1', () => {
  test('the generator writes a mac1 the checker accepts; a wrong key or byte fails', () => {
    const { initiator, checker, gen, initiation } = setup();
    const m = initiation(7);
    gen.addMacs(m, T0);
    expect(checker.checkMac1(m)).toBe(true);
    expect(hex(readInitiation(m)!.mac2)).toBe(ZERO16);
    expect(new CookieChecker(crypto, initiator).checkMac1(m)).toBe(false);
    m[50]! ^= 1;
    expect(checker.checkMac1(m)).toBe(false);
    expect(checker.checkMac1(m.subarray(0, 147))).toBe(false);
    expect(new CookieChecker(crypto, null).checkMac1(m)).toBe(false);
  });

  test('setLocal switches the mac1 key', () => {
    const { initiator, responder, checker, gen, initiation } = setup();
    const m = initiation(1);
    gen.addMacs(m, T0);
    checker.setLocal(initiator);
    expect(checker.checkMac1(m)).toBe(false);
    checker.setLocal(responder);
    expect(checker.checkMac1(m)).toBe(true);
  });
});

describe('cookie round trip (whitepaper §5.4.7)', () => {
  test('reply, consume, then mac2 validates for the same source only', () => {
    const { initiator, responder, checker, gen, initiation } = setup();
    const { random, draws } = countingRandom();
    const first = initiation(0x01020304);
    gen.addMacs(first, T0);
    expect(checker.checkMac1(first)).toBe(true);
    expect(checker.checkMac2(first, source, T0)).toBe(false); // no secret yet

    const reply = checker.createReply(first, source, T0, random);
    expect(reply.length).toBe(64);
    expect(draws).toEqual([32, 24]); // the secret, lazily, then the nonce
    const r = readCookieReply(reply)!;
    expect(r.receiverIndex).toBe(0x01020304);
    expect(hex(reply.subarray(0, 8))).toBe('0300000004030201');

    expect(gen.consumeReply(reply, T0 + 10)).toBe(true);
    const second = initiation(2);
    gen.addMacs(second, T0 + 1_000);
    expect(hex(readInitiation(second)!.mac2)).not.toBe(ZERO16);
    expect(checker.checkMac1(second)).toBe(true);
    expect(checker.checkMac2(second, source, T0 + 1_000)).toBe(true);
    // A different address or port is a different cookie.
    expect(
      checker.checkMac2(second, endpointBytes({ ip: '192.0.2.2', port: 51820 }), T0 + 1_000),
    ).toBe(false);
    expect(
      checker.checkMac2(second, endpointBytes({ ip: '192.0.2.1', port: 51821 }), T0 + 1_000),
    ).toBe(false);
    // The message with its mac2 still goes through the handshake.
    const hsR = new Handshake(crypto, responder, initiator.publicKey, null);
    expect(consumeInitiation(crypto, responder, second, T0, () => hsR)).toBe(hsR);
  });

  test('the secret is reused while fresh and redrawn after COOKIE_REFRESH_TIME_MS', () => {
    const { checker, gen, initiation } = setup();
    const { random, draws } = countingRandom();
    const m = initiation(1);
    gen.addMacs(m, T0);
    checker.createReply(m, source, T0, random);
    checker.createReply(m, source, T0 + COOKIE_REFRESH_TIME_MS - 1, random);
    expect(draws).toEqual([32, 24, 24]);
    checker.createReply(m, source, T0 + COOKIE_REFRESH_TIME_MS, random);
    expect(draws).toEqual([32, 24, 24, 32, 24]);
  });

  test('a cookie older than COOKIE_REFRESH_TIME_MS is not used', () => {
    const { checker, gen, initiation } = setup();
    const { random } = countingRandom();
    const m = initiation(1);
    gen.addMacs(m, T0);
    expect(gen.consumeReply(checker.createReply(m, source, T0, random), T0)).toBe(true);
    const fresh = initiation(2);
    gen.addMacs(fresh, T0 + COOKIE_REFRESH_TIME_MS - 1);
    expect(hex(readInitiation(fresh)!.mac2)).not.toBe(ZERO16);
    expect(checker.checkMac2(fresh, source, T0 + COOKIE_REFRESH_TIME_MS - 1)).toBe(true);
    const stale = initiation(3);
    stale.fill(0xee, 132); // stale bytes must be overwritten with zeros
    gen.addMacs(stale, T0 + 120_001);
    expect(hex(readInitiation(stale)!.mac2)).toBe(ZERO16);
    expect(checker.checkMac1(stale)).toBe(true);
    // And the checker's secret has expired too: even the fresh message's mac2 no longer counts.
    expect(checker.checkMac2(fresh, source, T0 + COOKIE_REFRESH_TIME_MS)).toBe(false);
  });

  test('consumeReply rejects tampering, a reply to an older mac1, and replies before any send', () => {
    const { checker, gen, initiation } = setup();
    const { random } = countingRandom();
    const fresh = new CookieGenerator(
      crypto,
      new LocalIdentity(crypto, secret('cookie responder')).publicKey,
    );
    const m = initiation(1);
    gen.addMacs(m, T0);
    const reply = checker.createReply(m, source, T0, random);
    expect(fresh.consumeReply(reply, T0)).toBe(false); // it never sent a mac1

    // Byte 4..7 (receiver index) only routes the reply to this peer; the device checks it.
    for (const pos of [0, 1, 8, 31, 32, 63]) {
      const bad = reply.slice();
      bad[pos]! ^= 0x10;
      expect(gen.consumeReply(bad, T0)).toBe(false);
    }
    expect(gen.consumeReply(reply.subarray(0, 63), T0)).toBe(false);
    // No cookie taken: mac2 stays zero.
    const next = initiation(2);
    gen.addMacs(next, T0);
    expect(hex(readInitiation(next)!.mac2)).toBe(ZERO16);
    // The reply answers the first message's mac1, but the generator has sent another since.
    expect(gen.consumeReply(reply, T0)).toBe(false);
    // A reply sealed for another peer's key fails too.
    const other = new CookieChecker(crypto, new LocalIdentity(crypto, secret('someone else')));
    expect(gen.consumeReply(other.createReply(next, source, T0, random), T0)).toBe(false);
    expect(gen.consumeReply(checker.createReply(next, source, T0, random), T0)).toBe(true);
  });

  test('cookie reply to a response uses the response sender index', () => {
    const initiator = new LocalIdentity(crypto, secret('i'));
    const responder = new LocalIdentity(crypto, secret('r'));
    const hsI = new Handshake(crypto, initiator, responder.publicKey, null);
    const hsR = new Handshake(crypto, responder, initiator.publicKey, null);
    const init = hsI.createInitiation(5, secret('e1'), tai64n(1_700_000_000_000))!;
    consumeInitiation(crypto, responder, init, 0, () => hsR);
    const resp = hsR.createResponse(0xaabbccdd, secret('e2'))!;
    const genR = new CookieGenerator(crypto, initiator.publicKey);
    genR.addMacs(resp, 0);
    const checkerI = new CookieChecker(crypto, initiator);
    expect(checkerI.checkMac1(resp)).toBe(true);
    const reply = checkerI.createReply(resp, source, 0, countingRandom().random);
    expect(readCookieReply(reply)!.receiverIndex).toBe(0xaabbccdd);
    expect(genR.consumeReply(reply, 0)).toBe(true);
  });

  test('programmer errors throw', () => {
    const { checker, gen } = setup();
    const { random } = countingRandom();
    expect(() => gen.addMacs(new Uint8Array(100), 0)).toThrow(RangeError);
    expect(() => checker.createReply(new Uint8Array(64), source, 0, random)).toThrow(RangeError);
    expect(() =>
      new CookieChecker(crypto, null).createReply(
        new Uint8Array(148).fill(1, 0, 1),
        source,
        0,
        random,
      ),
    ).toThrow(RangeError);
    expect(() => new CookieGenerator(crypto, new Uint8Array(31))).toThrow(RangeError);
  });
});

describe('endpointBytes', () => {
  test('IPv4 address then big-endian port', () => {
    expect(hex(endpointBytes({ ip: '192.0.2.1', port: 51820 }))).toBe('c0000201ca6c');
    expect(hex(endpointBytes({ ip: '0.0.0.0', port: 0 }))).toBe('000000000000');
    expect(hex(endpointBytes({ ip: '255.255.255.255', port: 65535 }))).toBe('ffffffffffff');
  });
  test('IPv6 forms', () => {
    expect(hex(endpointBytes({ ip: '2001:db8::1', port: 1 }))).toBe(
      '20010db8000000000000000000000001' + '0001',
    );
    expect(hex(endpointBytes({ ip: '::', port: 256 }))).toBe('00'.repeat(16) + '0100');
    expect(hex(endpointBytes({ ip: '::ffff:192.0.2.1', port: 2 }))).toBe(
      '00000000000000000000ffffc0000201' + '0002',
    );
    expect(hex(endpointBytes({ ip: 'fe80::1%eth0', port: 3 }))).toBe(
      'fe800000000000000000000000000001' + '0003',
    );
    expect(hex(endpointBytes({ ip: '1:2:3:4:5:6:7:8', port: 4 }))).toBe(
      '00010002000300040005000600070008' + '0004',
    );
    expect(hex(endpointBytes({ ip: 'FFFF::', port: 4 }))).toBe('ffff' + '00'.repeat(14) + '0004');
  });
  test('rejects what is not an address or a port', () => {
    for (const address of [
      '',
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      '01.2.3.4',
      'a.b.c.d',
      '1::2::3',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7',
      '12345::',
      '1.2.3.4::',
      ':1',
      'example.com',
    ]) {
      expect(() => endpointBytes({ ip: address, port: 1 }), address).toThrow(RangeError);
    }
    for (const port of [-1, 65536, 1.5, Number.NaN]) {
      expect(() => endpointBytes({ ip: '1.2.3.4', port })).toThrow(RangeError);
    }
  });
});
