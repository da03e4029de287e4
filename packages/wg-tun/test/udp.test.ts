/**
 * The native UDP bind (src/udp.ts over wgtun.node) on loopback, and the fake network, held to one
 * conformance suite; then what only the real socket has: dual stack, kernel-chosen ports, buffers,
 * kernel drop counting, fwmark, and its errors.
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';

import { createFakeNetwork, openUdpBind, type Datagram, type UdpBind } from '../src/udp.js';
import { createNetns, deadline, run, uniqueTag } from './netns.js';
import { describeUdpBindConformance } from './udp-conformance.js';

const WAIT_MS = 15_000;

describeUdpBindConformance('native on 127.0.0.1', () => {
  const a = openUdpBind();
  const b = openUdpBind();
  return {
    a,
    b,
    address: (bind) => ({ ip: '127.0.0.1', port: bind.port }),
    close: () => (a.close(), b.close()),
  };
});

describeUdpBindConformance('native on 127.0.0.1 without offloads', () => {
  const a = openUdpBind({ offload: false });
  const b = openUdpBind({ offload: false });
  return {
    a,
    b,
    address: (bind) => ({ ip: '127.0.0.1', port: bind.port }),
    close: () => (a.close(), b.close()),
  };
});

describeUdpBindConformance('native on ::1', () => {
  const a = openUdpBind({ host: '::1' });
  const b = openUdpBind({ host: '::1' });
  return {
    a,
    b,
    address: (bind) => ({ ip: '::1', port: bind.port }),
    close: () => (a.close(), b.close()),
  };
});

describeUdpBindConformance('fake network', () => {
  const net = createFakeNetwork();
  const a = net.bind({ address: '192.0.2.1' });
  const b = net.bind({ address: '192.0.2.2', port: 51820 });
  const where = new Map<UdpBind, string>([
    [a, '192.0.2.1'],
    [b, '192.0.2.2'],
  ]);
  return {
    a,
    b,
    address: (bind) => ({ ip: where.get(bind)!, port: bind.port }),
    close: () => (a.close(), b.close()),
  };
});

describe('native UDP bind', () => {
  const open: UdpBind[] = [];
  const bind = (...args: Parameters<typeof openUdpBind>): UdpBind => {
    const b = openUdpBind(...args);
    open.push(b);
    return b;
  };
  afterEach(() => {
    for (const b of open.splice(0)) b.close();
  });

  it('serves IPv4 and IPv6 on one kernel-chosen port, reporting IPv4 sources unmapped', async () => {
    const a = bind();
    const b = bind();
    expect(a.family).toBe('dual');
    expect(a.port).toBeGreaterThan(0);
    expect(a.port).not.toBe(b.port);
    const perFamily = 5_000;
    const sources = new Map<string, number>();
    const all = deadline('IPv4 and IPv6 datagrams', WAIT_MS);
    b.onDatagrams((batch) => {
      for (let i = 0; i < batch.count; i++) {
        const e = batch.endpoint(i);
        expect(batch.packet(i)[0]).toBe(e.ip === '::1' ? 6 : 4);
        sources.set(`${e.ip} ${e.port}`, (sources.get(`${e.ip} ${e.port}`) ?? 0) + 1);
      }
      if (b.stats().rxPackets === 2 * perFamily) all.done();
    });
    const v4 = { ip: '127.0.0.1', port: b.port };
    const v6 = { ip: '::1', port: b.port };
    for (let s = 0; s < perFamily; s += 250) {
      const chunk: Datagram[] = [];
      for (let i = 0; i < 250; i++) {
        chunk.push(
          { endpoint: v4, data: Uint8Array.of(4, i) },
          { endpoint: v6, data: Uint8Array.of(6, i) },
        );
      }
      expect(a.send(chunk)).toBe(chunk.length);
    }
    await all.promise;
    expect(Object.fromEntries(sources)).toEqual({
      [`127.0.0.1 ${a.port}`]: perFamily,
      [`::1 ${a.port}`]: perFamily,
    });
    expect(b.stats()).toMatchObject({ rxDroppedKernel: 0, rxErrors: 0 });
  });

  it('sends runs of equal datagrams as one GSO message and splits GRO reads back into datagrams', async () => {
    const a = bind();
    const b = bind();
    expect(a.offloads).toEqual({ gso: true, gro: true }); // Linux 5.0+
    const c = bind();
    // Runs: equal sizes to b (GSO), a shorter tail, a switch of destination, sizes going up.
    const plan: [UdpBind, number][] = [];
    for (let i = 0; i < 600; i++) plan.push([b, 1200]);
    plan.push([b, 300], [c, 1200], [c, 1200], [b, 100], [b, 200], [b, 1452]);
    for (let i = 0; i < 300; i++) plan.push([i % 2 ? b : c, 500]);
    const expected = new Map<UdpBind, number[]>([
      [b, []],
      [c, []],
    ]);
    const datagrams = plan.map(([to, size], seq): Datagram => {
      expected.get(to)!.push(seq);
      const data = new Uint8Array(size).fill(seq & 0xff);
      new DataView(data.buffer).setUint16(0, seq);
      return { endpoint: { ip: '127.0.0.1', port: to.port }, data };
    });
    const got = new Map<UdpBind, number[]>([
      [b, []],
      [c, []],
    ]);
    const all = deadline('every datagram at b and c', WAIT_MS);
    for (const rx of [b, c]) {
      rx.onDatagrams((batch) => {
        for (let i = 0; i < batch.count; i++) {
          const p = batch.packet(i);
          const seq = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint16(0);
          expect(p.length).toBe(plan[seq]![1]);
          expect(p[p.length - 1]).toBe(seq & 0xff);
          expect(batch.endpoint(i)).toEqual({ ip: '127.0.0.1', port: a.port });
          got.get(rx)!.push(seq);
        }
        if (got.get(b)!.length + got.get(c)!.length === plan.length) all.done();
      });
    }
    expect(a.send(datagrams)).toBe(plan.length);
    await all.promise;
    expect(got).toEqual(expected);
    const tx = a.stats();
    expect(tx.txPackets).toBe(plan.length);
    // the 600-datagram run went ~54 per message; the alternating tail cannot be grouped
    expect(tx.txMessages).toBeLessThan(plan.length - 500);
    expect(b.stats().rxMessages).toBeLessThan(b.stats().rxPackets); // coalesced on the way in
  });

  it('over a veth into a namespace: GSO runs arrive whole, runs over the path MTU fall back to single sends', async () => {
    const ns = createNetns('udp');
    const tag = uniqueTag();
    const [outer, inner] = [`wmu${tag}a`, `wmu${tag}b`];
    try {
      run('ip', [
        'link',
        'add',
        outer,
        'mtu',
        '1280',
        'type',
        'veth',
        'peer',
        'name',
        inner,
        'mtu',
        '1280',
        'netns',
        ns.name,
      ]);
      run('ip', ['addr', 'add', '10.202.0.1/24', 'dev', outer]);
      run('ip', ['link', 'set', outer, 'up']);
      ns.ip('addr', 'add', '10.202.0.2/24', 'dev', inner);
      ns.ip('link', 'set', inner, 'up');
      const a = bind();
      const perSize = 200;
      const sizes = [1000, 1400]; // 1400 + 28 exceeds the MTU: the kernel refuses it segmented (EMSGSIZE)
      const receiver = spawn(
        'ip',
        [
          'netns',
          'exec',
          ns.name,
          process.execPath,
          '-e',
          `
        const s = require('dgram').createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
        const n = {}; let total = 0;
        s.on('message', (m) => { n[m.length] = (n[m.length] || 0) + 1;
          if (++total === ${perSize * sizes.length}) { console.log(JSON.stringify(n)); process.exit(0); } });
        s.bind(7000, '10.202.0.2', () => console.log('ready'));
        setTimeout(() => { console.log(JSON.stringify(n)); process.exit(1); }, ${WAIT_MS});
      `,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const lines: string[] = [];
      const ready = deadline('receiver ready', WAIT_MS);
      const finished = new Promise<number | null>((resolve) => receiver.on('close', resolve));
      receiver.stdout.on('data', (d: Buffer) => {
        lines.push(...d.toString().trim().split('\n'));
        if (lines.includes('ready')) ready.done();
      });
      await ready.promise;
      const to = { ip: '10.202.0.2', port: 7000 };
      for (const size of sizes) {
        const batch = Array.from({ length: perSize }, () => ({
          endpoint: to,
          data: new Uint8Array(size),
        }));
        expect(a.send(batch)).toBe(perSize);
      }
      expect(await finished).toBe(0);
      expect(JSON.parse(lines.at(-1)!)).toEqual({ 1000: perSize, 1400: perSize });
      expect(a.stats().lastError).toBe('EMSGSIZE'); // the oversized runs were refused segmented...
      expect(a.offloads.gso).toBe(true); // ...which does not turn GSO off
      expect(a.stats().txMessages).toBeLessThan(2 * perSize);
    } finally {
      ns.remove();
      try {
        run('ip', ['link', 'del', outer]);
      } catch {
        // removed with the namespace's peer
      }
    }
  });

  it('sends one message per datagram with offloads off', () => {
    const a = bind({ offload: false });
    expect(a.offloads).toEqual({ gso: false, gro: false });
    const to = { ip: '127.0.0.1', port: bind().port };
    expect(
      a.send(Array.from({ length: 50 }, () => ({ endpoint: to, data: new Uint8Array(100) }))),
    ).toBe(50);
    expect(a.stats()).toMatchObject({ txPackets: 50, txMessages: 50 });
  });

  it('gives the same frozen endpoint object for repeated sources', async () => {
    const a = bind();
    const b = bind();
    const endpoints = new Set<object>();
    const got = deadline('three datagrams', WAIT_MS);
    let n = 0;
    b.onDatagrams((batch) => {
      for (let i = 0; i < batch.count; i++, n++) endpoints.add(batch.endpoint(i));
      if (n === 3) got.done();
    });
    const to = { ip: '127.0.0.1', port: b.port };
    a.send([1, 2, 3].map((x) => ({ endpoint: to, data: Uint8Array.of(x) })));
    await got.promise;
    expect(endpoints.size).toBe(1);
    expect(Object.isFrozen([...endpoints][0])).toBe(true);
  });

  it('carries a 65,000-byte datagram whole', async () => {
    const a = bind();
    const b = bind();
    const big = new Uint8Array(65_000).map((_, i) => i & 0xff);
    const got = deadline('big datagram', WAIT_MS);
    b.onDatagrams((batch) => {
      expect(batch.packet(0)).toEqual(big);
      got.done();
    });
    expect(a.send([{ endpoint: { ip: '127.0.0.1', port: b.port }, data: big }])).toBe(1);
    await got.promise;
  });

  it('gets large socket buffers as root (SO_RCVBUFFORCE past rmem_max)', () => {
    const rmemMax = Number(run('cat', ['/proc/sys/net/core/rmem_max']).trim());
    const wanted = 2 * Math.max(rmemMax, 7 * 1024 * 1024); // the kernel reports double what was set
    const b = bind({ receiveBufferBytes: wanted / 2, sendBufferBytes: wanted / 2 });
    const ss = run('ss', ['-u', '-a', '-n', '-m', '-O', `sport = :${b.port}`]);
    const rb = Number(/rb(\d+)/.exec(ss)?.[1]);
    expect(rb).toBe(wanted);
  });

  it('counts datagrams the kernel dropped on a full receive buffer (SO_RXQ_OVFL)', async () => {
    // without offloads, so that the kernel drops (and counts) single datagrams, not coalesced runs
    const a = bind({ offload: false });
    const b = bind({ receiveBufferBytes: 1, offload: false }); // rounded up to the minimum: a few fit
    const to = { ip: '127.0.0.1', port: b.port };
    const sent = 200;
    let got = 0;
    let first = deadline('the datagrams that fit', WAIT_MS);
    b.pause();
    b.onDatagrams((batch) => {
      got += batch.count;
      first.done();
    });
    a.send(Array.from({ length: sent }, () => ({ endpoint: to, data: new Uint8Array(1000) })));
    b.resume();
    await first.promise; // all that fit arrive in one batch
    const kept = got;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(sent);
    // The kernel stamps its drop count on each datagram it queues: the next one carries it.
    first = deadline('one more datagram', WAIT_MS);
    a.send([{ endpoint: to, data: new Uint8Array(1000) }]);
    await first.promise;
    expect(got).toBe(kept + 1);
    expect(b.stats().rxDroppedKernel).toBe(sent - kept);
  });

  it('sets fwmark at open and later', () => {
    const b = bind({ fwmark: 0x1234 });
    const mark = (): string | undefined =>
      /fwmark:(0x[0-9a-f]+)/.exec(
        run('ss', ['-u', '-a', '-n', '-e', '-O', `sport = :${b.port}`]),
      )?.[1];
    expect(mark()).toBe('0x1234');
    b.setMark(0xbeef);
    expect(mark()).toBe('0xbeef');
    b.setMark(0);
    expect(mark()).toBeUndefined();
  });

  it('binds one address family when given a host, and counts what it cannot reach', () => {
    const v4 = bind({ host: '127.0.0.1' });
    expect(v4.family).toBe('ipv4');
    expect(v4.send([{ endpoint: { ip: '::1', port: 9 }, data: new Uint8Array(4) }])).toBe(0);
    expect(v4.stats()).toMatchObject({ txErrors: 1, txPackets: 0, lastError: 'EAFNOSUPPORT' });
    expect(bind({ host: '::1' }).family).toBe('ipv6');
  });

  it('gives EADDRINUSE for a taken port, with what to do', () => {
    const a = bind();
    expect(() => bind({ port: a.port })).toThrow(
      expect.objectContaining({
        code: 'EADDRINUSE',
        syscall: 'bind',
        message: expect.stringMatching(/choose another port/),
      }),
    );
  });

  it('checks its options', () => {
    expect(() => openUdpBind({ port: 70_000 })).toThrow(RangeError);
    expect(() => openUdpBind({ batchSize: 2_000 })).toThrow(RangeError);
    expect(() => openUdpBind({ host: 'localhost' })).toThrow(TypeError);
    expect(() => openUdpBind({ fwmark: -1 })).toThrow(RangeError);
  });
});

describe('fake network', () => {
  it('drops, rewrites and counts unroutable datagrams; ports are exclusive', async () => {
    const net = createFakeNetwork({ autoFlush: false });
    const a = net.bind({ address: '10.0.0.1', port: 1000 });
    const b = net.bind({ address: '10.0.0.2' });
    expect(() => net.bind({ address: '10.0.0.2', port: b.port })).toThrow(
      expect.objectContaining({ code: 'EADDRINUSE' }),
    );
    const seen: string[] = [];
    b.onDatagrams((batch) => {
      for (let i = 0; i < batch.count; i++)
        seen.push(`${batch.endpoint(i).ip}:${batch.endpoint(i).port} ${batch.packet(i)[0]}`);
    });
    // a NAT in front of a: rewrite the source; drop datagram 2
    net.setFilter((d) =>
      d.data[0] === 2 ? false : { ...d, from: { ip: '203.0.113.7', port: 62000 } },
    );
    const to = { ip: '10.0.0.2', port: b.port };
    a.send([1, 2, 3].map((x) => ({ endpoint: to, data: Uint8Array.of(x) })));
    a.send([{ endpoint: { ip: '10.9.9.9', port: 1 }, data: Uint8Array.of(4) }]);
    expect(seen).toEqual([]); // autoFlush off: nothing moves until flush()
    net.flush();
    expect(seen).toEqual(['203.0.113.7:62000 1', '203.0.113.7:62000 3']);
    expect(net.unroutable).toBe(1);
    b.close();
    expect(net.bind({ address: '10.0.0.2', port: to.port }).port).toBe(to.port);
  });
});
