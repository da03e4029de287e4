/**
 * The DNS aggregate: a network's domain (`dns_domains`, migration 4), the admin's custom records
 * (`dns_records`), and node renames. Names are one namespace with nodes and external clients
 * (`names.ts`). Each change bumps the network's revision, so the new names reach every agent's
 * resolver like any other map change.
 */
import { createRequire } from 'node:module';
import {
  DnsDomain,
  IpAddress,
  type CreateDnsRecordRequest,
  type DnsRecord,
  type MapDnsRecord,
  type NetworkDns,
  type Node,
  type SetDnsDomainRequest,
} from '@wiremesh/protocol';
import { ApiError } from '../api-error.js';
import { UniqueViolation, type Queryable } from '../db.js';
import { newId, type StoreContext } from './context.js';
import { extClientsOf, type ExtClientRecord } from './ext-clients.js';
import { parseValue } from './json.js';
import { assertNameFree } from './names.js';
import { addressesOf, networkByName, rangesOf, type NetworkRecord } from './networks.js';
import { findNode, nodeById, nodeRecordsOf, nodeView, type NodeRecord } from './nodes.js';

/** The suffix of a default domain whose network name is itself a public TLD (RFC 9476 style). */
const PRIVATE_SUFFIX = 'internal';

interface DnsRecordRow {
  id: string;
  network_id: string;
  name: string;
  ip: string;
  created_at: number;
}

/** A stored custom record, parsed. */
export interface DnsRecordRecord {
  readonly id: string;
  readonly networkId: string;
  readonly name: string;
  /** One IPv4 or IPv6 address. */
  readonly ip: string;
  readonly createdAt: number;
}

/** What a network's maps need of its DNS settings. */
export interface NetworkDnsState {
  /** The admin's domain, or null for the default. */
  readonly domain: string | null;
  readonly records: readonly DnsRecordRecord[];
}

function recordOf(r: DnsRecordRow): DnsRecordRecord {
  return {
    id: r.id,
    networkId: r.network_id,
    name: r.name,
    ip: parseValue(IpAddress, r.ip, 'ip', `DNS record ${r.id}`),
    createdAt: Number(r.created_at),
  };
}

const TLDS: ReadonlySet<string> = new Set(
  (createRequire(import.meta.url)('tlds') as string[]).map((t) => t.toLowerCase()),
);

/** Whether `domain`'s last label is a delegated top-level domain of the public DNS root. */
export function shadowsPublicTld(domain: string): boolean {
  return TLDS.has(domain.slice(domain.lastIndexOf('.') + 1));
}

/** The domain of a network without one set: its name, or `<name>.internal` if that is a public TLD. */
export function defaultDomain(networkName: string): string {
  return shadowsPublicTld(networkName) ? `${networkName}.${PRIVATE_SUFFIX}` : networkName;
}

/** The domain a network's names live in. */
export function domainOf(network: NetworkRecord, dns: NetworkDnsState | undefined): string {
  return dns?.domain ?? defaultDomain(network.name);
}

/** The DNS settings of network `networkId` (inside the caller's transaction, if any). */
export async function dnsOf(q: Queryable, networkId: string): Promise<NetworkDnsState> {
  const d = await q.get<{ domain: string }>('SELECT domain FROM dns_domains WHERE network_id = ?', [
    networkId,
  ]);
  const rows = await q.all<DnsRecordRow>(
    'SELECT * FROM dns_records WHERE network_id = ? ORDER BY name',
    [networkId],
  );
  return {
    domain:
      d === undefined ? null : parseValue(DnsDomain, d.domain, 'domain', `network ${networkId}`),
    records: rows.map(recordOf),
  };
}

/** What `mapRecordsOf` reads of a network. */
export interface DnsSource {
  readonly network: NetworkRecord;
  readonly nodes: readonly NodeRecord[];
  readonly extClients: readonly ExtClientRecord[];
  readonly dns?: NetworkDnsState | undefined;
}

/**
 * The external clients and custom records of a network as map records. A name an approved node
 * also has (left from before names were one namespace) is the node's and is skipped here.
 */
export function mapRecordsOf(state: DnsSource, domain: string): MapDnsRecord[] {
  const ranges = rangesOf(state.network);
  const taken = new Set(state.nodes.filter((n) => n.state === 'approved').map((n) => n.name));
  const out: MapDnsRecord[] = [];
  for (const c of state.extClients) {
    if (taken.has(c.name)) continue;
    taken.add(c.name);
    const a = addressesOf(ranges, c.hostIndex);
    out.push({
      name: c.name,
      dnsName: `${c.name}.${domain}`,
      kind: 'external',
      addressV4: a.v4,
      addressV6: a.v6,
    });
  }
  for (const r of state.dns?.records ?? []) {
    if (taken.has(r.name)) continue;
    const v6 = r.ip.includes(':');
    out.push({
      name: r.name,
      dnsName: `${r.name}.${domain}`,
      kind: 'custom',
      addressV4: v6 ? null : r.ip,
      addressV6: v6 ? r.ip : null,
    });
  }
  return out;
}

/**
 * The `dns` list of a new external client: the ingress gateway's mesh address first (then the
 * admin's servers), unless `meshDns` is false: then the admin's servers as given.
 */
export function meshDnsList(
  req: { dns?: string[] | undefined; meshDns?: boolean | undefined },
  ingress: NodeRecord,
  network: NetworkRecord,
): string[] {
  const given = req.dns ?? [];
  if (req.meshDns === false) return given;
  const own = addressesOf(rangesOf(network), ingress.hostIndex).v4;
  return [own, ...given.filter((d) => d !== own)];
}

/**
 * The `DNS =` values of an external client's wg-quick file: its servers, and the network's
 * domain as search domain when the ingress gateway's resolver is among them.
 */
export function wgQuickDns(
  dns: readonly string[],
  ingress: NodeRecord,
  network: NetworkRecord,
  domain: string,
): string[] {
  const own = addressesOf(rangesOf(network), ingress.hostIndex).v4;
  return dns.includes(own) ? [...dns, domain] : [...dns];
}

function toDnsRecord(r: DnsRecordRecord, network: NetworkRecord, domain: string): DnsRecord {
  return {
    id: r.id,
    network: network.name,
    name: r.name,
    dnsName: `${r.name}.${domain}`,
    ip: r.ip,
    createdAt: r.createdAt,
  };
}

/** DNS names: the domain per network, custom records, node renames. */
export class Dns {
  constructor(private readonly s: StoreContext) {}

  /** The domain and every name of a network. Throws not_found. */
  async get(network: string): Promise<NetworkDns> {
    const state = await this.s.db.tx(async (q) => {
      const net = await networkByName(q, network);
      return {
        network: net,
        nodes: await nodeRecordsOf(q, net.id),
        extClients: await extClientsOf(q, net.id),
        dns: await dnsOf(q, net.id),
      };
    });
    const domain = domainOf(state.network, state.dns);
    const ranges = rangesOf(state.network);
    const names: NetworkDns['names'] = [];
    for (const n of state.nodes) {
      if (n.state !== 'approved') continue;
      const a = addressesOf(ranges, n.hostIndex);
      names.push({
        name: n.name,
        dnsName: `${n.name}.${domain}`,
        kind: 'node',
        addresses: a.v6 === null ? [a.v4] : [a.v4, a.v6],
        id: n.id,
      });
    }
    const ids = new Map<string, string>([
      ...state.extClients.map((c) => [c.name, c.id] as const),
      ...state.dns.records.map((r) => [r.name, r.id] as const),
    ]);
    for (const r of mapRecordsOf(state, domain))
      names.push({
        name: r.name,
        dnsName: r.dnsName,
        kind: r.kind,
        addresses: [r.addressV4, r.addressV6].filter((x): x is string => x !== null),
        id: ids.get(r.name) ?? r.name,
      });
    return { network: state.network.name, domain, names };
  }

  /**
   * Sets a network's domain. Throws public_domain for a domain ending in a public TLD unless
   * `force`, not_found for an unknown network.
   */
  async setDomain(network: string, req: SetDnsDomainRequest): Promise<NetworkDns> {
    const net = await networkByName(this.s.db, network);
    const domain = req.domain;
    if (req.force !== true && shadowsPublicTld(domain)) {
      const tld = domain.slice(domain.lastIndexOf('.') + 1);
      throw new ApiError(
        'public_domain',
        `${domain} ends in the public top-level domain .${tld}: real names under it would stop resolving on the mesh; pick e.g. ${domain}.${PRIVATE_SUFFIX}, or confirm with --force`,
      );
    }
    await this.s.change(net.id, async (q) => {
      await q.run('DELETE FROM dns_domains WHERE network_id = ?', [net.id]);
      await q.run('INSERT INTO dns_domains (network_id, domain) VALUES (?, ?)', [net.id, domain]);
    });
    return this.get(network);
  }

  /** Adds a custom record. Throws name_taken when the name is used, not_found. */
  async addRecord(network: string, req: CreateDnsRecordRequest): Promise<DnsRecord> {
    const net = await networkByName(this.s.db, network);
    const rec: DnsRecordRecord = {
      id: newId(),
      networkId: net.id,
      name: req.name,
      ip: req.ip,
      createdAt: this.s.clock(),
    };
    const domain = await this.s.change(net.id, async (q) => {
      await assertNameFree(q, net.id, req.name);
      try {
        await q.run(
          'INSERT INTO dns_records (id, network_id, name, ip, created_at) VALUES (?, ?, ?, ?, ?)',
          [rec.id, rec.networkId, rec.name, rec.ip, rec.createdAt],
        );
      } catch (e) {
        if (e instanceof UniqueViolation)
          throw new ApiError('name_taken', `the DNS record ${req.name} exists in the network`);
        throw e;
      }
      return domainOf(net, await dnsOf(q, net.id));
    });
    return toDnsRecord(rec, net, domain);
  }

  /** A network's custom records by name. Throws not_found. */
  async listRecords(network: string): Promise<DnsRecord[]> {
    const net = await networkByName(this.s.db, network);
    const dns = await dnsOf(this.s.db, net.id);
    const domain = domainOf(net, dns);
    return dns.records.map((r) => toDnsRecord(r, net, domain));
  }

  /** Removes a custom record by id or name. Throws not_found. */
  async removeRecord(network: string, idOrName: string): Promise<void> {
    const net = await networkByName(this.s.db, network);
    await this.s.change(net.id, async (q) => {
      const n = await q.run(
        'DELETE FROM dns_records WHERE network_id = ? AND (id = ? OR name = ?)',
        [net.id, idOrName, idOrName],
      );
      if (n === 0)
        throw new ApiError('not_found', `no DNS record ${idOrName} in network ${network}`);
    });
  }

  /** Renames a node; its DNS name follows on every node. Throws not_found, conflict, name_taken. */
  async renameNode(id: string, name: string): Promise<Node> {
    const before = await nodeById(this.s.db, id);
    await this.s.change(before.networkId, async (q) => {
      const n = await findNode(q, id);
      if (n === undefined) throw new ApiError('not_found', `no node with id ${id}`);
      if (n.state === 'removed' || n.state === 'rejected')
        throw new ApiError('conflict', `the node is ${n.state}; only active nodes can be renamed`);
      if (n.name === name) return;
      await assertNameFree(q, n.networkId, name, id);
      try {
        await q.run('UPDATE nodes SET name = ? WHERE id = ?', [name, id]);
      } catch (e) {
        if (e instanceof UniqueViolation)
          throw new ApiError('name_taken', `a node named ${name} is already in the network`);
        throw e;
      }
    });
    return nodeView(this.s.db, id);
  }
}
