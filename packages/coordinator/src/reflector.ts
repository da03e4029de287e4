/**
 * The UDP endpoint reflector (protocol reflect.ts): answers each well-formed probe with the
 * source ip:port it arrived from, in a reply smaller than the probe; anything else is dropped
 * silently and counted, so the port cannot be used to amplify traffic.
 */
import { createSocket } from 'node:dgram';
import { encodeReply } from '@wiremesh/protocol';
import type { Metrics } from './metrics.js';

const V4_MAPPED_PREFIX = '::ffff:';

/** A bound reflector. */
export interface Reflector {
  readonly port: number;
  close(): Promise<void>;
}

/** Binds the reflector on `host`:`port` (0 picks a free port). */
export async function startReflector(
  host: string,
  port: number,
  metrics: Metrics,
): Promise<Reflector> {
  metrics.counter('wiremesh_reflect_probes_total', 'UDP reflection probes answered.');
  metrics.counter(
    'wiremesh_reflect_dropped_total',
    'UDP datagrams on the reflect port that were not probes.',
  );
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('message', (msg, rinfo) => {
    const ip =
      rinfo.address.startsWith(V4_MAPPED_PREFIX) && rinfo.address.includes('.')
        ? rinfo.address.slice(V4_MAPPED_PREFIX.length)
        : rinfo.address;
    const reply = encodeReply(
      new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength),
      ip,
      rinfo.port,
    );
    if (reply === null) {
      metrics.inc('wiremesh_reflect_dropped_total');
      return;
    }
    metrics.inc('wiremesh_reflect_probes_total');
    socket.send(reply, rinfo.port, rinfo.address);
  });
  // A send to a vanished peer reports an error asynchronously; it must not kill the server.
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    port: socket.address().port,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
