// The agent's gateway rules on a host without iptables: nftables, one table per interface,
// checked against the real nft(8) inside a namespace (issue 6: "iptables or nft, whichever the
// host has"; the other system tests cover iptables).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createFirewall,
  silentLogger,
  systemRunner,
  type ProcSys,
  type Runner,
} from '@wiremesh/mesh-agent';
import { check, cleanupAll, createNamespace, run } from './harness/netns.js';

afterAll(() => cleanupAll());

describe('nftables gateway rules', () => {
  it('adds one table for the interface, leaves it alone when unchanged, and removes it with the role', async () => {
    const ns = createNamespace('wmnft');
    const host = systemRunner();
    const inNs: Runner = {
      run: (cmd, args, input) => host.run('ip', ['netns', 'exec', ns, cmd, ...args], input),
    };
    const values: Record<string, string> = {
      'net.ipv4.ip_forward': '0',
      'net.ipv6.conf.all.forwarding': '0',
    };
    const procSys: ProcSys = {
      read: (k) => values[k] ?? null,
      write: (k, v) => void (values[k] = v),
    };
    const dir = mkdtempSync(join(tmpdir(), 'wmnft-'));
    try {
      const fw = createFirewall({
        runner: inNs,
        stateDir: dir,
        log: silentLogger,
        procSys,
        tool: 'nft',
      });
      const role = {
        egress: {
          ranges: ['192.168.77.0/24', 'fd77::/64'],
          outInterface: 'lan0',
          sources: ['10.200.0.0/16', 'fd00:200::/64'],
        },
        meshToMesh: [4] as (4 | 6)[],
      };
      const added = await fw.reconcile('wm-test', role);
      expect(added[0]).toMatch(/added nft table inet wiremesh_wm_test/);
      const table = await check(ns, ['nft', 'list', 'table', 'inet', 'wiremesh_wm_test']);
      expect(table).toMatch(/iifname "wm-test" ip daddr 192\.168\.77\.0\/24 accept/);
      expect(table).toMatch(
        /ip saddr 10\.200\.0\.0\/16 ip daddr 192\.168\.77\.0\/24 oifname "lan0" masquerade/,
      );
      expect(table).toMatch(
        /ip6 saddr fd00:200::\/64 ip6 daddr fd77::\/64 oifname "lan0" masquerade/,
      );
      expect(table).toMatch(/iifname "wm-test" oifname "wm-test" accept/);
      expect(values['net.ipv4.ip_forward']).toBe('1');
      expect(values['net.ipv6.conf.all.forwarding']).toBe('1');

      // A restarted agent recognises the table by its hash and changes nothing.
      const again = createFirewall({
        runner: inNs,
        stateDir: dir,
        log: silentLogger,
        procSys,
        tool: 'nft',
      });
      expect(await again.reconcile('wm-test', role)).toEqual([]);

      expect(await again.reconcile('wm-test', null)).toContain(
        'removed nft table inet wiremesh_wm_test',
      );
      expect((await run(ns, ['nft', 'list', 'table', 'inet', 'wiremesh_wm_test'])).status).not.toBe(
        0,
      );
      expect(values).toEqual({ 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
