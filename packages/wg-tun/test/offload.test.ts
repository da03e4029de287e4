/**
 * TUN offloads (src/native/offload.c through src/offload.ts) against a naive model of the kernel:
 * super-segments built as Linux hands them to a TUN with IFF_VNET_HDR (virtio_net_hdr, partial
 * checksum) split into exactly the packets the model's GSO makes, and coalescing undone by
 * splitting, byte for byte, for random TCP/UDP streams over IPv4/IPv6 with options and odd sizes.
 * Malformed reads are drops, never crashes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { coalesceTunWrites, splitTunRead } from '../src/offload.js';

const VNET = 10;
const F_NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_UDP = 3;
const GSO_TCPV6 = 4;
const GSO_UDP_L4 = 5;
const TCP = 6;
const UDP = 17;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;
const CWR = 0x80;
const MAX_COALESCED = 64;

// ---------------------------------------------------------------- the model

function sum16(b: Uint8Array, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < b.length; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2 === 1) s += b[b.length - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

function pseudo(ip: Uint8Array, v6: boolean, proto: number, l4len: number): number {
  const addrs = v6 ? ip.subarray(8, 40) : ip.subarray(12, 20);
  return sum16(addrs, proto + (l4len >>> 16) + (l4len & 0xffff));
}

const put16 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
};
const put32 = (b: Uint8Array, at: number, v: number): void => {
  put16(b, at, v >>> 16);
  put16(b, at + 2, v & 0xffff);
};
const get16 = (b: Uint8Array, at: number): number => (b[at]! << 8) | b[at + 1]!;

interface Flow {
  v6: boolean;
  proto: number;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
  /** IPv4 TOS / IPv6 traffic class, TTL / hop limit. */
  tos: number;
  ttl: number;
  /** TCP only. */
  options: Uint8Array;
  ack: number;
  window: number;
}

/** One IP packet of the flow; checksums complete unless `partial` (then the L4 field holds the pseudo-header sum). */
function packet(
  f: Flow,
  payload: Uint8Array,
  fields: { id: number; seq: number; flags: number },
  partial = false,
): Uint8Array {
  const ihl = f.v6 ? 40 : 20;
  const l4hl = f.proto === TCP ? 20 + f.options.length : 8;
  const p = new Uint8Array(ihl + l4hl + payload.length);
  const l4len = l4hl + payload.length;
  if (f.v6) {
    p[0] = 0x60 | (f.tos >>> 4);
    p[1] = (f.tos & 15) << 4;
    put16(p, 4, l4len);
    p[6] = f.proto;
    p[7] = f.ttl;
    p.set(f.src, 8);
    p.set(f.dst, 24);
  } else {
    p[0] = 0x45;
    p[1] = f.tos;
    put16(p, 2, p.length);
    put16(p, 4, fields.id & 0xffff);
    put16(p, 6, 0x4000); // DF
    p[8] = f.ttl;
    p[9] = f.proto;
    p.set(f.src, 12);
    p.set(f.dst, 16);
    put16(p, 10, ~sum16(p.subarray(0, 20)) & 0xffff);
  }
  put16(p, ihl, f.sport);
  put16(p, ihl + 2, f.dport);
  if (f.proto === TCP) {
    put32(p, ihl + 4, fields.seq >>> 0);
    put32(p, ihl + 8, f.ack >>> 0);
    p[ihl + 12] = (l4hl / 4) << 4;
    p[ihl + 13] = fields.flags;
    put16(p, ihl + 14, f.window);
    p.set(f.options, ihl + 20);
  } else {
    put16(p, ihl + 4, l4len);
  }
  p.set(payload, ihl + l4hl);
  const csumAt = ihl + (f.proto === TCP ? 16 : 6);
  const ps = pseudo(p, f.v6, f.proto, l4len);
  if (partial) {
    put16(p, csumAt, ps);
  } else {
    let c = ~sum16(p.subarray(ihl), ps) & 0xffff;
    if (c === 0 && f.proto === UDP) c = 0xffff;
    put16(p, csumAt, c);
  }
  return p;
}

function vnetHeader(fields: {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}): Uint8Array {
  const h = new Uint8Array(VNET);
  const dv = new DataView(h.buffer);
  h[0] = fields.flags;
  h[1] = fields.gsoType;
  dv.setUint16(2, fields.hdrLen, true);
  dv.setUint16(4, fields.gsoSize, true);
  dv.setUint16(6, fields.csumStart, true);
  dv.setUint16(8, fields.csumOffset, true);
  return h;
}

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

interface Stream {
  flow: Flow;
  payload: Uint8Array;
  mss: number;
  id: number;
  seq: number;
  /** The super-segment's TCP flags (ACK, maybe PSH, FIN, CWR). */
  flags: number;
}

/** What Linux's GSO makes of the stream: MSS-sized segments, IDs counting up, PSH/FIN last, CWR first. */
function modelSegments(s: Stream): Uint8Array[] {
  const n = Math.max(1, Math.ceil(s.payload.length / s.mss));
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    let flags = s.flags;
    if (i < n - 1) flags &= ~(PSH | FIN);
    if (i > 0) flags &= ~CWR;
    out.push(
      packet(s.flow, s.payload.subarray(i * s.mss, (i + 1) * s.mss), {
        id: s.id + i,
        seq: s.seq + i * s.mss,
        flags,
      }),
    );
  }
  return out;
}

/** The read a TUN with TSO/USO gives for the stream: one header, one super-segment. */
function superSegment(s: Stream): Uint8Array {
  const p = packet(s.flow, s.payload, { id: s.id, seq: s.seq, flags: s.flags }, true);
  const ihl = s.flow.v6 ? 40 : 20;
  const tcp = s.flow.proto === TCP;
  const hdr = vnetHeader({
    flags: F_NEEDS_CSUM,
    gsoType: tcp ? (s.flow.v6 ? GSO_TCPV6 : GSO_TCPV4) : GSO_UDP_L4,
    hdrLen: ihl + (tcp ? 20 + s.flow.options.length : 8),
    gsoSize: s.mss,
    csumStart: ihl,
    csumOffset: tcp ? 16 : 6,
  });
  return concat(hdr, p);
}

function checksumsValid(p: Uint8Array): boolean {
  const v6 = p[0]! >> 4 === 6;
  const ihl = v6 ? 40 : (p[0]! & 15) * 4;
  if (!v6 && sum16(p.subarray(0, ihl)) !== 0xffff) return false;
  const proto = v6 ? p[6]! : p[9]!;
  return sum16(p.subarray(ihl), pseudo(p, v6, proto, p.length - ihl)) === 0xffff;
}

// ---------------------------------------------------------------- generators

const flowArb = (proto: number): fc.Arbitrary<Flow> =>
  fc.boolean().chain((v6) =>
    fc.record({
      v6: fc.constant(v6),
      proto: fc.constant(proto),
      src: fc.uint8Array({ minLength: v6 ? 16 : 4, maxLength: v6 ? 16 : 4 }),
      dst: fc.uint8Array({ minLength: v6 ? 16 : 4, maxLength: v6 ? 16 : 4 }),
      sport: fc.integer({ min: 1, max: 0xffff }),
      dport: fc.integer({ min: 1, max: 0xffff }),
      tos: fc.integer({ min: 0, max: 0xff }),
      ttl: fc.integer({ min: 1, max: 0xff }),
      options: fc
        .integer({ min: 0, max: 10 })
        .chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
      ack: fc.integer({ min: 0, max: 0xffff_ffff }),
      window: fc.integer({ min: 0, max: 0xffff }),
    }),
  );

/** A stream whose super-segment fits in one IP packet (65535 bytes) and splits into <= 4096. */
const streamArb = (proto: number, flags: fc.Arbitrary<number>): fc.Arbitrary<Stream> =>
  flowArb(proto).chain((flow) => {
    const hl = (flow.v6 ? 40 : 20) + (proto === TCP ? 20 + flow.options.length : 8);
    return fc.record({
      flow: fc.constant(flow),
      mss: fc.oneof(fc.integer({ min: 16, max: 1460 }), fc.constantFrom(536, 1368, 1380, 1448)),
      payload: fc
        .oneof(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 65535 - hl }))
        .chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
      id: fc.integer({ min: 0, max: 0xffff }),
      seq: fc.integer({ min: 0, max: 0xffff_ffff }),
      flags: proto === TCP ? flags : fc.constant(0),
    });
  });

const dataFlags = fc.constantFrom(ACK, ACK | PSH);
const anyFlags = fc.constantFrom(ACK, ACK | PSH, ACK | PSH | FIN, ACK | FIN, ACK | CWR);

const runs = { numRuns: 100 };

// ---------------------------------------------------------------- properties

describe('TUN offload segmentation', () => {
  it('splits a TCP super-segment into exactly the segments Linux GSO makes, checksums valid', () => {
    fc.assert(
      fc.property(streamArb(TCP, anyFlags), (s) => {
        const got = splitTunRead(superSegment(s));
        const want = modelSegments(s);
        expect(got).not.toBeNull();
        expect(got!.length).toBe(want.length);
        got!.forEach((p, i) => {
          expect(checksumsValid(p)).toBe(true);
          expect(Buffer.from(p).equals(Buffer.from(want[i]!))).toBe(true);
        });
      }),
      runs,
    );
  });

  it('splits a UDP super-segment (USO) into datagrams with their own lengths and checksums', () => {
    fc.assert(
      fc.property(streamArb(UDP, fc.constant(0)), (s) => {
        const got = splitTunRead(superSegment(s));
        const want = modelSegments(s);
        expect(got).not.toBeNull();
        expect(got!.map((p) => Buffer.from(p).toString('hex'))).toEqual(
          want.map((p) => Buffer.from(p).toString('hex')),
        );
        for (const p of got!) expect(checksumsValid(p)).toBe(true);
      }),
      runs,
    );
  });

  it('completes the partial checksum of a packet that needs no segmentation', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(TCP, UDP).chain((proto) => streamArb(proto, dataFlags)),
        (s) => {
          const small = { ...s, payload: s.payload.subarray(0, Math.min(s.payload.length, 1400)) };
          const p = packet(small.flow, small.payload, small, true);
          const ihl = s.flow.v6 ? 40 : 20;
          const read = concat(
            vnetHeader({
              flags: F_NEEDS_CSUM,
              gsoType: GSO_NONE,
              hdrLen: 0,
              gsoSize: 0,
              csumStart: ihl,
              csumOffset: s.flow.proto === TCP ? 16 : 6,
            }),
            p,
          );
          const got = splitTunRead(read);
          expect(got).toHaveLength(1);
          expect(
            Buffer.from(got![0]!).equals(Buffer.from(packet(small.flow, small.payload, small))),
          ).toBe(true);
        },
      ),
      runs,
    );
  });
});

describe('TUN offload coalescing', () => {
  it('coalesces one in-order TCP stream into super-segments that split back byte for byte', () => {
    fc.assert(
      fc.property(streamArb(TCP, anyFlags), (s) => {
        // one write batch holds at most 1024 packets
        const segments = modelSegments(s).slice(0, 1024);
        const writes = coalesceTunWrites(segments);
        const back = writes.flatMap((w) => splitTunRead(w) ?? []);
        expect(back.map((p) => Buffer.from(p).toString('hex'))).toEqual(
          segments.map((p) => Buffer.from(p).toString('hex')),
        );
        // Everything that may be coalesced is: data segments only, FIN and CWR ones alone.
        const plain = (s.flags & (FIN | CWR)) === 0;
        if (plain && segments.length > 1 && segments.length <= MAX_COALESCED) {
          expect(writes).toHaveLength(1);
          expect(writes[0]![1]).toBe(s.flow.v6 ? GSO_TCPV6 : GSO_TCPV4);
          expect(writes[0]![0]).toBe(F_NEEDS_CSUM);
        }
        if (segments.length === 1)
          expect(writes[0]!.subarray(0, VNET)).toEqual(new Uint8Array(VNET));
      }),
      runs,
    );
  });

  it('keeps each flow in order when flows, UDP and other packets interleave', () => {
    const item = fc.oneof(
      { weight: 3, arbitrary: streamArb(TCP, anyFlags) },
      { weight: 1, arbitrary: streamArb(UDP, fc.constant(0)) },
    );
    fc.assert(
      fc.property(
        fc.array(item, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 200 }),
        (streams, picks) => {
          const queues = streams.map((s) =>
            modelSegments({ ...s, payload: s.payload.subarray(0, 12_000) }),
          );
          const total = queues.reduce((n, q) => n + q.length, 0);
          const input: { flow: number; p: Uint8Array }[] = [];
          const heads = queues.map(() => 0);
          for (let k = 0; input.length < total; k++) {
            let f = (picks[k % Math.max(1, picks.length)] ?? k) % queues.length;
            while (heads[f]! >= queues[f]!.length) f = (f + 1) % queues.length;
            input.push({ flow: f, p: queues[f]![heads[f]!++]! });
          }
          const batch = input.slice(0, 1024);
          const writes = coalesceTunWrites(batch.map((x) => x.p));
          const back = writes.flatMap((w) => splitTunRead(w) ?? []);
          expect(back).toHaveLength(batch.length);
          // Per flow, the same packets in the same order (flows may swap places with each other).
          const key = (p: Uint8Array): string => {
            const v6 = p[0]! >> 4 === 6;
            const ihl = v6 ? 40 : 20;
            return Buffer.from(
              concat(
                v6 ? p.subarray(8, 40) : p.subarray(12, 20),
                p.subarray(ihl, ihl + 4),
                p.subarray(v6 ? 6 : 9, v6 ? 7 : 10),
              ),
            ).toString('hex');
          };
          const byFlow = (ps: Uint8Array[]): Map<string, string[]> => {
            const m = new Map<string, string[]>();
            for (const p of ps)
              m.set(key(p), [...(m.get(key(p)) ?? []), Buffer.from(p).toString('hex')]);
            return m;
          };
          expect(byFlow(back)).toEqual(byFlow(batch.map((x) => x.p)));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('writes segments with a bad checksum, out of order or with other ACKs alone and unchanged', () => {
    const flow: Flow = {
      v6: false,
      proto: TCP,
      src: new Uint8Array([10, 0, 0, 1]),
      dst: new Uint8Array([10, 0, 0, 2]),
      sport: 4000,
      dport: 5201,
      tos: 0,
      ttl: 64,
      options: new Uint8Array(12),
      ack: 7,
      window: 500,
    };
    const seg = (i: number, over: Partial<Flow> = {}): Uint8Array =>
      packet({ ...flow, ...over }, new Uint8Array(100).fill(i), {
        id: i,
        seq: 1000 + i * 100,
        flags: ACK,
      });
    const bad = seg(1);
    bad[60] = bad[60]! ^ 0xff; // payload byte: the TCP checksum no longer matches
    const cases: Uint8Array[][] = [
      [seg(0), bad, seg(2)],
      [seg(0), seg(2), seg(1)],
      [seg(0), seg(1, { ack: 8 }), seg(2, { ack: 8 })],
      [seg(0), seg(1, { window: 501 })],
      [seg(0), seg(1, { ttl: 63 })],
    ];
    for (const packets of cases) {
      const writes = coalesceTunWrites(packets);
      const back = writes.flatMap((w) => splitTunRead(w) ?? []);
      expect(back.map((p) => Buffer.from(p).toString('hex'))).toEqual(
        packets.map((p) => Buffer.from(p).toString('hex')),
      );
    }
    // the first case: nothing joins across the bad segment, and it is written unchanged
    const writes = coalesceTunWrites([seg(0), bad, seg(2)]);
    expect(writes).toHaveLength(3);
    expect(Buffer.from(writes[1]!.subarray(VNET)).equals(Buffer.from(bad))).toBe(true);
  });
});

describe('TUN offload header parsing', () => {
  const s: Stream = {
    flow: {
      v6: false,
      proto: TCP,
      src: new Uint8Array([10, 0, 0, 1]),
      dst: new Uint8Array([10, 0, 0, 2]),
      sport: 4000,
      dport: 5201,
      tos: 0,
      ttl: 64,
      options: new Uint8Array(0),
      ack: 1,
      window: 100,
    },
    payload: new Uint8Array(5000).fill(7),
    mss: 1000,
    id: 1,
    seq: 1,
    flags: ACK | PSH,
  };
  const good = superSegment(s);
  const edit = (f: (b: Uint8Array, dv: DataView) => void): Uint8Array => {
    const b = good.slice();
    f(b, new DataView(b.buffer));
    return b;
  };

  it('splits the unedited reads (the cases below each break one thing)', () => {
    expect(splitTunRead(good)).toHaveLength(5);
    expect(splitTunRead(superSegment({ ...s, payload: new Uint8Array(10) }))).toHaveLength(1);
  });

  it.each([
    ['an empty read', new Uint8Array(0)],
    ['a header and no packet', good.subarray(0, VNET)],
    ['a header cut short', good.subarray(0, 4)],
    ['gso_type UFO (never negotiated)', edit((b) => (b[1] = GSO_UDP))],
    ['an unknown gso_type', edit((b) => (b[1] = 9))],
    ['TCPV6 for an IPv4 packet', edit((b) => (b[1] = GSO_TCPV6))],
    ['UDP_L4 for a TCP packet', edit((b) => (b[1] = GSO_UDP_L4))],
    ['gso_size 0', edit((_, dv) => dv.setUint16(4, 0, true))],
    ['more than 4096 segments', edit((_, dv) => dv.setUint16(4, 1, true))],
    ['an IPv4 total length that disagrees', edit((b) => put16(b, VNET + 2, 4000))],
    ['an IPv4 header length under 20', edit((b) => (b[VNET] = 0x44))],
    ['an IPv4 fragment', edit((b) => put16(b, VNET + 6, 0x2000))],
    ['a TCP data offset under 5', edit((b) => (b[VNET + 32] = 0x40))],
    [
      'a TCP data offset past the packet',
      (() => {
        const b = superSegment({ ...s, payload: new Uint8Array(10) });
        b[VNET + 32] = 0xf0; // 60 header bytes in a packet of 50
        return b;
      })(),
    ],
    ['IP version 5', edit((b) => (b[VNET] = 0x55))],
    [
      'a checksum start past the packet',
      edit((b, dv) => {
        b[1] = GSO_NONE;
        dv.setUint16(6, 60_000, true);
      }),
    ],
    [
      'a checksum offset past the packet',
      edit((b, dv) => {
        b[1] = GSO_NONE;
        dv.setUint16(8, good.length, true);
      }),
    ],
  ])('drops %s', (_, read) => {
    expect(splitTunRead(read)).toBeNull();
  });

  it('never throws on random reads and never returns an empty list', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 3000 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 0xffff }),
        (bytes, gsoType, gsoSize) => {
          const read = concat(good.subarray(0, VNET), bytes);
          read[1] = gsoType;
          new DataView(read.buffer).setUint16(4, gsoSize, true);
          const got = splitTunRead(read);
          if (got !== null) expect(got.length).toBeGreaterThan(0);
          const mutated = good.slice();
          mutated[bytes.length % mutated.length] = gsoType;
          const again = splitTunRead(mutated);
          if (again !== null) expect(again.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 500 },
    );
  });
});
