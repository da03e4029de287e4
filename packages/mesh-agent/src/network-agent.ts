/**
 * One joined network, kept current (tailscale's controlclient -> netmap -> wgengine, one way):
 * maps arrive on the push stream (check-ins are the fallback), are validated, turned into a
 * desired config and applied as a diff. The coordinator going away never takes the mesh down:
 * the last good map stays applied and the agent retries with capped backoff.
 */
import { release, type as osType } from 'node:os';
import {
  PROTOCOL_VERSION,
  applyMapPatch,
  formatEndpoint,
  parseEndpoint,
  type CheckinRequest,
  type Endpoint,
  type NetworkMap,
  type PeerStatus,
} from '@wiremesh/protocol';
import { Backoff } from './backoff.js';
import {
  DIRECT_WAIT_MS,
  EARLY_PROBE_TIMEOUT_MS,
  PATH_CHECK_MS,
  PATH_WATCH_MAX_MS,
  PUNCH_STAGGER_MS,
  REFLECT_INTERVAL_MS,
  REFLECT_RETRY_MS,
  REPORT_INTERVAL_MS,
} from './constants.js';
import {
  CoordinatorError,
  validateMap,
  type CoordinatorApi,
  type MapResult,
  type StreamEvent,
} from './coordinator-client.js';
import type { ApplyResult, Dataplane } from './dataplane.js';
import { AgentError, errorMessage } from './errors.js';
import { localEndpoints } from './local-addresses.js';
import type { Logger } from './log.js';
import type { ProbeOptions } from './backend.js';
import { netmapToConfig, type DesiredConfig, type LocalAddress } from './netmap.js';
import { resolveHost, type PortProbe } from './reflect-client.js';
import type { NetworkState, StateStore } from './state-store.js';
import { AGENT_VERSION } from './version.js';

const MS_PER_S = 1000;

/** Waits `ms` or until `signal` aborts (injected so tests control time). */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** A Sleep on setTimeout. */
export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** Why a network stopped for good. */
export type GoneReason = 'removed' | 'rejected';

/** What a NetworkAgent needs. */
export interface NetworkAgentDeps {
  state: NetworkState;
  store: Pick<StateStore, 'loadMap' | 'saveMap' | 'keyPath' | 'remove'>;
  api: CoordinatorApi;
  dataplane: Dataplane;
  log: Logger;
  /** The host's addresses (endpoint choice, reports, routes kept off the LAN). */
  localAddresses: () => LocalAddress[];
  sleep?: Sleep;
  backoff?: Backoff;
  reportIntervalMs?: number;
  /** Create the interface while the node waits for approval (the daemon does; one-shot commands do not). */
  prepareWhilePending?: boolean;
  /** Called after every successful apply with the map applied (mesh DNS follows it). */
  onApplied?: (map: NetworkMap) => void;
  /** Called once when the coordinator removed or rejected the node (after local teardown). */
  onGone?: (reason: GoneReason) => void;
  /** Wall clock in unix ms (tests move it). Default Date.now. */
  now?: () => number;
  /** Resolves the coordinator's host for reflection probes (tests); default DNS / IP literal. */
  resolveHost?: (host: string) => Promise<string>;
  /**
   * Sends one reflection probe from local UDP `port` before the device listens there
   * (reflect-client.ts probeFromPort; the CLI passes it, tests a fake). Absent: no such probe.
   */
  probePort?: (
    port: number,
    target: { address: string; port: number },
    timeoutMs: number,
  ) => Promise<PortProbe>;
}

/** A peer whose new endpoint has not yet shown a handshake (hole punching in progress). */
interface Watched {
  /** When its endpoint was set (unix ms). */
  since: number;
  /** Bytes received when watching began (a roamed peer with a live session proves itself so). */
  rx: number | null;
  /** Whether the failed attempt already triggered a new probe. */
  probed: boolean;
}

/** Keeps one network's interface equal to the coordinator's latest valid map. */
export class NetworkAgent {
  private readonly d: NetworkAgentDeps;
  private readonly log: Logger;
  private readonly sleep: Sleep;
  private readonly backoff: Backoff;
  private map: NetworkMap | null = null;
  private applied: DesiredConfig | null = null;
  private dirty = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly stopper = new AbortController();
  private gone = false;
  private readonly prepareWhilePending: boolean;
  private saidPending = false;
  private outage = false;
  private loops: Promise<void>[] = [];
  /** Aborts the stream loop's backoff wait. */
  private wakeStream: AbortController | null = null;
  /** Push events are handled one after another, in stream order. */
  private events: Promise<unknown> = Promise.resolve();
  /** Why the last apply failed (cleared by a successful one), for callers that report it. */
  lastError: unknown = null;
  /** Results of every apply, newest last (tests and status read it). */
  readonly history: ApplyResult[] = [];
  /** This node's public endpoint as the coordinator's reflector last saw it, or null. */
  reflected: Endpoint | null = null;
  private readonly now: () => number;
  private readonly watched = new Map<string, Watched>();
  /** Wakes the path loop (a new watch) and the reflect loop (probe now). */
  private wakePath = new AbortController();
  private wakeReflect = new AbortController();
  private reporting: Promise<void> | null = null;
  private reportedFailureOf = -1;
  private lastLocal: string | null = null;
  private probedEarly = false;
  private portProbed = false;
  private reportAgain = false;

  constructor(d: NetworkAgentDeps) {
    this.d = d;
    this.log = d.log;
    this.sleep = d.sleep ?? realSleep;
    this.backoff = d.backoff ?? new Backoff();
    this.prepareWhilePending = d.prepareWhilePending ?? false;
    this.now = d.now ?? Date.now;
  }

  /** The network's name. */
  get network(): string {
    return this.d.state.network;
  }

  /** The map currently applied (or being applied), or null before the first. */
  get currentMap(): NetworkMap | null {
    return this.map;
  }

  /** The config of the last successful apply, or null. */
  get lastApplied(): DesiredConfig | null {
    return this.applied;
  }

  /** Whether the node was removed or rejected (the agent has stopped). */
  get isGone(): boolean {
    return this.gone;
  }

  private get iface(): string {
    return this.d.state.interface;
  }

  /** Serializes work on the interface: applies never interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Brings the interface up from the last good map saved on disk (so a reboot or restart restores
   * the mesh before the coordinator answers). Returns whether there was one to apply.
   */
  async restore(): Promise<boolean> {
    const saved = this.d.store.loadMap(this.network);
    if (saved === null) return false;
    this.map = saved;
    await this.serial(() => this.applyCurrent(`saved map v${saved.version}`));
    return true;
  }

  /**
   * Applies the current map. `kick`: peers to send a keepalive to now (the held side of hole
   * punching, PunchOptions). While the loops run, the side of each pair with the greater public
   * key holds its first packet to a new endpoint for PUNCH_STAGGER_MS, so the two initiations
   * do not cross (which leaves both without a session until WireGuard's 5 s retry); one-shot
   * commands hold nothing (nobody would kick).
   */
  private async applyCurrent(label: string, kick?: ReadonlySet<string>): Promise<void> {
    const map = this.map;
    if (map === null || this.gone) return;
    try {
      const created = await this.d.dataplane.ensureInterface(this.iface);
      if (created)
        this.log.info(`${this.network}: created ${this.iface} (${this.d.dataplane.backend})`);
      if (this.applied === null && !this.portProbed) {
        this.portProbed = true;
        await this.probeBeforeListening(map);
      }
      const desired = netmapToConfig(map, {
        localAddresses: this.d.localAddresses(),
        reflected: this.reflected,
      });
      const own = this.d.state.publicKey;
      const result = await this.d.dataplane.apply(
        this.iface,
        desired,
        this.applied,
        { privateKeyFile: this.d.store.keyPath(this.network), publicKey: own },
        {
          ...(this.loops.length > 0 ? { hold: (peer: string) => own > peer } : {}),
          ...(kick !== undefined ? { kick } : {}),
          nowS: Math.floor(this.now() / MS_PER_S),
        },
      );
      this.applied = desired;
      this.dirty = false;
      this.lastError = null;
      this.history.push(result);
      this.d.onApplied?.(map);
      this.watchNewEndpoints(result);
      if (result.diff.held.length > 0) this.kickLater(result.diff.held);
      if (result.changed) this.log.info(`${this.network}: applied ${label}: ${result.summary}`);
      else this.log.debug(`${this.network}: ${label}: no changes`);
      // Right after the first apply (the device now listens on its port) one quick probe: the
      // public endpoint is known at once, endpoints chosen with it, and the first report has it.
      if (!this.probedEarly && map.reflectPort !== null && this.d.dataplane.reflect !== undefined) {
        this.probedEarly = true;
        if (await this.discover({ attempts: 1, timeoutMs: EARLY_PROBE_TIMEOUT_MS }))
          await this.applyCurrent('public endpoint');
      }
    } catch (e) {
      this.dirty = true;
      this.lastError = e;
      this.log.error(`${this.network}: could not apply ${label}: ${errorMessage(e)} (will retry)`);
      // Report at once, once per map version: what the interface really has (a listen port taken
      // by another interface made the device pick its own) may be what the next map needs.
      if (this.loops.length > 0 && this.reportedFailureOf !== map.version) {
        this.reportedFailureOf = map.version;
        this.reportSoon();
      }
      throw e;
    }
  }

  /**
   * Before the first apply of this process makes the device listen (and send): one reflection
   * probe from the listen port itself, so the reflector is the first destination the NAT maps
   * that port for. Hosts behind one NAT often share a listen port (the network's default), and a
   * port-preserving NAT (Linux MASQUERADE) gives a host's first flow to each destination the same
   * public port when that is free there: two hosts whose first packets went to different places
   * (one to the reflector, the other to a public peer) both hold it, and the next flow of one of
   * them that meets the other's collides and gets a second public port, which later flows may
   * reuse. That host's traffic to a peer then comes from a port the reflector never saw, where a
   * peer behind a NAT that drops unsolicited packets never answers: the direct path can never
   * form (only the relay fallback reaches it). With the reflector every host's first destination,
   * the first host there keeps its port and the others get one remapped port each, used for all
   * their flows: the one the reflector saw. The reply is kept only by a backend that probes from
   * its own socket later (the in-process device); others do this only for the order. Never throws.
   */
  private async probeBeforeListening(map: NetworkMap): Promise<void> {
    const probePort = this.d.probePort;
    const port = map.self.listenPort;
    if (probePort === undefined || map.reflectPort === null || port <= 0) return;
    const target = await this.reflectTarget();
    if (target === null) return;
    let got: PortProbe;
    try {
      got = await probePort(port, target, EARLY_PROBE_TIMEOUT_MS);
    } catch (e) {
      this.log.debug(
        `${this.network}: reflection probe from port ${port} failed: ${errorMessage(e)}`,
      );
      return;
    }
    if (!got.bound) {
      this.log.debug(`${this.network}: port ${port} is in use already; no probe before listening`);
      return;
    }
    if (got.endpoint === null || this.d.dataplane.reflect === undefined) return;
    this.probedEarly = true;
    if (this.reflected?.ip === got.endpoint.ip && this.reflected.port === got.endpoint.port) return;
    this.reflected = got.endpoint;
    this.log.info(`${this.network}: public endpoint ${formatEndpoint(got.endpoint)}`);
  }

  /**
   * Takes a map from the coordinator: rejects one that failed validation, belongs to another node
   * or network, or is not newer than the current one; applies the rest. Returns whether it was
   * applied. Never throws for a bad map; apply failures are logged and retried later.
   */
  async acceptMap(result: MapResult, source: string): Promise<boolean> {
    if (!result.ok) {
      this.log.error(
        `${this.network}: rejected an invalid map from the ${source} (${result.reason}); keeping ${this.map === null ? 'no map' : `v${this.map.version}`}`,
      );
      return false;
    }
    const map = result.map;
    if (map.self.publicKey !== this.d.state.publicKey || map.network.name !== this.network) {
      this.log.error(
        `${this.network}: rejected a map from the ${source} for another node or network; keeping the last good one`,
      );
      return false;
    }
    if (this.saidPending) {
      this.log.info(`${this.network}: approved; bringing the mesh up`);
      this.saidPending = false;
    }
    // Checked and applied under the same lock, so maps from the stream, check-ins and fetches
    // can never be applied out of order.
    return this.serial(async () => {
      if (this.gone) return false;
      if (this.map !== null && map.version <= this.map.version && !this.dirty) {
        this.log.debug(
          `${this.network}: map v${map.version} from the ${source} is not newer than v${this.map.version}`,
        );
        return false;
      }
      const before = this.applied?.listenPort ?? null;
      this.map = map;
      try {
        await this.applyCurrent(`map v${map.version}`);
      } catch {
        return false;
      }
      try {
        this.d.store.saveMap(this.network, map);
      } catch (e) {
        this.log.warn(`${this.network}: could not save the map: ${errorMessage(e)}`);
      }
      // Peers learn where to reach us only from our report: send it as soon as the port is known.
      if (this.applied !== null && this.applied.listenPort !== before) this.reportSoon();
      if (this.reflected === null && map.reflectPort !== null) this.wakeReflect.abort();
      return true;
    });
  }

  /**
   * Checks in without waiting (the listen port or public endpoint became known, peers were added,
   * a direct path came up or failed). Reports never overlap: one asked for while another is on
   * its way follows it, and any number asked for meanwhile make one.
   */
  private reportSoon(): void {
    if (this.stopper.signal.aborted || this.gone) return;
    if (this.reporting !== null) {
      this.reportAgain = true;
      return;
    }
    this.reporting = (async () => {
      do {
        this.reportAgain = false;
        try {
          await this.checkinOnce();
        } catch (e) {
          if (await this.onApiError(e, 'check-in')) return;
        }
      } while (this.reportAgain && !this.stopper.signal.aborted && !this.gone);
    })().finally(() => (this.reporting = null));
  }

  /** Sends the held first packets (PunchOptions) after PUNCH_STAGGER_MS. */
  private kickLater(peers: readonly string[]): void {
    const signal = this.stopper.signal;
    void (async () => {
      await this.sleep(PUNCH_STAGGER_MS, signal);
      if (signal.aborted) return;
      await this.serial(() => this.applyCurrent('hole punching', new Set(peers)));
    })().catch(() => undefined);
  }

  /**
   * Starts watching every peer the last apply gave a new endpoint (hole punching begins: the
   * keepalive it sent starts a handshake), and reports at once when peers were added so the
   * coordinator knows this node has configured them (its relay-fallback wait starts then).
   */
  private watchNewEndpoints(result: ApplyResult): void {
    const now = this.now();
    let added = false;
    for (const u of result.diff.updatePeers) {
      if (u.isNew) added = true;
      if (u.endpoint !== undefined)
        this.watched.set(u.publicKey, { since: now, rx: null, probed: false });
    }
    for (const k of result.diff.removePeers) this.watched.delete(k);
    if (this.watched.size > 0) this.wakePath.abort();
    if (added) this.reportSoon();
  }

  /**
   * One look at the watched peers: a handshake since the endpoint was set (or traffic over a
   * session that survived the change) settles a peer and is reported; none after DIRECT_WAIT_MS
   * counts as a failed direct attempt: probe the public endpoint again (the NAT may have changed
   * it) and report. Peers still silent after PATH_WATCH_MAX_MS are left to the relay fallback.
   */
  private async checkPaths(): Promise<void> {
    let observed;
    try {
      observed = await this.d.dataplane.observe(this.iface);
    } catch {
      return;
    }
    const peers = new Map(observed.peers.map((p) => [p.publicKey, p]));
    const now = this.now();
    let settled = false;
    let failed = false;
    for (const [key, w] of this.watched) {
      const p = peers.get(key);
      if (p === undefined) {
        this.watched.delete(key);
        continue;
      }
      // wg shows whole seconds: a handshake just after `since` may read up to 1 s before it.
      const handshakeMs = p.latestHandshakeS * MS_PER_S;
      const fresh = p.latestHandshakeS > 0 && handshakeMs >= w.since - MS_PER_S;
      if (w.rx === null) w.rx = p.rxBytes;
      if (fresh || (p.latestHandshakeS > 0 && p.rxBytes > w.rx)) {
        this.watched.delete(key);
        settled = true;
        this.log.debug(
          `${this.network}: direct handshake with ${key.slice(0, 8)} after ${now - w.since} ms`,
        );
      } else if (now - w.since >= PATH_WATCH_MAX_MS) {
        this.watched.delete(key);
      } else if (now - w.since >= DIRECT_WAIT_MS && !w.probed) {
        w.probed = true;
        failed = true;
      }
    }
    if (failed) this.wakeReflect.abort();
    if (settled || failed) this.reportSoon();
  }

  private async pathLoop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      if (this.watched.size === 0) {
        // Nothing to watch: wait for an apply to set an endpoint (no timer runs meanwhile).
        const wake = this.wakePath.signal;
        if (!wake.aborted)
          await new Promise<void>((resolve) => {
            const done = () => resolve();
            wake.addEventListener('abort', done, { once: true });
            signal.addEventListener('abort', done, { once: true });
          });
        this.wakePath = new AbortController();
        continue;
      }
      await this.sleep(PATH_CHECK_MS, signal);
      if (signal.aborted || this.gone) return;
      await this.checkPaths();
    }
  }

  /** Where the reflector is: the coordinator's host and the map's reflect port, or null. */
  private async reflectTarget(): Promise<{ address: string; port: number } | null> {
    const port = this.map?.reflectPort ?? null;
    if (port === null) return null;
    const host = new URL(this.d.state.server).hostname;
    try {
      return { address: await (this.d.resolveHost ?? resolveHost)(host), port };
    } catch (e) {
      this.log.debug(`${this.network}: cannot resolve ${host} for reflection: ${errorMessage(e)}`);
      return null;
    }
  }

  /**
   * Learns this node's public endpoint from the WireGuard socket (when the backend can send from
   * it). A new one is applied (endpoint choice depends on it: peers behind the same address are
   * reached on the LAN) and reported at once. Returns the endpoint known after the probe.
   */
  async probeEndpoint(): Promise<Endpoint | null> {
    if (!(await this.discover())) return this.reflected;
    if (this.map !== null)
      await this.serial(() => this.applyCurrent('new public endpoint')).catch(() => undefined);
    this.reportSoon();
    return this.reflected;
  }

  /**
   * One reflection round: updates `reflected` and returns whether it changed. Applies nothing
   * (callable inside an apply). Never throws.
   */
  private async discover(probe?: ProbeOptions): Promise<boolean> {
    const reflect = this.d.dataplane.reflect;
    if (reflect === undefined || this.gone) return false;
    const target = await this.reflectTarget();
    if (target === null) return false;
    let got: Endpoint | null;
    try {
      got = await reflect.call(this.d.dataplane, this.iface, target, probe);
    } catch (e) {
      this.log.debug(`${this.network}: reflection probe failed: ${errorMessage(e)}`);
      return false;
    }
    if (got === null) {
      this.log.debug(
        `${this.network}: no reply from the reflector at ${target.address}:${target.port}`,
      );
      return false;
    }
    const before = this.reflected;
    if (before !== null && before.ip === got.ip && before.port === got.port) return false;
    this.reflected = got;
    this.log.info(
      `${this.network}: public endpoint ${formatEndpoint(got)}${before === null ? '' : ` (was ${formatEndpoint(before)})`}`,
    );
    return true;
  }

  private async reflectLoop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted && !this.gone) {
      if (this.map !== null) await this.probeEndpoint();
      const wake = this.wakeReflect.signal;
      // Before the first map there is no reflect port: wait for one (an apply wakes us).
      const every = this.reflected === null ? REFLECT_RETRY_MS : REFLECT_INTERVAL_MS;
      await this.sleep(every, AbortSignal.any([signal, wake]));
      if (wake.aborted) this.wakeReflect = new AbortController();
    }
  }

  private async onEvent(e: StreamEvent): Promise<void> {
    switch (e.type) {
      case 'map':
        await this.acceptMap(e.map, 'push stream');
        return;
      case 'patch': {
        const base = this.map;
        if (base !== null && e.patch.version <= base.version) return; // a check-in got there first
        const next = base === null ? null : applyMapPatch(base, e.patch);
        if (next === null) {
          this.log.debug(
            `${this.network}: patch ${e.patch.fromVersion}->${e.patch.version} does not fit; fetching the full map`,
          );
          await this.acceptMap(await this.d.api.fetchMap(), 'map endpoint');
          return;
        }
        await this.acceptMap(validateMap(next), 'push stream');
        return;
      }
      case 'state':
        await this.onState(e.state);
        return;
      case 'invalid':
        this.log.error(
          `${this.network}: rejected an invalid push event (${e.reason}); keeping the last good map`,
        );
    }
  }

  private async onState(state: string): Promise<void> {
    if (state === 'pending') {
      if (!this.saidPending) {
        this.log.info(
          `${this.network}: waiting for an admin to approve node ${this.d.state.name} (${this.d.state.nodeId})`,
        );
        // Start the (userspace) device now, so approval only has to configure it.
        if (this.prepareWhilePending && this.map === null) {
          void this.serial(async () => {
            if (!this.gone && this.map === null) await this.d.dataplane.ensureInterface(this.iface);
          }).catch((e: unknown) =>
            this.log.debug(`${this.network}: could not prepare ${this.iface}: ${errorMessage(e)}`),
          );
        }
      }
      this.saidPending = true;
    } else if (state === 'rejected' || state === 'removed') {
      await this.goneFor(state);
    }
  }

  private async goneFor(reason: GoneReason): Promise<void> {
    if (this.gone) return;
    this.gone = true;
    this.stopper.abort();
    this.log.error(
      `${this.network}: the coordinator ${reason} this node; removing ${this.iface}, its routes and rules (join again to come back)`,
    );
    await this.serial(async () => {
      try {
        await this.d.dataplane.removeInterface(this.iface);
      } catch (e) {
        this.log.error(`${this.network}: teardown failed: ${errorMessage(e)}`);
      }
    });
    this.d.store.remove(this.network);
    this.d.onGone?.(reason);
  }

  /** Handles an error from the coordinator; returns true when the agent must stop. */
  private async onApiError(e: unknown, what: string): Promise<boolean> {
    if (
      e instanceof CoordinatorError &&
      (e.code === 'node_removed' || e.code === 'node_rejected')
    ) {
      await this.goneFor(e.code === 'node_removed' ? 'removed' : 'rejected');
      return true;
    }
    if (!this.outage) {
      this.outage = true;
      this.log.warn(
        `${this.network}: ${what} failed: ${errorMessage(e)}; the mesh stays up with map ${this.map === null ? '(none)' : `v${this.map.version}`}, retrying`,
      );
    } else {
      this.log.debug(`${this.network}: ${what} failed again: ${errorMessage(e)}`);
    }
    return false;
  }

  private recovered(): void {
    this.wakeStream?.abort();
    if (this.outage) {
      this.outage = false;
      this.log.info(`${this.network}: the coordinator is back`);
    }
  }

  /** Builds this node's report from what the interface shows now. */
  async report(): Promise<CheckinRequest> {
    const req: CheckinRequest = {
      protocolVersion: PROTOCOL_VERSION,
      knownMapVersion: this.map?.version ?? null,
      backend: this.d.dataplane.backend,
      version: AGENT_VERSION,
      os: `${osType()} ${release()}`,
    };
    let observed;
    try {
      observed = await this.d.dataplane.observe(this.iface);
    } catch {
      observed = null;
    }
    const port = observed?.exists
      ? observed.listenPort
      : (this.map?.self.listenPort ?? this.d.state.listenPort);
    if (port !== null && port !== undefined && port > 0) {
      req.listenPort = port;
      req.localEndpoints = localEndpoints(this.d.localAddresses(), port);
      // New LAN addresses: the host changed networks, so its public endpoint changed too.
      const local = JSON.stringify(req.localEndpoints);
      if (this.lastLocal !== null && local !== this.lastLocal) this.wakeReflect.abort();
      this.lastLocal = local;
    }
    // Only a backend that owns the socket can learn it; others leave the stored value alone.
    if (this.reflected !== null) req.reflectedEndpoint = this.reflected;
    if (observed?.exists) {
      const paths = new Map((this.applied?.paths ?? []).map((p) => [p.publicKey, p.path]));
      const now = this.now();
      req.peers = observed.peers.map((p): PeerStatus => ({
        publicKey: p.publicKey,
        latestHandshakeMs: p.latestHandshakeS > 0 ? p.latestHandshakeS * MS_PER_S : null,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        endpoint: p.endpoint === null ? null : parseEndpoint(p.endpoint),
        path: paths.get(p.publicKey) ?? 'direct',
        handshakeAgeMs:
          p.latestHandshakeS > 0 ? Math.max(0, now - p.latestHandshakeS * MS_PER_S) : null,
      }));
    }
    return req;
  }

  /**
   * One check-in: report, take a newer map if there is one, re-apply if the last apply failed.
   * Returns the node's state. Throws AgentError/CoordinatorError (the caller decides to retry).
   */
  async checkinOnce(): Promise<string> {
    let res;
    try {
      res = await this.d.api.checkin(await this.report());
    } catch (e) {
      if (
        e instanceof CoordinatorError &&
        (e.code === 'node_removed' || e.code === 'node_rejected')
      ) {
        const reason = e.code === 'node_removed' ? 'removed' : 'rejected';
        await this.goneFor(reason);
        return reason;
      }
      throw e;
    }
    this.recovered();
    if (res.state === 'pending') await this.onState('pending');
    if (res.state === 'rejected' || res.state === 'removed') {
      await this.goneFor(res.state);
      return res.state;
    }
    if (res.map !== null) await this.acceptMap(res.map, 'check-in');
    else if (this.dirty && this.map !== null)
      await this.serial(() => this.applyCurrent(`map v${this.map?.version}`)).catch(
        () => undefined,
      );
    return res.state;
  }

  private async streamLoop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      let got = false;
      try {
        await this.d.api.stream((e) => {
          got = true;
          this.recovered();
          this.backoff.reset();
          this.events = this.events
            .then(() => this.onEvent(e))
            .catch((err: unknown) => void this.onApiError(err, 'handling a push event'));
        }, signal);
        if (signal.aborted) return;
        this.log.debug(`${this.network}: push stream ended; reconnecting`);
      } catch (e) {
        if (await this.onApiError(e, 'the push stream')) return;
      }
      if (!got) {
        // Reconnecting also polls, so a coordinator that lost its streams still delivers maps.
        try {
          await this.checkinOnce();
        } catch (e) {
          if (await this.onApiError(e, 'check-in')) return;
        }
      }
      // A successful check-in during the wait means the coordinator is back: reconnect at once.
      const wake = new AbortController();
      this.wakeStream = wake;
      const both = AbortSignal.any([signal, wake.signal]);
      await this.sleep(this.backoff.next(), both);
      this.wakeStream = null;
    }
  }

  private async reportLoop(): Promise<void> {
    const signal = this.stopper.signal;
    const every = this.d.reportIntervalMs ?? REPORT_INTERVAL_MS;
    while (!signal.aborted) {
      await this.sleep(every, signal);
      if (signal.aborted || this.gone) return;
      try {
        await this.checkinOnce();
      } catch (e) {
        if (await this.onApiError(e, 'check-in')) return;
      }
    }
  }

  /**
   * Starts the stream and report loops, the path watch, and (when the backend can send from the
   * WireGuard socket) endpoint discovery. Returns at once; `stop` ends them.
   */
  start(): void {
    this.loops = [this.streamLoop(), this.reportLoop(), this.pathLoop()];
    if (this.d.dataplane.reflect !== undefined) this.loops.push(this.reflectLoop());
  }

  /** Stops the loops (the interface stays as it is) and waits for them and any apply in flight. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await Promise.allSettled(this.loops);
    await this.reporting;
    await this.events.catch(() => undefined);
    await this.queue;
  }
}

/** Thrown by callers that need an approved node but got another state. */
export function notApproved(state: string, network: string): AgentError {
  return state === 'rejected'
    ? new AgentError(
        'rejected',
        `an admin rejected this node in ${network}: ask the admin, then "wiremesh leave --network ${network}" and join again`,
      )
    : new AgentError('removed', `this node was removed from ${network}: join again`);
}
