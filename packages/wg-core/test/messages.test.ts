import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
} from '../src/constants.js';
import * as M from '../src/messages.js';
import constants from './vectors/wireguard-constants.json' with { type: 'json' };
import capture from './vectors/wireguard-handshake-wireshark.json' with { type: 'json' };

const bytes = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function offsetsOf(layout: { name: string; offset: number }[]): Record<string, number> {
  return Object.fromEntries(layout.map((f) => [f.name, f.offset]));
}

describe('offsets match wireguard-constants.json', () => {
  test('initiation', () => {
    const o = offsetsOf(constants.layouts.handshake_initiation);
    expect(M.INITIATION_SENDER_INDEX_OFFSET).toBe(o.sender_index_le32);
    expect(M.INITIATION_EPHEMERAL_OFFSET).toBe(o.unencrypted_ephemeral);
    expect(M.INITIATION_STATIC_OFFSET).toBe(o.encrypted_static);
    expect(M.INITIATION_TIMESTAMP_OFFSET).toBe(o.encrypted_timestamp);
    expect(M.INITIATION_MAC1_OFFSET).toBe(o.mac1);
    expect(M.INITIATION_MAC2_OFFSET).toBe(o.mac2);
    expect(M.INITIATION_MAC2_OFFSET + 16).toBe(constants.sizes.handshake_initiation);
  });
  test('response', () => {
    const o = offsetsOf(constants.layouts.handshake_response);
    expect(M.RESPONSE_SENDER_INDEX_OFFSET).toBe(o.sender_index_le32);
    expect(M.RESPONSE_RECEIVER_INDEX_OFFSET).toBe(o.receiver_index_le32);
    expect(M.RESPONSE_EPHEMERAL_OFFSET).toBe(o.unencrypted_ephemeral);
    expect(M.RESPONSE_EMPTY_OFFSET).toBe(o.encrypted_nothing);
    expect(M.RESPONSE_MAC1_OFFSET).toBe(o.mac1);
    expect(M.RESPONSE_MAC2_OFFSET).toBe(o.mac2);
    expect(M.RESPONSE_MAC2_OFFSET + 16).toBe(constants.sizes.handshake_response);
  });
  test('cookie reply and transport', () => {
    const c = offsetsOf(constants.layouts.cookie_reply);
    expect(M.COOKIE_REPLY_RECEIVER_INDEX_OFFSET).toBe(c.receiver_index_le32);
    expect(M.COOKIE_REPLY_NONCE_OFFSET).toBe(c.nonce);
    expect(M.COOKIE_REPLY_COOKIE_OFFSET).toBe(c.encrypted_cookie);
    expect(M.COOKIE_REPLY_COOKIE_OFFSET + M.COOKIE_REPLY_COOKIE_LEN).toBe(
      constants.sizes.cookie_reply,
    );
    const t = offsetsOf(constants.layouts.transport_data);
    expect(M.TRANSPORT_RECEIVER_INDEX_OFFSET).toBe(t.receiver_index_le32);
    expect(M.TRANSPORT_COUNTER_OFFSET).toBe(t.counter_le64);
    expect(M.TRANSPORT_DATA_OFFSET).toBe(t.encrypted_encapsulated_packet);
  });
});

describe('messageType', () => {
  const s1 = capture.session1;
  test('classifies the captured messages', () => {
    expect(M.messageType(bytes(s1.initiation))).toBe(1);
    expect(M.messageType(bytes(s1.response))).toBe(2);
    expect(M.messageType(new Uint8Array(MESSAGE_COOKIE_REPLY_SIZE).fill(3, 0, 1))).toBe(3);
    expect(M.messageType(bytes(s1.transport_initiator_to_responder_counter0))).toBe(4);
  });
  test('rejects wrong lengths, reserved bytes and unknown types', () => {
    const init = bytes(s1.initiation);
    expect(M.messageType(init.subarray(0, MESSAGE_INITIATION_SIZE - 1))).toBe(0);
    expect(M.messageType(new Uint8Array([...init, 0]))).toBe(0);
    for (const i of [1, 2, 3]) {
      const m = init.slice();
      m[i] = 1;
      expect(M.messageType(m)).toBe(0);
    }
    const resp = bytes(s1.response);
    expect(M.messageType(new Uint8Array([...resp, 0]))).toBe(0);
    const keepalive = new Uint8Array(32);
    keepalive[0] = 4;
    expect(M.messageType(keepalive)).toBe(4);
    expect(M.messageType(keepalive.subarray(0, 31))).toBe(0);
    for (const t of [0, 5, 255]) {
      const m = keepalive.slice();
      m[0] = t;
      expect(M.messageType(m)).toBe(0);
    }
    expect(M.messageType(new Uint8Array(0))).toBe(0);
    expect(M.messageType(new Uint8Array([1, 0, 0]))).toBe(0);
  });
  test('never throws and agrees with the readers (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 0, max: 5 }), (b, t) => {
        if (b.length > 0) b[0] = t;
        const type = M.messageType(b);
        expect(M.readInitiation(b) !== null).toBe(type === 1);
        expect(M.readResponse(b) !== null).toBe(type === 2);
        expect(M.readCookieReply(b) !== null).toBe(type === 3);
        expect(M.readTransport(b) !== null).toBe(type === 4);
        expect(M.macOffsets(b) !== null).toBe(type === 1 || type === 2);
      }),
    );
  });
});

describe('readers and writers', () => {
  const s1 = capture.session1;
  test('reading then writing the captured initiation and response is the identity', () => {
    const init = bytes(s1.initiation);
    const i = M.readInitiation(init)!;
    expect(i.senderIndex).toBe(s1.initiator_sender_index);
    expect(hex(i.ephemeral)).toBe(s1.initiator_ephemeral_public_computed);
    expect(hex(M.writeInitiation(i))).toBe(s1.initiation);
    const resp = bytes(s1.response);
    const r = M.readResponse(resp)!;
    expect(r.senderIndex).toBe(s1.responder_sender_index);
    expect(r.receiverIndex).toBe(s1.initiator_sender_index);
    expect(hex(r.ephemeral)).toBe(s1.responder_ephemeral_public_computed);
    expect(hex(M.writeResponse(r))).toBe(s1.response);
  });
  test('reader fields are views into the message', () => {
    const init = bytes(s1.initiation);
    const i = M.readInitiation(init)!;
    init[M.INITIATION_MAC1_OFFSET] = 0xaa;
    expect(i.mac1[0]).toBe(0xaa);
  });
  test('transport header and cookie reply round trip', () => {
    const t = M.readTransport(bytes(s1.transport_responder_to_initiator_counter0))!;
    expect(t.receiverIndex).toBe(s1.initiator_sender_index);
    expect(t.counter).toBe(0n);
    const buf = new Uint8Array(48);
    M.writeTransportHeader(buf, 0xdeadbeef, 2n ** 64n - 1n);
    const back = M.readTransport(buf)!;
    expect(back.receiverIndex).toBe(0xdeadbeef);
    expect(back.counter).toBe(2n ** 64n - 1n);
    expect(back.encryptedPacket.length).toBe(32);
    const reply = M.writeCookieReply({
      receiverIndex: 7,
      nonce: new Uint8Array(24).fill(1),
      encryptedCookie: new Uint8Array(32).fill(2),
    });
    expect(reply.length).toBe(MESSAGE_COOKIE_REPLY_SIZE);
    const c = M.readCookieReply(reply)!;
    expect(c.receiverIndex).toBe(7);
    expect(c.nonce.every((x) => x === 1)).toBe(true);
    expect(c.encryptedCookie.every((x) => x === 2)).toBe(true);
  });
  test('little-endian integers', () => {
    const b = new Uint8Array(8);
    M.writeLe32(b, 0, 0x01020304);
    expect(hex(b.subarray(0, 4))).toBe('04030201');
    expect(M.readLe32(b, 0)).toBe(0x01020304);
    M.writeLe32(b, 4, 0xffffffff);
    expect(M.readLe32(b, 4)).toBe(0xffffffff);
    M.writeLe64(b, 0, 0x0102030405060708n);
    expect(hex(b)).toBe('0807060504030201');
    expect(M.readLe64(b, 0)).toBe(0x0102030405060708n);
  });
  test('programmer errors throw RangeError', () => {
    const b = new Uint8Array(8);
    expect(() => M.readLe32(b, 5)).toThrow(RangeError);
    expect(() => M.readLe64(b, 1)).toThrow(RangeError);
    expect(() => M.writeLe32(b, 0, -1)).toThrow(RangeError);
    expect(() => M.writeLe32(b, 0, 2 ** 32)).toThrow(RangeError);
    expect(() => M.writeLe64(b, 0, 2n ** 64n)).toThrow(RangeError);
    expect(() => M.writeTransportHeader(new Uint8Array(31), 0, 0n)).toThrow(RangeError);
    const i = M.readInitiation(bytes(s1.initiation))!;
    expect(() => M.writeInitiation({ ...i, ephemeral: new Uint8Array(31) })).toThrow(RangeError);
    expect(
      M.writeResponse({ ...M.readResponse(bytes(s1.response))!, mac1: undefined }).length,
    ).toBe(MESSAGE_RESPONSE_SIZE);
  });
});
