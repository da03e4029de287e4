// Endpoint discovery's timing rules, one by one, on the pure state machine: time is a number the
// test moves, actions are compared as values. No sleeps, no I/O.
import { describe, expect, it } from 'vitest';
import {
  DIRECT_WAIT_MS,
  PATH_CHECK_MS,
  PATH_WATCH_MAX_MS,
  PUNCH_STAGGER_MS,
  REFLECT_INTERVAL_MS,
  REFLECT_RETRY_MS,
} from '../src/constants.js';
import {
  Discovery,
  type DiscoveryAction,
  type DiscoveryInput,
} from '../src/discovery/discovery.js';
import type { ObservedPeer } from '../src/reconcile/diff.js';

const T0 = 1_800_000_000_000;
const OWN = 'MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM=';
const LOW = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const HIGH = 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzw=';
const PUBLIC = { ip: '203.0.113.2', port: 40000 };

function make(canReflect = true) {
  return new Discovery({ publicKey: OWN, canReflect: () => canReflect });
}

/** An apply that gave `keys` a new endpoint (added when `isNew`), holding `held`. */
function applied(
  keys: string[],
  o: { isNew?: boolean; held?: string[]; reflectPort?: number | null } = {},
): DiscoveryInput {
  return {
    type: 'applied',
    reflectPort: o.reflectPort === undefined ? 3478 : o.reflectPort,
    updated: keys.map((publicKey) => ({ publicKey, isNew: o.isNew ?? true, endpointSet: true })),
    removed: [],
    held: o.held ?? [],
  };
}

function peerSeen(publicKey: string, latestHandshakeS = 0, rxBytes = 0): ObservedPeer {
  return {
    publicKey,
    endpoint: '198.51.100.7:51820',
    allowedIps: [],
    latestHandshakeS,
    rxBytes,
    txBytes: 0,
    persistentKeepalive: 25,
  };
}

const types = (a: readonly DiscoveryAction[]) => a.map((x) => x.type);

/** A running machine that already knows its public endpoint (no probe due for a while). */
function running() {
  const d = make();
  d.start(T0);
  d.handle(T0, { type: 'map', reflectPort: 3478 });
  d.tick(T0);
  d.handle(T0, { type: 'reflection', kind: 'loop', endpoint: PUBLIC });
  return d;
}

describe('Discovery: hold and kick (hole punching)', () => {
  it('the greater key holds its first packet while running, never in a one-shot round', () => {
    const d = make();
    expect(d.holds(LOW)).toBe(false); // not running: nobody would kick
    d.start(T0);
    expect(d.holds(LOW)).toBe(true);
    expect(d.holds(HIGH)).toBe(false);
    d.stop();
    expect(d.holds(LOW)).toBe(false);
  });

  it('kicks the held peers PUNCH_STAGGER_MS after the apply, once', () => {
    const d = running();
    d.handle(T0 + 10, applied([LOW], { held: [LOW] }));
    expect(d.nextDeadline()).toBe(T0 + 10 + PATH_CHECK_MS);
    expect(d.tick(T0 + 10 + PUNCH_STAGGER_MS - 1).filter((a) => a.type === 'kick')).toEqual([]);
    const due = d.tick(T0 + 10 + PUNCH_STAGGER_MS).filter((a) => a.type === 'kick');
    expect(due).toEqual([{ type: 'kick', peers: [LOW] }]);
    expect(d.tick(T0 + 10 + 2 * PUNCH_STAGGER_MS).filter((a) => a.type === 'kick')).toEqual([]);
  });

  it('schedules no kick when stopped, and forgets pending kicks on stop', () => {
    const d = running();
    d.handle(T0, applied([LOW], { held: [LOW] }));
    d.stop();
    expect(d.nextDeadline()).toBeNull();
    expect(d.tick(T0 + PUNCH_STAGGER_MS)).toEqual([]);
  });
});

describe('Discovery: path checks and a failed direct attempt', () => {
  it('looks every PATH_CHECK_MS while a new endpoint shows no handshake', () => {
    const d = running();
    d.handle(T0, applied([LOW]));
    expect(d.nextDeadline()).toBe(T0 + PATH_CHECK_MS);
    expect(d.tick(T0 + PATH_CHECK_MS - 1)).toEqual([]);
    expect(d.tick(T0 + PATH_CHECK_MS)).toEqual([{ type: 'observe' }]);
    // No second look while one is on its way.
    expect(d.nextDeadline()).not.toBe(T0 + PATH_CHECK_MS);
    expect(d.tick(T0 + 5 * PATH_CHECK_MS)).toEqual([]);
    d.handle(T0 + PATH_CHECK_MS, { type: 'observed', peers: [peerSeen(LOW)] });
    expect(d.nextDeadline()).toBe(T0 + 2 * PATH_CHECK_MS);
  });

  it('reports a handshake since the endpoint was set and stops watching that peer', () => {
    const d = running();
    d.handle(T0, applied([LOW]));
    d.tick(T0 + PATH_CHECK_MS);
    const out = d.handle(T0 + PATH_CHECK_MS, {
      type: 'observed',
      // wg's whole seconds may read up to 1 s before the endpoint was set.
      peers: [peerSeen(LOW, Math.floor(T0 / 1000) - 1)],
    });
    expect(out).toEqual([{ type: 'report', reason: 'path-up' }]);
    expect(d.watching).toBe(0);
    expect(d.nextDeadline()).toBe(T0 + REFLECT_INTERVAL_MS);
  });

  it('counts traffic over a session that survived the change as a working path', () => {
    const d = running();
    d.handle(T0, applied([LOW], { isNew: false }));
    const old = Math.floor(T0 / 1000) - 100;
    d.tick(T0 + PATH_CHECK_MS);
    expect(
      d.handle(T0 + PATH_CHECK_MS, { type: 'observed', peers: [peerSeen(LOW, old, 500)] }),
    ).toEqual([]);
    d.tick(T0 + 2 * PATH_CHECK_MS);
    expect(
      d.handle(T0 + 2 * PATH_CHECK_MS, { type: 'observed', peers: [peerSeen(LOW, old, 900)] }),
    ).toEqual([{ type: 'report', reason: 'path-up' }]);
  });

  it('re-probes and reports once DIRECT_WAIT_MS pass without a handshake, then gives up at PATH_WATCH_MAX_MS', () => {
    const d = running();
    d.handle(T0, applied([LOW]));
    const look = (t: number) => {
      expect(d.tick(t)).toContainEqual({ type: 'observe' });
      return d.handle(t, { type: 'observed', peers: [peerSeen(LOW)] });
    };
    for (let t = T0 + PATH_CHECK_MS; t < T0 + DIRECT_WAIT_MS; t += PATH_CHECK_MS)
      expect(look(t)).toEqual([]);
    // The failed attempt: report it and probe the public endpoint again at once.
    expect(look(T0 + DIRECT_WAIT_MS)).toEqual([
      { type: 'report', reason: 'path-failed' },
      { type: 'probe', kind: 'loop' },
    ]);
    d.handle(T0 + DIRECT_WAIT_MS, { type: 'reflection', kind: 'loop', endpoint: PUBLIC });
    // Only once per attempt; the watch goes on until PATH_WATCH_MAX_MS, then ends.
    for (
      let t = T0 + DIRECT_WAIT_MS + PATH_CHECK_MS;
      t < T0 + PATH_WATCH_MAX_MS;
      t += PATH_CHECK_MS
    )
      expect(look(t)).toEqual([]);
    expect(look(T0 + PATH_WATCH_MAX_MS)).toEqual([]);
    expect(d.watching).toBe(0);
  });

  it('a peer removed, or gone from the interface, is no longer watched', () => {
    const d = running();
    d.handle(T0, applied([LOW, HIGH]));
    d.handle(T0, { type: 'applied', reflectPort: 3478, updated: [], removed: [LOW], held: [] });
    expect(d.watching).toBe(1);
    d.tick(T0 + PATH_CHECK_MS);
    d.handle(T0 + PATH_CHECK_MS, { type: 'observed', peers: [] });
    expect(d.watching).toBe(0);
  });

  it('keeps looking after an interface that could not be read', () => {
    const d = running();
    d.handle(T0, applied([LOW]));
    d.tick(T0 + PATH_CHECK_MS);
    expect(d.handle(T0 + PATH_CHECK_MS, { type: 'observed', peers: null })).toEqual([]);
    expect(d.nextDeadline()).toBe(T0 + 2 * PATH_CHECK_MS);
  });

  it('reports peers added at once; watches without looking until started', () => {
    const d = make();
    expect(types(d.handle(T0, applied([LOW], { reflectPort: null })))).toEqual(['report']);
    expect(d.nextDeadline()).toBeNull();
    d.start(T0 + 5);
    expect(d.nextDeadline()).toBe(T0 + 5 + PATH_CHECK_MS);
  });
});

describe('Discovery: reflection probes', () => {
  it('probes at start, retries every REFLECT_RETRY_MS without a reply, then every REFLECT_INTERVAL_MS', () => {
    const d = make();
    d.handle(T0, { type: 'map', reflectPort: 3478 }); // a restored map, before the loops
    expect(d.nextDeadline()).toBeNull();
    expect(d.start(T0)).toEqual([{ type: 'probe', kind: 'loop' }]);
    expect(d.nextDeadline()).toBeNull(); // the probe is on its way
    d.handle(T0 + 300, { type: 'reflection', kind: 'loop', endpoint: null });
    expect(d.nextDeadline()).toBe(T0 + 300 + REFLECT_RETRY_MS);
    expect(d.tick(T0 + 300 + REFLECT_RETRY_MS)).toEqual([{ type: 'probe', kind: 'loop' }]);
    const t = T0 + 300 + REFLECT_RETRY_MS + 20;
    // A new endpoint: apply (endpoint choice depends on it) and report, then the long interval.
    expect(d.handle(t, { type: 'reflection', kind: 'loop', endpoint: PUBLIC })).toEqual([
      { type: 'apply', label: 'new public endpoint' },
      { type: 'report', reason: 'public-endpoint' },
    ]);
    expect(d.reflected).toEqual(PUBLIC);
    expect(d.nextDeadline()).toBe(t + REFLECT_INTERVAL_MS);
    // The same answer again changes nothing.
    d.tick(t + REFLECT_INTERVAL_MS);
    expect(
      d.handle(t + REFLECT_INTERVAL_MS, { type: 'reflection', kind: 'loop', endpoint: PUBLIC }),
    ).toEqual([]);
    expect(d.nextDeadline()).toBe(t + 2 * REFLECT_INTERVAL_MS);
  });

  it('never probes where the backend cannot send from the socket (kernel), nor without a reflector', () => {
    const k = make(false);
    k.start(T0);
    k.handle(T0, { type: 'map', reflectPort: 3478 });
    expect(types(k.handle(T0, applied([LOW])))).toEqual(['report']);
    expect(k.tick(T0 + REFLECT_INTERVAL_MS)).not.toContainEqual({ type: 'probe', kind: 'loop' });
    // A port probe's answer is not kept either: nothing could check the mapping later.
    k.handle(T0, { type: 'reflection', kind: 'port', endpoint: PUBLIC });
    expect(k.reflected).toBeNull();

    const none = make();
    none.start(T0);
    none.handle(T0, { type: 'map', reflectPort: null });
    expect(none.nextDeadline()).toBeNull();
  });

  it('a map with a reflector wakes the probe while the public endpoint is unknown', () => {
    const d = make();
    d.start(T0);
    expect(d.nextDeadline()).toBeNull(); // no map, no reflector yet
    expect(d.handle(T0 + 7, { type: 'map', reflectPort: 3478 })).toEqual([
      { type: 'probe', kind: 'loop' },
    ]);
  });

  it('one quick probe right after the first apply that knows a reflector, run inside it', () => {
    const d = make();
    expect(d.handle(T0, applied([], { reflectPort: null }))).toEqual([]);
    expect(d.handle(T0, applied([], { reflectPort: 3478 }))).toEqual([
      { type: 'probe', kind: 'early' },
    ]);
    expect(d.handle(T0, applied([]))).toEqual([]);
    expect(d.handle(T0, { type: 'reflection', kind: 'early', endpoint: PUBLIC })).toEqual([
      { type: 'apply', label: 'public endpoint' },
    ]);
  });

  it('the probe from the listen port comes once, and its answer replaces the quick probe', () => {
    const d = make();
    expect(d.takePortProbe()).toBe(true);
    expect(d.takePortProbe()).toBe(false);
    expect(d.handle(T0, { type: 'reflection', kind: 'port', endpoint: PUBLIC })).toEqual([]);
    expect(d.reflected).toEqual(PUBLIC);
    expect(d.handle(T0, applied([], { isNew: false }))).toEqual([]);
  });

  it('new LAN addresses (another network) probe again at once; asked while probing, right after', () => {
    const d = running();
    expect(d.handle(T0 + 1, { type: 'local-endpoints', key: '["192.0.2.1:51820"]' })).toEqual([]);
    expect(d.handle(T0 + 2, { type: 'local-endpoints', key: '["192.0.2.1:51820"]' })).toEqual([]);
    expect(d.handle(T0 + 3, { type: 'local-endpoints', key: '["10.1.0.5:51820"]' })).toEqual([
      { type: 'probe', kind: 'loop' },
    ]);
    d.handle(T0 + 4, { type: 'local-endpoints', key: '["10.2.0.5:51820"]' });
    expect(d.handle(T0 + 50, { type: 'reflection', kind: 'loop', endpoint: PUBLIC })).toEqual([
      { type: 'probe', kind: 'loop' },
    ]);
  });
});
