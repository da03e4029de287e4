/**
 * The Device's send path (whitepaper §5.4.6): a packet sent while a session is up goes straight
 * into a transport message, one sent without a session is staged as a copy. Either way the engine
 * keeps no reference to the caller's buffer, and packets leave in the order they were sent.
 */
import { describe, expect, test } from 'vitest';
import { DEFAULT_MTU, MESSAGE_TRANSPORT_MIN_SIZE, REKEY_TIMEOUT_MS } from '../src/constants.js';
import { paddedLength } from '../src/device.js';
import type { Action } from '../src/types.js';
import { ipv4Packet, Net, type Node } from './harness.js';

const DATA = 4;

function pair(): { net: Net; a: Node; b: Node } {
  const net = new Net();
  const a = net.add('a', '192.0.2.1', 11);
  const b = net.add('b', '192.0.2.2', 12);
  net.link(a, '10.0.0.1', b, '10.0.0.2');
  return { net, a, b };
}

const packet = (n: number, size = 100): Uint8Array =>
  ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(size - 20).fill(n));

describe('send path', () => {
  test('with a session: overwriting the packet after send() does not change what arrives', () => {
    const { net, a, b } = pair();
    net.send(a, packet(1)); // handshake, then the session is up
    const p = packet(2);
    const original = p.slice();
    const out: Action[] = [];
    a.device.send(p, net.now, out);
    p.fill(0xee);
    net.flush(a, out);
    expect(b.delivered.at(-1)).toEqual(original);
  });

  test('without a session: the staged packet is a copy, overwriting it changes nothing', () => {
    const { net, a, b } = pair();
    const p = packet(3);
    const original = p.slice();
    const out: Action[] = [];
    a.device.send(p, net.now, out); // staged; an initiation goes out
    p.fill(0xee);
    net.flush(a, out);
    expect(b.delivered).toEqual([original]);
  });

  test('a buffer longer than its IP packet: only the IP length is sent and delivered', () => {
    const { net, a, b } = pair();
    net.send(a, packet(1));
    const p = packet(4, 200);
    const padded = new Uint8Array(p.length + 37).fill(0xaa);
    padded.set(p);
    const out: Action[] = [];
    a.device.send(padded, net.now, out);
    const sent = out.filter((x) => x.type === 'send');
    expect(sent).toHaveLength(1);
    expect(sent[0]!.type === 'send' && sent[0]!.data.length).toBe(
      paddedLength(p.length, DEFAULT_MTU) + MESSAGE_TRANSPORT_MIN_SIZE,
    );
    net.flush(a, out);
    expect(b.delivered.at(-1)).toEqual(p);
  });

  test('packets staged before the handshake leave before later ones, in order, with fresh counters', () => {
    const { net, a, b } = pair();
    let open = false;
    net.filter = () => open;
    for (let n = 1; n <= 3; n++) net.send(a, packet(n)); // staged; the initiation is lost
    expect(b.delivered).toEqual([]);
    open = true;
    net.advance(REKEY_TIMEOUT_MS * 2); // the retransmitted initiation completes the handshake
    for (let n = 4; n <= 5; n++) net.send(a, packet(n));
    expect(b.delivered.map((d) => d[d.length - 1])).toEqual([1, 2, 3, 4, 5]);
    const counters = a.sent
      .filter((d) => d[0] === DATA)
      .map((d) => new DataView(d.buffer, d.byteOffset).getUint32(8, true));
    expect(counters).toEqual(counters.map((_, i) => i));
    expect(b.drops).toEqual([]);
  });

  test('a data packet sent with a session arms new-handshake and counts the bytes sent', () => {
    const { net, a, b } = pair();
    net.send(a, packet(1));
    const peer = a.device.peer(b.publicKey)!;
    peer.timers.stop('newHandshake');
    const before = peer.txBytes;
    const out: Action[] = [];
    a.device.send(packet(2), net.now, out);
    expect(peer.timers.pending('newHandshake')).toBe(true);
    expect(peer.txBytes - before).toBe(paddedLength(100, DEFAULT_MTU) + MESSAGE_TRANSPORT_MIN_SIZE);
  });
});
