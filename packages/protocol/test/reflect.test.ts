import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PROBE_LENGTH,
  REPLY_LENGTH,
  decodeReply,
  encodeProbe,
  encodeReply,
  isProbe,
  isReply,
} from '../src/index.js';

const TXID = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);

describe('endpoint reflection messages', () => {
  it('never answers with more bytes than the probe', () => {
    expect(REPLY_LENGTH).toBeLessThanOrEqual(PROBE_LENGTH);
    expect(encodeProbe(TXID)).toHaveLength(PROBE_LENGTH);
  });

  it('round-trips an IPv4 address, port and txid', () => {
    const reply = encodeReply(encodeProbe(TXID), '203.0.113.7', 40001);
    expect(reply).not.toBeNull();
    expect(reply).toHaveLength(REPLY_LENGTH);
    expect(decodeReply(reply!)).toEqual({ txid: TXID, ip: '203.0.113.7', port: 40001 });
  });

  it('round-trips IPv6, including compressed and v4-mapped forms', () => {
    const probe = encodeProbe(TXID);
    expect(decodeReply(encodeReply(probe, 'fd00:8::1', 1)!)?.ip).toBe('fd00:8:0:0:0:0:0:1');
    expect(decodeReply(encodeReply(probe, '::ffff:1.2.3.4', 1)!)?.ip).toBe(
      '0:0:0:0:0:ffff:102:304',
    );
    expect(decodeReply(encodeReply(probe, '::', 1)!)?.ip).toBe('0:0:0:0:0:0:0:0');
    expect(encodeReply(probe, '1::2::3', 1)).toBeNull();
    expect(encodeReply(probe, '1:2:3:4:5:6:7:8:9', 1)).toBeNull();
  });

  it('does not answer things that are not probes', () => {
    const probe = encodeProbe(TXID);
    expect(encodeReply(probe.subarray(0, PROBE_LENGTH - 1), '1.2.3.4', 1)).toBeNull();
    const wgInitiation = new Uint8Array(148);
    wgInitiation[0] = 1;
    expect(isProbe(wgInitiation)).toBe(false);
    expect(isReply(wgInitiation)).toBe(false);
    expect(encodeReply(probe, 'not-an-ip', 1)).toBeNull();
    expect(() => encodeProbe(new Uint8Array(7))).toThrow(RangeError);
  });

  it('decodeReply and encodeReply never throw on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.string(), (bytes, ip) => {
        decodeReply(bytes);
        encodeReply(bytes, ip, 1);
      }),
    );
  });
});
