/**
 * The dataplane (tailscale's wgengine + router): reads what an interface has, applies the diff to
 * the desired config with wg(8) and ip(8), and reconciles gateway forwarding. One implementation
 * for both backends, because both are configured by the same tools; the in-memory fake is
 * fake-dataplane.ts (tests import it by path; it is not in the package's index).
 */
import type { Backend as BackendKind, Endpoint } from '@wiremesh/protocol';
import type { Backend, ProbeOptions } from './backend.js';
import { ROUTE_PROTOCOL } from '../constants.js';
import {
  describeDiff,
  diffConfig,
  isEmptyDiff,
  type ConfigDiff,
  type ObservedInterface,
  type PunchOptions,
} from '../reconcile/diff.js';
import { AgentError } from '../errors.js';
import type { Firewall } from './firewall.js';
import type { Logger } from '../log.js';
import type { DesiredConfig } from '../reconcile/netmap.js';
import { isIpv6 } from '../prefix.js';
import { commandError, type Runner } from '../runner.js';
import { parseIpAddr, parseIpRoutes, parseWgDump } from './wg-dump.js';

/** The node's WireGuard identity as the dataplane needs it: never the key bytes, only its file. */
export interface DeviceIdentity {
  /** A 0600 file holding the base64 private key (wg(8) reads it; the key never crosses argv). */
  readonly privateKeyFile: string;
  readonly publicKey: string;
}

/** What the interface reports, plus its own public key. */
export interface Observed extends ObservedInterface {
  readonly publicKey: string | null;
}

/** The outcome of one apply. */
export interface ApplyResult {
  readonly diff: ConfigDiff;
  readonly firewall: readonly string[];
  /** Whether anything at all changed (false: "no changes"). */
  readonly changed: boolean;
  /** One line for the log: "no changes" or what changed. */
  readonly summary: string;
}

/** The interface operations the agent's loop needs. */
export interface Dataplane {
  readonly backend: BackendKind;
  readonly reason: string;
  /** Makes the interface exist; true when it was created now. */
  ensureInterface(iface: string): Promise<boolean>;
  /** Removes the interface, its routes and its firewall rules; idempotent. */
  removeInterface(iface: string): Promise<void>;
  /** What the interface has now (`exists: false` when there is none). */
  observe(iface: string): Promise<Observed>;
  /**
   * Applies the difference between the interface and `desired` (`punch`: hole-punching order,
   * diff.ts). Throws AgentError on failure.
   */
  apply(
    iface: string,
    desired: DesiredConfig,
    lastApplied: DesiredConfig | null,
    id: DeviceIdentity,
    punch?: PunchOptions,
  ): Promise<ApplyResult>;
  /**
   * Endpoint discovery from the WireGuard socket of `iface` (reflect-client.ts): resolves with the
   * public endpoint the reflector at `target` saw, or null without a reply. Absent when the backend
   * cannot send from that socket (kernel WireGuard, a detached userspace process).
   */
  reflect?(iface: string, target: Endpoint, probe?: ProbeOptions): Promise<Endpoint | null>;
  /** Closes the devices this process runs (the in-process backend); the daemon calls it on exit. */
  close?(): Promise<void>;
}

/** What `observe` reports for an interface that does not exist; one shared value (readonly fields). */
export const NOT_THERE: Observed = {
  exists: false,
  up: false,
  listenPort: 0,
  mtu: null,
  addresses: [],
  routes: [],
  peers: [],
  publicKey: null,
};

/**
 * The arguments of the one `wg set` that applies `diff`'s device and peer changes, or null when
 * there are none. Removals come first so a prefix that moves between peers lands on the new one.
 * Pure; the private key appears only as the path `keyFile`.
 */
export function wgSetArgs(
  iface: string,
  diff: ConfigDiff,
  keyFile: string | null,
): string[] | null {
  const args: string[] = [];
  if (keyFile !== null) args.push('private-key', keyFile);
  if (diff.listenPort !== null) args.push('listen-port', String(diff.listenPort));
  for (const k of diff.removePeers) args.push('peer', k, 'remove');
  for (const u of diff.updatePeers) {
    // The same peer twice in one set: applied in order, so off-then-on sends a keepalive now,
    // and remove-then-add gives a fresh peer that initiates at once.
    if (u.recreate === true) args.push('peer', u.publicKey, 'remove');
    else if (u.restartKeepalive === true)
      args.push('peer', u.publicKey, 'persistent-keepalive', 'off');
    args.push('peer', u.publicKey);
    if (u.endpoint !== undefined) args.push('endpoint', u.endpoint);
    if (u.persistentKeepalive !== undefined)
      args.push(
        'persistent-keepalive',
        u.persistentKeepalive === 0 ? 'off' : String(u.persistentKeepalive),
      );
    if (u.allowedIps !== undefined) args.push('allowed-ips', u.allowedIps.join(','));
  }
  return args.length === 0 ? null : ['set', iface, ...args];
}

/** The `ip` commands (argument lists) that apply `diff`'s link, address and route changes, in order. */
export function ipCommands(iface: string, diff: ConfigDiff): string[][] {
  const out: string[][] = [];
  const fam = (c: string) => (isIpv6(c) ? ['-6'] : ['-4']);
  if (diff.mtu !== null) out.push(['link', 'set', 'dev', iface, 'mtu', String(diff.mtu)]);
  for (const a of diff.removeAddresses) out.push([...fam(a), 'address', 'del', a, 'dev', iface]);
  // replace, not add: idempotent when another run of the agent got there first.
  for (const a of diff.addAddresses) out.push([...fam(a), 'address', 'replace', a, 'dev', iface]);
  if (diff.setUp) out.push(['link', 'set', 'dev', iface, 'up']);
  for (const r of diff.removeRoutes)
    out.push([...fam(r), 'route', 'del', r, 'dev', iface, 'proto', String(ROUTE_PROTOCOL)]);
  for (const r of diff.addRoutes)
    out.push([...fam(r), 'route', 'replace', r, 'dev', iface, 'proto', String(ROUTE_PROTOCOL)]);
  return out;
}

/** The dataplane on a Backend, ip(8), wg(8) and a Firewall. */
export function systemDataplane(
  backend: Backend,
  firewall: Firewall,
  runner: Runner,
  log: Logger,
): Dataplane {
  const must = async (cmd: string, args: string[]): Promise<string> => {
    const r = await runner.run(cmd, args);
    if (r.code !== 0)
      throw new AgentError(
        'system',
        `${cmd} ${args.slice(0, 3).join(' ')} ... failed: ${commandError(r)}`,
      );
    return r.stdout;
  };
  const observe = async (iface: string): Promise<Observed> => {
    const link = await runner.run('ip', ['-j', '-d', 'address', 'show', 'dev', iface]);
    const info = link.code === 0 ? parseIpAddr(link.stdout) : null;
    if (info === null) return NOT_THERE;
    const dump = await runner.run('wg', ['show', iface, 'dump']);
    const wg = dump.code === 0 ? parseWgDump(dump.stdout) : null;
    if (wg === null)
      throw new AgentError('system', `wg show ${iface} failed: ${commandError(dump)}`);
    const routes: string[] = [];
    for (const family of [4, 6] as const) {
      const r = await runner.run('ip', [
        `-${family}`,
        '-j',
        'route',
        'show',
        'dev',
        iface,
        'proto',
        String(ROUTE_PROTOCOL),
      ]);
      if (r.code === 0) routes.push(...parseIpRoutes(r.stdout, family));
    }
    return {
      exists: true,
      up: info.up,
      listenPort: wg.device.listenPort,
      mtu: info.mtu,
      addresses: info.addresses,
      routes: routes.sort(),
      peers: wg.peers,
      publicKey: wg.device.publicKey,
    };
  };
  return {
    backend: backend.kind,
    reason: backend.reason,
    ...(backend.reflect !== undefined ? { reflect: backend.reflect.bind(backend) } : {}),
    ...(backend.close !== undefined ? { close: backend.close.bind(backend) } : {}),
    ensureInterface: (iface) => backend.create(iface),
    async removeInterface(iface) {
      await firewall.reconcile(iface, null);
      await backend.destroy(iface);
    },
    observe,
    async apply(iface, desired, lastApplied, id, punch) {
      const seen = await observe(iface);
      if (!seen.exists)
        throw new AgentError(
          'system',
          `interface ${iface} disappeared; the agent recreates it on its next round`,
        );
      const diff = diffConfig(seen, desired, lastApplied, punch);
      const keyFile = seen.publicKey === id.publicKey ? null : id.privateKeyFile;
      const set = wgSetArgs(iface, diff, keyFile);
      if (set !== null) await must('wg', set);
      for (const args of ipCommands(iface, diff)) await must('ip', args);
      const fw = await firewall.reconcile(iface, desired.forwarding);
      const changed = !isEmptyDiff(diff) || fw.length > 0 || keyFile !== null;
      const summary = changed
        ? [
            keyFile !== null ? 'private key' : '',
            isEmptyDiff(diff) ? '' : describeDiff(diff),
            fw.length > 0 ? `firewall: ${fw.length} changes` : '',
          ]
            .filter(Boolean)
            .join('; ')
        : 'no changes';
      log.debug(`${iface}: ${summary}`);
      return { diff, firewall: fw, changed, summary };
    },
  };
}
