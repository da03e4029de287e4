// The wiremesh demo (issue 7): on this one machine, in network namespaces, a coordinator with its
// web UI and a small mesh behind NATs: two homes, an egress LAN, a public ingress gateway and a
// phone-like stock WireGuard client. Run as root: `bash scripts/demo.sh [--duration N] [--port N]`.
import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import {
  AGENT_JS,
  AgentHost,
  COORDINATOR_JS,
  Hub,
  buildAll,
  tempDir,
} from '../../test/harness/agent-mesh.js';
import { selfSignedCertificate, type SelfSigned } from '../../test/harness/certs.js';
import { check, cleanupAll, run, uniqueId } from '../../test/harness/netns.js';
import { buildTopology, type Topology, type TopologySpec } from '../../test/harness/topology.js';
import { exposeOnLoopback } from './host-port.js';
import { measure, render, score, type Matrix, type Member } from './matrix.js';

const USAGE = `usage: bash scripts/demo.sh [--duration SECONDS] [--port PORT]

Builds, in network namespaces on this machine (needs root), a wiremesh coordinator and a mesh
behind NATs, shows it working, and removes everything on Ctrl-C, or SECONDS after the mesh is up.
  --duration N   stop by itself N seconds after the mesh is up (default: run until Ctrl-C)
  --port N       the web UI's port on 127.0.0.1 (default 8080; a free one if that is taken)`;

const NETWORK = 'demo';
const NETWORK_CIDR = '10.8.0.0/16';
const EGRESS_LAN = '192.168.100.0/24';
const REFLECT_PORT = 3478;
const DEFAULT_UI_PORT = 8080;
/** How long the mesh may take to answer every ping before the demo says what is missing. */
const CONVERGE_MS = 90_000;
const CONVERGE_POLL_MS = 2_000;
/** How often the live view refreshes. */
const REFRESH_MS = 20_000;
const EXIT_SIGNAL = 130;
/** The node whose `wiremesh status` the demo shows: peers behind a NAT, on its LAN, relayed, public. */
const SHOWN_NODE = 'b';

/** The network of the story (DESIGN.md), with one router of each NAT kind topology.ts has. */
const SPEC: TopologySpec = {
  prefix: 'wmdemo',
  routers: [
    { name: 'home-a', nat: 'home' },
    { name: 'home-b', nat: 'home' },
    { name: 'mobile', nat: 'masquerade' },
    // A hotel's network that maps every destination to a new port: no hole punching through it.
    { name: 'hotel', nat: 'symmetric' },
    // Node c is a home server with a second network card on the home's office LAN.
    { name: 'c', nat: 'none', upstream: 'lan-b' },
  ],
  lans: [
    { name: 'lan-a', router: 'home-a', ipv4: '192.168.1.0/24' },
    { name: 'lan-b', router: 'home-b', ipv4: '192.168.2.0/24' },
    { name: 'carrier', router: 'mobile', ipv4: '100.64.0.0/24' },
    { name: 'guests', router: 'hotel', ipv4: '172.16.5.0/24' },
    { name: 'office', router: 'c', ipv4: EGRESS_LAN },
  ],
  hosts: [
    { name: 'a', lan: 'lan-a' },
    { name: 'b', lan: 'lan-b' },
    { name: 'd', lan: 'guests' },
    { name: 'p', lan: 'internet' },
    { name: 'e', lan: 'carrier' },
    { name: 'printer', lan: 'office' },
  ],
};
const MESH_NODES = ['a', 'b', 'c', 'd', 'p'] as const;
const REQUIRED_COMMANDS = ['ip', 'wg', 'wg-quick', 'wireguard-go', 'iptables', 'ping'];

const t0 = performance.now();
const elapsed = (): string => `${((performance.now() - t0) / 1000).toFixed(1)}s`.padStart(6);
const say = (text: string): void => console.log(`[${elapsed()}] ${text}`);
const indent = (text: string): string =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `        ${l}`)
    .join('\n');

interface Options {
  durationS: number | null;
  port: number;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      port: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (v: string | undefined, flag: string): number | null => {
    if (v === undefined) return null;
    if (!/^\d+$/.test(v)) throw new RangeError(`--${flag} takes a whole number, not ${v}`);
    return Number(v);
  };
  return {
    durationS: int(values.duration, 'duration'),
    port: int(values.port, 'port') ?? DEFAULT_UI_PORT,
  };
}

function preflight(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      'the demo makes network namespaces: run it as root (sudo bash scripts/demo.sh)',
    );
  }
  const missing = REQUIRED_COMMANDS.filter(
    (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status !== 0,
  );
  if (missing.length > 0)
    throw new Error(
      `missing commands: ${missing.join(', ')} (bash scripts/install.sh installs them)`,
    );
}

/** A self-signed certificate (openssl) for the coordinator's address and loopback. */
function coordinatorCertificate(address: string): SelfSigned {
  return selfSignedCertificate(tempDir('wiremesh-demo-tls'), 'coordinator', {
    subject: 'wiremesh demo coordinator',
    ips: [address, '127.0.0.1'],
    days: 30,
  });
}

/** Shell wrappers so that the printed commands read `wiremesh ...` and `wiremesh-coordinator ...`. */
function wrappers(): string {
  const dir = tempDir('wiremesh-demo-bin');
  for (const [name, js] of [
    ['wiremesh', AGENT_JS],
    ['wiremesh-coordinator', COORDINATOR_JS],
  ] as const) {
    const path = join(dir, name);
    writeFileSync(
      path,
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(js)} "$@"\n`,
    );
    chmodSync(path, 0o755);
  }
  return dir;
}

/** The admin CLI, from the host through the forwarded port, echoed as a newcomer would type it. */
class AdminCli {
  constructor(
    private readonly server: string,
    private readonly token: string,
    /** The coordinator's self-signed certificate, trusted by the CLI as a CA. */
    private readonly ca: string,
  ) {}

  /** Runs `wiremesh-coordinator ARGS`; prints the command and (unless quiet) its output. */
  async run(args: string[], show = true): Promise<string> {
    if (show) say(`$ wiremesh-coordinator ${args.join(' ')}`);
    const r = await run(null, [process.execPath, COORDINATOR_JS, ...args], {
      env: {
        ...process.env,
        WIREMESH_SERVER: this.server,
        WIREMESH_ADMIN_TOKEN: this.token,
        NODE_EXTRA_CA_CERTS: this.ca,
      },
    });
    if (r.status !== 0)
      throw new Error(`wiremesh-coordinator ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
    if (show && r.stdout.trim() !== '') console.log(indent(r.stdout));
    return r.stdout;
  }

  /** Runs it with --json, silently, and parses the answer. */
  async json<T>(args: string[]): Promise<T> {
    return JSON.parse(await this.run([...args, '--json'], false)) as T;
  }
}

interface NodeRow {
  id: string;
  name: string;
  addressV4: string;
  state: string;
}

/** The demo's network as a few lines of text, with the addresses the topology gave out. */
function layout(topo: Topology): string {
  const at = (name: string): string => topo.node(name).ipv4;
  return [
    `internet 203.0.113.0/24: the coordinator (${at('internet')}), p (${at('p')}, public: ingress gateway and relay)`,
    `  home-a  (home NAT, ${at('home-a')})       LAN 192.168.1.0/24: a`,
    `  home-b  (home NAT, ${at('home-b')})       LAN 192.168.2.0/24: b, c; c routes the office ${EGRESS_LAN} (printer ${at('printer')})`,
    `  hotel   (symmetric NAT, ${at('hotel')})  LAN 172.16.5.0/24: d`,
    `  mobile  (carrier NAT, ${at('mobile')})    LAN 100.64.0.0/24: e, a phone: wireguard-go and a wg-quick file, no agent`,
  ].join('\n');
}

/** Brings the phone up from the generated wg-quick file only, as `wg-quick up` does on a laptop. */
async function phoneUp(topo: Topology, config: string): Promise<string> {
  const iface = `wmp${uniqueId()}`;
  const path = join(tempDir('wiremesh-demo-phone'), `${iface}.conf`);
  writeFileSync(path, config, { mode: 0o600 });
  const out = await topo.check('e', 'wg-quick', ['up', path], {
    env: { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' },
  });
  void out;
  return iface;
}

async function main(): Promise<number> {
  const opts = options();
  preflight();
  console.log(
    'wiremesh demo: a coordinator and a mesh behind NATs, in network namespaces on this machine',
  );
  say('building the agent and the coordinator (tsc -b)');
  buildAll();
  const bin = wrappers();

  say(
    'making namespaces: an internet, two homes behind NAT, a mobile carrier, a hotel (symmetric NAT), an office LAN',
  );
  const topo = await buildTopology(SPEC);
  console.log(indent(layout(topo)));
  const internet = topo.node('internet');
  const tls = coordinatorCertificate(internet.ipv4);
  say(
    `a self-signed TLS certificate for the coordinator (${internet.ipv4}, 127.0.0.1): SHA-256 ${tls.fingerprint}`,
  );
  const hub = new Hub({
    ns: topo.ns('internet'),
    address: internet.ipv4,
    reflectPort: REFLECT_PORT,
    tls,
  });
  await hub.start();
  const ui = await exposeOnLoopback(
    topo.ns('internet'),
    Number(new URL(hub.url).port),
    opts.port,
    true,
  );
  say(`coordinator up in the internet namespace at ${hub.url} (reflect port ${REFLECT_PORT}/udp)`);
  say(`web UI on this host: ${ui.url} (forwarded through a veth into that namespace)`);
  const admin = new AdminCli(ui.url, hub.token, tls.cert);

  await admin.run(['network', 'create', NETWORK, '--cidr', NETWORK_CIDR]);
  // The key carries the certificate's fingerprint: each agent pins the self-signed certificate.
  const key = (
    await admin.json<{ key: string; pinnedKey: string }>([
      'key',
      'create',
      '--network',
      NETWORK,
      '--name',
      'demo-key',
      '--uses',
      String(MESH_NODES.length),
    ])
  ).pinnedKey;
  say(
    `$ wiremesh-coordinator key create --network ${NETWORK} --name demo-key --uses ${MESH_NODES.length}`,
  );
  console.log(indent(`enrollment key: ${key}`));

  // Each node joins with one command, then runs the agent (the demo starts it in the foreground
  // of its namespace instead of as a systemd service).
  const hosts = new Map<string, AgentHost>();
  for (const name of MESH_NODES)
    hosts.set(name, new AgentHost(hub, name, { ns: topo.ns(name), lan: topo.node(name).ipv4 }));
  say(
    `on each of ${MESH_NODES.join(', ')}: wiremesh join --server ${hub.url} --network ${NETWORK} --key ${key} --name NAME`,
  );
  await Promise.all(
    [...hosts.values()].map(async (h) => {
      const r = await h.join(NETWORK, ['--key', key]);
      if (r.status !== 0) throw new Error(`join on ${h.name} failed: ${r.stderr.trim()}`);
      const waiting = r.stdout.split('\n').find((l) => l.includes('approve')) ?? r.stdout.trim();
      console.log(indent(`${h.name}: ${waiting.trim()}`));
      h.startDaemon();
    }),
  );

  await admin.run(['node', 'list', '--network', NETWORK, '--state', 'pending']);
  const pending = await admin.json<NodeRow[]>(['node', 'list', '--network', NETWORK]);
  const id = (name: string): string => {
    const n = pending.find((x) => x.name === name);
    if (n === undefined) throw new Error(`node ${name} did not register`);
    return n.id;
  };
  for (const name of MESH_NODES) {
    say(`$ wiremesh-coordinator node approve ${id(name)}   # ${name}`);
    await admin.run(['node', 'approve', id(name)], false);
  }

  const office = await topo.check('c', 'ip', ['-j', '-4', 'address', 'show', 'to', EGRESS_LAN]);
  const officeIface = (JSON.parse(office) as Array<{ ifname: string }>)[0]?.ifname;
  if (officeIface === undefined) throw new Error(`node c has no address in ${EGRESS_LAN}`);
  say(
    `$ wiremesh-coordinator gateway egress ${id('c')} --ranges ${EGRESS_LAN} --interface ${officeIface}   # c`,
  );
  await admin.run(
    ['gateway', 'egress', id('c'), '--ranges', EGRESS_LAN, '--interface', officeIface],
    false,
  );
  say(`$ wiremesh-coordinator gateway ingress ${id('p')}   # p`);
  await admin.run(['gateway', 'ingress', id('p')], false);
  // p may relay pairs that find no direct path (d, behind the hotel's symmetric NAT).
  say(`$ wiremesh-coordinator gateway relay ${id('p')}   # p`);
  await admin.run(['gateway', 'relay', id('p')], false);
  const phone = await admin.json<{ id: string }>([
    'extclient',
    'create',
    '--network',
    NETWORK,
    '--name',
    'phone',
    '--ingress',
    id('p'),
    // The demo's phone is Linux wg-quick without resolvconf, which its DNS step needs.
    '--no-mesh-dns',
  ]);
  say(
    `$ wiremesh-coordinator extclient create --network ${NETWORK} --name phone --ingress ${id('p')} --no-mesh-dns`,
  );
  const config = await admin.run(['extclient', 'config', phone.id], false);
  say(
    `$ wiremesh-coordinator extclient config ${phone.id} > phone.conf   # what the phone imports`,
  );
  console.log(indent(config.replace(/^PrivateKey = .*$/m, 'PrivateKey = (hidden)')));
  const phoneIface = await phoneUp(topo, config);
  say(
    `e (the phone): WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go wg-quick up ${phoneIface}.conf`,
  );

  const nodes = await admin.json<NodeRow[]>(['node', 'list', '--network', NETWORK]);
  const clients = await admin.json<Array<{ name: string; addressV4: string }>>([
    'extclient',
    'list',
    '--network',
    NETWORK,
  ]);
  const members: Member[] = [
    ...MESH_NODES.map((name) => ({
      name,
      ns: topo.ns(name),
      address: nodes.find((n) => n.name === name)!.addressV4,
    })),
    { name: 'e', ns: topo.ns('e'), address: clients.find((c) => c.name === 'phone')!.addressV4 },
  ];
  const targets: Member[] = [
    ...members,
    { name: 'printer', ns: undefined, address: topo.node('printer').ipv4 },
  ];

  say('waiting until every node, and the phone, pings every other and the office printer');
  let matrix: Matrix = new Map();
  const deadline = performance.now() + CONVERGE_MS;
  let shownScore = -1;
  for (;;) {
    matrix = await measure(members, targets);
    const s = score(matrix);
    if (s.ok === s.total || performance.now() > deadline) break;
    if (s.ok !== shownScore) say(`${s.ok}/${s.total} pairs answer so far`);
    shownScore = s.ok;
    await new Promise((r) => setTimeout(r, CONVERGE_POLL_MS));
  }
  await admin.run(['node', 'list', '--network', NETWORK]);
  const first = score(matrix);
  say(`ping matrix (rows ping columns; printer = ${topo.node('printer').ipv4} behind c's egress):`);
  console.log(render(matrix, targets));
  if (first.ok < first.total)
    say(`NOT reachable after ${CONVERGE_MS / 1000} s: ${first.failed.join(', ')}`);

  const shown = hosts.get(SHOWN_NODE)!;
  const statusCmd = `ip netns exec ${shown.ns} ${bin}/wiremesh status --state-dir ${shown.stateDir}`;
  const showStatus = async (): Promise<void> => {
    say(`$ ${statusCmd}`);
    console.log(indent((await shown.cli(['status', '--state-dir', shown.stateDir])).stdout));
  };
  await showStatus();

  const rule = '-'.repeat(100);
  console.log(`\n${rule}`);
  console.log('Where to look (as root, from another terminal, while the demo runs):');
  console.log(`  web UI            ${ui.url}   (sign in with the admin token)`);
  console.log(`  admin token       ${hub.token}`);
  console.log(
    `  coordinator CLI   export WIREMESH_SERVER=${ui.url} WIREMESH_ADMIN_TOKEN=${hub.token} NODE_EXTRA_CA_CERTS=${tls.cert}`,
  );
  console.log(
    `  TLS certificate   ${tls.cert} (SHA-256 ${tls.fingerprint}; trust it in the browser)`,
  );
  console.log(`                    ${bin}/wiremesh-coordinator node list --network ${NETWORK}`);
  console.log(`  a node's status   ${statusCmd}`);
  console.log(`  its WireGuard     ip netns exec ${shown.ns} wg show`);
  console.log(
    `  the phone         ip netns exec ${topo.ns('e')} ping ${topo.node('printer').ipv4}`,
  );
  console.log(`  phone's QR code   ${bin}/wiremesh-coordinator extclient qr ${phone.id}`);
  console.log('  namespaces        (ip netns exec NS ... runs a command inside one)');
  for (const name of [
    ...MESH_NODES,
    'e',
    'printer',
    'home-a',
    'home-b',
    'mobile',
    'hotel',
    'internet',
  ]) {
    const n = topo.node(name);
    const extra = hosts.has(name) ? `  state ${hosts.get(name)!.stateDir}` : '';
    console.log(`    ${name.padEnd(9)} ${n.ns.padEnd(26)} ${n.ipv4.padEnd(15)}${extra}`);
  }
  console.log(
    opts.durationS === null
      ? 'Ctrl-C removes everything (namespaces, processes, sockets, the veth).'
      : `Everything is removed in ${opts.durationS} s (or on Ctrl-C).`,
  );
  console.log(`${rule}\n`);

  // The live view: the matrix and one node's status, refreshed until the end.
  const end = opts.durationS === null ? Infinity : performance.now() + opts.durationS * 1000;
  let last = matrix;
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, Math.min(REFRESH_MS, end - performance.now())));
    if (performance.now() >= end) break;
    last = await measure(members, targets);
    const s = score(last);
    say(
      `live: ${s.ok}/${s.total} pairs answer${s.failed.length > 0 ? ` (missing ${s.failed.join(', ')})` : ''}`,
    );
    console.log(render(last, targets));
    await showStatus();
  }

  say('tearing down');
  ui.close();
  await topo.destroy();
  cleanupAll();
  const s = score(last);
  say(`removed every namespace, process and socket; ${s.ok}/${s.total} pairs answered at the end`);
  return s.ok === s.total ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanupAll();
    console.log(`\n[${elapsed()}] ${sig}: removed every namespace, process and socket`);
    process.exit(EXIT_SIGNAL);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    cleanupAll();
    process.exit(1);
  },
);
