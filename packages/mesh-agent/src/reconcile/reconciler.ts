/**
 * The reconciler (tailscale's wgengine.Reconfig, one way): one serial queue in which a network
 * map becomes a desired config (netmapToConfig) and the dataplane applies its difference (diff).
 * Applies never interleave; the last successful config and a bounded history are kept.
 */
import type { NetworkMap } from '@wiremesh/protocol';
import { APPLY_HISTORY_LIMIT } from '../constants.js';
import type { ApplyResult, Dataplane, DeviceIdentity } from '../dataplane/dataplane.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { PunchOptions } from './diff.js';
import { netmapToConfig, type DesiredConfig, type NetmapContext } from './netmap.js';

/** What a Reconciler needs. */
export interface ReconcilerOptions {
  /** The network's name (log lines). */
  readonly network: string;
  readonly iface: string;
  readonly dataplane: Dataplane;
  readonly identity: DeviceIdentity;
  readonly log: Logger;
  /** Results kept in `history` (default APPLY_HISTORY_LIMIT). */
  readonly historyLimit?: number;
}

/** Keeps one interface equal to the config of a map, one apply at a time. */
export class Reconciler {
  private readonly o: ReconcilerOptions;
  private readonly limit: number;
  private queue: Promise<unknown> = Promise.resolve();
  private appliedNow: DesiredConfig | null = null;
  private readonly results: ApplyResult[] = [];
  /** Whether the last apply failed (the next round applies again). */
  dirty = false;
  /** Why the last apply failed (cleared by a successful one). */
  lastError: unknown = null;

  constructor(o: ReconcilerOptions) {
    this.o = o;
    this.limit = o.historyLimit ?? APPLY_HISTORY_LIMIT;
    if (!Number.isInteger(this.limit) || this.limit < 1)
      throw new RangeError(`historyLimit must be a positive integer, got ${this.limit}`);
  }

  /** The config of the last successful apply, or null. */
  get applied(): DesiredConfig | null {
    return this.appliedNow;
  }

  /** The results of the last applies (at most `historyLimit`), newest last. */
  get history(): readonly ApplyResult[] {
    return this.results;
  }

  /** Runs `fn` after everything queued before it; a failure does not stop the queue. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Resolves when everything queued so far has run. */
  async idle(): Promise<void> {
    await this.queue;
  }

  /** Makes the interface exist (logging when it was created now). Call inside `serial`. */
  async ensureInterface(): Promise<void> {
    const created = await this.o.dataplane.ensureInterface(this.o.iface);
    if (created)
      this.o.log.info(`${this.o.network}: created ${this.o.iface} (${this.o.dataplane.backend})`);
  }

  /**
   * Applies `map` (call inside `serial`): makes the interface exist, runs `prepare` (work that
   * must come before the device sends), then netmapToConfig with `ctx()` and the diff against the
   * interface and the last applied config, in hole-punching order `punch`. Logs one line and
   * returns the result; on failure marks the reconciler dirty, logs and rethrows.
   */
  async apply(
    map: NetworkMap,
    label: string,
    ctx: () => NetmapContext,
    punch: PunchOptions,
    prepare?: () => Promise<void>,
  ): Promise<ApplyResult> {
    try {
      await this.ensureInterface();
      await prepare?.();
      const desired = netmapToConfig(map, ctx());
      const result = await this.o.dataplane.apply(
        this.o.iface,
        desired,
        this.appliedNow,
        this.o.identity,
        punch,
      );
      this.appliedNow = desired;
      this.dirty = false;
      this.lastError = null;
      this.results.push(result);
      if (this.results.length > this.limit)
        this.results.splice(0, this.results.length - this.limit);
      if (result.changed) this.o.log.info(`${this.o.network}: applied ${label}: ${result.summary}`);
      else this.o.log.debug(`${this.o.network}: ${label}: no changes`);
      return result;
    } catch (e) {
      this.dirty = true;
      this.lastError = e;
      this.o.log.error(
        `${this.o.network}: could not apply ${label}: ${errorMessage(e)} (will retry)`,
      );
      throw e;
    }
  }
}
