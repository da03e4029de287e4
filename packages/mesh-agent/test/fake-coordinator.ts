/** A CoordinatorApi in memory for the agent loop tests: the test drives the push stream by hand. */
import type { CheckinRequest, NetworkMap } from '@wiremesh/protocol';
import type {
  CheckinResult,
  CoordinatorApi,
  MapResult,
  StreamEvent,
} from '../src/control/coordinator-client.js';
import { validateMap } from '../src/control/coordinator-client.js';
import { Backoff } from '../src/control/backoff.js';
import { AgentError } from '../src/errors.js';

interface Session {
  onEvent: (e: StreamEvent) => void;
  end: (err?: Error) => void;
}

export class FakeCoordinator implements CoordinatorApi {
  down = false;
  map: NetworkMap | null = null;
  state: CheckinResult['state'] = 'approved';
  readonly checkins: CheckinRequest[] = [];
  streamsOpened = 0;
  mapFetches = 0;
  private session: Session | null = null;

  async register(): Promise<never> {
    throw new Error('not used');
  }

  async checkin(req: CheckinRequest): Promise<CheckinResult> {
    if (this.down)
      throw new AgentError('unreachable', 'cannot reach the coordinator (ECONNREFUSED)');
    this.checkins.push(req);
    const fresh = this.map !== null && req.knownMapVersion !== this.map.version;
    return {
      state: this.state,
      mapVersion: this.map?.version ?? null,
      map: fresh && this.state === 'approved' && this.map !== null ? validateMap(this.map) : null,
      pollIntervalMs: 30_000,
    };
  }

  async fetchMap(): Promise<MapResult> {
    this.mapFetches++;
    if (this.down) throw new AgentError('unreachable', 'cannot reach the coordinator');
    return validateMap(this.map);
  }

  async leave(): Promise<void> {}

  stream(onEvent: (e: StreamEvent) => void, signal: AbortSignal): Promise<void> {
    this.streamsOpened++;
    if (this.down)
      return Promise.reject(
        new AgentError('unreachable', 'cannot reach the coordinator (ECONNREFUSED)'),
      );
    return new Promise((resolve, reject) => {
      const end = (err?: Error) => {
        this.session = null;
        if (err) reject(err);
        else resolve();
      };
      const onAbort = () => end();
      this.session = {
        onEvent,
        end: (err?: Error) => {
          signal.removeEventListener('abort', onAbort);
          end(err);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      // Like the real hub: a new stream starts with the full map of an approved node.
      const m = this.map;
      if (m !== null && this.state === 'approved')
        queueMicrotask(() => onEvent({ type: 'map', map: validateMap(m) }));
    });
  }

  /** Whether an agent holds the stream now. */
  get connected(): boolean {
    return this.session !== null;
  }

  /** Sends one event on the open stream. */
  emit(e: StreamEvent): void {
    if (this.session === null) throw new Error('no stream open');
    this.session.onEvent(e);
  }

  /** Breaks the open stream (the coordinator died). */
  crash(): void {
    this.down = true;
    this.session?.end(new AgentError('unreachable', 'the push stream broke (socket hang up)'));
  }
}

/** A Backoff that records the delays it hands out. */
export class RecordingBackoff extends Backoff {
  readonly delays: number[] = [];
  override next(): number {
    const d = super.next();
    this.delays.push(d);
    return d;
  }
}

/**
 * A fake clock for the agent: `now` and `sleep` on one time line that only `advance` moves, so a
 * test says "1 s later" and every sleep due by then ends, in deadline order. Records the delays
 * asked for. No real timer is involved.
 */
export class FakeClock {
  private t: number;
  private readonly timers: { at: number; ms: number; resolve: () => void }[] = [];
  /** Every delay asked for, in order. */
  readonly asked: number[] = [];

  constructor(start = 1_800_000_000_000) {
    this.t = start;
  }

  /** The current time (unix ms). */
  readonly now = (): number => this.t;

  /** A Sleep on this clock. */
  readonly sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      this.asked.push(ms);
      const timer = {
        at: this.t + ms,
        ms,
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.timers.indexOf(timer);
        if (i >= 0) this.timers.splice(i, 1);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });

  /** The sleeps still waiting: their delays and when they end. */
  get pending(): readonly { at: number; ms: number }[] {
    return this.timers.map(({ at, ms }) => ({ at, ms }));
  }

  /** Moves time on by `ms`, ending every sleep due on the way (letting each one's work run). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: (typeof this.timers)[number] | undefined;
      for (const timer of this.timers)
        if (timer.at <= end && (next === undefined || timer.at < next.at)) next = timer;
      if (next === undefined) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.t = Math.max(this.t, next.at);
      next.resolve();
    }
    this.t = end;
    await settle();
  }
}

/** Lets pending promise chains run (no timers involved). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}
