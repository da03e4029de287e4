// The full mesh scenario of issue 7, in namespaces (topology.ts) with the coordinator and agents of
// agent-mesh.ts: an internet holding the coordinator and a public relay R; home-A (home NAT + A);
// home-B (home NAT + B and C on one LAN, C the egress gateway of an office LAN behind it); a
// symmetric NAT + D; P public, the ingress gateway; E a stock wireguard-go client configured only
// from the wg-quick file the coordinator generated. /work/shared/NAT.md has the facts behind it.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AgentHost, Hub, buildAll } from './harness/agent-mesh.js';
import { cleanupAll, run, spawnIn, stopProcess, uniqueId, pollUntil } from './harness/netns.js';
import { buildTopology, type Topology, type TopologySpec } from './harness/topology.js';
import { SOCKET_DIR, tempFile } from './harness/wgts.js';

const NETWORK = 'demo';
const NETWORK_CIDR = '10.8.0.0/16';
const OFFICE = '192.168.100.0/24';
/** Every home numbers its LAN alike, so only public endpoints tell the homes apart. */
const HOME_LAN = '192.168.1.0/24';
const REFLECT_PORT = 3478;
/** From each join command to the first answered ping of each peer, at most (relaying waits 15 s). */
const REACH_BOUND_MS = 90_000;
/** The first test: joins, then up to REACH_BOUND_MS of pinging. */
const JOIN_TEST_TIMEOUT_MS = 150_000;
const CONVERGE_MS = 30_000;
/** Pings during the coordinator's restart: 0.2 s apart for about 8 s, one may be lost. */
const RESTART_PINGS = 40;
const RESTART_PING_INTERVAL_S = 0.2;
const RESTART_LOSS_ALLOWED = 1;
/** The coordinator stays down this long before it starts again. */
const RESTART_DOWN_MS = 3_000;
const RETRY_PING_MS = 100;
const NETNS_DIR = '/var/run/netns';

const SPEC: TopologySpec = {
  prefix: 'wmscen',
  routers: [
    { name: 'home-a', nat: 'home' },
    { name: 'home-b', nat: 'home' },
    { name: 'sym', nat: 'symmetric' },
    { name: 'mobile', nat: 'masquerade' },
    // C is a host of lan-b with a second interface on the office LAN, which it routes (no NAT).
    { name: 'c', nat: 'none', upstream: 'lan-b' },
  ],
  lans: [
    { name: 'lan-a', router: 'home-a', ipv4: HOME_LAN },
    { name: 'lan-b', router: 'home-b', ipv4: HOME_LAN },
    { name: 'lan-d', router: 'sym', ipv4: HOME_LAN },
    { name: 'carrier', router: 'mobile', ipv4: '100.64.0.0/24' },
    { name: 'office', router: 'c', ipv4: OFFICE },
  ],
  hosts: [
    { name: 'r', lan: 'internet' },
    { name: 'p', lan: 'internet' },
    { name: 'a', lan: 'lan-a' },
    { name: 'b', lan: 'lan-b' },
    { name: 'd', lan: 'lan-d' },
    { name: 'e', lan: 'carrier' },
    { name: 'printer', lan: 'office' },
  ],
};
/** The mesh nodes whose every pair must reach each other. */
const PAIRED = ['a', 'b', 'c', 'd', 'p'] as const;

let topo: Topology;
let hub: Hub;
const hosts = new Map<string, AgentHost>();
const address = new Map<string, string>();
/** performance.now() when each node's join command started. */
const joinedAt = new Map<string, number>();
/** How long each join command ran. */
const joinTook = new Map<string, number>();
/** `from>to` -> ms from `from`'s join command to its first answered ping to `to`; null: never. */
const firstPing = new Map<string, number | null>();
let phoneIface = '';
let phoneKey = '';

function host(name: string): AgentHost {
  const h = hosts.get(name);
  if (h === undefined) throw new RangeError(`no agent ${name}`);
  return h;
}

async function nodeId(name: string): Promise<string> {
  const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as Array<{
    id: string;
    name: string;
  }>;
  const n = nodes.find((x) => x.name === name);
  if (n === undefined) throw new Error(`no node ${name}`);
  return n.id;
}

/**
 * Pings `target` from `node`'s namespace 10 times a second until a reply, restarting ping when it
 * exits early (no route yet); resolves with performance.now() of the first reply, or null at
 * `deadline`.
 */
async function firstReply(node: string, target: string, deadline: number): Promise<number | null> {
  while (performance.now() < deadline) {
    const leftS = Math.max(1, Math.ceil((deadline - performance.now()) / 1000));
    const p = spawnIn(topo.ns(node), ['ping', '-n', '-i', '0.1', '-w', String(leftS), target]);
    const at = await new Promise<number | null>((resolve) => {
      let seen = '';
      p.child.stdout?.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('bytes from')) resolve(performance.now());
      });
      void p.exited.then(() => resolve(null));
    });
    await stopProcess(p, 'SIGKILL', 0);
    if (at !== null) return at;
    await new Promise((r) => setTimeout(r, RETRY_PING_MS));
  }
  return null;
}

/** One ping from `node` to `target` (an address) answered within a second. */
async function pings(node: string, target: string): Promise<boolean> {
  const r = await run(topo.ns(node), ['ping', '-c', '1', '-W', '1', '-n', '-q', target], {
    timeoutMs: 5_000,
  });
  return r.status === 0;
}

async function reaches(node: string, target: string, timeoutMs = CONVERGE_MS): Promise<void> {
  await pollUntil(`${node} -> ${target}`, () => pings(node, target), timeoutMs, 200);
}

function timingTable(): string {
  const cell = (from: string, to: string): string => {
    if (from === to) return '.';
    const ms = firstPing.get(`${from}>${to}`);
    return ms === null || ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`;
  };
  const rows = [
    ['from \\ to', ...PAIRED],
    ...PAIRED.map((f) => [f, ...PAIRED.map((t) => cell(f, t))]),
  ];
  return rows.map((r) => r.map((c) => c.padEnd(9)).join(' ')).join('\n');
}

beforeAll(async () => {
  buildAll();
  topo = await buildTopology(SPEC);
  hub = new Hub({
    ns: topo.ns('internet'),
    address: topo.node('internet').ipv4,
    reflectPort: REFLECT_PORT,
  });
  await hub.start();
  await hub.admin('POST', '/api/v1/networks', { name: NETWORK, ipv4Cidr: NETWORK_CIDR });
  for (const name of ['r', ...PAIRED])
    hosts.set(name, new AgentHost(hub, name, { ns: topo.ns(name), lan: topo.node(name).ipv4 }));
});

afterAll(async () => {
  await topo?.destroy();
  cleanupAll();
});

describe('the mesh scenario (issue 7)', () => {
  it(
    'every node joins with one command, and every pair of A, B, C, D and P pings every other',
    async () => {
      const { key } = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/keys`, {
        autoApprove: true,
      })) as { key: string };
      // Each pair is watched from the moment both addresses exist (registration, early in the
      // join), so the gateway roles set below happen while the mesh is coming up, as in real life.
      const watchers: Array<Promise<void>> = [];
      const joins = Promise.all(
        [...hosts.values()].map(async (h) => {
          joinedAt.set(h.name, performance.now());
          const r = await h.join(NETWORK, ['--key', key]);
          joinTook.set(h.name, performance.now() - joinedAt.get(h.name)!);
          expect(r.status, `${h.name}: ${r.stderr}`).toBe(0);
          h.startDaemon();
        }),
      );
      joins.catch(() => undefined); // awaited below; a failure must not go unhandled meanwhile
      await pollUntil(
        'every node to register',
        async () => {
          const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as Array<{
            name: string;
            addressV4: string;
            state: string;
          }>;
          for (const n of nodes) address.set(n.name, n.addressV4);
          return nodes.length === hosts.size && nodes.every((n) => n.state === 'approved');
        },
        CONVERGE_MS,
        50,
      );
      for (const from of PAIRED)
        for (const to of PAIRED)
          if (from !== to)
            watchers.push(
              (async () => {
                const start = joinedAt.get(from)!;
                const at = await firstReply(from, address.get(to)!, start + REACH_BOUND_MS);
                firstPing.set(`${from}>${to}`, at === null ? null : at - start);
              })(),
            );
      await joins;
      // R offers relaying (the automatic fallback may use it); C and P get their gateway roles.
      await hub.admin('PUT', `/api/v1/nodes/${await nodeId('r')}/relay`, { relayedNodeIds: [] });
      const office = JSON.parse(
        await topo.check('c', 'ip', ['-j', '-4', 'address', 'show', 'to', OFFICE]),
      ) as Array<{ ifname: string }>;
      await hub.admin('PUT', `/api/v1/nodes/${await nodeId('c')}/egress`, {
        ranges: [OFFICE],
        interface: office[0]!.ifname,
      });
      await hub.admin('PUT', `/api/v1/nodes/${await nodeId('p')}/ingress`, {});
      await Promise.all(watchers);
      console.log(
        `join command -> first answered ping (rows ping columns):\n${timingTable()}\n` +
          `the join commands themselves took: ${[...joinTook].map(([n, ms]) => `${n} ${(ms / 1000).toFixed(1)} s`).join(', ')}`,
      );

      const never = [...firstPing].filter(([, ms]) => ms === null).map(([pair]) => pair);
      expect(never, 'pairs that never answered').toEqual([]);
      // A public peer learns a NATed node's endpoint from its packets: the NAT's public address.
      const pPeers = await host('p').wgPeers();
      for (const name of ['a', 'b', 'd']) {
        const peer = pPeers.get(await host(name).publicKey());
        expect(peer?.endpoint.split(':')[0], name).toBe(topo.publicAddress(name).ipv4);
      }
    },
    JOIN_TEST_TIMEOUT_MS,
  );

  it('A and B talk directly through both NATs, at the ports the NATs mapped', async () => {
    for (const [self, other, otherRouter, selfRouter] of [
      ['a', 'b', 'home-b', 'home-a'],
      ['b', 'a', 'home-a', 'home-b'],
    ] as const) {
      const peer = (await host(self).wgPeers()).get(await host(other).publicKey());
      expect(peer?.handshake, `${self} has a session with ${other}`).toBeGreaterThan(0);
      const [ip, port] = peer!.endpoint.split(':');
      expect(ip, `${self}'s endpoint for ${other}`).toBe(topo.publicAddress(other).ipv4);
      // The port is the one the other home's NAT gave its node's flow toward this home.
      const mapped = (await topo.conntrack(otherRouter)).find(
        (e) =>
          e.original.src === topo.node(other).ipv4 &&
          e.original.dst === topo.publicAddress(self).ipv4 &&
          e.reply.dst === topo.node(otherRouter).ipv4,
      );
      expect(mapped, `${otherRouter} maps ${other}'s flow to ${selfRouter}`).toBeDefined();
      expect(Number(port)).toBe(mapped!.reply.dport);
      expect(await pathOf(self, other)).toBe('direct');
    }
  });

  it('B and C talk over their LAN addresses', async () => {
    for (const [self, other] of [
      ['b', 'c'],
      ['c', 'b'],
    ] as const) {
      const peer = (await host(self).wgPeers()).get(await host(other).publicKey());
      expect(peer?.handshake, `${self} has a session with ${other}`).toBeGreaterThan(0);
      expect(peer!.endpoint.split(':')[0], `${self}'s endpoint for ${other}`).toBe(
        topo.node(other).ipv4,
      );
    }
  });

  it('D, behind the symmetric NAT, reaches A, B and C through the relay R', async () => {
    const rKey = await host('r').publicKey();
    const dPeers = await host('d').wgPeers();
    for (const name of ['a', 'b', 'c']) {
      expect(dPeers.get(rKey)?.allowedIps, `D routes ${name} via R`).toContain(
        `${address.get(name)}/32`,
      );
      expect(await pathOf('d', name)).toBe('relay');
      expect(await pathOf(name, 'd')).toBe('relay');
      await reaches('d', address.get(name)!);
    }
    expect(dPeers.get(rKey)?.endpoint.split(':')[0]).toBe(topo.node('r').ipv4);
    expect(await pathOf('a', 'b')).toBe('direct');
    expect(await pathOf('b', 'c')).toBe('direct');
  });

  it('E, with only the generated wg-quick file, reaches A, B and C through P', async () => {
    const conf = (await hub.http('GET', `/api/v1/extclients/${await makePhone()}/config`)).text;
    expect(conf).toContain(`Endpoint = ${topo.node('p').ipv4}:`);
    await phoneUp(conf);
    for (const name of ['a', 'b', 'c']) await reaches('e', address.get(name)!);
    // E's only peer is P, so everything it reaches went through P.
    const eShow = await topo.check('e', 'wg', ['show', phoneIface, 'peers']);
    expect(eShow.trim()).toBe(await host('p').publicKey());
    const pSide = (await host('p').wgPeers()).get(phoneKey);
    expect(pSide?.handshake).toBeGreaterThan(0);
    expect(pSide?.endpoint.split(':')[0]).toBe(topo.publicAddress('e').ipv4);
  });

  it('direct, LAN, relayed, ingress and egress traffic keeps flowing while the coordinator restarts', async () => {
    await restartUnderTraffic([
      ['a', address.get('b')!],
      ['b', address.get('c')!],
      ['d', address.get('a')!],
      ['e', address.get('b')!],
      ['a', topo.node('printer').ipv4],
      ['d', address.get('p')!],
    ]);
  });

  it('every node and E reach the office printer behind C with no manual route', async () => {
    const printer = topo.node('printer').ipv4;
    for (const name of ['a', 'b', 'c', 'd', 'p', 'r', 'e']) await reaches(name, printer);
    // The route each node uses came from the agent (proto 87 on its WireGuard interface) or,
    // on E, from the wg-quick file's AllowedIPs.
    for (const name of ['a', 'b', 'd', 'p', 'r']) {
      const route = await topo.check(name, 'ip', ['route', 'show', OFFICE]);
      expect(route, name).toContain(`dev ${host(name).iface}`);
      expect(route, name).toContain('proto 87');
    }
    expect(await topo.check('e', 'ip', ['route', 'show', OFFICE])).toContain(`dev ${phoneIface}`);
  });

  it('removes every namespace, process and socket it made', async () => {
    const namespaces = topo.nodes.map((n) => topo.ns(n));
    const ifaces = [...[...hosts.values()].map((h) => h.iface), phoneIface];
    const daemons = [...hosts.values()].map((h) => h.daemon);
    await topo.destroy();
    cleanupAll();
    const left = readdirSync(NETNS_DIR);
    for (const ns of namespaces) expect(left).not.toContain(ns);
    // Killed with their namespaces: each one's exit is reported soon after.
    for (const d of [...daemons, hub.proc])
      if (d !== null) await pollUntil(`pid ${d.pid} to exit`, () => !d.running, 5_000, 50);
    for (const iface of ifaces) expect(existsSync(join(SOCKET_DIR, `${iface}.sock`))).toBe(false);
    for (const h of hosts.values()) expect(existsSync(h.stateDir)).toBe(false);
  });
});

/** Creates the external client "phone" behind P; resolves with its id. */
async function makePhone(): Promise<string> {
  const client = (await hub.admin('POST', `/api/v1/networks/${NETWORK}/extclients`, {
    name: 'phone',
    ingressNodeId: await nodeId('p'),
    // E brings the file up with wg-quick, whose DNS step needs resolvconf (not in the namespaces).
    meshDns: false,
  })) as { id: string; publicKey: string };
  phoneKey = client.publicKey;
  return client.id;
}

/** `wg-quick up` of the generated file on E, with wireguard-go as the userspace implementation. */
async function phoneUp(conf: string): Promise<void> {
  phoneIface = `wme${uniqueId()}`;
  const path = tempFile(conf, `${phoneIface}.conf`);
  await topo.check('e', 'wg-quick', ['up', path], {
    env: { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' },
  });
}

/** `wiremesh status --json` on `self`: the path(s) it shows for `other` ('direct', 'relay'). */
async function pathOf(self: string, other: string): Promise<string> {
  const r = await host(self).cli(['status', '--json', '--state-dir', host(self).stateDir]);
  const views = JSON.parse(r.stdout) as Array<{
    peers: Array<{ publicKey: string; path: string }>;
  }>;
  const key = await host(other).publicKey();
  const paths = new Set(views[0]!.peers.filter((p) => p.publicKey === key).map((p) => p.path));
  return [...paths].sort().join(',');
}

/**
 * Pings along `flows` ([from node, to address]) while the coordinator stops and starts again;
 * expects at most RESTART_LOSS_ALLOWED lost per flow, then every agent back on the coordinator.
 */
async function restartUnderTraffic(flows: Array<[string, string]>): Promise<void> {
  for (const [from, to] of flows) await reaches(from, to);
  const running = flows.map(([from, to]) =>
    run(
      topo.ns(from),
      [
        'ping',
        '-n',
        '-q',
        '-c',
        String(RESTART_PINGS),
        '-i',
        String(RESTART_PING_INTERVAL_S),
        '-W',
        '1',
        to,
      ],
      { timeoutMs: 60_000 },
    ),
  );
  await hub.stop();
  await new Promise((r) => setTimeout(r, RESTART_DOWN_MS));
  await hub.start();
  const results = await Promise.all(running);
  flows.forEach(([from, to], i) => {
    const received = Number(/(\d+) received/.exec(results[i]!.stdout)?.[1] ?? 0);
    expect(received, `${from} -> ${to}: ${results[i]!.stdout}`).toBeGreaterThanOrEqual(
      RESTART_PINGS - RESTART_LOSS_ALLOWED,
    );
  });
  // Every agent finds the coordinator again by itself and reports to it.
  const back = Date.now();
  await pollUntil(
    'every agent to report to the restarted coordinator',
    async () => {
      const nodes = (await hub.admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as Array<{
        lastSeenAt: number | null;
      }>;
      return nodes.every((n) => (n.lastSeenAt ?? 0) >= back);
    },
    CONVERGE_MS,
    500,
  );
}
