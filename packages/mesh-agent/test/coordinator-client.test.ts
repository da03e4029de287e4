import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NODE_ROUTES } from '@wiremesh/protocol';
import {
  CoordinatorError,
  HttpCoordinator,
  parseStreamEvent,
  validateMap,
  type StreamEvent,
} from '../src/control/coordinator-client.js';
import { AgentError } from '../src/errors.js';
import { map, peer } from './fixtures.js';

let server: Server | null = null;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('map validation', () => {
  it('accepts a valid map and rejects a broken one with the first issue', () => {
    expect(validateMap(map([peer(2)])).ok).toBe(true);
    const bad = validateMap({ ...map([peer(2)]), peers: [{ ...peer(2), publicKey: 'short' }] });
    expect(bad).toEqual({ ok: false, reason: expect.stringContaining('peers.0.publicKey') });
    expect(validateMap(null).ok).toBe(false);
  });

  it('turns stream events into typed events, never throwing', () => {
    expect(parseStreamEvent('map', JSON.stringify({ type: 'map', map: map([]) }))).toMatchObject({
      type: 'map',
      map: { ok: true },
    });
    expect(
      parseStreamEvent('map', JSON.stringify({ type: 'map', map: { version: 'x' } })),
    ).toMatchObject({ type: 'map', map: { ok: false } });
    expect(parseStreamEvent('patch', '{')).toMatchObject({ type: 'invalid' });
    expect(
      parseStreamEvent(
        'state',
        JSON.stringify({ type: 'state', state: 'pending', message: 'wait' }),
      ),
    ).toEqual({ type: 'state', state: 'pending', message: 'wait' });
    expect(parseStreamEvent('other', '{}')).toMatchObject({ type: 'invalid' });
  });
});

describe('HttpCoordinator', () => {
  it('sends the node secret, reads the push stream, and reports error bodies by code', async () => {
    const auth: (string | undefined)[] = [];
    const base = await serve((req, res) => {
      auth.push(req.headers.authorization);
      if (req.url === NODE_ROUTES.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          `: ping\n\nevent: map\nid: 1\ndata: ${JSON.stringify({ type: 'map', map: map([peer(2)]) })}\n\n`,
        );
        res.end(
          `event: state\ndata: ${JSON.stringify({ type: 'state', state: 'removed', message: 'gone' })}\n\n`,
        );
        return;
      }
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'node_rejected', message: 'an admin rejected this node' }));
    });
    const c = new HttpCoordinator({ server: `${base}/`, nodeSecret: 'wmn_x.y' });
    const events: StreamEvent[] = [];
    await c.stream((e) => events.push(e), new AbortController().signal);
    expect(events.map((e) => e.type)).toEqual(['map', 'state']);
    expect(auth[0]).toBe('Bearer wmn_x.y');
    const err = await c.fetchMap().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CoordinatorError);
    expect(err).toMatchObject({ status: 403, code: 'node_rejected' });
  });

  it('gives up on a silent stream and says the server is unreachable when nothing listens', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': hello\n\n');
    });
    const c = new HttpCoordinator({ server: base, nodeSecret: 'wmn_x.y', streamDeadAfterMs: 150 });
    await expect(c.stream(() => {}, new AbortController().signal)).rejects.toThrow(/silent/);
    const nobody = new HttpCoordinator({ server: 'http://127.0.0.1:9', timeoutMs: 2000 });
    const e = await nobody.info().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AgentError);
    expect((e as AgentError).code).toBe('unreachable');
  });
});
