/**
 * Mesh DNS of one joined network (`wiremesh join --dns on`): the resolver on the node's mesh
 * address and the host's configuration for the mesh domain, kept equal to the latest map. The
 * rest of the agent sees four calls: `update(map)` after every apply, `stop()`, `remove()`, and
 * the setting file helpers that `join`, `status` and `leave` use.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { NetworkMap } from '@wiremesh/protocol';
import type { Logger } from '../log.js';
import { BIND_RETRY_MS, DNS_PORT } from './constants.js';
import {
  applyHostDns,
  describeHostMethod,
  detectHostMethod,
  removeHostDns,
  replaceFile,
  systemHostEnv,
  type HostEnv,
  type HostMethod,
} from './host-config.js';
import { EMPTY_TABLE, sameTable, tableFromMap, type DnsTable } from './records.js';
import { startDnsServer, type DnsServer } from './server.js';

export { describeHostMethod, type HostEnv, type HostMethod } from './host-config.js';

/** What the agent remembers about one network's DNS (`<state dir>/<network>.dns.json`). */
export const DnsSetting = z.object({
  enabled: z.boolean(),
  /** What the host was last configured with; null before the first apply or when off. */
  method: z.enum(['resolved', 'dnsmasq', 'hosts']).nullable(),
  iface: z.string(),
  domain: z.string().nullable(),
  /** Where the resolver answered (`ip:port`), when one ran. */
  listening: z.array(z.string()),
});
/** What the agent remembers about one network's DNS. */
export type DnsSetting = z.infer<typeof DnsSetting>;

const settingPath = (stateDir: string, network: string): string =>
  join(stateDir, `${network}.dns.json`);

/** The stored setting of `network`, or null (never joined with this agent, or unreadable). */
export function loadDnsSetting(stateDir: string, network: string): DnsSetting | null {
  try {
    const r = DnsSetting.safeParse(
      JSON.parse(readFileSync(settingPath(stateDir, network), 'utf8')),
    );
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Stores `s` atomically. Rejects with the fs error. */
export async function saveDnsSetting(
  stateDir: string,
  network: string,
  s: DnsSetting,
): Promise<void> {
  await replaceFile(settingPath(stateDir, network), `${JSON.stringify(s, null, 2)}\n`);
}

/**
 * Removes every trace of `network`'s DNS from the host and forgets the setting (leave, rollback).
 * Tries every method when the stored one is unknown. Throws the first failure.
 */
export async function forgetMeshDns(
  stateDir: string,
  network: string,
  iface: string,
  env: HostEnv,
): Promise<void> {
  const s = loadDnsSetting(stateDir, network);
  try {
    await removeHostDns(s?.method ?? null, network, iface, env);
  } finally {
    rmSync(settingPath(stateDir, network), { force: true });
  }
}

/** One line for `status`: what answers for the mesh domain, or that DNS is off. */
export function describeDnsSetting(s: DnsSetting | null, env: HostEnv): string {
  if (s === null || !s.enabled) return 'dns off (the host resolver configuration is untouched)';
  if (s.method === null) return 'dns on (not applied yet: waiting for the first map)';
  const where = s.listening.length > 0 ? `, resolver on ${s.listening.join(', ')}` : '';
  return `dns on: names under ${s.domain ?? '?'} through ${describeHostMethod(s.method, env, s.iface)}${where}`;
}

/** Options of a MeshDns. */
export interface MeshDnsOptions {
  network: string;
  iface: string;
  stateDir: string;
  env: HostEnv;
  log: Logger;
  /**
   * Run the resolver (a long-lived agent). Without it (cron check-ins) only the hosts block can
   * work, so that is the method.
   */
  serve: boolean;
  /** Resolver port (tests); default 53. */
  port?: number;
  /** Host method instead of detection (tests). */
  method?: HostMethod;
  /** Told the outcome of each apply (join prints it). */
  onApplied?: (line: string) => void;
}

/** The mesh DNS of one network. */
export class MeshDns {
  private table: DnsTable = EMPTY_TABLE;
  private server: DnsServer | null = null;
  private serverFor = '';
  private applied: { method: HostMethod; table: DnsTable; address: string } | null = null;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;
  private latest: NetworkMap | null = null;
  private failedOnce = false;
  private method: HostMethod | null = null;
  /** The setting as last written (it changes far less often than the names). */
  private saved = '';

  constructor(private readonly o: MeshDnsOptions) {}

  /** The resolver's counters, or null when none runs. */
  get counters(): DnsServer['counters'] | null {
    return this.server?.counters ?? null;
  }

  /** The resolver's addresses (`ip:port`). */
  get listening(): readonly string[] {
    return this.server?.listening ?? [];
  }

  /** Makes resolver and host follow `map`. Never throws (problems are logged and retried). */
  update(map: NetworkMap): Promise<void> {
    this.latest = map;
    // After the turn that applied the map: its kicks and reports go out first.
    this.queue = this.queue
      .then(() => new Promise<void>((r) => setImmediate(r)))
      .then(() => this.apply())
      .catch(() => undefined);
    return this.queue;
  }

  private async apply(): Promise<void> {
    const map = this.latest;
    if (map === null || this.stopped) return;
    const table = tableFromMap(map);
    this.table = table;
    const net = this.o.network;
    if (this.o.serve) {
      const want = [
        map.self.addressV4,
        ...(map.self.addressV6 === null ? [] : [map.self.addressV6]),
      ];
      if (this.serverFor !== want.join()) await this.listen(want);
      this.server?.setTable(table);
    }
    // Detected once: a host does not change its resolver setup under a running agent.
    this.method ??= this.o.serve ? (this.o.method ?? detectHostMethod(this.o.env)) : 'hosts';
    const method = this.method;
    const address = map.self.addressV4;
    const a = this.applied;
    if (a !== null && a.method === method && a.address === address && sameTable(a.table, table))
      return;
    try {
      if (a !== null && a.method !== method)
        await removeHostDns(a.method, net, this.o.iface, this.o.env);
      await applyHostDns(method, { network: net, iface: this.o.iface, address, table }, this.o.env);
      const first = a === null;
      this.applied = { method, table, address };
      this.failedOnce = false;
      const setting: DnsSetting = {
        enabled: true,
        method,
        iface: this.o.iface,
        domain: table.domain,
        listening: [...this.listening],
      };
      const text = JSON.stringify(setting);
      if (text !== this.saved) {
        await saveDnsSetting(this.o.stateDir, net, setting);
        this.saved = text;
      }
      const line = `${net}: dns: ${table.names.size} name${table.names.size === 1 ? '' : 's'} under ${table.domain} through ${describeHostMethod(method, this.o.env, this.o.iface)}${this.listening.length > 0 ? `, resolver on ${this.listening.join(', ')}` : ''}`;
      if (first && this.o.onApplied !== undefined) this.o.onApplied(line);
      else if (first) this.o.log.info(line);
      else this.o.log.debug(line);
    } catch (e) {
      if (!this.failedOnce)
        this.o.log.warn(
          `${net}: dns: could not configure the host (${(e as Error).message}); retrying with the next map`,
        );
      this.failedOnce = true;
    }
  }

  private async listen(addresses: string[]): Promise<void> {
    await this.server?.close();
    this.server = null;
    this.serverFor = '';
    // An IPv6 address can be tentative for a moment (DAD): IPv4 alone first, then retry all.
    for (const set of addresses.length > 1 ? [addresses, addresses.slice(0, 1)] : [addresses]) {
      try {
        this.server = await startDnsServer(set, this.o.port ?? DNS_PORT);
        this.server.setTable(this.table);
        if (set.length === addresses.length) this.serverFor = addresses.join();
        else this.retryLater();
        return;
      } catch (e) {
        if (set.length === 1)
          this.o.log.warn(
            `${this.o.network}: dns: cannot listen on ${set[0]} port ${this.o.port ?? DNS_PORT} (${(e as Error).message}); retrying`,
          );
      }
    }
    this.retryLater();
  }

  private retryLater(): void {
    if (this.retry !== null || this.stopped) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.serverFor = '';
      this.queue = this.queue.then(() => this.apply()).catch(() => undefined);
    }, BIND_RETRY_MS);
    this.retry.unref();
  }

  /** Stops the resolver; the host keeps its configuration (a restarted agent resumes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry !== null) clearTimeout(this.retry);
    await this.queue;
    await this.server?.close();
    this.server = null;
  }

  /** Stops the resolver and removes everything from the host (the node left or was removed). */
  async remove(): Promise<void> {
    await this.stop();
    await forgetMeshDns(this.o.stateDir, this.o.network, this.o.iface, this.o.env);
    this.applied = null;
  }
}

/** What `meshDnsFor` needs from a command. */
export interface MeshDnsContext {
  stateDir: string;
  env: HostEnv;
  log: Logger;
}

/**
 * The MeshDns of a joined network when its setting is on, else null. `serve`: this process runs
 * the resolver (the daemon); `out` hears the first successful apply.
 */
export function meshDnsFor(
  ctx: MeshDnsContext,
  network: string,
  iface: string,
  serve: boolean,
  out?: (line: string) => void,
): MeshDns | null {
  if (loadDnsSetting(ctx.stateDir, network)?.enabled !== true) return null;
  return new MeshDns({
    network,
    iface,
    stateDir: ctx.stateDir,
    env: ctx.env,
    log: ctx.log,
    serve,
    ...(out !== undefined ? { onApplied: out } : {}),
  });
}

/**
 * Records `--dns on|off` for a network at join. Turning it off removes what an earlier `on`
 * put on the host. Returns the line `join` prints.
 */
export async function setDnsAtJoin(
  ctx: MeshDnsContext,
  network: string,
  iface: string,
  on: boolean,
): Promise<string> {
  const before = loadDnsSetting(ctx.stateDir, network);
  if (!on) {
    if (before?.enabled === true) await forgetMeshDns(ctx.stateDir, network, iface, ctx.env);
    await saveDnsSetting(ctx.stateDir, network, {
      enabled: false,
      method: null,
      iface,
      domain: null,
      listening: [],
    });
    return `${network}: dns off: the host's resolver configuration is left as it is`;
  }
  if (before?.enabled !== true)
    await saveDnsSetting(ctx.stateDir, network, {
      enabled: true,
      method: null,
      iface,
      domain: null,
      listening: [],
    });
  const method = detectHostMethod(ctx.env);
  return `${network}: dns on: mesh names will resolve through ${describeHostMethod(method, ctx.env, iface)} (the agent's resolver answers on the node's mesh address, port ${DNS_PORT})`;
}

/** The MeshDnsContext of a command (its state directory, the host's real files and tools). */
export function dnsContext(c: {
  store: { dir: string };
  runner: HostEnv['runner'];
  log: Logger;
}): MeshDnsContext {
  return { stateDir: c.store.dir, env: systemHostEnv(c.runner), log: c.log };
}
