/**
 * The UAPI unix socket (wireguard-go ipc/uapi_linux.go, device/uapi.go): root-only socket in its
 * directory, requests answered in order on several connections, bad input answered or closed, and
 * random bytes never bringing it down. Runs on a real socket in a temporary directory.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';

import {
  generatePrivateKey,
  keyToBase64,
  keyToHex,
  MAX_UAPI_LINE_BYTES,
  nobleCrypto,
  publicKeyOf,
} from '@wiremesh/wg-core';
import {
  createFakeNetwork,
  createFakeTun,
  createUserspaceDevice,
  startUapiServer,
  UapiSession,
  type UapiServer,
  type UserspaceDevice,
} from '../src/index.js';

let dir: string;
let device: UserspaceDevice;
let server: UapiServer;

const rand = (b: Uint8Array): void => void randomFillSync(b);

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgts-uapi-'));
  const net = createFakeNetwork();
  device = createUserspaceDevice({
    name: 'wgtsU0',
    tun: createFakeTun({ name: 'wgtsU0' }).device,
    crypto: 'noble',
    openBind: (port) => net.bind({ port }),
  });
  device.configure({ privateKey: generatePrivateKey(rand), listenPort: 41000 });
  server = await device.listenUapi({ socketDir: join(dir, 'run', 'wireguard') });
});

afterEach(() => {
  device.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends `data` (in the given pieces), half-closes, and resolves with everything the server wrote. */
function exchange(path: string, pieces: (string | Uint8Array)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (err: NodeJS.ErrnoException) => {
      // The server may close on bad input while we still write: what it said before counts.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET')
        resolve(Buffer.concat(chunks).toString('latin1'));
      else reject(err);
    });
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('connect', () => {
      for (const p of pieces) s.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
      s.end();
    });
  });
}

describe('the socket', () => {
  test('is made in a new 0755 directory with mode 0600, and removed on close', () => {
    expect(server.path).toBe(join(dir, 'run', 'wireguard', 'wgtsU0.sock'));
    expect(statSync(join(dir, 'run', 'wireguard')).mode & 0o777).toBe(0o755);
    const st = statSync(server.path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    device.close();
    expect(() => statSync(server.path)).toThrow(/ENOENT/);
  });

  test('answers get and set like uapi(), several requests per connection in order, byte by byte too', async () => {
    const get = await device.uapi('get=1\n\n');
    expect(get).toMatch(/^private_key=[0-9a-f]{64}\nlisten_port=41000\nerrno=0\n\n$/);
    expect(await exchange(server.path, ['get=1\n\n'])).toBe(get);
    const pk = keyToHex(publicKeyOf(nobleCrypto, generatePrivateKey(rand)));
    const set = `set=1\npublic_key=${pk}\nallowed_ip=10.3.0.0/16\n\n`;
    const both = await exchange(server.path, [...`${set}get=1\n\n`]);
    const after = await device.uapi('get=1\n\n');
    expect(after).toContain(`public_key=${pk}\n`);
    expect(both).toBe(`errno=0\n\n${after}`);
  });

  test('serves several connections at once', async () => {
    const get = await device.uapi('get=1\n\n');
    const replies = await Promise.all(
      Array.from({ length: 12 }, () => exchange(server.path, ['get=', '1\n', '\n'])),
    );
    expect(replies).toEqual(Array.from({ length: 12 }, () => get));
    expect(server.connections).toBe(0);
  });

  test('bad requests get their errno (or a close), and the server goes on', async () => {
    expect(await exchange(server.path, ['set=1\nbogus\n\n'])).toBe('errno=-71\n\n');
    expect(await exchange(server.path, ['set=1\nlisten_port=x\n\nget=1\n\n'])).toMatch(
      /^errno=-22\n\nprivate_key=/,
    );
    expect(await exchange(server.path, ['get=1\nZ'])).toBe('errno=-22\n\n');
    expect(await exchange(server.path, ['hello=1\n\nget=1\n\n'])).toBe('');
    expect(
      await exchange(server.path, [`set=1\nfwmark=${'1'.repeat(MAX_UAPI_LINE_BYTES + 1)}\n\n`]),
    ).toBe('errno=-5\n\n');
    expect(await exchange(server.path, ['set=1\nfwmark=1\n'])).toBe('errno=0\n\n'); // EOF ends a set, as in wireguard-go
    expect(await device.uapi('get=1\n\n')).toContain('fwmark=1\n');
  });

  test('random bytes over the socket never crash it or change the device', async () => {
    const before = await device.uapi('get=1\n\n');
    const prefixes = [
      '',
      'get=1\n',
      'set=1\n',
      'set=1\npublic_key=',
      'get=',
      'set=1\nprivate_key=',
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...prefixes),
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { minLength: 1, maxLength: 4 }),
        async (prefix, pieces) => {
          await exchange(server.path, [prefix, ...pieces]);
        },
      ),
      { numRuns: 150 },
    );
    // Large random blobs too, several at once.
    await Promise.all(
      Array.from({ length: 8 }, () => exchange(server.path, [randomBytes(256 * 1024)])),
    );
    expect(await exchange(server.path, ['get=1\n\n'])).toBe(before);
  });
});

describe('start-up', () => {
  test('refuses to start when a live daemon answers on the socket', async () => {
    await expect(
      startUapiServer({
        name: 'wgtsU0',
        socketDir: join(dir, 'run', 'wireguard'),
        handler: device.uapiHandler,
      }),
    ).rejects.toMatchObject({
      code: 'EADDRINUSE',
      message: expect.stringMatching(/another daemon/),
    });
    // The live socket is still there and still serves.
    expect(await exchange(server.path, ['get=1\n\n'])).toMatch(/errno=0\n\n$/);
  });

  test('replaces a stale socket file left by a daemon that died', async () => {
    const path = join(dir, 'wgtsU1.sock');
    // A process that listens and is SIGKILLed leaves its socket file behind.
    const r = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(r.signal).toBe('SIGKILL');
    expect(statSync(path).isSocket()).toBe(true);
    const s = await startUapiServer({
      name: 'wgtsU1',
      socketDir: dir,
      handler: device.uapiHandler,
    });
    try {
      expect(await exchange(s.path, ['get=1\n\n'])).toBe(await device.uapi('get=1\n\n'));
    } finally {
      s.close();
    }
    // A plain file in the way is replaced too, as wireguard-go removes whatever is there.
    writeFileSync(path, 'junk');
    const s2 = await startUapiServer({
      name: 'wgtsU1',
      socketDir: dir,
      handler: device.uapiHandler,
    });
    s2.close();
  });

  test('a handler that throws answers errno=-55 for that request only', () => {
    const session = new UapiSession({
      get: () => {
        throw new Error('bug');
      },
      set: () => 'errno=0\n\n',
    });
    expect(session.feed('get=1\n\nset=1\n\n')).toEqual({
      reply: 'errno=-55\n\nerrno=0\n\n',
      close: false,
    });
    expect(session.feed('', true)).toEqual({ reply: '', close: true });
    expect(session.closed).toBe(true);
  });

  test('rejects bad options at once', async () => {
    await expect(startUapiServer({ name: 'a/b', handler: device.uapiHandler })).rejects.toThrow(
      TypeError,
    );
    expect(keyToBase64(new Uint8Array(32))).toHaveLength(44);
  });
});
