/**
 * Summary of a V8 .cpuprofile (as `node --cpu-prof` writes it): self time aggregated per function
 * and per source file, largest first.
 *
 * Run: pnpm --filter @wiremesh/bench exec node --import tsx tunnel/cpuprofile.ts FILE.cpuprofile [TOP]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT_URL = pathToFileURL(fileURLToPath(new URL('../../', import.meta.url))).href;
const DEFAULT_TOP = 25;
const US_PER_MS = 1000;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
/** The fields of a .cpuprofile this summary reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  /** Microseconds since the previous sample. */
  timeDeltas: number[];
}

/** One aggregated line: a function (or a file) and the sampled time spent in it, not in callees. */
export interface SelfTime {
  name: string;
  selfMs: number;
  /** Share of all sampled time, idle included. */
  share: number;
}

/** What summarise returns: totals and both rankings. */
export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  functions: SelfTime[];
  files: SelfTime[];
}

function where(url: string): string {
  if (url === '') return '(native)';
  return url.startsWith(ROOT_URL) ? url.slice(ROOT_URL.length) : url;
}

/**
 * Aggregates self time: sample i lasts until sample i+1 (as DevTools counts it). Takes a parsed
 * profile; returns rankings sorted by self time. Throws TypeError if it is not a cpuprofile.
 */
export function summarise(p: CpuProfile): ProfileSummary {
  if (!Array.isArray(p.nodes) || !Array.isArray(p.samples) || !Array.isArray(p.timeDeltas))
    throw new TypeError('not a .cpuprofile (nodes, samples, timeDeltas expected)');
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const fnUs = new Map<string, number>();
  const fileUs = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const us = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]!);
    if (node === undefined || us <= 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = where(url);
    const name =
      url === ''
        ? functionName || '(anonymous native)'
        : `${functionName || '(anonymous)'}  ${file}:${lineNumber + 1}`;
    fnUs.set(name, (fnUs.get(name) ?? 0) + us);
    const fileKey = file === '(native)' ? functionName || '(anonymous native)' : file;
    fileUs.set(fileKey, (fileUs.get(fileKey) ?? 0) + us);
    totalUs += us;
    if (functionName === '(idle)') idleUs += us;
  }
  const rank = (m: Map<string, number>): SelfTime[] =>
    [...m]
      .map(([name, us]) => ({
        name,
        selfMs: us / US_PER_MS,
        share: totalUs > 0 ? us / totalUs : 0,
      }))
      .sort((a, b) => b.selfMs - a.selfMs);
  return {
    totalMs: totalUs / US_PER_MS,
    idleMs: idleUs / US_PER_MS,
    functions: rank(fnUs),
    files: rank(fileUs),
  };
}

/** The summary as text: the top `top` functions and files by self time. */
export function formatSummary(title: string, s: ProfileSummary, top = DEFAULT_TOP): string {
  const busy = s.totalMs - s.idleMs;
  const line = (t: SelfTime): string =>
    `  ${t.selfMs.toFixed(0).padStart(7)} ms ${(t.share * 100).toFixed(1).padStart(5)} %  ${t.name}`;
  return [
    `${title}: ${s.totalMs.toFixed(0)} ms sampled, ${s.idleMs.toFixed(0)} ms idle, ${busy.toFixed(0)} ms busy`,
    `Top ${top} functions by self time (share of all sampled time):`,
    ...s.functions.slice(0, top).map(line),
    `Top ${Math.min(top, 12)} files / native entries by self time:`,
    ...s.files.slice(0, Math.min(top, 12)).map(line),
  ].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: tunnel/cpuprofile.ts FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(`${formatSummary(file, summarise(profile), Number(top ?? DEFAULT_TOP))}\n`);
}
