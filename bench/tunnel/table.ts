/**
 * What the daemon benches (tunnel/run.ts, memory/run.ts) share around their tables: figures per
 * row and column over rounds, footnotes for what could not be measured, the start checks, the
 * peer configuration they load over UAPI, and the aligned text table.
 */
import { execFileSync } from 'node:child_process';

import { ensureWgts, median, type Figure } from './lib.js';

/** A row's figures in one column: the median over rounds, each round's value, and why any is n/a. */
export interface Cell {
  median?: number;
  samples: (number | null)[];
  na?: string;
}

/** samples[row][column] holds one Figure per round. */
export class FigureTable<Row extends string, Column extends string> {
  private readonly samples = new Map<Row, Map<Column, Figure[]>>();

  record(row: Row, col: Column, f: Figure): void {
    let byCol = this.samples.get(row);
    if (byCol === undefined) this.samples.set(row, (byCol = new Map()));
    let list = byCol.get(col);
    if (list === undefined) byCol.set(col, (list = []));
    list.push(f);
  }

  cell(row: Row, col: Column): Cell | undefined {
    const list = this.samples.get(row)?.get(col);
    if (list === undefined) return undefined;
    const values = list.flatMap((f) => ('value' in f && Number.isFinite(f.value) ? [f.value] : []));
    const reasons = list.flatMap((f) => ('na' in f ? [f.na] : []));
    const c: Cell = { samples: list.map((f) => ('value' in f ? f.value : null)) };
    if (values.length > 0) c.median = median(values);
    if (reasons.length > 0)
      c.na =
        values.length > 0
          ? `${reasons.length} of ${list.length} rounds n/a: ${reasons[0]}`
          : reasons[0];
    return c;
  }

  /** median(num) / median(den), undefined where either is missing or the denominator is 0. */
  ratio(row: Row, num: Column, den: Column): number | undefined {
    const a = this.cell(row, num)?.median;
    const b = this.cell(row, den)?.median;
    return a === undefined || b === undefined || b === 0 ? undefined : a / b;
  }
}

/** Numbered footnotes: the same reason gets the same number. */
export class Notes {
  private readonly reasons: string[] = [];

  /** `[n]` for reason. */
  mark(reason: string): string {
    let i = this.reasons.indexOf(reason);
    if (i < 0) i = this.reasons.push(reason) - 1;
    return `[${i + 1}]`;
  }

  /** The footnote block, nothing when there are none. */
  lines(): string[] {
    if (this.reasons.length === 0) return [];
    return ['', 'Notes:', ...this.reasons.map((n, i) => `  [${i + 1}] ${n}`)];
  }
}

/** A number with a fixed count of decimals and thousands separators. */
export function fmt(v: number, decimals: number): string {
  return v.toLocaleString('en', {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals,
  });
}

/** heads and body as columns padded to one width: the first left-aligned, the rest right-aligned. */
export function alignedTable(heads: readonly string[], body: readonly string[][]): string[] {
  const widths = heads.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(heads), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)];
}

/** The first line a tool prints for argv (its version), or 'missing'. */
export function toolVersion(argv: readonly string[]): string {
  try {
    return (
      execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8' }).split('\n')[0] ?? ''
    ).trim();
  } catch {
    return 'missing';
  }
}

/**
 * A bench that makes namespaces needs root and its tools: undefined when both are there, else the
 * exit status after the message naming what is missing (2 for not root, 1 for a missing tool).
 */
export function preflight(bench: string, tools: readonly string[]): number | undefined {
  if (process.getuid?.() !== 0) {
    process.stderr.write(`${bench} must run as root (it creates network namespaces)\n`);
    return 2;
  }
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      process.stderr.write(`${bench} needs ${tool} on PATH\n`);
      return 1;
    }
  }
  return undefined;
}

/** Builds wgts if it is stale; the header's note on what was run, undefined when it is current. */
export function wgtsBuildNote(progress: (line: string) => void): string | undefined {
  try {
    progress('building wgts (tsc -b packages/wg-tun)');
    return ensureWgts();
  } catch (err) {
    return `wgts could not be built: ${err instanceof Error ? err.message : String(err)}`;
  }
}

export interface PeersConfigOptions {
  peers: number;
  listenPort: number;
  /** The i-th peer's allowed IP, a /32. */
  allowedIp: (i: number) => string;
  /** The i-th peer's endpoint, host:port. Nothing is sent to it: no traffic runs. */
  endpoint: (i: number) => string;
}

/** A `wg setconf` text: a fresh interface key and o.peers peers with fresh keys. */
export async function peersConfig(o: PeersConfigOptions): Promise<string> {
  const { generatePrivateKey, keyToBase64, publicKeyOf } = await import('@wiremesh/wg-core');
  const { selectCrypto } = await import('@wiremesh/wg-core/native');
  const { randomFillSync } = await import('node:crypto');
  const { provider } = selectCrypto();
  const random = (out: Uint8Array): void => void randomFillSync(out);
  const lines = [
    '[Interface]',
    `PrivateKey = ${keyToBase64(generatePrivateKey(random))}`,
    `ListenPort = ${o.listenPort}`,
  ];
  for (let i = 0; i < o.peers; i++) {
    lines.push(
      '',
      '[Peer]',
      `PublicKey = ${keyToBase64(publicKeyOf(provider, generatePrivateKey(random)))}`,
      `AllowedIPs = ${o.allowedIp(i)}/32`,
      `Endpoint = ${o.endpoint(i)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
