// Mesh DNS end to end (issue 15): agents in namespaces (each with its own /etc/hosts and
// /etc/resolv.conf, bind-mounted by `ip netns exec`), a coordinator, an egress gateway with a
// printer on its LAN. Every node resolves every other node with getent and pings it by name, the
// resolver on each mesh address answers A / NXDOMAIN / REFUSED, a custom record resolves and the
// printer answers by name, a rename reaches every node, `--dns off` leaves the host's resolver
// configuration alone, and leave removes every trace. The machine's own /etc files never change.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentHost,
  COORDINATOR_JS,
  Hub,
  NS_TAG,
  buildAll,
  waitPing,
} from './harness/agent-mesh.js';
import {
  check,
  cleanupAll,
  createNamespace,
  linkNamespaces,
  pollUntil,
  run,
} from './harness/netns.js';
import { wgQuickByHand } from './harness/wgts.js';

const NETWORK = 'demo';
const CONVERGE_MS = 15_000;
const PRINTER_IP = '192.168.78.2';
/** Asks the resolver at argv[2] for argv[3] (type argv[4]); prints the answers or the error code. */
const DIG_SCRIPT = `const { Resolver } = require('node:dns').promises;
const [server, name, type] = process.argv.slice(-3);
const r = new Resolver({ timeout: 2000, tries: 1 });
r.setServers([server]);
r.resolve(name, type).then((a) => console.log('ok ' + a.join(',')), (e) => console.log('err ' + e.code));`;

let hub: Hub;
const hosts: Record<string, AgentHost> = {};
const addr: Record<string, string> = {};
const etcBefore = { hosts: '', resolv: '' };
const nsEtcBefore: Record<string, { hosts: string; resolv: string }> = {};

const nsEtc = (h: AgentHost) => ({
  hosts: readFileSync(`/etc/netns/${h.ns}/hosts`, 'utf8'),
  resolv: readFileSync(`/etc/netns/${h.ns}/resolv.conf`, 'utf8'),
});

async function getent(h: { ns: string }, name: string): Promise<string | null> {
  const r = await run(h.ns, ['getent', 'hosts', name], { timeoutMs: 5_000 });
  return r.status === 0 ? (r.stdout.trim().split(/\s+/)[0] ?? null) : null;
}

async function dig(h: { ns: string }, server: string, name: string, type = 'A'): Promise<string> {
  const r = await run(h.ns, [process.execPath, '-e', DIG_SCRIPT, server, name, type], {
    timeoutMs: 10_000,
  });
  return r.stdout.trim();
}

async function admin(args: string[]): Promise<string> {
  const r = await run(hub.ns, [
    process.execPath,
    COORDINATOR_JS,
    ...args,
    '--server',
    hub.url,
    '--token',
    hub.token,
  ]);
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  etcBefore.hosts = readFileSync('/etc/hosts', 'utf8');
  etcBefore.resolv = readFileSync('/etc/resolv.conf', 'utf8');
  buildAll();
  hub = new Hub();
  await hub.start();
  await hub.admin('POST', '/api/v1/networks', { name: NETWORK, ipv4Cidr: '10.201.0.0/16' });
  const key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, { autoApprove: true }))
    .key as string;
  for (const name of ['alpha', 'beta', 'gamma', 'delta']) {
    const h = new AgentHost(hub, name);
    hosts[name] = h;
    nsEtcBefore[name] = nsEtc(h);
    const r = await h.join(NETWORK, ['--key', key, '--dns', name === 'delta' ? 'off' : 'on']);
    expect(r.status, r.stderr).toBe(0);
    if (name === 'delta') expect(r.stdout).toContain("dns off: the host's resolver configuration");
    else
      expect(r.stdout).toMatch(/dns: \d+ names? under demo through a marked block in \/etc\/hosts/);
    h.startDaemon();
  }
  const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
    name: string;
    addressV4: string;
    id: string;
  }[];
  for (const n of nodes) addr[n.name] = n.addressV4;
}, 120_000);

afterAll(() => cleanupAll());

describe('mesh DNS', () => {
  it('every node resolves every other node by name (getent) and pings it by name', async () => {
    const on = ['alpha', 'beta', 'gamma'];
    for (const a of on)
      for (const b of ['alpha', 'beta', 'gamma', 'delta']) {
        await pollUntil(
          `${a} to resolve ${b}.demo`,
          async () => (await getent(hosts[a]!, `${b}.${NETWORK}`)) === addr[b],
          CONVERGE_MS,
        );
      }
    await waitPing(hosts.alpha!, addr.beta!, CONVERGE_MS);
    const ping = await run(hosts.alpha!.ns, ['ping', '-c', '1', '-W', '2', `beta.${NETWORK}`]);
    expect(ping.status, ping.stdout + ping.stderr).toBe(0);
    expect(ping.stdout).toContain(addr.beta);
  });

  it("answers on each node's mesh address: A, NXDOMAIN in the domain, REFUSED outside", async () => {
    const server = `${addr.alpha}:53`;
    await pollUntil(
      "alpha's resolver",
      async () => (await dig(hosts.beta!, server, `gamma.${NETWORK}`)) === `ok ${addr.gamma}`,
      CONVERGE_MS,
    );
    expect(await dig(hosts.beta!, server, `Delta.${NETWORK.toUpperCase()}`)).toBe(
      `ok ${addr.delta}`,
    );
    expect(await dig(hosts.beta!, server, `nas.${NETWORK}`)).toBe('err ENOTFOUND');
    expect(await dig(hosts.beta!, server, 'example.com')).toBe('err EREFUSED');
    const status = (await hosts.alpha!.cli(['status', '--state-dir', hosts.alpha!.stateDir]))
      .stdout;
    expect(status).toContain(
      `dns on: names under ${NETWORK} through a marked block in /etc/hosts, resolver on ${addr.alpha}:53`,
    );
  });

  it('a custom record for the egress LAN printer resolves, and the printer answers by name', async () => {
    const alpha = hosts.alpha!;
    const lan = createNamespace(NS_TAG);
    linkNamespaces(
      { ns: alpha.ns, name: 'lan0', ipv4: '192.168.78.1/24' },
      { ns: lan, name: 'eth0', ipv4: `${PRINTER_IP}/24` },
    );
    const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
      name: string;
      id: string;
    }[];
    const a = nodes.find((n) => n.name === 'alpha')!;
    await hub.admin('PUT', `/api/v1/nodes/${a.id}/egress`, {
      ranges: ['192.168.78.0/24'],
      interface: 'lan0',
    });
    expect(await admin(['dns', 'add', '--network', NETWORK, 'printer', PRINTER_IP])).toContain(
      `printer.${NETWORK}`,
    );
    for (const h of [hosts.beta!, hosts.gamma!])
      await pollUntil(
        `${h.name} to resolve printer.demo`,
        async () => (await getent(h, `printer.${NETWORK}`)) === PRINTER_IP,
        CONVERGE_MS,
      );
    await waitPing(hosts.beta!, PRINTER_IP, CONVERGE_MS);
    const ping = await run(hosts.beta!.ns, ['ping', '-c', '1', '-W', '2', `printer.${NETWORK}`]);
    expect(ping.status, ping.stdout + ping.stderr).toBe(0);
    // A duplicate or a non-label name is refused with a message, not a stack trace.
    const dup = await run(hub.ns, [
      process.execPath,
      COORDINATOR_JS,
      'dns',
      'add',
      '--network',
      NETWORK,
      'beta',
      '10.0.0.1',
      '--server',
      hub.url,
      '--token',
      hub.token,
    ]);
    expect(dup.status).toBe(1);
    expect(dup.stderr).toMatch(/^wiremesh-coordinator: a node named beta .*\(name_taken\)\n$/);
  });

  it('a rename reaches every node: the new name resolves, the old one is gone', async () => {
    const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
      name: string;
      id: string;
    }[];
    const b = nodes.find((n) => n.name === 'beta')!;
    const t0 = performance.now();
    await admin(['node', 'rename', b.id, 'nas']);
    for (const h of [hosts.alpha!, hosts.gamma!, hosts.beta!])
      await pollUntil(
        `${h.name} to resolve nas.demo`,
        async () =>
          (await getent(h, `nas.${NETWORK}`)) === addr.beta &&
          (await getent(h, `beta.${NETWORK}`)) === null,
        CONVERGE_MS,
      );
    const ms = performance.now() - t0;
    console.log(`rename propagated to 3 nodes' hosts files in ${ms.toFixed(0)} ms`);
    expect(await dig(hosts.gamma!, `${addr.alpha}:53`, `nas.${NETWORK}`)).toBe(`ok ${addr.beta}`);
  });

  it("--dns off leaves the host's resolver configuration as it was", async () => {
    const delta = hosts.delta!;
    await waitPing(delta, addr.alpha!, CONVERGE_MS);
    expect(nsEtc(delta)).toEqual(nsEtcBefore.delta);
    expect(await getent(delta, `alpha.${NETWORK}`)).toBeNull();
    const status = (await delta.cli(['status', '--state-dir', delta.stateDir])).stdout;
    expect(status).toContain('dns off');
  });

  it('a phone (wireguard-go from the generated file) resolves node names through the ingress', async () => {
    const alpha = hosts.alpha!;
    const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
      name: string;
      id: string;
    }[];
    const a = nodes.find((n) => n.name === 'alpha')!;
    await hub.admin('PUT', `/api/v1/nodes/${a.id}/ingress`, { endpoint: `${alpha.lan}:51820` });
    const client = await hub.admin('POST', `/api/v1/networks/${NETWORK}/extclients`, {
      name: 'phone',
      ingressNodeId: a.id,
      meshDns: true,
    });
    const conf = (await hub.http('GET', `/api/v1/extclients/${client.id}/config`)).text;
    expect(conf).toContain(`DNS = ${addr.alpha}, ${NETWORK}\n`);
    // The phone: wireguard-go configured from the wg-quick file as wg-quick would.
    const { ns } = hub.attach();
    const address = await wgQuickByHand(ns, alpha.extraIface(), conf);
    const phone = { ns };
    await pollUntil(
      'the phone to resolve gamma.demo through alpha',
      async () => (await dig(phone, `${addr.alpha}:53`, `gamma.${NETWORK}`)) === `ok ${addr.gamma}`,
      CONVERGE_MS,
    );
    expect(await dig(phone, `${addr.alpha}:53`, `printer.${NETWORK}`)).toBe(`ok ${PRINTER_IP}`);
    // The phone has a name too, on every node.
    await pollUntil(
      'gamma to resolve phone.demo',
      async () => (await getent(hosts.gamma!, `phone.${NETWORK}`)) === address.split('/')[0],
      CONVERGE_MS,
    );
  });

  it('leave removes every trace; the machine’s own /etc files never changed', async () => {
    for (const name of ['alpha', 'gamma']) {
      const h = hosts[name]!;
      expect(nsEtc(h).hosts).toContain('# BEGIN wiremesh demo');
      const r = await h.cli(['leave', '--network', NETWORK, '--state-dir', h.stateDir]);
      expect(r.status, r.stderr).toBe(0);
      await h.stopDaemon();
      expect(nsEtc(h)).toEqual(nsEtcBefore[name]);
      expect(await getent(h, `nas.${NETWORK}`)).toBeNull();
    }
    expect(await dig(hosts.delta!, `${addr.alpha}:53`, `nas.${NETWORK}`)).toMatch(/^err /);
    expect(readFileSync('/etc/hosts', 'utf8')).toBe(etcBefore.hosts);
    expect(readFileSync('/etc/resolv.conf', 'utf8')).toBe(etcBefore.resolv);
  });
});
