// The API test cases, run against each storage backend (api-sqlite.test.ts, api-postgres.test.ts):
// every resource and every error path of the REST API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import {
  NetworkMap,
  CheckinResponse,
  RegisterResponse,
  Node,
  ExtClient,
  EnrollmentKey,
  Network,
  decodeReply,
  encodeProbe,
  PROBE_LENGTH,
} from '@wiremesh/protocol';
import {
  api,
  keyPair,
  registration,
  expectError,
  startTestCoordinator,
  StreamReader,
  type TestCoordinator,
} from './helpers.js';
import type { CoordinatorOptions } from '../src/index.js';

/** Registers every API test; `backend` gives the storage options (called once, before the suite). */
export function apiCases(
  dialect: 'sqlite' | 'postgres',
  backend: () => Promise<Pick<CoordinatorOptions, 'database'>>,
): void {
  let now = 1_800_000_000_000;
  let c: TestCoordinator;
  beforeAll(async () => {
    c = await startTestCoordinator({ ...(await backend()), clock: () => now, reflectPort: 0 });
  });
  afterAll(async () => c.close());

  const admin = (method: string, path: string, body?: unknown) =>
    api(c.url, method, path, { token: c.admin, body });

  // The cases share one range (their addresses are asserted); probe-cases.ts tests the refusal.
  async function network(name: string, extra: Record<string, unknown> = {}) {
    const r = await admin('POST', '/api/v1/networks', {
      name,
      ipv4Cidr: '10.20.0.0/24',
      allowOverlap: true,
      ...extra,
    });
    expect(r.status, r.text).toBe(201);
    return Network.parse(r.body);
  }

  async function autoKey(net: string, extra: Record<string, unknown> = {}) {
    const r = await admin('POST', `/api/v1/networks/${net}/keys`, { autoApprove: true, ...extra });
    expect(r.status, r.text).toBe(201);
    return EnrollmentKey.parse(r.body);
  }

  async function join(net: string, name: string, key?: string, over: Record<string, unknown> = {}) {
    const r = await api(c.url, 'POST', '/api/v1/register', {
      body: registration(net, name, { enrollmentKey: key, ...over }),
    });
    expect(r.status, r.text).toBe(201);
    return RegisterResponse.parse(r.body);
  }

  const mapOf = async (secret: string) => {
    const r = await api(c.url, 'GET', '/api/v1/node/map', { token: secret });
    expect(r.status, r.text).toBe(200);
    return NetworkMap.parse(r.body);
  };

  it('runs on the requested storage', () => {
    expect(c.store.db.dialect).toBe(dialect);
  });

  describe('auth and generic errors', () => {
    it('answers 401 without a token and with a wrong one, 403 for the wrong kind of token', async () => {
      await network('authnet');
      const key = await autoKey('authnet');
      const node = await join('authnet', 'n1', key.key);
      const none = await api(c.url, 'GET', '/api/v1/networks');
      expectError(none, 401, 'auth_required');
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      expectError(
        await api(c.url, 'GET', '/api/v1/networks', { token: 'wma_wrong' }),
        401,
        'invalid_token',
      );
      expectError(
        await api(c.url, 'GET', '/api/v1/networks', { token: node.nodeSecret }),
        403,
        'forbidden',
      );
      expectError(
        await api(c.url, 'GET', '/api/v1/node/map', { token: c.admin }),
        403,
        'forbidden',
      );
      expectError(await api(c.url, 'GET', '/api/v1/node/map'), 401, 'auth_required');
      // A node secret with its random part altered is not accepted.
      const forged = `${node.nodeSecret.slice(0, -4)}AAAA`;
      expectError(
        await api(c.url, 'GET', '/api/v1/node/map', { token: forged }),
        401,
        'invalid_token',
      );
    });

    it('answers unknown routes with 404 route_not_found', async () => {
      expectError(await api(c.url, 'GET', '/nope'), 404, 'route_not_found');
      expectError(await api(c.url, 'DELETE', '/api/v1/info'), 404, 'route_not_found');
    });

    it('rejects bad JSON, wrong media types, large and invalid bodies', async () => {
      expectError(
        await api(c.url, 'POST', '/api/v1/networks', { token: c.admin, raw: '{"name":' }),
        400,
        'invalid_json',
      );
      expectError(
        await api(c.url, 'POST', '/api/v1/networks', {
          token: c.admin,
          raw: 'name=x',
          contentType: 'application/x-www-form-urlencoded',
        }),
        415,
        'unsupported_media_type',
      );
      expectError(
        await api(c.url, 'POST', '/api/v1/register', {
          raw: JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }),
        }),
        413,
        'payload_too_large',
      );
      const bad = await admin('POST', '/api/v1/networks', {
        name: 'Bad Name',
        ipv4Cidr: '10.0.0.0/8',
      });
      expectError(bad, 400, 'validation_failed');
      expect(bad.body.message).toContain('name');
      expectError(
        await api(c.url, 'POST', '/api/v1/register', { body: { protocolVersion: 1 } }),
        400,
        'validation_failed',
      );
    });

    it('serves info, health and metrics without auth', async () => {
      const info = await api(c.url, 'GET', '/api/v1/info');
      expect(info.body).toMatchObject({
        name: 'wiremesh-coordinator',
        protocolVersion: 1,
        reflectPort: c.reflectPort,
      });
      expect((await api(c.url, 'GET', '/healthz')).status).toBe(200);
      const m = await api(c.url, 'GET', '/metrics');
      expect(m.status).toBe(200);
      expect(m.headers.get('content-type')).toContain('text/plain');
      expect(m.text).toMatch(/^# TYPE wiremesh_http_requests_total counter$/m);
      // Network names only for an authenticated scrape (probe-cases.ts tests the rest).
      expect(m.text).not.toContain('authnet');
      const authed = await api(c.url, 'GET', '/metrics', { token: c.admin });
      expect(authed.text).toMatch(/^wiremesh_nodes\{network="authnet",state="approved"\} 1$/m);
      expect(m.text).toMatch(/^process_resident_memory_bytes \d+$/m);
    });
  });

  describe('networks', () => {
    it('creates, lists, shows, updates and deletes', async () => {
      const n = await network('nets', {
        ipv6Cidr: 'FD00:20::/64',
        mtu: 1380,
        allowJoinWithoutKey: true,
      });
      expect(n).toMatchObject({
        name: 'nets',
        ipv6Cidr: 'fd00:20::/64',
        mtu: 1380,
        listenPort: 51820,
        persistentKeepalive: 25,
        allowJoinWithoutKey: true,
      });
      expect((await admin('GET', '/api/v1/networks')).body.map((x: Network) => x.name)).toContain(
        'nets',
      );
      expect((await admin('GET', '/api/v1/networks/nets')).body.id).toBe(n.id);
      const up = await admin('PATCH', '/api/v1/networks/nets', {
        mtu: 1400,
        persistentKeepalive: 0,
      });
      expect(up.body).toMatchObject({ mtu: 1400, persistentKeepalive: 0 });
      expect(up.body.revision).toBeGreaterThan(n.revision);
      expect((await admin('DELETE', '/api/v1/networks/nets')).status).toBe(204);
      expectError(await admin('GET', '/api/v1/networks/nets'), 404, 'not_found');
      expectError(await admin('DELETE', '/api/v1/networks/nets'), 404, 'not_found');
      expectError(await admin('PATCH', '/api/v1/networks/nets', { mtu: 1400 }), 404, 'not_found');
    });

    it('refuses duplicate names and unusable ranges', async () => {
      await network('dup');
      expectError(
        await admin('POST', '/api/v1/networks', { name: 'dup', ipv4Cidr: '10.1.0.0/16' }),
        409,
        'name_taken',
      );
      const hostBits = await admin('POST', '/api/v1/networks', {
        name: 'hb',
        ipv4Cidr: '10.1.0.1/16',
      });
      expectError(hostBits, 400, 'validation_failed');
      expect(hostBits.body.message).toContain('10.1.0.0/16');
      expectError(
        await admin('POST', '/api/v1/networks', { name: 'tiny', ipv4Cidr: '10.1.0.0/31' }),
        400,
        'validation_failed',
      );
      expectError(
        await admin('POST', '/api/v1/networks', {
          name: 'gua',
          ipv4Cidr: '10.1.0.0/16',
          ipv6Cidr: '2001:db8::/64',
        }),
        400,
        'validation_failed',
      );
      expectError(
        await admin('PATCH', '/api/v1/networks/dup', { mtu: 10 }),
        400,
        'validation_failed',
      );
    });
  });

  describe('enrollment keys', () => {
    it('shows a key once, counts uses, and refuses exhausted, expired, revoked and foreign keys', async () => {
      await network('keys');
      await network('other');
      const k = await autoKey('keys', { maxUses: 1, name: 'once' });
      expect(k.key).toMatch(/^wmk_/);
      const listed = await admin('GET', '/api/v1/networks/keys/keys');
      expect(listed.text).not.toContain(k.key as string);
      await join('keys', 'a', k.key);
      expect((await admin('GET', '/api/v1/networks/keys/keys')).body[0]).toMatchObject({
        uses: 1,
        maxUses: 1,
      });
      const reg = (name: string, key?: string, net = 'keys') =>
        api(c.url, 'POST', '/api/v1/register', {
          body: registration(net, name, { enrollmentKey: key }),
        });
      expectError(await reg('b', k.key), 403, 'enrollment_key_exhausted');

      const exp = await autoKey('keys', { expiresInS: 60 });
      now += 61_000;
      expectError(await reg('c', exp.key), 403, 'enrollment_key_expired');

      const rev = await autoKey('keys');
      const revoked = await admin('DELETE', `/api/v1/networks/keys/keys/${rev.id}`);
      expect(revoked.body.revoked).toBe(true);
      expectError(await reg('d', rev.key), 403, 'enrollment_key_invalid');
      expectError(await admin('DELETE', '/api/v1/networks/keys/keys/none'), 404, 'not_found');

      const foreign = await autoKey('other');
      expectError(await reg('e', foreign.key), 403, 'enrollment_key_invalid');
      expectError(await reg('f', 'wmk_made_up'), 403, 'enrollment_key_invalid');
      expectError(await reg('g'), 401, 'enrollment_key_required');
      expectError(await reg('h', undefined, 'missing'), 404, 'not_found');
      // Failed registrations do not consume uses or addresses.
      const ok = await join('keys', 'i', (await autoKey('keys')).key);
      expect((await mapOf(ok.nodeSecret)).self.addressV4).toBe('10.20.0.2');
    });
  });

  describe('nodes', () => {
    it('walks a node through pending, approved, rejected and removed', async () => {
      await network('life', { allowJoinWithoutKey: true });
      const p = await join('life', 'pend');
      expect(p.state).toBe('pending');
      expect(p.map).toBeNull();
      expectError(
        await api(c.url, 'GET', '/api/v1/node/map', { token: p.nodeSecret }),
        403,
        'node_pending',
      );
      const ci = await api(c.url, 'POST', '/api/v1/node/checkin', {
        token: p.nodeSecret,
        body: { protocolVersion: 1 },
      });
      expect(CheckinResponse.parse(ci.body)).toMatchObject({
        state: 'pending',
        map: null,
        mapVersion: null,
      });
      const pending = await admin('GET', '/api/v1/networks/life/nodes?state=pending');
      expect(pending.body.map((n: Node) => n.id)).toEqual([p.nodeId]);

      const approved = await admin('POST', `/api/v1/nodes/${p.nodeId}/approve`);
      expect(Node.parse(approved.body).state).toBe('approved');
      const m = await mapOf(p.nodeSecret);
      expect(m.self).toMatchObject({
        id: p.nodeId,
        name: 'pend',
        addressV4: '10.20.0.1',
        interfaceAddresses: ['10.20.0.1/24'],
      });

      expect((await admin('POST', `/api/v1/nodes/${p.nodeId}/reject`)).body.state).toBe('rejected');
      expectError(
        await api(c.url, 'GET', '/api/v1/node/map', { token: p.nodeSecret }),
        403,
        'node_rejected',
      );
      expectError(
        await api(c.url, 'POST', '/api/v1/node/checkin', {
          token: p.nodeSecret,
          body: { protocolVersion: 1 },
        }),
        403,
        'node_rejected',
      );

      expect((await admin('DELETE', `/api/v1/nodes/${p.nodeId}`)).body.state).toBe('removed');
      expectError(
        await api(c.url, 'GET', '/api/v1/node/stream', { token: p.nodeSecret }),
        403,
        'node_removed',
      );
      expectError(await admin('POST', `/api/v1/nodes/${p.nodeId}/approve`), 409, 'conflict');
      expectError(await admin('POST', '/api/v1/nodes/none/approve'), 404, 'not_found');
      expectError(await admin('GET', '/api/v1/nodes/none'), 404, 'not_found');
      expectError(await admin('GET', '/api/v1/nodes?state=sleeping'), 400, 'validation_failed');
    });

    it('keeps a removed node’s address until it is released', async () => {
      await network('addr', { ipv4Cidr: '10.20.0.0/28' });
      const key = (await autoKey('addr')).key;
      const a = await join('addr', 'a', key);
      const b = await join('addr', 'b', key);
      expect((await mapOf(a.nodeSecret)).self.addressV4).toBe('10.20.0.1');
      expectError(await admin('POST', `/api/v1/nodes/${a.nodeId}/release`), 409, 'conflict');
      await admin('DELETE', `/api/v1/nodes/${a.nodeId}`);
      const c1 = await join('addr', 'c', key);
      expect((await mapOf(c1.nodeSecret)).self.addressV4).toBe('10.20.0.3');
      expect((await admin('POST', `/api/v1/nodes/${a.nodeId}/release`)).status).toBe(204);
      expectError(await admin('GET', `/api/v1/nodes/${a.nodeId}`), 404, 'not_found');
      expectError(
        await api(c.url, 'GET', '/api/v1/node/map', { token: a.nodeSecret }),
        401,
        'invalid_token',
      );
      // 10.20.0.0/28 has 14 hosts: fill it (.4 to .14), then the released .1 is handed out last.
      const names: string[] = [];
      for (let i = 0; i < 11; i++) names.push(`f${i}`);
      for (const n of names) await join('addr', n, key);
      const last = await join('addr', 'last', key);
      expect((await mapOf(last.nodeSecret)).self.addressV4).toBe('10.20.0.1');
      expectError(
        await api(c.url, 'POST', '/api/v1/register', {
          body: registration('addr', 'over', { enrollmentKey: key }),
        }),
        409,
        'address_space_exhausted',
      );
      expect(b.nodeId).not.toBe(last.nodeId);
    });

    it('refuses a duplicate public key or name, and foreign protocol versions', async () => {
      await network('dupes');
      const key = (await autoKey('dupes')).key;
      const kp = keyPair();
      await join('dupes', 'a', key, { publicKey: kp.publicKey });
      const reg = (over: Record<string, unknown>) =>
        api(c.url, 'POST', '/api/v1/register', {
          body: registration('dupes', 'x', { enrollmentKey: key, ...over }),
        });
      expectError(await reg({ publicKey: kp.publicKey, name: 'b' }), 409, 'node_exists');
      expectError(await reg({ name: 'a' }), 409, 'name_taken');
      expectError(await reg({ protocolVersion: 99 }), 400, 'unsupported_protocol_version');
    });

    it('lets a node leave by itself', async () => {
      await network('leave');
      const key = (await autoKey('leave')).key;
      const a = await join('leave', 'a', key);
      const b = await join('leave', 'b', key);
      expect((await mapOf(b.nodeSecret)).peers.map((p) => p.id)).toEqual([a.nodeId]);
      expect((await api(c.url, 'DELETE', '/api/v1/node', { token: a.nodeSecret })).status).toBe(
        204,
      );
      expect((await mapOf(b.nodeSecret)).peers).toEqual([]);
      expect((await admin('GET', `/api/v1/nodes/${a.nodeId}`)).body.state).toBe('removed');
    });
  });

  describe('check-in and maps', () => {
    it('skips an unchanged map, publishes new endpoints to peers, stores status for the admin', async () => {
      await network('ci', { ipv6Cidr: 'fd00:21::/64' });
      const key = (await autoKey('ci')).key;
      const a = await join('ci', 'a', key);
      const b = await join('ci', 'b', key);
      const first = CheckinResponse.parse(
        (
          await api(c.url, 'POST', '/api/v1/node/checkin', {
            token: a.nodeSecret,
            body: { protocolVersion: 1 },
          })
        ).body,
      );
      expect(first.map?.peers.map((p) => p.name)).toEqual(['b']);
      const same = CheckinResponse.parse(
        (
          await api(c.url, 'POST', '/api/v1/node/checkin', {
            token: a.nodeSecret,
            body: { protocolVersion: 1, knownMapVersion: first.mapVersion },
          })
        ).body,
      );
      expect(same.map).toBeNull();
      expect(same.mapVersion).toBe(first.mapVersion);

      const peerStatus = [
        {
          publicKey: keyPair().publicKey,
          latestHandshakeMs: now,
          rxBytes: 10,
          txBytes: 20,
          endpoint: { ip: '198.51.100.2', port: 4000 },
          path: 'direct',
        },
      ];
      await api(c.url, 'POST', '/api/v1/node/checkin', {
        token: b.nodeSecret,
        body: {
          protocolVersion: 1,
          reflectedEndpoint: { ip: '203.0.113.9', port: 40000 },
          listenPort: 51821,
          peers: peerStatus,
          backend: 'kernel',
        },
      });
      const after = CheckinResponse.parse(
        (
          await api(c.url, 'POST', '/api/v1/node/checkin', {
            token: a.nodeSecret,
            body: { protocolVersion: 1, knownMapVersion: first.mapVersion },
          })
        ).body,
      );
      expect(after.mapVersion).toBeGreaterThan(first.mapVersion as number);
      const peerB = after.map?.peers[0];
      expect(peerB).toMatchObject({
        listenPort: 51821,
        endpoints: { reflected: { ip: '203.0.113.9', port: 40000 } },
        allowedIps: ['10.20.0.2/32', 'fd00:21::2/128'],
      });
      const nodeB = Node.parse((await admin('GET', `/api/v1/nodes/${b.nodeId}`)).body);
      expect(nodeB.peers).toEqual(peerStatus);
      expect(nodeB.backend).toBe('kernel');
      expect(nodeB.lastSeenAt).toBe(now);
      // Status alone does not produce a new map version.
      await api(c.url, 'POST', '/api/v1/node/checkin', {
        token: b.nodeSecret,
        body: { protocolVersion: 1, peers: [] },
      });
      expect((await mapOf(a.nodeSecret)).version).toBe(after.mapVersion);
      expectError(
        await api(c.url, 'POST', '/api/v1/node/checkin', {
          token: b.nodeSecret,
          body: { protocolVersion: 1, listenPort: 0 },
        }),
        400,
        'validation_failed',
      );
      // The admin sees any node's map; a node only ever gets its own.
      expect(
        NetworkMap.parse((await admin('GET', `/api/v1/nodes/${a.nodeId}/map`)).body).self.id,
      ).toBe(a.nodeId);
      expect((await mapOf(b.nodeSecret)).self.id).toBe(b.nodeId);
    });
  });

  describe('gateways, relays and external clients', () => {
    it('puts egress ranges into that peer’s allowed IPs on every other node', async () => {
      await network('gw');
      const key = (await autoKey('gw')).key;
      const a = await join('gw', 'a', key);
      const g = await join('gw', 'g', key);
      const set = await admin('PUT', `/api/v1/nodes/${g.nodeId}/egress`, {
        ranges: ['192.168.100.0/24', '10.99.0.0/16'],
        interface: 'eth1',
      });
      expect(Node.parse(set.body).egress).toEqual({
        ranges: ['192.168.100.0/24', '10.99.0.0/16'],
        interface: 'eth1',
      });
      const peer = (await mapOf(a.nodeSecret)).peers.find((p) => p.id === g.nodeId);
      expect(peer).toMatchObject({
        isEgressGateway: true,
        egressRanges: ['192.168.100.0/24', '10.99.0.0/16'],
        allowedIps: ['10.20.0.2/32', '192.168.100.0/24', '10.99.0.0/16'],
      });
      expect((await mapOf(g.nodeSecret)).self.egress).toEqual({
        ranges: ['192.168.100.0/24', '10.99.0.0/16'],
        interface: 'eth1',
      });
      expectError(
        await admin('PUT', `/api/v1/nodes/${g.nodeId}/egress`, { ranges: ['192.168.100.1/24'] }),
        400,
        'validation_failed',
      );
      expectError(
        await admin('PUT', `/api/v1/nodes/${g.nodeId}/egress`, { ranges: [] }),
        400,
        'validation_failed',
      );
      expectError(
        await admin('PUT', '/api/v1/nodes/none/egress', { ranges: ['192.168.1.0/24'] }),
        404,
        'not_found',
      );
      await admin('DELETE', `/api/v1/nodes/${g.nodeId}/egress`);
      expect((await mapOf(a.nodeSecret)).peers.find((p) => p.id === g.nodeId)?.allowedIps).toEqual([
        '10.20.0.2/32',
      ]);
    });

    it('serves external clients through an ingress gateway as wg-quick config and QR codes', async () => {
      await network('ing', { ipv6Cidr: 'fd00:22::/64' });
      const key = (await autoKey('ing')).key;
      const a = await join('ing', 'a', key);
      const p = await join('ing', 'p', key);
      const e = await join('ing', 'e', key);
      expectError(
        await admin('POST', '/api/v1/networks/ing/extclients', { name: 'phone' }),
        409,
        'conflict',
      );
      await admin('PUT', `/api/v1/nodes/${e.nodeId}/egress`, { ranges: ['192.168.100.0/24'] });
      const gw = await admin('PUT', `/api/v1/nodes/${p.nodeId}/ingress`, {
        endpoint: '198.51.100.7:51820',
      });
      expect(gw.body.isIngressGateway).toBe(true);
      const created = await admin('POST', '/api/v1/networks/ing/extclients', {
        name: 'phone',
        dns: ['10.20.0.1'],
        meshDns: false, // the mesh-DNS line is dns-cases.ts's
      });
      expect(created.status, created.text).toBe(201);
      const phone = ExtClient.parse(created.body);
      expect(phone).toMatchObject({
        hasPrivateKey: true,
        ingressNodeId: p.nodeId,
        addressV4: '10.20.0.4',
        addressV6: 'fd00:22::4',
      });
      expectError(
        await admin('POST', '/api/v1/networks/ing/extclients', { name: 'phone' }),
        409,
        'name_taken',
      );

      const conf = await admin('GET', `/api/v1/extclients/${phone.id}/config`);
      expect(conf.status).toBe(200);
      const gwKey = (await admin('GET', `/api/v1/nodes/${p.nodeId}`)).body.publicKey;
      expect(conf.text).toMatch(
        /^\[Interface\]\nPrivateKey = [A-Za-z0-9+/]{43}=\nAddress = 10\.20\.0\.4\/32, fd00:22::4\/128\nDNS = 10\.20\.0\.1\nMTU = 1420\n\n\[Peer\]\n/,
      );
      expect(conf.text).toContain(`PublicKey = ${gwKey}\n`);
      expect(conf.text).toContain('Endpoint = 198.51.100.7:51820\n');
      expect(conf.text).toContain('AllowedIPs = 10.20.0.0/24, fd00:22::/64, 192.168.100.0/24\n');
      const png = await fetch(`${c.url}/api/v1/extclients/${phone.id}/qr.png`, {
        headers: { authorization: `Bearer ${c.admin}` },
      });
      expect(png.headers.get('content-type')).toBe('image/png');
      expect(Buffer.from(await png.arrayBuffer()).subarray(0, 8)).toEqual(
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      );
      const txt = await admin('GET', `/api/v1/extclients/${phone.id}/qr.txt`);
      expect(txt.text).toMatch(/[█▀▄]/);

      // The gateway carries the client as a WireGuard peer; the other nodes route its address via the gateway.
      const gwMap = await mapOf(p.nodeSecret);
      expect(gwMap.self.externalClients).toEqual([
        {
          id: phone.id,
          name: 'phone',
          publicKey: phone.publicKey,
          addressV4: '10.20.0.4',
          addressV6: 'fd00:22::4',
          allowedIps: ['10.20.0.4/32', 'fd00:22::4/128'],
        },
      ]);
      expect((await mapOf(a.nodeSecret)).peers.find((x) => x.id === p.nodeId)?.allowedIps).toEqual([
        '10.20.0.2/32',
        'fd00:22::2/128',
        '10.20.0.4/32',
        'fd00:22::4/128',
      ]);

      const own = keyPair();
      const laptop = ExtClient.parse(
        (
          await admin('POST', '/api/v1/networks/ing/extclients', {
            name: 'laptop',
            publicKey: own.publicKey,
            ingressNodeId: p.nodeId,
          })
        ).body,
      );
      expect(laptop.hasPrivateKey).toBe(false);
      expect((await admin('GET', `/api/v1/extclients/${laptop.id}/config`)).text).toContain(
        'PrivateKey = <the private key of this client>',
      );
      expect((await admin('GET', '/api/v1/networks/ing/extclients')).body).toHaveLength(2);
      expectError(
        await admin('POST', '/api/v1/networks/ing/extclients', {
          name: 'x',
          ingressNodeId: a.nodeId,
        }),
        409,
        'conflict',
      );
      expect((await admin('DELETE', `/api/v1/extclients/${laptop.id}`)).status).toBe(204);
      expectError(await admin('GET', `/api/v1/extclients/${laptop.id}`), 404, 'not_found');
      await admin('DELETE', `/api/v1/nodes/${p.nodeId}/ingress`);
      expectError(await admin('GET', `/api/v1/extclients/${phone.id}/config`), 409, 'conflict');
    });

    it('records relays in both the relay’s and the relayed node’s entries', async () => {
      await network('rel');
      const key = (await autoKey('rel')).key;
      const a = await join('rel', 'a', key);
      const r = await join('rel', 'r', key);
      const d = await join('rel', 'd', key);
      expectError(
        await admin('PUT', `/api/v1/nodes/${r.nodeId}/relay`, { relayedNodeIds: [r.nodeId] }),
        400,
        'validation_failed',
      );
      expectError(
        await admin('PUT', `/api/v1/nodes/${r.nodeId}/relay`, { relayedNodeIds: ['none'] }),
        404,
        'not_found',
      );
      const set = await admin('PUT', `/api/v1/nodes/${r.nodeId}/relay`, {
        relayedNodeIds: ['d'], // by name; ids work too
      });
      expect(set.body.isRelay).toBe(true);
      const m = await mapOf(a.nodeSecret);
      expect(m.peers.find((p) => p.id === r.nodeId)).toMatchObject({
        isRelay: true,
        relays: [d.nodeId],
      });
      expect(m.peers.find((p) => p.id === d.nodeId)).toMatchObject({ relayedBy: r.nodeId });
      expect((await mapOf(d.nodeSecret)).self.relayedBy).toBe(r.nodeId);
      expect((await mapOf(r.nodeSecret)).self).toMatchObject({ isRelay: true, relays: [d.nodeId] });
      await admin('DELETE', `/api/v1/nodes/${r.nodeId}/relay`);
      expect(
        (await mapOf(a.nodeSecret)).peers.find((p) => p.id === d.nodeId)?.relayedBy,
      ).toBeNull();
    });
  });

  describe('push stream', () => {
    it('delivers a map containing a newly approved node within a second', async () => {
      await network('push', { allowJoinWithoutKey: true });
      const key = (await autoKey('push')).key;
      const a = await join('push', 'a', key);
      const s = await StreamReader.open(c.url, a.nodeSecret);
      const first = await s.next((e) => e.type === 'map');
      if (first.type !== 'map') throw new Error('unreachable');
      const b = await join('push', 'b');
      const pendingStream = await StreamReader.open(c.url, b.nodeSecret);
      expect(await pendingStream.next((e) => e.type === 'state')).toMatchObject({
        state: 'pending',
      });
      const t0 = performance.now();
      await admin('POST', `/api/v1/nodes/${b.nodeId}/approve`);
      const ev = await s.next(
        (e) => e.type === 'patch' && e.patch.upsertPeers.some((p) => p.id === b.nodeId),
        1000,
      );
      expect(performance.now() - t0).toBeLessThan(1000);
      if (ev.type !== 'patch') throw new Error('unreachable');
      expect(ev.patch.fromVersion).toBeLessThan(ev.patch.version);
      // The newly approved node's own stream switches from state to its full map.
      const bMap = await pendingStream.next((e) => e.type === 'map', 1000);
      if (bMap.type !== 'map') throw new Error('unreachable');
      expect(bMap.map.peers.map((p) => p.id)).toEqual([a.nodeId]);
      // Removing the node ends its stream with a state event and removes it from the others.
      await admin('DELETE', `/api/v1/nodes/${b.nodeId}`);
      expect(
        await pendingStream.next((e) => e.type === 'state' && e.state === 'removed', 1000),
      ).toBeTruthy();
      await s.next((e) => e.type === 'patch' && e.patch.removePeerIds.includes(b.nodeId), 1000);
      s.close();
      pendingStream.close();
    });
  });

  describe('concurrency', () => {
    it('gives 200 concurrent registrations 200 distinct addresses', async () => {
      await network('burst', { ipv4Cidr: '10.30.0.0/16', ipv6Cidr: 'fd00:30::/64' });
      const key = (await autoKey('burst')).key;
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          api(c.url, 'POST', '/api/v1/register', {
            body: registration('burst', `n${i}`, { enrollmentKey: key }),
          }),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(new Array(200).fill(201));
      const nodes = (await admin('GET', '/api/v1/networks/burst/nodes')).body as Node[];
      expect(nodes).toHaveLength(200);
      expect(new Set(nodes.map((n) => n.addressV4)).size).toBe(200);
      expect(new Set(nodes.map((n) => n.addressV6)).size).toBe(200);
      const m = NetworkMap.parse((await admin('GET', `/api/v1/nodes/${nodes[0]?.id}/map`)).body);
      expect(m.peers).toHaveLength(199);
    });
  });

  describe('admin token and rate limit', () => {
    it('rotates the admin token: the old one stops working', async () => {
      const r = await admin('POST', '/api/v1/admin/token/rotate');
      expect(r.body.token).toMatch(/^wma_/);
      expectError(await admin('GET', '/api/v1/networks'), 401, 'invalid_token');
      c.admin = r.body.token;
      expect((await admin('GET', '/api/v1/networks')).status).toBe(200);
    });

    it('rate-limits registrations per client address with Retry-After', async () => {
      const limited = await startTestCoordinator({ registerBurst: 3, registerRefillPerS: 0.01 });
      try {
        const statuses: number[] = [];
        let last;
        for (let i = 0; i < 4; i++) {
          last = await api(limited.url, 'POST', '/api/v1/register', {
            body: registration('none', `n${i}`),
          });
          statuses.push(last.status);
        }
        expect(statuses).toEqual([404, 404, 404, 429]);
        expectError(last!, 429, 'rate_limited');
        expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
      } finally {
        await limited.close();
      }
    });
  });

  describe('endpoint reflection', () => {
    it('answers a probe with the sender’s address and ignores other datagrams', async () => {
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
      const reply = new Promise<Buffer>((resolve) => sock.once('message', (m) => resolve(m)));
      const junk = Buffer.alloc(PROBE_LENGTH + 1, 0x57);
      sock.send(junk, c.reflectPort as number, '127.0.0.1');
      const txid = randomBytes(8);
      const probe = encodeProbe(txid);
      sock.send(probe, c.reflectPort as number, '127.0.0.1');
      const got = await reply;
      expect(got.length).toBeLessThanOrEqual(probe.length);
      const decoded = decodeReply(new Uint8Array(got));
      expect(decoded).toEqual({
        txid: new Uint8Array(txid),
        ip: '127.0.0.1',
        port: sock.address().port,
      });
      sock.close();
      const m = await api(c.url, 'GET', '/metrics');
      expect(m.text).toMatch(/^wiremesh_reflect_probes_total 1$/m);
      expect(m.text).toMatch(/^wiremesh_reflect_dropped_total 1$/m);
    });
  });
}
