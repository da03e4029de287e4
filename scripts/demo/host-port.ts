// How the host reaches a coordinator that runs inside the demo's "internet" namespace: a veth pair
// from the root namespace into it (a /30 of RFC 2544's 198.18.0.0/15, no route or firewall rule
// added on the host) and a TCP forwarder on 127.0.0.1 in this process.
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { createConnection, createServer, type Server } from 'node:net';

import { onCleanup, uniqueId } from '../../test/harness/netns.js';

/** Third octet choices of 198.18.X.0/30; the fourth octet's /30 block is random too. */
const OCTET_VALUES = 256;
const BLOCK_SIZE = 4;
/** The namespace's side of the veth. */
const INNER_LINK = 'host0';

/** A running host port: the URL the host uses and how to close it. */
export interface HostPort {
  /** http://127.0.0.1:PORT, or https:// when the forwarded server speaks TLS */
  readonly url: string;
  readonly port: number;
  /** The root namespace's end of the veth (deleted with the namespace, or at cleanup). */
  readonly link: string;
  close(): void;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Listens on 127.0.0.1:port, or on a free port when that one is taken. */
async function listen(server: Server, port: number): Promise<number> {
  const attempt = (p: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await attempt(port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    await attempt(0);
  }
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('the forwarder has no port');
  return addr.port;
}

/**
 * Links the root namespace to `ns` by a veth and forwards TCP from 127.0.0.1:`port` (or a free
 * port if it is taken) to `targetPort` on the namespace's end. Takes: the namespace, the port
 * the service listens on there (on every address), the preferred host port. Returns the
 * forwarder; the veth and the listener go at cleanup (netns.ts) or with close(). Throws if the
 * link cannot be made.
 */
export async function exposeOnLoopback(
  ns: string,
  targetPort: number,
  port: number,
  tls = false,
): Promise<HostPort> {
  const net = `198.18.${randomInt(OCTET_VALUES)}`;
  const base = randomInt(OCTET_VALUES / BLOCK_SIZE) * BLOCK_SIZE;
  const outer = `${net}.${base + 1}`;
  const inner = `${net}.${base + 2}`;
  const link = `wmd${uniqueId()}`;
  const removeLink = (): void => {
    try {
      ip(['link', 'del', link]);
    } catch {
      // Gone with its namespace already.
    }
  };
  onCleanup(removeLink);
  ip(['link', 'add', link, 'type', 'veth', 'peer', 'name', INNER_LINK, 'netns', ns]);
  ip(['address', 'add', `${outer}/30`, 'dev', link]);
  ip(['link', 'set', link, 'up']);
  ip(['-n', ns, 'address', 'add', `${inner}/30`, 'dev', INNER_LINK]);
  ip(['-n', ns, 'link', 'set', INNER_LINK, 'up']);

  const server = createServer((client) => {
    const upstream = createConnection({ host: inner, port: targetPort });
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  const bound = await listen(server, port);
  const close = (): void => {
    server.close();
    removeLink();
  };
  onCleanup(() => server.close());
  return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${bound}`, port: bound, link, close };
}
