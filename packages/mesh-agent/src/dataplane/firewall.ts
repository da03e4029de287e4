/**
 * Gateway forwarding: the sysctl and the FORWARD/MASQUERADE rules of the egress role, and the
 * mesh-to-mesh FORWARD rule of an ingress gateway or relay. With iptables every rule carries the
 * comment `wiremesh:<iface>:<hash of the rule>`, so the agent adds, finds and deletes exactly its
 * own rules; with nftables (hosts without iptables) the rules live in a table of their own.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RULE_HASH_HEX_DIGITS, RULE_TAG_PREFIX } from '../constants.js';
import { AgentError } from '../errors.js';
import type { Logger } from '../log.js';
import type { DesiredForwarding } from '../reconcile/netmap.js';
import { isIpv6 } from '../prefix.js';
import { commandError, findExecutable, type Runner } from '../runner.js';

/** One rule: family, table, chain and the match/target arguments (without the comment). */
export interface FirewallRule {
  readonly family: 4 | 6;
  readonly table: 'filter' | 'nat';
  readonly chain: 'FORWARD' | 'POSTROUTING';
  readonly spec: readonly string[];
}

/** Reads and writes /proc/sys (an interface so tests need no root). */
export interface ProcSys {
  read(key: string): string | null;
  write(key: string, value: string): void;
}

/** /proc/sys of this host (this network namespace). */
export const systemProcSys: ProcSys = {
  read(key) {
    try {
      return readFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, 'utf8').trim();
    } catch {
      return null;
    }
  },
  write(key, value) {
    writeFileSync(`/proc/sys/${key.replaceAll('.', '/')}`, `${value}\n`);
  },
};

/** Host-wide ICMP redirects (ORed with each interface's own setting). */
const REDIRECTS_ALL = 'net.ipv4.conf.all.send_redirects';

const FORWARD_KEY: Record<4 | 6, string> = {
  4: 'net.ipv4.ip_forward',
  6: 'net.ipv6.conf.all.forwarding',
};

/**
 * The rules `forwarding` needs on interface `iface`. Pure; returns a new array, sorted by role:
 * accept into the ranges, accept replies back, masquerade towards the ranges, mesh-to-mesh.
 */
export function forwardingRules(
  iface: string,
  forwarding: DesiredForwarding | null,
): FirewallRule[] {
  const rules: FirewallRule[] = [];
  if (forwarding === null) return rules;
  const fam = (c: string): 4 | 6 => (isIpv6(c) ? 6 : 4);
  const egress = forwarding.egress;
  if (egress !== null) {
    for (const r of egress.ranges) {
      const family = fam(r);
      rules.push({
        family,
        table: 'filter',
        chain: 'FORWARD',
        spec: ['-i', iface, '-d', r, '-j', 'ACCEPT'],
      });
      rules.push({
        family,
        table: 'filter',
        chain: 'FORWARD',
        spec: ['-o', iface, '-s', r, '-j', 'ACCEPT'],
      });
      for (const s of egress.sources.filter((x) => fam(x) === family)) {
        const out = egress.outInterface === '' ? [] : ['-o', egress.outInterface];
        rules.push({
          family,
          table: 'nat',
          chain: 'POSTROUTING',
          spec: ['-s', s, '-d', r, ...out, '-j', 'MASQUERADE'],
        });
      }
    }
  }
  {
    for (const family of forwarding.meshToMesh) {
      rules.push({
        family,
        table: 'filter',
        chain: 'FORWARD',
        spec: ['-i', iface, '-o', iface, '-j', 'ACCEPT'],
      });
    }
  }
  return rules;
}

/** The comment tag of `rule` on `iface`: `wiremesh:<iface>:<hash>`. */
export function ruleTag(iface: string, rule: FirewallRule): string {
  const h = createHash('sha256')
    .update(JSON.stringify([rule.family, rule.table, rule.chain, rule.spec]))
    .digest('hex')
    .slice(0, RULE_HASH_HEX_DIGITS);
  return `${RULE_TAG_PREFIX}:${iface}:${h}`;
}

/** A tagged rule found in `iptables -S` output: its tag and the arguments that delete it. */
export interface TaggedRule {
  readonly tag: string;
  readonly deleteArgs: string[];
}

/** Splits one `iptables -S` line into arguments (double quotes grouped, as iptables-save quotes). */
function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) out.push(m[1] ?? m[2] ?? '');
  return out;
}

/**
 * Finds the rules in `iptables -S CHAIN` output whose comment starts with `prefix`. Returns each
 * with its tag and the `-D ...` arguments that remove it. Pure; never throws.
 */
export function parseTaggedRules(text: string, prefix: string): TaggedRule[] {
  const out: TaggedRule[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('-A ')) continue;
    const args = splitRuleLine(line);
    const i = args.indexOf('--comment');
    const tag = i >= 0 ? args[i + 1] : undefined;
    if (tag === undefined || !tag.startsWith(prefix)) continue;
    out.push({ tag, deleteArgs: ['-D', ...args.slice(1)] });
  }
  return out;
}

/** Applies forwarding roles for one interface and removes them again. */
export interface Firewall {
  /**
   * Makes the host's rules for `iface` exactly those `forwarding` needs (null: none), and turns
   * IP forwarding on as needed (back off when the agent turned it on and no rule needs it any
   * more). Returns one line per change (empty when nothing changed). Throws AgentError when the
   * tools fail.
   */
  reconcile(iface: string, forwarding: DesiredForwarding | null): Promise<string[]>;
}

/** Options of `createFirewall`. */
export interface FirewallOptions {
  runner: Runner;
  /** Where the original forwarding sysctls are remembered (the state directory). */
  stateDir: string;
  log: Logger;
  procSys?: ProcSys;
  /** Force a tool; by default iptables when installed, else nft. */
  tool?: 'iptables' | 'nft';
}

interface SavedSysctls {
  [key: string]: string;
}

const SAVED_FILE = 'forwarding.json';

/**
 * A Firewall on iptables/ip6tables (rules tagged by comment) or nftables (one table per
 * interface, replaced atomically). Returns the Firewall; tools are looked up on first use.
 */
export function createFirewall(opts: FirewallOptions): Firewall {
  const procSys = opts.procSys ?? systemProcSys;
  const savedPath = join(opts.stateDir, SAVED_FILE);
  const loadSaved = (): SavedSysctls => {
    try {
      return JSON.parse(readFileSync(savedPath, 'utf8')) as SavedSysctls;
    } catch {
      return {};
    }
  };
  const pickTool = (): 'iptables' | 'nft' => {
    if (opts.tool !== undefined) return opts.tool;
    if (findExecutable('iptables') !== null) return 'iptables';
    if (findExecutable('nft') !== null) return 'nft';
    throw new AgentError(
      'no_tool',
      'a gateway needs iptables or nftables and neither is installed: install iptables (or nftables) and run again',
    );
  };

  const run = async (cmd: string, args: string[], input?: string): Promise<string> => {
    const r = await opts.runner.run(cmd, args, input);
    if (r.code !== 0)
      throw new AgentError(
        'system',
        `${cmd} ${args.slice(0, 4).join(' ')} failed: ${commandError(r)}`,
      );
    return r.stdout;
  };

  const iptablesReconcile = async (
    iface: string,
    rules: FirewallRule[],
  ): Promise<{ changes: string[]; anyLeft: Record<4 | 6, boolean> }> => {
    const changes: string[] = [];
    const anyLeft: Record<4 | 6, boolean> = { 4: false, 6: false };
    const want = new Map(rules.map((r) => [ruleTag(iface, r), r]));
    const mine = `${RULE_TAG_PREFIX}:${iface}:`;
    for (const family of [4, 6] as const) {
      const cmd = family === 4 ? 'iptables' : 'ip6tables';
      const needed = rules.some((r) => r.family === family);
      if (!needed && findExecutable(cmd) === null) continue;
      for (const [table, chain] of [
        ['filter', 'FORWARD'],
        ['nat', 'POSTROUTING'],
      ] as const) {
        const listed = await opts.runner.run(cmd, ['-w', '-t', table, '-S', chain]);
        if (listed.code !== 0) {
          if (!rules.some((r) => r.family === family && r.table === table)) continue;
          throw new AgentError(
            'system',
            `${cmd} -t ${table} -S ${chain} failed: ${commandError(listed)}`,
          );
        }
        const present = new Set<string>();
        for (const t of parseTaggedRules(listed.stdout, `${RULE_TAG_PREFIX}:`)) {
          if (!t.tag.startsWith(mine)) {
            if (chain === 'FORWARD') anyLeft[family] = true;
            continue;
          }
          if (want.has(t.tag) && !present.has(t.tag)) {
            present.add(t.tag);
            if (chain === 'FORWARD') anyLeft[family] = true;
            continue;
          }
          await run(cmd, ['-w', '-t', table, ...t.deleteArgs]);
          changes.push(`removed ${table}/${chain} rule ${t.tag}`);
        }
        for (const [tag, r] of want) {
          if (r.family !== family || r.table !== table || r.chain !== chain || present.has(tag))
            continue;
          // FORWARD rules go first so a DROP further down (docker, ufw) cannot shadow them.
          const where = chain === 'FORWARD' ? ['-I', chain, '1'] : ['-A', chain];
          await run(cmd, [
            '-w',
            '-t',
            table,
            ...where,
            ...r.spec,
            '-m',
            'comment',
            '--comment',
            tag,
          ]);
          changes.push(`added ${table}/${chain} rule ${tag} (${r.spec.join(' ')})`);
          if (chain === 'FORWARD') anyLeft[family] = true;
        }
      }
    }
    return { changes, anyLeft };
  };

  const nftTable = (iface: string) => `wiremesh_${iface.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const nftExpr = (r: FirewallRule): string => {
    const ipk = r.family === 4 ? 'ip' : 'ip6';
    const parts: string[] = [`meta nfproto ${r.family === 4 ? 'ipv4' : 'ipv6'}`];
    for (let i = 0; i < r.spec.length; i += 2) {
      const k = r.spec[i];
      const v = r.spec[i + 1] ?? '';
      if (k === '-i') parts.push(`iifname "${v}"`);
      else if (k === '-o') parts.push(`oifname "${v}"`);
      else if (k === '-s') parts.push(`${ipk} saddr ${v}`);
      else if (k === '-d') parts.push(`${ipk} daddr ${v}`);
      else if (k === '-j') parts.push(v === 'MASQUERADE' ? 'masquerade' : 'accept');
    }
    return parts.join(' ');
  };
  const nftReconcile = async (
    iface: string,
    rules: FirewallRule[],
  ): Promise<{ changes: string[]; anyLeft: Record<4 | 6, boolean> }> => {
    const table = nftTable(iface);
    const hash = createHash('sha256')
      .update(JSON.stringify(rules))
      .digest('hex')
      .slice(0, RULE_HASH_HEX_DIGITS);
    const current = await opts.runner.run('nft', ['list', 'table', 'inet', table]);
    const exists = current.code === 0;
    const anyLeft = { 4: rules.some((r) => r.family === 4), 6: rules.some((r) => r.family === 6) };
    const others = await opts.runner.run('nft', ['list', 'tables']);
    if (others.stdout.split('\n').some((l) => l.includes('wiremesh_') && !l.includes(table))) {
      anyLeft[4] = true;
      anyLeft[6] = true;
    }
    if (rules.length === 0) {
      if (!exists) return { changes: [], anyLeft };
      await run('nft', ['delete', 'table', 'inet', table]);
      return { changes: [`removed nft table inet ${table}`], anyLeft };
    }
    if (exists && current.stdout.includes(`${RULE_TAG_PREFIX}:${hash}`))
      return { changes: [], anyLeft };
    const fwd = rules
      .filter((r) => r.chain === 'FORWARD')
      .map((r) => `    ${nftExpr(r)} comment "${RULE_TAG_PREFIX}:${hash}"`);
    const nat = rules
      .filter((r) => r.chain === 'POSTROUTING')
      .map((r) => `    ${nftExpr(r)} comment "${RULE_TAG_PREFIX}:${hash}"`);
    // Declaring, deleting and redefining the table in one transaction replaces it atomically.
    const script = [
      `table inet ${table} {}`,
      `delete table inet ${table}`,
      `table inet ${table} {`,
      `  chain forward {`,
      `    type filter hook forward priority filter; policy accept;`,
      ...fwd,
      `  }`,
      `  chain postrouting {`,
      `    type nat hook postrouting priority srcnat; policy accept;`,
      ...nat,
      `  }`,
      `}`,
      '',
    ].join('\n');
    await run('nft', ['-f', '-'], script);
    return {
      changes: [`${exists ? 'replaced' : 'added'} nft table inet ${table} (${rules.length} rules)`],
      anyLeft,
    };
  };

  // Rules this process last made true per interface: an apply that does not change the roles
  // costs no iptables calls (the first reconcile after start always lists, catching leftovers).
  const settled = new Map<string, string>();
  return {
    async reconcile(iface, forwarding) {
      const rules = forwardingRules(iface, forwarding);
      const key = JSON.stringify(rules);
      if (settled.get(iface) === key) return [];
      let tool: 'iptables' | 'nft';
      try {
        tool = pickTool();
      } catch (e) {
        if (rules.length === 0) return [];
        throw e;
      }
      const { changes, anyLeft } =
        tool === 'iptables'
          ? await iptablesReconcile(iface, rules)
          : await nftReconcile(iface, rules);
      const saved = loadSaved();
      let savedChanged = false;
      for (const family of [4, 6] as const) {
        const sysctl = FORWARD_KEY[family];
        const needed = rules.some((r) => r.family === family && r.table === 'filter');
        const value = procSys.read(sysctl);
        if (needed && value !== null && value !== '1') {
          procSys.write(sysctl, '1');
          if (saved[sysctl] === undefined) {
            saved[sysctl] = value;
            savedChanged = true;
          }
          changes.push(`${sysctl}=1`);
        } else if (!needed && !anyLeft[family] && saved[sysctl] !== undefined) {
          // Only a value the agent changed is put back, and only when no interface needs it.
          procSys.write(sysctl, saved[sysctl]);
          changes.push(`${sysctl}=${saved[sysctl]} (restored)`);
          delete saved[sysctl];
          savedChanged = true;
        }
      }
      // Forwarding a packet back out of the interface it came in on (relay, ingress gateway)
      // makes the kernel send ICMP redirects ("reach it directly") to a peer that cannot: off for
      // the interface and for `all` (the kernel ORs the two).
      const relaying = forwarding?.meshToMesh.includes(4) ?? false;
      if (relaying) {
        const own = `net.ipv4.conf.${iface}.send_redirects`;
        // A dot in the name would split the sysctl path; such an interface keeps its setting.
        if (!iface.includes('.') && procSys.read(own) === '1') {
          procSys.write(own, '0');
          changes.push(`${own}=0`);
        }
        const value = procSys.read(REDIRECTS_ALL);
        if (value !== null && value !== '0') {
          procSys.write(REDIRECTS_ALL, '0');
          if (saved[REDIRECTS_ALL] === undefined) {
            saved[REDIRECTS_ALL] = value;
            savedChanged = true;
          }
          changes.push(`${REDIRECTS_ALL}=0`);
        }
      } else if (!anyLeft[4] && saved[REDIRECTS_ALL] !== undefined) {
        procSys.write(REDIRECTS_ALL, saved[REDIRECTS_ALL]);
        changes.push(`${REDIRECTS_ALL}=${saved[REDIRECTS_ALL]} (restored)`);
        delete saved[REDIRECTS_ALL];
        savedChanged = true;
      }
      if (savedChanged) {
        if (Object.keys(saved).length === 0) rmSync(savedPath, { force: true });
        else writeFileSync(savedPath, JSON.stringify(saved));
      }
      for (const c of changes) opts.log.info(`${iface}: firewall: ${c}`);
      settled.set(iface, key);
      return changes;
    },
  };
}
