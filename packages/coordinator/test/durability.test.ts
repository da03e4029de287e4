// Durability: the built coordinator is killed with SIGKILL during a registration burst; after a
// restart every registration that was answered 2xx is there and SQLite's integrity check passes.
import { afterAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { api, registration } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'wm-coord-kill-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** Starts the built CLI and resolves with its URL and stdout once it listens. */
function serve(): Promise<{ child: ChildProcess; url: string; stdout: string }> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dir,
      '--log-level',
      'warn',
      '--register-burst',
      '100000',
      '--register-rate',
      '100000',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  children.push(child);
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stdout);
      if (m?.[1]) resolve({ child, url: m[1], stdout });
    });
    child.once('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${stderr}`)));
  });
}

it('keeps every acknowledged registration across kill -9', { timeout: 60_000 }, async () => {
  expect(existsSync(CLI), `build first (pnpm exec tsc -b): ${CLI} is missing`).toBe(true);
  const first = await serve();
  const token = /admin token \(shown once; store it now\): (wma_\S+)/.exec(first.stdout)?.[1];
  expect(token).toBeDefined();
  const admin = (method: string, path: string, body?: unknown) =>
    api(first.url, method, path, { token, body });
  expect(
    (await admin('POST', '/api/v1/networks', { name: 'kill', ipv4Cidr: '10.40.0.0/16' })).status,
  ).toBe(201);
  const key = (await admin('POST', '/api/v1/networks/kill/keys', { autoApprove: true })).body
    .key as string;

  // Keep 16 registrations in flight; kill the process by PID once 60 have been acknowledged.
  const acked: { nodeId: string; nodeSecret: string }[] = [];
  let next = 0;
  let killed = false;
  const worker = async (): Promise<void> => {
    while (!killed) {
      const i = next++;
      try {
        const r = await api(first.url, 'POST', '/api/v1/register', {
          body: registration('kill', `n${i}`, { enrollmentKey: key }),
        });
        if (r.status === 201) acked.push(r.body);
        else throw new Error(`unexpected ${r.status}: ${r.text}`);
      } catch (e) {
        if (!killed) throw e;
      }
      if (acked.length >= 60 && !killed) {
        killed = true;
        process.kill(first.child.pid as number, 'SIGKILL');
      }
    }
  };
  const exited = new Promise((r) => first.child.once('exit', r));
  await Promise.all(Array.from({ length: 16 }, worker));
  await exited;
  expect(first.child.signalCode).toBe('SIGKILL');
  expect(next).toBeGreaterThan(acked.length);

  const second = await serve();
  expect(second.stdout).not.toContain('admin token');
  const nodes = (await api(second.url, 'GET', '/api/v1/networks/kill/nodes', { token })).body as {
    id: string;
    addressV4: string;
  }[];
  const ids = new Set(nodes.map((n) => n.id));
  for (const a of acked) expect(ids.has(a.nodeId), `node ${a.nodeId} lost`).toBe(true);
  expect(new Set(nodes.map((n) => n.addressV4)).size).toBe(nodes.length);
  // Their secrets still authenticate.
  for (const a of acked.slice(0, 5))
    expect((await api(second.url, 'GET', '/api/v1/node/map', { token: a.nodeSecret })).status).toBe(
      200,
    );
  const stopped = new Promise((r) => second.child.once('exit', r));
  second.child.kill('SIGTERM');
  await stopped;

  const db = new Database(join(dir, 'coordinator.db'), { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  } finally {
    db.close();
  }
});
