// NAT traversal by the mesh agent (issue 7) on harness/topology.ts: the coordinator and a relay
// node on the "internet"; A behind one home router, B and C behind another (both homes number
// their LAN 192.168.1.0/24, so only public endpoints can tell them apart); D behind a symmetric
// NAT. Agents run the userspace device in-process and learn their public endpoints from the
// coordinator's reflector. A<->B go direct through both NATs, B<->C over their LAN, D reaches
// the others through the relay, chosen by the coordinator when no direct handshake came, and
// leaves it for a direct path once D moves next to A.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_JS, COORDINATOR_JS, buildAll } from './harness/agent-mesh.js';
import { cleanupAll, onCleanup, pollUntil, uniqueId } from './harness/netns.js';
import { buildTopology, type Topology, type TopologyProcess } from './harness/topology.js';

const NETWORK = 'nat';
const HTTP_PORT = 8080;
const REFLECT_PORT = 3478;
const CONVERGE_MS = 20_000;
/** Relay fallback: the coordinator's 15 s wait plus reports, push and the first handshakes. */
const RELAY_BOUND_MS = 40_000;
const SOCKET_DIR = '/var/run/wireguard';
/** Prints `<status>\n<body>` of one fetch (argv: url, JSON of the fetch options). */
const FETCH_SCRIPT = `const [url, init] = process.argv.slice(-2);
fetch(url, { ...JSON.parse(init), signal: AbortSignal.timeout(5000) })
  .then(async (r) => process.stdout.write(r.status + '\\n' + (await r.text())))
  .catch((e) => { process.stderr.write(String(e.cause ?? e)); process.exit(1); });`;

interface Agent {
  id: string;
  name: string;
  host: string;
  iface: string;
  stateDir: string;
  daemon: TopologyProcess | null;
  address: string;
  publicKey: string;
}

interface StatusPeer {
  name: string;
  publicKey: string;
  endpoint: string | null;
  latestHandshakeMs: number | null;
  path: 'direct' | 'relay';
  via: string | null;
}

let topo: Topology;
let server = '';
let token = '';
let key = '';
const agents: Record<string, Agent> = {};
const timings: string[] = [];

function tempDir(tag: string): string {
  const dir = mkdtempSync(joinPath(tmpdir(), `${tag}-`));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function admin(method: string, path: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const init = JSON.stringify({
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const r = await topo.exec('hub', process.execPath, [
    '-e',
    FETCH_SCRIPT,
    `${server}${path}`,
    init,
  ]);
  if (r.status !== 0) throw new Error(`${method} ${path}: ${r.stderr.trim()}`);
  const cut = r.stdout.indexOf('\n');
  const status = Number(r.stdout.slice(0, cut));
  const text = r.stdout.slice(cut + 1);
  if (status < 200 || status >= 300) throw new Error(`${method} ${path}: HTTP ${status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

function wiremesh(a: Agent, args: readonly string[]) {
  return topo.exec(a.host, process.execPath, [AGENT_JS, ...args, '--state-dir', a.stateDir], {
    timeoutMs: 60_000,
  });
}

/** Joins `name` from `host` (one-shot, detached device), then starts its daemon (in-process device). */
async function joinAgent(name: string, host: string): Promise<Agent> {
  const a: Agent = {
    id: '',
    name,
    host,
    iface: `wm${uniqueId()}`,
    stateDir: tempDir(`wmnat-${name}`),
    daemon: null,
    address: '',
    publicKey: '',
  };
  onCleanup(() => rmSync(joinPath(SOCKET_DIR, `${a.iface}.sock`), { force: true }));
  const r = await wiremesh(a, [
    'join',
    '--server',
    server,
    '--network',
    NETWORK,
    '--key',
    key,
    '--name',
    name,
    '--daemon',
    'off',
    '--backend',
    'userspace',
    '--interface',
    a.iface,
  ]);
  expect(r.status, `${name} join: ${r.stderr}`).toBe(0);
  a.daemon = topo.spawn(host, process.execPath, [AGENT_JS, 'daemon', '--state-dir', a.stateDir], {
    env: { ...process.env, WIREMESH_LOG_LEVEL: 'debug', WIREMESH_LOG_TIME: '1' },
    label: `wiremesh daemon ${name}`,
  });
  const nodes = (await admin('GET', `/api/v1/networks/${NETWORK}/nodes`)) as {
    id: string;
    name: string;
    addressV4: string;
    publicKey: string;
    state: string;
  }[];
  const n = nodes.find((x) => x.name === name && x.state === 'approved');
  if (n === undefined) throw new Error(`${name} is not approved`);
  a.id = n.id;
  a.address = n.addressV4;
  a.publicKey = n.publicKey;
  agents[name] = a;
  return a;
}

async function ping(from: Agent, to: Agent, waitS = 1): Promise<boolean> {
  const r = await topo.exec(
    from.host,
    'ping',
    ['-c', '1', '-W', String(waitS), '-n', '-q', to.address],
    {
      timeoutMs: 5_000,
    },
  );
  return r.status === 0;
}

/** Waits until `from` pings `to`; resolves with the milliseconds since `t0`. */
async function waitPing(
  from: Agent,
  to: Agent,
  t0: number,
  timeoutMs = CONVERGE_MS,
): Promise<number> {
  await pollUntil(`${from.name} -> ${to.name}`, () => ping(from, to, 0.25), timeoutMs, 20);
  return performance.now() - t0;
}

/** `wg show IFACE dump` of an agent: public key -> endpoint and allowed IPs. */
async function wgPeers(a: Agent): Promise<Map<string, { endpoint: string; allowedIps: string }>> {
  const out = await topo.check(a.host, 'wg', ['show', a.iface, 'dump']);
  const peers = new Map<string, { endpoint: string; allowedIps: string }>();
  for (const line of out.trim().split('\n').slice(1)) {
    const f = line.split('\t');
    peers.set(f[0] ?? '', { endpoint: f[2] ?? '', allowedIps: f[3] ?? '' });
  }
  return peers;
}

async function status(a: Agent): Promise<StatusPeer[]> {
  const r = await wiremesh(a, ['status', '--json']);
  expect(r.status, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { peers: StatusPeer[] }[])[0]!.peers;
}

function failureLogs(): string {
  return `${topo.describe()}\n${topo.logs()}`;
}

beforeAll(async () => {
  buildAll();
  topo = await buildTopology({
    prefix: 'wmnat',
    routers: [
      { name: 'rA', nat: 'home' },
      { name: 'rB', nat: 'home' },
      { name: 'rD', nat: 'symmetric' },
    ],
    lans: [
      { name: 'lanA', router: 'rA', ipv4: '192.168.1.0/24' },
      { name: 'lanB', router: 'rB', ipv4: '192.168.1.0/24' },
      { name: 'lanD', router: 'rD', ipv4: '10.0.5.0/24' },
    ],
    hosts: [
      { name: 'hub', lan: 'internet' },
      { name: 'relay', lan: 'internet' },
      { name: 'a', lan: 'lanA' },
      { name: 'b', lan: 'lanB' },
      { name: 'c', lan: 'lanB' },
      { name: 'd', lan: 'lanD' },
    ],
  });
  onCleanup(() => void topo.destroy());
  server = `http://${topo.node('hub').ipv4}:${HTTP_PORT}`;
  const dataDir = tempDir('wmnat-coord');
  const tokenFile = joinPath(dataDir, 'admin-token');
  const coordinator = topo.spawn(
    'hub',
    process.execPath,
    [
      COORDINATOR_JS,
      'serve',
      '--listen',
      `0.0.0.0:${HTTP_PORT}`,
      // Plain HTTP inside the test's own namespaces (test/tls.test.ts covers TLS).
      '--insecure-http',
      '--reflect-port',
      String(REFLECT_PORT),
      '--data-dir',
      dataDir,
      '--admin-token-file',
      tokenFile,
      '--log-level',
      'info',
    ],
    { label: 'coordinator' },
  );
  await pollUntil(
    'the coordinator',
    async () => {
      if (!coordinator.running) throw new Error(`coordinator exited: ${coordinator.output()}`);
      const r = await topo.exec('hub', 'cat', [tokenFile]);
      if (r.status !== 0) return false;
      token = r.stdout.trim();
      return (await admin('GET', '/api/v1/networks').catch(() => null)) !== null;
    },
    20_000,
  );
  await admin('POST', '/api/v1/networks', { name: NETWORK, ipv4Cidr: '10.77.0.0/16' });
  key = (await admin('POST', `/api/v1/networks/${NETWORK}/keys`, { autoApprove: true }))
    .key as string;
  // The relay: a node with a public address that an admin marks relay-capable.
  const r = await joinAgent('r', 'relay');
  await admin('PUT', `/api/v1/nodes/${r.id}/relay`, { relayedNodeIds: [] });
  await joinAgent('a', 'a');
});

afterAll(async () => {
  if (timings.length > 0) console.log(`agent-nat timings:\n  ${timings.join('\n  ')}`);
  // WMNAT_DEBUG=1 prints every daemon's log (with timestamps) even when the tests pass.
  if (process.env['WMNAT_DEBUG'] === '1' && topo !== undefined) console.log(failureLogs());
  await topo?.destroy();
  cleanupAll();
});

describe('wiremesh agents behind NATs', () => {
  it('A and B behind two home NATs reach each other directly, through the mapped public ports', async () => {
    const a = agents.a!;
    const t0 = performance.now();
    const b = await joinAgent('b', 'b');
    try {
      const took = await waitPing(a, b, t0);
      timings.push(`join B -> first ping A->B: ${Math.round(took)} ms`);
      timings.push(`join B -> first ping B->A: ${Math.round(await waitPing(b, a, t0))} ms`);
      // The public endpoints, learned from the reflector, are the routers' WAN addresses.
      const rA = topo.node('rA').ipv4;
      const rB = topo.node('rB').ipv4;
      const direct = async () => {
        const fromA = (await wgPeers(a)).get(b.publicKey)?.endpoint ?? '';
        const fromB = (await wgPeers(b)).get(a.publicKey)?.endpoint ?? '';
        return fromA.startsWith(`${rB}:`) && fromB.startsWith(`${rA}:`) ? [fromA, fromB] : false;
      };
      const [aSeesB, bSeesA] = await pollUntil('endpoints through the NATs', direct, CONVERGE_MS);
      timings.push(`A sees B at ${aSeesB}, B sees A at ${bSeesA}`);
      // The ping went straight between the routers, not through the relay.
      const aPeers = await wgPeers(a);
      expect(aPeers.get(b.publicKey)?.allowedIps).toContain(`${b.address}/32`);
      expect(aPeers.get(agents.r!.publicKey)?.allowedIps).not.toContain(b.address);
      const sA = (await status(a)).find((p) => p.name === 'b');
      expect(sA).toMatchObject({ path: 'direct', via: null });
      expect(sA?.latestHandshakeMs).toBeGreaterThan(0);
      // Both conntrack tables hold the flow between the two public ports (hole punched).
      const ct = await topo.conntrack('rA');
      expect(
        ct.some((e) => e.original.dst === rB && e.reply.src === rB),
        JSON.stringify(ct.map((e) => e.raw)),
      ).toBe(true);
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });

  it('B and C behind the same home router use their LAN addresses', async () => {
    const b = agents.b!;
    const t0 = performance.now();
    const c = await joinAgent('c', 'c');
    try {
      timings.push(`join C -> first ping B->C: ${Math.round(await waitPing(b, c, t0))} ms`);
      const lanB = topo.node('b').ipv4;
      const lanC = topo.node('c').ipv4;
      const lan = async () => {
        const fromB = (await wgPeers(b)).get(c.publicKey)?.endpoint ?? '';
        const fromC = (await wgPeers(c)).get(b.publicKey)?.endpoint ?? '';
        return fromB.startsWith(`${lanC}:`) && fromC.startsWith(`${lanB}:`)
          ? [fromB, fromC]
          : false;
      };
      const [bSeesC, cSeesB] = await pollUntil('LAN endpoints', lan, CONVERGE_MS);
      timings.push(`B sees C at ${bSeesC}, C sees B at ${cSeesB}`);
      // C reaches A directly too, from behind the same router as B.
      await waitPing(c, agents.a!, t0);
      expect((await status(c)).find((p) => p.name === 'a')?.path).toBe('direct');
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });

  it('D behind a symmetric NAT reaches A through the relay, and status says so', async () => {
    const a = agents.a!;
    const r = agents.r!;
    const t0 = performance.now();
    const d = await joinAgent('d', 'd');
    try {
      // D reaches the public relay directly at once (the relay answers D's new mapping).
      timings.push(`join D -> first ping D->relay: ${Math.round(await waitPing(d, r, t0))} ms`);
      const relayed = async () => {
        const s = (await status(a)).find((p) => p.name === 'd');
        return s?.path === 'relay' ? s : false;
      };
      const viaRelay = await pollUntil(
        'A to route D through the relay',
        relayed,
        RELAY_BOUND_MS,
        250,
      );
      timings.push(`join D -> A routes D via the relay: ${Math.round(performance.now() - t0)} ms`);
      expect(viaRelay.via).toBe('r');
      timings.push(
        `join D -> first ping A->D (relayed): ${Math.round(await waitPing(a, d, t0))} ms`,
      );
      await waitPing(d, a, t0);
      // A carries D's address on the relay's entry; D's own entry stays, without allowed IPs,
      // still trying the direct path.
      const aPeers = await wgPeers(a);
      expect(aPeers.get(r.publicKey)?.allowedIps).toContain(`${d.address}/32`);
      expect(aPeers.get(d.publicKey)?.allowedIps).toBe('(none)');
      expect((await status(d)).find((p) => p.name === 'a')).toMatchObject({
        path: 'relay',
        via: 'r',
      });
      // The relay forwards between its peers with ICMP redirects off (NAT.md).
      const sysctl = (key: string) => topo.check('relay', 'sysctl', ['-n', key]);
      expect((await sysctl('net.ipv4.ip_forward')).trim()).toBe('1');
      expect((await sysctl('net.ipv4.conf.all.send_redirects')).trim()).toBe('0');
      expect((await sysctl(`net.ipv4.conf.${r.iface}.send_redirects`)).trim()).toBe('0');
      const text = await wiremesh(a, ['status']);
      expect(text.stdout).toMatch(/\bd\s+.*relay via r/);
      // A and B stay direct.
      expect((await status(a)).find((p) => p.name === 'b')?.path).toBe('direct');
      expect(await ping(a, agents.b!)).toBe(true);
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });

  it('D moves behind the same router as A: the pair leaves the relay for their LAN addresses', async () => {
    const a = agents.a!;
    const d = agents.d!;
    const t0 = performance.now();
    const moved = await topo.moveHost('d', 'lanA');
    try {
      // D notices its new addresses at its next report, probes its new public endpoint (A's
      // router's), both pick LAN endpoints, the direct handshake is reported, the relay goes.
      const direct = async () => {
        const s = (await status(a)).find((p) => p.name === 'd');
        return s?.path === 'direct' ? s : false;
      };
      const back = await pollUntil('A and D to go direct again', direct, RELAY_BOUND_MS, 250);
      timings.push(`D moved next to A -> direct again: ${Math.round(performance.now() - t0)} ms`);
      expect(back.endpoint).toBe(`${moved.ipv4}:51820`);
      await waitPing(a, d, t0);
      await waitPing(d, a, t0);
      const aPeers = await wgPeers(a);
      expect(aPeers.get(d.publicKey)?.allowedIps).toContain(`${d.address}/32`);
      expect(aPeers.get(agents.r!.publicKey)?.allowedIps).not.toContain(d.address);
      expect((await status(d)).find((p) => p.name === 'a')).toMatchObject({
        path: 'direct',
        endpoint: `${topo.node('a').ipv4}:51820`,
      });
    } catch (e) {
      console.log(failureLogs());
      throw e;
    }
  });
});
