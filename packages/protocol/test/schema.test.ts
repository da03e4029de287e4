import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ERRORS,
  ErrorBody,
  NetworkMap,
  PushEvent,
  RegisterRequest,
  CheckinRequest,
  CreateNetworkRequest,
  WgKey,
  formatEndpoint,
  parseEndpoint,
  parsePushEvent,
  statusOf,
  applyMapPatch,
  PROTOCOL_VERSION,
} from '../src/index.js';
import { KEY_A, map, peer } from './fixtures.js';

describe('primitives', () => {
  it('accepts WireGuard keys and rejects other base64', () => {
    expect(WgKey.safeParse(KEY_A).success).toBe(true);
    expect(WgKey.safeParse(KEY_A.slice(1)).success).toBe(false);
    // 32 bytes whose last character has low bits set is not canonical base64 of 32 bytes.
    expect(WgKey.safeParse(`${KEY_A.slice(0, 42)}B=`).success).toBe(false);
    expect(WgKey.safeParse(Buffer.alloc(33).toString('base64')).success).toBe(false);
  });

  it('formats and parses endpoints both ways', () => {
    expect(formatEndpoint({ ip: '1.2.3.4', port: 51820 })).toBe('1.2.3.4:51820');
    expect(formatEndpoint({ ip: 'fd00::1', port: 1 })).toBe('[fd00::1]:1');
    expect(parseEndpoint('[fd00::1]:1')).toEqual({ ip: 'fd00::1', port: 1 });
    expect(parseEndpoint('1.2.3.4:51820')).toEqual({ ip: '1.2.3.4', port: 51820 });
    expect(parseEndpoint('1.2.3.4:0')).toBeNull();
    expect(parseEndpoint('1.2.3.4:65536')).toBeNull();
    expect(parseEndpoint('host.example:1')).toBeNull();
    expect(parseEndpoint('fd00::1:1')).toBeNull();
  });

  it('parseEndpoint never throws', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        parseEndpoint(s);
      }),
    );
  });
});

describe('network map', () => {
  it('validates a complete map and rejects a bad peer key', () => {
    const m = map(3, [peer('b')]);
    expect(NetworkMap.parse(m)).toEqual(m);
    const bad = map(3, [peer('b', { publicKey: 'nope' })]);
    expect(NetworkMap.safeParse(bad).success).toBe(false);
  });

  it('rejects an allowed IP that is not a CIDR', () => {
    expect(NetworkMap.safeParse(map(1, [peer('b', { allowedIps: ['10.8.0.2'] })])).success).toBe(
      false,
    );
    expect(NetworkMap.safeParse(map(1, [peer('b', { allowedIps: ['10.8.0.2/33'] })])).success).toBe(
      false,
    );
  });
});

describe('applyMapPatch', () => {
  const base = map(5, [peer('b'), peer('c'), peer('d')]);

  it('upserts, removes and appends, keeping order', () => {
    const next = applyMapPatch(base, {
      fromVersion: 5,
      version: 7,
      upsertPeers: [peer('c', { listenPort: 4000 }), peer('e')],
      removePeerIds: ['b'],
    });
    expect(next?.version).toBe(7);
    expect(next?.peers.map((p) => p.id)).toEqual(['c', 'd', 'e']);
    expect(next?.peers[0]?.listenPort).toBe(4000);
    expect(next?.self).toBe(base.self);
    expect(base.peers).toHaveLength(3);
  });

  it('returns null when the patch does not start at the map version', () => {
    expect(
      applyMapPatch(base, { fromVersion: 4, version: 6, upsertPeers: [], removePeerIds: [] }),
    ).toBeNull();
  });

  it('replaces self and reflectPort when given, keeps them otherwise', () => {
    const s = { ...base.self, mtu: 1380 };
    const next = applyMapPatch(base, {
      fromVersion: 5,
      version: 6,
      self: s,
      reflectPort: null,
      upsertPeers: [],
      removePeerIds: [],
    });
    expect(next?.self.mtu).toBe(1380);
    expect(next?.reflectPort).toBeNull();
  });

  it('agrees with a naive model of the peer set', () => {
    const ids = fc.constantFrom<string>('b', 'c', 'd', 'e', 'f');
    fc.assert(
      fc.property(
        fc.uniqueArray(ids),
        fc.uniqueArray(ids),
        fc.uniqueArray(ids),
        (start, up, rm) => {
          const m = map(
            1,
            start.map((id) => peer(id)),
          );
          const out = applyMapPatch(m, {
            fromVersion: 1,
            version: 2,
            upsertPeers: up.map((id) => peer(id, { listenPort: 9 })),
            removePeerIds: rm,
          });
          const expected = new Set([...start, ...up].filter((id) => !rm.includes(id)));
          expect(new Set(out?.peers.map((p) => p.id))).toEqual(expected);
          expect(out?.peers.length).toBe(expected.size);
          for (const p of out?.peers ?? [])
            expect(p.listenPort).toBe(up.includes(p.id) ? 9 : 51820);
        },
      ),
    );
  });
});

describe('bodies and events', () => {
  it('validates a registration and rejects unknown backends and bad names', () => {
    const ok = {
      protocolVersion: PROTOCOL_VERSION,
      network: 'demo',
      name: 'node-1',
      publicKey: KEY_A,
      os: 'linux',
      version: '0.1.0',
      backend: 'kernel',
    };
    expect(RegisterRequest.safeParse(ok).success).toBe(true);
    expect(RegisterRequest.safeParse({ ...ok, backend: 'bsd' }).success).toBe(false);
    expect(RegisterRequest.safeParse({ ...ok, name: 'Node_1' }).success).toBe(false);
    expect(
      RegisterRequest.safeParse({ ...ok, localEndpoints: [{ ip: '10.0.0.1', port: 0 }] }).success,
    ).toBe(false);
  });

  it('validates check-ins with optional fields', () => {
    expect(CheckinRequest.safeParse({ protocolVersion: 1 }).success).toBe(true);
    expect(
      CheckinRequest.safeParse({
        protocolVersion: 1,
        reflectedEndpoint: { ip: '1.2.3.4', port: 5 },
      }).success,
    ).toBe(true);
    expect(
      CheckinRequest.safeParse({ protocolVersion: 1, peers: [{ publicKey: KEY_A }] }).success,
    ).toBe(false);
  });

  it('rejects a network whose CIDR is malformed', () => {
    expect(CreateNetworkRequest.safeParse({ name: 'demo', ipv4Cidr: '10.8.0.0/16' }).success).toBe(
      true,
    );
    expect(CreateNetworkRequest.safeParse({ name: 'demo', ipv4Cidr: '10.8.0.0' }).success).toBe(
      false,
    );
    expect(
      CreateNetworkRequest.safeParse({ name: 'demo', ipv4Cidr: '10.8.0.0/16', mtu: 100 }).success,
    ).toBe(false);
  });

  it('parses push events and returns null for garbage', () => {
    const ev: PushEvent = { type: 'state', state: 'pending', message: 'waiting for approval' };
    expect(parsePushEvent(JSON.stringify(ev))).toEqual(ev);
    expect(parsePushEvent(JSON.stringify({ type: 'map', map: map(1, []) }))?.type).toBe('map');
    expect(parsePushEvent('{')).toBeNull();
    expect(parsePushEvent(JSON.stringify({ type: 'other' }))).toBeNull();
    fc.assert(
      fc.property(fc.string(), (s) => {
        parsePushEvent(s);
      }),
    );
  });
});

describe('error registry', () => {
  it('gives every code a client or server error status', () => {
    for (const [code, { status }] of Object.entries(ERRORS)) {
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
    }
    expect(statusOf('route_not_found')).toBe(404);
    expect(statusOf('auth_required')).toBe(401);
    expect(statusOf('forbidden')).toBe(403);
    expect(ErrorBody.safeParse({ code: 'not_found', message: 'x' }).success).toBe(true);
    expect(ErrorBody.safeParse({ code: 'made_up', message: 'x' }).success).toBe(false);
  });
});

describe('relay fallback fields', () => {
  it('accepts a map with and without self.peerRelays, and rejects a malformed one', () => {
    const m = map(3, [peer('b')]);
    expect(NetworkMap.safeParse(m).success).toBe(true);
    const withRelays = { ...m, self: { ...m.self, peerRelays: [{ peerId: 'b', relayId: 'r' }] } };
    const parsed = NetworkMap.safeParse(withRelays);
    expect(parsed.success && parsed.data.self.peerRelays).toEqual([{ peerId: 'b', relayId: 'r' }]);
    const bad = { ...m, self: { ...m.self, peerRelays: [{ peerId: 'b' }] } };
    expect(NetworkMap.safeParse(bad).success).toBe(false);
  });

  it('takes a peer status with a handshake age, null for none, and refuses a negative one', () => {
    const status = (age: unknown) => ({
      protocolVersion: 1,
      peers: [
        {
          publicKey: KEY_A,
          latestHandshakeMs: null,
          rxBytes: 0,
          txBytes: 0,
          endpoint: null,
          handshakeAgeMs: age,
        },
      ],
    });
    expect(CheckinRequest.safeParse(status(1500)).success).toBe(true);
    expect(CheckinRequest.safeParse(status(null)).success).toBe(true);
    expect(CheckinRequest.safeParse(status(-1)).success).toBe(false);
    expect(CheckinRequest.safeParse(status(1.5)).success).toBe(false);
  });
});
