/**
 * An in-memory Dataplane (after tailscale's router_fake.go): interfaces are plain objects, applies
 * go through the same diff and the same command builders as the real one, and every command that
 * would have run is recorded, so tests see exactly which peers, addresses and routes were touched.
 */
import type { Backend as BackendKind, Endpoint } from '@wiremesh/protocol';
import type { ObservedPeer, PunchOptions } from '../reconcile/diff.js';
import { describeDiff, diffConfig, isEmptyDiff } from '../reconcile/diff.js';
import {
  ipCommands,
  NOT_THERE,
  wgSetArgs,
  type ApplyResult,
  type Dataplane,
  type DeviceIdentity,
  type Observed,
} from './dataplane.js';
import type { DesiredConfig } from '../reconcile/netmap.js';
import { forwardingRules, ruleTag } from './firewall.js';

interface FakeInterface {
  up: boolean;
  listenPort: number;
  mtu: number | null;
  addresses: string[];
  routes: string[];
  peers: Map<string, ObservedPeer>;
  publicKey: string | null;
  rules: Set<string>;
}

/** A Dataplane in memory, with what it did. */
export interface FakeDataplane extends Dataplane {
  /** Every command the real dataplane would have run: ['wg', ...] or ['ip', ...] or ['fw', tag]. */
  readonly commands: string[][];
  /** The interfaces that exist now. */
  readonly interfaces: ReadonlyMap<string, FakeInterface>;
  /** Makes the next `apply` fail with this error (once). */
  failNextApply(err: Error): void;
  /** Pretends peer `publicKey` on `iface` completed a handshake at Unix second `s`. */
  handshake(iface: string, publicKey: string, s: number): void;
  /**
   * What the next reflection probes answer (null: no reply); `undefined` (the default) means the
   * backend cannot probe at all, like the kernel's. Every probe's target is kept in `probes`.
   */
  reflected: Endpoint | null | undefined;
  readonly probes: Endpoint[];
}

/** A new FakeDataplane of kind `backend`. */
export function createFakeDataplane(backend: BackendKind = 'userspace'): FakeDataplane {
  const ifaces = new Map<string, FakeInterface>();
  const commands: string[][] = [];
  let failure: Error | null = null;
  const probes: Endpoint[] = [];
  const observe = async (iface: string): Promise<Observed> => {
    const i = ifaces.get(iface);
    if (i === undefined) return NOT_THERE;
    return {
      exists: true,
      up: i.up,
      listenPort: i.listenPort,
      mtu: i.mtu,
      addresses: [...i.addresses].sort(),
      routes: [...i.routes].sort(),
      peers: [...i.peers.values()].map((p) => ({ ...p, allowedIps: [...p.allowedIps] })),
      publicKey: i.publicKey,
    };
  };
  const fake: FakeDataplane = {
    backend,
    reason: 'fake',
    commands,
    interfaces: ifaces,
    reflected: undefined,
    probes,
    failNextApply(err) {
      failure = err;
    },
    handshake(iface, publicKey, s) {
      const p = ifaces.get(iface)?.peers.get(publicKey);
      if (p !== undefined) ifaces.get(iface)?.peers.set(publicKey, { ...p, latestHandshakeS: s });
    },
    async ensureInterface(iface) {
      if (ifaces.has(iface)) return false;
      ifaces.set(iface, {
        up: false,
        listenPort: 0,
        mtu: null,
        addresses: [],
        routes: [],
        peers: new Map(),
        publicKey: null,
        rules: new Set(),
      });
      commands.push(['ip', 'link', 'add', iface]);
      return true;
    },
    async removeInterface(iface) {
      if (ifaces.delete(iface)) commands.push(['ip', 'link', 'del', iface]);
    },
    observe,
    async apply(
      iface: string,
      desired: DesiredConfig,
      last: DesiredConfig | null,
      id: DeviceIdentity,
      punch?: PunchOptions,
    ): Promise<ApplyResult> {
      if (failure !== null) {
        const f = failure;
        failure = null;
        throw f;
      }
      const i = ifaces.get(iface);
      if (i === undefined) throw new Error(`no interface ${iface}`);
      const diff = diffConfig(await observe(iface), desired, last, punch);
      const keyFile = i.publicKey === id.publicKey ? null : id.privateKeyFile;
      const set = wgSetArgs(iface, diff, keyFile);
      if (set !== null) commands.push(['wg', ...set]);
      for (const c of ipCommands(iface, diff)) commands.push(['ip', ...c]);
      i.publicKey = id.publicKey;
      if (diff.listenPort !== null) i.listenPort = diff.listenPort;
      if (diff.mtu !== null) i.mtu = diff.mtu;
      if (diff.setUp) i.up = true;
      i.addresses = [
        ...i.addresses.filter((a) => !diff.removeAddresses.includes(a)),
        ...diff.addAddresses,
      ];
      i.routes = [...i.routes.filter((r) => !diff.removeRoutes.includes(r)), ...diff.addRoutes];
      for (const k of diff.removePeers) i.peers.delete(k);
      for (const u of diff.updatePeers) {
        if (u.recreate === true) i.peers.delete(u.publicKey);
        const old = i.peers.get(u.publicKey);
        i.peers.set(u.publicKey, {
          publicKey: u.publicKey,
          endpoint: u.endpoint ?? old?.endpoint ?? null,
          allowedIps: u.allowedIps !== undefined ? [...u.allowedIps] : [...(old?.allowedIps ?? [])],
          persistentKeepalive: u.persistentKeepalive ?? old?.persistentKeepalive ?? 0,
          latestHandshakeS: old?.latestHandshakeS ?? 0,
          rxBytes: old?.rxBytes ?? 0,
          txBytes: old?.txBytes ?? 0,
        });
      }
      const want = new Set(
        forwardingRules(iface, desired.forwarding).map((r) => ruleTag(iface, r)),
      );
      const fw: string[] = [];
      for (const t of i.rules) if (!want.has(t)) fw.push(`removed ${t}`);
      for (const t of want) if (!i.rules.has(t)) fw.push(`added ${t}`);
      for (const f of fw) commands.push(['fw', f]);
      i.rules = want;
      const changed = !isEmptyDiff(diff) || fw.length > 0 || keyFile !== null;
      return { diff, firewall: fw, changed, summary: changed ? describeDiff(diff) : 'no changes' };
    },
  };
  // Present only while the fake says it can probe, as the real dataplane has it only for the
  // in-process device.
  Object.defineProperty(fake, 'reflect', {
    enumerable: true,
    get: () =>
      fake.reflected === undefined
        ? undefined
        : async (iface: string, target: Endpoint, _probe?: unknown) => {
            probes.push(target);
            return ifaces.has(iface) ? (fake.reflected ?? null) : null;
          },
  });
  return fake;
}
