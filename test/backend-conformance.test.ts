// The same backend conformance cases (backend-conformance.case.ts) against both backends: the
// userspace device (wgts) in a network namespace, and kernel WireGuard inside the qemu VM, where
// the agent's dataplane runs here and only its ip/wg commands run in the guest (issue 6).
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe } from 'vitest';
import {
  USERSPACE_IMPLEMENTATION_ENV,
  WG_SOCKET_DIR,
  silentLogger,
  systemRunner,
  type Runner,
} from '@wiremesh/mesh-agent';
import { registerBackendConformance, type BackendTarget } from './backend-conformance.case.js';
import {
  startKernelVm,
  vmRunner,
  vmWriteSecret,
  type KernelVm,
} from './harness/kernel-vm/index.js';
import {
  cleanupAll,
  createNamespace,
  linkNamespaces,
  onCleanup,
  uniqueId,
} from './harness/netns.js';
import { wgtsCommand } from './harness/wgts.js';

const NS_TAG = 'wmbc';
const VM_BOOT_TIMEOUT_MS = 120_000;

/** `wmbc` + 6 hex digits: unique across namespaces and the VM's host (/var/run/wireguard). */
function newInterface(): string {
  const iface = `${NS_TAG}${uniqueId()}`;
  // A userspace device killed without its own cleanup leaves its socket, which wg(8) would list.
  onCleanup(() => rmSync(join(WG_SOCKET_DIR, `${iface}.sock`), { force: true }));
  return iface;
}

describe('userspace backend (wgts) in a network namespace', () => {
  let target: BackendTarget | undefined;

  beforeAll(async () => {
    const deviceNs = createNamespace(NS_TAG);
    const peerNs = createNamespace(NS_TAG);
    linkNamespaces(
      { ns: deviceNs, name: 'lnk0', ipv4: '10.203.0.1/24', ipv6: 'fd77:203::1/64' },
      { ns: peerNs, name: 'lnk0', ipv4: '10.203.0.2/24', ipv6: 'fd77:203::2/64' },
    );
    const stateDir = mkdtempSync(join(tmpdir(), 'wmbc-'));
    onCleanup(() => rmSync(stateDir, { recursive: true, force: true }));
    // The backend spawns its implementation here; this wrapper starts it in the device namespace.
    const wrapper = join(stateDir, 'wgts-in-netns');
    const [node, script] = wgtsCommand();
    writeFileSync(
      wrapper,
      `#!/bin/sh\nexec ip netns exec ${deviceNs} ${JSON.stringify(node)} ${JSON.stringify(script)} "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const host = systemRunner();
    const runner: Runner = {
      run: (cmd, args, input) => host.run('ip', ['netns', 'exec', deviceNs, cmd, ...args], input),
    };
    // Where this host's kernel has WireGuard, auto would rightly take it: ask for userspace then.
    const probe = `${NS_TAG}probe`;
    const kernelHasWg =
      (await runner.run('ip', ['link', 'add', probe, 'type', 'wireguard'])).code === 0;
    if (kernelHasWg) await runner.run('ip', ['link', 'del', probe]);
    target = {
      options: {
        runner,
        log: silentLogger,
        stateDir,
        env: { ...process.env, [USERSPACE_IMPLEMENTATION_ENV]: wrapper },
      },
      choice: kernelHasWg ? 'userspace' : 'auto',
      expected: {
        kind: 'userspace',
        reason: kernelHasWg
          ? /^userspace WireGuard as asked/
          : /^the kernel has no WireGuard \(ip link add type wireguard: .+\); using the userspace device \(wgts\)$/,
        existingReason: /exists as a userspace \(TUN\) interface$/,
        linkKind: 'tun',
      },
      newInterface,
      async writeSecret(name, text) {
        const path = join(stateDir, name);
        writeFileSync(path, text, { mode: 0o600 });
        return path;
      },
      link: {
        peerNetns: peerNs,
        peerIp4: '10.203.0.2',
        deviceIp4: '10.203.0.1',
        unusedIp4: '10.203.0.9',
        unusedIp6: 'fd77:203::9',
      },
      async leftovers(iface) {
        return [join(WG_SOCKET_DIR, `${iface}.sock`), join(stateDir, `${iface}.pid`)].filter((p) =>
          existsSync(p),
        );
      },
    };
  });

  afterAll(() => cleanupAll());

  registerBackendConformance(() => {
    if (target === undefined) throw new Error('the userspace target did not come up');
    return target;
  });
});

describe('kernel backend inside the qemu VM', () => {
  let vm: KernelVm | undefined;
  let target: BackendTarget | undefined;

  beforeAll(async () => {
    vm = await startKernelVm({ wgInterface: null, bootTimeoutMs: VM_BOOT_TIMEOUT_MS });
    console.log(`kernel ${vm.kernelRelease} booted in ${Math.round(vm.bootMs)} ms`);
    const guest = vm;
    const runner = vmRunner(guest);
    target = {
      options: { runner, log: silentLogger, stateDir: '/tmp/wm-state' },
      choice: 'auto',
      expected: {
        kind: 'kernel',
        reason: /^the kernel has WireGuard \(ip link add type wireguard works\)$/,
        existingReason: /exists as a kernel WireGuard interface$/,
        linkKind: 'wireguard',
      },
      newInterface,
      async writeSecret(name, text) {
        const path = `/tmp/wm-keys/${name}`;
        await vmWriteSecret(guest, path, text);
        return path;
      },
      link: {
        peerNetns: guest.netns,
        peerIp4: guest.host.ip4,
        deviceIp4: guest.guest.ip4,
        unusedIp4: '10.201.0.9',
        unusedIp6: 'fd77:201::9',
      },
      async leftovers(iface) {
        const r = await runner.run('wg', ['show', 'interfaces']);
        return r.stdout.split(/\s+/).filter((name) => name === iface);
      },
    };
  }, VM_BOOT_TIMEOUT_MS + 60_000);

  afterAll(async () => {
    await vm?.stop();
  });

  registerBackendConformance(() => {
    if (target === undefined) throw new Error('the kernel VM did not come up');
    return target;
  });
});
