/**
 * DNS names of a network: its domain (`dns_domains`, migration 3), the admin's custom records
 * (`dns_records`), one namespace shared by nodes, external clients and records (RFC 1035 labels,
 * unique per network), and node renames. Each change bumps the network's revision, so the new
 * names reach every agent's resolver like any other map change.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import {
  type CreateDnsRecordRequest,
  type DnsRecord,
  type MapDnsRecord,
  type NetworkDns,
  type Node,
  type SetDnsDomainRequest,
} from '@wiremesh/protocol';
import { ApiError } from './api-error.js';
import { UniqueViolation, type Queryable } from './db.js';
import {
  addressesOf,
  rangesOf,
  type NetworkRow,
  type NetworkState,
  type NodeRow,
  type Store,
} from './store.js';

const ID_BYTES = 8;
/** The suffix of a default domain whose network name is itself a public TLD (RFC 9476 style). */
const PRIVATE_SUFFIX = 'internal';

/** A custom record row. */
export interface DnsRecordRow {
  id: string;
  network_id: string;
  name: string;
  ip: string;
  created_at: number;
}

/** What a network's maps need of its DNS settings. */
export interface NetworkDnsState {
  /** The admin's domain, or null for the default. */
  domain: string | null;
  records: DnsRecordRow[];
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
export function domainOf(network: NetworkRow, dns: NetworkDnsState | undefined): string {
  return dns?.domain ?? defaultDomain(network.name);
}

/** Reads a network's DNS settings (inside the caller's transaction). */
export async function loadDns(q: Queryable, networkId: string): Promise<NetworkDnsState> {
  const d = await q.get<{ domain: string }>('SELECT domain FROM dns_domains WHERE network_id = ?', [
    networkId,
  ]);
  const records = await q.all<DnsRecordRow>(
    'SELECT * FROM dns_records WHERE network_id = ? ORDER BY name',
    [networkId],
  );
  return { domain: d?.domain ?? null, records };
}

/**
 * Throws name_taken unless `name` is free in the network: no pending or approved node, external
 * client or custom record has it (`exceptId` is the one renamed). Callers hold the network lock.
 */
export async function assertNameFree(
  q: Queryable,
  networkId: string,
  name: string,
  exceptId: string | null = null,
): Promise<void> {
  const other = exceptId ?? '';
  const node = await q.get<{ id: string }>(
    "SELECT id FROM nodes WHERE network_id = ? AND name = ? AND state IN ('pending', 'approved') AND id <> ?",
    [networkId, name, other],
  );
  if (node !== undefined)
    throw new ApiError('name_taken', `a node named ${name} is already in the network`);
  const client = await q.get<{ id: string }>(
    'SELECT id FROM ext_clients WHERE network_id = ? AND name = ? AND id <> ?',
    [networkId, name, other],
  );
  if (client !== undefined)
    throw new ApiError('name_taken', `an external client is named ${name} in the network`);
  const record = await q.get<{ id: string }>(
    'SELECT id FROM dns_records WHERE network_id = ? AND name = ? AND id <> ?',
    [networkId, name, other],
  );
  if (record !== undefined)
    throw new ApiError(
      'name_taken',
      `the DNS record ${name} exists in the network; remove it first (dns remove ${name})`,
    );
}

/**
 * The external clients and custom records of a network as map records. A name an approved node
 * also has (left from before names were one namespace) is the node's and is skipped here.
 */
export function mapRecordsOf(state: NetworkState, domain: string): MapDnsRecord[] {
  const ranges = rangesOf(state.network);
  const taken = new Set(state.nodes.filter((n) => n.state === 'approved').map((n) => n.name));
  const out: MapDnsRecord[] = [];
  for (const c of state.extClients) {
    if (taken.has(c.name)) continue;
    taken.add(c.name);
    const a = addressesOf(ranges, c.host_index);
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
 * The `dns` list of a new external client: with `meshDns`, the ingress gateway's mesh address
 * first (then the admin's servers), else the admin's servers as given.
 */
export function meshDnsList(
  req: { dns?: string[] | undefined; meshDns?: boolean | undefined },
  ingress: NodeRow,
  network: NetworkRow,
): string[] {
  const given = req.dns ?? [];
  if (req.meshDns !== true) return given;
  const own = addressesOf(rangesOf(network), ingress.host_index).v4;
  return [own, ...given.filter((d) => d !== own)];
}

/**
 * The `DNS =` values of an external client's wg-quick file: its servers, and the network's
 * domain as search domain when the ingress gateway's resolver is among them.
 */
export function wgQuickDns(
  dns: readonly string[],
  ingress: NodeRow,
  network: NetworkRow,
  domain: string,
): string[] {
  const own = addressesOf(rangesOf(network), ingress.host_index).v4;
  return dns.includes(own) ? [...dns, domain] : [...dns];
}

function toRecord(r: DnsRecordRow, network: NetworkRow, domain: string): DnsRecord {
  return {
    id: r.id,
    network: network.name,
    name: r.name,
    dnsName: `${r.name}.${domain}`,
    ip: r.ip,
    createdAt: Number(r.created_at),
  };
}

/** The DNS aggregate: reads and changes go through the store's network lock and change feed. */
export class DnsNames {
  constructor(private readonly store: Store) {}

  private async network(name: string): Promise<NetworkRow> {
    const n = await this.store.db.get<NetworkRow>('SELECT * FROM networks WHERE name = ?', [name]);
    if (n === undefined) throw new ApiError('not_found', `no network named ${name}`);
    return n;
  }

  /** The domain and every name of a network. Throws not_found. */
  async get(network: string): Promise<NetworkDns> {
    const net = await this.network(network);
    const state = await this.store.networkState(net.id);
    if (state === null) throw new ApiError('not_found', `no network named ${network}`);
    const domain = domainOf(state.network, state.dns);
    const ranges = rangesOf(state.network);
    const names: NetworkDns['names'] = [];
    for (const n of state.nodes) {
      if (n.state !== 'approved') continue;
      const a = addressesOf(ranges, n.host_index);
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
      ...(state.dns?.records ?? []).map((r) => [r.name, r.id] as const),
    ]);
    for (const r of mapRecordsOf(state, domain))
      names.push({
        name: r.name,
        dnsName: r.dnsName,
        kind: r.kind,
        addresses: [r.addressV4, r.addressV6].filter((x): x is string => x !== null),
        id: ids.get(r.name) ?? r.name,
      });
    return { network: net.name, domain, names };
  }

  /**
   * Sets a network's domain. Throws public_domain for a domain ending in a public TLD unless
   * `force`, not_found for an unknown network.
   */
  async setDomain(network: string, req: SetDnsDomainRequest): Promise<NetworkDns> {
    const net = await this.network(network);
    if (req.force !== true && shadowsPublicTld(req.domain)) {
      const tld = req.domain.slice(req.domain.lastIndexOf('.') + 1);
      throw new ApiError(
        'public_domain',
        `${req.domain} ends in the public top-level domain .${tld}: real names under it would stop resolving on the mesh; pick e.g. ${req.domain}.${PRIVATE_SUFFIX}, or confirm with --force`,
      );
    }
    await this.store.change(net.id, async (q) => {
      await q.run('DELETE FROM dns_domains WHERE network_id = ?', [net.id]);
      await q.run('INSERT INTO dns_domains (network_id, domain) VALUES (?, ?)', [
        net.id,
        req.domain,
      ]);
    });
    return this.get(network);
  }

  /** Adds a custom record. Throws name_taken when the name is used, not_found. */
  async addRecord(network: string, req: CreateDnsRecordRequest): Promise<DnsRecord> {
    const net = await this.network(network);
    const row: DnsRecordRow = {
      id: randomBytes(ID_BYTES).toString('hex'),
      network_id: net.id,
      name: req.name,
      ip: req.ip,
      created_at: Date.now(),
    };
    const domain = await this.store.change(net.id, async (q) => {
      await assertNameFree(q, net.id, req.name);
      try {
        await q.run(
          'INSERT INTO dns_records (id, network_id, name, ip, created_at) VALUES (?, ?, ?, ?, ?)',
          [row.id, row.network_id, row.name, row.ip, row.created_at],
        );
      } catch (e) {
        if (e instanceof UniqueViolation)
          throw new ApiError('name_taken', `the DNS record ${req.name} exists in the network`);
        throw e;
      }
      return domainOf(net, await loadDns(q, net.id));
    });
    return toRecord(row, net, domain);
  }

  /** A network's custom records by name. */
  async listRecords(network: string): Promise<DnsRecord[]> {
    const net = await this.network(network);
    const dns = await loadDns(this.store.db, net.id);
    const domain = domainOf(net, dns);
    return dns.records.map((r) => toRecord(r, net, domain));
  }

  /** Removes a custom record by id or name. Throws not_found. */
  async removeRecord(network: string, idOrName: string): Promise<void> {
    const net = await this.network(network);
    await this.store.change(net.id, async (q) => {
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
    const before = await this.store.nodeById(id);
    if (before === undefined) throw new ApiError('not_found', `no node with id ${id}`);
    await this.store.change(before.network_id, async (q) => {
      const n = await q.get<NodeRow>('SELECT * FROM nodes WHERE id = ?', [id]);
      if (n === undefined) throw new ApiError('not_found', `no node with id ${id}`);
      if (n.state === 'removed' || n.state === 'rejected')
        throw new ApiError('conflict', `the node is ${n.state}; only active nodes can be renamed`);
      if (n.name === name) return;
      await assertNameFree(q, n.network_id, name, id);
      try {
        await q.run('UPDATE nodes SET name = ? WHERE id = ?', [name, id]);
      } catch (e) {
        if (e instanceof UniqueViolation)
          throw new ApiError('name_taken', `a node named ${name} is already in the network`);
        throw e;
      }
    });
    return this.store.getNode(id);
  }
}
