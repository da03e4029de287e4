// The defects a probe of the coordinator found (issue 17, "Fix"), each as a test, run against
// each storage backend (probe-sqlite.test.ts, probe-postgres.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { connect } from 'node:net';
import pino from 'pino';
import { ExtClient, RegisterResponse } from '@wiremesh/protocol';
import {
  api,
  keyPair,
  registration,
  expectError,
  startTestCoordinator,
  type TestCoordinator,
} from './helpers.js';
import { startCoordinator, type CoordinatorOptions } from '../src/index.js';

/** Registers the probe tests; `backend` gives the storage options (called once, before the suite). */
export function probeCases(backend: () => Promise<Pick<CoordinatorOptions, 'database'>>): void {
  let c: TestCoordinator;
  let storage: Pick<CoordinatorOptions, 'database'>;
  let nextNet = 0;
  beforeAll(async () => {
    storage = await backend();
    c = await startTestCoordinator({ ...storage });
  });
  afterAll(async () => c.close());

  const admin = (method: string, path: string, body?: unknown) =>
    api(c.url, method, path, { token: c.admin, body });

  /** A network with its own range (10.60+n.0.0/24) and an auto-approving key. */
  async function network(name: string): Promise<string> {
    const r = await admin('POST', '/api/v1/networks', {
      name,
      ipv4Cidr: `10.${60 + nextNet++}.0.0/24`,
    });
    expect(r.status, r.text).toBe(201);
    const k = await admin('POST', `/api/v1/networks/${name}/keys`, { autoApprove: true });
    expect(k.status, k.text).toBe(201);
    return k.body.key as string;
  }

  const register = (net: string, name: string, over: Record<string, unknown> = {}) =>
    api(c.url, 'POST', '/api/v1/register', { body: registration(net, name, over) });

  async function join(net: string, name: string, key: string, over: Record<string, unknown> = {}) {
    const r = await register(net, name, { enrollmentKey: key, ...over });
    expect(r.status, r.text).toBe(201);
    return RegisterResponse.parse(r.body);
  }

  /** A network with an ingress gateway `gw`; returns the key and the gateway's registration. */
  async function ingressNetwork(name: string) {
    const key = await network(name);
    const gwKeys = keyPair();
    const gw = await join(name, 'gw', key, { publicKey: gwKeys.publicKey });
    const set = await admin('PUT', `/api/v1/nodes/${gw.nodeId}/ingress`, {});
    expect(set.status, set.text).toBe(200);
    return { key, gw, gwPublicKey: gwKeys.publicKey };
  }

  describe('1: one public key per peer of a network', () => {
    it('refuses a node with an external client’s key, and a client with a node’s or client’s key', async () => {
      const { key, gwPublicKey } = await ingressNetwork('pk');
      const phoneKey = keyPair().publicKey;
      const phone = await admin('POST', '/api/v1/networks/pk/extclients', {
        name: 'phone',
        publicKey: phoneKey,
      });
      expect(phone.status, phone.text).toBe(201);
      const clash = await register('pk', 'n1', { enrollmentKey: key, publicKey: phoneKey });
      expectError(clash, 409, 'node_exists');
      expect(clash.body.message).toContain('phone');
      // The ingress's own key, another node's key, another client's key.
      expectError(
        await admin('POST', '/api/v1/networks/pk/extclients', {
          name: 'tab',
          publicKey: gwPublicKey,
        }),
        409,
        'conflict',
      );
      expectError(
        await admin('POST', '/api/v1/networks/pk/extclients', { name: 'tab', publicKey: phoneKey }),
        409,
        'conflict',
      );
      // Nothing was half made: the refused node has no row, the clients list holds one.
      expect((await admin('GET', '/api/v1/networks/pk/nodes')).body).toHaveLength(1);
      const list = (await admin('GET', '/api/v1/networks/pk/extclients')).body as ExtClient[];
      expect(list.map((x) => x.name)).toEqual(['phone']);
      // The same key in another network is fine.
      const otherKey = await network('pk2');
      await join('pk2', 'n1', otherKey, { publicKey: phoneKey });
    });
  });

  describe('2: the data directory and what it holds', () => {
    const mode = (f: string) => statSync(f).mode & 0o777;

    it('makes the directory 0700 and the database, WAL and seal key 0600 whatever the umask', async () => {
      const dir = mkdtempSync(joinPath(tmpdir(), 'wm-probe-umask-'));
      const old = process.umask(0);
      let d;
      try {
        d = await startCoordinator({
          ...storage,
          listen: '127.0.0.1:0',
          dataDir: joinPath(dir, 'data'),
          adminTokenFile: joinPath(dir, 'admin-token'),
          logger: pino({ level: 'silent' }),
        });
      } finally {
        process.umask(old);
      }
      try {
        const token = d.adminToken ?? '';
        if (storage.database === undefined) {
          // A write, so the WAL exists too.
          expect(
            (
              await api(d.url, 'POST', '/api/v1/networks', {
                token,
                body: { name: 'm', ipv4Cidr: '10.59.0.0/24' },
              })
            ).status,
          ).toBe(201);
        }
        expect(mode(joinPath(dir, 'data'))).toBe(0o700);
        const files = readdirSync(joinPath(dir, 'data'));
        expect(files).toContain('seal.key');
        if (storage.database === undefined) expect(files).toContain('coordinator.db-wal');
        for (const f of files) expect([f, mode(joinPath(dir, 'data', f))]).toEqual([f, 0o600]);
      } finally {
        await d.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('stores generated client keys sealed, seals keys stored before, and says which file opens them', async () => {
      await ingressNetwork('seal');
      const made = await admin('POST', '/api/v1/networks/seal/extclients', { name: 'phone' });
      expect(made.status, made.text).toBe(201);
      const conf = await admin('GET', `/api/v1/extclients/${made.body.id}/config`);
      const priv = /^PrivateKey = (\S+)$/m.exec(conf.text)?.[1] ?? '';
      expect(priv).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      const stored = await c.store.db.get<{ private_key: string }>(
        'SELECT private_key FROM ext_clients WHERE id = ?',
        [made.body.id],
      );
      expect(stored?.private_key).toMatch(/^wmseal1:/);
      expect(stored?.private_key).not.toContain(priv);
      if (storage.database === undefined) {
        const bytes = ['coordinator.db', 'coordinator.db-wal']
          .map((f) => readFileSync(joinPath(c.dir, f)).toString('latin1'))
          .join('');
        expect(bytes).not.toContain(priv);
      }
    });

    it('seals a key stored in the clear at the next start, and refuses to open it with another key file', async () => {
      const dir = mkdtempSync(joinPath(tmpdir(), 'wm-probe-seal-'));
      const opts = {
        ...storage,
        listen: '127.0.0.1:0',
        dataDir: dir,
        logger: pino({ level: 'silent' }),
      };
      let d = await startCoordinator(opts);
      const token = d.adminToken ?? c.admin;
      const call = (m: string, p: string, body?: unknown) => api(d.url, m, p, { token, body });
      try {
        expect(
          (await call('POST', '/api/v1/networks', { name: 'old', ipv4Cidr: '10.58.0.0/24' }))
            .status,
        ).toBe(201);
        const key = (await call('POST', '/api/v1/networks/old/keys', { autoApprove: true })).body
          .key;
        const gw = await api(d.url, 'POST', '/api/v1/register', {
          body: registration('old', 'gw', { enrollmentKey: key }),
        });
        await call('PUT', `/api/v1/nodes/${gw.body.nodeId}/ingress`, {});
        const made = await call('POST', '/api/v1/networks/old/extclients', { name: 'phone' });
        expect(made.status, made.text).toBe(201);
        // As an older coordinator left it: the private key in the clear.
        const plain = keyPair().privateKey;
        await d.store.db.run('UPDATE ext_clients SET private_key = ? WHERE id = ?', [
          plain,
          made.body.id,
        ]);
        await d.close();
        d = await startCoordinator(opts);
        const row = await d.store.db.get<{ private_key: string }>(
          'SELECT private_key FROM ext_clients WHERE id = ?',
          [made.body.id],
        );
        expect(row?.private_key).toMatch(/^wmseal1:/);
        expect((await call('GET', `/api/v1/extclients/${made.body.id}/config`)).text).toContain(
          `PrivateKey = ${plain}`,
        );
        await d.close();
        d = await startCoordinator({ ...opts, sealKeyFile: joinPath(dir, 'other.key') });
        const wrong = await call('GET', `/api/v1/extclients/${made.body.id}/config`);
        expectError(wrong, 500, 'internal');
        expect(wrong.body.message).toContain('--seal-key-file');
        expect(wrong.text).not.toContain(plain);
      } finally {
        await d.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('3: network and egress ranges', () => {
    const create = (name: string, ipv4Cidr: string, extra: Record<string, unknown> = {}) =>
      admin('POST', '/api/v1/networks', { name, ipv4Cidr, ...extra });

    it('refuses special and public ranges, public ones unless allowed', async () => {
      for (const [cidr, what] of [
        ['0.0.0.0/0', '0.0.0.0/8'],
        ['127.0.0.0/16', 'loopback'],
        ['169.254.0.0/16', 'link-local'],
        ['224.1.0.0/16', 'multicast'],
        ['240.0.0.0/24', 'reserved'],
      ] as const) {
        const r = await create('special', cidr, { allowPublicRange: true });
        expectError(r, 400, 'validation_failed');
        expect(r.body.message).toContain(what);
      }
      const pub = await create('pub', '8.8.0.0/16');
      expectError(pub, 400, 'validation_failed');
      expect(pub.body.message).toContain('--allow-public-range');
      // A range straddling private and public space is public.
      expectError(await create('pub', '172.0.0.0/8'), 400, 'validation_failed');
      expect((await create('pub', '8.8.0.0/16', { allowPublicRange: true })).status).toBe(201);
      expect((await create('cgnat', '100.64.10.0/24')).status).toBe(201);
      expect((await create('rfc1918', '192.168.77.0/24')).status).toBe(201);
      const names = ((await admin('GET', '/api/v1/networks')).body as { name: string }[]).map(
        (n) => n.name,
      );
      expect(names).not.toContain('special');
    });

    it('refuses a range overlapping another network’s unless asked', async () => {
      expect((await create('ov-a', '172.20.0.0/16', { ipv6Cidr: 'fd00:77::/64' })).status).toBe(
        201,
      );
      const inner = await create('ov-b', '172.20.5.0/24');
      expectError(inner, 409, 'conflict');
      expect(inner.body.message).toContain('ov-a');
      expect(inner.body.message).toContain('--allow-overlap');
      expectError(await create('ov-b', '172.16.0.0/12'), 409, 'conflict');
      expectError(
        await create('ov-b', '172.21.0.0/16', { ipv6Cidr: 'fd00:77::/80' }),
        409,
        'conflict',
      );
      expect((await create('ov-b', '172.21.0.0/16', { ipv6Cidr: 'fd00:78::/64' })).status).toBe(
        201,
      );
      expect((await create('ov-c', '172.20.5.0/24', { allowOverlap: true })).status).toBe(201);
    });

    it('refuses egress ranges overlapping the mesh’s own range', async () => {
      const key = await network('eg');
      const g = await join('eg', 'g', key);
      const net = (await admin('GET', '/api/v1/networks/eg')).body as { ipv4Cidr: string };
      const octets = net.ipv4Cidr.split('.');
      for (const range of [
        net.ipv4Cidr,
        `${octets[0]}.0.0.0/8`,
        `${octets[0]}.${octets[1]}.0.128/25`,
      ]) {
        const r = await admin('PUT', `/api/v1/nodes/${g.nodeId}/egress`, {
          ranges: ['192.168.100.0/24', range],
        });
        expectError(r, 400, 'validation_failed');
        expect(r.body.message).toContain('overlaps the mesh');
      }
      expect((await admin('GET', `/api/v1/nodes/${g.nodeId}`)).body.egress).toBeNull();
      const ok = await admin('PUT', `/api/v1/nodes/${g.nodeId}/egress`, {
        ranges: ['192.168.100.0/24', '0.0.0.0/0'],
      });
      expect(ok.status, ok.text).toBe(200);
    });
  });

  describe('4: a body that trickles', () => {
    it('is cut off with 408 after the request bound, and the connection closes', async () => {
      const d = await startTestCoordinator({ ...storage, requestTimeoutMs: 1_000 });
      const sock = connect(d.port, '127.0.0.1');
      let timer: NodeJS.Timeout | undefined;
      try {
        await new Promise<void>((resolve, reject) => {
          sock.once('connect', resolve);
          sock.once('error', reject);
        });
        const body = JSON.stringify(registration('none', 'slow'));
        sock.write(
          `POST /api/v1/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
        );
        // One byte every 100 ms: the whole body would take far longer than the bound.
        let sent = 0;
        timer = setInterval(() => {
          if (sent < body.length && sock.writable) sock.write(body[sent++] ?? '');
        }, 100);
        const started = Date.now();
        const answer = await new Promise<string>((resolve) => {
          let buf = '';
          sock.on('data', (b: Buffer) => (buf += b.toString('latin1')));
          sock.on('close', () => resolve(buf));
          sock.on('error', () => undefined);
        });
        const elapsed = Date.now() - started;
        expect(answer).toMatch(/^HTTP\/1\.1 408 /);
        expect(answer).toContain('"code":"request_timeout"');
        // Closed long before the body could have arrived (about 100 ms per byte).
        expect(sent).toBeLessThan(body.length);
        expect(elapsed).toBeLessThan(body.length * 100);
      } finally {
        clearInterval(timer);
        sock.destroy();
        await d.close();
      }
    });
  });

  describe('5: unknown fields', () => {
    it('are a 400 that names the field on every admin PATCH, POST and PUT, and change nothing', async () => {
      const key = await network('strict');
      const before = (await admin('GET', '/api/v1/networks/strict')).body;
      const patch = await admin('PATCH', '/api/v1/networks/strict', {
        ipv4Cidr: '10.99.0.0/16',
        mtu: 1300,
      });
      expectError(patch, 400, 'validation_failed');
      expect(patch.body.message).toContain('unknown field ipv4Cidr');
      expect(patch.body.message).toContain('mtu');
      expect((await admin('GET', '/api/v1/networks/strict')).body).toEqual(before);
      const n = await join('strict', 'n1', key);
      const cases: [string, string, Record<string, unknown>][] = [
        ['POST', '/api/v1/networks', { name: 'strict2', ipv4Cidr: '10.98.0.0/24', mtuu: 1400 }],
        ['POST', '/api/v1/networks/strict/keys', { autoApprove: true, autoapprove: true }],
        ['PUT', `/api/v1/nodes/${n.nodeId}/egress`, { ranges: ['192.168.5.0/24'], iface: 'eth0' }],
        ['PUT', `/api/v1/nodes/${n.nodeId}/ingress`, { endpoint: '192.0.2.1:51820', port: 1 }],
        ['PUT', `/api/v1/nodes/${n.nodeId}/relay`, { relayedNodeIds: [], nodes: [] }],
        ['POST', '/api/v1/networks/strict/extclients', { name: 'p', dnsServers: ['10.0.0.1'] }],
      ];
      for (const [method, path, body] of cases) {
        const r = await admin(method, path, body);
        expectError(r, 400, 'validation_failed');
        const unknown = Object.keys(body).at(-1) ?? '';
        expect(r.body.message).toContain(`unknown field ${unknown}`);
      }
      expect((await admin('GET', '/api/v1/networks/strict2')).status).toBe(404);
      expect((await admin('GET', '/api/v1/networks/strict/keys')).body).toHaveLength(1);
      expect((await admin('GET', `/api/v1/nodes/${n.nodeId}`)).body).toMatchObject({
        egress: null,
        isIngressGateway: false,
        isRelay: false,
      });
    });
  });

  describe('6: what a node may claim', () => {
    // Low-order points of Curve25519 (and the same with the ignored top bit set).
    const LOW_ORDER_HEX = [
      '0000000000000000000000000000000000000000000000000000000000000000',
      '0100000000000000000000000000000000000000000000000000000000000000',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
      '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
      'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
      'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880',
    ];
    const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

    it('refuses all-zero and low-order public keys, for nodes and external clients', async () => {
      const key = await ingressNetwork('weak');
      for (const hex of LOW_ORDER_HEX) {
        const r = await register('weak', 'n1', { enrollmentKey: key.key, publicKey: b64(hex) });
        expectError(r, 400, 'validation_failed');
        expect(r.body.message).toMatch(/all-zero|low-order/);
        expectError(
          await admin('POST', '/api/v1/networks/weak/extclients', {
            name: 'p',
            publicKey: b64(hex),
          }),
          400,
          'validation_failed',
        );
      }
      expect((await admin('GET', '/api/v1/networks/weak/nodes')).body).toHaveLength(1);
      expect((await admin('GET', '/api/v1/networks/weak/extclients')).body).toHaveLength(0);
    });

    it('refuses loopback, unspecified, multicast and broadcast local endpoints at registration and check-in', async () => {
      const key = await network('ep');
      for (const ip of [
        '127.0.0.1',
        '0.0.0.0',
        '224.0.0.251',
        '255.255.255.255',
        '::1',
        '::',
        'ff02::1',
        '::ffff:127.0.0.1',
      ]) {
        const r = await register('ep', 'n1', {
          enrollmentKey: key,
          localEndpoints: [
            { ip: '192.168.1.2', port: 51820 },
            { ip, port: 51820 },
          ],
        });
        expectError(r, 400, 'validation_failed');
        expect(r.body.message).toContain('localEndpoints.1');
      }
      const n = await join('ep', 'n1', key);
      const bad = await api(c.url, 'POST', '/api/v1/node/checkin', {
        token: n.nodeSecret,
        body: { protocolVersion: 1, localEndpoints: [{ ip: '127.0.0.1', port: 51820 }] },
      });
      expectError(bad, 400, 'validation_failed');
      const node = (await admin('GET', `/api/v1/nodes/${n.nodeId}`)).body;
      expect(node.localEndpoints).toEqual([{ ip: '192.168.1.10', port: 51820 }]);
      // LAN and public addresses are fine.
      const ok = await api(c.url, 'POST', '/api/v1/node/checkin', {
        token: n.nodeSecret,
        body: {
          protocolVersion: 1,
          localEndpoints: [
            { ip: '10.1.2.3', port: 51820 },
            { ip: 'fd00::5', port: 1 },
          ],
        },
      });
      expect(ok.status, ok.text).toBe(200);
    });

    it('refuses bidirectional controls in free text', async () => {
      const key = await network('bidi');
      for (const ch of ['\u202e', '\u2066', '\u200f', '\u061c']) {
        const r = await register('bidi', 'n1', {
          enrollmentKey: key,
          version: `wiremesh 1.0${ch}evil`,
        });
        expectError(r, 400, 'validation_failed');
        expect(r.body.message).toContain('version');
      }
      expect(
        (await register('bidi', 'n1', { enrollmentKey: key, os: 'Linux · Debian 13 – Straße' }))
          .status,
      ).toBe(201);
    });

    it('keeps node and external-client names apart in a network', async () => {
      const { key } = await ingressNetwork('names');
      await join('names', 'laptop', key);
      expectError(
        await admin('POST', '/api/v1/networks/names/extclients', { name: 'laptop' }),
        409,
        'name_taken',
      );
      expect(
        (await admin('POST', '/api/v1/networks/names/extclients', { name: 'phone' })).status,
      ).toBe(201);
      const r = await register('names', 'phone', { enrollmentKey: key });
      expectError(r, 409, 'name_taken');
      expect(r.body.message).toContain('external client');
    });
  });

  describe('7: /metrics and network names', () => {
    it('names networks only to an authenticated scrape, or to all with metricsPublic', async () => {
      const key = await network('secretnet');
      await join('secretnet', 'n1', key);
      await join('secretnet', 'n2', key);
      const anon = await api(c.url, 'GET', '/metrics');
      expect(anon.status).toBe(200);
      expect(anon.text).not.toContain('secretnet');
      expect(anon.text).toMatch(/^# HELP wiremesh_nodes .*Authorization: Bearer/m);
      const approved = Number(/^wiremesh_nodes\{state="approved"\} (\d+)$/m.exec(anon.text)?.[1]);
      expect(approved).toBeGreaterThanOrEqual(2);
      const authed = await api(c.url, 'GET', '/metrics', { token: c.admin });
      expect(authed.text).toMatch(/^wiremesh_nodes\{network="secretnet",state="approved"\} 2$/m);
      // The per-network series sum to the anonymous one.
      const sum = [
        ...authed.text.matchAll(/^wiremesh_nodes\{network="[^"]+",state="approved"\} (\d+)$/gm),
      ]
        .map((m) => Number(m[1]))
        .reduce((a, b) => a + b, 0);
      expect(sum).toBe(approved);
      expectError(
        await api(c.url, 'GET', '/metrics', { token: 'wma_wrong' }),
        401,
        'invalid_token',
      );
      const pub = await startTestCoordinator({ metricsPublic: true });
      try {
        const token = pub.admin;
        await api(pub.url, 'POST', '/api/v1/networks', {
          token,
          body: { name: 'pubnet', ipv4Cidr: '10.57.0.0/24', allowJoinWithoutKey: true },
        });
        await api(pub.url, 'POST', '/api/v1/register', { body: registration('pubnet', 'n1') });
        const m = await api(pub.url, 'GET', '/metrics');
        expect(m.text).toMatch(/^wiremesh_nodes\{network="pubnet",state="pending"\} 1$/m);
        expect(m.text).toMatch(/^# HELP wiremesh_nodes .*--metrics-public/m);
      } finally {
        await pub.close();
      }
    });
  });
}
