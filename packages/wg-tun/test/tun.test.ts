/**
 * The native TUN device (src/tun.ts over wgtun.node) against the real kernel, as root: ping through
 * it in a namespace the test makes, batched reads, writes while down, deletion, and every error the
 * issue names. The fake TUN is held to the same contract at the end.
 */
import { closeSync, openSync } from 'node:fs';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createFakeTun, openTun, type PacketBatch, type TunDevice } from '../src/tun.js';
import { echoReply, udpPayload } from './packets.js';
import { createNetns, deadline, run, spawnBounded, uniqueTag, type Netns } from './netns.js';

const WAIT_MS = 15_000;
const V4_LOCAL = '10.201.0.1';
const V4_PEER = '10.201.0.2';
const V6_LOCAL = 'fd00:201::1';
const V6_PEER = 'fd00:201::2';

/** Opens a TUN with a unique name and moves it into `ns`, addressed and up (unless `up` is false). */
function tunInNetns(ns: Netns, opts: { batchSize?: number; up?: boolean } = {}): TunDevice {
  const tun = openTun({ name: `wmt${uniqueTag()}`, mtu: 1420, batchSize: opts.batchSize ?? 64 });
  try {
    run('ip', ['link', 'set', 'dev', tun.name, 'netns', ns.name]);
    ns.ip('addr', 'add', `${V4_LOCAL}/24`, 'dev', tun.name);
    ns.ip('-6', 'addr', 'add', `${V6_LOCAL}/64`, 'dev', tun.name, 'nodad');
    if (opts.up !== false) ns.ip('link', 'set', tun.name, 'up');
  } catch (err) {
    tun.close();
    throw err;
  }
  return tun;
}

function linkExists(name: string, ns?: Netns): boolean {
  try {
    if (ns) ns.ip('link', 'show', name);
    else run('ip', ['link', 'show', name]);
    return true;
  } catch {
    return false;
  }
}

describe('native TUN in a network namespace', () => {
  let ns: Netns;
  beforeAll(() => {
    ns = createNetns('tun');
  });
  afterAll(() => ns?.remove());

  it.each([
    ['IPv4', ['ping', '-c', '3', '-i', '0.2', '-W', '2', '-w', '10', V4_PEER]],
    ['IPv6', ['ping', '-6', '-c', '3', '-i', '0.2', '-W', '2', '-w', '10', V6_PEER]],
  ])(
    'answers %s ping: reads the echo requests, writes replies, ping succeeds',
    async (_family, ping) => {
      const tun = tunInNetns(ns);
      try {
        expect(() => tun.mtu()).toThrow(/another network namespace/); // the interface moved away
        let requests = 0;
        tun.onPackets((batch) => {
          const replies: Uint8Array[] = [];
          for (let i = 0; i < batch.count; i++) {
            const reply = echoReply(batch.packet(i));
            if (reply !== undefined) replies.push(reply);
          }
          requests += replies.length;
          if (replies.length > 0) expect(tun.writePackets(replies)).toBe(replies.length);
        });
        const exit = await spawnBounded('ip', ['netns', 'exec', ns.name, ...ping], WAIT_MS);
        expect(exit.stdout).toContain('3 received');
        expect(exit.code).toBe(0);
        expect(requests).toBeGreaterThanOrEqual(3);
        const stats = tun.stats();
        expect(stats.txPackets).toBe(requests);
        expect(stats.rxPackets).toBeGreaterThanOrEqual(requests);
      } finally {
        tun.close();
      }
    },
  );

  it('reads packets queued in the kernel in full batches, one callback per batch', async () => {
    const batchSize = 32;
    const total = 300; // below the TUN queue's 500 packets, so none drop while paused
    const tun = tunInNetns(ns, { batchSize });
    try {
      const seen = new Set<number>();
      const sizes: number[] = [];
      const all = deadline(`${total} UDP packets through the TUN`, WAIT_MS);
      tun.pause();
      tun.onPackets((batch: PacketBatch) => {
        sizes.push(batch.count);
        for (let i = 0; i < batch.count; i++) {
          const udp = udpPayload(batch.packet(i));
          if (udp?.dstPort === 9) seen.add(Number(new TextDecoder().decode(udp.payload)));
        }
        if (seen.size === total) all.done();
      });
      const sender = `const s=require('dgram').createSocket('udp4');let i=0;const next=()=>i<${total}?s.send(String(i++),9,'${V4_PEER}',next):s.close();next();`;
      const exit = await spawnBounded(
        'ip',
        ['netns', 'exec', ns.name, process.execPath, '-e', sender],
        WAIT_MS,
      );
      expect(exit.stderr).toBe('');
      expect(sizes).toEqual([]); // paused: nothing read yet
      tun.resume();
      await all.promise;
      expect([...seen].sort((a, b) => a - b)).toEqual([...Array(total).keys()]);
      expect(Math.max(...sizes)).toBe(batchSize);
      expect(sizes.length).toBeLessThanOrEqual(Math.ceil(total / batchSize) + 2); // + stray IPv6 chatter
      expect(tun.stats().rxBatches).toBe(sizes.length);
    } finally {
      tun.close();
    }
  });

  it('counts writes to a down link as errors (EIO) instead of throwing', () => {
    const tun = tunInNetns(ns, { up: false });
    try {
      // an IPv4 ICMP echo request 10.201.0.2 -> 10.201.0.1, 28 bytes
      const packet = Buffer.from(
        '4500001c00004000400100000ac900020ac90001' + '0800f7ff00000000',
        'hex',
      );
      expect(tun.writePackets([packet, packet])).toBe(0);
      expect(tun.stats()).toMatchObject({ txPackets: 0, txErrors: 2, lastError: 'EIO' });
    } finally {
      tun.close();
    }
  });

  it('reports a deleted interface once through onError (EBADFD) and stops reading', async () => {
    const tun = tunInNetns(ns);
    try {
      const name = tun.name;
      const gone = deadline('onError after ip link del', WAIT_MS);
      let error: (Error & { code?: string }) | undefined;
      tun.onPackets(() => {});
      tun.onError((err) => {
        error = err;
        gone.done();
      });
      ns.ip('link', 'del', name);
      await gone.promise;
      expect(error?.code).toBe('EBADFD');
      expect(error?.message).toMatch(/deleted/);
      expect(tun.name).toBe(name);
    } finally {
      tun.close();
    }
  });
});

describe('native TUN lifecycle and errors', () => {
  it('lets the kernel choose the name, and close() removes the interface', () => {
    const tun = openTun();
    let name = '';
    try {
      name = tun.name;
      expect(name).toMatch(/^tun\d+$/);
      expect(linkExists(name)).toBe(true);
      tun.setMtu(1420);
      expect(tun.mtu()).toBe(1420);
    } finally {
      tun.close();
    }
    tun.close(); // idempotent
    expect(tun.closed).toBe(true);
    expect(linkExists(name)).toBe(false);
    expect(tun.writePackets([new Uint8Array(20)])).toBe(0);
  });

  it('hands its fd to a child process that adopts it, as a daemonizing parent would', async () => {
    const tun = openTun({ name: `wmt${uniqueTag()}` });
    const name = tun.name;
    let exit;
    try {
      const addon = fileURLToPath(new URL('../build/Release/wgtun.node', import.meta.url));
      const script = `const t=new (require(${JSON.stringify(addon)}).Tun)('','',8,2048,3);console.log(t.createdName,t.fd(),JSON.stringify(t.offloads()));t.close()`;
      exit = await spawnBounded(process.execPath, ['-e', script], WAIT_MS, [tun.fd]);
    } finally {
      tun.close();
    }
    expect(exit.stderr).toBe('');
    // The parent attached with IFF_VNET_HDR (offloads on): the child keeps the header, offloads off.
    expect(exit.stdout.trim()).toBe(
      `${name} 3 ${JSON.stringify({ vnetHeader: true, tso: false, uso: false, note: 'turned off' })}`,
    );
    expect(linkExists(name)).toBe(false); // both copies closed: the interface is gone
  });

  it('refuses to adopt an fd that is not an attached TUN device', () => {
    expect(() => openTun({ fd: 987_654 })).toThrow(expect.objectContaining({ code: 'EBADF' }));
    const devNull = openSync('/dev/null', 'r');
    try {
      expect(() => openTun({ fd: devNull })).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    } finally {
      closeSync(devNull);
    }
    expect(() => openTun({ fd: -2 })).toThrow(RangeError);
  });

  it('refuses a name over 15 bytes before any syscall', () => {
    // the device path does not exist: reaching open() would give ENOENT instead
    expect(() => openTun({ name: 'wmt-sixteen-byte', devicePath: '/nonexistent' })).toThrow(
      RangeError,
    );
    expect(() => openTun({ name: 'wmt-sixteen-byte' })).toThrow(/at most 15/);
    expect(() => openTun({ name: 'bad/name' })).toThrow(TypeError);
  });

  it('gives EBUSY for a name another open device holds', () => {
    const first = openTun({ name: `wmt${uniqueTag()}` });
    try {
      expect(() => openTun({ name: first.name })).toThrow(
        expect.objectContaining({
          code: 'EBUSY',
          message: expect.stringMatching(/in use.*choose another name/),
        }),
      );
    } finally {
      first.close();
    }
  });

  it('gives EINVAL for a name held by an interface that is not TUN', () => {
    expect(() => openTun({ name: 'lo' })).toThrow(
      expect.objectContaining({
        code: 'EINVAL',
        message: expect.stringMatching(/not a TUN device/),
      }),
    );
  });

  it('gives ENOENT with instructions when /dev/net/tun is missing', () => {
    expect(() => openTun({ devicePath: '/nonexistent/net/tun' })).toThrow(
      expect.objectContaining({
        code: 'ENOENT',
        syscall: 'open',
        message: expect.stringMatching(/modprobe tun/),
      }),
    );
  });

  it('gives EPERM naming CAP_NET_ADMIN when the capability is missing', async () => {
    const addon = fileURLToPath(new URL('../build/Release/wgtun.node', import.meta.url));
    const script = `try{new (require(${JSON.stringify(addon)}).Tun)('/dev/net/tun','wmt${uniqueTag()}',8,2048,-1);console.log('opened')}catch(e){console.log(e.code+' '+e.message)}`;
    const exit = await spawnBounded(
      'setpriv',
      ['--bounding-set=-net_admin', '--inh-caps=-net_admin', process.execPath, '-e', script],
      WAIT_MS,
    );
    expect(exit.stdout).toMatch(/^EPERM .*CAP_NET_ADMIN/);
  });

  it('checks its arguments', () => {
    expect(() => openTun({ batchSize: 0 })).toThrow(RangeError);
    expect(() => openTun({ slotBytes: 100 })).toThrow(RangeError);
    expect(() => openTun({ mtu: 20 })).toThrow(RangeError);
    const tun = openTun();
    try {
      expect(() => tun.writePackets([new Uint8Array(0)])).toThrow(RangeError);
      expect(() => tun.writePackets([new Uint8Array(65_536)])).toThrow(RangeError);
      expect(() => tun.writePackets(['x' as unknown as Uint8Array])).toThrow(TypeError);
      expect(() => tun.onPackets(undefined as unknown as () => void)).toThrow(TypeError);
    } finally {
      tun.close();
    }
    expect(() => openTun({ offload: 1 as unknown as boolean })).toThrow(TypeError);
  });

  it('reports its offloads: on by default, off when asked or when the ring cannot hold a super-segment', () => {
    const [major = 0, minor = 0] = release().split('.').map(Number);
    const on = openTun();
    try {
      // Linux has had TSO on TUN for ages and USO since 6.2.
      expect(on.offloads).toMatchObject({ vnetHeader: true, tso: true });
      expect(on.offloads.uso).toBe(major > 6 || (major === 6 && minor >= 2));
    } finally {
      on.close();
    }
    const off = openTun({ offload: false });
    const small = openTun({ slotBytes: 2048 });
    try {
      expect(off.offloads).toEqual({
        vnetHeader: false,
        tso: false,
        uso: false,
        note: 'turned off',
      });
      expect(small.offloads).toMatchObject({ vnetHeader: false, tso: false });
      expect(small.offloads.note).toMatch(/64 KiB ring slots/);
    } finally {
      off.close();
      small.close();
    }
  });
});

describe('fake TUN', () => {
  it('delivers injected packets in batches, copies writes, honours pause and fail', () => {
    const fake = createFakeTun({ name: 'fake0', mtu: 1420, batchSize: 2 });
    const got: number[][] = [];
    let kept: PacketBatch | undefined;
    fake.inject([Uint8Array.of(0x45, 1)]); // queued until onPackets
    fake.device.onPackets((batch) => {
      kept = batch;
      got.push(Array.from({ length: batch.count }, (_, i) => batch.packet(i)[1]!));
    });
    fake.inject([Uint8Array.of(0x45, 2), Uint8Array.of(0x45, 3), Uint8Array.of(0x45, 4)]);
    expect(got).toEqual([[1], [2, 3], [4]]);
    expect(() => kept!.packet(0)).toThrow(RangeError); // a batch is dead after its callback

    fake.device.pause();
    fake.inject([Uint8Array.of(0x45, 5)]);
    expect(got.length).toBe(3);
    fake.device.resume();
    expect(got.at(-1)).toEqual([5]);

    const out = Uint8Array.of(0x60, 9);
    expect(fake.device.writePackets([out])).toBe(1);
    out[1] = 0;
    expect(fake.written).toEqual([Uint8Array.of(0x60, 9)]);
    expect(fake.device.mtu()).toBe(1420);

    const errors: string[] = [];
    fake.device.onError((e) => errors.push((e as Error & { code: string }).code));
    fake.fail();
    expect(errors).toEqual(['EBADFD']);
    fake.device.close();
    expect(fake.device.writePackets([out])).toBe(0);
  });

  it('counts writes to a down link', () => {
    const fake = createFakeTun({ up: false });
    expect(fake.device.writePackets([Uint8Array.of(0x45)])).toBe(0);
    expect(fake.device.stats()).toMatchObject({ txErrors: 1, lastError: 'EIO' });
  });
});
