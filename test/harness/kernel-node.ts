// A mesh node on kernel WireGuard: the agent (NetworkAgent, the daemon's own code) runs in this
// process and its ip/wg commands run in the kernel VM (vm-runner.ts), as in the backend
// conformance suite. It registers and checks in through a loopback forward into the namespace
// the coordinator lives in (ns-forward.ts).
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  HttpCoordinator,
  NetworkAgent,
  StateStore,
  createLogger,
  selectBackend,
  systemDataplane,
  type Firewall,
  type LocalAddress,
  type Logger,
} from '@wiremesh/mesh-agent';
import { PROTOCOL_VERSION } from '@wiremesh/protocol';
import { generatePrivateKey, keyToBase64, nobleCrypto, publicKeyOf, wipe } from '@wiremesh/wg-core';
import { vmRunner, vmWriteSecret, type KernelVm } from './kernel-vm/index.js';
import { onCleanup } from './netns.js';

/** The guest has no iptables: this node plays no gateway role, so it needs no rules. */
const NO_FIREWALL: Firewall = { reconcile: async () => [] };

/** Options of startKernelNode. */
export interface KernelNodeOptions {
  vm: KernelVm;
  /** The coordinator's URL as this process reaches it. */
  server: string;
  network: string;
  key: string;
  name: string;
  /** The guest's LAN address (what the agent reports as its local endpoint). */
  lan: LocalAddress;
  iface: string;
}

/** A running kernel node. */
export interface KernelNode {
  readonly name: string;
  readonly nodeId: string;
  readonly publicKey: string;
  readonly iface: string;
  readonly agent: NetworkAgent;
  /** The agent's log lines so far (for failure messages). */
  logs(): string;
  /** Stops the agent's loops and removes the interface in the guest. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Registers `name` with the key, creates the kernel interface in the guest and starts the agent's
 * loops (stream, reports, path watch). Resolves once the first map is applied.
 */
export async function startKernelNode(o: KernelNodeOptions): Promise<KernelNode> {
  const runner = vmRunner(o.vm);
  const lines: string[] = [];
  const log: Logger = createLogger('debug', '', (l) => lines.push(l), true);
  const dir = mkdtempSync(join(tmpdir(), 'wmkn-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const store = new StateStore(dir);
  store.ensureDir();
  const backend = await selectBackend('auto', o.iface, { runner, log, stateDir: '/tmp/wm-state' });
  if (backend.kind !== 'kernel') throw new Error(`the VM chose ${backend.kind}: ${backend.reason}`);
  const dataplane = systemDataplane(backend, NO_FIREWALL, runner, log);
  const priv = generatePrivateKey((b) => randomFillSync(b));
  const publicKey = keyToBase64(publicKeyOf(nobleCrypto, priv));
  const reg = await new HttpCoordinator({ server: o.server }).register({
    protocolVersion: PROTOCOL_VERSION,
    network: o.network,
    enrollmentKey: o.key,
    name: o.name,
    publicKey,
    os: `Linux ${o.vm.kernelRelease}`,
    version: 'wiremesh kernel-vm test node',
    backend: 'kernel',
  });
  if (reg.state !== 'approved') throw new Error(`${o.name} is ${reg.state}, not approved`);
  try {
    store.saveKey(o.network, priv);
    // `wg set private-key` reads the file in the guest: the same path holds the same key there.
    await vmWriteSecret(o.vm, store.keyPath(o.network), `${keyToBase64(priv)}\n`);
  } finally {
    wipe(priv);
  }
  const state = {
    format: 1 as const,
    network: o.network,
    server: o.server,
    nodeId: reg.nodeId,
    nodeSecret: reg.nodeSecret,
    name: o.name,
    interface: o.iface,
    backend: 'kernel' as const,
    listenPort: null,
    publicKey,
    joinedAt: Date.now(),
  };
  store.save(state);
  const agent = new NetworkAgent({
    state,
    store,
    api: new HttpCoordinator({ server: o.server, nodeSecret: reg.nodeSecret }),
    dataplane,
    log,
    localAddresses: () => [o.lan],
  });
  if (reg.map !== null) await agent.acceptMap(reg.map, 'registration');
  agent.start();
  let stopped: Promise<void> | null = null;
  return {
    name: o.name,
    nodeId: reg.nodeId,
    publicKey,
    iface: o.iface,
    agent,
    logs: () => lines.join('\n'),
    stop: () =>
      (stopped ??= (async () => {
        await agent.stop();
        await dataplane.removeInterface(o.iface).catch(() => undefined);
      })()),
  };
}
