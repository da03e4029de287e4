// Observed endpoints (issue 11): a node that cannot probe the reflector from its WireGuard socket
// (kernel WireGuard) gets the public endpoint a public node observed; a reflector answer that a
// public observation contradicts (a split NAT mapping) gives way to the observation. The rules on
// rows (pure), hostile check-ins carrying the new field on a running coordinator, and a property:
// whatever public and private nodes report, a node's endpoint is its own or a public node's
// observation, never a LAN address and never a NATed node's word.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CheckinResponse,
  ErrorBody,
  NetworkMap,
  PeerStatus,
  type Endpoint,
} from '@wiremesh/protocol';
import { DIRECT_HANDSHAKE_FRESH_MS } from '../src/constants.js';
import {
  isPublicNode as isPublicRecord,
  observationKey as observationKeyOf,
  resolveEndpoints,
} from '../src/observed-endpoints.js';
import type { NodeRecord } from '../src/store/index.js';
import {
  api,
  keyPair,
  registration,
  startTestCoordinator,
  type TestCoordinator,
} from './helpers.js';

const RUNS = Number(process.env.WIREMESH_FUZZ_RUNS ?? 150);
const KEYS = Array.from({ length: 5 }, () => keyPair().publicKey);

/** A stored node as the database holds it (JSON columns), turned into records by `rec`. */
interface Row {
  id: string;
  name: string;
  public_key: string;
  state: NodeRecord['state'];
  local_endpoints: string;
  reflected_endpoint: string | null;
  is_ingress: number;
  is_relay: number;
  peer_status: string;
}

function row(i: number, over: Partial<Row> = {}): Row {
  return {
    id: `n${i}`,
    name: `node${i}`,
    public_key: KEYS[i] as string,
    state: 'approved',
    local_endpoints: JSON.stringify([{ ip: `192.168.1.${i + 1}`, port: 51820 }]),
    reflected_endpoint: null,
    is_ingress: 0,
    is_relay: 0,
    peer_status: '[]',
    ...over,
  };
}

function rec(r: Row): NodeRecord {
  return {
    id: r.id,
    networkId: 'net',
    name: r.name,
    publicKey: r.public_key,
    state: r.state,
    hostIndex: 1,
    os: 'linux',
    version: 't',
    backend: 'kernel',
    listenPort: 51820,
    localEndpoints: JSON.parse(r.local_endpoints) as Endpoint[],
    reflectedEndpoint: JSON.parse(r.reflected_endpoint ?? 'null') as Endpoint | null,
    egress: null,
    isIngress: r.is_ingress === 1,
    ingressEndpoint: null,
    isRelay: r.is_relay === 1,
    relayedBy: null,
    lastSeenAt: null,
    enrollmentKeyId: null,
    createdAt: 0,
  };
}

const isPublicNode = (r: Row) => isPublicRecord(rec(r));
const observationKey = (r: Row, peers: PeerStatus[]) => observationKeyOf(rec(r), peers);
const resolve = (rows: Row[]) =>
  resolveEndpoints(
    rows.map(rec),
    new Map(rows.map((r) => [r.id, JSON.parse(r.peer_status) as PeerStatus[]])),
  );

function seen(key: string, endpoint: Endpoint | null, ageMs: number | null = 1_000): PeerStatus {
  return {
    publicKey: key,
    latestHandshakeMs: null,
    rxBytes: 1,
    txBytes: 1,
    endpoint,
    handshakeAgeMs: ageMs,
    observedEndpoint: endpoint,
  };
}

const PUBLIC = { ip: '203.0.113.5', port: 51820 };
/** A public node with a reflected endpoint that is its own address (no relay role needed). */
const publicRow = (i: number, peers: PeerStatus[]) =>
  row(i, {
    local_endpoints: JSON.stringify([PUBLIC]),
    reflected_endpoint: JSON.stringify(PUBLIC),
    peer_status: JSON.stringify(peers),
  });

describe('resolveEndpoints', () => {
  const natted = { ip: '198.51.100.7', port: 40001 };

  it('gives a node without a reflected endpoint what a public node observed, naming it', () => {
    const k = row(0);
    const r = row(1, { is_relay: 1, peer_status: JSON.stringify([seen(KEYS[0]!, natted)]) });
    expect(isPublicNode(r)).toBe(true);
    expect(resolve([k, r]).get('n0')).toEqual({
      reflected: natted,
      source: { kind: 'observed', byId: 'n1', byName: 'node1', reflector: null },
    });
    // A node whose reflected endpoint is its own address is public too.
    const p = publicRow(2, [seen(KEYS[0]!, { ip: natted.ip, port: 40002 }, 500)]);
    expect(resolve([k, p]).get('n0')).toEqual({
      reflected: { ip: natted.ip, port: 40002 },
      source: { kind: 'observed', byId: 'n2', byName: 'node2', reflector: null },
    });
  });

  it('ignores NATed observers, stale or missing handshakes, LAN addresses and older agents', () => {
    const k = row(0);
    const natObserver = row(1, {
      reflected_endpoint: JSON.stringify({ ip: '198.51.100.9', port: 51820 }),
      peer_status: JSON.stringify([seen(KEYS[0]!, natted)]),
    });
    expect(isPublicNode(natObserver)).toBe(false);
    const stale = row(2, {
      is_relay: 1,
      peer_status: JSON.stringify([seen(KEYS[0]!, natted, DIRECT_HANDSHAKE_FRESH_MS + 1)]),
    });
    const never = row(3, {
      is_ingress: 1,
      peer_status: JSON.stringify([seen(KEYS[0]!, natted, null)]),
    });
    const lan = publicRow(4, [seen(KEYS[0]!, { ip: '192.168.1.1', port: 51820 })]);
    const old = row(4, {
      is_relay: 1,
      peer_status: JSON.stringify([{ ...seen(KEYS[0]!, natted), observedEndpoint: undefined }]),
    });
    for (const observer of [natObserver, stale, never, lan, old])
      expect(resolve([k, observer]).get('n0')).toEqual({
        reflected: null,
        source: undefined,
      });
    // A pending relay observes nothing.
    const pending = row(1, {
      is_relay: 1,
      state: 'pending',
      peer_status: JSON.stringify([seen(KEYS[0]!, natted)]),
    });
    expect(resolve([k, pending]).get('n0')?.reflected).toBeNull();
  });

  it('keeps a reflector answer the observation confirms, and prefers the observation when the port split', () => {
    const own = { ip: natted.ip, port: 40001 };
    const k = row(0, { reflected_endpoint: JSON.stringify(own) });
    const confirm = row(1, { is_relay: 1, peer_status: JSON.stringify([seen(KEYS[0]!, own)]) });
    expect(resolve([k, confirm]).get('n0')).toEqual({
      reflected: own,
      source: { kind: 'reflector' },
    });
    const split = row(1, {
      is_relay: 1,
      peer_status: JSON.stringify([seen(KEYS[0]!, { ip: own.ip, port: 40077 })]),
    });
    expect(resolve([k, split]).get('n0')).toEqual({
      reflected: { ip: own.ip, port: 40077 },
      source: { kind: 'observed', byId: 'n1', byName: 'node1', reflector: own },
    });
    // Another address (an old observation, a second uplink) does not override the node's own probe.
    const elsewhere = row(1, {
      is_relay: 1,
      peer_status: JSON.stringify([seen(KEYS[0]!, { ip: '192.0.2.99', port: 1 })]),
    });
    expect(resolve([k, elsewhere]).get('n0')?.reflected).toEqual(own);
  });

  it('gives nothing of public observers that disagree (a symmetric NAT), whatever their ages', () => {
    // R and P each see the node at their own port of one address: every destination gets a port.
    const atR = { ip: natted.ip, port: 40077 };
    const atP = { ip: natted.ip, port: 40078 };
    const observers = (ageR: number, ageP: number) => [
      row(1, { is_relay: 1, peer_status: JSON.stringify([seen(KEYS[0]!, atR, ageR)]) }),
      row(2, { is_ingress: 1, peer_status: JSON.stringify([seen(KEYS[0]!, atP, ageP)]) }),
    ];
    const own = { ip: natted.ip, port: 40001 };
    const probed = row(0, { reflected_endpoint: JSON.stringify(own) });
    const unprobed = row(0);
    for (const [ageR, ageP] of [
      [1_000, 9_000],
      [9_000, 1_000],
    ] as const) {
      expect(resolve([probed, ...observers(ageR, ageP)]).get('n0')).toEqual({
        reflected: own,
        source: { kind: 'reflector' },
      });
      expect(resolve([unprobed, ...observers(ageR, ageP)]).get('n0')).toEqual({
        reflected: null,
        source: undefined,
      });
    }
    // Observers that agree name one of them, the same one however the ages of their reports
    // move (a map that changed with every report would restart every pair's wait).
    const agree = (ageR: number, ageP: number) => [
      row(1, { is_relay: 1, peer_status: JSON.stringify([seen(KEYS[0]!, atR, ageR)]) }),
      row(2, { is_ingress: 1, peer_status: JSON.stringify([seen(KEYS[0]!, atR, ageP)]) }),
    ];
    const first = resolve([unprobed, ...agree(1_000, 9_000)]).get('n0');
    expect(first?.reflected).toEqual(atR);
    expect(resolve([unprobed, ...agree(9_000, 1_000)]).get('n0')).toEqual(first);
  });

  it('property: an endpoint is the node’s own or a fresh public observation, never a LAN address', () => {
    const ip = fc.constantFrom(
      '203.0.113.5',
      '198.51.100.7',
      '192.168.1.1',
      '192.168.1.2',
      '10.0.0.1',
    );
    const endpoint = fc.record({ ip, port: fc.integer({ min: 1, max: 65535 }) });
    const status = fc.record({
      key: fc.integer({ min: 0, max: 4 }),
      endpoint: fc.option(endpoint),
      age: fc.option(fc.integer({ min: 0, max: 2 * DIRECT_HANDSHAKE_FRESH_MS })),
    });
    const nodeArb = fc.record({
      reflected: fc.option(endpoint),
      local: fc.array(endpoint, { maxLength: 2 }),
      relay: fc.boolean(),
      approved: fc.boolean(),
      peers: fc.array(status, { maxLength: 6 }),
    });
    fc.assert(
      fc.property(fc.array(nodeArb, { minLength: 5, maxLength: 5 }), (specs) => {
        const rows = specs.map((s, i) =>
          row(i, {
            state: s.approved ? 'approved' : 'pending',
            is_relay: s.relay ? 1 : 0,
            reflected_endpoint: s.reflected === null ? null : JSON.stringify(s.reflected),
            local_endpoints: JSON.stringify(s.local),
            peer_status: JSON.stringify(s.peers.map((p) => seen(KEYS[p.key]!, p.endpoint, p.age))),
          }),
        );
        const out = resolve(rows);
        for (const [i, r] of rows.entries()) {
          const got = out.get(r.id)!;
          const own = specs[i]!.reflected;
          const source = got.source;
          if (source?.kind !== 'observed') {
            expect(got.reflected).toEqual(own);
            continue;
          }
          const observer = rows.find((o) => o.id === source.byId)!;
          expect(isPublicNode(observer)).toBe(true);
          expect(observer.id).not.toBe(r.id);
          const theirs = (JSON.parse(observer.peer_status) as PeerStatus[]).filter(
            (p) => p.publicKey === r.public_key && p.handshakeAgeMs !== null,
          );
          expect(
            theirs.some(
              (p) => JSON.stringify(p.observedEndpoint) === JSON.stringify(got.reflected),
            ),
          ).toBe(true);
          expect(specs[i]!.local.map((l) => l.ip)).not.toContain(got.reflected!.ip);
          if (own !== null) {
            expect(got.reflected!.ip).toBe(own.ip);
            expect(source.reflector).toEqual(own);
          }
        }
        // The key that decides whether a check-in changes peers' maps is '' for non-public nodes.
        for (const r of rows)
          if (!isPublicNode(r))
            expect(observationKey(r, JSON.parse(r.peer_status) as PeerStatus[])).toBe('');
      }),
      { numRuns: RUNS },
    );
  });
});

describe('observed endpoints through the API', () => {
  let c: TestCoordinator;
  const admin = (method: string, path: string, body?: unknown) =>
    api(c.url, method, path, { token: c.admin, ...(body === undefined ? {} : { body }) });

  beforeAll(async () => {
    c = await startTestCoordinator();
    await admin('POST', '/api/v1/networks', { name: 'obs', ipv4Cidr: '10.30.0.0/16' });
  });
  afterAll(async () => {
    await c.close();
  });

  async function join(name: string, backend: 'kernel' | 'userspace') {
    const key = (await admin('POST', '/api/v1/networks/obs/keys', { autoApprove: true })).body
      .key as string;
    const keys = keyPair();
    const r = await api(c.url, 'POST', '/api/v1/register', {
      body: registration('obs', name, { enrollmentKey: key, publicKey: keys.publicKey, backend }),
    });
    expect(r.status, r.text).toBe(201);
    return { ...(r.body as { nodeId: string; nodeSecret: string }), publicKey: keys.publicKey };
  }

  const checkin = (secret: string, body: unknown) =>
    api(c.url, 'POST', '/api/v1/node/checkin', { token: secret, body });
  const mapOf = async (secret: string) =>
    NetworkMap.parse((await api(c.url, 'GET', '/api/v1/node/map', { token: secret })).body);

  it('refuses hostile observed endpoints with validation_failed and changes nothing', async () => {
    const k = await join('hk', 'kernel');
    const r = await join('hr', 'userspace');
    const before = await mapOf(k.nodeSecret);
    const hostile: unknown[] = [
      'x',
      1,
      [],
      { ip: '1.2.3.4' },
      { ip: '1.2.3.4', port: 0 },
      { ip: '1.2.3.4', port: 65536 },
      { ip: '1.2.3.4', port: 1.5 },
      { ip: 'not-an-ip', port: 1 },
      { ip: '1.2.3.4\n', port: 1 },
      { ip: '999.2.3.4', port: 1 },
      { ip: 'x'.repeat(100_000), port: 1 },
      { ip: { toString: 1 }, port: 1 },
    ];
    for (const value of hostile) {
      const res = await checkin(r.nodeSecret, {
        protocolVersion: 1,
        peers: [{ ...seen(k.publicKey, null), observedEndpoint: value }],
      });
      expect(res.status, JSON.stringify(value).slice(0, 80)).toBe(400);
      expect(ErrorBody.parse(res.body).code).toBe('validation_failed');
    }
    expect((await mapOf(k.nodeSecret)).version).toBe(before.version);
  });

  it('puts a relay’s observation into peers’ maps with its source, and ignores a NATed node’s', async () => {
    const k = await join('ok', 'kernel');
    const u = await join('ou', 'userspace');
    const r = await join('or', 'userspace');
    const observed = { ip: '198.51.100.40', port: 51820 };
    // U (behind a NAT: reflected is not its own address) claims to see K somewhere: not used.
    await checkin(u.nodeSecret, {
      protocolVersion: 1,
      reflectedEndpoint: { ip: '198.51.100.50', port: 40000 },
      peers: [seen(k.publicKey, { ip: '198.51.100.66', port: 1 })],
    });
    const kOf = async (secret: string) =>
      (await mapOf(secret)).peers.find((p) => p.id === k.nodeId)!.endpoints;
    expect((await kOf(u.nodeSecret)).reflected).toBeNull();
    await admin('PUT', `/api/v1/nodes/${r.nodeId}/relay`, { relayedNodeIds: [] });
    const before = (await mapOf(u.nodeSecret)).version;
    const res = await checkin(r.nodeSecret, {
      protocolVersion: 1,
      knownMapVersion: 0,
      peers: [seen(k.publicKey, observed)],
    });
    expect(CheckinResponse.parse(res.body).state).toBe('approved');
    const m = await mapOf(u.nodeSecret);
    expect(m.version).toBeGreaterThan(before);
    expect(m.peers.find((p) => p.id === k.nodeId)!.endpoints).toEqual({
      reflected: observed,
      local: [{ ip: '192.168.1.10', port: 51820 }],
      reflectedSource: { kind: 'observed', byId: r.nodeId, byName: 'or', reflector: null },
    });
    // K learns its own public endpoint from the observation too.
    expect((await mapOf(k.nodeSecret)).self.observed).toEqual({
      endpoint: observed,
      source: { kind: 'observed', byId: r.nodeId, byName: 'or', reflector: null },
    });
    // The same observation again is no change: peers' maps keep their version.
    await checkin(r.nodeSecret, {
      protocolVersion: 1,
      peers: [seen(k.publicKey, observed, 9_000)],
    });
    expect((await mapOf(u.nodeSecret)).version).toBe(m.version);
    // U's own reflected endpoint comes from its probe.
    expect(
      (await mapOf(k.nodeSecret)).peers.find((p) => p.id === u.nodeId)!.endpoints.reflectedSource,
    ).toEqual({ kind: 'reflector' });
  });
});
