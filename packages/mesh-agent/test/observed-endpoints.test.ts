// Observed endpoints on the agent's side (issue 11): reports carry where each peer's packets came
// from after a recent handshake (and nothing before one); maps carry where each peer's public
// endpoint came from, hostile values of that field are refused like any invalid map, and status
// names the source of every endpoint.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { MapPeer, NetworkMap } from '@wiremesh/protocol';
import { endpointSourceOf } from '../src/cli/commands.js';
import { validateMap } from '../src/control/coordinator-client.js';
import { SESSION_FRESH_MS } from '../src/constants.js';
import { createFakeDataplane } from '../src/dataplane/fake-dataplane.js';
import { memoryLogger } from '../src/log.js';
import { NetworkAgent } from '../src/network-agent.js';
import { FakeClock, FakeCoordinator } from './fake-coordinator.js';
import { key, LAN, map, peer } from './fixtures.js';

const RUNS = Number(process.env.WIREMESH_FUZZ_RUNS ?? 150);
const PUBLIC = { ip: '198.51.100.7', port: 40001 };

function agentAt(now: () => number) {
  const api = new FakeCoordinator();
  const dp = createFakeDataplane('kernel');
  const agent = new NetworkAgent({
    state: {
      format: 1,
      network: 'demo',
      server: 'http://10.0.0.1:8080',
      nodeId: 'node-1',
      nodeSecret: 'wmn_node-1.secret',
      name: 'node-1',
      interface: 'wm-demo',
      backend: 'kernel',
      listenPort: null,
      publicKey: key(1),
      joinedAt: 0,
    },
    store: {
      loadMap: () => null,
      saveMap: () => undefined,
      keyPath: () => '/state/demo.key',
      remove: () => undefined,
    },
    api,
    dataplane: dp,
    log: memoryLogger().log,
    localAddresses: () => LAN.localAddresses,
    sleep: new FakeClock().sleep,
    now,
  });
  return { api, dp, agent };
}

describe('reports', () => {
  it('carry a peer’s observed endpoint only after a recent handshake', async () => {
    let now = 1_800_000_000_000;
    const t = agentAt(() => now);
    t.api.map = map([peer(2, { endpoints: { reflected: PUBLIC, local: [] } })], 1);
    await t.agent.checkinOnce();
    const observed = async () => (await t.agent.report()).peers?.[0]?.observedEndpoint;
    expect(await observed()).toBeNull();
    t.dp.handshake('wm-demo', key(2), Math.floor(now / 1000) - 2);
    expect(await observed()).toEqual(PUBLIC);
    now += SESSION_FRESH_MS + 5_000;
    expect(await observed()).toBeNull();
  });
});

function withSource(source: unknown): unknown {
  const m = map([peer(2, { endpoints: { reflected: PUBLIC, local: [] } })], 1);
  const json = JSON.parse(JSON.stringify(m)) as { peers: { endpoints: Record<string, unknown> }[] };
  json.peers[0]!.endpoints['reflectedSource'] = source;
  return json;
}

describe('maps with an endpoint source', () => {
  it('accept the valid shapes and refuse hostile ones (keeping the last good map)', () => {
    for (const ok of [
      { kind: 'reflector' },
      { kind: 'observed', byId: 'node-9', byName: 'relay', reflector: null },
      {
        kind: 'observed',
        byId: 'node-9',
        byName: 'relay',
        reflector: { ip: '198.51.100.7', port: 1 },
      },
      { kind: 'reflector', extra: 1 },
    ])
      expect(validateMap(withSource(ok)).ok, JSON.stringify(ok)).toBe(true);
    for (const bad of [
      null,
      'reflector',
      {},
      { kind: 'observed' },
      { kind: 'observed', byId: 'node-9', byName: 'Relay!', reflector: null },
      { kind: 'observed', byId: 'node-9', byName: 'r\u001b[2J', reflector: null },
      { kind: 'observed', byId: 'node-9', byName: 'relay', reflector: { ip: 'x', port: 1 } },
      { kind: 'observed', byId: 'node-9', byName: 'relay' },
      { kind: 'observed', byId: '', byName: 'relay', reflector: null },
      { kind: 'observed', byId: 'node-9', byName: 'x'.repeat(64), reflector: null },
      { kind: 'magic' },
    ])
      expect(validateMap(withSource(bad)).ok, JSON.stringify(bad)).toBe(false);
  });

  it('property: any value there is accepted only in a valid shape, and validation never throws', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue(),
          fc.record({
            kind: fc.constantFrom('reflector', 'observed', 'other'),
            byId: fc.oneof(fc.string(), fc.jsonValue()),
            byName: fc.oneof(fc.constantFrom('relay', 'r-1'), fc.string()),
            reflector: fc.oneof(
              fc.constant(null),
              fc.record({ ip: fc.oneof(fc.ipV4(), fc.string()), port: fc.integer() }),
            ),
          }),
        ),
        (value) => {
          const r = validateMap(withSource(value));
          if (!r.ok) return;
          const src = (r.map as NetworkMap).peers[0]!.endpoints.reflectedSource;
          // Whatever passed is a shape status can describe without throwing.
          expect(src === undefined || src.kind === 'reflector' || src.kind === 'observed').toBe(
            true,
          );
          expect(typeof endpointSourceOf(r.map.peers[0], '198.51.100.7:40001')).toBe('string');
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('status', () => {
  const p = (endpoints: MapPeer['endpoints']) => peer(2, { endpoints });
  it('names where each endpoint came from', () => {
    const local = [{ ip: '192.168.1.2', port: 51820 }];
    expect(endpointSourceOf(p({ reflected: PUBLIC, local }), '192.168.1.2:51820')).toBe('LAN');
    expect(endpointSourceOf(p({ reflected: PUBLIC, local }), '198.51.100.7:40001')).toBe(
      'reflected',
    );
    expect(
      endpointSourceOf(
        p({
          reflected: PUBLIC,
          local,
          reflectedSource: { kind: 'observed', byId: 'node-9', byName: 'relay', reflector: null },
        }),
        '198.51.100.7:40001',
      ),
    ).toBe('observed by relay');
    expect(
      endpointSourceOf(
        p({
          reflected: PUBLIC,
          local,
          reflectedSource: {
            kind: 'observed',
            byId: 'node-9',
            byName: 'relay',
            reflector: { ip: PUBLIC.ip, port: 51820 },
          },
        }),
        '198.51.100.7:40001',
      ),
    ).toBe('observed by relay (the reflector saw 198.51.100.7:51820: the NAT mapping split)');
    expect(endpointSourceOf(p({ reflected: PUBLIC, local }), '203.0.113.9:1')).toBe('roamed');
    expect(endpointSourceOf(undefined, '203.0.113.9:1')).toBe('roamed');
    expect(endpointSourceOf(p({ reflected: null, local }), null)).toBeNull();
  });
});
