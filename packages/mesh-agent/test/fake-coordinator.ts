/** A CoordinatorApi in memory for the agent loop tests: the test drives the push stream by hand. */
import type { CheckinRequest, NetworkMap } from '@wiremesh/protocol';
import type {
  CheckinResult,
  CoordinatorApi,
  MapResult,
  StreamEvent,
} from '../src/control/coordinator-client.js';
import { validateMap } from '../src/control/coordinator-client.js';
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

/** A Sleep the test releases by hand; records the delays asked for. */
export function manualSleep() {
  const waiting: { ms: number; resolve: () => void }[] = [];
  const asked: number[] = [];
  return {
    asked,
    waiting,
    sleep: (ms: number, signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        asked.push(ms);
        const onAbort = () => resolve();
        waiting.push({
          ms,
          resolve: () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          },
        });
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    /** Ends every pending sleep of exactly `ms` (or all when omitted). */
    release(ms?: number) {
      for (let i = waiting.length - 1; i >= 0; i--) {
        const w = waiting[i]!;
        if (ms === undefined || w.ms === ms) {
          waiting.splice(i, 1);
          w.resolve();
        }
      }
    },
  };
}

/** Lets pending promise chains run (no timers involved). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}
