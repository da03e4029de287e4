/**
 * The UAPI unix socket (wireguard.com/xplatform, "Configuration Protocol"; wireguard-go
 * ipc/uapi_linux.go and device/uapi.go IpcHandle): /var/run/wireguard/IFACE.sock, root only, several
 * connections, requests on one connection answered in order, malformed input answered or closed.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync, type Stats } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';

import { UAPI_ERRNO, errnoReply, parseRequest } from '@wiremesh/wg-core/engine';

import {
  MAX_UAPI_CONNECTIONS,
  MAX_UAPI_PENDING_REPLY_BYTES,
  UAPI_PROBE_TIMEOUT_MS,
  UAPI_SOCKET_DIR,
  UAPI_SOCKET_DIR_MODE,
  UAPI_SOCKET_MODE,
  UAPI_SOCKET_SUFFIX,
  UAPI_SOCKET_UMASK,
} from './constants.js';
import { silentLogger, type Logger } from './log.js';

/**
 * What answers requests: the whole reply text, ending in its errno line and blank line. Called
 * synchronously, one request at a time. An exception becomes "errno=-55" (wireguard-go's
 * IpcErrorUnknown) for that request; the connection goes on.
 */
export interface UapiHandler {
  /** Reply to get=1 (formatGet's text). */
  get(): string;
  /** Reply to set=1 with `body`, the text after "set=1\n" through the blank line (parseSet's input). */
  set(body: string): string;
}

/** What UapiSession.feed returns: text to write (may be ''), and whether to close after writing it. */
export interface UapiFeedResult {
  readonly reply: string;
  readonly close: boolean;
}

/**
 * One connection's request framing, without the socket: feed it the bytes as they arrive (as
 * latin1 text, so characters are bytes) and write back what it returns. Requests are answered in
 * order; a malformed one gets its errno reply, or the connection is closed without one where
 * wireguard-go closes (unknown operation, EOF inside a request, a line or request over the limit).
 */
export class UapiSession {
  #buffer = '';
  #resumeAt = 0;
  #closed = false;

  constructor(private readonly handler: UapiHandler) {}

  /** True once the session decided to close; later input is ignored. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Takes the next chunk (`eof`: the client closed its side; nothing more comes). Returns the replies
   * of every request the buffered input completes. Never throws.
   */
  feed(chunk: string, eof = false): UapiFeedResult {
    if (this.#closed) return { reply: '', close: true };
    this.#buffer += chunk;
    let reply = '';
    for (;;) {
      const r = parseRequest(this.#buffer, { eof, resumeAt: this.#resumeAt });
      switch (r.op) {
        case 'get':
        case 'set':
          reply += this.#answer(
            r.op === 'get' ? () => this.handler.get() : () => this.handler.set(r.body),
          );
          this.#consume(r.consumed);
          continue;
        case 'error':
          reply += errnoReply(r.errno);
          if (r.close) return this.#close(reply);
          this.#consume(r.consumed);
          continue;
        case 'incomplete':
          this.#resumeAt = r.resumeAt;
          return eof ? this.#close(reply) : { reply, close: false };
        case 'invalid':
          return this.#close(reply);
      }
    }
  }

  #answer(run: () => string): string {
    try {
      return run();
    } catch {
      return errnoReply(UAPI_ERRNO.ENOANO);
    }
  }

  #consume(n: number): void {
    this.#buffer = this.#buffer.slice(n);
    this.#resumeAt = 0;
  }

  #close(reply: string): UapiFeedResult {
    this.#closed = true;
    this.#buffer = '';
    return { reply, close: true };
  }
}

/** Options of startUapiServer. */
export interface UapiServerOptions {
  /** Interface name: the socket is DIR/NAME.sock. */
  name: string;
  handler: UapiHandler;
  /** Directory of the socket; default /var/run/wireguard (the one wg(8) reads). For tests. */
  socketDir?: string;
  logger?: Logger;
}

/** A listening UAPI socket. */
export interface UapiServer {
  /** The socket's path. */
  readonly path: string;
  /** Connections open now. */
  readonly connections: number;
  /**
   * Stops accepting, drops open connections, and removes the socket file if it is still the one this
   * server made (a newer daemon's socket at the same path is left alone). Synchronous, idempotent.
   */
  close(): void;
}

/** The socket path wg(8) uses for interface `name` (in `dir`, default /var/run/wireguard). */
export function uapiSocketPath(name: string, dir: string = UAPI_SOCKET_DIR): string {
  return join(dir, `${name}${UAPI_SOCKET_SUFFIX}`);
}

/** Connects to `path`: resolves true if something accepts (a live daemon), false if nothing listens. */
function probeSocket(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (alive: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(alive);
    };
    // A listener too busy to accept in time is still alive: never remove a socket that may be in use.
    const timer = setTimeout(() => done(true), UAPI_PROBE_TIMEOUT_MS);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function errnoError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * Creates the socket directory (0755) if missing, refuses to start if a live daemon answers on
 * DIR/NAME.sock, removes a stale socket file, and listens there with mode 0600 (root only).
 * Resolves with the server. Rejects with Error code 'EADDRINUSE' (another daemon serves the
 * interface), or the system's error (e.g. EACCES: not root). Throws TypeError for bad options.
 */
export async function startUapiServer(options: UapiServerOptions): Promise<UapiServer> {
  const { name, handler } = options;
  if (typeof name !== 'string' || name === '' || name.includes('/')) {
    throw new TypeError(
      `interface name must be a non-empty string without '/', got ${String(name)}`,
    );
  }
  if (typeof handler?.get !== 'function' || typeof handler.set !== 'function') {
    throw new TypeError('handler must have get() and set(body) methods');
  }
  const dir = options.socketDir ?? UAPI_SOCKET_DIR;
  const logger = options.logger ?? silentLogger;
  const path = uapiSocketPath(name, dir);

  mkdirSync(dir, { recursive: true, mode: UAPI_SOCKET_DIR_MODE });
  const existing = lstatOrNull(path);
  if (existing !== null) {
    if (await probeSocket(path)) {
      throw errnoError(
        `${path} is in use: another daemon (wgts or wireguard-go) already serves interface ${name}; ` +
          `stop it first, or choose another interface name`,
        'EADDRINUSE',
      );
    }
    if (!existing.isDirectory()) unlinkSync(path);
  }

  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => serve(socket));
  server.maxConnections = MAX_UAPI_CONNECTIONS;

  function serve(socket: Socket): void {
    sockets.add(socket);
    const session = new UapiSession(handler);
    const handle = (chunk: string, eof: boolean): void => {
      const { reply, close } = session.feed(chunk, eof);
      if (reply !== '' && !socket.destroyed) {
        socket.write(reply, 'latin1');
        // A client that sends requests without reading replies must not grow our memory.
        if (socket.writableLength > MAX_UAPI_PENDING_REPLY_BYTES) {
          socket.pause();
          socket.once('drain', () => socket.resume());
        }
      }
      if (close) socket.end();
    };
    socket.on('data', (data: Buffer) => handle(data.toString('latin1'), false));
    socket.on('end', () => handle('', true));
    socket.on('error', (err) => {
      logger.verbose(`UAPI: connection error: ${err.message}`);
      socket.destroy();
    });
    socket.on('close', () => sockets.delete(socket));
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    // The socket is created inside listen() (synchronously for a path): the umask makes it 0600
    // from its first moment, with no window in which another user could connect.
    const oldUmask = process.umask(UAPI_SOCKET_UMASK);
    try {
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      process.umask(oldUmask);
    }
  });
  chmodSync(path, UAPI_SOCKET_MODE);
  const ours = lstatOrNull(path);
  server.on('error', (err) => logger.error(`UAPI: socket error: ${err.message}`));
  logger.verbose(`UAPI listener started on ${path}`);

  let closed = false;
  return {
    path,
    get connections() {
      return sockets.size;
    },
    close() {
      if (closed) return;
      closed = true;
      server.close();
      for (const s of sockets) s.destroy();
      sockets.clear();
      const now = lstatOrNull(path);
      if (now !== null && ours !== null && now.ino === ours.ino && now.dev === ours.dev) {
        try {
          unlinkSync(path);
        } catch {
          // Removed by someone else meanwhile.
        }
      }
    },
  };
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}
