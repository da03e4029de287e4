/**
 * Coordinator push fan-out: N simulated agents hold push streams (SSE) on a built coordinator
 * (SQLite, its own process); a new node is approved and we time until every agent has received a
 * map containing it. Reports p50/p99/max per round and the coordinator's RSS; the baseline is the
 * same measurement with a single stream, run first in the same process.
 *
 * Run: pnpm build && pnpm --filter @wiremesh/bench exec node --import tsx coordinator/fanout.ts
 * Env: BENCH_AGENTS (1000), BENCH_ROUNDS (5).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  call,
  createBenchNetwork,
  openNodeStream,
  register,
  startCoordinator,
} from '../coordinator-client.js';

const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const REGISTER_CONCURRENCY = 32;
const ROUND_TIMEOUT_MS = 30_000;

/** One simulated agent: holds the stream and records when a peer id first appears. */
class Agent {
  readonly peers = new Set<string>();
  version = -1;
  private waiting: { id: string; resolve: (t: number) => void } | null = null;
  private res: IncomingMessage | null = null;
  ready!: Promise<void>;

  constructor(url: string, secret: string) {
    this.ready = new Promise((resolve, reject) => {
      openNodeStream(url, secret, (ev) => {
        if (ev.type === 'map') {
          this.peers.clear();
          for (const p of ev.map.peers) this.peers.add(p.id);
          this.version = ev.map.version;
          resolve();
        } else if (ev.type === 'patch') {
          if (ev.patch.fromVersion !== this.version) throw new Error('patch does not apply');
          for (const id of ev.patch.removePeerIds) this.peers.delete(id);
          for (const p of ev.patch.upsertPeers) this.peers.add(p.id);
          this.version = ev.patch.version;
        }
        if (this.waiting && this.peers.has(this.waiting.id)) {
          this.waiting.resolve(performance.now());
          this.waiting = null;
        }
      }).then((res) => (this.res = res), reject);
    });
  }

  /** Resolves with the time the agent first holds a map containing `id`. */
  seen(id: string): Promise<number> {
    if (this.peers.has(id)) return Promise.resolve(performance.now());
    return new Promise((resolve) => (this.waiting = { id, resolve }));
  }

  close(): void {
    this.res?.destroy();
  }
}

function rssMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

async function rounds(
  url: string,
  token: string,
  agents: Agent[],
  label: string,
): Promise<{ p50: number; p99: number; max: number }[]> {
  const out: { p50: number; p99: number; max: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const node = await register(url, `${label}-new-${r}`);
    const seen = agents.map((a) => a.seen(node.nodeId));
    const t0 = performance.now();
    await call(url, 'POST', `/api/v1/nodes/${node.nodeId}/approve`, token);
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(
        () =>
          reject(
            new Error(`round ${r}: not every agent got the map within ${ROUND_TIMEOUT_MS} ms`),
          ),
        ROUND_TIMEOUT_MS,
      ).unref(),
    );
    const times = (await Promise.race([Promise.all(seen), timeout]))
      .map((t) => t - t0)
      .sort((a, b) => a - b);
    // Results checked before they are reported: every agent holds the new peer.
    if (!agents.every((a) => a.peers.has(node.nodeId)))
      throw new Error('an agent lacks the new node');
    out.push({ p50: pct(times, 50), p99: pct(times, 99), max: times[times.length - 1] ?? NaN });
  }
  return out;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wm-bench-coord-'));
  const { child, url, token } = await startCoordinator(dir);
  try {
    const key = await createBenchNetwork(url, token);
    const t0 = performance.now();
    const nodes: { nodeId: string; nodeSecret: string }[] = [];
    for (let i = 0; i < AGENTS; i += REGISTER_CONCURRENCY) {
      const batch = Array.from({ length: Math.min(REGISTER_CONCURRENCY, AGENTS - i) }, (_, j) =>
        register(url, `agent-${i + j}`, key),
      );
      nodes.push(...(await Promise.all(batch)));
    }
    const regMs = performance.now() - t0;

    const single = new Agent(url, nodes[0]!.nodeSecret);
    await single.ready;
    const base = await rounds(url, token, [single], 'base');
    single.close();

    const t1 = performance.now();
    const agents = nodes.map((n) => new Agent(url, n.nodeSecret));
    await Promise.all(agents.map((a) => a.ready));
    const connectMs = performance.now() - t1;
    const rssIdle = rssMiB(child.pid!, 'VmRSS');
    const many = await rounds(url, token, agents, 'fan');
    const rssAfter = rssMiB(child.pid!, 'VmRSS');
    const hwm = rssMiB(child.pid!, 'VmHWM');
    for (const a of agents) a.close();

    const med = (xs: number[]): number =>
      [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const f = (x: number): string => x.toFixed(1).padStart(9);
    console.log(
      `coordinator push fan-out: ${AGENTS} agents, ${ROUNDS} approval rounds (SQLite, separate process)`,
    );
    console.log(
      `registered ${AGENTS} nodes in ${(regMs / 1000).toFixed(2)} s (${((AGENTS * 1000) / regMs).toFixed(0)}/s); ${AGENTS} streams got full maps in ${(connectMs / 1000).toFixed(2)} s`,
    );
    console.log('');
    console.log(
      `${'streams'.padEnd(10)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}${'max ms'.padStart(9)}   (median over rounds)`,
    );
    const bp50 = med(base.map((r) => r.p50));
    const bp99 = med(base.map((r) => r.p99));
    const mp50 = med(many.map((r) => r.p50));
    const mp99 = med(many.map((r) => r.p99));
    console.log(`${'1'.padEnd(10)}${f(bp50)}${f(bp99)}${f(med(base.map((r) => r.max)))}`);
    console.log(
      `${String(AGENTS).padEnd(10)}${f(mp50)}${f(mp99)}${f(med(many.map((r) => r.max)))}`,
    );
    console.log(
      `ratio ${AGENTS}/1: p50 ${(mp50 / bp50).toFixed(1)}x, p99 ${(mp99 / bp99).toFixed(1)}x; worst round p99 ${Math.max(...many.map((r) => r.p99)).toFixed(1)} ms (target < 1000 ms)`,
    );
    console.log(
      `coordinator RSS: ${rssIdle.toFixed(0)} MiB with ${AGENTS} streams, ${rssAfter.toFixed(0)} MiB after the rounds, peak ${hwm.toFixed(0)} MiB`,
    );
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
