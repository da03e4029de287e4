/**
 * Points the host at the mesh resolver for the mesh domain only, in the first way the host
 * supports: systemd-resolved split DNS on the interface (`resolvectl dns/domain ~DOMAIN`),
 * a dnsmasq drop-in (`server=/DOMAIN/IP`), or else a marked block in the hosts file. Every
 * change is undone by `removeHostDns`; nothing outside the mesh domain is touched.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Runner } from '../runner.js';
import { HOSTS_BEGIN, HOSTS_END } from './constants.js';
import { hostsLines, type DnsTable } from './records.js';

/** How the host learns the mesh names. */
export type HostMethod = 'resolved' | 'dnsmasq' | 'hosts';

/** Where each method writes, and how to tell what runs (injected by tests). */
export interface HostEnv {
  runner: Runner;
  hostsFile: string;
  /** dnsmasq's drop-in directories, the first existing one is used. */
  dnsmasqDirs: readonly string[];
  /** Whether systemd-resolved answers on this host. */
  resolvedRunning: () => boolean;
  /** Whether a dnsmasq process runs. */
  dnsmasqRunning: () => boolean;
  /** Whether systemd runs (dnsmasq is restarted with systemctl, else its init script). */
  systemdRunning: () => boolean;
}

/** What one network puts on the host. */
export interface HostDnsTarget {
  network: string;
  iface: string;
  /** The resolver's address (the node's mesh IPv4 address). */
  address: string;
  table: DnsTable;
}

const TMP_RANDOM_BYTES = 6;
const FILE_MODE = 0o644;

function processRuns(comm: string): boolean {
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm) return true;
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc: nothing is known to run
  }
  return false;
}

/** The host's real environment. */
export function systemHostEnv(runner: Runner, hostsFile = '/etc/hosts'): HostEnv {
  return {
    runner,
    hostsFile,
    dnsmasqDirs: ['/tmp/dnsmasq.d', '/etc/dnsmasq.d'],
    // resolved's varlink socket and its runtime resolv.conf exist exactly while it runs.
    resolvedRunning: () =>
      existsSync('/run/systemd/resolve/io.systemd.Resolve') ||
      existsSync('/run/systemd/resolve/resolv.conf'),
    dnsmasqRunning: () => processRuns('dnsmasq'),
    systemdRunning: () => existsSync('/run/systemd/system'),
  };
}

/** The method this host supports best. */
export function detectHostMethod(env: HostEnv): HostMethod {
  if (env.resolvedRunning()) return 'resolved';
  if (env.dnsmasqRunning() && dnsmasqDir(env) !== null) return 'dnsmasq';
  return 'hosts';
}

/** A sentence naming what `method` changes, for `join` and `status`. */
export function describeHostMethod(method: HostMethod, env: HostEnv, iface: string): string {
  switch (method) {
    case 'resolved':
      return `systemd-resolved split DNS on ${iface} (resolvectl)`;
    case 'dnsmasq':
      return `dnsmasq drop-in ${dnsmasqFile(env, '*') ?? 'wiremesh-*.conf'}`;
    case 'hosts':
      return `a marked block in ${env.hostsFile}`;
  }
}

function dnsmasqDir(env: HostEnv): string | null {
  return env.dnsmasqDirs.find((d) => existsSync(d)) ?? null;
}

function dnsmasqFile(env: HostEnv, network: string): string | null {
  const d = dnsmasqDir(env);
  return d === null ? null : join(d, `wiremesh-${network}.conf`);
}

async function run(env: HostEnv, cmd: string, args: string[]): Promise<void> {
  const r = await env.runner.run(cmd, args);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
}

async function restartDnsmasq(env: HostEnv): Promise<void> {
  // dnsmasq reads drop-ins only at start (SIGHUP rereads hosts files, not its configuration).
  if (env.systemdRunning()) await run(env, 'systemctl', ['restart', 'dnsmasq']);
  else await run(env, '/etc/init.d/dnsmasq', ['restart']);
}

/**
 * Writes `data` to `path` whole: a temporary file beside it, fsync, rename (asynchronous, so an
 * agent running a userspace device never stalls its packets on a slow disk). A bind-mounted file
 * (a container's or `ip netns exec`'s /etc/hosts) cannot be renamed over; it is rewritten in place.
 */
export async function replaceFile(path: string, data: string): Promise<void> {
  let mode = FILE_MODE;
  try {
    mode = (await stat(path)).mode & 0o7777;
  } catch {
    // a new file
  }
  const tmp = join(
    dirname(path),
    `.${path.slice(path.lastIndexOf('/') + 1)}.wiremesh-${randomBytes(TMP_RANDOM_BYTES).toString('hex')}`,
  );
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(tmp, mode);
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EBUSY' && code !== 'EXDEV') throw e;
    await writeFile(path, data);
  }
}

const beginOf = (network: string): string =>
  `${HOSTS_BEGIN} ${network} (written by the wiremesh agent; removed on leave)`;
const endOf = (network: string): string => `${HOSTS_END} ${network}`;

/** `text` without the network's block (and without the blank line the agent put before it). */
export function stripHostsBlock(text: string, network: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const l of lines) {
    if (!inside && l.startsWith(`${HOSTS_BEGIN} ${network} `)) {
      inside = true;
      if (out.length > 0 && out[out.length - 1] === '') out.pop();
      continue;
    }
    if (inside) {
      if (l === endOf(network)) inside = false;
      continue;
    }
    out.push(l);
  }
  return out.join('\n');
}

/** `text` with the network's block set to `lines` (appended at the end). */
export function withHostsBlock(text: string, network: string, lines: readonly string[]): string {
  const base = stripHostsBlock(text, network).replace(/\n*$/, '\n');
  const head = base === '\n' ? '' : base;
  return `${head}\n${beginOf(network)}\n${lines.map((l) => `${l}\n`).join('')}${endOf(network)}\n`;
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw e;
  }
}

/** Applies `method` for `t` (idempotent: the same target twice changes nothing). Throws. */
export async function applyHostDns(
  method: HostMethod,
  t: HostDnsTarget,
  env: HostEnv,
): Promise<void> {
  switch (method) {
    case 'resolved':
      await run(env, 'resolvectl', ['dns', t.iface, t.address]);
      await run(env, 'resolvectl', ['domain', t.iface, `~${t.table.domain}`]);
      return;
    case 'dnsmasq': {
      const file = dnsmasqFile(env, t.network);
      if (file === null) throw new Error('no dnsmasq drop-in directory');
      // rebind-domain-ok: OpenWrt's rebind protection would drop answers with private addresses.
      const text = `# written by the wiremesh agent for network ${t.network}; removed on leave\nserver=/${t.table.domain}/${t.address}\nrebind-domain-ok=/${t.table.domain}/\n`;
      if ((await readOr(file, '')) === text) return;
      await replaceFile(file, text);
      await restartDnsmasq(env);
      return;
    }
    case 'hosts': {
      const before = await readOr(env.hostsFile, '');
      const after = withHostsBlock(before, t.network, hostsLines(t.table));
      if (after !== before) await replaceFile(env.hostsFile, after);
      return;
    }
  }
}

/**
 * Removes whatever `method` put on the host for `network` (all methods when null: a leave that
 * does not know). Throws the first failure after trying every step.
 */
export async function removeHostDns(
  method: HostMethod | null,
  network: string,
  iface: string,
  env: HostEnv,
): Promise<void> {
  const errors: unknown[] = [];
  const attempt = async (fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      errors.push(e);
    }
  };
  if (method === 'resolved' || method === null) {
    await attempt(async () => {
      const link = await env.runner.run('ip', ['link', 'show', 'dev', iface]);
      // A deleted interface took its resolved settings with it.
      if (link.code === 0 && (method === 'resolved' || env.resolvedRunning()))
        await run(env, 'resolvectl', ['revert', iface]);
    });
  }
  if (method === 'dnsmasq' || method === null) {
    await attempt(async () => {
      for (const d of env.dnsmasqDirs) {
        const file = join(d, `wiremesh-${network}.conf`);
        if (!existsSync(file)) continue;
        await rm(file, { force: true });
        if (env.dnsmasqRunning()) await restartDnsmasq(env);
      }
    });
  }
  if (method === 'hosts' || method === null) {
    await attempt(async () => {
      const before = await readOr(env.hostsFile, '');
      const after = stripHostsBlock(before, network);
      if (after !== before) await replaceFile(env.hostsFile, after);
    });
  }
  if (errors.length > 0) throw errors[0];
}
