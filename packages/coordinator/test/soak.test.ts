// Soak: the built coordinator takes 20,000 node reports (check-ins with peer status from 50 nodes,
// every 100th with a new endpoint, so maps change, snapshots reload and the relay fallback looks)
// through fastify's inject (the whole HTTP layer without a socket), in a child process run with
// --expose-gc. Its heap after full collections at 1k, 10k and 20k reports is printed and must stay
// flat: about 0.1 MiB of growth when nothing leaks; keeping one small object per report (~100 B)
// grows it by 1.9 MiB and breaks the bound.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const DIST = new URL('../dist/index.js', import.meta.url).href;
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const REPORTS = 20_000;
const CHECKPOINTS = [1_000, 10_000, REPORTS];
const NODES = 50;
const PEERS_PER_REPORT = 10;
const CONCURRENCY = 8;
/** Heap growth allowed from the first checkpoint to the last (19,000 reports: ~55 B each). */
const MAX_GROWTH_BYTES = 1024 * 1024;
// About 25 s of CPU (the child's user+sys time for the whole run); the timeout only ends a hung run
// on a machine shared with other work.
const CHILD_TIMEOUT_MS = 240_000;

// Runs in the child, on a data directory the test makes (and removes even if the child is killed);
// on tmpfs where there is one, so 20,000 fsyncs do not dominate the run.
const CHILD = `
import { randomBytes } from 'node:crypto';
const { startCoordinator } = await import(${JSON.stringify(DIST)});
const c = await startCoordinator({
  listen: '127.0.0.1:0', dataDir: process.env.WM_SOAK_DIR, logLevel: 'silent',
  registerBurst: 1e6, registerRefillPerS: 1e6,
});
try {
  const call = async (method, path, token, body, want) => {
    const r = await c.inject({
      method, url: path,
      headers: token ? { authorization: 'Bearer ' + token } : {},
      ...(body === undefined ? {} : { payload: body }),
    });
    if (r.statusCode !== want) throw new Error(method + ' ' + path + ': ' + r.statusCode + ' ' + r.body);
    return r.body === '' ? null : JSON.parse(r.body);
  };
  const admin = c.adminToken;
  const { protocolVersion } = await call('GET', '/api/v1/info', null, undefined, 200);
  await call('POST', '/api/v1/networks', admin, { name: 'soak', ipv4Cidr: '10.50.0.0/16' }, 201);
  const { key } = await call('POST', '/api/v1/networks/soak/keys', admin, { autoApprove: true }, 201);
  const nodes = [];
  for (let i = 0; i < ${NODES}; i++) {
    const publicKey = randomBytes(32).toString('base64');
    const r = await call('POST', '/api/v1/register', null, {
      protocolVersion, network: 'soak', name: 'n' + i, publicKey, os: 'linux', version: 'soak',
      backend: 'userspace', listenPort: 51820, localEndpoints: [{ ip: '192.168.7.' + (i + 1), port: 51820 }],
      enrollmentKey: key,
    }, 201);
    nodes.push({ secret: r.nodeSecret, publicKey, mapVersion: null, port: 51820 });
  }
  const report = async (i) => {
    const n = nodes[i % nodes.length];
    if (i % 100 === 99) n.port = 40000 + (i % 20000);
    const peers = [];
    for (let p = 1; p <= ${PEERS_PER_REPORT}; p++) {
      const peer = nodes[(i + p) % nodes.length];
      peers.push({ publicKey: peer.publicKey, latestHandshakeMs: null, rxBytes: i * 100, txBytes: i * 90,
        endpoint: { ip: '192.168.7.' + (((i + p) % nodes.length) + 1), port: 51820 }, handshakeAgeMs: 1000 + (i % 5000) });
    }
    const r = await call('POST', '/api/v1/node/checkin', n.secret, {
      protocolVersion, listenPort: 51820, localEndpoints: [{ ip: '192.168.7.' + ((i % nodes.length) + 1), port: n.port }],
      peers, ...(n.mapVersion === null ? {} : { knownMapVersion: n.mapVersion }),
    }, 200);
    n.mapVersion = r.mapVersion;
  };
  let done = 0;
  for (const until of ${JSON.stringify(CHECKPOINTS)}) {
    await Promise.all(Array.from({ length: ${CONCURRENCY} }, async () => {
      while (done < until) await report(done++);
    }));
    // Let coalesced pushes and relay-fallback looks finish, then collect fully.
    await new Promise((r) => setTimeout(r, 500));
    for (let g = 0; g < 4; g++) { globalThis.gc(); await new Promise((r) => setImmediate(r)); }
    console.log(JSON.stringify({ reports: done, heapUsed: process.memoryUsage().heapUsed }));
  }
} finally {
  await c.close();
}
`;

it(
  'keeps the coordinator’s heap flat over 20,000 node reports',
  async () => {
    expect(existsSync(fileURLToPath(DIST)), 'build the packages first (pnpm run build)').toBe(true);
    const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'wm-soak-'));
    let stdout = '';
    let stderr = '';
    let code: number | null;
    try {
      const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD], {
        cwd: PACKAGE_DIR,
        env: { ...process.env, WM_SOAK_DIR: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
      code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearTimeout(timer);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(code, stderr).toBe(0);
    const samples = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { reports: number; heapUsed: number });
    expect(samples.map((s) => s.reports)).toEqual(CHECKPOINTS);
    const mib = (b: number) => (b / 1024 / 1024).toFixed(1);
    console.log(
      `coordinator heap after GC: ${samples.map((s) => `${s.reports} reports ${mib(s.heapUsed)} MiB`).join(', ')}`,
    );
    const first = samples[0]?.heapUsed ?? 0;
    const last = samples.at(-1)?.heapUsed ?? Infinity;
    expect(last - first).toBeLessThan(MAX_GROWTH_BYTES);
  },
  CHILD_TIMEOUT_MS + 10_000,
);
