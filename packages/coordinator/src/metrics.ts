/**
 * Prometheus metrics in the text exposition format (version 0.0.4): counters and gauges with
 * labels, kept in memory; scrape-time gauges are filled by callbacks.
 */

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, number>;
}

/** A set of metric families rendered together at /metrics. */
export class Metrics {
  private readonly families = new Map<string, Family>();
  private readonly collectors: (() => Promise<void> | void)[] = [];

  private family(name: string, type: Family['type'], help: string): Family {
    let f = this.families.get(name);
    if (f === undefined) {
      f = { help, type, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }

  /** Declares a counter (so it renders as 0 before its first increment). */
  counter(name: string, help: string): void {
    this.family(name, 'counter', help);
  }

  /** Declares a gauge. */
  gauge(name: string, help: string): void {
    this.family(name, 'gauge', help);
  }

  /** Adds `by` (default 1) to a counter. Throws TypeError for an undeclared name. */
  inc(name: string, labels: Labels = {}, by = 1): void {
    const f = this.families.get(name);
    if (f === undefined) throw new TypeError(`undeclared metric ${name}`);
    const key = labelText(labels);
    f.values.set(key, (f.values.get(key) ?? 0) + by);
  }

  /** Sets a gauge. Throws TypeError for an undeclared name. */
  set(name: string, labels: Labels, value: number): void {
    const f = this.families.get(name);
    if (f === undefined) throw new TypeError(`undeclared metric ${name}`);
    f.values.set(labelText(labels), value);
  }

  /** Clears a gauge's series (before a collector refills it). */
  reset(name: string): void {
    this.families.get(name)?.values.clear();
  }

  /** Registers a callback run before each render (scrape-time gauges). */
  collect(fn: () => Promise<void> | void): void {
    this.collectors.push(fn);
  }

  /** The exposition text. */
  async render(): Promise<string> {
    for (const c of this.collectors) await c();
    const lines: string[] = [];
    for (const [name, f] of this.families) {
      lines.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      if (f.values.size === 0 && f.type === 'counter') lines.push(`${name} 0`);
      for (const [labels, v] of f.values) lines.push(`${name}${labels} ${v}`);
    }
    return `${lines.join('\n')}\n`;
  }
}
