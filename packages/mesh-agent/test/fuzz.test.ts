// The agent against a hostile coordinator: a fake coordinator on loopback serves random and
// mutated maps, truncated and garbage push streams, huge and never-ending events, wrong content
// types, 500s and redirects. The agent (real HTTP client, fake dataplane) never crashes, rejects
// each invalid map with one log line, keeps the last good configuration applied, and recovers
// when the coordinator behaves again. Property: for any sequence of push events the applied
// configuration is netmapToConfig(last valid map).
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  applyMapPatch,
  MapPatch,
  type MapPeer,
  type MapSelf,
  type NetworkMap,
} from '@wiremesh/protocol';
import { Backoff } from '../src/control/backoff.js';
import { HttpCoordinator, validateMap } from '../src/control/coordinator-client.js';
import { createFakeDataplane, type FakeDataplane } from '../src/dataplane/fake-dataplane.js';
import { memoryLogger } from '../src/log.js';
import { netmapToConfig } from '../src/reconcile/netmap.js';
import { SseParser } from '../src/control/sse.js';
import { NetworkAgent } from '../src/network-agent.js';
import { key, LAN, map, nodeState, peer } from './fixtures.js';

// WIREMESH_FUZZ_RUNS raises the count for a long local run; CI keeps the default (seconds).
const RUNS = Number(process.env.WIREMESH_FUZZ_RUNS ?? 40);
const WAIT_MS = 5_000;
/** The agent's limits in these tests: small, so reaching them takes milliseconds. */
const TIMEOUT_MS = 400;
const DEAD_AFTER_MS = 300;
const MAX_MESSAGE_BYTES = 1024 * 1024;

const SECRET = 'wmn_node-1.secret';

// --- a coordinator whose every answer the test writes ---

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

class HostileCoordinator {
  private readonly server: Server;
  url = '';
  stream: Handler = (_q, res) => res.writeHead(404).end();
  checkin: Handler = (_q, res) => json(res, 200, checkinAnswer(null));
  fetch: Handler = (_q, res) => json(res, 500, { code: 'internal', message: 'no map' });
  other: Handler = (_q, res) => json(res, 404, { code: 'route_not_found', message: 'no route' });
  counts = { stream: 0, checkin: 0, map: 0, other: 0 };
  /** Authorization headers seen, by path. */
  readonly auth: { path: string; auth: string | undefined }[] = [];
  /** The push stream now open, if any. */
  current: ServerResponse | null = null;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = (req.url ?? '').split('?')[0] ?? '';
        this.auth.push({ path, auth: req.headers.authorization });
        const body = Buffer.concat(chunks).toString('utf8');
        res.on('error', () => undefined);
        if (path === '/api/v1/node/stream') {
          this.counts.stream++;
          this.current = res;
          res.on('close', () => {
            if (this.current === res) this.current = null;
          });
          this.stream(req, res, body);
        } else if (path === '/api/v1/node/checkin') {
          this.counts.checkin++;
          this.checkin(req, res, body);
        } else if (path === '/api/v1/node/map') {
          this.counts.map++;
          this.fetch(req, res, body);
        } else {
          this.counts.other++;
          this.other(req, res, body);
        }
      });
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Ends the open push stream, if any. */
  endStream(): void {
    this.current?.end();
    this.current = null;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function checkinAnswer(m: NetworkMap | null) {
  return {
    protocolVersion: 1,
    state: 'approved',
    mapVersion: m?.version ?? null,
    map: m,
    pollIntervalMs: 30_000,
  };
}

function sse(event: string, data: string, id?: number): string {
  return `event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${data}\n\n`;
}
const mapEvent = (m: unknown) => sse('map', JSON.stringify({ type: 'map', map: m }));
const patchEvent = (p: unknown) => sse('patch', JSON.stringify({ type: 'patch', patch: p }));

/** A push stream that sends `text` and stays open. */
const streamOf =
  (...texts: string[]): Handler =>
  (_q, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    for (const t of texts) res.write(t);
  };

// --- the agent under test ---

const STATE = nodeState({ server: 'http://127.0.0.1:1', nodeSecret: SECRET });

interface Harness {
  agent: NetworkAgent;
  dp: FakeDataplane;
  lines: string[];
  saved: () => NetworkMap | null;
}

function startAgent(url: string, reportIntervalMs: number): Harness {
  const dp = createFakeDataplane();
  const { log, lines } = memoryLogger();
  let saved: NetworkMap | null = null;
  const agent = new NetworkAgent({
    state: { ...STATE, server: url },
    store: {
      loadMap: () => saved,
      saveMap: (_n, m) => void (saved = m),
      keyPath: () => '/state/demo.key',
      remove: () => undefined,
    },
    api: new HttpCoordinator({
      server: url,
      nodeSecret: SECRET,
      timeoutMs: TIMEOUT_MS,
      streamDeadAfterMs: DEAD_AFTER_MS,
      maxMessageBytes: MAX_MESSAGE_BYTES,
    }),
    dataplane: dp,
    log,
    localAddresses: () => LAN.localAddresses,
    backoff: new Backoff({ minMs: 5, maxMs: 40, jitter: 0 }),
    reportIntervalMs,
  });
  agent.start();
  return { agent, dp, lines, saved: () => saved };
}

/** Waits until `pred` holds, looking after each turn of the event loop; fails after `ms`. */
async function until(pred: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => setTimeout(r, 2));
  }
}

/** The interface and the agent's record both equal what `m` asks for. */
function expectApplied(t: Harness, m: NetworkMap): void {
  const want = netmapToConfig(m, { localAddresses: LAN.localAddresses, reflected: null });
  expect(t.agent.lastApplied).toEqual(want);
  const i = t.dp.interfaces.get('wm-demo');
  expect(i).toBeDefined();
  if (i === undefined) return;
  expect([...i.addresses].sort()).toEqual([...want.addresses]);
  expect([...i.routes].sort()).toEqual([...want.routes]);
  expect(i.listenPort).toBe(want.listenPort);
  expect(i.mtu).toBe(want.mtu);
  const peers = [...i.peers.values()]
    .map((p) => ({ publicKey: p.publicKey, allowedIps: [...p.allowedIps] }))
    .sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1));
  expect(peers).toEqual(
    want.peers.map((p) => ({ publicKey: p.publicKey, allowedIps: [...p.allowedIps] })),
  );
}

const errorLines = (t: Harness) => t.lines.filter((l) => l.startsWith('error: '));

// --- scenarios: each starts from an agent holding a good map; the coordinator then misbehaves ---

describe('the agent against a misbehaving coordinator', () => {
  const c = new HostileCoordinator();
  const elsewhere = new HostileCoordinator();
  let t: Harness;
  const good = map([peer(2), peer(3, { allowedIps: ['10.8.0.3/32', '192.168.30.0/24'] })], 5);

  /** Runs one misbehaviour until the agent met it `times` times on the stream (or check-in). */
  async function phase(
    what: string,
    times: number,
    on: 'stream' | 'checkin' = 'stream',
  ): Promise<void> {
    const start = c.counts[on];
    c.endStream();
    await until(() => c.counts[on] >= start + times, `${times} ${on} attempts (${what})`);
    expectApplied(t, good);
    expect(t.agent.isGone).toBe(false);
    expect(t.lines.filter((l) => /could not apply/.test(l))).toEqual([]);
  }

  beforeAll(async () => {
    await c.start();
    await elsewhere.start();
  });
  afterAll(async () => {
    await c.close();
    await elsewhere.close();
  });

  // Each case starts from an agent that holds the good map, and ends with it stopped.
  beforeEach(async () => {
    c.stream = streamOf(mapEvent(good));
    c.checkin = (_q, res) => json(res, 200, checkinAnswer(null));
    t = startAgent(c.url, 50);
    await until(() => t.agent.lastApplied?.mapVersion === 5, 'the first map');
  });
  afterEach(async () => {
    await t.agent.stop();
    c.endStream();
  });

  it('keeps the map through 500s with HTML bodies and empty answers', async () => {
    const html: Handler = (_q, res) => {
      res.writeHead(500, { 'content-type': 'text/html' });
      res.end('<html><body>Bad Gateway</body></html>');
    };
    c.stream = html;
    c.checkin = html;
    await phase('500 html', 3);
    await phase('500 html', 2, 'checkin');
    c.stream = (_q, res) => res.writeHead(502).end();
    c.checkin = (_q, res) => res.writeHead(200).end();
    await phase('empty answers', 3);
    await phase('empty answers', 2, 'checkin');
    // One warning for the outage, not one per retry.
    expect(t.lines.filter((l) => l.startsWith('warn: ')).length).toBeLessThanOrEqual(2);
  });

  it('refuses a push stream with the wrong content type and check-ins that are not JSON', async () => {
    c.stream = (_q, res) => json(res, 200, { type: 'map', map: good });
    c.checkin = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>captive portal</title>');
    };
    await phase('json instead of a stream', 3);
    await phase('html check-in', 2, 'checkin');
    c.stream = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<html>\nevent: map\ndata: ${JSON.stringify({ type: 'map', map: map([peer(9)], 99) })}\n\n</html>`,
      );
    };
    await phase('html that looks like events', 3);
  });

  it('follows no redirect: never sends the node secret elsewhere, and says where it was sent', async () => {
    elsewhere.stream = streamOf(mapEvent(map([peer(7)], 50)));
    elsewhere.checkin = (_q, res) => json(res, 200, checkinAnswer(map([peer(7)], 50)));
    const to =
      (url: string): Handler =>
      (_q, res) =>
        res.writeHead(307, { location: url }).end();
    c.stream = to(`${elsewhere.url}/api/v1/node/stream`);
    c.checkin = to(`${elsewhere.url}/api/v1/node/checkin`);
    await phase('cross-origin redirect', 3);
    await phase('cross-origin redirect', 2, 'checkin');
    c.stream = to('/api/v1/node/stream');
    c.checkin = to('/api/v1/node/checkin');
    await phase('redirect loop', 3);
    expect(elsewhere.auth.filter((a) => a.auth !== undefined)).toEqual([]);
    expect(t.lines.some((l) => /redirects to .*set --server/.test(l))).toBe(true);
  });

  it('survives truncated streams and events cut in half', async () => {
    const text = mapEvent(map([peer(8)], 60));
    c.stream = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(text.slice(0, text.length / 2));
      res.destroy();
    };
    await phase('half an event, then a reset', 3);
    c.stream = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(text.slice(0, -2)); // the blank line that completes it never comes
    };
    await phase('a stream that ends inside an event', 3);
    c.stream = (req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'content-length': '100000' });
      res.write(': only a little\n\n');
      req.socket.destroy();
    };
    await phase('fewer bytes than announced', 3);
  });

  it('rejects garbage, invalid, foreign and stale maps with one line each', async () => {
    const before = errorLines(t).length;
    const invalid = { ...good, version: 70, peers: [{ ...peer(4), publicKey: 'not a key' }] };
    const foreign = map([peer(1)], 71, { publicKey: key(9) });
    const otherNet = { ...map([peer(4)], 72), network: { ...good.network, name: 'other' } };
    c.stream = streamOf(
      sse('map', '{"type":"map","map":'),
      sse('patch', '{"type":"patch","patch":{"fromVersion":"x"}}'),
      sse('bogus', '{}'),
      '\u0000\u0001garbage without a field\n\n',
      sse('map', '\udc00\ud800'),
      mapEvent(invalid),
      mapEvent(foreign),
      mapEvent(otherNet),
      mapEvent({ ...good, version: 1 }), // older: ignored without a word
      sse('sentinel-garbage', 'x'),
    );
    c.checkin = (_q, res) => json(res, 200, checkinAnswer(null));
    c.endStream();
    await until(
      () => t.lines.some((l) => l.includes('sentinel-garbage')),
      'the events to be handled',
    );
    expectApplied(t, good);
    // map (not JSON), patch, bogus, map (lone surrogates), invalid, foreign, other network: seven
    // lines; the line without a field is no event at all, the older map is skipped quietly.
    const now = errorLines(t).slice(before);
    expect(now.filter((l) => !l.includes('sentinel'))).toHaveLength(7);
    // Check-ins with bad maps are refused the same way.
    c.checkin = (_q, res) => json(res, 200, checkinAnswer(invalid as NetworkMap));
    await phase('invalid map in the check-in', 3, 'checkin');
  });

  it('drops events and answers larger than its limit without growing, and streams that never finish an event', async () => {
    const huge = `event: map\ndata: {"type":"map","map":"${'x'.repeat(3 * MAX_MESSAGE_BYTES)}"}\n\n`;
    c.stream = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(huge);
    };
    c.checkin = (_q, res) => json(res, 200, { pad: 'y'.repeat(3 * MAX_MESSAGE_BYTES) });
    await phase('a huge event', 3);
    await phase('a huge check-in answer', 2, 'checkin');
    expect(t.lines.some((l) => l.includes(`event longer than ${MAX_MESSAGE_BYTES}`))).toBe(true);
    expect(t.lines.some((l) => l.includes(`more than ${MAX_MESSAGE_BYTES} bytes`))).toBe(true);
    // Slow loris: a byte now and then, never a whole line. The stream counts as silent.
    const timers = new Set<NodeJS.Timeout>();
    c.stream = (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: ');
      const timer = setInterval(() => res.write('a'), DEAD_AFTER_MS / 10);
      timers.add(timer);
      res.on('close', () => clearInterval(timer));
    };
    c.checkin = (_q, res) => json(res, 200, checkinAnswer(null));
    await phase('slow loris', 3);
    for (const x of timers) clearInterval(x);
    // A server that accepts and never answers at all.
    c.stream = () => undefined;
    c.checkin = () => undefined;
    await phase('no answer', 3);
  });

  it('recovers when the coordinator behaves again', async () => {
    c.stream = (_q, res) => res.writeHead(503).end();
    c.checkin = (_q, res) => res.writeHead(503).end();
    await phase('an outage', 3);
    const next = map([peer(2), peer(4)], 80);
    c.stream = streamOf(mapEvent(next));
    c.checkin = (_q, res) => json(res, 200, checkinAnswer(null));
    c.endStream();
    await until(() => t.agent.lastApplied?.mapVersion === 80, 'the new map');
    expectApplied(t, next);
    expect(t.saved()?.version).toBe(80);
    expect(t.lines.some((l) => l.includes('the coordinator is back'))).toBe(true);
    // No line ever carries the node secret.
    expect(t.lines.filter((l) => l.includes(SECRET))).toEqual([]);
  });
});

// --- property: the applied configuration is always netmapToConfig(last valid map) ---

const PEER_IDS = [2, 3, 4, 5, 6, 7, 8];
const idOf = (n: number) => `node-${n}`;

const cidrArb = fc.constantFrom(
  '192.168.50.0/24',
  '192.168.1.0/24',
  '192.0.2.0/24', // the host's own LAN (fixtures.LAN): never routed
  '10.8.0.0/16', // the mesh itself
  '10.8.0.0/24',
  '0.0.0.0/0',
  '172.16.0.0/12',
  'fd00:8::/64',
  '2001:db8::/32',
  '::/0',
);
const endpointArb = fc.record({
  ip: fc.constantFrom(
    '192.0.2.7',
    '198.51.100.4',
    '203.0.113.9',
    '10.8.0.9',
    'fd00::7',
    '2001:db8::1',
  ),
  port: fc.integer({ min: 1, max: 65535 }),
});
const refArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constantFrom(...PEER_IDS).map(idOf) },
  { weight: 1, arbitrary: fc.constantFrom('node-1', 'node-99') }, // itself, and nobody
);

const peerArb: fc.Arbitrary<MapPeer> = fc
  .record({
    n: fc.constantFrom(...PEER_IDS),
    extra: fc.array(cidrArb, { maxLength: 3 }),
    local: fc.array(endpointArb, { maxLength: 3 }),
    reflected: fc.option(endpointArb, { nil: null }),
    keepalive: fc.integer({ min: 0, max: 65535 }),
    relayedBy: refArb,
    isRelay: fc.boolean(),
    relays: fc.array(fc.constantFrom(...PEER_IDS, 1).map(idOf), { maxLength: 3 }),
    egress: fc.array(cidrArb, { maxLength: 2 }),
    // Now and then another node's key (or this node's own).
    sameKeyAs: fc.oneof(
      { weight: 15, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.constantFrom(1, ...PEER_IDS) },
    ),
  })
  .map((r) =>
    peer(r.n, {
      allowedIps: [`10.8.0.${r.n}/32`, ...r.extra, ...r.egress],
      endpoints: { reflected: r.reflected, local: r.local },
      persistentKeepalive: r.keepalive,
      relayedBy: r.relayedBy,
      isRelay: r.isRelay,
      relays: r.relays,
      isEgressGateway: r.egress.length > 0,
      egressRanges: r.egress,
      ...(r.sameKeyAs === null ? {} : { publicKey: key(r.sameKeyAs) }),
    }),
  );

const selfArb: fc.Arbitrary<Partial<MapSelf>> = fc.record({
  listenPort: fc.integer({ min: 1, max: 65535 }),
  mtu: fc.integer({ min: 1280, max: 9000 }),
  persistentKeepalive: fc.integer({ min: 0, max: 65535 }),
  interfaceAddresses: fc.constantFrom(
    ['10.8.0.1/16'],
    ['10.8.0.1/16', 'fd00:8::1/64'],
    ['10.8.0.1/24'],
  ),
  relayedBy: refArb,
  isRelay: fc.boolean(),
  relays: fc.array(fc.constantFrom(...PEER_IDS).map(idOf), { maxLength: 2 }),
  isIngressGateway: fc.boolean(),
  externalClients: fc.array(
    fc.integer({ min: 100, max: 103 }).map((n) => ({
      id: `ext-${n}`,
      name: `ext-${n}`,
      publicKey: key(n),
      addressV4: `10.8.1.${n}`,
      addressV6: null,
      allowedIps: [`10.8.1.${n}/32`],
    })),
    { maxLength: 2 },
  ),
  egress: fc.option(
    fc.record({
      ranges: fc.array(cidrArb, { minLength: 1, maxLength: 2 }),
      // The last two would change the meaning of an nft script or an iptables rule.
      interface: fc.constantFrom('', 'eth0', 'wan', 'eth0" accept; }', 'a-very-long-interface'),
    }),
    { nil: null },
  ),
  peerRelays: fc.array(
    fc.record({
      peerId: fc.constantFrom(...PEER_IDS).map(idOf),
      relayId: fc.constantFrom(...PEER_IDS, 1, 99).map(idOf),
    }),
    { maxLength: 3 },
  ),
});

/** A map's content: mostly distinct peer ids; the schema allows duplicates, the agent refuses them. */
interface Body {
  peers: MapPeer[];
  self: Partial<MapSelf>;
  reflectPort: number | null;
}
const bodyArb: fc.Arbitrary<Body> = fc.record({
  peers: fc.oneof(
    { weight: 5, arbitrary: fc.uniqueArray(peerArb, { selector: (p) => p.id, maxLength: 6 }) },
    { weight: 1, arbitrary: fc.array(peerArb, { maxLength: 6 }) },
  ),
  self: selfArb,
  reflectPort: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }),
});

/** Schema-breaking edits of a valid map. */
const breakArb = fc.constantFrom<(m: Record<string, unknown>) => unknown>(
  (m) => ({ ...m, version: -1 }),
  (m) => ({ ...m, version: '7' }),
  (m) => ({ ...m, peers: 'none' }),
  (m) => ({ ...m, self: { ...(m.self as object), mtu: 70000 } }),
  (m) => ({ ...m, self: { ...(m.self as object), publicKey: 'AAAA' } }),
  (m) => ({ ...m, self: { ...(m.self as object), interfaceAddresses: [] } }),
  (m) => ({ ...m, network: null }),
  (m) => ({ ...m, peers: [{ id: 'x' }] }),
  (m) => ({
    ...m,
    self: { ...(m.self as object), egress: { ranges: ['300.1.1.1/8'], interface: '' } },
  }),
  (m) => ({ ...m, reflectPort: 0 }),
  (m) => {
    const { self: _s, ...rest } = m;
    return rest;
  },
);

type Intent =
  | { kind: 'map'; ahead: number; body: Body }
  | {
      kind: 'invalid';
      body: Body;
      edit: (m: Record<string, unknown>) => unknown;
    }
  | { kind: 'foreign'; body: Body; net: boolean }
  | {
      kind: 'patch';
      bump: number;
      fits: boolean;
      upserts: MapPeer[];
      removes: number[];
      self: Partial<MapSelf> | null;
    }
  | { kind: 'badPatch'; raw: unknown }
  | { kind: 'garbage'; event: string; data: string };

const intentArb: fc.Arbitrary<Intent> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('map' as const),
      ahead: fc.integer({ min: -2, max: 3 }),
      body: bodyArb,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('invalid' as const), body: bodyArb, edit: breakArb }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('foreign' as const),
      body: bodyArb,
      net: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('patch' as const),
      bump: fc.integer({ min: -1, max: 3 }),
      fits: fc.boolean(),
      upserts: fc.array(peerArb, { maxLength: 3 }),
      removes: fc.array(fc.constantFrom(...PEER_IDS), { maxLength: 2 }),
      self: fc.option(selfArb, { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('badPatch' as const),
      raw: fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.constant({ fromVersion: 1, version: 2, upsertPeers: [{ id: 'x' }], removePeerIds: [] }),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('garbage' as const),
      event: fc.oneof(
        fc.constantFrom('map', 'patch', 'state', 'message', ''),
        fc.string({ maxLength: 8 }),
      ),
      data: fc.string({ maxLength: 60 }),
    }),
  },
);

/** No CR or LF inside a field (a line break would start another field). */
const oneLine = (s: string) => s.replace(/[\r\n]/g, ' ');

describe('property: applied config = netmapToConfig(last valid map)', () => {
  const c = new HostileCoordinator();
  beforeAll(() => c.start());
  afterAll(() => c.close());

  it('holds for any sequence of valid maps, invalid maps, patches and garbage', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(intentArb, { minLength: 1, maxLength: 14 }), async (intents) => {
        run++;
        // The model: what the agent must hold after each event, and what it must say.
        let cur: NetworkMap | null = null;
        let expectedErrors = 0;
        const fetches: (NetworkMap | null)[] = [];
        const texts: string[] = [];
        for (const it of intents) {
          const base = cur?.version ?? 0;
          if (it.kind === 'map') {
            const m = map(it.body.peers, Math.max(0, base + it.ahead), it.body.self);
            m.reflectPort = it.body.reflectPort;
            texts.push(mapEvent(m));
            // Schema-valid, but two peers with one id or key cannot both be on an interface.
            if (!validateMap(m).ok) expectedErrors++;
            else if (cur === null || m.version > cur.version) cur = m;
          } else if (it.kind === 'invalid') {
            const m = map(it.body.peers, base + 1, it.body.self);
            texts.push(mapEvent(it.edit(m as unknown as Record<string, unknown>)));
            expectedErrors++;
          } else if (it.kind === 'foreign') {
            const m = map(it.body.peers, base + 1, { ...it.body.self, publicKey: key(42) });
            const f = it.net
              ? {
                  ...map(it.body.peers, base + 1, it.body.self),
                  network: { ...m.network, name: 'other' },
                }
              : m;
            texts.push(mapEvent(f));
            expectedErrors++;
          } else if (it.kind === 'patch') {
            const version = base + it.bump;
            const p: MapPatch = {
              fromVersion: it.fits ? base : base + 7,
              version: Math.max(0, version),
              upsertPeers: it.upserts,
              removePeerIds: it.removes.map(idOf),
              ...(it.self === null || cur === null ? {} : { self: { ...cur.self, ...it.self } }),
            };
            texts.push(patchEvent(p));
            if (!MapPatch.safeParse(p).success) {
              expectedErrors++; // refused as an event, before any version is looked at
              continue;
            }
            if (cur !== null && p.version <= cur.version) continue; // a check-in got there first
            if (cur === null || p.fromVersion !== cur.version) {
              fetches.push(cur); // the agent fetches the full map: the current one, not newer
              continue;
            }
            const next = applyMapPatch(cur, p);
            const valid = next === null ? null : validateMap(next);
            if (valid?.ok === true) cur = valid.map;
            else expectedErrors++;
          } else if (it.kind === 'badPatch') {
            texts.push(patchEvent(it.raw));
            expectedErrors++;
          } else {
            texts.push(sse(oneLine(it.event) || 'message', oneLine(it.data)));
            expectedErrors++;
          }
        }
        const sentinel = `sentinel-${run}`;
        texts.push(sse(sentinel, 'x'));
        c.fetch = (_q, res) => {
          const m = fetches.shift() ?? null;
          if (m === null) json(res, 403, { code: 'node_pending', message: 'not approved' });
          else json(res, 200, m);
        };
        c.checkin = (_q, res) => json(res, 200, checkinAnswer(null));
        c.stream = streamOf(...texts);
        const t = startAgent(c.url, 1e9);
        try {
          await until(() => t.lines.some((l) => l.includes(sentinel)), 'the sentinel event');
          if (cur === null) expect(t.agent.lastApplied).toBeNull();
          else expectApplied(t, cur);
          const rejected = errorLines(t).filter((l) => !l.includes(sentinel));
          expect(rejected, t.lines.join('\n')).toHaveLength(expectedErrors);
          expect(rejected.filter((l) => /could not apply/.test(l))).toEqual([]);
        } finally {
          await t.agent.stop();
          c.endStream();
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('SseParser under random text', () => {
  const streamText = fc
    .array(
      fc.oneof(
        fc.constantFrom(
          '\n',
          '\r',
          '\r\n',
          '\n\n',
          ': ping\n',
          'data:',
          'data: ',
          'event: map\n',
          'id: 7\n',
          'id: \u0000\n',
        ),
        fc.string({ maxLength: 20 }),
        fc.string({ unit: 'binary', maxLength: 10 }),
      ),
      { maxLength: 40 },
    )
    .map((parts) => parts.join(''));

  it('gives the same events however the text is cut, and never throws', () => {
    fc.assert(
      fc.property(streamText, fc.array(fc.nat(), { maxLength: 6 }), (text, cuts) => {
        const whole = new SseParser();
        const expected = whole.push(text);
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const pieces = new SseParser();
        const got: ReturnType<SseParser['push']> = [];
        let at = 0;
        for (const p of [...points, text.length]) {
          got.push(...pieces.push(text.slice(at, p)));
          at = p;
        }
        expect(got).toEqual(expected);
        expect(pieces.lines).toBe(whole.lines);
      }),
      { numRuns: RUNS * 10 },
    );
  });

  it('gives up on an event longer than its limit, whether in one line or many', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 1, max: 50 }),
        fc.boolean(),
        (limit, chunk, manyLines) => {
          const p = new SseParser(limit);
          const body = manyLines ? 'data: xx\n'.repeat(limit) : `data: ${'x'.repeat(limit + 1)}`;
          const events = [];
          for (let i = 0; i < body.length; i += chunk)
            events.push(...p.push(body.slice(i, i + chunk)));
          events.push(...p.push('\n\n'));
          expect(p.tooLarge).toBe(true);
          expect(events).toEqual([]);
        },
      ),
      { numRuns: RUNS * 5 },
    );
    // Within the limit nothing changes.
    const p = new SseParser(100);
    expect(p.push(`data: ${'x'.repeat(90)}\n\n`)).toHaveLength(1);
    expect(p.tooLarge).toBe(false);
  });
});
