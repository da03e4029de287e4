// The admin CLI (built dist/cli.js) against a live coordinator: tables by default, --json for
// scripts, one clear line and exit code 1 on errors, and `admin-token rotate` on the database.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { api, registration, startTestCoordinator, type TestCoordinator } from './helpers.js';

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
let c: TestCoordinator;
beforeAll(async () => {
  c = await startTestCoordinator({ reflectPort: 0 });
});
afterAll(async () => c.close());

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, WIREMESH_SERVER: c.url, WIREMESH_ADMIN_TOKEN: c.admin } },
      (err, stdout, stderr) =>
        resolve({
          code: err === null ? 0 : Number((err as { code?: number }).code ?? 1),
          stdout,
          stderr,
        }),
    );
  });
}

it(
  'manages networks, keys, nodes, gateways and external clients',
  { timeout: 60_000 },
  async () => {
    expect(existsSync(CLI), `build first (pnpm exec tsc -b): ${CLI} is missing`).toBe(true);
    const created = await cli(
      'network',
      'create',
      'clinet',
      '--cidr',
      '10.70.0.0/24',
      '--allow-without-key',
    );
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^NAME\s+IPV4\s+IPV6\s+PORT/);
    expect(created.stdout).toContain('10.70.0.0/24');
    const list = JSON.parse((await cli('network', 'list', '--json')).stdout);
    expect(list.map((n: { name: string }) => n.name)).toContain('clinet');

    const key = await cli(
      'key',
      'create',
      '--network',
      'clinet',
      '--auto-approve',
      '--uses',
      '2',
      '--expires',
      '1h',
    );
    const secret = /enrollment key \(shown once\): (wmk_\S+)/.exec(key.stdout)?.[1];
    expect(secret).toBeDefined();
    expect((await cli('key', 'list', '--network', 'clinet')).stdout).toMatch(
      /0\/2\s+\S+\s+yes\s+no/,
    );

    const a = (
      await api(c.url, 'POST', '/api/v1/register', {
        body: registration('clinet', 'a', { enrollmentKey: secret }),
      })
    ).body;
    const b = (await api(c.url, 'POST', '/api/v1/register', { body: registration('clinet', 'b') }))
      .body;
    const pending = await cli('node', 'list', '--network', 'clinet', '--state', 'pending');
    expect(pending.stdout).toContain(b.nodeId);
    expect(pending.stdout).not.toContain(a.nodeId);
    expect((await cli('node', 'approve', b.nodeId)).stdout).toMatch(/approved/);
    expect(JSON.parse((await cli('node', 'show', b.nodeId, '--json')).stdout).state).toBe(
      'approved',
    );

    expect(
      (
        await cli(
          'gateway',
          'egress',
          a.nodeId,
          '--ranges',
          '192.168.100.0/24,10.99.0.0/16',
          '--interface',
          'eth1',
        )
      ).stdout,
    ).toContain('egress(192.168.100.0/24 10.99.0.0/16)');
    const map = JSON.parse((await cli('node', 'map', b.nodeId)).stdout);
    expect(map.peers[0].allowedIps).toEqual(['10.70.0.1/32', '192.168.100.0/24', '10.99.0.0/16']);
    expect(
      (await cli('gateway', 'ingress', b.nodeId, '--endpoint', '198.51.100.1:51820')).code,
    ).toBe(0);
    expect((await cli('gateway', 'relay', b.nodeId, '--nodes', a.nodeId)).stdout).toContain(
      'relay',
    );

    const ext = JSON.parse(
      (await cli('extclient', 'create', '--network', 'clinet', '--name', 'phone', '--json')).stdout,
    );
    const conf = await cli('extclient', 'config', ext.id);
    expect(conf.stdout).toContain('Endpoint = 198.51.100.1:51820');
    expect((await cli('extclient', 'qr', ext.id)).stdout).toMatch(/[█▀▄]/);
    expect((await cli('extclient', 'list', '--network', 'clinet')).stdout).toContain('phone');

    const bad = await cli('node', 'approve', 'nope');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe('wiremesh-coordinator: no node with id nope (not_found)');
    const unknown = await cli('frobnicate');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown command frobnicate');
  },
);

it(
  'creates, lists and revokes named admin tokens, and lists the audit log',
  { timeout: 30_000 },
  async () => {
    const made = await cli('token', 'create', 'grafana', '--scope', 'read');
    expect(made.code, made.stderr).toBe(0);
    const token = /admin token grafana \(shown once\): (wma_\S+)/.exec(made.stdout)?.[1] ?? '';
    expect((await api(c.url, 'GET', '/api/v1/networks', { token })).status).toBe(200);
    expect((await api(c.url, 'DELETE', '/api/v1/networks/x', { token })).status).toBe(403);
    expect((await cli('token', 'list')).stdout).toMatch(/grafana\s+read\s+\S+\s+\S+.*\s+no/);
    const audit = await cli('audit', 'list', '--limit', '2');
    expect(audit.stdout).toMatch(/^WHEN\s+WHO\s+FROM\s+WHAT\s+STATUS$/m);
    expect(audit.stdout).toMatch(/grafana\s+127\.0\.0\.1\s+DELETE \/api\/v1\/networks\/x\s+403/);
    expect(audit.stdout).toMatch(/admin\s+127\.0\.0\.1\s+POST \/api\/v1\/admin\/tokens\s+201/);
    expect(audit.stdout).not.toContain(token);
    expect((await cli('token', 'revoke', 'grafana')).stdout).toMatch(/grafana\s+read.*yes/);
    expect((await api(c.url, 'GET', '/api/v1/networks', { token })).status).toBe(401);
    const bad = await cli('token', 'create', 'x', '--scope', 'root');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  },
);

it('rotates the admin token directly in the database', { timeout: 30_000 }, async () => {
  const r = await cli('admin-token', 'rotate', '--data-dir', c.dir, '--json');
  expect(r.code, r.stderr).toBe(0);
  const token = JSON.parse(r.stdout).token as string;
  expect((await api(c.url, 'GET', '/api/v1/networks', { token: c.admin })).status).toBe(401);
  expect((await api(c.url, 'GET', '/api/v1/networks', { token })).status).toBe(200);
  c.admin = token;
});
