/** Human output of the admin CLI: aligned text tables (the `--json` flag bypasses them). */

/** Renders rows as a table with a header; cells are stringified, null/undefined shown as '-'. */
export function table(headers: string[], rows: unknown[][]): string {
  const cells = rows.map((r) =>
    r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))),
  );
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)),
  );
  const line = (r: string[]): string =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}
