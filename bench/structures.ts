// Per-packet data structures: replay window check, allowed-IPs longest-prefix match read in place
// from a packet (1,000 and 100,000 prefixes), index-table get. Each row has a baseline measured in
// the same run; results are verified before timing. Run after `tsc -b` (it imports the built
// @wiremesh/wg-core): cd bench && pnpm exec tsx structures.ts
import { AllowedIps, IndexTable, REPLAY_WINDOW_SIZE, ReplayFilter } from '@wiremesh/wg-core';

const WARMUP_MS = 200;
const SAMPLE_MS = Number(process.env.BENCH_SAMPLE_MS ?? 250);
const SAMPLES = 5;
const BATCH = 1024; // operations per timed call, so the closure call is not what we measure
const PACKETS = 4096; // distinct packets cycled through, so lookups are not all one cached path

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`verification failed before timing: ${what}`);
}

/** Median nanoseconds per operation of `batch()`, which performs BATCH operations. */
function nsPerOp(batch: () => void): number {
  const run = (ms: number): number => {
    let n = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms * 1e6);
    let now = start;
    while (now < deadline) {
      batch();
      n += BATCH;
      now = process.hrtime.bigint();
    }
    return Number(now - start) / n;
  };
  run(WARMUP_MS);
  const samples = Array.from({ length: SAMPLES }, () => run(SAMPLE_MS)).sort((a, b) => a - b);
  return samples[SAMPLES >> 1]!;
}

let seed = 0x2545_f491;
function rand32(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

let sink = 0; // consumed results, so nothing is optimized away
interface Row {
  label: string;
  ns: number;
  baseline: string;
  baseNs: number;
}
const rows: Row[] = [];

// ---- Replay window ----
{
  // Baseline: the obvious version, the counter as a bigint read with DataView and a bigint window.
  class BigIntWindow {
    private ring = new BigUint64Array(REPLAY_WINDOW_SIZE / 64 + 1);
    private last = 0n;
    check(c: bigint): boolean {
      if (c > this.last) {
        const cur = this.last >> 6n;
        const diff = (c >> 6n) - cur;
        const n = diff > BigInt(this.ring.length) ? BigInt(this.ring.length) : diff;
        for (let i = 1n; i <= n; i++) this.ring[Number((cur + i) % BigInt(this.ring.length))] = 0n;
        this.last = c;
      } else if (this.last - c > BigInt(REPLAY_WINDOW_SIZE)) return false;
      const w = Number((c >> 6n) % BigInt(this.ring.length));
      const bit = 1n << (c & 63n);
      if ((this.ring[w]! & bit) !== 0n) return false;
      this.ring[w]! |= bit;
      return true;
    }
  }
  // Transport headers with counters that arrive in order, and shuffled within 1024-counter groups.
  const header = new Uint8Array(16);
  const view = new DataView(header.buffer);
  const group = 1024;
  const shuffle = Uint32Array.from({ length: group }, (_, i) => i);
  for (let i = group - 1; i > 0; i--) {
    const j = rand32() % (i + 1);
    [shuffle[i], shuffle[j]] = [shuffle[j]!, shuffle[i]!];
  }
  for (const [name, at] of [
    ['in order', (n: number) => n],
    ['reordered', (n: number) => n - (n % group) + shuffle[n % group]!],
  ] as const) {
    const f = new ReplayFilter();
    const b = new BigIntWindow();
    let accepted = 0;
    for (let n = 0; n < 3 * REPLAY_WINDOW_SIZE; n++) {
      const c = at(n);
      if (f.check(c, 0) && b.check(BigInt(c))) accepted++;
    }
    check(accepted === 3 * REPLAY_WINDOW_SIZE, `replay ${name} accepts every new counter`);
    check(!f.check(at(5), 0) && !b.check(BigInt(at(5))), `replay ${name} rejects a duplicate`);
    let n = 3 * REPLAY_WINDOW_SIZE;
    const ns = nsPerOp(() => {
      for (let i = 0; i < BATCH; i++) {
        view.setUint32(8, at(n++), true);
        sink += f.checkAt(header, 8) ? 1 : 0;
      }
    });
    n = 3 * REPLAY_WINDOW_SIZE;
    const baseNs = nsPerOp(() => {
      for (let i = 0; i < BATCH; i++) {
        view.setUint32(8, at(n++), true);
        sink += b.check(view.getBigUint64(8, true)) ? 1 : 0;
      }
    });
    rows.push({ label: `ReplayFilter.checkAt, ${name}`, ns, baseline: 'bigint window', baseNs });
  }
}

// ---- Allowed IPs ----
// Random prefixes of random lengths (deeply nested: the worst case for a binary trie), and a mesh
// as wiremesh builds it (one /32 per node in a /16, plus a gateway's LAN).
const configs = [
  { family: 4, count: 1_000, mesh: false },
  { family: 4, count: 100_000, mesh: false },
  { family: 6, count: 1_000, mesh: false },
  { family: 6, count: 100_000, mesh: false },
  { family: 4, count: 1_000, mesh: true },
] as const;
for (const { family, count, mesh } of configs) {
  {
    const len = family === 4 ? 4 : 16;
    const t = new AllowedIps<number>();
    const exact = new Map<number, number>();
    const prefixes: Array<{ a: Uint8Array; cidr: number }> = [];
    for (let i = 0; i < count; i++) {
      const a = new Uint8Array(len);
      let cidr: number;
      if (mesh) {
        a.set(i === 0 ? [192, 168, 100, 0] : [10, 8, i >> 8, i & 0xff]);
        cidr = i === 0 ? 24 : 32;
      } else {
        for (let j = 0; j < len; j++) a[j] = rand32() & 0xff;
        if (family === 6) a[0] = 0xfd; // a ULA-like /8 that every prefix shares
        cidr = family === 4 ? 8 + (rand32() % 25) : 16 + (rand32() % 113);
      }
      t.insert(a, cidr, i % 1000);
      prefixes.push({ a, cidr });
    }
    // Packets whose destination falls inside a random inserted prefix (host bits random).
    const off = family === 4 ? 16 : 24;
    const size = off + len;
    const packets = new Uint8Array(PACKETS * size);
    const keys = new Uint32Array(PACKETS);
    for (let p = 0; p < PACKETS; p++) {
      const { a, cidr } = prefixes[rand32() % prefixes.length]!;
      for (let j = 0; j < len; j++) {
        const keep = Math.max(0, Math.min(8, cidr - 8 * j));
        const m = (0xff << (8 - keep)) & 0xff;
        packets[p * size + off + j] = (a[j]! & m) | (rand32() & ~m & 0xff);
      }
      const dv = new DataView(packets.buffer, p * size + off);
      keys[p] = dv.getUint32(0) ^ (family === 6 ? dv.getUint32(12) : 0);
      exact.set(keys[p]!, p);
    }
    // Verify: a linear scan over every prefix agrees for a sample of packets.
    for (let p = 0; p < 64; p++) {
      const addr = packets.subarray(p * size + off, p * size + off + len);
      let best = -1;
      let want: number | undefined;
      for (let i = prefixes.length - 1; i >= 0; i--) {
        const { a, cidr } = prefixes[i]!;
        let ok = true;
        for (let j = 0; ok && j * 8 < cidr; j++) {
          const keep = Math.min(8, cidr - 8 * j);
          const m = (0xff << (8 - keep)) & 0xff;
          ok = (a[j]! & m) === (addr[j]! & m);
        }
        // later inserts replace identical prefixes, hence the backwards scan and strict >
        if (ok && cidr > best) {
          best = cidr;
          want = i % 1000;
        }
      }
      const got =
        family === 4 ? t.lookupV4(packets, p * size + off) : t.lookupV6(packets, p * size + off);
      check(got === want, `allowed-ips v${family} ${count} packet ${p}`);
    }
    let p = 0;
    const ns = nsPerOp(() => {
      for (let i = 0; i < BATCH; i++) {
        const at = (p++ & (PACKETS - 1)) * size + off;
        sink += (family === 4 ? t.lookupV4(packets, at) : t.lookupV6(packets, at)) ?? 0;
      }
    });
    p = 0;
    const baseNs = nsPerOp(() => {
      for (let i = 0; i < BATCH; i++) sink += exact.get(keys[p++ & (PACKETS - 1)]!) ?? 0;
    });
    rows.push({
      label: `AllowedIps.lookupV${family}, ${count.toLocaleString('en-US')} ${mesh ? 'mesh /32s' : 'prefixes'}`,
      ns,
      baseline: 'Map.get(uint32)',
      baseNs,
    });
  }
}

// ---- Index table ----
{
  const t = new IndexTable<number>((out) => {
    for (let i = 0; i < out.length; i++) out[i] = rand32() & 0xff;
  });
  const m = new Map<number, number>();
  const indices = new Uint32Array(PACKETS);
  for (let i = 0; i < PACKETS; i++) {
    indices[i] = t.allocate(i);
    m.set(indices[i]!, i);
  }
  for (let i = 0; i < PACKETS; i++) check(t.get(indices[i]!) === i, 'index table get');
  let p = 0;
  const ns = nsPerOp(() => {
    for (let i = 0; i < BATCH; i++) sink += t.get(indices[p++ & (PACKETS - 1)]!) ?? 0;
  });
  p = 0;
  const baseNs = nsPerOp(() => {
    for (let i = 0; i < BATCH; i++) sink += m.get(indices[p++ & (PACKETS - 1)]!) ?? 0;
  });
  rows.push({ label: `IndexTable.get, ${PACKETS} live`, ns, baseline: 'Map.get(uint32)', baseNs });
}

// ---- Print ----
const header = ['', 'ns/op', 'baseline', 'ns/op', 'speed vs baseline'];
const table = rows.map((r) => [
  r.label,
  r.ns.toFixed(1),
  r.baseline,
  r.baseNs.toFixed(1),
  `${(r.baseNs / r.ns).toFixed(2)}x`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((c) => c[i]!.length)));
const line = (cells: string[]): string =>
  cells
    .map((c, i) => (i === 0 || i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
    .join('  ');
console.log(`Node ${process.version}, ${process.arch}`);
console.log(
  `median of ${SAMPLES} samples of ${SAMPLE_MS} ms after ${WARMUP_MS} ms warm-up (sink ${sink & 1})\n`,
);
console.log(line(header));
for (const cells of table) console.log(line(cells));
