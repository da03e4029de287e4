// A coordinator for the benches: the built CLI on loopback with registration limits lifted, and
// the few REST calls the benches make against it.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { generatePrivateKey, keyToBase64, nobleCrypto, publicKeyOf } from '@wiremesh/wg-core';

const CLI = fileURLToPath(new URL('../packages/coordinator/dist/cli.js', import.meta.url));

export function publicKey(): string {
  const priv = generatePrivateKey((out) => out.set(randomBytes(out.length)));
  return keyToBase64(publicKeyOf(nobleCrypto, priv));
}

export async function startCoordinator(
  dir: string,
): Promise<{ child: ChildProcess; url: string; token: string }> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dir,
      '--log-level',
      'warn',
      '--register-burst',
      '1000000',
      '--register-rate',
      '1000000',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const url = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      const token = /(wma_\S+)/.exec(out)?.[1];
      if (url && token) resolve({ child, url, token });
    });
    child.once('exit', (c) => reject(new Error(`coordinator exited (${c})`)));
  });
}

export async function call(
  url: string,
  method: string,
  path: string,
  token?: string,
  body?: unknown,
): Promise<any> {
  const r = await fetch(url + path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export const register = (
  url: string,
  name: string,
  key?: string,
): Promise<{ nodeId: string; nodeSecret: string }> =>
  call(url, 'POST', '/api/v1/register', undefined, {
    protocolVersion: 1,
    network: 'bench',
    enrollmentKey: key,
    name,
    publicKey: publicKey(),
    os: 'linux',
    version: 'bench',
    backend: 'userspace',
    localEndpoints: [{ ip: '192.168.1.10', port: 51820 }],
  });

/**
 * Opens a node's push stream and hands each event (the JSON of its `data:` line) to `onEvent`,
 * in order; resolves with the response once it arrives, rejects when the request fails.
 */
export function openNodeStream(
  url: string,
  secret: string,
  onEvent: (ev: any) => void,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/api/v1/node/stream`,
      { headers: { authorization: `Bearer ${secret}` } },
      (res) => {
        resolve(res);
        res.setEncoding('utf8');
        let buf = '';
        res.on('data', (chunk: string) => {
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const line = frame.split('\n').find((l) => l.startsWith('data: '));
            if (line === undefined) continue;
            onEvent(JSON.parse(line.slice(6)));
          }
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Creates network `bench` (10.100.0.0/16, joinable without a key); returns an auto-approve key. */
export async function createBenchNetwork(url: string, token: string): Promise<string> {
  await call(url, 'POST', '/api/v1/networks', token, {
    name: 'bench',
    ipv4Cidr: '10.100.0.0/16',
    allowJoinWithoutKey: true,
  });
  return (await call(url, 'POST', '/api/v1/networks/bench/keys', token, { autoApprove: true }))
    .key as string;
}
