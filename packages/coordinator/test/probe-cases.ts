// The defects a probe of the coordinator found (issue 17, "Fix"), each as a test, run against
// each storage backend (probe-sqlite.test.ts, probe-postgres.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorBody, ExtClient, RegisterResponse } from '@wiremesh/protocol';
import {
  api,
  keyPair,
  registration,
  startTestCoordinator,
  type TestCoordinator,
} from './helpers.js';
import type { CoordinatorOptions } from '../src/index.js';

/** Registers the probe tests; `backend` gives the storage options (called once, before the suite). */
export function probeCases(backend: () => Promise<Pick<CoordinatorOptions, 'database'>>): void {
  let c: TestCoordinator;
  let nextNet = 0;
  beforeAll(async () => {
    c = await startTestCoordinator({ ...(await backend()) });
  });
  afterAll(async () => c.close());

  const admin = (method: string, path: string, body?: unknown) =>
    api(c.url, method, path, { token: c.admin, body });
  const expectError = (
    r: { status: number; body: unknown; text: string },
    status: number,
    code: string,
  ) => {
    expect(r.status, r.text).toBe(status);
    expect(ErrorBody.parse(r.body).code).toBe(code);
  };

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
}
