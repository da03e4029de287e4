// Every NAT pair kind with userspace nodes (issue 11), on harness/topology.ts: a coordinator and a
// relay R on the "internet"; A and B behind home routers (drop unsolicited inbound); S behind a home
// router whose NAT maps S's peer flows to a second public port after S's first probe (a forced
// mapping split); M and N behind bare-MASQUERADE routers (they answer unsolicited packets, which
// kills the mapping, ../shared/NAT.md); D behind a symmetric NAT. Prints join -> first direct
// ping for each kind, and the bare-MASQUERADE direct success rate over several tries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentHost, Hub, buildAll, waitPing } from './harness/agent-mesh.js';
import { cleanupAll, onCleanup, pollUntil } from './harness/netns.js';
import { buildTopology, type Topology } from './harness/topology.js';

const NETWORK = 'pairs';
const REFLECT_PORT = 3478;
const CONVERGE_MS = 25_000;
/** The coordinator's 15 s relay wait plus reports, push and the first relayed handshakes. */
const RELAY_BOUND_MS = 45_000;
/** The second public port S's NAT gives every flow but the one to the reflector. */
const SPLIT_PORT = 40000;
/** Bare-MASQUERADE tries (WIREMESH_NAT_TRIES raises it for a longer local measurement). */
const TRIES = Number(process.env['WIREMESH_NAT_TRIES'] ?? 3);
/** How long one try may take to show a direct handshake. */
const TRY_MS = 20_000;

let topo: Topology;
let hub: Hub;
let key = '';
const hosts: Record<string, AgentHost> = {};
const timings: string[] = [];

async function join(name: string): Promise<AgentHost> {
  const a = new AgentHost(hub, name, { ns: topo.ns(name), lan: topo.node(name).ipv4 });
  const r = await a.join(NETWORK, ['--key', key]);
  expect(r.status, `${name} join: ${r.stderr}`).toBe(0);
  a.startDaemon();
  hosts[name] = a;
  return a;
}

/** Waits until `a`'s WireGuard entry for `b` holds an endpoint on `publicIp` with a handshake. */
async function directEndpoint(a: AgentHost, b: string, publicIp: string, timeoutMs: number) {
  const bKey = (await hub.node(NETWORK, b)).publicKey;
  return pollUntil(
    `${a.name}'s entry for ${b} at ${publicIp}`,
    async () => {
      const p = (await a.wgPeers()).get(bKey);
      return p !== undefined && p.handshake > 0 && p.endpoint.startsWith(`${publicIp}:`)
        ? p
        : false;
    },
    timeoutMs,
    100,
  );
}

function failureLogs(): string {
  return [
    topo.describe(),
    ...Object.values(hosts).map((h) => `--- daemon ${h.name} ---\n${h.daemon?.output() ?? ''}`),
    `--- coordinator ---\n${hub?.proc?.output() ?? ''}`,
  ].join('\n');
}

beforeAll(async () => {
  buildAll();
  topo = await buildTopology({
    prefix: 'wmpair',
    routers: [
      { name: 'rA', nat: 'home' },
      { name: 'rB', nat: 'home' },
      { name: 'rS', nat: 'home' },
      { name: 'rM', nat: 'masquerade' },
      { name: 'rN', nat: 'masquerade' },
      { name: 'rD', nat: 'symmetric' },
    ],
    lans: [
      { name: 'lanA', router: 'rA', ipv4: '192.168.1.0/24' },
      { name: 'lanB', router: 'rB', ipv4: '192.168.1.0/24' },
      { name: 'lanS', router: 'rS', ipv4: '192.168.1.0/24' },
      { name: 'lanM', router: 'rM', ipv4: '192.168.2.0/24' },
      { name: 'lanN', router: 'rN', ipv4: '192.168.3.0/24' },
      { name: 'lanD', router: 'rD', ipv4: '10.0.5.0/24' },
    ],
    hosts: [
      { name: 'hub', lan: 'internet' },
      { name: 'r', lan: 'internet' },
      { name: 'a', lan: 'lanA' },
      { name: 'b', lan: 'lanB' },
      { name: 's', lan: 'lanS' },
      { name: 'm', lan: 'lanM' },
      { name: 'n', lan: 'lanN' },
      { name: 'd', lan: 'lanD' },
    ],
  });
  onCleanup(() => void topo.destroy());
  hub = new Hub({ ns: topo.ns('hub'), address: topo.node('hub').ipv4, reflectPort: REFLECT_PORT });
  await hub.start();
  await hub.admin('POST', '/api/v1/networks', { name: NETWORK, ipv4Cidr: '10.79.0.0/16' });
  key = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, { autoApprove: true }))
    .key as string;
  await join('r');
  await hub.admin('PUT', `/api/v1/nodes/${(await hub.node(NETWORK, 'r')).id}/relay`, {
    relayedNodeIds: [],
  });
  await join('a');
}, 120_000);

afterAll(async () => {
  if (timings.length > 0) console.log(`nat-pairs timings:\n  ${timings.join('\n  ')}`);
  if (process.env['WMNAT_DEBUG'] === '1' && topo !== undefined) console.log(failureLogs());
  for (const h of Object.values(hosts)) await h.stopDaemon();
  await hub?.stop();
  await topo?.destroy();
  cleanupAll();
}, 60_000);

describe('NAT pairs of userspace nodes', () => {
  it('two nodes behind home routers go direct through the mapped public ports', async () => {
    const t0 = performance.now();
    const b = await join('b');
    const a = hosts['a']!;
    try {
      await Promise.all([
        directEndpoint(a, 'b', topo.publicAddress('b').ipv4, CONVERGE_MS),
        directEndpoint(b, 'a', topo.publicAddress('a').ipv4, CONVERGE_MS),
      ]);
      timings.push(
        `home/home: join B -> direct handshake both sides: ${Math.round(performance.now() - t0)} ms`,
      );
      await waitPing(a, (await hub.node(NETWORK, 'b')).addressV4, CONVERGE_MS);
      await waitPing(b, (await hub.node(NETWORK, 'a')).addressV4, CONVERGE_MS);
      timings.push(
        `home/home: join B -> first ping both ways: ${Math.round(performance.now() - t0)} ms`,
      );
      expect((await a.statusPeers()).find((p) => p.name === 'b')).toMatchObject({
        path: 'direct',
        endpointSource: 'reflected',
        relayReason: null,
      });
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });

  it('a NAT mapping that splits after the first probe is detected, shown, and repaired with the observed port', async () => {
    // Every flow from S's listen port except the one to the reflector gets SPLIT_PORT.
    await topo.check('rS', 'iptables', [
      '-t',
      'nat',
      '-I',
      'POSTROUTING',
      '-o',
      'wan0',
      '-p',
      'udp',
      '!',
      '-d',
      topo.node('hub').ipv4,
      '-j',
      'MASQUERADE',
      '--to-ports',
      String(SPLIT_PORT),
    ]);
    const t0 = performance.now();
    const s = await join('s');
    const a = hosts['a']!;
    try {
      const rS = topo.publicAddress('s').ipv4;
      const rA = topo.publicAddress('a').ipv4;
      const aSeesS = await directEndpoint(a, 's', rS, CONVERGE_MS);
      timings.push(
        `home/split: join S -> direct handshake at A: ${Math.round(performance.now() - t0)} ms`,
      );
      await waitPing(a, (await hub.node(NETWORK, 's')).addressV4, CONVERGE_MS);
      await waitPing(s, (await hub.node(NETWORK, 'a')).addressV4, CONVERGE_MS);
      timings.push(
        `home/split: join S -> first ping both ways: ${Math.round(performance.now() - t0)} ms`,
      );
      // The reflector saw S's first port; R, public, saw the second, which is what works.
      expect(aSeesS.endpoint).toBe(`${rS}:${SPLIT_PORT}`);
      await directEndpoint(s, 'a', rA, CONVERGE_MS);
      const sa = (await a.statusPeers()).find((p) => p.name === 's');
      expect(sa).toMatchObject({
        path: 'direct',
        endpoint: `${rS}:${SPLIT_PORT}`,
        endpointSource: `observed by r (the reflector saw ${rS}:51820: the NAT mapping split)`,
      });
      const text = await a.cli(['status', '--state-dir', a.stateDir]);
      expect(text.stdout).toMatch(/\bs\s+.*direct\s+observed by r \(the reflector saw/);
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });

  it('two nodes behind bare-MASQUERADE routers: the direct success rate is measured, and a pair without one is relayed with the reason shown', async () => {
    const t0 = performance.now();
    const m = await join('m');
    const n = await join('n');
    const mIp = topo.publicAddress('m').ipv4;
    const nIp = topo.publicAddress('n').ipv4;
    try {
      let direct = 0;
      let firstDirectMs: number | null = null;
      for (let i = 0; i < TRIES; i++) {
        const start = performance.now();
        if (i > 0) {
          // A fresh start of both sides: routers forget every mapping, daemons probe again.
          await m.stopDaemon();
          await n.stopDaemon();
          await topo.flushConntrack('rM');
          await topo.flushConntrack('rN');
          m.startDaemon();
          n.startDaemon();
        }
        const ok = await Promise.all([
          directEndpoint(m, 'n', nIp, TRY_MS),
          directEndpoint(n, 'm', mIp, TRY_MS),
        ]).then(
          () => true,
          () => false,
        );
        if (ok) {
          direct++;
          firstDirectMs ??= performance.now() - (i === 0 ? t0 : start);
        }
      }
      timings.push(`bare/bare: direct in ${direct} of ${TRIES} tries (${TRY_MS / 1000} s each)`);
      if (firstDirectMs !== null)
        timings.push(`bare/bare: join -> first direct handshake: ${Math.round(firstDirectMs)} ms`);
      // Whatever the rate, the pair talks: directly, or through R with the reason in status.
      await waitPing(m, (await hub.node(NETWORK, 'n')).addressV4, RELAY_BOUND_MS);
      await waitPing(n, (await hub.node(NETWORK, 'm')).addressV4, RELAY_BOUND_MS);
      const mn = (await m.statusPeers()).find((p) => p.name === 'n');
      // A bare MASQUERADE router that answered the peer's first packet maps its host's own flow
      // to another port (NAT.md): the coordinator may see that as a split mapping.
      if (mn?.path === 'relay') {
        expect(mn.via).toBe('r');
        expect(mn.relayReason).toMatch(
          /^(no direct handshake in time|a NAT gives one side more than one public port)$/,
        );
      } else expect(mn).toMatchObject({ path: 'direct', relayReason: null });
      timings.push(
        `bare/bare: the pair ends ${mn?.path === 'relay' ? `on the relay (${mn.relayReason})` : 'direct'}`,
      );
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });

  it('a node behind a symmetric NAT reaches a home node through the relay, with the reason shown', async () => {
    const t0 = performance.now();
    const d = await join('d');
    const a = hosts['a']!;
    try {
      const relayed = async () => {
        const p = (await a.statusPeers()).find((x) => x.name === 'd');
        return p?.path === 'relay' ? p : false;
      };
      const p = await pollUntil('A to route D through R', relayed, RELAY_BOUND_MS, 250);
      await waitPing(a, (await hub.node(NETWORK, 'd')).addressV4, RELAY_BOUND_MS);
      timings.push(
        `home/symmetric: join D -> first ping A->D (relayed): ${Math.round(performance.now() - t0)} ms`,
      );
      expect(p.via).toBe('r');
      // The reflector and R saw D at different ports: its NAT maps each destination on its own.
      expect(p.relayReason).toBe('a NAT gives one side more than one public port');
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });
});
