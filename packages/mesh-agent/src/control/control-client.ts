/**
 * The control client (tailscale's controlclient): the push stream with check-in as the fallback,
 * the periodic report, and capped backoff while the coordinator is away. It decides nothing about
 * maps: what arrives goes to its handler, one event after another, in stream order.
 */
import type { CheckinRequest } from '@wiremesh/protocol';
import { REPORT_INTERVAL_MS } from '../constants.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { Backoff } from './backoff.js';
import {
  CoordinatorError,
  type CheckinResult,
  type CoordinatorApi,
  type StreamEvent,
} from './coordinator-client.js';

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

/** What the control client reports to (the network agent). Every method may be async. */
export interface ControlHandler {
  /** This node's check-in body, built now. */
  report(): Promise<CheckinRequest>;
  /** One push event; the next is handed over only after this one settled. */
  event(e: StreamEvent): Promise<void>;
  /** A check-in's answer (state, and a newer map or none). */
  checkedIn(res: CheckinResult): Promise<void>;
  /** The coordinator removed or rejected this node: stop for good. */
  gone(reason: GoneReason): Promise<void>;
  /** What stays applied meanwhile, for the outage line ("map v7", "map (none)"). */
  holding(): string;
}

/** What a ControlClient needs. */
export interface ControlClientOptions {
  /** The network's name (log lines). */
  readonly network: string;
  readonly api: CoordinatorApi;
  readonly log: Logger;
  readonly handler: ControlHandler;
  readonly sleep?: Sleep;
  readonly backoff?: Backoff;
  readonly reportIntervalMs?: number;
}

/** The gone reason for a coordinator error that means it, else null. */
export function goneReason(e: unknown): GoneReason | null {
  if (!(e instanceof CoordinatorError)) return null;
  if (e.code === 'node_removed') return 'removed';
  if (e.code === 'node_rejected') return 'rejected';
  return null;
}

/** One network's connection to the coordinator. */
export class ControlClient {
  private readonly o: ControlClientOptions;
  private readonly sleep: Sleep;
  private readonly backoff: Backoff;
  private readonly stopper = new AbortController();
  private loops: Promise<void>[] = [];
  private outage = false;
  /** Aborts the stream loop's backoff wait (a check-in succeeded: the coordinator is back). */
  private wakeStream: AbortController | null = null;
  /** Push events are handled one after another, in stream order. */
  private events: Promise<unknown> = Promise.resolve();
  private reporting: Promise<void> | null = null;
  private reportAgain = false;

  constructor(o: ControlClientOptions) {
    this.o = o;
    this.sleep = o.sleep ?? realSleep;
    this.backoff = o.backoff ?? new Backoff();
  }

  /** Whether the loops run (start was called, stop or halt not yet). */
  get running(): boolean {
    return this.loops.length > 0 && !this.stopper.signal.aborted;
  }

  /** Aborted once the client stops for good. */
  get signal(): AbortSignal {
    return this.stopper.signal;
  }

  /**
   * One check-in: the handler's report, the answer to the handler. Returns the node's state.
   * A removed or rejected node goes to `gone` and returns that state; other failures throw
   * AgentError/CoordinatorError (the caller decides to retry).
   */
  async checkinOnce(): Promise<string> {
    let res: CheckinResult;
    try {
      res = await this.o.api.checkin(await this.o.handler.report());
    } catch (e) {
      const reason = goneReason(e);
      if (reason === null) throw e;
      await this.o.handler.gone(reason);
      return reason;
    }
    this.recovered();
    await this.o.handler.checkedIn(res);
    return res.state;
  }

  /**
   * Checks in without waiting. Reports never overlap: one asked for while another is on its way
   * follows it, and any number asked for meanwhile make one.
   */
  reportSoon(): void {
    if (this.stopper.signal.aborted) return;
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
          if (await this.failed(e, 'check-in')) return;
        }
      } while (this.reportAgain && !this.stopper.signal.aborted);
    })().finally(() => (this.reporting = null));
  }

  /** Handles an error from the coordinator; returns true when the client must stop. */
  async failed(e: unknown, what: string): Promise<boolean> {
    const reason = goneReason(e);
    if (reason !== null) {
      await this.o.handler.gone(reason);
      return true;
    }
    const network = this.o.network;
    if (!this.outage) {
      this.outage = true;
      this.o.log.warn(
        `${network}: ${what} failed: ${errorMessage(e)}; the mesh stays up with ${this.o.handler.holding()}, retrying`,
      );
    } else {
      this.o.log.debug(`${network}: ${what} failed again: ${errorMessage(e)}`);
    }
    return false;
  }

  private recovered(): void {
    this.wakeStream?.abort();
    if (this.outage) {
      this.outage = false;
      this.o.log.info(`${this.o.network}: the coordinator is back`);
    }
  }

  private async streamLoop(): Promise<void> {
    const signal = this.stopper.signal;
    while (!signal.aborted) {
      let got = false;
      try {
        await this.o.api.stream((e) => {
          got = true;
          this.recovered();
          this.backoff.reset();
          this.events = this.events
            .then(() => this.o.handler.event(e))
            .catch((err: unknown) => void this.failed(err, 'handling a push event'));
        }, signal);
        if (signal.aborted) return;
        this.o.log.debug(`${this.o.network}: push stream ended; reconnecting`);
      } catch (e) {
        if (await this.failed(e, 'the push stream')) return;
      }
      if (!got) {
        // Reconnecting also polls, so a coordinator that lost its streams still delivers maps.
        try {
          await this.checkinOnce();
        } catch (e) {
          if (await this.failed(e, 'check-in')) return;
        }
      }
      // A successful check-in during the wait means the coordinator is back: reconnect at once.
      const wake = new AbortController();
      this.wakeStream = wake;
      await this.sleep(this.backoff.next(), AbortSignal.any([signal, wake.signal]));
      this.wakeStream = null;
    }
  }

  private async reportLoop(): Promise<void> {
    const signal = this.stopper.signal;
    const every = this.o.reportIntervalMs ?? REPORT_INTERVAL_MS;
    while (!signal.aborted) {
      await this.sleep(every, signal);
      if (signal.aborted) return;
      try {
        await this.checkinOnce();
      } catch (e) {
        if (await this.failed(e, 'check-in')) return;
      }
    }
  }

  /** Starts the stream and report loops. Returns at once; `stop` ends them. */
  start(): void {
    this.loops = [this.streamLoop(), this.reportLoop()];
  }

  /** Ends the loops without waiting for them (callable from inside a handler). */
  halt(): void {
    this.stopper.abort();
  }

  /** Ends the loops and waits for them, a report on its way and the event in hand. */
  async stop(): Promise<void> {
    this.stopper.abort();
    await Promise.allSettled(this.loops);
    await this.reporting;
    await this.events.catch(() => undefined);
  }
}
