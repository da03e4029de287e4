// The control client's timing rules on a fake clock: capped backoff while the coordinator is away,
// one outage line, reconnect at once when a check-in gets through, periodic reports, removal.
import type { CheckinRequest } from '@wiremesh/protocol';
import { describe, expect, it } from 'vitest';
import { ControlClient, type GoneReason } from '../src/control/control-client.js';
import { CoordinatorError, type StreamEvent } from '../src/control/coordinator-client.js';
import { memoryLogger } from '../src/log.js';
import { FakeClock, FakeCoordinator, RecordingBackoff, settle } from './fake-coordinator.js';
import { map, peer } from './fixtures.js';

const REPORT_MS = 10_000;

function setup() {
  const api = new FakeCoordinator();
  const clock = new FakeClock();
  const { log, lines } = memoryLogger();
  const backoff = new RecordingBackoff({ minMs: 100, maxMs: 800, jitter: 0 });
  const events: StreamEvent[] = [];
  const gone: GoneReason[] = [];
  const client = new ControlClient({
    network: 'demo',
    api,
    log,
    sleep: clock.sleep,
    backoff,
    reportIntervalMs: REPORT_MS,
    handler: {
      report: async (): Promise<CheckinRequest> => ({
        protocolVersion: 1,
        knownMapVersion: null,
        backend: 'userspace',
        version: 'test',
        os: 'test',
      }),
      event: async (e) => void events.push(e),
      checkedIn: async () => undefined,
      gone: async (r) => {
        gone.push(r);
        client.halt();
      },
      holding: () => 'map v1',
    },
  });
  return { api, clock, lines, backoff, events, gone, client };
}

describe('ControlClient', () => {
  it('hands push events over in order and reports every interval', async () => {
    const t = setup();
    t.client.start();
    await settle();
    t.api.emit({ type: 'map', map: { ok: true, map: map([peer(2)], 1) } });
    t.api.emit({ type: 'state', state: 'pending', message: 'waits' });
    await settle();
    expect(t.events.map((e) => e.type)).toEqual(['map', 'state']);
    expect(t.api.checkins).toHaveLength(0);
    await t.clock.advance(REPORT_MS - 1);
    expect(t.api.checkins).toHaveLength(0);
    await t.clock.advance(1);
    expect(t.api.checkins).toHaveLength(1);
    await t.clock.advance(2 * REPORT_MS);
    expect(t.api.checkins).toHaveLength(3);
    await t.client.stop();
  });

  it('backs off 100, 200, 400, then 800 ms (capped) while away; says so once; back at once when a check-in gets through', async () => {
    const t = setup();
    t.client.start();
    await settle();
    t.api.crash();
    await settle();
    expect(t.backoff.delays).toEqual([100]);
    await t.clock.advance(99);
    expect(t.api.streamsOpened).toBe(1);
    await t.clock.advance(1);
    expect(t.api.streamsOpened).toBe(2);
    for (let i = 0; i < 5; i++) await t.clock.advance(t.backoff.delays.at(-1)!);
    expect(t.backoff.delays).toEqual([100, 200, 400, 800, 800, 800, 800]);
    expect(t.lines.filter((l) => l.includes('the mesh stays up with map v1'))).toHaveLength(1);
    // The coordinator returns just before the periodic report (due at 10 s), in the middle of a
    // backoff wait that would end at 10.3 s: the report gets through and the stream reconnects at
    // once instead of waiting the delay out.
    await t.clock.advance(9_600 - 3_100);
    t.api.down = false;
    const opened = t.api.streamsOpened;
    await t.clock.advance(399);
    expect(t.api.streamsOpened).toBe(opened);
    await t.clock.advance(1);
    expect(t.api.checkins).toHaveLength(1);
    expect(t.api.streamsOpened).toBe(opened + 1);
    expect(t.api.connected).toBe(true);
    expect(t.lines.some((l) => l.includes('the coordinator is back'))).toBe(true);
    // A stream that delivers resets the backoff.
    t.api.emit({ type: 'state', state: 'pending', message: 'waits' });
    await settle();
    t.api.crash();
    await settle();
    expect(t.backoff.delays.at(-1)).toBe(100);
    await t.client.stop();
  });

  it('stops for good when the coordinator says the node was removed', async () => {
    const t = setup();
    t.api.down = false;
    t.api.checkin = async () => {
      throw new CoordinatorError(404, 'node_removed', 'this node was removed');
    };
    expect(await t.client.checkinOnce()).toBe('removed');
    expect(t.gone).toEqual(['removed']);
    expect(t.client.signal.aborted).toBe(true);
    // A stopped client sends nothing more.
    t.client.reportSoon();
    await settle();
    expect(t.gone).toEqual(['removed']);
  });

  it('coalesces reports asked for while one is on its way into one more', async () => {
    const t = setup();
    let release!: () => void;
    const first = new Promise<void>((r) => (release = r));
    const real = t.api.checkin.bind(t.api);
    let calls = 0;
    t.api.checkin = async (req) => {
      calls++;
      if (calls === 1) await first;
      return real(req);
    };
    t.client.reportSoon();
    await settle();
    t.client.reportSoon();
    t.client.reportSoon();
    t.client.reportSoon();
    release();
    await settle();
    expect(calls).toBe(2);
  });
});
