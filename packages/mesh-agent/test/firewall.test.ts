import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createFirewall,
  forwardingRules,
  parseTaggedRules,
  ruleTag,
  type ProcSys,
} from '../src/dataplane/firewall.js';
import { silentLogger } from '../src/log.js';
import type { DesiredForwarding } from '../src/reconcile/netmap.js';
import type { CommandResult, Runner } from '../src/runner.js';

/** iptables/ip6tables in memory: `-S`, `-I`, `-A`, `-D`, printing comments quoted as iptables does. */
function fakeIptables(): { runner: Runner; rules: Map<string, string[]>; calls: string[][] } {
  const rules = new Map<string, string[]>();
  const calls: string[][] = [];
  const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
  const runner: Runner = {
    async run(cmd, args) {
      calls.push([cmd, ...args]);
      if (cmd !== 'iptables' && cmd !== 'ip6tables')
        return { code: 127, stdout: '', stderr: 'not found' };
      const a = [...args];
      if (a[0] === '-w') a.shift();
      const table = a[0] === '-t' ? (a.splice(0, 2)[1] ?? 'filter') : 'filter';
      const op = a.shift();
      const chain = a.shift() ?? '';
      const k = `${cmd}/${table}/${chain}`;
      const list = rules.get(k) ?? [];
      rules.set(k, list);
      const text = (spec: string[]) =>
        spec.map((x) => (x.startsWith('wiremesh:') ? `"${x}"` : x)).join(' ');
      if (op === '-S')
        return ok([`-P ${chain} ACCEPT`, ...list.map((l) => `-A ${chain} ${l}`)].join('\n') + '\n');
      if (op === '-I') {
        a.shift();
        list.unshift(text(a));
        return ok();
      }
      if (op === '-A') {
        list.push(text(a));
        return ok();
      }
      if (op === '-D') {
        const i = list.indexOf(text(a));
        if (i < 0) return { code: 1, stdout: '', stderr: 'Bad rule' };
        list.splice(i, 1);
        return ok();
      }
      return { code: 2, stdout: '', stderr: 'bad args' };
    },
  };
  return { runner, rules, calls };
}

function memSys(initial: Record<string, string>): ProcSys & { values: Record<string, string> } {
  const values = { ...initial };
  return { values, read: (k) => values[k] ?? null, write: (k, v) => void (values[k] = v) };
}

const EGRESS: DesiredForwarding = {
  egress: { ranges: ['192.168.100.0/24'], outInterface: 'eth1', sources: ['10.8.0.0/16'] },
  meshToMesh: [],
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wm-agent-fw-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('forwardingRules', () => {
  it('accepts both directions and masquerades towards each range; one tag per rule', () => {
    const rules = forwardingRules('wm-demo', EGRESS);
    expect(rules.map((r) => `${r.table} ${r.chain} ${r.spec.join(' ')}`)).toEqual([
      'filter FORWARD -i wm-demo -d 192.168.100.0/24 -j ACCEPT',
      'filter FORWARD -o wm-demo -s 192.168.100.0/24 -j ACCEPT',
      'nat POSTROUTING -s 10.8.0.0/16 -d 192.168.100.0/24 -o eth1 -j MASQUERADE',
    ]);
    const tags = new Set(rules.map((r) => ruleTag('wm-demo', r)));
    expect(tags.size).toBe(3);
    for (const t of tags) expect(t).toMatch(/^wiremesh:wm-demo:[0-9a-f]{8}$/);
    expect(forwardingRules('wm-demo', null)).toEqual([]);
    expect(
      forwardingRules('wm-demo', { egress: null, meshToMesh: [4] }).map((r) => r.spec.join(' ')),
    ).toEqual(['-i wm-demo -o wm-demo -j ACCEPT']);
  });
});

describe('parseTaggedRules', () => {
  it('finds tagged rules, quoted or not, and builds their delete arguments', () => {
    const text = [
      '-P FORWARD DROP',
      '-A FORWARD -i wm-demo -d 192.168.100.0/24 -m comment --comment "wiremesh:wm-demo:0123abcd" -j ACCEPT',
      '-A FORWARD -i eth0 -m comment --comment "someone else" -j DROP',
      '-A FORWARD -o wm-x -m comment --comment wiremesh:wm-x:ffffffff -j ACCEPT',
    ].join('\n');
    expect(parseTaggedRules(text, 'wiremesh:')).toEqual([
      {
        tag: 'wiremesh:wm-demo:0123abcd',
        deleteArgs: [
          '-D',
          'FORWARD',
          '-i',
          'wm-demo',
          '-d',
          '192.168.100.0/24',
          '-m',
          'comment',
          '--comment',
          'wiremesh:wm-demo:0123abcd',
          '-j',
          'ACCEPT',
        ],
      },
      {
        tag: 'wiremesh:wm-x:ffffffff',
        deleteArgs: [
          '-D',
          'FORWARD',
          '-o',
          'wm-x',
          '-m',
          'comment',
          '--comment',
          'wiremesh:wm-x:ffffffff',
          '-j',
          'ACCEPT',
        ],
      },
    ]);
  });
});

describe('iptables firewall', () => {
  it('adds the egress rules once, turns forwarding on, and removes exactly its own rules', async () => {
    const ipt = fakeIptables();
    const sys = memSys({ 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0' });
    const fw = createFirewall({
      runner: ipt.runner,
      stateDir: dir,
      log: silentLogger,
      procSys: sys,
      tool: 'iptables',
    });
    // Someone else's rule must survive everything the agent does.
    ipt.rules.set('iptables/filter/FORWARD', ['-i eth9 -j DROP']);

    const first = await fw.reconcile('wm-demo', EGRESS);
    expect(first).toHaveLength(4);
    expect(sys.values['net.ipv4.ip_forward']).toBe('1');
    expect(sys.values['net.ipv6.conf.all.forwarding']).toBe('0');
    expect(ipt.rules.get('iptables/filter/FORWARD')).toHaveLength(3);
    expect(ipt.rules.get('iptables/nat/POSTROUTING')).toHaveLength(1);
    // Own rules go before the foreign DROP.
    expect(ipt.rules.get('iptables/filter/FORWARD')?.at(-1)).toBe('-i eth9 -j DROP');

    expect(await fw.reconcile('wm-demo', EGRESS)).toEqual([]);
    // A restarted agent finds its rules by their tags and adds nothing twice.
    const calls = ipt.calls.length;
    const restarted = createFirewall({
      runner: ipt.runner,
      stateDir: dir,
      log: silentLogger,
      procSys: sys,
      tool: 'iptables',
    });
    expect(await restarted.reconcile('wm-demo', EGRESS)).toEqual([]);
    expect(ipt.calls.slice(calls).every((c) => c.includes('-S'))).toBe(true);

    // Another interface's rules are not this interface's business.
    await fw.reconcile('wm-other', { egress: null, meshToMesh: [4] });
    const gone = await fw.reconcile('wm-demo', null);
    expect(gone.filter((c) => c.startsWith('removed'))).toHaveLength(3);
    expect(ipt.rules.get('iptables/filter/FORWARD')).toEqual([
      expect.stringContaining('wiremesh:wm-other:'),
      '-i eth9 -j DROP',
    ]);
    expect(ipt.rules.get('iptables/nat/POSTROUTING')).toEqual([]);
    // wm-other still forwards, so forwarding stays on until it goes too; then it is restored.
    expect(sys.values['net.ipv4.ip_forward']).toBe('1');
    await fw.reconcile('wm-other', null);
    expect(sys.values['net.ipv4.ip_forward']).toBe('0');
    expect(ipt.rules.get('iptables/filter/FORWARD')).toEqual(['-i eth9 -j DROP']);
  });

  it('changes only the rules that differ when the ranges change', async () => {
    const ipt = fakeIptables();
    const sys = memSys({ 'net.ipv4.ip_forward': '1' });
    const fw = createFirewall({
      runner: ipt.runner,
      stateDir: dir,
      log: silentLogger,
      procSys: sys,
      tool: 'iptables',
    });
    await fw.reconcile('wm-demo', EGRESS);
    const wider: DesiredForwarding = {
      ...EGRESS,
      egress: { ...EGRESS.egress!, ranges: ['192.168.100.0/24', '192.168.200.0/24'] },
    };
    const changes = await fw.reconcile('wm-demo', wider);
    expect(changes.every((c) => c.startsWith('added') && c.includes('192.168.200.0/24'))).toBe(
      true,
    );
    expect(changes).toHaveLength(3);
    // It never turned forwarding on, so it never turns it off.
    await fw.reconcile('wm-demo', null);
    expect(sys.values['net.ipv4.ip_forward']).toBe('1');
  });

  it('turns ICMP redirects off while the node forwards between peers (relay), and restores them', async () => {
    const ipt = fakeIptables();
    const sys = memSys({
      'net.ipv4.ip_forward': '0',
      'net.ipv4.conf.all.send_redirects': '1',
      'net.ipv4.conf.wm-relay.send_redirects': '1',
    });
    const fw = createFirewall({
      runner: ipt.runner,
      stateDir: dir,
      log: silentLogger,
      procSys: sys,
      tool: 'iptables',
    });
    const changes = await fw.reconcile('wm-relay', { egress: null, meshToMesh: [4] });
    expect(changes).toEqual(
      expect.arrayContaining([
        'net.ipv4.conf.wm-relay.send_redirects=0',
        'net.ipv4.conf.all.send_redirects=0',
      ]),
    );
    expect(sys.values['net.ipv4.conf.all.send_redirects']).toBe('0');
    expect(sys.values['net.ipv4.conf.wm-relay.send_redirects']).toBe('0');
    // The role goes: the host-wide value the agent changed comes back with ip_forward.
    await fw.reconcile('wm-relay', null);
    expect(sys.values['net.ipv4.conf.all.send_redirects']).toBe('1');
    expect(sys.values['net.ipv4.ip_forward']).toBe('0');
  });
});
