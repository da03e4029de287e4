// The demo's ping matrix: every source namespace pings every target address once, a few at a time
// (the machine is small), and the result prints as a table of round-trip times.
import { run } from '../../test/harness/netns.js';

/** One end of the matrix: a name, the namespace it pings from (if any), the address it answers on. */
export interface Member {
  name: string;
  /** The namespace to ping from; undefined for a target that never pings (the LAN host). */
  ns: string | undefined;
  address: string;
}

/** Round-trip milliseconds per `from` and `to` name; null when no answer came. */
export type Matrix = Map<string, Map<string, number | null>>;

/** Pings in flight at once. */
const CONCURRENCY = 6;
const PING_WAIT_S = 1;
const PING_TIMEOUT_MS = 5_000;
const RTT_RE = /time=([\d.]+) ms/;

/** One ping from `ns` to `address`: the round-trip ms, or null. Never rejects. */
export async function pingOnce(ns: string, address: string): Promise<number | null> {
  try {
    const r = await run(ns, ['ping', '-c', '1', '-W', String(PING_WAIT_S), '-n', address], {
      timeoutMs: PING_TIMEOUT_MS,
    });
    if (r.status !== 0) return null;
    return Number(RTT_RE.exec(r.stdout)?.[1] ?? 0);
  } catch {
    return null;
  }
}

/**
 * Pings from every source to every target but itself. Takes the sources (members with a
 * namespace) and targets; resolves with the matrix. Never rejects.
 */
export async function measure(sources: Member[], targets: Member[]): Promise<Matrix> {
  const jobs: Array<{ from: Member; to: Member }> = [];
  for (const from of sources)
    for (const to of targets) if (from.name !== to.name) jobs.push({ from, to });
  const out: Matrix = new Map(sources.map((s) => [s.name, new Map()]));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      out.get(job.from.name)!.set(job.to.name, await pingOnce(job.from.ns!, job.to.address));
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return out;
}

/** Pairs that answered, and pairs measured. */
export function score(m: Matrix): { ok: number; total: number; failed: string[] } {
  let ok = 0;
  let total = 0;
  const failed: string[] = [];
  for (const [from, row] of m)
    for (const [to, rtt] of row) {
      total++;
      if (rtt === null) failed.push(`${from}->${to}`);
      else ok++;
    }
  return { ok, total, failed };
}

/** The matrix as text: rows ping columns, round-trip ms, `x` for no answer, `.` on the diagonal. */
export function render(m: Matrix, targets: Member[]): string {
  const header = ['from \\ to', ...targets.map((t) => t.name)];
  const rows = [...m].map(([from, row]) => [
    from,
    ...targets.map((t) => {
      if (t.name === from) return '.';
      const rtt = row.get(t.name);
      return rtt === null || rtt === undefined ? 'x' : `${rtt.toFixed(1)} ms`;
    }),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => '  ' + r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}
