/**
 * The resolver's socket: UDP on the node's mesh addresses, port 53, answering each datagram from
 * the current table (resolver.ts). A per-datagram guard turns any bug into a counted drop, so a
 * malformed query never takes the agent down. The table is swapped whole; answers come from memory.
 */
import { createSocket, type Socket } from 'node:dgram';
import { DNS_PORT } from './constants.js';
import { EMPTY_TABLE, type DnsTable } from './records.js';
import { answerQuery, type Outcome } from './resolver.js';

/** Counters by outcome, plus `errors` (bugs caught by the guard). */
export type DnsCounters = Record<Outcome | 'errors', number>;

/** A running resolver. */
export interface DnsServer {
  /** Replaces the names it answers for (takes effect for the next datagram). */
  setTable(t: DnsTable): void;
  /** The addresses it listens on, as `ip:port`. */
  readonly listening: readonly string[];
  readonly counters: Readonly<DnsCounters>;
  close(): Promise<void>;
}

/**
 * Listens on every address of `addresses` at `port` (default 53). Resolves once all are bound;
 * rejects with the bind error (EADDRNOTAVAIL while an address is not yet on the interface,
 * EADDRINUSE, EACCES) after closing what it opened.
 */
export async function startDnsServer(
  addresses: readonly string[],
  port = DNS_PORT,
): Promise<DnsServer> {
  let table: DnsTable = EMPTY_TABLE;
  const counters: DnsCounters = {
    answer: 0,
    nodata: 0,
    nxdomain: 0,
    refused: 0,
    formerr: 0,
    notimp: 0,
    dropped: 0,
    errors: 0,
  };
  const sockets: Socket[] = [];
  const listening: string[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
  };
  try {
    for (const address of addresses) {
      const s = createSocket({ type: address.includes(':') ? 'udp6' : 'udp4' });
      sockets.push(s);
      s.on('message', (msg, rinfo) => {
        try {
          const r = answerQuery(table, msg);
          counters[r.outcome]++;
          if (r.bytes !== null) s.send(r.bytes, rinfo.port, rinfo.address, () => undefined);
        } catch {
          counters.errors++;
        }
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.bind({ address, port, exclusive: true }, () => {
          s.off('error', reject);
          // Send errors (an unreachable asker) are the asker's problem, never a crash.
          s.on('error', () => undefined);
          resolve();
        });
      });
      const a = s.address();
      listening.push(a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
    }
  } catch (e) {
    await close();
    throw e;
  }
  return {
    setTable(t) {
      table = t;
    },
    listening,
    counters,
    close,
  };
}
