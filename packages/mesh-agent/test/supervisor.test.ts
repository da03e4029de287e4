// The daemon's supervisor: the pid file, one agent per joined network, rescans on SIGHUP, and
// what stop closes. Agents run on a fake coordinator and fake dataplanes.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DAEMON_PID_FILE, Supervisor } from '../src/cli/supervisor.js';
import { createFakeDataplane } from '../src/dataplane/fake-dataplane.js';
import { memoryLogger } from '../src/log.js';
import { NetworkAgent } from '../src/network-agent.js';
import { StateStore } from '../src/state-store.js';
import { FakeClock, FakeCoordinator, settle } from './fake-coordinator.js';
import { LAN, map, nodeState, peer } from './fixtures.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wm-supervisor-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function joined(store: StateStore, network: string): void {
  const state = nodeState({ network, nodeId: `node-${network}`, interface: `wm-${network}` });

  store.save(state);
  store.saveKey(network, new Uint8Array(32).fill(1));
}

/** `failing`: networks whose dataplane cannot be opened. */
function setup(failing: ReadonlySet<string> = new Set()) {
  const store = new StateStore(dir);
  store.ensureDir();
  const { log, lines } = memoryLogger();
  const clock = new FakeClock();
  const apis = new Map<string, FakeCoordinator>();
  const closed: string[] = [];
  const supervisor = new Supervisor({
    store,
    log,
    async open(state, onGone) {
      if (failing.has(state.network)) throw new Error('no TUN device');
      const api = new FakeCoordinator();
      api.map = { ...map([peer(2)], 1), network: { ...map([]).network, name: state.network } };
      apis.set(state.network, api);
      const dp = createFakeDataplane();
      const dataplane = Object.assign(dp, {
        close: async () => void closed.push(state.network),
      });
      const agent = new NetworkAgent({
        state,
        store,
        api,
        dataplane,
        log,
        localAddresses: () => LAN.localAddresses,
        sleep: clock.sleep,
        now: clock.now,
        onGone,
      });
      return { agent, dataplane };
    },
  });
  return { store, lines, apis, closed, supervisor };
}

describe('Supervisor', () => {
  it('writes its pid file, runs every joined network, rescans on SIGHUP and cleans up on stop', async () => {
    const t = setup();
    joined(t.store, 'alpha');
    await t.supervisor.start();
    expect(readFileSync(join(dir, DAEMON_PID_FILE), 'utf8').trim()).toBe(String(process.pid));
    expect(t.supervisor.networks).toEqual(['alpha']);
    await settle();
    expect(t.supervisor.agent('alpha')?.currentMap?.version).toBe(1);

    // join hands a network over, leave takes one away: SIGHUP rescans.
    joined(t.store, 'beta');
    t.store.remove('alpha');
    process.emit('SIGHUP');
    await t.supervisor.rescan();
    expect(t.supervisor.networks).toEqual(['beta']);
    expect(t.closed).toEqual(['alpha']);
    expect(t.lines.some((l) => l.includes('alpha: no longer joined; stopping'))).toBe(true);

    expect(await t.supervisor.stop()).toBe(1);
    expect(t.closed).toEqual(['alpha', 'beta']);
    expect(existsSync(join(dir, DAEMON_PID_FILE))).toBe(false);
    // No longer listening for rescans.
    expect(process.listenerCount('SIGHUP')).toBe(0);
  });

  it('says it waits when nothing is joined, and one network that cannot start spares the others', async () => {
    const t = setup(new Set(['alpha']));
    await t.supervisor.start();
    expect(t.lines.some((l) => l.includes('no network is joined; waiting'))).toBe(true);
    joined(t.store, 'alpha');
    joined(t.store, 'beta');
    await t.supervisor.rescan();
    expect(t.supervisor.networks).toEqual(['beta']);
    expect(t.lines.some((l) => l.includes('alpha: cannot start: no TUN device'))).toBe(true);
    await t.supervisor.stop();
  });
});
