/**
 * The names a node answers for, made from its network map: itself, its peers, the external
 * clients and the admin's custom records, all under the network's domain. Pure and immutable.
 */
import type { NetworkMap } from '@wiremesh/protocol';

/** The addresses of one name. */
export interface NameAddresses {
  v4: readonly string[];
  v6: readonly string[];
}

/** Every name of a network's domain, keyed by lower-case FQDN without the final dot. */
export interface DnsTable {
  /** The domain, lower case, without the final dot (`demo`). */
  domain: string;
  names: ReadonlyMap<string, NameAddresses>;
}

/** An empty table (no domain answers anything). */
export const EMPTY_TABLE: DnsTable = { domain: '', names: new Map() };

/**
 * Builds the table of `map`. A name listed twice (which the coordinator prevents) keeps its first
 * owner: the node itself, then peers, then records, so nobody can take a node's name.
 */
export function tableFromMap(map: NetworkMap): DnsTable {
  const names = new Map<string, NameAddresses>();
  const put = (fqdn: string, v4: string | null, v6: string | null): void => {
    const key = fqdn.toLowerCase();
    if (names.has(key)) return;
    names.set(key, { v4: v4 === null ? [] : [v4], v6: v6 === null ? [] : [v6] });
  };
  put(map.self.dnsName, map.self.addressV4, map.self.addressV6);
  for (const p of map.peers) put(p.dnsName, p.addressV4, p.addressV6);
  for (const r of map.network.dnsRecords ?? []) put(r.dnsName, r.addressV4, r.addressV6);
  return { domain: map.network.dnsDomain.toLowerCase(), names };
}

/** Whether two tables answer every query alike (a map change that left the names alone). */
export function sameTable(a: DnsTable, b: DnsTable): boolean {
  if (a.domain !== b.domain || a.names.size !== b.names.size) return false;
  for (const [k, v] of a.names) {
    const w = b.names.get(k);
    if (w === undefined || w.v4.join() !== v.v4.join() || w.v6.join() !== v.v6.join()) return false;
  }
  return true;
}

/** The table as hosts-file lines (`address name`), sorted by name, IPv4 before IPv6. */
export function hostsLines(t: DnsTable): string[] {
  const out: string[] = [];
  for (const name of [...t.names.keys()].sort()) {
    const a = t.names.get(name);
    for (const ip of [...(a?.v4 ?? []), ...(a?.v6 ?? [])]) out.push(`${ip} ${name}`);
  }
  return out;
}
