// UDP I/O benchmark: wg-tun's batched addon (sendmmsg/recvmmsg, one JS call per batch; and with
// UDP GSO/GRO) against Node's dgram (one syscall and one event per datagram) on loopback, same
// process, same flow control; plus what a batch costs to consume three ways. Verified before
// timing. See README.md.
import { createSocket } from 'node:dgram';

import { openUdpBind, type Datagram, type DatagramBatch } from '../packages/wg-tun/src/udp.js';

const SIZES = [64, 1452] as const; // a keepalive-sized datagram; a full 1420-MTU transport message
const TOTAL = Number(process.env.BENCH_DATAGRAMS ?? 200_000);
const ROUNDS = 3;
const BATCH = 128;
const WINDOW = 1_024; // datagrams in flight: well inside the receive buffer, so nothing drops
const TIMEOUT_MS = 30_000;
const HOST = '127.0.0.1';

interface Result {
  pps: number;
  cpuUsPerDatagram: number;
}

type Consume = (batch: DatagramBatch) => number;

/** Reads every datagram through packet(i): one Uint8Array view per datagram. */
const viaViews: Consume = (batch) => {
  let sum = 0;
  for (let i = 0; i < batch.count; i++) sum += batch.packet(i)[0]! + batch.endpoint(i).port;
  return sum;
};
/** Reads through buffer/offsets/lengths: no allocation at all. */
const viaOffsets: Consume = (batch) => {
  let sum = 0;
  for (let i = 0; i < batch.count; i++)
    sum += batch.buffer[batch.offsets[i]!]! + batch.endpoint(i).port;
  return sum;
};
/** Copies each datagram into its own Buffer: the least an array-of-Buffers API would cost. */
const viaBufferCopies: Consume = (batch) => {
  let sum = 0;
  for (let i = 0; i < batch.count; i++) {
    const own = Buffer.from(batch.packet(i));
    sum += own[0]! + batch.endpoint(i).port;
  }
  return sum;
};

function payload(size: number, seq: number): Uint8Array {
  const p = new Uint8Array(size).fill(seq & 0xff);
  return p;
}

/** Waits until `ready()` holds, re-checking after each I/O callback via `poke`. */
function waiter() {
  let wake: (() => void) | undefined;
  return {
    poke: () => wake?.(),
    until: (ready: () => boolean, what: string): Promise<void> =>
      new Promise((resolve, reject) => {
        if (ready()) return resolve();
        const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), TIMEOUT_MS);
        wake = () => {
          if (!ready()) return;
          clearTimeout(timer);
          wake = undefined;
          resolve();
        };
      }),
  };
}

async function measure(run: () => Promise<void>): Promise<Result> {
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { pps: TOTAL / seconds, cpuUsPerDatagram: (cpu.user + cpu.system) / TOTAL };
}

async function addon(
  size: number,
  consume: Consume,
  offload: boolean,
  verify = false,
): Promise<Result> {
  const rx = openUdpBind({ offload });
  const tx = openUdpBind({ offload });
  const w = waiter();
  let received = 0;
  let sink = 0;
  rx.onDatagrams((batch) => {
    if (verify) {
      for (let i = 0; i < batch.count; i++) {
        const p = batch.packet(i);
        const e = batch.endpoint(i);
        if (
          p.length !== size ||
          p[0] !== ((received + i) & 0xff) ||
          e.ip !== HOST ||
          e.port !== tx.port
        ) {
          throw new Error(`addon: datagram ${received + i} arrived wrong`);
        }
      }
    }
    sink += consume(batch);
    received += batch.count;
    w.poke();
  });
  const endpoint = { ip: HOST, port: rx.port };
  const batches = Array.from({ length: 256 }, (_, b) =>
    Array.from({ length: BATCH }, (_, i): Datagram => ({
      endpoint,
      data: payload(size, b * BATCH + i),
    })),
  );
  try {
    return await measure(async () => {
      let sent = 0;
      while (sent < TOTAL) {
        const n = Math.min(BATCH, TOTAL - sent);
        const batch = batches[(sent / BATCH) % batches.length]!;
        if (tx.send(n === BATCH ? batch : batch.slice(0, n)) !== n)
          throw new Error('addon: send dropped');
        sent += n;
        if (sent - received > WINDOW)
          await w.until(() => sent - received <= WINDOW / 2, 'addon window');
      }
      await w.until(() => received === TOTAL, `addon: ${TOTAL} datagrams`);
      if (sink < 0) throw new Error('unreachable');
    });
  } finally {
    rx.close();
    tx.close();
  }
}

async function nodeDgram(size: number, verify = false): Promise<Result> {
  const rx = createSocket({ type: 'udp4', recvBufferSize: 7 << 20 });
  const tx = createSocket({ type: 'udp4', sendBufferSize: 7 << 20 });
  await new Promise<void>((resolve) => rx.bind(0, HOST, resolve));
  await new Promise<void>((resolve) => tx.bind(0, HOST, resolve));
  await new Promise<void>((resolve, reject) =>
    tx.connect(rx.address().port, HOST, (e?: Error) => (e ? reject(e) : resolve())),
  );
  const w = waiter();
  let received = 0;
  let sink = 0;
  rx.on('message', (msg, rinfo) => {
    if (
      verify &&
      (msg.length !== size || msg[0] !== (received & 0xff) || rinfo.port !== tx.address().port)
    ) {
      throw new Error(`dgram: datagram ${received} arrived wrong`);
    }
    sink += msg[0]! + rinfo.port;
    received++;
    w.poke();
  });
  const datagrams = Array.from({ length: 256 * BATCH }, (_, i) => payload(size, i));
  try {
    return await measure(async () => {
      let sent = 0;
      while (sent < TOTAL) {
        tx.send(datagrams[sent % datagrams.length]!);
        sent++;
        if (sent - received > WINDOW)
          await w.until(() => sent - received <= WINDOW / 2, 'dgram window');
      }
      await w.until(() => received === TOTAL, `dgram: ${TOTAL} datagrams`);
      if (sink < 0) throw new Error('unreachable');
    });
  } finally {
    rx.close();
    tx.close();
  }
}

/** ns per datagram to consume one real batch of BATCH datagrams, each way, repeated in place. */
async function consumeCost(size: number): Promise<Map<string, number>> {
  const rx = openUdpBind({ offload: false });
  const tx = openUdpBind({ offload: false });
  const costs = new Map<string, number>();
  const repeats = 5_000;
  try {
    const done = waiter();
    rx.onDatagrams((batch) => {
      if (costs.size > 0) return;
      for (const [name, consume] of CONSUMERS) {
        for (let r = 0; r < repeats / 10; r++) consume(batch); // warm-up
        const t0 = process.hrtime.bigint();
        for (let r = 0; r < repeats; r++) consume(batch);
        costs.set(name, Number(process.hrtime.bigint() - t0) / (repeats * batch.count));
      }
      done.poke();
    });
    const endpoint = { ip: HOST, port: rx.port };
    tx.send(Array.from({ length: BATCH }, (_, i) => ({ endpoint, data: payload(size, i) })));
    await done.until(() => costs.size > 0, 'a full batch');
    return costs;
  } finally {
    rx.close();
    tx.close();
  }
}

const CONSUMERS: [string, Consume][] = [
  ['packet(i) views', viaViews],
  ['buffer+offsets', viaOffsets],
  ['Buffer per packet', viaBufferCopies],
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  console.log(
    `UDP on loopback, ${TOTAL.toLocaleString('en-US')} datagrams per run, median of ${ROUNDS} alternating runs`,
  );
  console.log(
    `(addon: batches of ${BATCH} per sendmmsg/recvmmsg, offloads off unless named; dgram: connected socket, one send/event each)`,
  );
  console.log(
    '(GSO/GRO on loopback never segments at all: an upper bound, not what a real path gives)\n',
  );
  for (const size of SIZES) {
    // verification run, untimed: every datagram arrives, in order, intact, from the right source
    await addon(size, viaViews, false, true);
    await addon(size, viaViews, true, true);
    await nodeDgram(size, true);
    const cases: [string, () => Promise<Result>][] = [
      ['dgram (baseline)', () => nodeDgram(size)],
      ['addon, packet(i) views', () => addon(size, viaViews, false)],
      ['addon, buffer+offsets', () => addon(size, viaOffsets, false)],
      ['addon, Buffer per packet', () => addon(size, viaBufferCopies, false)],
      ['addon + GSO/GRO, views', () => addon(size, viaViews, true)],
    ];
    const results = new Map<string, Result[]>(cases.map(([name]) => [name, []]));
    for (let r = 0; r < ROUNDS; r++)
      for (const [name, fn] of cases) results.get(name)!.push(await fn());
    const base = median(results.get('dgram (baseline)')!.map((x) => x.pps));
    console.log(`${size}-byte datagrams`);
    console.log('  case                        datagrams/s   vs dgram   CPU µs/datagram');
    for (const [name] of cases) {
      const rs = results.get(name)!;
      const pps = median(rs.map((x) => x.pps));
      const cpu = median(rs.map((x) => x.cpuUsPerDatagram));
      console.log(
        `  ${name.padEnd(26)}  ${fmt(pps).padStart(11)}   ${(pps / base).toFixed(2).padStart(7)}x   ${cpu.toFixed(2).padStart(8)}`,
      );
    }
    const costs = await consumeCost(size);
    console.log(
      `  consuming a batch in JS, ns/datagram: ${[...costs].map(([n, c]) => `${n} ${c.toFixed(0)}`).join(', ')}`,
    );
    console.log('');
  }
}

await main();
