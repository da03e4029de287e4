// Endpoint discovery's probe/reply handling (reflect-client.ts) against an in-memory socket and
// the coordinator's own reply encoder: only a reply from the probed reflector with the probe's
// txid counts; lost probes are retried; garbage never throws.
import { createSocket, type Socket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { PROBE_LENGTH, encodeProbe, encodeReply, isProbe, type Endpoint } from '@wiremesh/protocol';
import {
  ReflectionMatcher,
  Reflector,
  probeFromPort,
  resolveHost,
  type RawSocket,
} from '../src/discovery/reflect-client.js';

const REFLECTOR = { ip: '203.0.113.1', port: 3478 };
/** Where the NAT maps the socket: what a correct reply says. */
const PUBLIC = { ip: '198.51.100.20', port: 40123 };

/** A socket whose sends go to `onSend`; `deliver` plays a datagram arriving on it. */
function fakeSocket(onSend: (data: Uint8Array, to: Endpoint, s: FakeSocket) => void) {
  const s = {
    sent: [] as { data: Uint8Array; to: Endpoint }[],
    cb: null as ((data: Uint8Array, from: Endpoint) => void) | null,
    sendRaw(datagrams: readonly { endpoint: Endpoint; data: Uint8Array }[]) {
      for (const d of datagrams) {
        s.sent.push({ data: d.data, to: d.endpoint });
        onSend(d.data, d.endpoint, s);
      }
      return datagrams.length;
    },
    onForeignDatagram(cb: ((data: Uint8Array, from: Endpoint) => void) | null) {
      s.cb = cb;
    },
    deliver(data: Uint8Array, from: Endpoint) {
      s.cb?.(data, from);
    },
  };
  return s satisfies RawSocket;
}
type FakeSocket = ReturnType<typeof fakeSocket>;

/** The coordinator's reflector: answers each probe with where it came from. */
const reflect = (data: Uint8Array, to: Endpoint, s: FakeSocket) =>
  queueMicrotask(() => s.deliver(encodeReply(data, PUBLIC.ip, PUBLIC.port)!, to));

describe('ReflectionMatcher', () => {
  it('matches a reply to its probe by txid and source, once', async () => {
    const m = new ReflectionMatcher((b) => b.fill(7));
    const p = m.start(REFLECTOR);
    expect(isProbe(p.datagram)).toBe(true);
    expect(p.datagram).toHaveLength(PROBE_LENGTH);
    const reply = encodeReply(p.datagram, PUBLIC.ip, PUBLIC.port)!;
    // From another address or port: not our reflector.
    expect(m.receive(reply, { ip: '203.0.113.99', port: 3478 })).toBe(false);
    expect(m.receive(reply, { ip: '203.0.113.1', port: 3479 })).toBe(false);
    // A reply to some other probe (another txid).
    const other = encodeReply(encodeProbe(new Uint8Array(8).fill(9)), '1.2.3.4', 5)!;
    expect(m.receive(other, REFLECTOR)).toBe(false);
    expect(m.outstanding).toBe(1);
    expect(m.receive(reply, REFLECTOR)).toBe(true);
    await expect(p.result).resolves.toEqual(PUBLIC);
    // The same reply again is a duplicate now.
    expect(m.receive(reply, REFLECTOR)).toBe(false);
    expect(m.outstanding).toBe(0);
  });

  it('never throws on garbage and refuses a target that is not an address', () => {
    const m = new ReflectionMatcher();
    m.start(REFLECTOR);
    for (const junk of [
      new Uint8Array(0),
      new Uint8Array(32),
      Uint8Array.of(1, 0, 0, 0),
      encodeProbe(new Uint8Array(8)),
      new Uint8Array(4096).fill(0x57),
    ])
      expect(m.receive(junk, REFLECTOR)).toBe(false);
    expect(() => m.start({ ip: 'coordinator.example', port: 1 })).toThrow(TypeError);
  });

  it('compares the reflector address in canonical form and canonicalizes IPv6 answers', async () => {
    const m = new ReflectionMatcher((b) => b.fill(1));
    const p = m.start({ ip: '2001:db8:0:0::1', port: 3478 });
    const reply = encodeReply(p.datagram, '2001:db8::77', 51820)!;
    expect(m.receive(reply, { ip: '2001:db8::1', port: 3478 })).toBe(true);
    await expect(p.result).resolves.toEqual({ ip: '2001:db8::77', port: 51820 });
  });
});

describe('Reflector', () => {
  it('sends one probe from the socket and resolves with the reflected endpoint', async () => {
    const s = fakeSocket(reflect);
    const r = new Reflector(s);
    await expect(r.probe(REFLECTOR, 1_000, 3)).resolves.toEqual(PUBLIC);
    expect(s.sent).toHaveLength(1);
    expect(s.sent[0]!.to).toEqual(REFLECTOR);
    r.close();
    expect(s.cb).toBeNull();
  });

  it('retries a lost probe and gives up with null after the last attempt', async () => {
    let lost = 1;
    const s = fakeSocket((data, to, sock) => {
      if (lost-- > 0) return;
      reflect(data, to, sock);
    });
    const r = new Reflector(s);
    await expect(r.probe(REFLECTOR, 20, 3)).resolves.toEqual(PUBLIC);
    expect(s.sent).toHaveLength(2);

    const silent = fakeSocket(() => undefined);
    await expect(new Reflector(silent).probe(REFLECTOR, 10, 2)).resolves.toBeNull();
    expect(silent.sent).toHaveLength(2);
  });

  it('ignores a late reply to an abandoned probe', async () => {
    const held: Uint8Array[] = [];
    const s = fakeSocket((data) => void held.push(data));
    const r = new Reflector(s);
    await expect(r.probe(REFLECTOR, 10, 1)).resolves.toBeNull();
    s.deliver(encodeReply(held[0]!, PUBLIC.ip, PUBLIC.port)!, REFLECTOR);
    // A new probe is not fooled by the old reply arriving now.
    const next = r.probe(REFLECTOR, 10, 1);
    s.deliver(encodeReply(held[0]!, '192.0.2.66', 1)!, REFLECTOR);
    await expect(next).resolves.toBeNull();
  });

  it('treats a send the kernel refuses as a lost probe', async () => {
    const s = fakeSocket(() => {
      throw new Error('ENETUNREACH');
    });
    await expect(new Reflector(s).probe(REFLECTOR, 5, 2)).resolves.toBeNull();
  });
});

describe('resolveHost', () => {
  it('passes IP literals through, brackets removed', async () => {
    await expect(resolveHost('203.0.113.1')).resolves.toBe('203.0.113.1');
    await expect(resolveHost('[2001:db8::1]')).resolves.toBe('2001:db8::1');
    await expect(resolveHost('localhost')).resolves.toMatch(/^(127\.0\.0\.1|::1)$/);
  });
});

/** A UDP socket on loopback (port 0: any free one); resolves once bound. */
async function udp(port = 0, address = '127.0.0.1'): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind({ port, address, exclusive: true }, r));
  return s;
}

const closeSocket = (s: Socket) => new Promise<void>((r) => s.close(() => r()));

describe('probeFromPort', () => {
  it('probes from the given local port (the NAT maps by it) and closes the port again', async () => {
    const reflector = await udp();
    const seen: number[] = [];
    reflector.on('message', (data, from) => {
      seen.push(from.port);
      reflector.send(encodeReply(data, PUBLIC.ip, PUBLIC.port)!, from.port, from.address);
    });
    const spare = await udp();
    const port = spare.address().port;
    await closeSocket(spare);
    const target = { ip: '127.0.0.1', port: reflector.address().port };
    await expect(probeFromPort(port, target, 2_000)).resolves.toEqual({
      bound: true,
      endpoint: PUBLIC,
    });
    expect(seen).toEqual([port]);
    // Free again for the device.
    await closeSocket(await udp(port, '0.0.0.0'));
    await closeSocket(reflector);
  });

  it('sends nothing when the port is taken, and resolves null without a reply', async () => {
    const reflector = await udp();
    let probes = 0;
    reflector.on('message', () => void probes++);
    const target = { ip: '127.0.0.1', port: reflector.address().port };
    const device = await udp(0, '0.0.0.0');
    await expect(probeFromPort(device.address().port, target, 2_000)).resolves.toEqual({
      bound: false,
      endpoint: null,
    });
    await closeSocket(device);
    const spare = await udp();
    const port = spare.address().port;
    await closeSocket(spare);
    // The reflector hears the probe but stays silent.
    await expect(probeFromPort(port, target, 50)).resolves.toEqual({ bound: true, endpoint: null });
    expect(probes).toBe(1);
    await closeSocket(reflector);
    expect(() => probeFromPort(port, { ip: 'reflector.example', port: 1 }, 1)).toThrow(TypeError);
  });
});
