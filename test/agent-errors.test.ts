// Bad input to `wiremesh join` and friends (issue 6): wrong or expired key, unreachable server,
// unknown network, rejected node, no root, no TUN, no kernel WireGuard, and a device that fails
// after registration. Each ends with one line saying what to do, a non-zero exit code, and nothing
// left configured: no interface, no state, no registration.
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_JS, AgentHost, Hub, buildAll } from './harness/agent-mesh.js';
import { check, cleanupAll, run, type RunResult } from './harness/netns.js';

const NETWORK = 'errs';

let hub: Hub;
let host: AgentHost;

/** Asserts one clean line on stderr, the exit code, and an untouched host. */
async function expectCleanFailure(r: RunResult, exit: number, pattern: RegExp): Promise<void> {
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^wiremesh: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.status).toBe(exit);
  const links = await check(host.ns, ['ip', '-o', 'link', 'show']);
  expect(links).not.toContain(host.iface);
  expect(readdirSync(host.stateDir).filter((f) => f.startsWith(NETWORK))).toEqual([]);
}

beforeAll(async () => {
  buildAll();
  hub = new Hub();
  await hub.start();
  await hub.admin('POST', '/api/v1/networks', { name: NETWORK, ipv4Cidr: '10.201.0.0/16' });
  host = new AgentHost(hub, 'victim');
});

afterAll(() => cleanupAll());

describe('wiremesh join failures', () => {
  it('a wrong enrollment key', async () => {
    const r = await host.join(NETWORK, ['--key', 'wmk_thisisnotakey']);
    await expectCleanFailure(r, 3, /enrollment key is wrong.*--key/);
  });

  it('an expired enrollment key', async () => {
    const key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, { expiresInS: 1 }))
      .key as string;
    await new Promise((r) => setTimeout(r, 1_500));
    const r = await host.join(NETWORK, ['--key', key]);
    await expectCleanFailure(r, 3, /expired.*new one/);
  });

  it('no key where the network needs one', async () => {
    const r = await host.join(NETWORK);
    await expectCleanFailure(r, 3, /needs an enrollment key.*--key/);
  });

  it('an unknown network', async () => {
    const key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, {})).key as string;
    const r = await host.join('no-such-net', ['--key', key]);
    await expectCleanFailure(r, 1, /no network "no-such-net".*--network/);
  });

  it('an unreachable coordinator', async () => {
    const r = await host.cli([
      'join',
      '--server',
      `http://${hub.address}:1`,
      '--network',
      NETWORK,
      '--backend',
      'userspace',
      '--interface',
      host.iface,
      '--state-dir',
      host.stateDir,
      '--daemon',
      'off',
    ]);
    await expectCleanFailure(r, 4, /cannot reach the coordinator.*check --server/);
  });

  it('not root', async () => {
    const r = await run(host.ns, [
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      AGENT_JS,
      'join',
      '--server',
      hub.url,
      '--network',
      NETWORK,
      '--state-dir',
      host.stateDir,
    ]);
    await expectCleanFailure(r, 6, /must run as root.*sudo/);
  });

  it('no TUN device for the userspace backend', async () => {
    // A private mount namespace whose /dev/net is empty: no /dev/net/tun.
    const script = `mount -t tmpfs none /dev/net && exec "$@"`;
    const r = await run(host.ns, [
      'unshare',
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      'sh',
      process.execPath,
      AGENT_JS,
      'join',
      '--server',
      hub.url,
      '--network',
      NETWORK,
      '--key',
      'wmk_x',
      '--interface',
      host.iface,
      '--state-dir',
      host.stateDir,
      '--daemon',
      'off',
    ]);
    await expectCleanFailure(r, 7, /no TUN device.*modprobe tun/);
  });

  it('kernel WireGuard asked for where the kernel has none', async () => {
    const key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, {})).key as string;
    const r = await host.cli([
      'join',
      '--server',
      hub.url,
      '--network',
      NETWORK,
      '--key',
      key,
      '--backend',
      'kernel',
      '--interface',
      host.iface,
      '--state-dir',
      host.stateDir,
      '--daemon',
      'off',
    ]);
    await expectCleanFailure(r, 1, /kernel has no WireGuard.*--backend userspace/);
  });

  it('a device that fails after registration withdraws the registration', async () => {
    const key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, { autoApprove: true }))
      .key as string;
    const r = await host.cli(
      [
        'join',
        '--server',
        hub.url,
        '--network',
        NETWORK,
        '--name',
        'broken',
        '--key',
        key,
        '--backend',
        'userspace',
        '--interface',
        host.iface,
        '--state-dir',
        host.stateDir,
        '--daemon',
        'off',
      ],
      { ...process.env, WIREMESH_USERSPACE_IMPLEMENTATION: '/bin/false' },
    );
    await expectCleanFailure(r, 1, /did not start.*registration was withdrawn/);
    const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
      name: string;
      state: string;
    }[];
    expect(nodes.find((n) => n.name === 'broken')?.state).toBe('removed');
  });

  it('a rejected node is told so and taken down', async () => {
    const key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, {})).key as string;
    const r = await host.join(NETWORK, ['--key', key, '--name', 'suspect']);
    expect(r.status, r.stderr).toBe(0);
    const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
      id: string;
      name: string;
      state: string;
    }[];
    const n = nodes.find((x) => x.name === 'suspect' && x.state === 'pending');
    await hub.admin('POST', `/api/v1/nodes/${n!.id}/reject`);
    const c = await host.cli(['checkin', '--state-dir', host.stateDir]);
    await expectCleanFailure(c, 5, /rejected.*ask the admin/);
  });
});
