// Host configuration of mesh DNS on fakes: the hosts-file block (exact restore on removal),
// the dnsmasq drop-in with its restart, resolved's split DNS commands, and a MeshDns that
// follows maps (renames, new records), stops, and removes every trace.
import {
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
  existsSync,
  mkdirSync,
  statSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resolver } from 'node:dns/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyHostDns,
  detectHostMethod,
  removeHostDns,
  stripHostsBlock,
  withHostsBlock,
  type HostEnv,
} from '../src/dns/host-config.js';
import { MeshDns, loadDnsSetting, setDnsAtJoin, describeDnsSetting } from '../src/dns/index.js';
import { tableFromMap } from '../src/dns/records.js';
import { silentLogger } from '../src/log.js';
import type { Runner } from '../src/runner.js';
import { map, peer } from './fixtures.js';

const ORIGINAL = '127.0.0.1 localhost\n::1 localhost ip6-localhost\n';

let dir: string;
let calls: string[];
let env: HostEnv;
const runner: Runner = {
  async run(cmd, args) {
    calls.push([cmd, ...args].join(' '));
    return { code: 0, stdout: '', stderr: '' };
  },
};
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wm-dns-host-'));
  calls = [];
  writeFileSync(join(dir, 'hosts'), ORIGINAL);
  chmodSync(join(dir, 'hosts'), 0o644);
  env = {
    runner,
    hostsFile: join(dir, 'hosts'),
    dnsmasqDirs: [join(dir, 'dnsmasq.d')],
    resolvedRunning: () => false,
    dnsmasqRunning: () => false,
    systemdRunning: () => true,
  };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const target = (m = map([peer(2), peer(3)])) => ({
  network: 'demo',
  iface: 'wm-demo',
  address: '10.8.0.1',
  table: tableFromMap(m),
});

describe('hosts file', () => {
  it('adds a marked block, replaces it, and removal restores the file byte for byte', async () => {
    await applyHostDns('hosts', target(), env);
    const text = readFileSync(env.hostsFile, 'utf8');
    expect(text.startsWith(ORIGINAL)).toBe(true);
    expect(text).toContain('# BEGIN wiremesh demo');
    expect(text).toContain('10.8.0.2 node-2.demo.wm\n');
    expect(statSync(env.hostsFile).mode & 0o777).toBe(0o644);
    await applyHostDns('hosts', target(map([peer(3)])), env);
    const again = readFileSync(env.hostsFile, 'utf8');
    expect(again).not.toContain('node-2.demo.wm');
    expect(again.match(/# BEGIN wiremesh demo/g)).toHaveLength(1);
    await removeHostDns('hosts', 'demo', 'wm-demo', env);
    expect(readFileSync(env.hostsFile, 'utf8')).toBe(ORIGINAL);
    expect(calls).toEqual([]);
  });

  it('keeps other networks’ blocks and the admin’s own lines', () => {
    const a = withHostsBlock(ORIGINAL, 'demo', ['10.8.0.2 a.demo']);
    const b = withHostsBlock(`${a}192.168.1.5 nas\n`, 'lab', ['10.9.0.2 b.lab']);
    const c = withHostsBlock(b, 'demo', ['10.8.0.3 c.demo']);
    expect(c).toContain('192.168.1.5 nas');
    expect(c).toContain('10.9.0.2 b.lab');
    expect(c).not.toContain('a.demo');
    expect(stripHostsBlock(stripHostsBlock(c, 'demo'), 'lab')).toBe(`${ORIGINAL}192.168.1.5 nas\n`);
  });
});

describe('dnsmasq and resolved', () => {
  it('writes a server=/DOMAIN/IP drop-in, restarts dnsmasq, and undoes both', async () => {
    mkdirSync(join(dir, 'dnsmasq.d'));
    env.dnsmasqRunning = () => true;
    expect(detectHostMethod(env)).toBe('dnsmasq');
    await applyHostDns('dnsmasq', target(), env);
    const file = join(dir, 'dnsmasq.d', 'wiremesh-demo.conf');
    expect(readFileSync(file, 'utf8')).toContain('server=/demo.wm/10.8.0.1\n');
    expect(calls).toEqual(['systemctl restart dnsmasq']);
    await applyHostDns('dnsmasq', target(), env);
    expect(calls).toHaveLength(1);
    await removeHostDns('dnsmasq', 'demo', 'wm-demo', env);
    expect(existsSync(file)).toBe(false);
    expect(calls).toEqual(['systemctl restart dnsmasq', 'systemctl restart dnsmasq']);
    expect(readFileSync(env.hostsFile, 'utf8')).toBe(ORIGINAL);
  });

  it('sets split DNS on the interface with resolvectl and reverts it', async () => {
    env.resolvedRunning = () => true;
    expect(detectHostMethod(env)).toBe('resolved');
    await applyHostDns('resolved', target(), env);
    expect(calls).toEqual([
      'resolvectl dns wm-demo 10.8.0.1',
      'resolvectl domain wm-demo ~demo.wm',
    ]);
    await removeHostDns('resolved', 'demo', 'wm-demo', env);
    expect(calls.slice(2)).toEqual(['ip link show dev wm-demo', 'resolvectl revert wm-demo']);
  });

  it('falls back to the hosts file when neither runs', () => {
    expect(detectHostMethod(env)).toBe('hosts');
  });
});

describe('MeshDns', () => {
  it('follows maps, answers on the mesh address, and removal leaves no trace', async () => {
    const ctx = { stateDir: dir, env, log: silentLogger };
    expect(await setDnsAtJoin(ctx, 'demo', 'wm-demo', true)).toContain('a marked block in');
    const local = (m: ReturnType<typeof map>) => ({
      ...m,
      self: { ...m.self, addressV4: '127.0.0.1' },
    });
    const dns = new MeshDns({
      network: 'demo',
      iface: 'wm-demo',
      stateDir: dir,
      env,
      log: silentLogger,
      serve: true,
      port: 0,
      method: 'hosts',
    });
    const lines: string[] = [];
    await dns.update(local(map([peer(2)])));
    expect(readFileSync(env.hostsFile, 'utf8')).toContain('10.8.0.2 node-2.demo.wm');
    const r = new Resolver({ timeout: 2000, tries: 1 });
    r.setServers([dns.listening[0] as string]);
    expect(await r.resolve4('node-2.demo.wm')).toEqual(['10.8.0.2']);
    // A rename: the old name goes, the new one answers, in the resolver and in the hosts file.
    await dns.update(local(map([peer(2, { name: 'nas', dnsName: 'nas.demo.wm' })], 2)));
    expect(await r.resolve4('nas.demo.wm')).toEqual(['10.8.0.2']);
    await expect(r.resolve4('node-2.demo.wm')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(readFileSync(env.hostsFile, 'utf8')).not.toContain('node-2.demo.wm');
    const s = loadDnsSetting(dir, 'demo');
    expect(s).toMatchObject({ enabled: true, method: 'hosts', domain: 'demo.wm' });
    lines.push(describeDnsSetting(s, env));
    expect(lines[0]).toMatch(
      /dns on: names under demo\.wm through a marked block in .*hosts, resolver on 127\.0\.0\.1:\d+/,
    );
    await dns.remove();
    expect(readFileSync(env.hostsFile, 'utf8')).toBe(ORIGINAL);
    expect(loadDnsSetting(dir, 'demo')).toBeNull();
    await expect(r.resolve4('nas.demo.wm')).rejects.toBeTruthy();
  });

  it('with --dns off touches nothing and says so', async () => {
    const ctx = { stateDir: dir, env, log: silentLogger };
    expect(await setDnsAtJoin(ctx, 'demo', 'wm-demo', false)).toContain('dns off');
    expect(readFileSync(env.hostsFile, 'utf8')).toBe(ORIGINAL);
    expect(calls).toEqual([]);
    expect(describeDnsSetting(loadDnsSetting(dir, 'demo'), env)).toContain('dns off');
  });
});
