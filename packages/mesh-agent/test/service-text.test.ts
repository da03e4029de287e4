import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nobleCrypto } from '@wiremesh/wg-core';
import { selectCrypto } from '@wiremesh/wg-core/native';
import { PROTOCOL_VERSION } from '@wiremesh/protocol';
import { buildProgram } from '../src/cli.js';
import { cryptoLabel, cryptoStatus } from '../src/cli/crypto-status.js';
import { cronLines, defaultStateDir, procdScript, shellQuote } from '../src/cli/openwrt.js';
import { unitFile } from '../src/cli/systemd.js';
import { AGENT_SEMVER } from '../src/version.js';
import agentPackage from '../package.json' with { type: 'json' };

/** The [Service] settings of a unit as key -> values (a key may repeat). */
function serviceSettings(unit: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const line of unit.split('\n')) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header !== null) section = header[1]!;
    else if (section === 'Service' && line.includes('=')) {
      const key = line.slice(0, line.indexOf('='));
      settings.set(key, [...(settings.get(key) ?? []), line.slice(line.indexOf('=') + 1)]);
    }
  }
  return settings;
}

describe('the agent systemd unit', () => {
  const unit = unitFile(
    ['/usr/bin/node', '/usr/lib/node_modules/wiremesh/dist/cli.js'],
    '/var/lib/wiremesh',
  );
  const s = serviceSettings(unit);

  it('keeps only the network capabilities and a read-only system', () => {
    expect(s.get('CapabilityBoundingSet')).toEqual(['CAP_NET_ADMIN CAP_NET_RAW']);
    expect(s.get('NoNewPrivileges')).toEqual(['yes']);
    expect(s.get('ProtectSystem')).toEqual(['strict']);
    expect(s.get('DevicePolicy')).toEqual(['closed']);
    expect(s.get('DeviceAllow')).toEqual(['/dev/net/tun rw']);
    // An egress gateway writes net.ipv4.ip_forward: /proc/sys must stay writable.
    expect(s.has('ProtectKernelTunables')).toBe(false);
  });

  it('writes only its state directory and the UAPI sockets, which outlive a restart', () => {
    expect(s.get('StateDirectory')).toEqual(['wiremesh']);
    expect(s.get('StateDirectoryMode')).toEqual(['0700']);
    expect(s.get('RuntimeDirectory')).toEqual(['wireguard']);
    expect(s.get('RuntimeDirectoryPreserve')).toEqual(['yes']);
    expect(s.get('KillMode')).toEqual(['process']);
    const custom = serviceSettings(unitFile(['/usr/bin/wiremesh'], '/srv/wm state'));
    expect(custom.get('ReadWritePaths')).toContain('"/srv/wm state"');
    expect(custom.has('StateDirectory')).toBe(false);
  });
});

describe('OpenWrt', () => {
  it('prints two crontab lines, the second 15 s later, quoted for sh', () => {
    expect(cronLines(['/usr/bin/node', "/opt/it's here/cli.js"], '/etc/wiremesh')).toEqual([
      "* * * * * /usr/bin/node '/opt/it'\\''s here/cli.js' checkin --state-dir /etc/wiremesh >/dev/null 2>&1",
      "* * * * * sleep 15; /usr/bin/node '/opt/it'\\''s here/cli.js' checkin --state-dir /etc/wiremesh >/dev/null 2>&1",
    ]);
    expect(shellQuote('plain/path-1.0')).toBe('plain/path-1.0');
    expect(shellQuote('')).toBe("''");
  });

  it('has a procd script that runs the daemon with respawn and reloads with SIGHUP', () => {
    const script = procdScript(['/usr/bin/node', '/usr/lib/wm/cli.js'], '/etc/wiremesh');
    expect(script.startsWith('#!/bin/sh /etc/rc.common\n')).toBe(true);
    expect(script).toContain('USE_PROCD=1');
    expect(script).toContain(
      '\tprocd_set_param command /usr/bin/node /usr/lib/wm/cli.js daemon --state-dir /etc/wiremesh\n',
    );
    expect(script).toContain('\tprocd_set_param respawn');
    expect(script).toContain('reload_service() {\n\tprocd_send_signal wiremesh\n}');
  });

  it('keeps state on flash (/etc/wiremesh) where /etc/openwrt_release exists', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wm-openwrt-'));
    try {
      const release = join(dir, 'openwrt_release');
      expect(defaultStateDir(release)).toBe('/var/lib/wiremesh');
      writeFileSync(release, "DISTRIB_ID='OpenWrt'\n");
      expect(defaultStateDir(release)).toBe('/etc/wiremesh');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('versions and crypto', () => {
  it('--version names the package version and the protocol version', () => {
    expect(AGENT_SEMVER).toBe(agentPackage.version);
    let printed = '';
    const p = buildProgram().configureOutput({ writeOut: (s) => (printed += s) });
    expect(() => p.parse(['node', 'wiremesh', '--version'])).toThrow();
    expect(printed.trim()).toBe(`wiremesh ${agentPackage.version} (protocol ${PROTOCOL_VERSION})`);
  });

  it('status names the crypto provider the userspace devices use', () => {
    const auto = cryptoStatus({});
    expect(auto.provider).toBe(selectCrypto().provider === nobleCrypto ? 'noble' : 'native');
    expect(cryptoStatus({ WGTS_CRYPTO: 'noble' })).toEqual({
      provider: 'noble',
      detail: 'noble forced by option',
    });
    expect(cryptoLabel('kernel', auto)).toBe('kernel');
    expect(cryptoLabel('userspace', auto)).toBe(auto.provider);
  });
});
