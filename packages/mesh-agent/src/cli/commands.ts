/**
 * The `wiremesh` commands (join, daemon, checkin, status, leave) on top of the agent's pieces.
 * Each either succeeds or throws one AgentError whose message is the line the user sees; a join
 * that fails after registering withdraws the registration and removes what it created.
 */
import { randomFillSync } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { hostname, release, type as osType } from 'node:os';
import { join } from 'node:path';
import {
  Name,
  PROTOCOL_VERSION,
  formatEndpoint,
  formatFingerprint,
  parseFingerprint,
  splitEnrollmentKey,
  type MapPeer,
  type NetworkMap,
} from '@wiremesh/protocol';
import {
  equalBytes,
  generatePrivateKey,
  keyToBase64,
  nobleCrypto,
  publicKeyOf,
  wipe,
} from '@wiremesh/wg-core';
import {
  kernelBackend,
  selectBackend,
  socketPath,
  userspaceBackend,
  type BackendChoice,
} from '../dataplane/backend.js';
import { netmapToConfig, type PeerPath } from '../reconcile/netmap.js';
import { parseIpAddr, parseWgDump } from '../dataplane/wg-dump.js';
import {
  APPROVAL_REMINDER_MS,
  HANDOVER_WAIT_MS,
  MAX_INTERFACE_NAME_LENGTH,
  SOCKET_POLL_MS,
} from '../constants.js';
import {
  CoordinatorError,
  HttpCoordinator,
  type MapResult,
} from '../control/coordinator-client.js';
import { systemDataplane, type Dataplane } from '../dataplane/dataplane.js';
import { cryptoLabel, cryptoStatus } from './crypto-status.js';
import { CRON_SECOND_CHECKIN_DELAY_S, cronLines } from './openwrt.js';
import * as meshDns from '../dns/index.js';
import { AgentError, errorMessage } from '../errors.js';
import { createFirewall } from '../dataplane/firewall.js';
import { interfaceName, isInterfaceName } from '../dataplane/iface-name.js';
import { localAddresses, localEndpoints } from '../discovery/local-addresses.js';
import type { Logger } from '../log.js';
import { NetworkAgent, notApproved } from '../network-agent.js';
import { probeFromPort } from '../discovery/reflect-client.js';
import { findExecutable, type Runner } from '../runner.js';
import { StateStore, type NetworkState } from '../state-store.js';
import { runningDaemon, signalDaemon, Supervisor } from './supervisor.js';
import { installService, systemdRunning } from './systemd.js';
import { AGENT_VERSION } from '../version.js';

export { runningDaemon } from './supervisor.js';

/** What every command runs with. */
export interface CommandContext {
  store: StateStore;
  runner: Runner;
  log: Logger;
  /** Prints one line for the user (stdout). */
  out: (line: string) => void;
  env: NodeJS.ProcessEnv;
  /** How this program is started again (for the systemd unit and the cron line). */
  argv0: readonly string[];
}

const CRON_ADVICE = `to keep the mesh current, add these two lines to root's crontab (crontab -e; a check-in at the start of every minute and ${CRON_SECOND_CHECKIN_DELAY_S} s later):`;
const MS_PER_S = 1000;
const SECONDS_PER_MINUTE = 60;
const SECONDS_PER_HOUR = 3600;
const BYTES_PER_KIB = 1024;

/** Throws AgentError unless running as root. */
export function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new AgentError(
      'not_root',
      'wiremesh must run as root (it creates network interfaces, routes and firewall rules): run it with sudo',
    );
  }
}

function requireTools(): void {
  for (const [tool, pkg] of [
    ['ip', 'iproute2'],
    ['wg', 'wireguard-tools'],
  ] as const) {
    if (findExecutable(tool) === null)
      throw new AgentError(
        'no_tool',
        `the "${tool}" command is missing: install ${pkg} and run again`,
      );
  }
}

/** The host name as a valid node name (a DNS label). */
export function defaultNodeName(host = hostname()): string {
  const label =
    host
      .split('.')[0]
      ?.toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 63) ?? '';
  return label === '' ? 'node' : label;
}

/** Interfaces of every joined network (never reported as LAN endpoints). */
function ownInterfaces(store: StateStore): Set<string> {
  const out = new Set<string>();
  for (const n of store.networks()) {
    try {
      const s = store.load(n);
      if (s !== null) out.add(s.interface);
    } catch {
      // a damaged state file is reported by the command that needs it
    }
  }
  return out;
}

/**
 * The dataplane of one interface. `inProcess`: a userspace device runs inside this process (the
 * daemon, and a join that becomes the daemon), which is what lets it learn its public endpoint
 * from its own socket; one-shot commands (join --daemon off, checkin) leave a detached wgts.
 */
async function dataplaneFor(
  ctx: CommandContext,
  choice: BackendChoice,
  iface: string,
  inProcess = false,
): Promise<Dataplane> {
  const backend = await selectBackend(choice, iface, {
    runner: ctx.runner,
    log: ctx.log,
    stateDir: ctx.store.dir,
    env: ctx.env,
    inProcess,
  });
  const firewall = createFirewall({ runner: ctx.runner, stateDir: ctx.store.dir, log: ctx.log });
  return systemDataplane(backend, firewall, ctx.runner, ctx.log);
}

/** Turns a coordinator refusal at registration into the line that says what to do. */
function registrationError(e: unknown, network: string, name: string): unknown {
  if (!(e instanceof CoordinatorError)) return e;
  switch (e.code) {
    case 'enrollment_key_required':
      return new AgentError(
        'enrollment',
        `network ${network} needs an enrollment key: ask the admin for one and pass --key wmk_...`,
      );
    case 'enrollment_key_invalid':
      return new AgentError(
        'enrollment',
        `the enrollment key is wrong (unknown, revoked or for another network): check --key, or ask the admin for a new one`,
      );
    case 'enrollment_key_expired':
      return new AgentError(
        'enrollment',
        `the enrollment key has expired: ask the admin for a new one (wiremesh-coordinator key create --network ${network})`,
      );
    case 'enrollment_key_exhausted':
      return new AgentError(
        'enrollment',
        'the enrollment key has no uses left: ask the admin for a new one',
      );
    case 'not_found':
      return new AgentError(
        'coordinator',
        `the coordinator has no network "${network}": check --network`,
      );
    case 'name_taken':
      return new AgentError(
        'coordinator',
        `the name "${name}" is taken in ${network}: choose another with --name`,
      );
    case 'node_exists':
      return new AgentError(
        'coordinator',
        `a node with this key is already in ${network}: run "wiremesh leave --network ${network}" first`,
      );
    case 'rate_limited':
      return new AgentError(
        'coordinator',
        'the coordinator is limiting registrations from this address: wait a minute and run join again',
      );
    case 'unsupported_protocol_version':
      return new AgentError('protocol', `${e.message}`);
    case 'node_rejected':
      return new AgentError('rejected', `an admin rejected this node: ask the admin`);
    default:
      return new AgentError(
        'coordinator',
        `the coordinator refused to register this node: ${e.message}`,
      );
  }
}

function agentFor(
  ctx: CommandContext,
  state: NetworkState,
  dataplane: Dataplane,
  onGone?: () => void,
  prepareWhilePending = false,
  dns: meshDns.MeshDns | null = null,
): NetworkAgent {
  const exclude = ownInterfaces(ctx.store);
  exclude.add(state.interface);
  return new NetworkAgent({
    state,
    store: ctx.store,
    api: new HttpCoordinator({
      server: state.server,
      nodeSecret: state.nodeSecret,
      serverFingerprint: storedPin(state),
    }),
    dataplane,
    log: ctx.log,
    localAddresses: () => localAddresses(exclude),
    ...(onGone !== undefined ? { onGone } : {}),
    ...(dns !== null ? { onApplied: (map: NetworkMap) => void dns.update(map) } : {}),
    prepareWhilePending,
    probePort: probeFromPort,
  });
}

/** Options of `wiremesh join`. */
export interface JoinOptions {
  server: string;
  network: string;
  key?: string;
  name?: string;
  daemon: 'on' | 'off';
  /** Mesh DNS on this host (default on). */
  dns?: 'on' | 'off';
  backend: BackendChoice;
  port?: number;
  interface?: string;
  /** SHA-256 of the coordinator's certificate to pin (hex or base64). */
  serverFingerprint?: string;
}

/**
 * The enrollment key to send and the certificate fingerprint to pin, from `--key` (which may
 * carry one: `wmk_....FP`) and `--server-fingerprint`. Throws AgentError('usage') for a bad or
 * contradicting fingerprint.
 */
function joinPin(o: JoinOptions): { key: string | undefined; fingerprint: Uint8Array | null } {
  let fingerprint: Uint8Array | null = null;
  if (o.serverFingerprint !== undefined) {
    fingerprint = parseFingerprint(o.serverFingerprint);
    if (fingerprint === null)
      throw new AgentError(
        'usage',
        `--server-fingerprint ${o.serverFingerprint} is not a SHA-256 fingerprint: give the 64 hex digits (colons allowed) that the coordinator prints at start`,
      );
  }
  if (o.key === undefined) return { key: undefined, fingerprint };
  const split = splitEnrollmentKey(o.key);
  if ('problem' in split) throw new AgentError('usage', `--key: ${split.problem}`);
  if (
    split.fingerprint !== null &&
    fingerprint !== null &&
    !equalBytes(split.fingerprint, fingerprint)
  )
    throw new AgentError(
      'usage',
      '--server-fingerprint and the fingerprint inside --key differ: give one of them',
    );
  return { key: split.key, fingerprint: fingerprint ?? split.fingerprint };
}

/** The pinned certificate fingerprint stored with a joined network, or null. */
export function storedPin(state: NetworkState): Uint8Array | null {
  return state.serverFingerprint === undefined || state.serverFingerprint === null
    ? null
    : parseFingerprint(state.serverFingerprint);
}

function parseServer(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new AgentError(
      'usage',
      `--server ${text} is not a URL: use e.g. --server http://coordinator.example:8080`,
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new AgentError('usage', `--server must be an http:// or https:// URL, got ${u.protocol}`);
  return u.toString().replace(/\/+$/, '');
}

/** Summarizes where the mesh is: interface, address, peer count. */
function upLine(state: NetworkState, map: NetworkMap, backend: string): string {
  return `${state.network}: mesh up on ${state.interface} (${backend}), address ${map.self.interfaceAddresses.join(', ')}, ${map.peers.length} peer${map.peers.length === 1 ? '' : 's'}`;
}

/** `wiremesh join`: register (or reuse the stored registration) and bring the mesh up. */
export async function joinCommand(ctx: CommandContext, o: JoinOptions): Promise<void> {
  requireRoot();
  if (!Name.safeParse(o.network).success)
    throw new AgentError(
      'usage',
      `--network ${o.network} is not a network name (lower-case letters, digits, inner hyphens)`,
    );
  const name = o.name ?? defaultNodeName();
  if (!Name.safeParse(name).success)
    throw new AgentError(
      'usage',
      `--name ${name} is not a node name (lower-case letters, digits, inner hyphens, at most 63)`,
    );
  const server = parseServer(o.server);
  const pin = joinPin(o);
  const iface = o.interface ?? interfaceName(o.network);
  if (!isInterfaceName(iface))
    throw new AgentError(
      'usage',
      `--interface ${iface} is not an interface name (1-${MAX_INTERFACE_NAME_LENGTH} letters, digits, '-', '_' or '.')`,
    );
  requireTools();
  ctx.store.ensureDir();
  // A daemon running on this state directory brings the network up itself (join only registers);
  // a join that ends as the foreground daemon runs the device in this process from the start.
  const daemonPid = runningDaemon(ctx.store);
  const foreground = o.daemon === 'on' && daemonPid === null && !systemdRunning();

  let state = ctx.store.load(o.network);
  let fresh = false;
  let firstMap: MapResult | null = null;
  let dataplane: Dataplane;
  if (state !== null) {
    ctx.out(
      `${o.network}: already joined as ${state.name} (${state.nodeId}); bringing it up with the stored identity`,
    );
    dataplane = await dataplaneFor(ctx, state.backend, state.interface, foreground);
  } else {
    for (const other of ctx.store.networks()) {
      if (ctx.store.load(other)?.interface === iface)
        throw new AgentError(
          'usage',
          `interface ${iface} already serves network ${other}: pick another with --interface`,
        );
    }
    const api = new HttpCoordinator({ server, serverFingerprint: pin.fingerprint });
    const info = await api.info().catch((e: unknown) => {
      if (e instanceof AgentError && e.code === 'unreachable')
        throw new AgentError(
          'unreachable',
          `${e.message}: check --server and that the coordinator is running`,
        );
      throw e;
    });
    if (PROTOCOL_VERSION < info.minProtocolVersion || PROTOCOL_VERSION > info.protocolVersion) {
      throw new AgentError(
        'protocol',
        `this agent speaks protocol ${PROTOCOL_VERSION}, the coordinator ${info.minProtocolVersion}..${info.protocolVersion}: upgrade the ${PROTOCOL_VERSION < info.minProtocolVersion ? 'agent' : 'coordinator'}`,
      );
    }
    // Everything that can fail locally is checked before the coordinator hears of this node.
    dataplane = await dataplaneFor(ctx, o.backend, iface, foreground);
    ctx.out(`backend: ${dataplane.backend} (${dataplane.reason})`);
    const priv = generatePrivateKey((b) => randomFillSync(b));
    const publicKey = keyToBase64(publicKeyOf(nobleCrypto, priv));
    const addrs = localAddresses(ownInterfaces(ctx.store));
    let reg;
    try {
      reg = await api.register({
        protocolVersion: PROTOCOL_VERSION,
        network: o.network,
        ...(pin.key !== undefined ? { enrollmentKey: pin.key } : {}),
        name,
        publicKey,
        os: `${osType()} ${release()}`,
        version: AGENT_VERSION,
        backend: dataplane.backend,
        ...(o.port !== undefined ? { listenPort: o.port } : {}),
        ...(o.port !== undefined ? { localEndpoints: localEndpoints(addrs, o.port) } : {}),
      });
    } catch (e) {
      wipe(priv);
      if (e instanceof AgentError && e.code === 'unreachable')
        throw new AgentError(
          'unreachable',
          `${e.message}: check --server and that the coordinator is running`,
        );
      throw registrationError(e, o.network, name);
    }
    state = {
      format: 1,
      network: o.network,
      server,
      nodeId: reg.nodeId,
      nodeSecret: reg.nodeSecret,
      name,
      interface: iface,
      backend: dataplane.backend,
      listenPort: o.port ?? null,
      publicKey,
      joinedAt: Date.now(),
      ...(pin.fingerprint === null
        ? {}
        : { serverFingerprint: formatFingerprint(pin.fingerprint) }),
    };
    try {
      ctx.store.saveKey(o.network, priv);
      ctx.store.save(state);
    } finally {
      wipe(priv);
    }
    fresh = true;
    firstMap = reg.map;
    if (reg.state === 'rejected' || reg.state === 'removed')
      throw notApproved(reg.state, o.network);
    if (reg.state === 'pending') {
      ctx.out(
        `${o.network}: registered as ${name} (${reg.nodeId}); waiting for an admin to approve it (wiremesh-coordinator node approve ${reg.nodeId})`,
      );
    } else {
      ctx.out(`${o.network}: registered as ${name} (${reg.nodeId}) and approved`);
    }
  }

  ctx.out(
    await meshDns.setDnsAtJoin(
      meshDns.dnsContext(ctx),
      o.network,
      state.interface,
      o.dns !== 'off',
    ),
  );

  if (daemonPid !== null) {
    await handOver(ctx, state, dataplane, fresh, firstMap, daemonPid);
    if (o.daemon === 'off') {
      ctx.out(CRON_ADVICE);
      for (const line of cronLines(ctx.argv0, ctx.store.dir)) ctx.out(line);
    }
    return;
  }

  // One round: apply the map we have (or get one), rolling back a fresh join that cannot come up.
  // Without a daemon nothing would run the resolver: the host gets the names themselves.
  const dns =
    o.daemon === 'off'
      ? meshDns.meshDnsFor(meshDns.dnsContext(ctx), o.network, state.interface, false, ctx.out)
      : null;
  const agent = agentFor(ctx, state, dataplane, undefined, false, dns);
  try {
    if (firstMap !== null) await agent.acceptMap(firstMap, 'registration');
    else await agent.restore();
    let nodeState = 'approved';
    try {
      nodeState = await agent.checkinOnce();
    } catch (e) {
      if (fresh) throw e;
      ctx.log.warn(
        `${o.network}: check-in failed: ${errorMessage(e)}; the mesh stays up with the stored map`,
      );
    }
    if (nodeState === 'rejected' || nodeState === 'removed')
      throw notApproved(nodeState, o.network);
    const map = agent.currentMap;
    if (map !== null && agent.lastApplied === null) {
      const why =
        agent.lastError instanceof AgentError
          ? agent.lastError.message
          : errorMessage(agent.lastError);
      throw new AgentError(
        agent.lastError instanceof AgentError ? agent.lastError.code : 'system',
        `could not bring up ${state.interface}: ${why}`,
      );
    }
    if (map !== null) ctx.out(upLine(state, map, dataplane.backend));
    await dns?.stop();
  } catch (e) {
    if (fresh) await rollbackJoin(ctx, state, dataplane);
    if (e instanceof AgentError) {
      throw new AgentError(
        e.code,
        fresh
          ? `${e.message}; nothing was left configured and the registration was withdrawn`
          : e.message,
      );
    }
    throw e;
  }

  // A daemon already running on this state directory takes the new network over.
  const running = signalDaemon(ctx.store);
  if (o.daemon === 'off') {
    if (running !== null)
      ctx.out(`the running agent (pid ${running}) keeps ${o.network} current from now on`);
    if (agent.currentMap === null)
      ctx.out(
        `${o.network}: not approved yet; the cron check-in brings the mesh up once an admin approves it`,
      );
    ctx.out(CRON_ADVICE);
    for (const line of cronLines(ctx.argv0, ctx.store.dir)) ctx.out(line);
    return;
  }
  if (running !== null) {
    ctx.out(`the running agent (pid ${running}) keeps ${o.network} current from now on`);
    return;
  }
  if (systemdRunning()) {
    await installService(ctx.runner, ctx.argv0, ctx.store.dir);
    ctx.out(
      `the agent runs as the systemd service wiremesh.service (journalctl -u wiremesh to follow it)`,
    );
    return;
  }
  ctx.out(
    'systemd is not running here, so the agent stays in the foreground (Ctrl-C stops it; the mesh stays up)',
  );
  await daemonCommand(ctx, { reminder: agent.currentMap === null ? o.network : null });
}

/**
 * Hands a joined network to the daemon running on this state directory (SIGHUP) and waits until
 * it has brought the interface up: the daemon runs the device itself, so a device started here
 * would only be replaced a moment later. A fresh join the daemon cannot bring up is rolled back.
 */
async function handOver(
  ctx: CommandContext,
  state: NetworkState,
  dataplane: Dataplane,
  fresh: boolean,
  firstMap: MapResult | null,
  pid: number,
): Promise<void> {
  try {
    process.kill(pid, 'SIGHUP');
  } catch {
    throw new AgentError(
      'system',
      `the running agent (pid ${pid}) vanished: start it again (wiremesh daemon), it brings ${state.network} up`,
    );
  }
  const deadline = Date.now() + HANDOVER_WAIT_MS;
  let up = false;
  while (!up && Date.now() < deadline) {
    const link = await ctx.runner.run('ip', ['link', 'show', 'dev', state.interface]);
    up = link.code === 0 && (state.backend === 'kernel' || existsSync(socketPath(state.interface)));
    if (!up) await new Promise((r) => setTimeout(r, SOCKET_POLL_MS));
  }
  if (!up) {
    if (fresh) {
      ctx.store.remove(state.network);
      signalDaemon(ctx.store);
      await rollbackJoin(ctx, state, dataplane);
    }
    throw new AgentError(
      'system',
      `the running agent (pid ${pid}) did not bring up ${state.interface} within ${HANDOVER_WAIT_MS / MS_PER_S} s; see its log${fresh ? '; the registration was withdrawn' : ''}`,
    );
  }
  if (firstMap?.ok === true) ctx.out(upLine(state, firstMap.map, state.backend));
  ctx.out(`the running agent (pid ${pid}) keeps ${state.network} current from now on`);
}

async function rollbackJoin(
  ctx: CommandContext,
  state: NetworkState,
  dataplane: Dataplane,
): Promise<void> {
  try {
    await dataplane.removeInterface(state.interface);
  } catch (e) {
    ctx.log.error(`${state.network}: could not remove ${state.interface}: ${errorMessage(e)}`);
  }
  try {
    await new HttpCoordinator({
      server: state.server,
      nodeSecret: state.nodeSecret,
      serverFingerprint: storedPin(state),
    }).leave();
  } catch {
    // The coordinator may be the reason the join failed; the node stays listed there.
  }
  await meshDns
    .forgetMeshDns(ctx.store.dir, state.network, state.interface, meshDns.dnsContext(ctx).env)
    .catch(() => undefined);
  ctx.store.remove(state.network);
}

/** Options of `wiremesh daemon`. */
export interface DaemonOptions {
  /** Network to remind the user about while it waits for approval (foreground join). */
  reminder?: string | null;
  /** Resolves to stop the daemon (tests); by default SIGINT/SIGTERM. */
  until?: Promise<void>;
}

/** `wiremesh daemon`: keeps every joined network current until SIGTERM/SIGINT; SIGHUP rescans. */
export async function daemonCommand(ctx: CommandContext, o: DaemonOptions = {}): Promise<void> {
  requireRoot();
  requireTools();
  ctx.store.ensureDir();
  const supervisor = new Supervisor({
    store: ctx.store,
    log: ctx.log,
    async open(state, onGone) {
      const dataplane = await dataplaneFor(ctx, state.backend, state.interface, true);
      const dns = meshDns.meshDnsFor(
        meshDns.dnsContext(ctx),
        state.network,
        state.interface,
        true,
        ctx.out,
      );
      const gone = () => {
        onGone();
        void dns?.remove().catch(() => undefined);
      };
      return { dataplane, agent: agentFor(ctx, state, dataplane, gone, true, dns), dns };
    },
    // A join again with --dns off (it already removed the host's configuration).
    dnsWanted: (n) => meshDns.loadDnsSetting(ctx.store.dir, n)?.enabled === true,
  });
  await supervisor.start();

  let reminder: NodeJS.Timeout | undefined;
  if (o.reminder) {
    const network = o.reminder;
    reminder = setInterval(() => {
      const a = supervisor.agent(network);
      if (a !== undefined && a.currentMap === null)
        ctx.out(`${network}: still waiting for an admin to approve this node`);
    }, APPROVAL_REMINDER_MS);
  }

  const stop =
    o.until ??
    new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
  await stop;
  clearInterval(reminder);
  const owned = await supervisor.stop();
  ctx.log.info(
    owned > 0
      ? 'agent stopped; its userspace devices were closed with it (other interfaces keep their configuration)'
      : 'agent stopped; the interfaces keep their last configuration',
  );
}

function selectNetworks(store: StateStore, network: string | undefined): string[] {
  const all = store.networks();
  if (network === undefined || network === 'all') {
    if (all.length === 0)
      throw new AgentError(
        'not_joined',
        `no network is joined (state in ${store.dir}): run "wiremesh join --server URL --network NAME" first`,
      );
    return all;
  }
  if (!all.includes(network))
    throw new AgentError(
      'not_joined',
      `network ${network} is not joined here (state in ${store.dir}): check --network or --state-dir`,
    );
  return [network];
}

/** `wiremesh checkin`: one round per network (for cron): restore, report, take a newer map. */
export async function checkinCommand(
  ctx: CommandContext,
  network: string | undefined,
): Promise<void> {
  requireRoot();
  requireTools();
  let failed: AgentError | null = null;
  for (const n of selectNetworks(ctx.store, network)) {
    const state = ctx.store.load(n);
    if (state === null) continue;
    const dataplane = await dataplaneFor(ctx, state.backend, state.interface);
    // A running daemon serves the names itself; a cron check-in writes them for the host.
    const dnsCtx = meshDns.dnsContext(ctx);
    const dns =
      runningDaemon(ctx.store) === null
        ? meshDns.meshDnsFor(dnsCtx, n, state.interface, false, ctx.out)
        : null;
    // Removed or rejected: the mesh DNS goes with the interface (awaited below, before exit).
    let forgetting: Promise<void> = Promise.resolve();
    const forget = () => {
      forgetting = meshDns
        .forgetMeshDns(ctx.store.dir, n, state.interface, dnsCtx.env)
        .catch(() => undefined);
    };
    const agent = agentFor(ctx, state, dataplane, forget, false, dns);
    try {
      await agent.restore();
    } catch {
      // logged; check-in may bring a map that applies
    }
    try {
      const s = await agent.checkinOnce();
      if (s === 'pending')
        ctx.out(`${n}: waiting for an admin to approve node ${state.name} (${state.nodeId})`);
      else if (s === 'rejected' || s === 'removed') failed = notApproved(s, n);
      else if (agent.currentMap !== null)
        ctx.out(
          `${n}: map v${agent.currentMap.version}, ${agent.history.at(-1)?.summary ?? 'no changes'}`,
        );
      await dns?.stop();
    } catch (e) {
      ctx.out(`${n}: check-in failed (${errorMessage(e)}); the mesh keeps its last configuration`);
      failed = e instanceof AgentError ? e : new AgentError('coordinator', errorMessage(e));
    }
    await forgetting;
  }
  if (failed !== null) throw failed;
}

/** One peer in `wiremesh status`. */
export interface PeerStatusView {
  name: string;
  publicKey: string;
  kind: 'node' | 'external' | 'unknown';
  endpoint: string | null;
  latestHandshakeMs: number | null;
  rxBytes: number;
  txBytes: number;
  /** How traffic to the peer goes: straight to it, or through the relay node `via`. */
  path: 'direct' | 'relay';
  /** The relay's node name when `path` is relay, else null. */
  via: string | null;
  /**
   * Where the endpoint came from: `reflected` (the peer's own reflection probe), `observed by
   * NAME` (a public node saw the peer's packets come from there), `LAN`, `roamed` (the peer's
   * packets came from elsewhere), or null without an endpoint.
   */
  endpointSource: string | null;
  /** Why the coordinator relays the pair (relay fallback), or null. */
  relayReason: string | null;
}

/** One network in `wiremesh status`. */
export interface NetworkStatusView {
  network: string;
  interface: string;
  backend: string;
  /** 'kernel', or the userspace crypto provider ('native', 'noble'); crypto-status.ts. */
  crypto?: string;
  up: boolean;
  node: { id: string; name: string };
  server: string;
  addresses: string[];
  mapVersion: number | null;
  peers: PeerStatusView[];
  /** What answers for the mesh domain on this host (mesh DNS), or that it is off. */
  dns?: string;
}

/** Where `endpoint` (wg's, `ip:port`) of map peer `peer` came from (PeerStatusView.endpointSource). */
export function endpointSourceOf(
  peer: MapPeer | undefined,
  endpoint: string | null,
): string | null {
  if (endpoint === null) return null;
  const e = peer?.endpoints;
  if (e === undefined) return 'roamed';
  // A public host's reflected endpoint is one of its own addresses too: it counts as reflected.
  if (e.reflected === null || formatEndpoint(e.reflected) !== endpoint)
    return e.local.some((l) => formatEndpoint(l) === endpoint) ? 'LAN' : 'roamed';
  const src = e.reflectedSource;
  if (src === undefined || src.kind === 'reflector') return 'reflected';
  return src.reflector === null
    ? `observed by ${src.byName}`
    : `observed by ${src.byName} (the reflector saw ${formatEndpoint(src.reflector)}: the NAT mapping split)`;
}

/** PeerStatusView.relayReason of a pair relay's reason code. */
function relayReasonText(reason: string | undefined): string {
  return reason === 'nat_mapping_split'
    ? 'a NAT gives one side more than one public port'
    : 'no direct handshake in time';
}

/** Collects the status of the selected networks from the state and the interfaces. */
export async function collectStatus(
  ctx: CommandContext,
  network: string | undefined,
): Promise<NetworkStatusView[]> {
  const out: NetworkStatusView[] = [];
  for (const n of selectNetworks(ctx.store, network)) {
    const state = ctx.store.load(n);
    if (state === null) continue;
    const map = ctx.store.loadMap(n);
    const paths = map === null ? [] : netmapToConfig(map).paths;
    const mapPeers = new Map((map?.peers ?? []).map((p) => [p.publicKey, p]));
    const pairReasons = new Map((map?.self.peerRelays ?? []).map((r) => [r.peerId, r.reason]));
    const relayReason = (key: string): string | null => {
      const id = mapPeers.get(key)?.id;
      return id !== undefined && pairReasons.has(id) ? relayReasonText(pairReasons.get(id)) : null;
    };
    const names = new Map<string, { name: string; kind: 'node' | 'external' }>();
    for (const p of map?.peers ?? []) names.set(p.publicKey, { name: p.name, kind: 'node' });
    for (const c of map?.self.externalClients ?? [])
      names.set(c.publicKey, { name: c.name, kind: 'external' });
    const link = await ctx.runner.run('ip', ['-j', 'address', 'show', 'dev', state.interface]);
    const dump =
      link.code === 0 ? await ctx.runner.run('wg', ['show', state.interface, 'dump']) : null;
    const wg = dump !== null && dump.code === 0 ? parseWgDump(dump.stdout) : null;
    const info = link.code === 0 ? parseIpAddr(link.stdout) : null;
    const pathOf = new Map(paths.map((p) => [p.publicKey, p]));
    const relayName = (p: PeerPath | undefined) =>
      p?.path === 'relay' ? (p.viaName ?? names.get(p.via ?? '')?.name ?? 'relay') : null;
    // A relayed peer keeps its WireGuard entry (still trying the direct path): its endpoint and
    // handshake are those of the direct attempts, its path the relay's.
    const peers: PeerStatusView[] = (wg?.peers ?? []).map((p) => ({
      name: names.get(p.publicKey)?.name ?? '(unknown)',
      publicKey: p.publicKey,
      kind: names.get(p.publicKey)?.kind ?? 'unknown',
      endpoint: p.endpoint,
      latestHandshakeMs: p.latestHandshakeS > 0 ? p.latestHandshakeS * MS_PER_S : null,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      path: pathOf.get(p.publicKey)?.path ?? 'direct',
      via: relayName(pathOf.get(p.publicKey)),
      endpointSource: endpointSourceOf(mapPeers.get(p.publicKey), p.endpoint),
      relayReason: relayReason(p.publicKey),
    }));
    // Peers behind an admin relay are not WireGuard peers of this node: list them with their relay.
    const listed = new Set(peers.map((p) => p.publicKey));
    for (const p of paths) {
      if (p.path !== 'relay' || listed.has(p.publicKey)) continue;
      peers.push({
        name: p.name,
        publicKey: p.publicKey,
        kind: 'node',
        endpoint: null,
        latestHandshakeMs: null,
        rxBytes: 0,
        txBytes: 0,
        path: 'relay',
        via: relayName(p),
        endpointSource: null,
        relayReason: relayReason(p.publicKey),
      });
    }
    out.push({
      network: n,
      interface: state.interface,
      backend: state.backend,
      up: info?.up ?? false,
      node: { id: state.nodeId, name: state.name },
      server: state.server,
      addresses: [...(info?.addresses ?? [])],
      mapVersion: map?.version ?? null,
      peers,
      dns: meshDns.describeDnsSetting(
        meshDns.loadDnsSetting(ctx.store.dir, n),
        meshDns.dnsContext(ctx).env,
      ),
    });
  }
  return out;
}

function ago(ms: number | null, now: number): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((now - ms) / MS_PER_S));
  if (s < SECONDS_PER_MINUTE) return `${s} s ago`;
  if (s < SECONDS_PER_HOUR)
    return `${Math.floor(s / SECONDS_PER_MINUTE)} min ${s % SECONDS_PER_MINUTE} s ago`;
  return `${Math.floor(s / SECONDS_PER_HOUR)} h ${Math.floor((s % SECONDS_PER_HOUR) / SECONDS_PER_MINUTE)} min ago`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= BYTES_PER_KIB && i < units.length - 1) {
    v /= BYTES_PER_KIB;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Renders status views as text tables. Pure apart from `now`. */
export function formatStatus(views: readonly NetworkStatusView[], now = Date.now()): string {
  const lines: string[] = [];
  for (const v of views) {
    lines.push(
      `network ${v.network}: interface ${v.interface} (${v.up ? 'up' : 'DOWN'}), backend ${v.backend}${v.crypto === undefined ? '' : `, crypto ${v.crypto}`}, address ${v.addresses.join(', ') || '(none)'}`,
    );
    lines.push(
      `  node ${v.node.name} (${v.node.id}), coordinator ${v.server}, map ${v.mapVersion === null ? '(none yet)' : `v${v.mapVersion}`}`,
    );
    if (v.dns !== undefined) lines.push(`  ${v.dns}`);
    const rows = [
      ['PEER', 'ENDPOINT', 'LATEST HANDSHAKE', 'TRANSFER (RX / TX)', 'PATH', 'ENDPOINT FROM'],
    ];
    for (const p of v.peers)
      rows.push([
        p.kind === 'external' ? `${p.name} (external)` : p.name,
        p.endpoint ?? '-',
        ago(p.latestHandshakeMs, now),
        `${bytes(p.rxBytes)} / ${bytes(p.txBytes)}`,
        p.path === 'relay'
          ? `relay via ${p.via ?? '?'}${p.relayReason === null ? '' : ` (${p.relayReason})`}`
          : 'direct',
        p.endpointSource ?? '-',
      ]);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    if (v.peers.length === 0) lines.push('  no peers');
    else
      for (const r of rows)
        lines.push(
          `  ${r
            .map((c, i) => c.padEnd(widths[i]!))
            .join('  ')
            .trimEnd()}`,
        );
  }
  return lines.join('\n');
}

/** `wiremesh status`. */
export async function statusCommand(
  ctx: CommandContext,
  o: { json: boolean; network?: string },
): Promise<void> {
  const crypto = cryptoStatus(ctx.env);
  const views = (await collectStatus(ctx, o.network)).map((v) => ({
    ...v,
    crypto: cryptoLabel(v.backend, crypto),
  }));
  if (o.json) return ctx.out(JSON.stringify(views, null, 2));
  ctx.out(formatStatus(views));
  ctx.out(`userspace crypto: ${crypto.provider} (${crypto.detail})`);
}

/** `wiremesh leave`: deregister, remove the interface, its routes and firewall rules, forget the network. */
export async function leaveCommand(
  ctx: CommandContext,
  network: string | undefined,
): Promise<void> {
  requireRoot();
  const failures: string[] = [];
  for (const n of selectNetworks(ctx.store, network)) {
    const state = ctx.store.load(n);
    if (state === null) continue;
    // Forget it first and tell a running daemon, so nothing re-applies it while it is taken down.
    ctx.store.remove(n);
    signalDaemon(ctx.store);
    try {
      await new HttpCoordinator({
        server: state.server,
        nodeSecret: state.nodeSecret,
        serverFingerprint: storedPin(state),
      }).leave();
    } catch (e) {
      if (!(
        e instanceof CoordinatorError &&
        (e.code === 'node_removed' || e.code === 'invalid_token')
      )) {
        failures.push(
          `${n}: could not tell the coordinator (${errorMessage(e)}); remove node ${state.nodeId} there (wiremesh-coordinator node remove ${state.nodeId})`,
        );
      }
    }
    try {
      const dp = await dataplaneFor(ctx, state.backend, state.interface).catch(async () => {
        // The interface may be gone already; still remove firewall rules and the userspace process.
        const opts = { runner: ctx.runner, log: ctx.log, stateDir: ctx.store.dir, env: ctx.env };
        const b =
          state.backend === 'kernel'
            ? kernelBackend(opts, 'leave')
            : userspaceBackend(opts, 'leave');
        return systemDataplane(
          b,
          createFirewall({ runner: ctx.runner, stateDir: ctx.store.dir, log: ctx.log }),
          ctx.runner,
          ctx.log,
        );
      });
      await dp.removeInterface(state.interface);
      ctx.out(`${n}: left; removed ${state.interface}, its routes and firewall rules`);
    } catch (e) {
      failures.push(
        `${n}: could not remove ${state.interface} (${errorMessage(e)}); remove it with "ip link del ${state.interface}"`,
      );
    }
    try {
      const env = meshDns.dnsContext(ctx).env;
      await meshDns.forgetMeshDns(ctx.store.dir, n, state.interface, env);
    } catch (e) {
      failures.push(
        `${n}: could not remove the mesh DNS configuration (${errorMessage(e)}); remove the "# BEGIN wiremesh ${n}" block from /etc/hosts, or run "resolvectl revert ${state.interface}"`,
      );
    }
    for (const f of ['pid', 'log'])
      rmSync(join(ctx.store.dir, `${state.interface}.${f}`), { force: true });
  }
  if (failures.length > 0) throw new AgentError('system', failures.join('; '));
}
