// The `wgts` program as wireguard-go's main.go behaves: daemonizes and exits 0 once its socket is up,
// -f stays in the foreground, LOG_LEVEL, clean exit (socket and interface removed) on SIGINT, SIGTERM
// and interface deletion, and one clear line plus status 1 for each way it cannot start.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';

import {
  check,
  cleanupAll,
  createNamespace,
  linkNamespaces,
  onCleanup,
  pollUntil,
  run,
  spawnIn,
} from './harness/netns.js';
import {
  SOCKET_DIR,
  exists,
  socketAnswers,
  startDaemon,
  tempFile,
  uniqueIface,
  wgDump,
  wgKeypair,
  wgtsCommand,
} from './harness/wgts.js';

afterEach(() => cleanupAll());

const START_MS = 20_000;

/** The environment wgts gets: no LOG_LEVEL unless a test sets one. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (extra.LOG_LEVEL === undefined) delete e.LOG_LEVEL;
  delete e.WG_PROCESS_FOREGROUND;
  return e;
}

function wgts(ns: string | null, args: string[], extra: NodeJS.ProcessEnv = {}) {
  return run(ns, [...wgtsCommand(), ...args], { env: env(extra), timeoutMs: START_MS });
}

async function pidsIn(ns: string): Promise<number[]> {
  return (await check(null, ['ip', 'netns', 'pids', ns]))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

async function linkExists(ns: string, iface: string): Promise<boolean> {
  return (await run(ns, ['ip', 'link', 'show', iface])).status === 0;
}

const socketPath = (iface: string): string => join(SOCKET_DIR, `${iface}.sock`);

describe('wgts CLI', () => {
  test('--version and usage', async () => {
    const v = await wgts(null, ['--version']);
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/^wgts v\d+\.\d+\.\d+\n/);
    expect(v.stdout).toMatch(/Crypto \(auto\): (native|noble)/);
    const u = await wgts(null, []);
    expect(u.status).toBe(1);
    expect(u.stderr).toBe('Usage: wgts [-f/--foreground] INTERFACE-NAME\n');
    expect((await wgts(null, ['-f'])).status).toBe(1);
  });

  test('daemonizes: exits 0 with the socket already up; the daemon goes away when its interface is deleted', async () => {
    const ns = createNamespace();
    const iface = uniqueIface('d');
    const t0 = performance.now();
    const r = await wgts(ns, [iface]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toBe('');
    console.log(`wgts daemonized and ready in ${(performance.now() - t0).toFixed(0)} ms`);
    // Ready means ready: no waiting needed before configuring it.
    expect(await socketAnswers(ns, iface)).toBe(true);
    const pids = await pidsIn(ns);
    expect(pids).toHaveLength(1);
    expect(statSync(socketPath(iface)).mode & 0o777).toBe(0o600);
    const k = wgKeypair();
    await check(ns, [
      'wg',
      'set',
      iface,
      'private-key',
      tempFile(k.privateKey, 'k'),
      'listen-port',
      '12001',
    ]);
    expect((await wgDump(ns, iface)).publicKey).toBe(k.publicKey);

    await check(ns, ['ip', 'link', 'del', iface]);
    await pollUntil(
      'the daemon to exit after ip link del',
      async () => (await pidsIn(ns)).length === 0,
      10_000,
    );
    expect(exists(socketPath(iface))).toBe(false);
  });

  test('daemon logs go to WGTS_LOG_FILE at LOG_LEVEL=verbose; SIGTERM removes socket and interface', async () => {
    const ns = createNamespace();
    const iface = uniqueIface('l');
    const dir = mkdtempSync(join(tmpdir(), 'wgts-log-'));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const log = join(dir, 'wgts.log');
    const r = await wgts(ns, [iface], { LOG_LEVEL: 'verbose', WGTS_LOG_FILE: log });
    expect(r.status, r.stderr).toBe(0);
    const [pid] = await pidsIn(ns);
    process.kill(pid!, 'SIGTERM');
    await pollUntil(
      'the daemon to exit on SIGTERM',
      async () => (await pidsIn(ns)).length === 0,
      10_000,
    );
    expect(exists(socketPath(iface))).toBe(false);
    expect(await linkExists(ns, iface)).toBe(false);
    const text = readFileSync(log, 'utf8');
    expect(text).toMatch(
      new RegExp(
        `^DEBUG: \\(${iface}\\) \\d{4}/\\d\\d/\\d\\d \\d\\d:\\d\\d:\\d\\d Starting wgts version`,
        'm',
      ),
    );
    expect(text).toContain('UAPI listener started');
    expect(text).toContain('Received SIGTERM');
    expect(text).toMatch(/INFO: .* Crypto: (native|noble) \(/);
    // Once, saying what the kernel granted (or why not).
    expect(text.match(/INFO: .* TUN offloads(: TSO4\/TSO6| off: )/gm)).toHaveLength(1);
  });

  test.each(['SIGINT', 'SIGTERM'] as const)(
    '-f: %s closes everything and exits 0',
    async (signal) => {
      const ns = createNamespace();
      const d = await startDaemon(ns, 'wgts', uniqueIface('s'));
      expect(await linkExists(ns, d.iface)).toBe(true);
      d.proc.kill(signal);
      expect(await d.proc.exited).toEqual({ code: 0, signal: null });
      expect(exists(socketPath(d.iface))).toBe(false);
      expect(await linkExists(ns, d.iface)).toBe(false);
    },
  );

  test('-f: deleting the interface ends the daemon with status 0 and removes its socket', async () => {
    const ns = createNamespace();
    const d = await startDaemon(ns, 'wgts', uniqueIface('x'));
    await check(ns, ['ip', 'link', 'del', d.iface]);
    expect(await d.proc.exited).toEqual({ code: 0, signal: null });
    expect(exists(socketPath(d.iface))).toBe(false);
  });

  test('a stale socket file from a killed daemon is replaced', async () => {
    const ns = createNamespace();
    const iface = uniqueIface('z');
    const path = socketPath(iface);
    onCleanup(() => rmSync(path, { force: true }));
    const r = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(r.signal).toBe('SIGKILL');
    expect(exists(path)).toBe(true);
    const d = await startDaemon(ns, 'wgts', iface);
    expect(await socketAnswers(ns, iface)).toBe(true);
    await d.stop();
  });
});

describe('wgts cannot start: one clear line, status 1', () => {
  test('name too long; LOG_LEVEL=silent says nothing', async () => {
    const ns = createNamespace();
    const r = await wgts(ns, ['-f', 'wt0123456789abcd']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(
      /^ERROR: \(wt0123456789abcd\) .*Failed to create TUN device: .*16 bytes.*at most 15/,
    );
    const silent = await wgts(ns, ['-f', 'wt0123456789abcd'], { LOG_LEVEL: 'silent' });
    expect(silent).toMatchObject({ status: 1, stdout: '', stderr: '' });
    // Daemonizing, the parent prints the child's reason.
    const bg = await wgts(ns, ['wt0123456789abcd']);
    expect(bg.status).toBe(1);
    expect(bg.stderr).toMatch(/Failed to create TUN device: .*at most 15/);
  });

  test('the name is busy (another daemon holds the TUN), with -f and daemonizing', async () => {
    const ns = createNamespace();
    const d = await startDaemon(ns, 'wgts', uniqueIface('b'));
    for (const args of [['-f', d.iface], [d.iface]]) {
      const r = await wgts(ns, args);
      expect(r.status).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/Failed to create TUN device: .*(busy|in use)/i);
    }
    expect(await socketAnswers(ns, d.iface)).toBe(true);
    expect(d.proc.running).toBe(true);
  });

  test('another daemon (wireguard-go) answers on the socket: refuse, leave its socket alone', async () => {
    const nsGo = createNamespace();
    const ns = createNamespace();
    const go = await startDaemon(nsGo, 'wireguard-go', uniqueIface('w'));
    const r = await wgts(ns, ['-f', go.iface]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/UAPI listen error: .*another daemon .*already serves interface/);
    expect(await socketAnswers(nsGo, go.iface)).toBe(true);
    expect(await linkExists(ns, go.iface)).toBe(false);
  });

  test('no /dev/net/tun', async () => {
    const ns = createNamespace();
    const r = await run(
      ns,
      [
        'unshare',
        '-m',
        'sh',
        '-c',
        'mount -t tmpfs tmpfs /dev/net && exec "$0" "$@"',
        ...wgtsCommand(),
        '-f',
        uniqueIface('n'),
      ],
      { env: env(), timeoutMs: START_MS },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Failed to create TUN device: .*\/dev\/net\/tun/);
  });

  test('no CAP_NET_ADMIN', async () => {
    const ns = createNamespace();
    const r = await run(
      ns,
      [
        'setpriv',
        '--bounding-set',
        '-net_admin',
        '--inh-caps',
        '-net_admin',
        '--',
        ...wgtsCommand(),
        '-f',
        uniqueIface('c'),
      ],
      { env: env(), timeoutMs: START_MS },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Failed to create TUN device: .*(CAP_NET_ADMIN|EPERM|not permitted)/);
  });

  test('an unknown WGTS_OFFLOAD', async () => {
    const r = await wgts(createNamespace(), ['-f', uniqueIface('o')], { WGTS_OFFLOAD: 'fast' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/WGTS_OFFLOAD must be auto, udp or off, got 'fast'/);
  });

  test('an unknown WGTS_CRYPTO', async () => {
    const r = await wgts(createNamespace(), ['-f', uniqueIface('k')], { WGTS_CRYPTO: 'fast' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/WGTS_CRYPTO must be auto, noble or native, got 'fast'/);
  });
});

describe('WGTS_CRYPTO', () => {
  test('noble (pure TypeScript) is reported at start and interoperates with wireguard-go', async () => {
    const nsA = createNamespace();
    const nsB = createNamespace();
    linkNamespaces(
      { ns: nsA, name: 'veth0', ipv4: '192.168.243.1/24' },
      { ns: nsB, name: 'veth0', ipv4: '192.168.243.2/24' },
    );
    // offloads off too: the plain packet path interoperates as well
    const a = await startDaemon(nsA, 'wgts', uniqueIface('p'), {
      WGTS_CRYPTO: 'noble',
      WGTS_OFFLOAD: 'off',
    });
    const b = await startDaemon(nsB, 'wireguard-go', uniqueIface('q'));
    expect(a.proc.output()).toMatch(/INFO: .* Crypto: noble \(noble forced by option\)/);
    expect(a.proc.output()).toMatch(/INFO: .* TUN offloads turned off \(WGTS_OFFLOAD=off\)/);
    const ka = wgKeypair();
    const kb = wgKeypair();
    await check(nsA, [
      'wg',
      'set',
      a.iface,
      'private-key',
      tempFile(ka.privateKey, 'k'),
      'listen-port',
      '12011',
      'peer',
      kb.publicKey,
      'allowed-ips',
      '10.203.0.2/32',
      'endpoint',
      '192.168.243.2:12012',
    ]);
    await check(nsB, [
      'wg',
      'set',
      b.iface,
      'private-key',
      tempFile(kb.privateKey, 'k'),
      'listen-port',
      '12012',
      'peer',
      ka.publicKey,
      'allowed-ips',
      '10.203.0.1/32',
    ]);
    for (const [ns, d, ip] of [
      [nsA, a, '10.203.0.1'],
      [nsB, b, '10.203.0.2'],
    ] as const) {
      await check(ns, ['ip', 'address', 'add', `${ip}/24`, 'dev', d.iface]);
      await check(ns, ['ip', 'link', 'set', d.iface, 'up']);
    }
    const r = await run(nsA, ['ping', '-n', '-c', '3', '-i', '0.2', '-W', '3', '10.203.0.2'], {
      timeoutMs: 30_000,
    });
    expect(r.stdout).toMatch(/3 received/);
  });
});
