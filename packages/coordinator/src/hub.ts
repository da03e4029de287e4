/**
 * The push hub: keeps each network's current snapshot, and when a network changes (from this
 * coordinator or, through the database's change feed, from another replica) brings every
 * stream of that network up to date: a patch when the stream holds the previous version, a full
 * map otherwise, a state event for nodes that are not approved.
 */
import { STREAM_KEEPALIVE_MS, type NodeState } from '@wiremesh/protocol';
import { PUSH_COALESCE_MS, STREAM_MAX_BUFFER_BYTES } from './constants.js';
import type { Metrics } from './metrics.js';
import {
  buildSnapshot,
  diffSnapshots,
  mapJsonFor,
  patchJsonFor,
  type Snapshot,
  type SnapshotDiff,
} from './snapshot.js';
import type { NodeRecord, Store } from './store/index.js';

/** Where a stream's bytes go (an HTTP response in production, an array in tests). */
export interface StreamSink {
  write(chunk: string): boolean;
  end(): void;
  /** Closes at once, discarding unsent bytes (a stalled client must not keep them alive). */
  destroy?(): void;
  readonly writableLength: number;
}

interface Stream {
  nodeId: string;
  networkId: string;
  sink: StreamSink;
  /** Map version the stream was last brought to; -1 before any map. */
  version: number;
  state: NodeState | null;
}

const STATE_MESSAGES: Record<NodeState, string> = {
  pending: 'the node waits for an admin to approve it',
  approved: 'the node is approved',
  rejected: 'an admin rejected this node',
  removed: 'this node was removed from the network',
};

function sse(event: string, data: string, id?: number): string {
  return id === undefined
    ? `event: ${event}\ndata: ${data}\n\n`
    : `event: ${event}\nid: ${id}\ndata: ${data}\n\n`;
}

/** Limits of a Hub (tests lower them to reach them quickly). */
export interface HubOptions {
  /** A stream whose unsent bytes exceed this is closed. Default STREAM_MAX_BUFFER_BYTES. */
  maxBufferBytes?: number;
}

/** Push streams and snapshots of all networks. */
export class Hub {
  private readonly cache = new Map<string, { snap: Snapshot | null; seq: number }>();
  private readonly pushed = new Map<string, Snapshot>();
  private readonly seq = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly loads = new Map<string, Promise<Snapshot | null>>();
  private readonly streams = new Map<string, Set<Stream>>();
  private readonly keepalive: NodeJS.Timeout;
  private readonly maxBufferBytes: number;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly reflectPort: number | null,
    private readonly metrics: Metrics,
    private readonly onError: (e: unknown) => void,
    opts: HubOptions = {},
  ) {
    this.maxBufferBytes = opts.maxBufferBytes ?? STREAM_MAX_BUFFER_BYTES;
    metrics.counter('wiremesh_push_events_total', 'Events written to push streams, by type.');
    metrics.gauge('wiremesh_push_streams', 'Open push streams.');
    metrics.gauge(
      'wiremesh_push_buffered_bytes',
      'Bytes written to push streams and not yet sent.',
    );
    metrics.counter('wiremesh_push_flushes_total', 'Network changes fanned out to streams.');
    metrics.collect(() => {
      metrics.set('wiremesh_push_streams', {}, this.streamCount());
      metrics.set('wiremesh_push_buffered_bytes', {}, this.bufferedBytes());
    });
    this.keepalive = setInterval(() => this.ping(), STREAM_KEEPALIVE_MS);
    this.keepalive.unref();
    store.db.subscribe((id) => this.changed(id));
    store.onLocalChange((id) => this.changed(id));
  }

  /** Number of open streams. */
  streamCount(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.size;
    return n;
  }

  /** Bytes written to all open streams that their clients have not taken yet. */
  bufferedBytes(): number {
    let n = 0;
    for (const set of this.streams.values()) for (const s of set) n += s.sink.writableLength;
    return n;
  }

  /** Marks network `networkId` changed and schedules a fan-out (bursts coalesce). */
  changed(networkId: string): void {
    this.seq.set(networkId, (this.seq.get(networkId) ?? 0) + 1);
    if (this.closed || this.timers.has(networkId)) return;
    const t = setTimeout(() => {
      this.timers.delete(networkId);
      const prev = this.chains.get(networkId) ?? Promise.resolve();
      const next = prev.then(() => this.flush(networkId)).catch(this.onError);
      this.chains.set(networkId, next);
    }, PUSH_COALESCE_MS);
    this.timers.set(networkId, t);
  }

  /**
   * The current snapshot of a network, or null if it is gone: the cached one when nothing changed
   * since it was loaded, else a reload. Loads are single-flight per network, so a burst of
   * requests after a burst of changes shares one reload instead of each reading every node.
   */
  async snapshot(networkId: string): Promise<Snapshot | null> {
    const want = this.seq.get(networkId) ?? 0;
    for (;;) {
      const hit = this.cache.get(networkId);
      if (hit !== undefined && hit.seq >= want) return hit.snap;
      const inflight = this.loads.get(networkId);
      if (inflight === undefined) break;
      await inflight.catch(() => undefined);
    }
    const seq = this.seq.get(networkId) ?? 0;
    const load = (async () => {
      const state = await this.store.networkState(networkId);
      const snap = state === null ? null : buildSnapshot(state, this.reflectPort);
      const cur = this.cache.get(networkId);
      if (cur === undefined || cur.seq <= seq) this.cache.set(networkId, { snap, seq });
      return snap;
    })();
    this.loads.set(networkId, load);
    try {
      return await load;
    } finally {
      if (this.loads.get(networkId) === load) this.loads.delete(networkId);
    }
  }

  /**
   * Writes one event, unless the client is already more than the cap behind: then the stream is
   * closed (its agent reconnects and gets a full map). Checked before writing, so a single event
   * larger than the cap (a big network's first map) still goes out, and no stream ever holds more
   * than the cap plus one event.
   */
  private send(s: Stream, event: string, data: string, id?: number): void {
    if (this.stalled(s)) return;
    s.sink.write(sse(event, data, id));
    this.metrics.inc('wiremesh_push_events_total', { type: event });
  }

  private stalled(s: Stream): boolean {
    if (s.sink.writableLength <= this.maxBufferBytes) return false;
    this.drop(s, 'stalled');
    return true;
  }

  /**
   * Forgets a stream. A finished one is ended gracefully; a stalled or replaced one is destroyed,
   * since its client may never read again and ending would keep the unsent bytes in memory.
   */
  private drop(s: Stream, why: 'finished' | 'stalled' | 'replaced' = 'finished'): void {
    this.streams.get(s.networkId)?.delete(s);
    if (why !== 'finished' && s.sink.destroy !== undefined) s.sink.destroy();
    else s.sink.end();
  }

  /** Brings one stream to `snap`, using `diff` when the stream holds its starting version. */
  private update(s: Stream, snap: Snapshot | null, diff: SnapshotDiff | null): void {
    const state: NodeState = snap?.states.get(s.nodeId) ?? 'removed';
    if (state !== 'approved') {
      if (state !== s.state) {
        s.state = state;
        this.send(
          s,
          'state',
          JSON.stringify({ type: 'state', state, message: STATE_MESSAGES[state] }),
        );
      }
      if (state === 'rejected' || state === 'removed') this.drop(s);
      return;
    }
    s.state = state;
    if (snap === null || s.version === snap.revision) return;
    if (diff !== null && s.version === diff.from) {
      this.send(
        s,
        'patch',
        `{"type":"patch","patch":${patchJsonFor(diff, snap, s.nodeId)}}`,
        snap.revision,
      );
    } else {
      const map = mapJsonFor(snap, s.nodeId);
      if (map === null) return;
      this.send(s, 'map', `{"type":"map","map":${map}}`, snap.revision);
    }
    s.version = snap.revision;
  }

  private async flush(networkId: string): Promise<void> {
    const snap = await this.snapshot(networkId);
    this.metrics.inc('wiremesh_push_flushes_total');
    const prev = this.pushed.get(networkId);
    const diff =
      prev !== undefined && snap !== null && prev.revision < snap.revision
        ? diffSnapshots(prev, snap)
        : null;
    if (snap !== null && (prev === undefined || prev.revision <= snap.revision))
      this.pushed.set(networkId, snap);
    if (snap === null) this.pushed.delete(networkId);
    for (const s of [...(this.streams.get(networkId) ?? [])]) this.update(s, snap, diff);
  }

  /**
   * Opens a stream for `node`: sends its full map (or its state) at once, then every change.
   * A node holds one stream: an older one of the same node is ended (its agent reconnected, or a
   * stolen secret is opening many), so streams never outnumber nodes. Returns a function that
   * detaches the stream (call it when the connection closes).
   */
  async attach(node: Pick<NodeRecord, 'id' | 'networkId'>, sink: StreamSink): Promise<() => void> {
    const s: Stream = {
      nodeId: node.id,
      networkId: node.networkId,
      sink,
      version: -1,
      state: null,
    };
    let set = this.streams.get(node.networkId);
    if (set === undefined) {
      set = new Set();
      this.streams.set(node.networkId, set);
    }
    for (const old of set) if (old.nodeId === node.id) this.drop(old, 'replaced');
    set.add(s);
    this.update(s, await this.snapshot(node.networkId), null);
    return () => {
      this.streams.get(node.networkId)?.delete(s);
    };
  }

  private ping(): void {
    for (const set of this.streams.values())
      for (const s of set) if (!this.stalled(s)) s.sink.write(': ping\n\n');
  }

  /** Ends every stream and stops timers. */
  close(): void {
    this.closed = true;
    clearInterval(this.keepalive);
    for (const t of this.timers.values()) clearTimeout(t);
    for (const set of this.streams.values()) for (const s of set) s.sink.end();
    this.streams.clear();
  }
}
