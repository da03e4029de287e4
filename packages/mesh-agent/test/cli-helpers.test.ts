import { describe, expect, it } from 'vitest';
import {
  cronLine,
  defaultNodeName,
  formatStatus,
  type NetworkStatusView,
} from '../src/cli/commands.js';
import { buildProgram } from '../src/cli.js';
import { interfaceName, isInterfaceName } from '../src/dataplane/iface-name.js';
import { unitFile } from '../src/cli/systemd.js';
import { key } from './fixtures.js';

describe('interface names', () => {
  it('are wm-<network>, cut with a hash when too long, always distinct and valid', () => {
    expect(interfaceName('demo')).toBe('wm-demo');
    expect(interfaceName('twelve-chars')).toBe('wm-twelve-chars');
    const a = interfaceName('a-very-long-network-one');
    const b = interfaceName('a-very-long-network-two');
    expect(a).not.toBe(b);
    for (const n of [a, b]) {
      expect(n.length).toBeLessThanOrEqual(15);
      expect(n.startsWith('wm-a-very')).toBe(true);
      expect(isInterfaceName(n)).toBe(true);
    }
    expect(isInterfaceName('has space')).toBe(false);
    expect(isInterfaceName('sixteen-chars-xx')).toBe(false);
  });
});

describe('host integration text', () => {
  it('names the node after the host as a DNS label', () => {
    expect(defaultNodeName('Web_01.example.com')).toBe('web-01');
    expect(defaultNodeName('---')).toBe('node');
  });

  it('prints a cron line and a systemd unit that run this program', () => {
    expect(cronLine(['/usr/bin/node', '/opt/wm/cli.js'], '/var/lib/wiremesh')).toBe(
      '* * * * * /usr/bin/node /opt/wm/cli.js checkin --state-dir /var/lib/wiremesh >/dev/null 2>&1',
    );
    const unit = unitFile(['/usr/bin/node', '/opt/wm/cli.js'], '/var/lib/wiremesh');
    expect(unit).toContain(
      'ExecStart=/usr/bin/node /opt/wm/cli.js daemon --state-dir /var/lib/wiremesh',
    );
    expect(unit).toContain('KillMode=process');
    expect(unit).toContain('ExecReload=/bin/kill -HUP $MAINPID');
    expect(unitFile(['/opt/my dir/wiremesh'], '/s')).toContain(
      'ExecStart="/opt/my dir/wiremesh" daemon',
    );
  });
});

describe('status output', () => {
  it('shows interface, backend, address and one row per peer', () => {
    const now = 1_700_000_100_000;
    const v: NetworkStatusView = {
      network: 'demo',
      interface: 'wm-demo',
      backend: 'userspace',
      up: true,
      node: { id: 'n1', name: 'alpha' },
      server: 'http://c:8080',
      addresses: ['10.8.0.1/16'],
      mapVersion: 12,
      peers: [
        {
          name: 'beta',
          publicKey: key(2),
          kind: 'node',
          endpoint: '192.0.2.2:51820',
          latestHandshakeMs: now - 42_000,
          rxBytes: 2048,
          txBytes: 100,
          path: 'direct',
          via: null,
        },
        {
          name: 'delta',
          publicKey: key(4),
          kind: 'node',
          endpoint: '198.51.100.9:40001',
          latestHandshakeMs: null,
          rxBytes: 0,
          txBytes: 1480,
          path: 'relay',
          via: 'relay1',
        },
        {
          name: 'phone',
          publicKey: key(3),
          kind: 'external',
          endpoint: null,
          latestHandshakeMs: null,
          rxBytes: 0,
          txBytes: 0,
          path: 'direct',
          via: null,
        },
      ],
    };
    const text = formatStatus([v], now);
    expect(text).toContain(
      'network demo: interface wm-demo (up), backend userspace, address 10.8.0.1/16',
    );
    expect(text).toMatch(/beta\s+192\.0\.2\.2:51820\s+42 s ago\s+2\.0 KiB \/ 100 B\s+direct/);
    expect(text).toMatch(/phone \(external\)\s+-\s+never/);
    expect(text).toMatch(
      /delta\s+198\.51\.100\.9:40001\s+never\s+0 B \/ 1\.4 KiB\s+relay via relay1/,
    );
  });
});

describe('command line', () => {
  it('knows every command and validates choices', async () => {
    const p = buildProgram();
    expect(p.commands.map((c) => c.name()).sort()).toEqual([
      'checkin',
      'daemon',
      'join',
      'leave',
      'status',
    ]);
    const join = p.commands.find((c) => c.name() === 'join')!;
    expect(join.options.map((o) => o.long)).toEqual(
      expect.arrayContaining([
        '--server',
        '--network',
        '--key',
        '--name',
        '--daemon',
        '--backend',
        '--port',
        '--state-dir',
      ]),
    );
    p.configureOutput({ writeErr: () => {}, writeOut: () => {} });
    await expect(
      p.parseAsync([
        'node',
        'wiremesh',
        'join',
        '--server',
        'http://x',
        '--network',
        'n',
        '--backend',
        'magic',
      ]),
    ).rejects.toThrow(/magic/);
  });
});
