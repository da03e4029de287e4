// Crypto benchmark: ChaCha20-Poly1305 seal/open throughput and X25519 rate, noble (the portable
// baseline) against the native provider, side by side in one run. Results are verified before
// anything is timed. Run: see bench/README.md.
import { nobleCrypto, type CryptoProvider } from '@wiremesh/wg-core';
import { nativeCrypto, selectCrypto } from '@wiremesh/wg-core/native';

const SIZES = [64, 1420, 64 * 1024] as const;
const TAG = 16;
const WARMUP_MS = 200;
const SAMPLE_MS = Number(process.env.BENCH_SAMPLE_MS ?? 250);
const SAMPLES = 5;

const native = nativeCrypto();
const opensslOnly = nativeCrypto({ libsodium: false });
if (!native) throw new Error(`native crypto unavailable: ${selectCrypto().reason}`);
const columns: [string, CryptoProvider][] = [
  ['noble', nobleCrypto],
  ['native', native],
];
if (opensslOnly) columns.push(['node:crypto only', opensslOnly]);

const fill = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff);
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));
function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`verification failed before timing: ${what}`);
}

/** Median ops/s over SAMPLES samples of about SAMPLE_MS each, after WARMUP_MS of warm-up. */
function rate(fn: () => void): number {
  const run = (ms: number): number => {
    let n = 0;
    let batch = 1;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(ms * 1e6);
    let now = start;
    while (now < deadline) {
      for (let i = 0; i < batch; i++) fn();
      n += batch;
      if (batch < 1024) batch *= 2;
      now = process.hrtime.bigint();
    }
    return n / (Number(now - start) / 1e9);
  };
  run(WARMUP_MS);
  const samples = Array.from({ length: SAMPLES }, () => run(SAMPLE_MS)).sort((a, b) => a - b);
  return samples[SAMPLES >> 1]!;
}

const key = fill(32, 1);
const nonce = fill(12, 2);
const ad = new Uint8Array(0);

// ---- Verify every provider against noble (and RFC 7748 §6.1) before timing ----
const alice = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const bobPublic = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
const shared = hex('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
const plaintexts = new Map(SIZES.map((s) => [s, fill(s, s)]));
const sealedRef = new Map(
  SIZES.map((s) => {
    const out = new Uint8Array(s + TAG);
    nobleCrypto.seal(key, nonce, plaintexts.get(s)!, ad, out);
    return [s, out];
  }),
);
for (const [name, p] of columns) {
  check(same(p.x25519(alice, bobPublic), shared), `${name} x25519 (RFC 7748 §6.1)`);
  for (const s of SIZES) {
    const out = new Uint8Array(s + TAG);
    p.seal(key, nonce, plaintexts.get(s)!, ad, out);
    check(same(out, sealedRef.get(s)!), `${name} seal ${s} B`);
    const back = new Uint8Array(s);
    check(p.open(key, nonce, out, ad, back) && same(back, plaintexts.get(s)!), `${name} open ${s}`);
  }
}

// ---- Time ----
interface Row {
  label: string;
  unit: 'MB/s' | 'ops/s';
  values: number[];
}
const rows: Row[] = [];
for (const s of SIZES) {
  const pt = plaintexts.get(s)!;
  const ct = sealedRef.get(s)!;
  const sealDst = new Uint8Array(s + TAG);
  const openDst = new Uint8Array(s);
  const mb = (opsPerSecond: number): number => (opsPerSecond * s) / 1e6;
  rows.push({
    label: `seal ${s} B`,
    unit: 'MB/s',
    values: columns.map(([, p]) => mb(rate(() => p.seal(key, nonce, pt, ad, sealDst)))),
  });
  rows.push({
    label: `open ${s} B`,
    unit: 'MB/s',
    values: columns.map(([, p]) =>
      mb(
        rate(() => {
          if (!p.open(key, nonce, ct, ad, openDst)) throw new Error('open failed while timing');
        }),
      ),
    ),
  });
}
rows.push({
  label: 'X25519 shared secret',
  unit: 'ops/s',
  values: columns.map(([, p]) => rate(() => p.x25519(alice, bobPublic))),
});
rows.push({
  label: 'X25519 public key',
  unit: 'ops/s',
  values: columns.map(([, p]) => rate(() => p.x25519Public(alice))),
});

// ---- Print ----
const fmt = (v: number): string =>
  v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(v >= 10 ? 1 : 2);
const header = ['', 'unit', ...columns.map(([n]) => n), 'native/noble'];
if (opensslOnly) header.push('native/node:crypto');
const table = rows.map((r) => {
  const cells = [
    r.label,
    r.unit,
    ...r.values.map(fmt),
    `${(r.values[1]! / r.values[0]!).toFixed(1)}x`,
  ];
  if (opensslOnly) cells.push(`${(r.values[1]! / r.values[2]!).toFixed(2)}x`);
  return cells;
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((c) => c[i]!.length)));
const line = (cells: string[]): string =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
console.log(`Node ${process.version}, OpenSSL ${process.versions.openssl}, ${process.arch}`);
console.log(`native = ${native.name}: ${selectCrypto().reason}`);
console.log(`median of ${SAMPLES} samples of ${SAMPLE_MS} ms after ${WARMUP_MS} ms warm-up\n`);
console.log(line(header));
for (const cells of table) console.log(line(cells));
