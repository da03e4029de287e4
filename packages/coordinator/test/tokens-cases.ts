// Named admin tokens with scopes and the audit log (issue 17), run against each storage backend
// (tokens-sqlite.test.ts, tokens-postgres.test.ts): each scope tries every admin route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminToken, AuditEntry, ErrorBody } from '@wiremesh/protocol';
import { api, registration, startTestCoordinator, type TestCoordinator } from './helpers.js';
import type { CoordinatorOptions } from '../src/index.js';

/** Every admin route, on resources that do not exist (an allowed call then answers 4xx, not 401/403). */
const ROUTES: [method: string, path: string, need: 'read' | 'approve' | 'full'][] = [
  ['GET', '/api/v1/networks', 'read'],
  ['POST', '/api/v1/networks', 'full'],
  ['GET', '/api/v1/networks/none', 'read'],
  ['PATCH', '/api/v1/networks/none', 'full'],
  ['DELETE', '/api/v1/networks/none', 'full'],
  ['GET', '/api/v1/networks/none/keys', 'read'],
  ['POST', '/api/v1/networks/none/keys', 'full'],
  ['DELETE', '/api/v1/networks/none/keys/none', 'full'],
  ['GET', '/api/v1/networks/none/nodes', 'read'],
  ['GET', '/api/v1/networks/none/paths', 'read'],
  ['GET', '/api/v1/nodes', 'read'],
  ['GET', '/api/v1/nodes/none', 'read'],
  ['DELETE', '/api/v1/nodes/none', 'full'],
  ['GET', '/api/v1/nodes/none/map', 'read'],
  ['POST', '/api/v1/nodes/none/approve', 'approve'],
  ['POST', '/api/v1/nodes/none/reject', 'approve'],
  ['POST', '/api/v1/nodes/none/release', 'full'],
  ['PUT', '/api/v1/nodes/none/egress', 'full'],
  ['DELETE', '/api/v1/nodes/none/egress', 'full'],
  ['PUT', '/api/v1/nodes/none/ingress', 'full'],
  ['DELETE', '/api/v1/nodes/none/ingress', 'full'],
  ['PUT', '/api/v1/nodes/none/relay', 'full'],
  ['DELETE', '/api/v1/nodes/none/relay', 'full'],
  ['GET', '/api/v1/networks/none/extclients', 'read'],
  ['POST', '/api/v1/networks/none/extclients', 'full'],
  ['GET', '/api/v1/extclients/none', 'read'],
  ['DELETE', '/api/v1/extclients/none', 'full'],
  ['GET', '/api/v1/extclients/none/config', 'full'],
  ['GET', '/api/v1/extclients/none/qr.png', 'full'],
  ['GET', '/api/v1/extclients/none/qr.txt', 'full'],
  ['GET', '/api/v1/admin/tokens', 'read'],
  ['POST', '/api/v1/admin/tokens', 'full'],
  ['DELETE', '/api/v1/admin/tokens/none', 'full'],
  ['GET', '/api/v1/admin/audit', 'read'],
];
const RANK = { read: 0, approve: 1, full: 2 } as const;

/** Registers the token tests; `backend` gives the storage options (called once, before the suite). */
export function tokenCases(backend: () => Promise<Pick<CoordinatorOptions, 'database'>>): void {
  let c: TestCoordinator;
  const tokens: Record<'read' | 'approve' | 'full', string> = { read: '', approve: '', full: '' };
  beforeAll(async () => {
    c = await startTestCoordinator({ ...(await backend()) });
    for (const scope of ['read', 'approve', 'full'] as const) {
      const r = await api(c.url, 'POST', '/api/v1/admin/tokens', {
        token: c.admin,
        body: { name: `ci-${scope}`, scope },
      });
      expect(r.status, r.text).toBe(201);
      const t = AdminToken.parse(r.body);
      expect(t).toMatchObject({ name: `ci-${scope}`, scope, revoked: false });
      tokens[scope] = t.token ?? '';
    }
  });
  afterAll(async () => c.close());

  it('lets each scope use exactly its routes (and the first admin token all of them)', async () => {
    for (const [scope, token] of [...Object.entries(tokens), ['first', c.admin]] as const) {
      for (const [method, path, need] of ROUTES) {
        const r = await api(c.url, method, path, {
          token,
          body: method === 'GET' || method === 'DELETE' ? undefined : {},
        });
        const allowed = scope === 'first' || RANK[scope as keyof typeof RANK] >= RANK[need];
        if (allowed) {
          expect([method, path, scope, r.status]).not.toEqual([method, path, scope, 403]);
          expect(r.status, `${scope} ${method} ${path}: ${r.text}`).not.toBe(401);
        } else {
          expect(r.status, `${scope} ${method} ${path}: ${r.text}`).toBe(403);
          expect(ErrorBody.parse(r.body).message).toContain(`needs ${need}`);
        }
      }
    }
    // A read token is also the metrics token: network names at /metrics.
    const m = await api(c.url, 'GET', '/metrics', { token: tokens.read });
    expect(m.status).toBe(200);
    expect(m.text).toContain('# HELP wiremesh_nodes');
  });

  it('keeps an audit log of every mutating call, without secrets, after a scripted session', async () => {
    const admin = (method: string, path: string, body?: unknown, token = c.admin) =>
      api(c.url, method, path, { token, body });
    expect(
      (await admin('POST', '/api/v1/networks', { name: 'aud', ipv4Cidr: '10.91.0.0/24' })).status,
    ).toBe(201);
    const key = (await admin('POST', '/api/v1/networks/aud/keys', {})).body.key as string;
    const reg = await api(c.url, 'POST', '/api/v1/register', {
      body: registration('aud', 'n1', { enrollmentKey: key }),
    });
    expect(reg.status, reg.text).toBe(201);
    expect(
      (await admin('POST', `/api/v1/nodes/${reg.body.nodeId}/approve`, undefined, tokens.approve))
        .status,
    ).toBe(200);
    expect(
      (await admin('DELETE', `/api/v1/nodes/${reg.body.nodeId}`, undefined, tokens.read)).status,
    ).toBe(403);
    const made = await admin('POST', '/api/v1/admin/tokens', { name: 'temp', scope: 'read' });
    const temp = made.body.token as string;
    expect((await admin('DELETE', `/api/v1/admin/tokens/${made.body.id}`)).status).toBe(200);
    expect((await admin('GET', '/api/v1/networks', undefined, temp)).status).toBe(401);
    // A stranger's mutating calls are refused and not kept.
    expect((await admin('DELETE', '/api/v1/networks/aud', undefined, 'wma_stranger')).status).toBe(
      401,
    );
    expect((await api(c.url, 'POST', '/api/v1/networks', { body: {} })).status).toBe(401);
    const rotated = (await admin('POST', '/api/v1/admin/token/rotate')).body.token as string;
    c.admin = rotated;

    const log = await admin('GET', '/api/v1/admin/audit?limit=7', undefined, tokens.read);
    expect(log.status, log.text).toBe(200);
    const entries = log.body.map((e: unknown) => AuditEntry.parse(e)) as AuditEntry[];
    expect(entries.map((e) => [e.actor, e.method, e.route, e.status])).toEqual([
      ['admin', 'POST', '/api/v1/admin/token/rotate', 200],
      ['admin', 'DELETE', '/api/v1/admin/tokens/:id', 200],
      ['admin', 'POST', '/api/v1/admin/tokens', 201],
      ['ci-read', 'DELETE', '/api/v1/nodes/:id', 403],
      ['ci-approve', 'POST', '/api/v1/nodes/:id/approve', 200],
      ['admin', 'POST', '/api/v1/networks/:network/keys', 201],
      ['admin', 'POST', '/api/v1/networks', 201],
    ]);
    expect(entries[4]?.path).toBe(`/api/v1/nodes/${reg.body.nodeId}/approve`);
    for (const e of entries) {
      expect(e.ip).toBe('127.0.0.1');
      expect(e.at).toBeGreaterThan(0);
    }
    const text = JSON.stringify((await admin('GET', '/api/v1/admin/audit?limit=10000')).body);
    for (const secret of [key, temp, rotated, tokens.full, tokens.read, reg.body.nodeSecret])
      expect(text).not.toContain(secret);
    expect(
      (await admin('GET', '/api/v1/admin/tokens')).body.map((t: AdminToken) => [t.name, t.revoked]),
    ).toEqual([
      ['ci-read', false],
      ['ci-approve', false],
      ['ci-full', false],
      ['temp', true],
    ]);
  });
}
