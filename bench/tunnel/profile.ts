/**
 * Profiles wgts under load: a wgts <-> wgts tunnel as in run.ts, both daemons under
 * `node --cpu-prof`, iperf3 TCP through it, then each profile summarised by self time.
 *
 * Run as root: pnpm --filter @wiremesh/bench exec node --import tsx tunnel/profile.ts
 * Flags: --seconds S (10), --streams N (1), --crypto auto|native|noble, --dir DIR (keep the
 * .cpuprofile files there; default a temporary directory, removed), --top N (25).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { cleanupAll } from '../../test/harness/netns.js';
import { formatSummary, summarise, type CpuProfile } from './cpuprofile.js';
import { createPair, createStage, iperf, threadCpuSeconds as threadCpu } from './lib.js';

function threadDelta(before: Map<string, number>, after: Map<string, number>): string {
  return [...after]
    .map(([name, s]) => [name, s - (before.get(name) ?? 0)] as const)
    .filter(([, s]) => s > 0)
    .sort((x, y) => y[1] - x[1])
    .map(([name, s]) => `${name} ${s.toFixed(2)} s`)
    .join(', ');
}

const WARMUP_SECONDS = 1;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (flag: string, fallback: string): string => {
    const i = args.indexOf(flag);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
  };
  const seconds = Number(opt('--seconds', '10'));
  const streams = Number(opt('--streams', '1'));
  const top = Number(opt('--top', '25'));
  const crypto = opt('--crypto', 'auto');
  const keep = args.includes('--dir');
  const dir = keep ? opt('--dir', '') : mkdtempSync(join(tmpdir(), 'wgbench-prof-'));
  if (process.getuid?.() !== 0) throw new Error('must run as root (it creates network namespaces)');

  try {
    const stage = await createStage();
    const pair = await createPair(
      stage,
      {
        impl: 'wgts',
        env: { WGTS_CRYPTO: crypto },
        nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`],
      },
      0,
    );
    await iperf(stage.nsA, pair.innerB, WARMUP_SECONDS, streams);
    const before = [threadCpu(pair.a.proc.pid), threadCpu(pair.b.proc.pid)];
    const r = await iperf(stage.nsA, pair.innerB, seconds, streams);
    const after = [threadCpu(pair.a.proc.pid), threadCpu(pair.b.proc.pid)];
    process.stdout.write(
      `wgts (WGTS_CRYPTO=${crypto}) under --cpu-prof, iperf3 ${streams} stream(s) ${seconds} s: ${(
        r.bitsPerSecond / 1e6
      ).toFixed(0)} Mbit/s (profiling costs some of it)\n` +
        `CPU per thread during the timed run (user+system, kernel work in syscalls included):\n` +
        `  sender:   ${threadDelta(before[0]!, after[0]!)}\n` +
        `  receiver: ${threadDelta(before[1]!, after[1]!)}\n` +
        `The profiles below cover the whole process life (start, handshake, a ${WARMUP_SECONDS} s warm-up, the run).\n\n`,
    );
    // SIGTERM lets node exit normally, which is when --cpu-prof writes the profile.
    await Promise.all([pair.a.stop(), pair.b.stop()]);
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    for (const [role, d] of [
      ['sender (A, encrypts)', pair.a],
      ['receiver (B, decrypts)', pair.b],
    ] as const) {
      const file = files.find((f) => f.split('.')[3] === String(d.proc.pid));
      if (file === undefined) {
        process.stdout.write(`${role}: no profile written (pid ${d.proc.pid})\n\n`);
        continue;
      }
      const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
      process.stdout.write(`${formatSummary(`${role} ${file}`, summarise(profile), top)}\n\n`);
    }
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

main()
  .catch((err: unknown) => {
    process.stderr.write(
      `bench/tunnel/profile could not run: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exitCode = 1;
  })
  .finally(() => cleanupAll());
