// DNS names through the admin API, run against SQLite and PostgreSQL (dns-sqlite/-postgres):
// the domain per network, custom records, one namespace with nodes and external clients,
// renames reaching maps, and the wg-quick DNS line of external clients.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsRecord, ErrorBody, NetworkDns, NetworkMap, RegisterResponse } from '@wiremesh/protocol';
import type { CoordinatorOptions } from '../src/index.js';
import { api, registration, startTestCoordinator, type TestCoordinator } from './helpers.js';

export function dnsCases(backend: () => Promise<Pick<CoordinatorOptions, 'database'>>): void {
  let c: TestCoordinator;
  beforeAll(async () => {
    c = await startTestCoordinator({ ...(await backend()) });
  });
  afterAll(async () => c.close());

  const admin = (method: string, path: string, body?: unknown) =>
    api(c.url, method, path, { token: c.admin, body });
  const expectError = (r: { status: number; body: unknown; text: string }, code: string) => {
    expect(ErrorBody.parse(r.body).code, r.text).toBe(code);
    expect(ErrorBody.parse(r.body).message).not.toMatch(/\n\s+at /);
  };
  // The cases share one range (their addresses are asserted); probe-cases.ts tests the refusal.
  async function network(name: string) {
    const r = await admin('POST', '/api/v1/networks', {
      name,
      ipv4Cidr: '10.30.0.0/24',
      allowOverlap: true,
    });
    expect(r.status, r.text).toBe(201);
    const k = await admin('POST', `/api/v1/networks/${name}/keys`, { autoApprove: true });
    return k.body.key as string;
  }
  async function join(net: string, name: string, key: string) {
    const r = await api(c.url, 'POST', '/api/v1/register', {
      body: registration(net, name, { enrollmentKey: key }),
    });
    expect(r.status, r.text).toBe(201);
    return RegisterResponse.parse(r.body);
  }
  const mapOf = async (secret: string) =>
    NetworkMap.parse((await api(c.url, 'GET', '/api/v1/node/map', { token: secret })).body);

  describe('domain', () => {
    it('defaults to the network name, or <name>.internal when that is a public TLD', async () => {
      await network('dn-demo');
      expect(
        NetworkDns.parse((await admin('GET', '/api/v1/networks/dn-demo/dns')).body).domain,
      ).toBe('dn-demo');
      await network('app');
      expect(NetworkDns.parse((await admin('GET', '/api/v1/networks/app/dns')).body).domain).toBe(
        'app.internal',
      );
    });

    it('is set per network; maps and DNS names follow it', async () => {
      const key = await network('dn-set');
      const a = await join('dn-set', 'alpha', key);
      const b = await join('dn-set', 'beta', key);
      const r = await admin('PUT', '/api/v1/networks/dn-set/dns', { domain: 'corp.internal' });
      expect(r.status, r.text).toBe(200);
      const m = await mapOf(b.nodeSecret);
      expect(m.network.dnsDomain).toBe('corp.internal');
      expect(m.self.dnsName).toBe('beta.corp.internal');
      expect(m.peers.find((p) => p.id === a.nodeId)?.dnsName).toBe('alpha.corp.internal');
    });

    it('refuses a public TLD without force, bad labels always, an unknown network', async () => {
      await network('dn-bad');
      const pub = await admin('PUT', '/api/v1/networks/dn-bad/dns', { domain: 'example.com' });
      expect(pub.status).toBe(409);
      expectError(pub, 'public_domain');
      expect(ErrorBody.parse(pub.body).message).toContain('--force');
      const forced = await admin('PUT', '/api/v1/networks/dn-bad/dns', {
        domain: 'example.com',
        force: true,
      });
      expect(NetworkDns.parse(forced.body).domain).toBe('example.com');
      for (const domain of ['Bad', 'a..b', 'x_y', 'trailing.', ''])
        expectError(
          await admin('PUT', '/api/v1/networks/dn-bad/dns', { domain }),
          'validation_failed',
        );
      expectError(await admin('PUT', '/api/v1/networks/nope/dns', { domain: 'x' }), 'not_found');
    });
  });

  describe('records and names', () => {
    it('adds, lists and removes custom records; every node map carries them', async () => {
      const key = await network('dn-rec');
      const a = await join('dn-rec', 'alpha', key);
      const add = await admin('POST', '/api/v1/networks/dn-rec/dns/records', {
        name: 'printer',
        ip: '192.168.100.9',
      });
      expect(add.status, add.text).toBe(201);
      const rec = DnsRecord.parse(add.body);
      expect(rec.dnsName).toBe('printer.dn-rec');
      await admin('POST', '/api/v1/networks/dn-rec/dns/records', { name: 'nas6', ip: 'fd00::9' });
      const list = (await admin('GET', '/api/v1/networks/dn-rec/dns/records')).body as unknown[];
      expect(list.map((r) => DnsRecord.parse(r).name)).toEqual(['nas6', 'printer']);
      const m = await mapOf(a.nodeSecret);
      expect(m.network.dnsRecords).toEqual([
        {
          name: 'nas6',
          dnsName: 'nas6.dn-rec',
          kind: 'custom',
          addressV4: null,
          addressV6: 'fd00::9',
        },
        {
          name: 'printer',
          dnsName: 'printer.dn-rec',
          kind: 'custom',
          addressV4: '192.168.100.9',
          addressV6: null,
        },
      ]);
      const names = NetworkDns.parse((await admin('GET', '/api/v1/networks/dn-rec/dns')).body);
      expect(names.names.map((n) => `${n.kind}:${n.dnsName}`).sort()).toEqual([
        'custom:nas6.dn-rec',
        'custom:printer.dn-rec',
        'node:alpha.dn-rec',
      ]);
      expect((await admin('DELETE', `/api/v1/networks/dn-rec/dns/records/${rec.id}`)).status).toBe(
        204,
      );
      expect((await admin('DELETE', '/api/v1/networks/dn-rec/dns/records/nas6')).status).toBe(204);
      expectError(await admin('DELETE', '/api/v1/networks/dn-rec/dns/records/nas6'), 'not_found');
      expect((await mapOf(a.nodeSecret)).network.dnsRecords).toBeUndefined();
    });

    it('keeps one namespace: nodes, external clients and records never share a name', async () => {
      const key = await network('dn-uniq');
      const a = await join('dn-uniq', 'alpha', key);
      await admin('PUT', `/api/v1/nodes/${a.nodeId}/ingress`, { endpoint: '192.0.2.1:51820' });
      expectError(
        await admin('POST', '/api/v1/networks/dn-uniq/dns/records', {
          name: 'alpha',
          ip: '10.0.0.1',
        }),
        'name_taken',
      );
      const phone = await admin('POST', '/api/v1/networks/dn-uniq/extclients', { name: 'phone' });
      expect(phone.status, phone.text).toBe(201);
      expectError(
        await admin('POST', '/api/v1/networks/dn-uniq/dns/records', {
          name: 'phone',
          ip: '10.0.0.1',
        }),
        'name_taken',
      );
      await admin('POST', '/api/v1/networks/dn-uniq/dns/records', {
        name: 'printer',
        ip: '10.0.0.9',
      });
      expectError(
        await admin('POST', '/api/v1/networks/dn-uniq/dns/records', {
          name: 'printer',
          ip: '10.0.0.8',
        }),
        'name_taken',
      );
      const clash = await api(c.url, 'POST', '/api/v1/register', {
        body: registration('dn-uniq', 'printer', { enrollmentKey: key }),
      });
      expectError(clash, 'name_taken');
      expectError(
        await admin('POST', '/api/v1/networks/dn-uniq/extclients', { name: 'printer' }),
        'name_taken',
      );
      expectError(
        await admin('PUT', `/api/v1/nodes/${a.nodeId}/name`, { name: 'phone' }),
        'name_taken',
      );
      for (const name of ['Printer', 'a.b', 'x'.repeat(64), '-x'])
        expectError(
          await admin('POST', '/api/v1/networks/dn-uniq/dns/records', { name, ip: '10.0.0.1' }),
          'validation_failed',
        );
      expectError(
        await admin('POST', '/api/v1/networks/dn-uniq/dns/records', { name: 'ok', ip: 'nas.lan' }),
        'validation_failed',
      );
      const m = await mapOf(a.nodeSecret);
      expect(m.network.dnsRecords?.map((r) => `${r.kind}:${r.name}`)).toEqual([
        'external:phone',
        'custom:printer',
      ]);
    });

    it('renames a node: its DNS name changes in every map, the old name is free again', async () => {
      const key = await network('dn-ren');
      const a = await join('dn-ren', 'alpha', key);
      const b = await join('dn-ren', 'beta', key);
      const before = (await mapOf(b.nodeSecret)).version;
      const r = await admin('PUT', `/api/v1/nodes/${a.nodeId}/name`, { name: 'nas' });
      expect(r.status, r.text).toBe(200);
      const m = await mapOf(b.nodeSecret);
      expect(m.version).toBeGreaterThan(before);
      expect(m.peers.find((p) => p.id === a.nodeId)?.dnsName).toBe('nas.dn-ren');
      expect((await mapOf(a.nodeSecret)).self.dnsName).toBe('nas.dn-ren');
      await join('dn-ren', 'alpha', key);
      expectError(await admin('PUT', '/api/v1/nodes/nope/name', { name: 'x' }), 'not_found');
      expectError(
        await admin('PUT', `/api/v1/nodes/${a.nodeId}/name`, { name: 'Bad Name' }),
        'validation_failed',
      );
      await admin('DELETE', `/api/v1/nodes/${a.nodeId}`);
      expectError(await admin('PUT', `/api/v1/nodes/${a.nodeId}/name`, { name: 'y' }), 'conflict');
    });

    it("puts the ingress gateway's resolver and the domain into an external client's wg-quick file unless told not to", async () => {
      const key = await network('dn-ext');
      const a = await join('dn-ext', 'alpha', key);
      await admin('PUT', `/api/v1/nodes/${a.nodeId}/ingress`, { endpoint: '192.0.2.1:51820' });
      const plain = await admin('POST', '/api/v1/networks/dn-ext/extclients', {
        name: 'laptop',
        meshDns: false,
      });
      const mesh = await admin('POST', '/api/v1/networks/dn-ext/extclients', {
        name: 'phone',
        dns: ['9.9.9.9'],
      });
      const only = await admin('POST', '/api/v1/networks/dn-ext/extclients', { name: 'tablet' });
      expect(mesh.body.dns).toEqual(['10.30.0.1', '9.9.9.9']);
      expect(only.body.dns).toEqual(['10.30.0.1']);
      const conf = (id: string) =>
        admin('GET', `/api/v1/extclients/${id}/config`).then((r) => r.text);
      expect(await conf(plain.body.id)).not.toMatch(/^DNS =/m);
      expect(await conf(mesh.body.id)).toMatch(/^DNS = 10\.30\.0\.1, 9\.9\.9\.9, dn-ext$/m);
      expect(await conf(only.body.id)).toMatch(/^DNS = 10\.30\.0\.1, dn-ext$/m);
      await admin('PUT', '/api/v1/networks/dn-ext/dns', { domain: 'home.internal' });
      expect(await conf(mesh.body.id)).toMatch(/^DNS = 10\.30\.0\.1, 9\.9\.9\.9, home\.internal$/m);
    });
  });

  it('needs the admin token', async () => {
    const r = await api(c.url, 'GET', '/api/v1/networks/dn-demo/dns');
    expectError(r, 'auth_required');
  });
}
