// Logs are structured JSON and never carry a secret: admin token, enrollment keys, node secrets
// and generated private keys stay out of every line, whatever the request did.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { api, registration, startTestCoordinator, type TestCoordinator } from './helpers.js';

const lines: string[] = [];
let c: TestCoordinator;
beforeAll(async () => {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  c = await startTestCoordinator({ logger: pino({ level: 'trace' }, sink) });
});
afterAll(async () => c.close());

it('logs requests without secrets', async () => {
  const token = { token: c.admin };
  await api(c.url, 'POST', '/api/v1/networks', {
    ...token,
    body: { name: 'logs', ipv4Cidr: '10.80.0.0/24' },
  });
  const key = (
    await api(c.url, 'POST', '/api/v1/networks/logs/keys', {
      ...token,
      body: { autoApprove: true },
    })
  ).body.key as string;
  const node = (
    await api(c.url, 'POST', '/api/v1/register', {
      body: registration('logs', 'a', { enrollmentKey: key }),
    })
  ).body;
  await api(c.url, 'PUT', `/api/v1/nodes/${node.nodeId}/ingress`, {
    ...token,
    body: { endpoint: '198.51.100.1:51820' },
  });
  const ext = (
    await api(c.url, 'POST', '/api/v1/networks/logs/extclients', {
      ...token,
      body: { name: 'phone' },
    })
  ).body;
  const conf = (await api(c.url, 'GET', `/api/v1/extclients/${ext.id}/config`, token)).text;
  const privateKey = /PrivateKey = (\S+)/.exec(conf)?.[1] as string;
  await api(c.url, 'GET', '/api/v1/node/map', { token: `${node.nodeSecret}x` });
  await api(c.url, 'POST', '/api/v1/register', {
    body: registration('logs', 'b', { enrollmentKey: `${key}x` }),
  });
  const rotated = (await api(c.url, 'POST', '/api/v1/admin/token/rotate', token)).body
    .token as string;
  c.admin = rotated;

  expect(lines.length).toBeGreaterThan(10);
  for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
  expect(lines.some((l) => l.includes('"node registered"'))).toBe(true);
  const all = lines.join('\n');
  for (const secret of [c.adminToken as string, rotated, key, node.nodeSecret, privateKey]) {
    expect(secret.length).toBeGreaterThan(20);
    expect(all).not.toContain(secret);
  }
  expect(all).not.toContain(node.nodeSecret.split('.')[1]);
});
