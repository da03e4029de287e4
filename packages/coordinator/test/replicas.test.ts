// Two coordinator replicas on one PostgreSQL: a change made through one reaches a push stream
// held by the other within a second (LISTEN/NOTIFY fan-out), in both directions.
import { afterAll, expect, it } from 'vitest';
import { RegisterResponse } from '@wiremesh/protocol';
import {
  api,
  registration,
  startTestCoordinator,
  StreamReader,
  type TestCoordinator,
} from './helpers.js';
import { startPostgres, type PgServer } from './pg-server.js';

let pg: PgServer | undefined;
const replicas: TestCoordinator[] = [];
afterAll(async () => {
  for (const r of replicas) await r.close();
  pg?.stop();
});

it('fans a change out across replicas within a second', { timeout: 60_000 }, async () => {
  pg = await startPostgres();
  const database = pg.createDatabase('wiremesh_replicas');
  // Both replicas start at once on an empty database: migrations and the admin token happen once.
  const started = await Promise.all([
    startTestCoordinator({ database }),
    startTestCoordinator({ database }),
  ]);
  replicas.push(...started);
  const [a, b] = started[0].adminToken !== null ? started : [started[1], started[0]];
  expect(a.adminToken).toMatch(/^wma_/);
  expect(b.adminToken).toBeNull();
  const token = a.admin;

  expect(
    (
      await api(b.url, 'POST', '/api/v1/networks', {
        token,
        body: { name: 'ha', ipv4Cidr: '10.50.0.0/16', allowJoinWithoutKey: true },
      })
    ).status,
  ).toBe(201);
  const key = (
    await api(a.url, 'POST', '/api/v1/networks/ha/keys', { token, body: { autoApprove: true } })
  ).body.key as string;
  const join = async (via: TestCoordinator, name: string, enrollmentKey?: string) =>
    RegisterResponse.parse(
      (
        await api(via.url, 'POST', '/api/v1/register', {
          body: registration('ha', name, { enrollmentKey }),
        })
      ).body,
    );

  const x = await join(a, 'x', key);
  const onB = await StreamReader.open(b.url, x.nodeSecret);
  await onB.next((e) => e.type === 'map');

  // Registered through A, seen on B's stream.
  let t0 = performance.now();
  const y = await join(a, 'y', key);
  await onB.next(
    (e) => e.type === 'patch' && e.patch.upsertPeers.some((p) => p.id === y.nodeId),
    1000,
  );
  expect(performance.now() - t0).toBeLessThan(1000);

  // Approved through B, seen on A's stream.
  const onA = await StreamReader.open(a.url, y.nodeSecret);
  await onA.next((e) => e.type === 'map');
  const z = await join(a, 'z');
  expect(z.state).toBe('pending');
  t0 = performance.now();
  expect((await api(b.url, 'POST', `/api/v1/nodes/${z.nodeId}/approve`, { token })).status).toBe(
    200,
  );
  await onA.next(
    (e) => e.type === 'patch' && e.patch.upsertPeers.some((p) => p.id === z.nodeId),
    1000,
  );
  expect(performance.now() - t0).toBeLessThan(1000);

  // A gateway change through A reaches B's stream too.
  await api(a.url, 'PUT', `/api/v1/nodes/${y.nodeId}/egress`, {
    token,
    body: { ranges: ['192.168.100.0/24'] },
  });
  await onB.next(
    (e) =>
      e.type === 'patch' &&
      e.patch.upsertPeers.some(
        (p) => p.id === y.nodeId && p.allowedIps.includes('192.168.100.0/24'),
      ),
    1000,
  );
  onA.close();
  onB.close();
});
