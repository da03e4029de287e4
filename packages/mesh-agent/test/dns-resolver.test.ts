// The mesh resolver: names from the map, answers to queries (A, AAAA, NXDOMAIN with SOA,
// REFUSED outside the domain), the UDP server through Node's own stub resolver, and a fuzz of
// random and mutated packets that must never throw or make the resolver answer wrongly.
import { Resolver } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import * as packet from 'dns-packet';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { RCODE_NXDOMAIN, RCODE_REFUSED } from '../src/dns/constants.js';
import { tableFromMap, hostsLines, sameTable } from '../src/dns/records.js';
import { answerQuery } from '../src/dns/resolver.js';
import { startDnsServer, type DnsServer } from '../src/dns/server.js';
import { map, peer } from './fixtures.js';

const RUNS = Number(process.env.WIREMESH_FUZZ_RUNS ?? 2000);
const RCODE_MASK = 0xf;

const net = map([peer(2, { addressV6: 'fd00:8::2' }), peer(3)]);
net.network.dnsRecords = [
  {
    name: 'printer',
    dnsName: 'printer.demo.wm',
    kind: 'custom',
    addressV4: '192.168.100.9',
    addressV6: null,
  },
  {
    name: 'phone',
    dnsName: 'phone.demo.wm',
    kind: 'external',
    addressV4: '10.8.0.9',
    addressV6: null,
  },
];
const table = tableFromMap(net);

function query(name: string, type: packet.RecordType, id = 7): Buffer {
  return packet.encode({
    type: 'query',
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

function ask(name: string, type: packet.RecordType) {
  const r = answerQuery(table, query(name, type));
  expect(r.bytes).not.toBeNull();
  const d = packet.decode(r.bytes as Buffer);
  return { r, d, rcode: d.flags! & RCODE_MASK };
}

describe('names from the map', () => {
  it('has self, peers, external clients and custom records under the domain', () => {
    expect([...table.names.keys()].sort()).toEqual([
      'node-1.demo.wm',
      'node-2.demo.wm',
      'node-3.demo.wm',
      'phone.demo.wm',
      'printer.demo.wm',
    ]);
    expect(table.names.get('node-2.demo.wm')).toEqual({ v4: ['10.8.0.2'], v6: ['fd00:8::2'] });
    expect(hostsLines(table)).toContain('fd00:8::2 node-2.demo.wm');
  });

  it('never lets a record take a node name, and tells equal tables', () => {
    const m = map([peer(2)]);
    m.network.dnsRecords = [
      {
        name: 'node-2',
        dnsName: 'node-2.demo.wm',
        kind: 'custom',
        addressV4: '1.2.3.4',
        addressV6: null,
      },
    ];
    expect(tableFromMap(m).names.get('node-2.demo.wm')?.v4).toEqual(['10.8.0.2']);
    expect(sameTable(tableFromMap(map([peer(2)])), tableFromMap(map([peer(2)])))).toBe(true);
    expect(sameTable(tableFromMap(map([peer(2)])), tableFromMap(map([peer(3)])))).toBe(false);
  });
});

describe('answers', () => {
  it('answers A and AAAA for mesh names, keeping the asker’s letter case', () => {
    const a = ask('Node-2.Demo.WM', 'A');
    expect(a.rcode).toBe(0);
    expect(a.d.id).toBe(7);
    expect(a.d.flag_aa).toBe(true);
    expect(a.d.flag_rd).toBe(true);
    expect(a.d.answers).toMatchObject([{ type: 'A', name: 'Node-2.Demo.WM', data: '10.8.0.2' }]);
    expect(ask('node-2.demo.wm', 'AAAA').d.answers).toMatchObject([
      { type: 'AAAA', data: 'fd00:8::2' },
    ]);
    expect(ask('printer.demo.wm.', 'A').d.answers).toMatchObject([{ data: '192.168.100.9' }]);
    expect(ask('phone.demo.wm', 'A').d.answers).toMatchObject([{ data: '10.8.0.9' }]);
  });

  it('says NODATA for a type the name lacks and NXDOMAIN for unknown names, both with the SOA', () => {
    const nodata = ask('node-3.demo.wm', 'AAAA');
    expect(nodata.rcode).toBe(0);
    expect(nodata.d.answers).toEqual([]);
    expect(nodata.d.authorities).toMatchObject([{ type: 'SOA', name: 'demo.wm' }]);
    const nx = ask('nas.demo.wm', 'A');
    expect(nx.rcode).toBe(RCODE_NXDOMAIN);
    expect(nx.r.outcome).toBe('nxdomain');
    expect(nx.d.authorities).toMatchObject([{ type: 'SOA' }]);
    expect(ask('demo.wm', 'SOA').d.answers).toMatchObject([{ type: 'SOA' }]);
  });

  it('refuses names outside the domain (it is no recursive resolver)', () => {
    for (const name of ['example.com', 'wm', 'xdemo.wm', 'node-2.demo.wm.evil'])
      expect(ask(name, 'A').rcode, name).toBe(RCODE_REFUSED);
  });

  it('drops responses and short datagrams; FORMERR and NOTIMP otherwise', () => {
    const resp = packet.encode({
      type: 'response',
      id: 1,
      questions: [{ type: 'A', name: 'node-2.demo.wm' }],
    });
    expect(answerQuery(table, resp).outcome).toBe('dropped');
    expect(answerQuery(table, Buffer.alloc(11)).outcome).toBe('dropped');
    const none = packet.encode({ type: 'query', id: 9, questions: [] });
    expect(answerQuery(table, none).outcome).toBe('formerr');
    const update = Buffer.from(query('node-2.demo.wm', 'A'));
    update.writeUInt16BE(5 << 11, 2);
    const r = answerQuery(table, update);
    expect(r.outcome).toBe('notimp');
    expect(packet.decode(r.bytes as Buffer).id).toBe(7);
  });
});

describe('fuzz', () => {
  /** A response to `q` is either nothing or a response with q's id that answers truthfully. */
  function checkReply(q: Buffer): void {
    const r = answerQuery(table, q);
    if (r.bytes === null) return;
    expect(r.bytes.readUInt16BE(0)).toBe(q.readUInt16BE(0));
    expect(r.bytes.readUInt16BE(2) & 0x8000).toBe(0x8000);
    let d: packet.DecodedPacket;
    try {
      d = packet.decode(r.bytes);
    } catch {
      // Header-only replies to undecodable queries are valid; anything longer must decode.
      expect(r.bytes.length).toBe(12);
      return;
    }
    for (const a of d.answers ?? []) {
      if (a.type !== 'A' && a.type !== 'AAAA') continue;
      const known = table.names.get(a.name.toLowerCase());
      expect(known, a.name).toBeDefined();
      expect([...(known?.v4 ?? []), ...(known?.v6 ?? [])]).toContain(a.data);
    }
  }

  it('random datagrams never throw and never get a false answer', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 600 }), (b) =>
        checkReply(Buffer.from(b)),
      ),
      { numRuns: RUNS },
    );
  });

  it('mutated valid queries (flipped, cut, spliced bytes) never throw', () => {
    const names = [...table.names.keys(), 'nas.demo.wm', 'example.com', 'demo.wm'];
    const types: packet.RecordType[] = ['A', 'AAAA', 'SOA', 'TXT', 'MX', 'PTR'];
    fc.assert(
      fc.property(
        fc.constantFrom(...names),
        fc.constantFrom(...types),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.option(fc.nat()),
        fc.uint8Array({ maxLength: 40 }),
        (name, type, flips, cut, tail) => {
          const q = Buffer.from(query(name, type));
          for (const [at, v] of flips) q[at % q.length] = v;
          const cutAt = cut === null ? q.length : cut % (q.length + 1);
          checkReply(Buffer.concat([q.subarray(0, cutAt), Buffer.from(tail)]));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('answers every well-formed query for every known name with exactly its addresses', () => {
    const names = [...table.names.keys()];
    fc.assert(
      fc.property(
        fc.constantFrom(...names),
        fc.constantFrom<packet.RecordType>('A', 'AAAA'),
        fc.integer({ min: 0, max: 65535 }),
        (name, type, id) => {
          const r = answerQuery(table, query(name, type, id));
          const d = packet.decode(r.bytes as Buffer);
          const want = type === 'A' ? table.names.get(name)?.v4 : table.names.get(name)?.v6;
          expect(d.id).toBe(id);
          expect(
            (d.answers ?? []).map((a) => (a.type === 'A' || a.type === 'AAAA' ? a.data : null)),
          ).toEqual(want);
        },
      ),
      { numRuns: Math.ceil(RUNS / 4) },
    );
  });
});

describe('the UDP server', () => {
  let server: DnsServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('answers Node’s stub resolver, survives garbage and reports what it did', async () => {
    server = await startDnsServer(['127.0.0.1'], 0);
    server.setTable(table);
    const at = server.listening[0] as string;
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([at]);
    expect(await r.resolve4('node-3.demo.wm')).toEqual(['10.8.0.3']);
    expect(await r.resolve6('node-2.demo.wm')).toEqual(['fd00:8::2']);
    await expect(r.resolve4('nas.demo.wm')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(r.resolve4('example.com')).rejects.toMatchObject({ code: 'EREFUSED' });
    const s = createSocket('udp4');
    const [host, port] = [
      at.slice(0, at.lastIndexOf(':')),
      Number(at.slice(at.lastIndexOf(':') + 1)),
    ];
    for (let i = 0; i < 200; i++)
      s.send(Buffer.from(Array.from({ length: i % 40 }, (_, j) => (i * 31 + j) & 255)), port, host);
    await new Promise((res) => setTimeout(res, 100));
    s.close();
    expect(await r.resolve4('printer.demo.wm')).toEqual(['192.168.100.9']);
    server.setTable(tableFromMap(map([peer(4)])));
    expect(await r.resolve4('node-4.demo.wm')).toEqual(['10.8.0.4']);
    await expect(r.resolve4('node-3.demo.wm')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(server.counters.errors).toBe(0);
    expect(server.counters.answer).toBeGreaterThanOrEqual(4);
    expect(server.counters.refused).toBeGreaterThanOrEqual(1);
  });

  it('fails to start with the bind error and leaves nothing open', async () => {
    await expect(startDnsServer(['192.0.2.77'], 0)).rejects.toMatchObject({
      code: 'EADDRNOTAVAIL',
    });
  });
});
