// Soak: a running agent (the daemon's per-network part: control client, reconciler, discovery and
// its timer) takes 20,000 map changes and patches from a fake coordinator onto the fake dataplane,
// with fake time passing (probes, path checks, kicks, reports all fire). Its heap after GC must stay
// flat: anything kept per apply (an unbounded history, say) grows it by tens of MB.
// Needs --expose-gc (vitest.config.ts gives the unit workers execArgv).
import type { MapPatch, MapPeer, NetworkMap } from '@wiremesh/protocol';
import { describe, expect, it } from 'vitest';
import { validateMap } from '../src/control/coordinator-client.js';
import { createFakeDataplane } from '../src/dataplane/fake-dataplane.js';
import type { Logger } from '../src/log.js';
import { NetworkAgent } from '../src/network-agent.js';
import { FakeClock, FakeCoordinator } from './fake-coordinator.js';
import { LAN, map, nodeState, peer } from './fixtures.js';

const CHANGES = 20_000;
const MARKS = [1_000, 10_000, 20_000];
/** Peers in the map at most; changes add, remove and move them. */
const PEERS = 10;
/** Fake time per change: 20,000 changes are 1,000 s, so every periodic rule fires many times. */
const STEP_MS = 50;
/** Time moves on after this many changes (each move lets every due timer's work run). */
const CHANGES_PER_STEP = 10;
/**
 * Allowed heap growth from the 1,000th to the 20,000th change. The agent stays within a few
 * hundred KiB here; with its apply history unbounded (historyLimit MAX_SAFE_INTEGER) it grew by
 * 18 MiB, about 1 KiB per apply.
 */
const MAX_GROWTH_BYTES = 6 * 1024 * 1024;
const MIB = 1024 * 1024;

const STATE = nodeState();

/** Peer n (2..PEERS+1) in variant v: endpoints and allowed IPs move with v. */
function peerAt(n: number, v: number): MapPeer {
  return peer(n, {
    endpoints: {
      reflected: { ip: `203.0.113.${n}`, port: 40000 + (v % 1000) },
      local: [{ ip: `192.0.2.${n}`, port: 51820 }],
    },
    allowedIps: [`10.8.0.${n}/32`, ...(v % 3 === 0 ? [`10.9.${n}.0/24`] : [])],
  });
}

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined)
    throw new Error('the soak needs node --expose-gc (vitest.config.ts execArgv)');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('soak', () => {
  it(
    `keeps a flat heap over ${CHANGES} map changes and patches`,
    { timeout: 120_000 },
    async () => {
      const api = new FakeCoordinator();
      const dp = createFakeDataplane();
      dp.reflected = { ip: '198.51.100.1', port: 41000 };
      const clock = new FakeClock();
      const errors: string[] = [];
      const log: Logger = {
        debug() {},
        info() {},
        warn() {},
        error: (line) => void (errors.length < 10 && errors.push(line)),
      };
      let saved: NetworkMap | null = null;
      const agent = new NetworkAgent({
        state: STATE,
        store: {
          loadMap: () => saved,
          saveMap: (_n, m) => void (saved = m),
          keyPath: () => '/state/demo.key',
          remove: () => undefined,
        },
        api,
        dataplane: dp,
        log,
        localAddresses: () => LAN.localAddresses,
        sleep: clock.sleep,
        now: clock.now,
        resolveHost: async (h) => h,
      });
      agent.start();
      await clock.advance(0);

      // The peers present now, by number, with their variant.
      const present = new Map<number, number>();
      let current: NetworkMap = { ...map([], 1), reflectPort: 3478 };
      const build = (version: number): NetworkMap => ({
        ...current,
        version,
        peers: [...present].sort((a, b) => a[0] - b[0]).map(([n, v]) => peerAt(n, v)),
      });
      api.map = current;
      api.emit({ type: 'map', map: validateMap(current) });

      const heap: number[] = [];
      const started = Date.now();
      for (let i = 1; i <= CHANGES; i++) {
        const version = current.version + 1;
        const n = 2 + (i % PEERS);
        const remove = present.has(n) && i % 7 === 0;
        if (remove) present.delete(n);
        else present.set(n, i);
        const next = build(version);
        api.map = next;
        if (i % 10 === 0) {
          api.emit({ type: 'map', map: validateMap(next) });
        } else if (i % 101 === 0) {
          // A patch that does not start at the agent's version: it fetches the full map.
          const patch: MapPatch = {
            fromVersion: current.version - 1,
            version,
            upsertPeers: [],
            removePeerIds: [],
          };
          api.emit({ type: 'patch', patch });
        } else {
          const patch: MapPatch = {
            fromVersion: current.version,
            version,
            upsertPeers: remove ? [] : [peerAt(n, i)],
            removePeerIds: remove ? [`node-${n}`] : [],
          };
          api.emit({ type: 'patch', patch });
        }
        current = next;
        while (agent.currentMap?.version !== version)
          await new Promise<void>((r) => setImmediate(r));
        await clock.advance(STEP_MS);
        if (i % 100 === 0) {
          // The fakes' own records of what was done are not the agent's memory.
          dp.commands.length = 0;
          dp.probes.length = 0;
          api.checkins.length = 0;
        }
        if (MARKS.includes(i)) heap.push(heapAfterGc());
      }
      const seconds = (Date.now() - started) / 1000;
      await agent.stop();

      const [at1k, at10k, at20k] = heap as [number, number, number];
      console.log(
        `soak: ${CHANGES} changes in ${seconds.toFixed(1)} s; heap after GC at 1k ${(at1k / MIB).toFixed(2)} MiB, 10k ${(at10k / MIB).toFixed(2)} MiB, 20k ${(at20k / MIB).toFixed(2)} MiB (growth ${((at20k - at1k) / 1024).toFixed(0)} KiB); history ${agent.history.length} results`,
      );
      expect(errors).toEqual([]);
      expect(agent.lastApplied?.mapVersion).toBe(current.version);
      expect(at20k - at1k).toBeLessThan(MAX_GROWTH_BYTES);
    },
  );
});
