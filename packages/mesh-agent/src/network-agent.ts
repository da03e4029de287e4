/**
 * One joined network, kept current (tailscale's controlclient -> netmap -> wgengine, one way):
 * the control client brings maps (push stream, check-ins as the fallback), the reconciler applies
 * them one at a time, and endpoint discovery (a state machine) says when to probe, look at paths
 * and kick held packets; this shell runs its actions and arms its one timer. The coordinator going
 * away never takes the mesh down: the last good map stays applied and the client retries.
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
import { EARLY_PROBE_TIMEOUT_MS } from './constants.js';
import { Backoff } from './control/backoff.js';
import { ControlClient, realSleep, type GoneReason, type Sleep } from './control/control-client.js';
import {
  validateMap,
  type CheckinResult,
  type CoordinatorApi,
  type MapResult,
  type StreamEvent,
} from './control/coordinator-client.js';
import type { ApplyResult, Dataplane } from './dataplane/dataplane.js';
import { Discovery, type DiscoveryAction, type ProbeKind } from './discovery/discovery.js';
import { localEndpoints } from './discovery/local-addresses.js';
import { resolveHost, type PortProbe } from './discovery/reflect-client.js';
import { AgentError, errorMessage } from './errors.js';
import type { Logger } from './log.js';
import type { DesiredConfig, LocalAddress } from './reconcile/netmap.js';
import { Reconciler } from './reconcile/reconciler.js';
import type { NetworkState, StateStore } from './state-store.js';
import { AGENT_VERSION } from './version.js';

export { realSleep, type GoneReason, type Sleep } from './control/control-client.js';

const MS_PER_S = 1000;

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
  /** Wall clock in unix ms (tests move it). Default Date.now. */
  now?: () => number;
  /** Apply results kept in `history` (default APPLY_HISTORY_LIMIT). */
  historyLimit?: number;
  /** Resolves the coordinator's host for reflection probes (tests); default DNS / IP literal. */
  resolveHost?: (host: string) => Promise<string>;
  /**
   * Sends one reflection probe from local UDP `port` before the device listens there
   * (reflect-client.ts probeFromPort; the CLI passes it, tests a fake). Absent: no such probe.
   */
  probePort?: (port: number, target: Endpoint, timeoutMs: number) => Promise<PortProbe>;
}

/** Keeps one network's interface equal to the coordinator's latest valid map. */
export class NetworkAgent {
  private readonly d: NetworkAgentDeps;
  private readonly log: Logger;
  private readonly sleep: Sleep;
  private readonly now: () => number;
  private readonly control: ControlClient;
  private readonly reconciler: Reconciler;
  private readonly discovery: Discovery;
  private map: NetworkMap | null = null;
  private gone = false;
  private readonly prepareWhilePending: boolean;
  private saidPending = false;
  private reportedFailureOf = -1;
  /** The discovery timer: re-armed (woken) whenever an input may have moved its deadline. */
  private timer: Promise<void> | null = null;
  private wakeTimer = new AbortController();
  /** Discovery work on its way (probes, path looks, kicks), awaited by stop. */
  private readonly tasks = new Set<Promise<unknown>>();

  constructor(d: NetworkAgentDeps) {
    this.d = d;
    this.log = d.log;
    this.sleep = d.sleep ?? realSleep;
    this.now = d.now ?? Date.now;
    this.prepareWhilePending = d.prepareWhilePending ?? false;
    this.reconciler = new Reconciler({
      network: d.state.network,
      iface: d.state.interface,
      dataplane: d.dataplane,
      identity: { privateKeyFile: d.store.keyPath(d.state.network), publicKey: d.state.publicKey },
      log: d.log,
      ...(d.historyLimit !== undefined ? { historyLimit: d.historyLimit } : {}),
    });
    this.discovery = new Discovery({
      publicKey: d.state.publicKey,
      canReflect: () => d.dataplane.reflect !== undefined,
    });
    this.control = new ControlClient({
      network: d.state.network,
      api: d.api,
      log: d.log,
      sleep: this.sleep,
      backoff: d.backoff ?? new Backoff(),
      ...(d.reportIntervalMs !== undefined ? { reportIntervalMs: d.reportIntervalMs } : {}),
      handler: {
        report: () => this.report(),
        event: (e) => this.onEvent(e),
        checkedIn: (res) => this.onCheckin(res),
        gone: (reason) => this.goneFor(reason),
        holding: () => `map ${this.map === null ? '(none)' : `v${this.map.version}`}`,
      },
    });
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
    return this.reconciler.applied;
  }

  /** Why the last apply failed (cleared by a successful one), for callers that report it. */
  get lastError(): unknown {
    return this.reconciler.lastError;
  }

  /** Results of the last applies (bounded), newest last (tests and status read it). */
  get history(): readonly ApplyResult[] {
    return this.reconciler.history;
  }

  /** This node's public endpoint as the coordinator's reflector last saw it, or null. */
  get reflected(): Endpoint | null {
    return this.discovery.reflected;
  }

  /** Whether the node was removed or rejected (the agent has stopped). */
  get isGone(): boolean {
    return this.gone;
  }

  /** When discovery next needs the clock (unix ms), or null (tests). */
  nextDeadline(): number | null {
    return this.discovery.nextDeadline();
  }

  private get iface(): string {
    return this.d.state.interface;
  }

  /**
   * Brings the interface up from the last good map saved on disk (so a reboot or restart restores
   * the mesh before the coordinator answers). Returns whether there was one to apply.
   */
  async restore(): Promise<boolean> {
    const saved = this.d.store.loadMap(this.network);
    if (saved === null) return false;
    this.map = saved;
    await this.reconciler.serial(() => this.applyCurrent(`saved map v${saved.version}`));
    return true;
  }

  /**
   * Applies the current map (inside the reconciler's queue). `kick`: peers to send a keepalive to
   * now (the held side of hole punching, PunchOptions; discovery decides who holds).
   */
  private async applyCurrent(label: string, kick?: ReadonlySet<string>): Promise<void> {
    const map = this.map;
    if (map === null || this.gone) return;
    let result: ApplyResult;
    try {
      result = await this.reconciler.apply(
        map,
        label,
        () => ({ localAddresses: this.d.localAddresses(), reflected: this.discovery.reflected }),
        {
          hold: (peer: string) => this.discovery.holds(peer),
          ...(kick !== undefined ? { kick } : {}),
          nowS: Math.floor(this.now() / MS_PER_S),
        },
        this.reconciler.applied === null ? () => this.probeBeforeListening(map) : undefined,
      );
    } catch (e) {
      // Report at once, once per map version: what the interface really has (a listen port taken
      // by another interface made the device pick its own) may be what the next map needs.
      if (this.control.running && this.reportedFailureOf !== map.version) {
        this.reportedFailureOf = map.version;
        this.control.reportSoon();
      }
      throw e;
    }
    const actions = this.discovery.handle(this.now(), {
      type: 'applied',
      reflectPort: map.reflectPort,
      updated: result.diff.updatePeers.map((u) => ({
        publicKey: u.publicKey,
        isNew: u.isNew,
        endpointSet: u.endpoint !== undefined,
      })),
      removed: result.diff.removePeers,
      held: result.diff.held,
    });
    this.rearm();
    // Inside the queue: an early probe and the apply it asks for run here, before the next job.
    for (const a of actions) {
      if (a.type === 'report') this.control.reportSoon();
      else if (a.type === 'probe') {
        const more = await this.probe(a.kind, { attempts: 1, timeoutMs: EARLY_PROBE_TIMEOUT_MS });
        for (const m of more) if (m.type === 'apply') await this.applyCurrent(m.label);
      }
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
    if (!this.discovery.takePortProbe()) return;
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
    this.learn('port', got.endpoint);
  }

  /** Feeds a reflection answer to discovery, logging a new public endpoint. */
  private learn(kind: ProbeKind, got: Endpoint | null): DiscoveryAction[] {
    const before = this.discovery.reflected;
    const actions = this.discovery.handle(this.now(), { type: 'reflection', kind, endpoint: got });
    const after = this.discovery.reflected;
    if (after !== null && after !== before)
      this.log.info(
        `${this.network}: public endpoint ${formatEndpoint(after)}${before === null ? '' : ` (was ${formatEndpoint(before)})`}`,
      );
    this.rearm();
    return actions;
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
    return this.reconciler.serial(async () => {
      if (this.gone) return false;
      if (this.map !== null && map.version <= this.map.version && !this.reconciler.dirty) {
        this.log.debug(
          `${this.network}: map v${map.version} from the ${source} is not newer than v${this.map.version}`,
        );
        return false;
      }
      const before = this.reconciler.applied?.listenPort ?? null;
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
      const applied = this.reconciler.applied;
      if (applied !== null && applied.listenPort !== before) this.control.reportSoon();
      // Not awaited: an apply asked for here queues behind this one.
      void this.run(
        this.discovery.handle(this.now(), { type: 'map', reflectPort: map.reflectPort }),
      );
      this.rearm();
      return true;
    });
  }

  /** Runs discovery's actions: applies in order, probes, path looks and kicks as tasks. */
  private async run(actions: readonly DiscoveryAction[]): Promise<void> {
    for (const a of actions) {
      switch (a.type) {
        case 'report':
          this.control.reportSoon();
          break;
        case 'apply':
          await this.reconciler.serial(() => this.applyCurrent(a.label)).catch(() => undefined);
          break;
        case 'kick':
          this.spawn(
            this.reconciler.serial(() => this.applyCurrent('hole punching', new Set(a.peers))),
          );
          break;
        case 'observe':
          this.spawn(this.observePaths());
          break;
        case 'probe':
          this.spawn(this.probe(a.kind).then((more) => this.run(more)));
          break;
      }
    }
  }

  private spawn(task: Promise<unknown>): void {
    const t = task.catch(() => undefined).finally(() => this.tasks.delete(t));
    this.tasks.add(t);
  }

  private async observePaths(): Promise<void> {
    let peers = null;
    try {
      peers = (await this.d.dataplane.observe(this.iface)).peers;
    } catch {
      // the next look tries again
    }
    await this.run(this.discovery.handle(this.now(), { type: 'observed', peers }));
    this.rearm();
  }

  /** Where the reflector is: the coordinator's host and the map's reflect port, or null. */
  private async reflectTarget(): Promise<Endpoint | null> {
    const port = this.map?.reflectPort ?? null;
    if (port === null) return null;
    const host = new URL(this.d.state.server).hostname;
    try {
      return { ip: await (this.d.resolveHost ?? resolveHost)(host), port };
    } catch (e) {
      this.log.debug(`${this.network}: cannot resolve ${host} for reflection: ${errorMessage(e)}`);
      return null;
    }
  }

  /**
   * One reflection probe from the WireGuard socket (when the backend can send from it), its
   * answer fed to discovery. Returns discovery's actions. Never throws.
   */
  private async probe(
    kind: ProbeKind,
    options?: { attempts: number; timeoutMs: number },
  ): Promise<DiscoveryAction[]> {
    const reflect = this.d.dataplane.reflect;
    let got: Endpoint | null = null;
    const target = reflect === undefined || this.gone ? null : await this.reflectTarget();
    if (reflect !== undefined && target !== null) {
      try {
        got = await reflect.call(this.d.dataplane, this.iface, target, options);
        if (got === null)
          this.log.debug(
            `${this.network}: no reply from the reflector at ${formatEndpoint(target)}`,
          );
      } catch (e) {
        this.log.debug(`${this.network}: reflection probe failed: ${errorMessage(e)}`);
      }
    }
    return this.learn(kind, got);
  }

  /**
   * Learns this node's public endpoint from the WireGuard socket (when the backend can send from
   * it). A new one is applied (endpoint choice depends on it: peers behind the same address are
   * reached on the LAN) and reported at once. Returns the endpoint known after the probe.
   */
  async probeEndpoint(): Promise<Endpoint | null> {
    if (this.d.dataplane.reflect === undefined) return this.discovery.reflected;
    await this.run(await this.probe('manual'));
    return this.discovery.reflected;
  }

  /** Wakes the discovery timer so it sleeps until the (possibly earlier) next deadline. */
  private rearm(): void {
    this.wakeTimer.abort();
  }

  /** One timer for all of discovery: sleeps until its next deadline or a re-arm, then ticks. */
  private async timerLoop(): Promise<void> {
    const signal = this.control.signal;
    while (!signal.aborted && !this.gone) {
      const wake = this.wakeTimer.signal;
      const at = this.discovery.nextDeadline();
      if (!wake.aborted) {
        if (at === null)
          await new Promise<void>((resolve) =>
            wake.addEventListener('abort', () => resolve(), { once: true }),
          );
        else if (at > this.now()) await this.sleep(at - this.now(), wake);
      }
      if (wake.aborted) this.wakeTimer = new AbortController();
      if (signal.aborted || this.gone) return;
      await this.run(this.discovery.tick(this.now()));
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

  private async onCheckin(res: CheckinResult): Promise<void> {
    if (res.state === 'pending') await this.onState('pending');
    if (res.state === 'rejected' || res.state === 'removed') {
      await this.goneFor(res.state);
      return;
    }
    if (res.map !== null) await this.acceptMap(res.map, 'check-in');
    else if (this.reconciler.dirty && this.map !== null)
      await this.reconciler
        .serial(() => this.applyCurrent(`map v${this.map?.version}`))
        .catch(() => undefined);
  }

  private async onState(state: string): Promise<void> {
    if (state === 'pending') {
      if (!this.saidPending) {
        this.log.info(
          `${this.network}: waiting for an admin to approve node ${this.d.state.name} (${this.d.state.nodeId})`,
        );
        // Start the (userspace) device now, so approval only has to configure it.
        if (this.prepareWhilePending && this.map === null) {
          void this.reconciler
            .serial(async () => {
              if (!this.gone && this.map === null) await this.reconciler.ensureInterface();
            })
            .catch((e: unknown) =>
              this.log.debug(
                `${this.network}: could not prepare ${this.iface}: ${errorMessage(e)}`,
              ),
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
    this.control.halt();
    this.discovery.stop();
    this.rearm();
    this.log.error(
      `${this.network}: the coordinator ${reason} this node; removing ${this.iface}, its routes and rules (join again to come back)`,
    );
    await this.reconciler.serial(async () => {
      try {
        await this.d.dataplane.removeInterface(this.iface);
      } catch (e) {
        this.log.error(`${this.network}: teardown failed: ${errorMessage(e)}`);
      }
    });
    this.d.store.remove(this.network);
    this.d.onGone?.(reason);
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
      void this.run(
        this.discovery.handle(this.now(), {
          type: 'local-endpoints',
          key: JSON.stringify(req.localEndpoints),
        }),
      );
      this.rearm();
    }
    // Only a backend that owns the socket can learn it; others leave the stored value alone.
    const reflected = this.discovery.reflected;
    if (reflected !== null) req.reflectedEndpoint = reflected;
    if (observed?.exists) {
      const paths = new Map(
        (this.reconciler.applied?.paths ?? []).map((p) => [p.publicKey, p.path]),
      );
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
  checkinOnce(): Promise<string> {
    return this.control.checkinOnce();
  }

  /**
   * Starts the control client's loops and the discovery timer (probes when the backend can send
   * from the WireGuard socket, path checks, kicks). Returns at once; `stop` ends them.
   */
  start(): void {
    this.control.start();
    void this.run(this.discovery.start(this.now()));
    this.timer = this.timerLoop();
  }

  /** Stops the loops (the interface stays as it is) and waits for them and any apply in flight. */
  async stop(): Promise<void> {
    this.control.halt();
    this.discovery.stop();
    this.rearm();
    await this.timer;
    await this.control.stop();
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
    await this.reconciler.idle();
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
