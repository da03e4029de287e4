// A mesh of wiremesh agents for system tests: a coordinator (the built `wiremesh-coordinator
// serve`) in a hub namespace holding a bridge, and agents in namespaces of their own, each wired
// to the bridge by a veth. Built on netns.ts, so every namespace, process and file is removed on
// every exit path; agents use the userspace backend (this kernel has no WireGuard).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  check,
  createNamespace,
  linkNamespaces,
  onCleanup,
  pollUntil,
  run,
  spawnIn,
  stopProcess,
  uniqueId,
  type RunResult,
  type TrackedProcess,
} from './netns.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The built agent CLI. */
export const AGENT_JS = join(ROOT, 'packages/mesh-agent/dist/cli.js');
/** The built coordinator CLI. */
export const COORDINATOR_JS = join(ROOT, 'packages/coordinator/dist/cli.js');
/** Namespaces of these tests are named `wmag-<pid>-<hex>`. */
export const NS_TAG = 'wmag';
const BUILD_TIMEOUT_MS = 300_000;
const START_TIMEOUT_MS = 20_000;
const COORDINATOR_PORT = 8080;
const BRIDGE = 'br0';
const PING_POLL_WAIT_S = 0.25;
/** Prints `<status>\n<body>` of one fetch (argv: url, JSON of the fetch options). */
const FETCH_SCRIPT = `const [url, init] = process.argv.slice(-2);
fetch(url, { ...JSON.parse(init), signal: AbortSignal.timeout(5000) })
  .then(async (r) => process.stdout.write(r.status + '\\n' + (await r.text())))
  .catch((e) => { process.stderr.write(String(e.cause ?? e)); process.exit(1); });`;
const SOCKET_DIR = '/var/run/wireguard';

let built = false;

/** Builds the agent, the coordinator and wg-tun (tsc -b, incremental) once per process. */
export function buildAll(): void {
  if (built) return;
  try {
    execFileSync(
      join(ROOT, 'node_modules/.bin/tsc'),
      ['-b', join(ROOT, 'packages/mesh-agent'), join(ROOT, 'packages/coordinator')],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: BUILD_TIMEOUT_MS },
    );
  } catch (err) {
    const e = err as { stdout?: Buffer; message: string };
    throw new Error(`build failed: ${e.stdout?.toString() ?? e.message}`);
  }
  for (const f of [AGENT_JS, COORDINATOR_JS])
    if (!existsSync(f)) throw new Error(`${f} is missing after the build`);
  built = true;
}

/** A temporary directory removed at cleanup. */
export function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${tag}-`));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Where a Hub runs when it does not make its own namespace and bridge: an existing namespace (e.g.
 * a topology's internet, whose owner removes it) and the address agents reach it at there.
 */
export interface HubPlacement {
  ns: string;
  address: string;
  /** Also start the UDP endpoint reflector on this port (`serve --reflect-port`). */
  reflectPort?: number;
  /** Serve HTTPS with this certificate and key (PEM files); plain HTTP otherwise. */
  tls?: { cert: string; key: string };
}

/** The running coordinator in the hub namespace. */
/** A node as the admin API lists it (the fields the tests use). */
export interface MeshNode {
  id: string;
  name: string;
  addressV4: string;
  publicKey: string;
}

/** A peer as `wiremesh status --json` lists it (the fields the tests use). */
export interface StatusPeer {
  name: string;
  endpoint: string | null;
  path: 'direct' | 'relay';
  via: string | null;
  endpointSource: string | null;
  relayReason: string | null;
}

export class Hub {
  readonly ns: string;
  /** The bridge's /24 without the last byte; '' for a placed hub (attach() then throws). */
  readonly subnet: string;
  readonly address: string;
  readonly url: string;
  readonly tls: { cert: string; key: string } | undefined;
  readonly dataDir: string;
  readonly reflectPort: number | undefined;
  token = '';
  proc: TrackedProcess | null = null;
  private agents = 0;

  /** Without `placement`: a new namespace with a bridge that attach() plugs agents into. */
  constructor(placement?: HubPlacement) {
    this.dataDir = tempDir('wmag-coord');
    this.reflectPort = placement?.reflectPort;
    this.tls = placement?.tls;
    if (placement !== undefined) {
      this.ns = placement.ns;
      this.subnet = '';
      this.address = placement.address;
      this.url = `${this.tls === undefined ? 'http' : 'https'}://${this.address}:${COORDINATOR_PORT}`;
      return;
    }
    this.ns = createNamespace(NS_TAG);
    this.subnet = `10.${64 + Math.floor(Math.random() * 64)}.0`;
    this.address = `${this.subnet}.1`;
    this.url = `http://${this.address}:${COORDINATOR_PORT}`;
    execFileSync('ip', ['-n', this.ns, 'link', 'add', BRIDGE, 'type', 'bridge']);
    execFileSync('ip', ['-n', this.ns, 'address', 'add', `${this.address}/24`, 'dev', BRIDGE]);
    execFileSync('ip', ['-n', this.ns, 'link', 'set', BRIDGE, 'up']);
  }

  /** Starts (or restarts) the coordinator and waits until it answers. */
  async start(): Promise<void> {
    const tokenFile = join(this.dataDir, 'admin-token');
    this.proc = spawnIn(this.ns, [
      process.execPath,
      COORDINATOR_JS,
      'serve',
      '--listen',
      `0.0.0.0:${COORDINATOR_PORT}`,
      // Plain HTTP inside the test's own namespaces unless asked (test/tls.test.ts covers TLS).
      ...(this.tls === undefined
        ? ['--insecure-http']
        : ['--tls-cert', this.tls.cert, '--tls-key', this.tls.key]),
      '--data-dir',
      this.dataDir,
      '--admin-token-file',
      tokenFile,
      '--log-level',
      'warn',
      ...(this.reflectPort === undefined ? [] : ['--reflect-port', String(this.reflectPort)]),
    ]);
    await pollUntil(
      'the coordinator',
      async () => {
        if (this.proc?.running !== true)
          throw new Error(`coordinator exited: ${this.proc?.output()}`);
        return (await this.http('GET', '/healthz').catch(() => ({ status: 0 }))).status === 200;
      },
      START_TIMEOUT_MS,
    );
    if (this.token === '') this.token = readFileSync(tokenFile, 'utf8').trim();
  }

  /** Stops the coordinator (SIGTERM). */
  async stop(): Promise<void> {
    if (this.proc !== null) await stopProcess(this.proc);
    this.proc = null;
  }

  /** An HTTP request from inside the hub namespace (Node's fetch; no curl needed). */
  async http(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const req = JSON.stringify({
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const r = await run(
      this.ns,
      [process.execPath, '-e', FETCH_SCRIPT, `${this.url}${path}`, req],
      {
        // The hub's own certificate is trusted for its own calls (a self-signed one is no CA).
        ...(this.tls === undefined
          ? {}
          : { env: { ...process.env, NODE_EXTRA_CA_CERTS: this.tls.cert } }),
      },
    );
    if (r.status !== 0) throw new Error(`${method} ${path}: ${r.stderr.trim()}`);
    const cut = r.stdout.indexOf('\n');
    return { status: Number(r.stdout.slice(0, cut)), text: r.stdout.slice(cut + 1) };
  }

  /** Calls the admin API; resolves with the parsed JSON body (null for 204). Throws on non-2xx. */
  async admin(method: string, path: string, body?: unknown): Promise<any> {
    const { status, text } = await this.http(method, path, body);
    if (!(status >= 200 && status < 300))
      throw new Error(`${method} ${path}: HTTP ${status} ${text}`);
    return text === '' ? null : JSON.parse(text);
  }

  /** The node called `name` in `network`, as the admin API lists it. Throws when there is none. */
  async node(network: string, name: string): Promise<MeshNode> {
    const nodes = (await this.admin('GET', `/api/v1/networks/${network}/nodes`)) as MeshNode[];
    const n = nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  /** Makes a new namespace on the bridge; returns it with its LAN address. */
  attach(): { ns: string; lan: string } {
    if (this.subnet === '') throw new Error('a placed hub has no bridge to attach agents to');
    const i = ++this.agents;
    const ns = createNamespace(NS_TAG);
    const lan = `${this.subnet}.${10 + i}`;
    linkNamespaces({ ns: this.ns, name: `vh${i}` }, { ns, name: 'eth0', ipv4: `${lan}/24` });
    execFileSync('ip', ['-n', this.ns, 'link', 'set', `vh${i}`, 'master', BRIDGE, 'up']);
    return { ns, lan };
  }
}

/** A device killed with its namespace cannot remove its UAPI socket: remove it at cleanup. */
function removeSocketAtCleanup(iface: string): void {
  const sock = join(SOCKET_DIR, `${iface}.sock`);
  onCleanup(() => rmSync(sock, { force: true }));
}

/** One agent host: a namespace, a state directory, an interface name, maybe a running daemon. */
export class AgentHost {
  readonly ns: string;
  readonly lan: string;
  readonly stateDir: string;
  readonly iface: string;
  daemon: TrackedProcess | null = null;

  /** Without `placement`, a new namespace on the hub's bridge; with it, that namespace and address. */
  constructor(
    readonly hub: Hub,
    readonly name: string,
    placement?: { ns: string; lan: string },
  ) {
    const a = placement ?? hub.attach();
    this.ns = a.ns;
    this.lan = a.lan;
    this.stateDir = tempDir(`wmag-${name}`);
    // /var/run/wireguard is shared by all namespaces: interface names must be unique.
    this.iface = `wm${uniqueId()}`;
    removeSocketAtCleanup(this.iface);
  }

  /** Another interface name for a second network on this host. */
  extraIface(): string {
    const iface = `wm${uniqueId()}`;
    removeSocketAtCleanup(iface);
    return iface;
  }

  /** Runs `wiremesh ARGS` in this host's namespace. */
  cli(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
    return run(this.ns, [process.execPath, AGENT_JS, ...args], {
      timeoutMs: 60_000,
      ...(env ? { env } : {}),
    });
  }

  /** The peers `wiremesh status --json` lists for this host. Throws when status fails. */
  async statusPeers(): Promise<StatusPeer[]> {
    const r = await this.cli(['status', '--json', '--state-dir', this.stateDir]);
    if (r.status !== 0) throw new Error(`wiremesh status: ${r.stderr.trim()}`);
    return (JSON.parse(r.stdout) as { peers: StatusPeer[] }[])[0]!.peers;
  }

  /** `wiremesh join --daemon off` with this host's name, interface and state directory. */
  join(network: string, extra: readonly string[] = [], iface = this.iface): Promise<RunResult> {
    return this.cli([
      'join',
      '--server',
      this.hub.url,
      '--network',
      network,
      '--name',
      this.name,
      '--daemon',
      'off',
      '--backend',
      'userspace',
      '--interface',
      iface,
      '--state-dir',
      this.stateDir,
      ...extra,
    ]);
  }

  /** Starts `wiremesh daemon`. */
  startDaemon(): void {
    this.daemon = spawnIn(
      this.ns,
      [process.execPath, AGENT_JS, 'daemon', '--state-dir', this.stateDir],
      {
        env: { ...process.env, WIREMESH_LOG_LEVEL: 'debug', WIREMESH_LOG_TIME: '1' },
      },
    );
  }

  /** Stops the daemon with SIGTERM (the interface stays). */
  async stopDaemon(): Promise<void> {
    if (this.daemon !== null) await stopProcess(this.daemon);
    this.daemon = null;
  }

  /** `wg show IFACE dump` parsed minimally: public key -> [latest handshake, endpoint, allowed IPs]. */
  async wgPeers(
    iface = this.iface,
  ): Promise<Map<string, { handshake: number; endpoint: string; allowedIps: string }>> {
    const out = await check(this.ns, ['wg', 'show', iface, 'dump']);
    const peers = new Map<string, { handshake: number; endpoint: string; allowedIps: string }>();
    for (const line of out.trim().split('\n').slice(1)) {
      const f = line.split('\t');
      peers.set(f[0] ?? '', {
        handshake: Number(f[4]),
        endpoint: f[2] ?? '',
        allowedIps: f[3] ?? '',
      });
    }
    return peers;
  }

  /** The interface's public key. */
  async publicKey(iface = this.iface): Promise<string> {
    return (await check(this.ns, ['wg', 'show', iface, 'public-key'])).trim();
  }

  /** Whether one ping to `ip` answers within `waitS` seconds. */
  async ping(ip: string, waitS = 1): Promise<boolean> {
    const argv = ['ping', '-c', '1', '-W', String(waitS), '-n', '-q', ip];
    return (await run(this.ns, argv, { timeoutMs: 5_000 })).status === 0;
  }

  /** Whether the interface exists in the namespace. */
  async hasInterface(): Promise<boolean> {
    return (await run(this.ns, ['ip', 'link', 'show', 'dev', this.iface])).status === 0;
  }
}

/** Waits until `host` pings `ip`. Resolves with the milliseconds it took. */
export async function waitPing(host: AgentHost, ip: string, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  // Short waits: a ping sent before the route exists must not hide the moment it starts working.
  await pollUntil(`${host.name} -> ${ip}`, () => host.ping(ip, PING_POLL_WAIT_S), timeoutMs, 20);
  return performance.now() - t0;
}
