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
  parseEndpoint,
  type CheckinRequest,
  type NetworkMap,
  type PeerStatus,
} from '@wiremesh/protocol';
import { Backoff } from './backoff.js';
import { REPORT_INTERVAL_MS } from './constants.js';
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
import { netmapToConfig, type DesiredConfig, type LocalAddress } from './netmap.js';
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
  /** Called once when the coordinator removed or rejected the node (after local teardown). */
  onGone?: (reason: GoneReason) => void;
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

  constructor(d: NetworkAgentDeps) {
    this.d = d;
    this.log = d.log;
    this.sleep = d.sleep ?? realSleep;
    this.backoff = d.backoff ?? new Backoff();
    this.prepareWhilePending = d.prepareWhilePending ?? false;
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

  private async applyCurrent(label: string): Promise<void> {
    const map = this.map;
    if (map === null || this.gone) return;
    try {
      const created = await this.d.dataplane.ensureInterface(this.iface);
      if (created)
        this.log.info(`${this.network}: created ${this.iface} (${this.d.dataplane.backend})`);
      const desired = netmapToConfig(map, { localAddresses: this.d.localAddresses() });
      const result = await this.d.dataplane.apply(this.iface, desired, this.applied, {
        privateKeyFile: this.d.store.keyPath(this.network),
        publicKey: this.d.state.publicKey,
      });
      this.applied = desired;
      this.dirty = false;
      this.lastError = null;
      this.history.push(result);
      if (result.changed) this.log.info(`${this.network}: applied ${label}: ${result.summary}`);
      else this.log.debug(`${this.network}: ${label}: no changes`);
    } catch (e) {
      this.dirty = true;
      this.lastError = e;
      this.log.error(`${this.network}: could not apply ${label}: ${errorMessage(e)} (will retry)`);
      throw e;
    }
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
      return true;
    });
  }

  /** Checks in without waiting (after the listen port became known or changed). */
  private reportSoon(): void {
    if (this.stopper.signal.aborted) return;
    void this.checkinOnce().catch((e: unknown) => this.onApiError(e, 'check-in'));
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
    }
    if (observed?.exists) {
      const paths = new Map((this.applied?.paths ?? []).map((p) => [p.publicKey, p.path]));
      req.peers = observed.peers.map((p): PeerStatus => ({
        publicKey: p.publicKey,
        latestHandshakeMs: p.latestHandshakeS > 0 ? p.latestHandshakeS * MS_PER_S : null,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        endpoint: p.endpoint === null ? null : parseEndpoint(p.endpoint),
        path: paths.get(p.publicKey) ?? 'direct',
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

  /** Starts the stream and report loops (returns at once; `stop` ends them). */
  start(): void {
    this.loops = [this.streamLoop(), this.reportLoop()];
  }

  /** Stops the loops (the interface stays as it is) and waits for them and any apply in flight. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await Promise.allSettled(this.loops);
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
