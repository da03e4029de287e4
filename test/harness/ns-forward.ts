// A loopback TCP port in this process that leads to a TCP port inside a test namespace (a node
// whose control plane runs in the test process, like the kernel VM's agent, talks to a
// coordinator on the topology's "internet" through it). Two hops, no routes into the host: this
// process -> a unix socket (the filesystem is shared across network namespaces) -> a small Node
// forwarder started inside the namespace -> the target port there.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup, pollUntil, spawnIn, stopProcess, type TrackedProcess } from './netns.js';

const READY_TIMEOUT_MS = 10_000;
/** argv: unix socket path, target host, target port. Pipes every connection both ways. */
const FORWARDER_SCRIPT = `const net = require('node:net');
const [path, host, port] = process.argv.slice(-3);
net.createServer((c) => {
  const u = net.connect(Number(port), host);
  c.pipe(u).pipe(c);
  c.on('error', () => u.destroy());
  u.on('error', () => c.destroy());
}).listen(path, () => process.stdout.write('ready\\n'));`;

/** A running forward; `url` is http://127.0.0.1:PORT. */
export interface NamespaceForward {
  readonly port: number;
  readonly url: string;
  /** Stops both hops. Idempotent. */
  close(): Promise<void>;
}

function join2(a: Socket, b: Socket): void {
  a.pipe(b).pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

/**
 * Forwards 127.0.0.1:<random> in this process to `host:port` as seen from namespace `ns`.
 * Rejects if the forwarder does not come up; everything is removed at cleanup too.
 */
export async function forwardIntoNamespace(
  ns: string,
  host: string,
  port: number,
): Promise<NamespaceForward> {
  const dir = mkdtempSync(join(tmpdir(), 'wmfwd-'));
  const path = join(dir, 'fwd.sock');
  const proc: TrackedProcess = spawnIn(ns, [
    process.execPath,
    '-e',
    FORWARDER_SCRIPT,
    path,
    host,
    String(port),
  ]);
  const server: Server = createServer((c) => join2(c, connect(path)));
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    })());
  onCleanup(() => void close());
  try {
    await pollUntil(
      'the namespace forwarder',
      () => {
        if (!proc.running) throw new Error(`forwarder exited: ${proc.output()}`);
        return proc.output().includes('ready');
      },
      READY_TIMEOUT_MS,
      20,
    );
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(0, '127.0.0.1', () => res());
    });
  } catch (e) {
    await close();
    throw e;
  }
  const addr = server.address();
  const local = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { port: local, url: `http://127.0.0.1:${local}`, close };
}
