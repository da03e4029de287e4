/**
 * The daemon's supervisor: one agent per joined network of a state directory, the pid file that
 * lets other commands find it, and rescans on SIGHUP (join hands a network over, leave takes one
 * away). It knows nothing of how an agent is built; the commands pass a factory.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dataplane } from '../dataplane/dataplane.js';
import { AgentError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { NetworkAgent } from '../network-agent.js';
import type { NetworkState, StateStore } from '../state-store.js';

/** The daemon's pid file inside the state directory. */
export const DAEMON_PID_FILE = 'daemon.pid';

/** The pid of a live agent daemon on this state directory, or null. */
export function runningDaemon(store: StateStore): number | null {
  try {
    const pid = Number(readFileSync(join(store.dir, DAEMON_PID_FILE), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
    // A recycled pid is some other program: only trust a live process that runs this agent.
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return argv.includes('daemon') || argv.includes('join') ? pid : null;
  } catch {
    return null;
  }
}

/** Tells a running daemon to rescan the state directory. Returns its pid, or null if none runs. */
export function signalDaemon(store: StateStore): number | null {
  const pid = runningDaemon(store);
  if (pid === null) return null;
  try {
    process.kill(pid, 'SIGHUP');
    return pid;
  } catch {
    return null;
  }
}

/** One network as the supervisor runs it. */
export interface Supervised {
  readonly agent: NetworkAgent;
  readonly dataplane: Dataplane;
}

/** What a Supervisor needs. */
export interface SupervisorOptions {
  readonly store: StateStore;
  readonly log: Logger;
  /**
   * Builds the dataplane and the (not yet started) agent of one joined network; `onGone` is to be
   * called when the coordinator removed or rejected the node. Throws when it cannot.
   */
  open(state: NetworkState, onGone: () => void): Promise<Supervised>;
}

/** Runs every joined network of a state directory until stopped. */
export class Supervisor {
  private readonly o: SupervisorOptions;
  private readonly running = new Map<string, Supervised>();
  /** Every dataplane opened, also of networks the coordinator removed since (closed at stop). */
  private readonly dataplanes = new Map<string, Dataplane>();
  private busy: Promise<void> = Promise.resolve();
  private pidFile: string | null = null;
  private readonly onHup = () => void this.rescan();

  constructor(o: SupervisorOptions) {
    this.o = o;
  }

  /** The agent of `network`, if it runs. */
  agent(network: string): NetworkAgent | undefined {
    return this.running.get(network)?.agent;
  }

  /** The networks running now. */
  get networks(): string[] {
    return [...this.running.keys()];
  }

  /**
   * Claims the state directory (the pid file; AgentError when another agent runs there), starts
   * every joined network and rescans on SIGHUP. Resolves when the first scan is done.
   */
  async start(): Promise<void> {
    const other = runningDaemon(this.o.store);
    if (other !== null) {
      throw new AgentError(
        'usage',
        `another wiremesh agent (pid ${other}) already runs with ${this.o.store.dir}: stop it first, or send it SIGHUP to pick up changes`,
      );
    }
    this.pidFile = join(this.o.store.dir, DAEMON_PID_FILE);
    writeFileSync(this.pidFile, `${process.pid}\n`);
    process.on('SIGHUP', this.onHup);
    await this.rescan();
  }

  /** Starts networks joined since the last scan and stops those left; scans never overlap. */
  rescan(): Promise<void> {
    this.busy = this.busy.then(() => this.scan());
    return this.busy;
  }

  private async scan(): Promise<void> {
    const { store, log } = this.o;
    const wanted = new Set(store.networks());
    for (const [n, s] of this.running) {
      if (!wanted.has(n)) {
        log.info(`${n}: no longer joined; stopping`);
        this.running.delete(n);
        await s.agent.stop();
        await s.dataplane.close?.();
        this.dataplanes.delete(n);
      }
    }
    for (const n of wanted) {
      if (this.running.has(n)) continue;
      try {
        await this.startOne(n);
      } catch (e) {
        log.error(`${n}: cannot start: ${errorMessage(e)}`);
      }
    }
    if (this.running.size === 0)
      log.warn(
        'no network is joined; waiting (run "wiremesh join", then the daemon picks it up on SIGHUP)',
      );
  }

  private async startOne(network: string): Promise<void> {
    const state = this.o.store.load(network);
    if (state === null) return;
    const s = await this.o.open(state, () => this.running.delete(network));
    this.dataplanes.set(network, s.dataplane);
    this.o.log.info(
      `${network}: interface ${state.interface}, backend ${s.dataplane.backend} (${s.dataplane.reason}), node ${state.name} (${state.nodeId}), coordinator ${state.server}`,
    );
    this.running.set(network, s);
    try {
      await s.agent.restore();
    } catch {
      // logged by the agent; the loops retry
    }
    s.agent.start();
  }

  /**
   * Stops every agent (interfaces keep their configuration), closes the devices run in this
   * process (their interfaces go with them) and releases the pid file. Returns how many devices
   * were closed.
   */
  async stop(): Promise<number> {
    process.off('SIGHUP', this.onHup);
    await this.busy;
    await Promise.allSettled([...this.running.values()].map((s) => s.agent.stop()));
    // Devices run inside the daemon go with it; kernel and detached ones stay as they are.
    const owned = [...this.dataplanes.values()].filter((d) => d.close !== undefined);
    await Promise.allSettled(owned.map((d) => d.close?.()));
    if (this.pidFile !== null) {
      try {
        if (readFileSync(this.pidFile, 'utf8').trim() === String(process.pid))
          rmSync(this.pidFile, { force: true });
      } catch {
        // already gone
      }
    }
    return owned.length;
  }
}
