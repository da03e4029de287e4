/**
 * The userspace device over the in-memory TUN and network (after wireguard-go's device tests with
 * tuntest and bindtest): handshake and data both ways, the typed configure() and UAPI text paths
 * agreeing, listen_port conflicts, the one engine timer, and bugs turned into counted drops.
 */
import { randomFillSync } from 'node:crypto';
import { afterEach, describe, expect, test, vi } from 'vitest';

import {
  formatGet,
  generatePrivateKey,
  keyFromBase64,
  keyToBase64,
  keyToHex,
  nobleCrypto,
  parseCidr,
  parseGet,
  publicKeyOf,
  KEEPALIVE_TIMEOUT_MS,
  MESSAGE_TRANSPORT_MIN_SIZE,
  MESSAGE_TRANSPORT_TYPE,
  REKEY_TIMEOUT_MS,
  REKEY_TIMEOUT_JITTER_MAX_MS,
} from '@wiremesh/wg-core';
import {
  createFakeNetwork,
  createFakeTun,
  createUserspaceDevice,
  UapiError,
  type FakeNetwork,
  type FakeTun,
  type UdpBind,
  type UserspaceDevice,
} from '../src/index.js';
import { MTU_CHECK_INTERVAL_MS } from '../src/constants.js';

const INITIATION = 1;
const TRANSPORT = MESSAGE_TRANSPORT_TYPE;

interface Node {
  device: UserspaceDevice;
  tun: FakeTun;
  privateKey: string;
  publicKey: string;
  address: string;
}

const open: UserspaceDevice[] = [];
afterEach(() => {
  for (const d of open.splice(0)) d.close();
  vi.useRealTimers();
});

function keypair(): { privateKey: string; publicKey: string } {
  const sk = generatePrivateKey((b) => void randomFillSync(b));
  return { privateKey: keyToBase64(sk), publicKey: keyToBase64(publicKeyOf(nobleCrypto, sk)) };
}

function node(
  net: FakeNetwork,
  name: string,
  address: string,
  bindHook?: (b: UdpBind) => UdpBind,
): Node {
  const tun = createFakeTun({ name, mtu: 1420 });
  const device = createUserspaceDevice({
    name,
    tun: tun.device,
    crypto: 'noble',
    openBind: (port) => {
      const b = net.bind({ address, port });
      return bindHook ? bindHook(b) : b;
    },
  });
  open.push(device);
  return { device, tun, address, ...keypair() };
}

/** Two devices that know each other: a = 10.0.0.1 / fd00::1, b = 10.0.0.2 / fd00::2. */
function pair(opts: { bindHook?: (b: UdpBind) => UdpBind } = {}) {
  const net = createFakeNetwork();
  const a = node(net, 'wgtsA', '192.0.2.1', opts.bindHook);
  const b = node(net, 'wgtsB', '192.0.2.2');
  a.device.configure({
    privateKey: a.privateKey,
    listenPort: 51820,
    peers: [
      {
        publicKey: b.publicKey,
        endpoint: '192.0.2.2:51821',
        allowedIps: ['10.0.0.2/32', 'fd00::2/128'],
      },
    ],
  });
  b.device.configure({
    privateKey: b.privateKey,
    listenPort: 51821,
    peers: [
      {
        publicKey: a.publicKey,
        endpoint: { ip: '192.0.2.1', port: 51820 },
        allowedIps: ['10.0.0.1/32', 'fd00::1/128'],
      },
    ],
  });
  return { net, a, b };
}

function bytesOf(text: string): Uint8Array {
  const p = parseCidr(`${text}/${text.includes(':') ? 128 : 32}`);
  if (p === null) throw new Error(`bad address ${text}`);
  return p.address;
}

/** An IPv4 or IPv6 UDP packet (checksums zero: the tunnel does not check them). */
function udpPacket(src: string, dst: string, payload: Uint8Array): Uint8Array {
  const v6 = src.includes(':');
  const header = v6 ? 40 : 20;
  const p = new Uint8Array(header + 8 + payload.length);
  const udpLen = 8 + payload.length;
  if (v6) {
    p[0] = 0x60;
    p[4] = udpLen >> 8;
    p[5] = udpLen & 0xff;
    p[6] = 17;
    p[7] = 64;
    p.set(bytesOf(src), 8);
    p.set(bytesOf(dst), 24);
  } else {
    p[0] = 0x45;
    p[2] = p.length >> 8;
    p[3] = p.length & 0xff;
    p[8] = 64;
    p[9] = 17;
    p.set(bytesOf(src), 12);
    p.set(bytesOf(dst), 16);
  }
  p[header + 4] = udpLen >> 8;
  p[header + 5] = udpLen & 0xff;
  p.set(payload, header + 8);
  return p;
}

/** Resolves with the next packet the device writes into its TUN. */
function nextWrite(tun: FakeTun): Promise<Uint8Array> {
  return new Promise((resolve) => tun.onWrite(resolve));
}

describe('two devices over the fake network', () => {
  test('handshake, then IPv4 and IPv6 packets pass both ways and counters agree', async () => {
    const { a, b } = pair();
    const p1 = udpPacket('10.0.0.1', '10.0.0.2', new TextEncoder().encode('hello b'));
    const got1 = nextWrite(b.tun);
    a.tun.inject([p1]);
    expect(await got1).toEqual(p1);

    const p2 = udpPacket('fd00::2', 'fd00::1', new TextEncoder().encode('hello a over v6'));
    const got2 = nextWrite(a.tun);
    b.tun.inject([p2]);
    expect(await got2).toEqual(p2);

    // A batch of several packets arrives whole and in order.
    const batch = Array.from({ length: 20 }, (_, i) =>
      udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([i])),
    );
    const seen: Uint8Array[] = [];
    const all = new Promise<void>((resolve) =>
      b.tun.onWrite((p) => {
        seen.push(p);
        if (seen.length === batch.length) resolve();
      }),
    );
    a.tun.inject(batch);
    await all;
    expect(seen).toEqual(batch);

    const [sa] = a.device.peerStats();
    const [sb] = b.device.peerStats();
    expect(sa!.publicKey).toBe(b.publicKey);
    expect(sa!.lastHandshakeMs).toBeGreaterThan(0);
    expect(sa!.endpoint).toEqual({ ip: '192.0.2.2', port: 51821 });
    expect(sa!.allowedIps).toEqual(['10.0.0.2/32', 'fd00::2/128']);
    // What one side sent is what the other received (every message arrived).
    expect(sa!.txBytes).toBe(sb!.rxBytes);
    expect(sb!.txBytes).toBe(sa!.rxBytes);
    expect(sa!.txBytes).toBeGreaterThan(0);
    expect(a.device.drops()['internal-error']).toBe(0);
  });

  test('the allowed-IPs source filter drops a packet from an address the peer does not own', async () => {
    const { a, b } = pair();
    const first = nextWrite(b.tun);
    a.tun.inject([udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([1]))]);
    await first;
    // a routes 10.0.0.2, but b does not accept 10.0.0.9 as a source from a.
    const before = b.device.drops()['source-not-allowed'];
    const written = b.tun.written.length;
    a.tun.inject([udpPacket('10.0.0.9', '10.0.0.2', new Uint8Array([2]))]);
    const ok = nextWrite(b.tun);
    a.tun.inject([udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([3]))]);
    expect((await ok)[28]).toBe(3);
    expect(b.tun.written.length).toBe(written + 1);
    expect(b.device.drops()['source-not-allowed']).toBe(before + 1);
  });

  test('a private key change expires the sessions; the next packet starts a handshake under the new key', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { net, a, b } = pair();
    const first = nextWrite(b.tun);
    a.tun.inject([udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([1]))]);
    await first;
    const fresh = keypair();
    a.device.configure({ privateKey: fresh.privateKey });
    b.device.configure({
      peers: [
        { publicKey: a.publicKey, remove: true },
        { publicKey: fresh.publicKey, allowedIps: ['10.0.0.1/32'], endpoint: '192.0.2.1:51820' },
      ],
    });
    let initiations = 0;
    net.setFilter((d) => {
      if (d.data[0] === INITIATION) initiations++;
      return true;
    });
    const t0 = performance.now();
    let arrivedAt = -1;
    b.tun.onWrite((p) => {
      if (p[28] === 2) arrivedAt = performance.now() - t0;
    });
    a.tun.inject([udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([2]))]);
    // wireguard-go sends the initiation at once (ExpireCurrentKeypairs resets lastSentHandshake);
    // at the latest the new-handshake timer (KEEPALIVE_TIMEOUT + REKEY_TIMEOUT) must fire.
    const bound = KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + REKEY_TIMEOUT_JITTER_MAX_MS;
    for (let t = 0; t <= bound && arrivedAt < 0; t += 100) await vi.advanceTimersByTimeAsync(100);
    expect(arrivedAt).toBeGreaterThanOrEqual(0);
    expect(arrivedAt).toBeLessThanOrEqual(bound);
    expect(initiations).toBeGreaterThanOrEqual(1);
    expect(a.device.publicKey).toBe(fresh.publicKey);
    expect(b.device.peerStats().map((p) => p.publicKey)).toEqual([fresh.publicKey]);
    expect(b.device.peerStats()[0]!.lastHandshakeMs).toBeGreaterThan(0);
  });
});

describe('the interface MTU', () => {
  test('the device follows it within MTU_CHECK_INTERVAL_MS: transport messages pad to the new MTU', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { net, a, b } = pair();
    const sizes: number[] = [];
    net.setFilter((d) => {
      if (d.data[0] === TRANSPORT && d.data.length > MESSAGE_TRANSPORT_MIN_SIZE)
        sizes.push(d.data.length);
      return true;
    });
    // 1300 bytes: padded to 1312 under MTU 1420, but never past the MTU once it is 1300.
    const packet = udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array(1300 - 28));
    const send = async () => {
      const arrived = nextWrite(b.tun);
      a.tun.inject([packet]);
      expect(await arrived).toEqual(packet);
    };
    expect(a.device.mtu).toBe(1420);
    await send();
    a.tun.device.setMtu(1300);
    await vi.advanceTimersByTimeAsync(MTU_CHECK_INTERVAL_MS);
    expect(a.device.mtu).toBe(1300);
    await send();
    a.tun.device.setMtu(1420);
    await vi.advanceTimersByTimeAsync(MTU_CHECK_INTERVAL_MS);
    expect(a.device.mtu).toBe(1420);
    await send();
    const overhead = MESSAGE_TRANSPORT_MIN_SIZE;
    expect(sizes).toEqual([1312 + overhead, 1300 + overhead, 1312 + overhead]);
  });
});

describe('configuration', () => {
  test('get=1 over uapi() is formatGet of the configured state, and set=1 text configures as configure() does', async () => {
    const net = createFakeNetwork();
    const n = node(net, 'wgtsC', '192.0.2.3');
    const peer = keypair();
    const psk = keyToBase64(generatePrivateKey((b) => void randomFillSync(b)));
    n.device.configure({
      privateKey: n.privateKey,
      listenPort: 40001,
      fwmark: 7,
      peers: [
        {
          publicKey: peer.publicKey,
          presharedKey: psk,
          endpoint: '[2001:db8::5]:51820',
          persistentKeepalive: 0,
          allowedIps: ['10.1.0.0/16', '10.2.3.4/32', '2001:db8:1::/48'],
        },
      ],
    });
    const expected = formatGet({
      privateKey: keyFromBase64(n.privateKey),
      listenPort: 40001,
      fwmark: 7,
      peers: [
        {
          publicKey: keyFromBase64(peer.publicKey),
          presharedKey: keyFromBase64(psk),
          endpoint: { ip: '2001:db8::5', port: 51820 },
          lastHandshakeWallMs: 0,
          txBytes: 0,
          rxBytes: 0,
          persistentKeepaliveInterval: 0,
          allowedIps: ['10.1.0.0/16', '10.2.3.4/32', '2001:db8:1::/48'].map((t) => parseCidr(t)!),
        },
      ],
    });
    const got = await n.device.uapi('get=1\n\n');
    expect(got).toBe(expected);

    // The same state through set=1 text on a second device gives the same get=1 text.
    const m = node(net, 'wgtsD', '192.0.2.4');
    const body = [
      'set=1',
      `private_key=${keyToHex(keyFromBase64(n.privateKey))}`,
      'listen_port=40001',
      'fwmark=7',
      `public_key=${keyToHex(keyFromBase64(peer.publicKey))}`,
      `preshared_key=${keyToHex(keyFromBase64(psk))}`,
      'endpoint=[2001:db8::5]:51820',
      'persistent_keepalive_interval=0',
      'allowed_ip=10.1.0.0/16',
      'allowed_ip=10.2.3.4/32',
      'allowed_ip=2001:db8:1::/48',
      '',
      '',
    ].join('\n');
    n.device.configure({ listenPort: 40002 }); // free 40001 for m
    expect(await m.device.uapi(body)).toBe('errno=0\n\n');
    expect(await m.device.uapi('get=1\n\n')).toBe(expected);
    // Two requests in one text are answered in order.
    expect(await m.device.uapi('get=1\n\nset=1\nfwmark=0\n\nget=1\n\n')).toBe(
      expected + 'errno=0\n\n' + expected.replace('fwmark=7\n', ''),
    );
  });

  test('a listen_port in use answers errno=-98 and changes nothing, in text and in configure()', async () => {
    const net = createFakeNetwork();
    const n = node(net, 'wgtsE', '192.0.2.5');
    const busy = net.bind({ address: '192.0.2.5', port: 45000 });
    n.device.configure({ privateKey: n.privateKey, listenPort: 44000 });
    const before = await n.device.uapi('get=1\n\n');
    const peer = keypair();
    const set = `set=1\nlisten_port=45000\npublic_key=${keyToHex(keyFromBase64(peer.publicKey))}\nallowed_ip=10.0.0.0/8\n\n`;
    expect(await n.device.uapi(set)).toBe('errno=-98\n\n');
    expect(await n.device.uapi('get=1\n\n')).toBe(before);
    expect(n.device.listenPort).toBe(44000);

    let thrown: unknown;
    try {
      n.device.configure({ listenPort: 45000, peers: [{ publicKey: peer.publicKey }] });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UapiError);
    expect((thrown as UapiError).code).toBe('EADDRINUSE');
    expect((thrown as UapiError).errno).toBe(98);
    expect(await n.device.uapi('get=1\n\n')).toBe(before);

    // Once free, the same request applies; the old port is released.
    busy.close();
    expect(await n.device.uapi(set)).toBe('errno=0\n\n');
    expect(n.device.listenPort).toBe(45000);
    expect(() => net.bind({ address: '192.0.2.5', port: 44000 }).close()).not.toThrow();
    // Setting the port it already has keeps the bind (no EADDRINUSE against itself).
    expect(await n.device.uapi('set=1\nlisten_port=45000\n\n')).toBe('errno=0\n\n');
    // listen_port=0 picks a new free port, reported by get=1.
    expect(await n.device.uapi('set=1\nlisten_port=0\n\n')).toBe('errno=0\n\n');
    const state = parseGet(await n.device.uapi('get=1\n\n'));
    expect(state.ok && state.state.listenPort).toBe(n.device.listenPort);
    expect(n.device.listenPort).not.toBe(0);
  });

  test('configure() refuses malformed input with TypeError/RangeError and applies nothing', async () => {
    const net = createFakeNetwork();
    const n = node(net, 'wgtsF', '192.0.2.6');
    const before = await n.device.uapi('get=1\n\n');
    const pk = keypair().publicKey;
    expect(() => n.device.configure({ privateKey: 'not a key' })).toThrow(TypeError);
    expect(() => n.device.configure({ privateKey: new Uint8Array(31) })).toThrow(RangeError);
    expect(() => n.device.configure({ listenPort: 70000 })).toThrow(RangeError);
    expect(() =>
      n.device.configure({ peers: [{ publicKey: pk, allowedIps: ['10.0.0.0/33'] }] }),
    ).toThrow(TypeError);
    expect(() =>
      n.device.configure({ peers: [{ publicKey: pk, endpoint: 'example.com:51820' }] }),
    ).toThrow(TypeError);
    expect(() =>
      n.device.configure({ peers: [{ publicKey: pk, endpoint: '2001:db8::1:51820' }] }),
    ).toThrow(TypeError);
    expect(() =>
      n.device.configure({ peers: [{ publicKey: pk, persistentKeepalive: -1 }] }),
    ).toThrow(RangeError);
    expect(await n.device.uapi('get=1\n\n')).toBe(before);
  });

  test('malformed set=1 text is answered with its errno and applies nothing', async () => {
    const net = createFakeNetwork();
    const n = node(net, 'wgtsG', '192.0.2.7');
    n.device.configure({ privateKey: n.privateKey, listenPort: 40100 });
    const before = await n.device.uapi('get=1\n\n');
    const pk = keyToHex(keyFromBase64(keypair().publicKey));
    expect(await n.device.uapi('set=1\nlisten_port=99999\n\n')).toBe('errno=-22\n\n');
    expect(await n.device.uapi('set=1\nnonsense\n\n')).toBe('errno=-71\n\n');
    // A valid peer followed by an invalid line: nothing of the request is applied.
    expect(
      await n.device.uapi(`set=1\npublic_key=${pk}\nallowed_ip=10.0.0.0/8\nendpoint=nowhere\n\n`),
    ).toBe('errno=-22\n\n');
    expect(await n.device.uapi('get=1\nX')).toBe('errno=-22\n\n');
    expect(await n.device.uapi('hello\n\n')).toBe('');
    expect(await n.device.uapi('get=1\n\n')).toBe(before);
  });
});

describe('timers and failures', () => {
  test('the engine timer retransmits an unanswered initiation after REKEY_TIMEOUT', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const net = createFakeNetwork();
    const a = node(net, 'wgtsH', '192.0.2.8');
    const b = keypair();
    a.device.configure({
      privateKey: a.privateKey,
      peers: [
        { publicKey: b.publicKey, endpoint: '192.0.2.99:51820', allowedIps: ['10.9.0.0/16'] },
      ],
    });
    let initiations = 0;
    net.setFilter((d) => {
      if (d.data[0] === INITIATION) initiations++;
      return true;
    });
    a.tun.inject([udpPacket('10.0.0.1', '10.9.0.1', new Uint8Array([1]))]);
    await Promise.resolve();
    net.flush();
    expect(initiations).toBe(1);
    vi.advanceTimersByTime(REKEY_TIMEOUT_MS - 1);
    net.flush();
    expect(initiations).toBe(1);
    vi.advanceTimersByTime(REKEY_TIMEOUT_JITTER_MAX_MS + 2);
    net.flush();
    expect(initiations).toBe(2);
  });

  test('a bug in the I/O path becomes a counted internal-error, and traffic goes on', async () => {
    let failNext = false;
    const { a, b } = pair({
      bindHook: (bind) =>
        new Proxy(bind, {
          get(target, prop) {
            if (prop === 'send') {
              return (d: Parameters<UdpBind['send']>[0]) => {
                if (failNext) {
                  failNext = false;
                  throw new Error('simulated bug');
                }
                return target.send(d);
              };
            }
            const v = Reflect.get(target, prop, target) as unknown;
            return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
          },
        }),
    });
    const first = nextWrite(b.tun);
    a.tun.inject([udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([1]))]);
    await first;
    failNext = true;
    a.tun.inject([udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([2]))]);
    expect(a.device.drops()['internal-error']).toBe(1);
    const next = nextWrite(b.tun);
    a.tun.inject([udpPacket('10.0.0.1', '10.0.0.2', new Uint8Array([3]))]);
    expect((await next)[28]).toBe(3);
    // Data packets sent before the failure count as sent; nothing else broke.
    expect(a.device.closed).toBe(false);
  });

  test('the TUN going away closes the device and settles done with the error; close() settles with null', async () => {
    const net = createFakeNetwork();
    const a = node(net, 'wgtsI', '192.0.2.10');
    a.tun.fail();
    const err = await a.device.done;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error & { code?: string }).code).toBe('EBADFD');
    expect(a.device.closed).toBe(true);
    expect(a.tun.device.closed).toBe(true);

    const b = node(net, 'wgtsJ', '192.0.2.11');
    b.device.configure({ privateKey: b.privateKey });
    b.device.close();
    b.device.close();
    expect(await b.device.done).toBeNull();
    expect(() => b.device.configure({ listenPort: 1 })).toThrow(/closed/);
    // A closed device's port is free again.
    expect(() => net.bind({ address: '192.0.2.11', port: 40000 }).close()).not.toThrow();
  });
});

describe('non-WireGuard datagrams on the WireGuard port', () => {
  test('go to onForeignDatagram with their source, and sendRaw leaves from the WireGuard port', async () => {
    const { net, a, b } = pair();
    const seen: Array<{ data: Uint8Array; from: string }> = [];
    b.device.onForeignDatagram((data, from) =>
      seen.push({ data, from: `${from.ip}:${from.port}` }),
    );
    const probe = new Uint8Array(64).fill(0xee); // first byte is no WireGuard message type
    expect(a.device.sendRaw([{ endpoint: { ip: '192.0.2.2', port: 51821 }, data: probe }])).toBe(1);
    net.flush();
    expect(seen).toEqual([{ data: probe, from: '192.0.2.1:51820' }]);
    // Without a callback the engine counts them as malformed, as before.
    b.device.onForeignDatagram(null);
    a.device.sendRaw([{ endpoint: { ip: '192.0.2.2', port: 51821 }, data: probe }]);
    net.flush();
    expect(seen).toHaveLength(1);
    expect(b.device.drops().malformed).toBe(1);
  });
});
