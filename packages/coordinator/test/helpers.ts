// Test helpers: an in-process coordinator on 127.0.0.1 port 0 with its own temporary data
// directory, a small JSON client, WireGuard key pairs, and a push-stream reader.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { expect } from 'vitest';
import { generatePrivateKey, keyToBase64, nobleCrypto, publicKeyOf } from '@wiremesh/wg-core';
import {
  ErrorBody,
  PROTOCOL_VERSION,
  parsePushEvent,
  type PushEvent,
  type RegisterRequest,
} from '@wiremesh/protocol';
import { startCoordinator, type Coordinator, type CoordinatorOptions } from '../src/index.js';

export interface TestCoordinator extends Coordinator {
  admin: string;
  dir: string;
}

export async function startTestCoordinator(
  opts: CoordinatorOptions = {},
): Promise<TestCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), 'wm-coord-test-'));
  const c = await startCoordinator({
    listen: '127.0.0.1:0',
    dataDir: dir,
    logger: pino({ level: 'silent' }),
    registerBurst: 10_000,
    registerRefillPerS: 1000,
    ...opts,
  });
  if (c.adminToken === null && opts.database === undefined)
    throw new Error('expected a fresh admin token');
  return Object.assign(Object.create(Object.getPrototypeOf(c) as object) as TestCoordinator, c, {
    admin: c.adminToken ?? '',
    dir,
    async close() {
      await c.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
}

export interface Res<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export async function api<T = any>(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string; contentType?: string } = {},
): Promise<Res<T>> {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (opts.raw !== undefined) {
    headers['content-type'] = opts.contentType ?? 'application/json';
    body = opts.raw;
  }
  const r = await fetch(base + path, { method, headers, body });
  const text = await r.text();
  let parsed: unknown = undefined;
  try {
    parsed = text.length ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: r.status, body: parsed as T, text, headers: r.headers };
}

export function keyPair(): { privateKey: string; publicKey: string } {
  const priv = generatePrivateKey((out) => randomBytes(out.length).copy(out));
  return { privateKey: keyToBase64(priv), publicKey: keyToBase64(publicKeyOf(nobleCrypto, priv)) };
}

export function registration(
  network: string,
  name: string,
  over: Partial<RegisterRequest> = {},
): RegisterRequest {
  return {
    protocolVersion: PROTOCOL_VERSION,
    network,
    name,
    publicKey: keyPair().publicKey,
    os: 'linux',
    version: 'test',
    backend: 'userspace',
    listenPort: 51820,
    localEndpoints: [{ ip: '192.168.1.10', port: 51820 }],
    ...over,
  };
}

/** Expects an API answer with HTTP `status` and error body `code`. */
export function expectError(
  r: { status: number; body: unknown; text: string },
  status: number,
  code: string,
): void {
  expect(r.status, r.text).toBe(status);
  expect(ErrorBody.parse(r.body).code).toBe(code);
}

/** A node registered by `autoApproveNetwork`'s `reg`. */
export interface RegisteredNode {
  id: string;
  secret: string;
  pk: string;
}

/**
 * Creates network `name` (`ipv4Cidr`) on the coordinator at `url` with an auto-approving
 * enrollment key; resolves with a function that registers (and so approves) a node by name.
 */
export async function autoApproveNetwork(
  url: string,
  adminToken: string,
  name: string,
  ipv4Cidr: string,
): Promise<(node: string) => Promise<RegisteredNode>> {
  const admin = { token: adminToken };
  await api(url, 'POST', '/api/v1/networks', { ...admin, body: { name, ipv4Cidr } });
  const key = (
    await api(url, 'POST', `/api/v1/networks/${name}/keys`, {
      ...admin,
      body: { autoApprove: true },
    })
  ).body.key as string;
  return async (node: string) => {
    const req = registration(name, node, { enrollmentKey: key });
    const r = await api(url, 'POST', '/api/v1/register', { body: req });
    if (r.status !== 201) throw new Error(`registering ${node}: ${r.status}`);
    return { id: r.body.nodeId as string, secret: r.body.nodeSecret as string, pk: req.publicKey };
  };
}

/** A push-stream reader: collects parsed events; `next` waits for one matching a predicate. */
export class StreamReader {
  readonly events: PushEvent[] = [];
  private waiters: { pred: (e: PushEvent) => boolean; resolve: (e: PushEvent) => void }[] = [];
  private readonly controller = new AbortController();
  ended = false;
  status = 0;

  static async open(base: string, token: string): Promise<StreamReader> {
    const s = new StreamReader();
    const r = await fetch(`${base}/api/v1/node/stream`, {
      headers: { authorization: `Bearer ${token}` },
      signal: s.controller.signal,
    });
    s.status = r.status;
    if (r.body === null || r.status !== 200) {
      s.ended = true;
      return s;
    }
    void s.pump(r.body);
    return s;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = frame
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (data === '') continue;
          const ev = parsePushEvent(data);
          if (ev === null) throw new Error(`unparsable event: ${data.slice(0, 200)}`);
          this.events.push(ev);
          this.waiters = this.waiters.filter((w) => {
            if (!w.pred(ev)) return true;
            w.resolve(ev);
            return false;
          });
        }
      }
    } catch {
      // aborted
    }
    this.ended = true;
  }

  next(pred: (e: PushEvent) => boolean, timeoutMs = 5000): Promise<PushEvent> {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error('timed out waiting for a push event')),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(t);
          resolve(e);
        },
      });
    });
  }

  close(): void {
    this.controller.abort();
  }
}
