// An upgrade keeps the node's identity and mesh: test/fixtures/state-0.1.0 is a state directory
// exactly as release 0.1.0 wrote it (StateStore, state format 1; a test key, no real secret). This
// build must read all of it. A format change needs a new fixture beside it, never an edit of this one.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keyToBase64, nobleCrypto, publicKeyOf } from '@wiremesh/wg-core';
import { netmapToConfig } from '../src/reconcile/netmap.js';
import { StateStore } from '../src/state-store.js';

const FIXTURE = new URL('./fixtures/state-0.1.0', import.meta.url);

describe('a state directory written by release 0.1.0', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wm-upgrade-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(FIXTURE, dir, { recursive: true });
  const store = new StateStore(dir);

  it('keeps the registration: network, node id, secret, server, interface', () => {
    expect(store.networks()).toEqual(['demo']);
    expect(store.load('demo')).toEqual({
      format: 1,
      network: 'demo',
      server: 'http://192.0.2.10:8080',
      nodeId: 'nd_fixture0001',
      nodeSecret: 'wmn_fixture-secret-not-a-real-one',
      name: 'router',
      interface: 'wm-demo',
      backend: 'userspace',
      listenPort: null,
      publicKey: 'E75P6uryBMf9M1j8nAByGIHRdCeBKCJ+xnTzf3/pe20=',
      joinedAt: 1764806400000,
    });
  });

  it('keeps the private key behind the registered public key', () => {
    const priv = store.loadKey('demo');
    expect(keyToBase64(publicKeyOf(nobleCrypto, priv))).toBe(store.load('demo')!.publicKey);
  });

  it('keeps the last good map, which still turns into the same WireGuard config', () => {
    const map = store.loadMap('demo');
    expect(map?.version).toBe(7);
    const config = netmapToConfig(map!, { localAddresses: [] });
    expect(config.peers.map((p) => [p.publicKey, p.allowedIps])).toEqual([
      ['V9tLNZ8jrl4Ubk4lEgVnBHIlBjSMFQwUdT0Mkz0E1CE=', ['10.8.0.2/32']],
    ]);
  });
});
