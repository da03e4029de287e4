/**
 * One conformance suite for every UdpBind implementation (the native socket and the fake network),
 * so device tests on the fake mean something for the real thing.
 */
import type { Endpoint } from '@wiremesh/wg-core';
import { describe, expect, it } from 'vitest';

import type { Datagram, DatagramBatch, UdpBind } from '../src/udp.js';
import { deadline } from './netns.js';

const WAIT_MS = 15_000;

/** Two binds that can reach each other, how to address each, and a way to let delivery happen. */
export interface BindPair {
  readonly a: UdpBind;
  readonly b: UdpBind;
  /** The endpoint that reaches a bind; also the source its datagrams arrive from. */
  address(bind: UdpBind): Endpoint;
  close(): void;
}

function seqPayload(sender: number, seq: number, size: number): Uint8Array {
  const p = new Uint8Array(size);
  const v = new DataView(p.buffer);
  v.setUint8(0, sender);
  v.setUint32(1, seq);
  for (let i = 5; i < size; i++) p[i] = (seq + i) & 0xff;
  return p;
}

function readSeq(p: Uint8Array): { sender: number; seq: number; intact: boolean } {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const seq = v.getUint32(1);
  let intact = true;
  for (let i = 5; i < p.length; i++) if (p[i] !== ((seq + i) & 0xff)) intact = false;
  return { sender: v.getUint8(0), seq, intact };
}

/** Registers the suite under `label`; `makePair` is called once per test. */
export function describeUdpBindConformance(label: string, makePair: () => BindPair): void {
  describe(`UdpBind conformance: ${label}`, () => {
    it('carries thousands of datagrams in batches, intact, in order, with the sender as source', async () => {
      const pair = makePair();
      try {
        const { a, b } = pair;
        const total = 3_000;
        const from = pair.address(a);
        const received: number[] = [];
        const batches: number[] = [];
        const all = deadline(`${total} datagrams a->b`, WAIT_MS);
        b.onDatagrams((batch) => {
          batches.push(batch.count);
          for (let i = 0; i < batch.count; i++) {
            const { sender, seq, intact } = readSeq(batch.packet(i));
            expect(intact).toBe(true);
            expect(sender).toBe(1);
            expect(batch.endpoint(i)).toEqual(from);
            received.push(seq);
          }
          if (received.length === total) all.done();
        });
        const to = pair.address(b);
        for (let start = 0; start < total; start += 100) {
          const chunk: Datagram[] = [];
          for (let s = start; s < start + 100; s++)
            chunk.push({ endpoint: to, data: seqPayload(1, s, 64 + (s % 200)) });
          expect(a.send(chunk)).toBe(chunk.length);
        }
        await all.promise;
        expect(received).toEqual([...Array(total).keys()]);
        expect(batches.length).toBeLessThan(total / 10); // batched, not one callback per datagram
        expect(b.stats()).toMatchObject({ rxPackets: total, rxBatches: batches.length });
        expect(a.stats()).toMatchObject({ txPackets: total });
      } finally {
        pair.close();
      }
    });

    it('lets a receiver answer each datagram to its source', async () => {
      const pair = makePair();
      try {
        const { a, b } = pair;
        const total = 500;
        let echoed = 0;
        const back = deadline('echoes back at a', WAIT_MS);
        b.onDatagrams((batch) => {
          const replies: Datagram[] = [];
          for (let i = 0; i < batch.count; i++)
            replies.push({ endpoint: batch.endpoint(i), data: batch.packet(i) });
          b.send(replies); // payloads are copied, so views of the batch are fine here
        });
        a.onDatagrams((batch: DatagramBatch) => {
          for (let i = 0; i < batch.count; i++) {
            expect(batch.endpoint(i)).toEqual(pair.address(b));
            expect(readSeq(batch.packet(i)).intact).toBe(true);
            echoed++;
          }
          if (echoed === total) back.done();
        });
        const to = pair.address(b);
        a.send(
          Array.from({ length: total }, (_, s) => ({ endpoint: to, data: seqPayload(2, s, 100) })),
        );
        await back.promise;
        expect(echoed).toBe(total);
      } finally {
        pair.close();
      }
    });

    it('holds datagrams while paused, and batches die with their callback', async () => {
      const pair = makePair();
      try {
        const { a, b } = pair;
        let got = 0;
        let kept: DatagramBatch | undefined;
        const arrived = deadline('datagrams after resume', WAIT_MS);
        b.pause();
        b.onDatagrams((batch) => {
          kept = batch;
          got += batch.count;
          if (got === 10) arrived.done();
        });
        a.send(
          Array.from({ length: 10 }, (_, s) => ({
            endpoint: pair.address(b),
            data: seqPayload(3, s, 20),
          })),
        );
        // a macrotask later the datagrams have been routed, yet nothing is read while paused
        await new Promise<void>((resolve) => setImmediate(resolve));
        expect(got).toBe(0);
        b.resume();
        await arrived.promise;
        expect(() => kept!.packet(0)).toThrow(RangeError);
        expect(() => kept!.endpoint(0)).toThrow(RangeError);
      } finally {
        pair.close();
      }
    });

    it('refuses bad input without sending anything, and is inert after close', () => {
      const pair = makePair();
      try {
        const { a, b } = pair;
        const to = pair.address(b);
        const ok = { endpoint: to, data: new Uint8Array(8) };
        expect(() => a.send([ok, { endpoint: to, data: new Uint8Array(0) }])).toThrow(RangeError);
        expect(() => a.send([ok, { endpoint: to, data: new Uint8Array(65_536) }])).toThrow(
          RangeError,
        );
        expect(() => a.send([ok, { endpoint: to, data: 'x' as unknown as Uint8Array }])).toThrow(
          TypeError,
        );
        expect(() =>
          a.send([{ endpoint: { ip: to.ip, port: 0 }, data: new Uint8Array(8) }]),
        ).toThrow(RangeError);
        expect(() =>
          a.send([{ endpoint: { ip: 'example.com', port: 1 }, data: new Uint8Array(8) }]),
        ).toThrow(TypeError);
        expect(a.stats().txPackets).toBe(0);
        expect(() => a.onDatagrams('x' as unknown as () => void)).toThrow(TypeError);
        expect(() => a.setMark(-1)).toThrow(RangeError);
        a.close();
        a.close();
        expect(a.closed).toBe(true);
        expect(a.send([ok])).toBe(0);
      } finally {
        pair.close();
      }
    });
  });
}
