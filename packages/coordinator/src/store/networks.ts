/**
 * The networks aggregate: a network's address ranges and WireGuard settings, and its revision (the
 * version of its maps, bumped by every change to anything in it).
 */
import {
  DEFAULT_LISTEN_PORT,
  DEFAULT_MTU,
  DEFAULT_PERSISTENT_KEEPALIVE_S,
  type CreateNetworkRequest,
  type Network,
  type UpdateNetworkRequest,
} from '@wiremesh/protocol';
import { ApiError } from '../api-error.js';
import { UniqueViolation, type Queryable } from '../db.js';
import {
  canonicalCidr,
  ipv4At,
  ipv6At,
  isProblem,
  parseNetworkIpv4,
  parseNetworkIpv6,
  type Ipv4Range,
  type Ipv6Range,
} from '../ip-pool.js';
import { networkRangeProblem, overlaps4, overlaps6 } from '../range-policy.js';
import { flag, newId, type StoreContext } from './context.js';

interface NetworkRow {
  id: string;
  name: string;
  ipv4_cidr: string;
  ipv6_cidr: string | null;
  listen_port: number;
  persistent_keepalive: number;
  mtu: number;
  allow_without_key: number;
  revision: number;
  created_at: number;
}

/** A stored network. */
export interface NetworkRecord {
  readonly id: string;
  readonly name: string;
  readonly ipv4Cidr: string;
  readonly ipv6Cidr: string | null;
  readonly listenPort: number;
  /** Seconds; 0 is off. */
  readonly persistentKeepalive: number;
  readonly mtu: number;
  readonly allowJoinWithoutKey: boolean;
  /** The map version: bumped by every change to the network or anything in it. */
  readonly revision: number;
  readonly createdAt: number;
}

/** The parsed address ranges of a network. */
export interface Ranges {
  v4: Ipv4Range;
  v6: Ipv6Range | null;
}

/** Parses a stored network's ranges (validated on creation, so this does not fail). */
export function rangesOf(n: Pick<NetworkRecord, 'name' | 'ipv4Cidr' | 'ipv6Cidr'>): Ranges {
  const v4 = parseNetworkIpv4(n.ipv4Cidr);
  const v6 = n.ipv6Cidr === null ? null : parseNetworkIpv6(n.ipv6Cidr);
  if (isProblem(v4) || (v6 !== null && isProblem(v6)))
    throw new Error(`stored network ${n.name} has a bad range`);
  return { v4, v6 };
}

/** A node's or external client's overlay addresses. */
export function addressesOf(r: Ranges, hostIndex: number): { v4: string; v6: string | null } {
  return { v4: ipv4At(r.v4, hostIndex), v6: r.v6 === null ? null : ipv6At(r.v6, hostIndex) };
}

function recordOf(n: NetworkRow): NetworkRecord {
  return {
    id: n.id,
    name: n.name,
    ipv4Cidr: n.ipv4_cidr,
    ipv6Cidr: n.ipv6_cidr,
    listenPort: n.listen_port,
    persistentKeepalive: n.persistent_keepalive,
    mtu: n.mtu,
    allowJoinWithoutKey: n.allow_without_key === 1,
    revision: Number(n.revision),
    createdAt: Number(n.created_at),
  };
}

/** The admin view of a network. */
export function toNetwork(n: NetworkRecord): Network {
  return {
    id: n.id,
    name: n.name,
    ipv4Cidr: n.ipv4Cidr,
    ipv6Cidr: n.ipv6Cidr,
    listenPort: n.listenPort,
    persistentKeepalive: n.persistentKeepalive,
    mtu: n.mtu,
    allowJoinWithoutKey: n.allowJoinWithoutKey,
    revision: n.revision,
    createdAt: n.createdAt,
  };
}

/** The network with id `id`, or undefined. */
export async function findNetwork(q: Queryable, id: string): Promise<NetworkRecord | undefined> {
  const n = await q.get<NetworkRow>('SELECT * FROM networks WHERE id = ?', [id]);
  return n === undefined ? undefined : recordOf(n);
}

/** The network with id `id`. Throws not_found (it was deleted meanwhile). */
export async function networkById(q: Queryable, id: string): Promise<NetworkRecord> {
  const n = await findNetwork(q, id);
  if (n === undefined) throw new ApiError('not_found', 'the network no longer exists');
  return n;
}

/** The network named `name`. Throws not_found. */
export async function networkByName(q: Queryable, name: string): Promise<NetworkRecord> {
  const n = await q.get<NetworkRow>('SELECT * FROM networks WHERE name = ?', [name]);
  if (n === undefined) throw new ApiError('not_found', `no network named ${name}`);
  return recordOf(n);
}

/** Every network, by name. */
export async function allNetworks(q: Queryable): Promise<NetworkRecord[]> {
  return (await q.all<NetworkRow>('SELECT * FROM networks ORDER BY name')).map(recordOf);
}

/** Networks: creation, settings, deletion. Methods throw ApiError for what the client got wrong. */
export class Networks {
  constructor(private readonly s: StoreContext) {}

  /**
   * Creates a network. Throws validation_failed for bad ranges (or public ones unless
   * `allowPublicRange`), conflict for a range overlapping another network's (unless
   * `allowOverlap`), name_taken for a used name.
   */
  async create(req: CreateNetworkRequest): Promise<Network> {
    const v4 = parseNetworkIpv4(req.ipv4Cidr);
    if (isProblem(v4)) throw new ApiError('validation_failed', v4);
    const problem = networkRangeProblem(req.ipv4Cidr, v4, req.allowPublicRange === true);
    if (problem !== null) throw new ApiError('validation_failed', problem);
    let ipv6Cidr: string | null = null;
    let v6: Ipv6Range | null = null;
    if (req.ipv6Cidr !== undefined) {
      const p6 = parseNetworkIpv6(req.ipv6Cidr);
      if (isProblem(p6)) throw new ApiError('validation_failed', p6);
      v6 = p6;
      ipv6Cidr = canonicalCidr(req.ipv6Cidr) ?? req.ipv6Cidr;
    }
    const n: NetworkRecord = {
      id: newId(),
      name: req.name,
      ipv4Cidr: req.ipv4Cidr,
      ipv6Cidr,
      listenPort: req.listenPort ?? DEFAULT_LISTEN_PORT,
      persistentKeepalive: req.persistentKeepalive ?? DEFAULT_PERSISTENT_KEEPALIVE_S,
      mtu: req.mtu ?? DEFAULT_MTU,
      allowJoinWithoutKey: req.allowJoinWithoutKey === true,
      revision: 1,
      createdAt: this.s.clock(),
    };
    try {
      await this.s.db.tx(async (q) => {
        if (req.allowOverlap !== true)
          for (const o of await allNetworks(q)) {
            const r = rangesOf(o);
            if (overlaps4(v4, r.v4) || (v6 !== null && r.v6 !== null && overlaps6(v6, r.v6)))
              throw new ApiError(
                'conflict',
                `the range overlaps network ${o.name} (${o.ipv4Cidr}${o.ipv6Cidr === null ? '' : `, ${o.ipv6Cidr}`}); choose another range, or allow it with --allow-overlap (allowOverlap)`,
              );
          }
        await q.run(
          `INSERT INTO networks (id, name, ipv4_cidr, ipv6_cidr, listen_port, persistent_keepalive, mtu, allow_without_key, revision, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            n.id,
            n.name,
            n.ipv4Cidr,
            n.ipv6Cidr,
            n.listenPort,
            n.persistentKeepalive,
            n.mtu,
            flag(n.allowJoinWithoutKey),
            n.revision,
            n.createdAt,
          ],
        );
      });
    } catch (e) {
      if (e instanceof UniqueViolation)
        throw new ApiError('name_taken', `a network named ${req.name} exists`);
      throw e;
    }
    return toNetwork(n);
  }

  /** All networks by name. */
  async list(): Promise<Network[]> {
    return (await allNetworks(this.s.db)).map(toNetwork);
  }

  /** One network. Throws not_found. */
  async get(name: string): Promise<Network> {
    return toNetwork(await networkByName(this.s.db, name));
  }

  /** The stored network with id `id`, or undefined. */
  async find(id: string): Promise<NetworkRecord | undefined> {
    return findNetwork(this.s.db, id);
  }

  /** Changes a network's settings; every node gets a new map. Throws not_found. */
  async update(name: string, req: UpdateNetworkRequest): Promise<Network> {
    const net = await networkByName(this.s.db, name);
    await this.s.change(net.id, async (q) => {
      const cur = await networkById(q, net.id);
      await q.run(
        'UPDATE networks SET listen_port = ?, persistent_keepalive = ?, mtu = ?, allow_without_key = ? WHERE id = ?',
        [
          req.listenPort ?? cur.listenPort,
          req.persistentKeepalive ?? cur.persistentKeepalive,
          req.mtu ?? cur.mtu,
          flag(req.allowJoinWithoutKey ?? cur.allowJoinWithoutKey),
          net.id,
        ],
      );
    });
    return this.get(name);
  }

  /** Deletes a network with its keys, nodes and external clients; their streams end. Throws not_found. */
  async delete(name: string): Promise<void> {
    const net = await networkByName(this.s.db, name);
    await this.s.db.tx(async (q) => {
      await q.run('DELETE FROM ext_clients WHERE network_id = ?', [net.id]);
      await q.run('DELETE FROM networks WHERE id = ?', [net.id]);
    });
    await this.s.changed(net.id);
  }
}
