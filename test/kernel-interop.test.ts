// Interop with the Linux kernel's WireGuard (drivers/net/wireguard), booted in qemu: each side
// initiates the handshake, pings pass both ways over IPv4 and IPv6, with and without a preshared key.
// The userspace side is a list of implementations with wireguard-go's CLI; wgts joins it.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  startKernelVm,
  startUserspaceWg,
  type KernelVm,
  type UserspaceWg,
  type WgDump,
} from './harness/kernel-vm/index.js';
import { run } from './harness/netns.js';
import { wgtsCommand } from './harness/wgts.js';

/** Userspace devices proven against the kernel: `command... -f IFACE` must behave as wireguard-go. */
const IMPLEMENTATIONS: { name: string; command: string[] }[] = [
  { name: 'wireguard-go', command: ['wireguard-go'] },
  { name: 'wgts', command: wgtsCommand() },
];

const KERNEL_PORT = 51820;
const USERSPACE_PORT = 51821;
const KERNEL_INNER = { ip4: '10.77.0.2', ip6: 'fd77:77::2' };
const USERSPACE_INNER = { ip4: '10.77.0.1', ip6: 'fd77:77::1' };
const PING_COUNT = 3;
const HANDSHAKE_WAIT_MS = 15_000;

interface Keypair {
  privateKey: string;
  publicKey: string;
}

function wgTool(args: string[], input?: string): string {
  return execFileSync('wg', args, { input, encoding: 'utf8' }).trim();
}

function keypair(): Keypair {
  const privateKey = wgTool(['genkey']);
  return { privateKey, publicKey: wgTool(['pubkey'], privateKey) };
}

function conf(
  self: Keypair,
  port: number,
  peer: { publicKey: string; psk: string | null; allowed: string[]; endpoint: string | null },
): string {
  return [
    '[Interface]',
    `PrivateKey = ${self.privateKey}`,
    `ListenPort = ${port}`,
    '',
    '[Peer]',
    `PublicKey = ${peer.publicKey}`,
    ...(peer.psk === null ? [] : [`PresharedKey = ${peer.psk}`]),
    `AllowedIPs = ${peer.allowed.join(', ')}`,
    ...(peer.endpoint === null ? [] : [`Endpoint = ${peer.endpoint}`]),
    '',
  ].join('\n');
}

function hostPing(ns: string, address: string): Promise<{ received: number; output: string }> {
  return run(ns, ['ping', '-c', String(PING_COUNT), '-i', '0.2', '-W', '3', address], {
    timeoutMs: 15_000,
  }).then((r) => {
    const m = /(\d+) received/.exec(r.stdout);
    return { received: Number(m?.[1] ?? 0), output: r.stdout + r.stderr };
  });
}

function onlyPeer(dump: WgDump) {
  expect(dump.peers).toHaveLength(1);
  const peer = dump.peers[0];
  if (peer === undefined) throw new Error('unreachable');
  return peer;
}

let vm: KernelVm;

beforeAll(async () => {
  vm = await startKernelVm();
  console.log(
    `kernel ${vm.kernelRelease} booted in ${Math.round(vm.bootMs)} ms (console: ${vm.consoleLog})`,
  );
}, 180_000);

afterAll(async () => {
  await vm?.stop();
});

/** Gives the kernel a fresh wg0 with the inner addresses: no state carries over between cases. */
async function resetKernelInterface(): Promise<void> {
  await vm.run(`ip link del wg0 2>/dev/null; set -e
ip link add wg0 type wireguard
ip addr add ${KERNEL_INNER.ip4}/24 dev wg0
ip -6 addr add ${KERNEL_INNER.ip6}/64 dev wg0 nodad
ip link set wg0 up`);
}

interface Pair {
  user: UserspaceWg;
  kernelKeys: Keypair;
  userKeys: Keypair;
}

/** Configures both sides; only the initiator gets an endpoint, so only it can start a handshake. */
async function setUp(
  command: string[],
  opts: {
    initiator: 'kernel' | 'userspace';
    kernelPsk: string | null;
    userPsk: string | null;
    outer: 4 | 6;
  },
): Promise<Pair> {
  await resetKernelInterface();
  const user = await startUserspaceWg({ netns: vm.netns, command });
  try {
    await user.addAddress(`${USERSPACE_INNER.ip4}/24`);
    await user.addAddress(`${USERSPACE_INNER.ip6}/64`);
    const kernelKeys = keypair();
    const userKeys = keypair();
    const hostOuter = opts.outer === 4 ? vm.host.ip4 : `[${vm.host.ip6}]`;
    const guestOuter = opts.outer === 4 ? vm.guest.ip4 : `[${vm.guest.ip6}]`;
    await vm.setConf(
      conf(kernelKeys, KERNEL_PORT, {
        publicKey: userKeys.publicKey,
        psk: opts.kernelPsk,
        allowed: [`${USERSPACE_INNER.ip4}/32`, `${USERSPACE_INNER.ip6}/128`],
        endpoint: opts.initiator === 'kernel' ? `${hostOuter}:${USERSPACE_PORT}` : null,
      }),
    );
    await user.setConf(
      conf(userKeys, USERSPACE_PORT, {
        publicKey: kernelKeys.publicKey,
        psk: opts.userPsk,
        allowed: [`${KERNEL_INNER.ip4}/32`, `${KERNEL_INNER.ip6}/128`],
        endpoint: opts.initiator === 'userspace' ? `${guestOuter}:${KERNEL_PORT}` : null,
      }),
    );
    // Nothing has been sent yet: no side may claim a handshake.
    expect(onlyPeer(await vm.wgDump()).latestHandshake).toBe(0);
    expect(onlyPeer(await user.wgDump()).latestHandshake).toBe(0);
    return { user, kernelKeys, userKeys };
  } catch (err) {
    await user.stop();
    throw err;
  }
}

describe.each(IMPLEMENTATIONS)('$name <-> Linux kernel WireGuard', ({ command }) => {
  const cases = [
    { initiator: 'kernel', psk: false, outer: 4 },
    { initiator: 'userspace', psk: false, outer: 4 },
    { initiator: 'kernel', psk: true, outer: 4 },
    { initiator: 'userspace', psk: true, outer: 4 },
    { initiator: 'kernel', psk: true, outer: 6 },
    { initiator: 'userspace', psk: false, outer: 6 },
  ] as const;

  it.each(cases)(
    'handshake initiated by $initiator (preshared key: $psk, outer IPv$outer); ping both ways',
    async ({ initiator, psk, outer }) => {
      const key = psk ? wgTool(['genpsk']) : null;
      const { user, kernelKeys, userKeys } = await setUp(command, {
        initiator,
        kernelPsk: key,
        userPsk: key,
        outer,
      });
      try {
        // The initiator's traffic triggers the handshake; it is queued, not lost, meanwhile.
        if (initiator === 'kernel') {
          const p = await vm.ping(USERSPACE_INNER.ip4, {
            count: PING_COUNT,
            deadlineSec: HANDSHAKE_WAIT_MS / 1000,
          });
          expect(p.received, p.output).toBeGreaterThan(0);
        } else {
          const p = await hostPing(vm.netns, KERNEL_INNER.ip4);
          expect(p.received, p.output + user.log()).toBeGreaterThan(0);
        }

        const kernelPeer = onlyPeer(await vm.wgDump());
        const userPeer = onlyPeer(await user.wgDump());
        expect(kernelPeer.publicKey).toBe(userKeys.publicKey);
        expect(userPeer.publicKey).toBe(kernelKeys.publicKey);
        expect(kernelPeer.latestHandshake).toBeGreaterThan(0);
        expect(userPeer.latestHandshake).toBeGreaterThan(0);
        expect(kernelPeer.hasPresharedKey).toBe(psk);
        expect(userPeer.hasPresharedKey).toBe(psk);
        // The responder learned the initiator's outer address from the authenticated handshake.
        const hostOuter = outer === 4 ? vm.host.ip4 : `[${vm.host.ip6}]`;
        const guestOuter = outer === 4 ? vm.guest.ip4 : `[${vm.guest.ip6}]`;
        expect(kernelPeer.endpoint).toBe(`${hostOuter}:${USERSPACE_PORT}`);
        expect(userPeer.endpoint).toBe(`${guestOuter}:${KERNEL_PORT}`);

        // Both directions, both inner families, every packet.
        for (const addr of [USERSPACE_INNER.ip4, USERSPACE_INNER.ip6]) {
          const p = await vm.ping(addr, { count: PING_COUNT });
          expect(p.received, p.output).toBe(PING_COUNT);
        }
        for (const addr of [KERNEL_INNER.ip4, KERNEL_INNER.ip6]) {
          const p = await hostPing(vm.netns, addr);
          expect(p.received, p.output).toBe(PING_COUNT);
        }
        const after = onlyPeer(await vm.wgDump());
        expect(after.rxBytes).toBeGreaterThan(0);
        expect(after.txBytes).toBeGreaterThan(0);
      } finally {
        await user.stop();
      }
    },
  );

  it('a preshared key on one side only: no handshake completes, no packet passes', async () => {
    const { user } = await setUp(command, {
      initiator: 'kernel',
      kernelPsk: wgTool(['genpsk']),
      userPsk: null,
      outer: 4,
    });
    try {
      const p = await vm.ping(USERSPACE_INNER.ip4, { count: 2, deadlineSec: 3 });
      expect(p.transmitted, p.output).toBe(2);
      expect(p.received, p.output).toBe(0);
      const userPeer = onlyPeer(await user.wgDump());
      const kernelPeer = onlyPeer(await vm.wgDump());
      expect(kernelPeer.latestHandshake).toBe(0);
      expect(userPeer.latestHandshake).toBe(0);
      // The kernel did initiate: the userspace side authenticated the initiation (which the preshared
      // key does not enter) and learned its endpoint; the key only breaks the response.
      expect(userPeer.endpoint).toBe(`${vm.guest.ip4}:${KERNEL_PORT}`);
    } finally {
      await user.stop();
    }
  });
});
