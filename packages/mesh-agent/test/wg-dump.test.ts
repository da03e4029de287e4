import { describe, expect, it } from 'vitest';
import { parseIpAddr, parseIpRoutes, parseWgDump } from '../src/dataplane/wg-dump.js';
import { key } from './fixtures.js';

describe('parseWgDump', () => {
  it('reads the interface and peers of `wg show IFACE dump` without keeping the private key', () => {
    const text =
      `PRIVATEKEYPRIVATEKEYPRIVATEKEYPRIVATEKEY000=\t${key(1)}\t51820\toff\n` +
      `${key(2)}\t(none)\t192.0.2.2:51820\t10.8.0.2/32,192.168.100.0/24\t1700000000\t1024\t2048\t25\n` +
      `${key(3)}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`;
    const d = parseWgDump(text);
    expect(JSON.stringify(d)).not.toContain('PRIVATEKEY');
    expect(d?.device).toEqual({ publicKey: key(1), listenPort: 51820, fwmark: null });
    expect(d?.peers).toEqual([
      {
        publicKey: key(2),
        hasPresharedKey: false,
        endpoint: '192.0.2.2:51820',
        allowedIps: ['10.8.0.2/32', '192.168.100.0/24'],
        latestHandshakeS: 1700000000,
        rxBytes: 1024,
        txBytes: 2048,
        persistentKeepalive: 25,
      },
      {
        publicKey: key(3),
        hasPresharedKey: false,
        endpoint: null,
        allowedIps: [],
        latestHandshakeS: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 0,
      },
    ]);
  });

  it('says whether a preshared key is set without keeping it, and reads the fwmark', () => {
    const text =
      `PRIVATEKEYPRIVATEKEYPRIVATEKEYPRIVATEKEY000=\t${key(1)}\t51820\t0x2a\n` +
      `${key(2)}\tPRESHAREDPRESHAREDPRESHAREDPRESHARED0000=\t(none)\t(none)\t0\t0\t0\toff\n`;
    const d = parseWgDump(text);
    expect(JSON.stringify(d)).not.toContain('PRESHARED');
    expect(d?.device.fwmark).toBe(42);
    expect(d?.peers[0]?.hasPresharedKey).toBe(true);
  });

  it('returns null for output that is not a dump', () => {
    expect(parseWgDump('')).toBeNull();
    expect(parseWgDump('garbage')).toBeNull();
  });
});

describe('iproute2 JSON', () => {
  it('reads link state, MTU, kind and global addresses', () => {
    const text = JSON.stringify([
      {
        ifname: 'wm-demo',
        flags: ['POINTOPOINT', 'NOARP', 'UP', 'LOWER_UP'],
        mtu: 1420,
        linkinfo: { info_kind: 'tun' },
        addr_info: [
          { family: 'inet', local: '10.8.0.1', prefixlen: 16, scope: 'global' },
          { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
        ],
      },
    ]);
    expect(parseIpAddr(text)).toEqual({
      up: true,
      mtu: 1420,
      addresses: ['10.8.0.1/16'],
      kind: 'tun',
    });
    expect(parseIpAddr('[]')).toBeNull();
    expect(parseIpAddr('not json')).toBeNull();
  });

  it('reads route destinations', () => {
    expect(
      parseIpRoutes(
        JSON.stringify([{ dst: '192.168.100.0/24' }, { dst: 'default' }, { dst: '10.1.2.3' }]),
        4,
      ),
    ).toEqual(['0.0.0.0/0', '10.1.2.3/32', '192.168.100.0/24']);
  });
});
