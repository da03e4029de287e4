/**
 * The native UDP bind (src/udp.ts over wgtun.node) on loopback, and the fake network, held to one
 * conformance suite; then what only the real socket has: dual stack, kernel-chosen ports, buffers,
 * kernel drop counting, fwmark, and its errors.
 */
import { afterEach, describe, expect, it } from 'vitest';

import { createFakeNetwork, openUdpBind, type Datagram, type UdpBind } from '../src/udp.js';
import { deadline, run } from './netns.js';
import { describeUdpBindConformance } from './udp-conformance.js';

const WAIT_MS = 15_000;

describeUdpBindConformance('native on 127.0.0.1', () => {
  const a = openUdpBind();
  const b = openUdpBind();
  return {
    a,
    b,
    address: (bind) => ({ address: '127.0.0.1', port: bind.port }),
    close: () => (a.close(), b.close()),
  };
});

describeUdpBindConformance('native on ::1', () => {
  const a = openUdpBind({ host: '::1' });
  const b = openUdpBind({ host: '::1' });
  return {
    a,
    b,
    address: (bind) => ({ address: '::1', port: bind.port }),
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
    address: (bind) => ({ address: where.get(bind)!, port: bind.port }),
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
        expect(batch.packet(i)[0]).toBe(e.address === '::1' ? 6 : 4);
        sources.set(`${e.address} ${e.port}`, (sources.get(`${e.address} ${e.port}`) ?? 0) + 1);
      }
      if (b.stats().rxPackets === 2 * perFamily) all.done();
    });
    const v4 = { address: '127.0.0.1', port: b.port };
    const v6 = { address: '::1', port: b.port };
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
    const to = { address: '127.0.0.1', port: b.port };
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
    expect(a.send([{ endpoint: { address: '127.0.0.1', port: b.port }, data: big }])).toBe(1);
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
    const a = bind();
    const b = bind({ receiveBufferBytes: 1 }); // the kernel rounds up to its minimum: a few datagrams
    const to = { address: '127.0.0.1', port: b.port };
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
    expect(v4.send([{ endpoint: { address: '::1', port: 9 }, data: new Uint8Array(4) }])).toBe(0);
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
        seen.push(`${batch.endpoint(i).address}:${batch.endpoint(i).port} ${batch.packet(i)[0]}`);
    });
    // a NAT in front of a: rewrite the source; drop datagram 2
    net.setFilter((d) =>
      d.data[0] === 2 ? false : { ...d, from: { address: '203.0.113.7', port: 62000 } },
    );
    const to = { address: '10.0.0.2', port: b.port };
    a.send([1, 2, 3].map((x) => ({ endpoint: to, data: Uint8Array.of(x) })));
    a.send([{ endpoint: { address: '10.9.9.9', port: 1 }, data: Uint8Array.of(4) }]);
    expect(seen).toEqual([]); // autoFlush off: nothing moves until flush()
    net.flush();
    expect(seen).toEqual(['203.0.113.7:62000 1', '203.0.113.7:62000 3']);
    expect(net.unroutable).toBe(1);
    b.close();
    expect(net.bind({ address: '10.0.0.2', port: to.port }).port).toBe(to.port);
  });
});
