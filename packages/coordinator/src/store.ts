/**
 * The coordinator's state and every rule about changing it: networks, enrollment keys, node
 * registration with address allocation, approval, gateway and relay roles, external clients,
 * check-ins. Each change runs in one transaction that first bumps the network's revision (which
 * also locks the network row, serialising its writers) and then publishes the change.
 */
import { randomBytes } from 'node:crypto';
import {
  DEFAULT_LISTEN_PORT,
  DEFAULT_MTU,
  DEFAULT_PERSISTENT_KEEPALIVE_S,
  type Backend,
  type CheckinRequest,
  type CreateExtClientRequest,
  type CreateKeyRequest,
  type CreateNetworkRequest,
  type EgressRole,
  type EnrollmentKey,
  type Endpoint,
  type ExtClient,
  type Network,
  type Node,
  type NodeState,
  type PeerStatus,
  type RegisterRequest,
  type SetEgressRequest,
  type SetIngressRequest,
  type UpdateNetworkRequest,
} from '@wiremesh/protocol';
import { generatePrivateKey, keyToBase64, nobleCrypto, publicKeyOf, wipe } from '@wiremesh/wg-core';
import { ApiError } from './api-error.js';
import { UniqueViolation, type Db, type Queryable } from './db.js';
import type { KeySeal } from './key-seal.js';
import { egressRangeProblem, networkRangeProblem, overlaps4, overlaps6 } from './range-policy.js';
import {
  canonicalCidr,
  ipv4At,
  ipv6At,
  isProblem,
  lastHostIndex,
  normalizeRange,
  parseNetworkIpv4,
  parseNetworkIpv6,
  type Ipv4Range,
  type Ipv6Range,
} from './ip-pool.js';
import {
  hashSecret,
  newAdminToken,
  newEnrollmentKey,
  newNodeSecret,
  nodeIdOfSecret,
  secretMatches,
} from './secrets.js';

const ID_BYTES = 8;
const ADMIN_TOKEN_META_KEY = 'admin_token_hash';
const MS_PER_S = 1000;

/** A network row. */
export interface NetworkRow {
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

interface KeyRow {
  id: string;
  network_id: string;
  name: string | null;
  key_hash: string;
  max_uses: number | null;
  uses: number;
  expires_at: number | null;
  auto_approve: number;
  revoked: number;
  created_at: number;
}

/** A node row. JSON columns are text. */
export interface NodeRow {
  id: string;
  network_id: string;
  name: string;
  public_key: string;
  state: NodeState;
  host_index: number;
  secret_hash: string;
  os: string;
  version: string;
  backend: Backend;
  listen_port: number;
  local_endpoints: string;
  reflected_endpoint: string | null;
  egress_ranges: string | null;
  egress_interface: string | null;
  is_ingress: number;
  ingress_endpoint: string | null;
  is_relay: number;
  relayed_by: string | null;
  last_seen_at: number | null;
  peer_status: string;
  enrollment_key_id: string | null;
  created_at: number;
}

/** An external-client row. */
export interface ExtClientRow {
  id: string;
  network_id: string;
  name: string;
  public_key: string;
  private_key: string | null;
  ingress_node_id: string;
  host_index: number;
  dns: string;
  created_at: number;
}

/** A pair of nodes relayed through a relay node (relay fallback); node_a < node_b. */
export interface PairRelayRow {
  network_id: string;
  node_a: string;
  node_b: string;
  relay_id: string;
  created_at: number;
}

/** Everything a network's maps are computed from. */
export interface NetworkState {
  network: NetworkRow;
  nodes: NodeRow[];
  extClients: ExtClientRow[];
  /** Pairs relayed by the relay fallback; absent means none. */
  pairRelays?: PairRelayRow[];
}

/** The parsed address ranges of a network. */
export interface Ranges {
  v4: Ipv4Range;
  v6: Ipv6Range | null;
}

/** Parses a stored network's ranges (validated on creation, so this does not fail). */
export function rangesOf(n: NetworkRow): Ranges {
  const v4 = parseNetworkIpv4(n.ipv4_cidr);
  const v6 = n.ipv6_cidr === null ? null : parseNetworkIpv6(n.ipv6_cidr);
  if (isProblem(v4) || (v6 !== null && isProblem(v6)))
    throw new Error(`stored network ${n.name} has a bad range`);
  return { v4, v6 };
}

/** A node's overlay addresses. */
export function addressesOf(r: Ranges, hostIndex: number): { v4: string; v6: string | null } {
  return { v4: ipv4At(r.v4, hostIndex), v6: r.v6 === null ? null : ipv6At(r.v6, hostIndex) };
}

function newId(): string {
  return randomBytes(ID_BYTES).toString('hex');
}

const json = (v: unknown): string => JSON.stringify(v);

/** Parses a JSON column written by this store. */
export function parseJson<T>(text: string | null, fallback: T): T {
  if (text === null) return fallback;
  return JSON.parse(text) as T;
}

/** The egress role stored on a node, or null. */
export function egressOf(n: NodeRow): EgressRole | null {
  const ranges = parseJson<string[] | null>(n.egress_ranges, null);
  return ranges === null ? null : { ranges, interface: n.egress_interface ?? '' };
}

function toNetwork(n: NetworkRow): Network {
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

function toKey(k: KeyRow, network: string): EnrollmentKey {
  return {
    id: k.id,
    network,
    name: k.name,
    maxUses: k.max_uses,
    uses: k.uses,
    expiresAt: k.expires_at === null ? null : Number(k.expires_at),
    autoApprove: k.auto_approve === 1,
    revoked: k.revoked === 1,
    createdAt: Number(k.created_at),
  };
}

/** The admin view of a node. */
export function toNode(n: NodeRow, net: NetworkRow): Node {
  const a = addressesOf(rangesOf(net), n.host_index);
  return {
    id: n.id,
    network: net.name,
    name: n.name,
    publicKey: n.public_key,
    state: n.state,
    addressV4: a.v4,
    addressV6: a.v6,
    os: n.os,
    version: n.version,
    backend: n.backend,
    listenPort: n.listen_port,
    localEndpoints: parseJson<Endpoint[]>(n.local_endpoints, []),
    reflectedEndpoint: parseJson<Endpoint | null>(n.reflected_endpoint, null),
    egress: egressOf(n),
    isIngressGateway: n.is_ingress === 1,
    ingressEndpoint: n.ingress_endpoint,
    isRelay: n.is_relay === 1,
    relayedBy: n.relayed_by,
    lastSeenAt: n.last_seen_at === null ? null : Number(n.last_seen_at),
    peers: parseJson<PeerStatus[]>(n.peer_status, []),
    createdAt: Number(n.created_at),
  };
}

function toExtClient(c: ExtClientRow, net: NetworkRow): ExtClient {
  const a = addressesOf(rangesOf(net), c.host_index);
  return {
    id: c.id,
    network: net.name,
    name: c.name,
    publicKey: c.public_key,
    hasPrivateKey: c.private_key !== null,
    ingressNodeId: c.ingress_node_id,
    addressV4: a.v4,
    addressV6: a.v6,
    dns: parseJson<string[]>(c.dns, []),
    createdAt: Number(c.created_at),
  };
}

/** Counts of nodes by network and state, for /metrics. */
export interface NodeCount {
  network: string;
  state: NodeState;
  count: number;
}

/** The coordinator's state. Methods throw ApiError for anything the client got wrong. */
export class Store {
  private readonly localListeners: ((networkId: string) => void)[] = [];

  constructor(
    readonly db: Db,
    private readonly clock: () => number = Date.now,
    /** Seals generated private keys at rest (key-seal.ts); null stores them as they are. */
    private readonly seal: KeySeal | null = null,
  ) {}

  /**
   * Registers `listener` for changes made through this store, called before the database's change
   * feed is told, so this coordinator reads its own writes at once.
   */
  onLocalChange(listener: (networkId: string) => void): void {
    this.localListeners.push(listener);
  }

  // --- helpers ---

  private async changed(networkId: string): Promise<void> {
    for (const l of this.localListeners) l(networkId);
    await this.db.publish(networkId);
  }

  /** Bumps the revision of a network, locking its row until the transaction ends. */
  private async bump(q: Queryable, networkId: string): Promise<void> {
    await q.run('UPDATE networks SET revision = revision + 1 WHERE id = ?', [networkId]);
  }

  private async networkByName(q: Queryable, name: string): Promise<NetworkRow> {
    const n = await q.get<NetworkRow>('SELECT * FROM networks WHERE name = ?', [name]);
    if (n === undefined) throw new ApiError('not_found', `no network named ${name}`);
    return n;
  }

  private async networkById(q: Queryable, id: string): Promise<NetworkRow> {
    const n = await q.get<NetworkRow>('SELECT * FROM networks WHERE id = ?', [id]);
    if (n === undefined) throw new ApiError('not_found', 'the network no longer exists');
    return n;
  }

  private async nodeRow(q: Queryable, id: string): Promise<NodeRow> {
    const n = await q.get<NodeRow>('SELECT * FROM nodes WHERE id = ?', [id]);
    if (n === undefined) throw new ApiError('not_found', `no node with id ${id}`);
    return n;
  }

  /**
   * Runs a change to one network: `fn` gets the transaction after the revision bump (the lock);
   * the change is published after commit.
   */
  private async change<T>(networkId: string, fn: (q: Queryable) => Promise<T>): Promise<T> {
    const out = await this.db.tx(async (q) => {
      await this.bump(q, networkId);
      return fn(q);
    });
    await this.changed(networkId);
    return out;
  }

  /** The lowest free host index of a network (callers hold the network lock). */
  private async allocate(q: Queryable, net: NetworkRow, ownerId: string): Promise<number> {
    const r = rangesOf(net);
    const last = lastHostIndex(r.v4, r.v6);
    const top = await q.get<{ m: number | null }>(
      'SELECT MAX(host_index) AS m FROM addresses WHERE network_id = ?',
      [net.id],
    );
    let index = (top?.m ?? 0) + 1;
    if (index > last) {
      // The top is taken: look for a gap left by a released node.
      const used = await q.all<{ host_index: number }>(
        'SELECT host_index FROM addresses WHERE network_id = ? ORDER BY host_index',
        [net.id],
      );
      index = 1;
      for (const u of used) {
        if (u.host_index !== index) break;
        index++;
      }
      if (index > last)
        throw new ApiError(
          'address_space_exhausted',
          `network ${net.name} has no free address in ${net.ipv4_cidr}`,
        );
    }
    await q.run('INSERT INTO addresses (network_id, host_index, owner_id) VALUES (?, ?, ?)', [
      net.id,
      index,
      ownerId,
    ]);
    return index;
  }

  // --- admin token ---

  /** Creates the admin token if none exists. Returns the new token (to print once) or null. */
  async ensureAdminToken(): Promise<string | null> {
    const token = newAdminToken();
    // ON CONFLICT: replicas starting together on one database create exactly one token.
    const created = await this.db.run(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING',
      [ADMIN_TOKEN_META_KEY, hashSecret(token)],
    );
    return created === 1 ? token : null;
  }

  /** Replaces the admin token; the old one stops working at once. Returns the new token. */
  async rotateAdminToken(): Promise<string> {
    const token = newAdminToken();
    await this.db.tx(async (q) => {
      const n = await q.run('UPDATE meta SET value = ? WHERE key = ?', [
        hashSecret(token),
        ADMIN_TOKEN_META_KEY,
      ]);
      if (n === 0)
        await q.run('INSERT INTO meta (key, value) VALUES (?, ?)', [
          ADMIN_TOKEN_META_KEY,
          hashSecret(token),
        ]);
    });
    return token;
  }

  /** Whether `token` is the current admin token. */
  async isAdminToken(token: string): Promise<boolean> {
    const row = await this.db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [
      ADMIN_TOKEN_META_KEY,
    ]);
    return row !== undefined && secretMatches(token, row.value);
  }

  // --- networks ---

  /** Creates a network. Throws validation_failed for bad ranges, name_taken for a used name. */
  async createNetwork(req: CreateNetworkRequest): Promise<Network> {
    const v4 = parseNetworkIpv4(req.ipv4Cidr);
    if (isProblem(v4)) throw new ApiError('validation_failed', v4);
    const problem = networkRangeProblem(req.ipv4Cidr, v4, req.allowPublicRange === true);
    if (problem !== null) throw new ApiError('validation_failed', problem);
    let v6: Ipv6Range | null = null;
    if (req.ipv6Cidr !== undefined) {
      const p6 = parseNetworkIpv6(req.ipv6Cidr);
      if (isProblem(p6)) throw new ApiError('validation_failed', p6);
      v6 = p6;
    }
    const row: NetworkRow = {
      id: newId(),
      name: req.name,
      ipv4_cidr: req.ipv4Cidr,
      ipv6_cidr: req.ipv6Cidr ?? null,
      listen_port: req.listenPort ?? DEFAULT_LISTEN_PORT,
      persistent_keepalive: req.persistentKeepalive ?? DEFAULT_PERSISTENT_KEEPALIVE_S,
      mtu: req.mtu ?? DEFAULT_MTU,
      allow_without_key: req.allowJoinWithoutKey === true ? 1 : 0,
      revision: 1,
      created_at: this.clock(),
    };
    if (row.ipv6_cidr !== null) row.ipv6_cidr = canonicalCidr(row.ipv6_cidr) ?? row.ipv6_cidr;
    try {
      await this.db.tx(async (q) => {
        if (req.allowOverlap !== true)
          for (const o of await q.all<NetworkRow>('SELECT * FROM networks ORDER BY name')) {
            const r = rangesOf(o);
            if (overlaps4(v4, r.v4) || (v6 !== null && r.v6 !== null && overlaps6(v6, r.v6)))
              throw new ApiError(
                'conflict',
                `the range overlaps network ${o.name} (${o.ipv4_cidr}${o.ipv6_cidr === null ? '' : `, ${o.ipv6_cidr}`}); choose another range, or allow it with --allow-overlap (allowOverlap)`,
              );
          }
        await q.run(
          `INSERT INTO networks (id, name, ipv4_cidr, ipv6_cidr, listen_port, persistent_keepalive, mtu, allow_without_key, revision, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            row.id,
            row.name,
            row.ipv4_cidr,
            row.ipv6_cidr,
            row.listen_port,
            row.persistent_keepalive,
            row.mtu,
            row.allow_without_key,
            row.revision,
            row.created_at,
          ],
        );
      });
    } catch (e) {
      if (e instanceof UniqueViolation)
        throw new ApiError('name_taken', `a network named ${req.name} exists`);
      throw e;
    }
    return toNetwork(row);
  }

  /** All networks by name. */
  async listNetworks(): Promise<Network[]> {
    return (await this.db.all<NetworkRow>('SELECT * FROM networks ORDER BY name')).map(toNetwork);
  }

  /** One network. Throws not_found. */
  async getNetwork(name: string): Promise<Network> {
    return toNetwork(await this.networkByName(this.db, name));
  }

  /** The stored row of a network by id, or undefined. */
  async networkRow(id: string): Promise<NetworkRow | undefined> {
    return this.db.get<NetworkRow>('SELECT * FROM networks WHERE id = ?', [id]);
  }

  /** Changes a network's settings; every node gets a new map. Throws not_found. */
  async updateNetwork(name: string, req: UpdateNetworkRequest): Promise<Network> {
    const net = await this.networkByName(this.db, name);
    await this.change(net.id, async (q) => {
      const cur = await this.networkById(q, net.id);
      await q.run(
        'UPDATE networks SET listen_port = ?, persistent_keepalive = ?, mtu = ?, allow_without_key = ? WHERE id = ?',
        [
          req.listenPort ?? cur.listen_port,
          req.persistentKeepalive ?? cur.persistent_keepalive,
          req.mtu ?? cur.mtu,
          req.allowJoinWithoutKey === undefined
            ? cur.allow_without_key
            : req.allowJoinWithoutKey
              ? 1
              : 0,
          net.id,
        ],
      );
    });
    return this.getNetwork(name);
  }

  /** Deletes a network with its keys, nodes and external clients; their streams end. Throws not_found. */
  async deleteNetwork(name: string): Promise<void> {
    const net = await this.networkByName(this.db, name);
    await this.db.tx(async (q) => {
      await q.run('DELETE FROM ext_clients WHERE network_id = ?', [net.id]);
      await q.run('DELETE FROM networks WHERE id = ?', [net.id]);
    });
    await this.changed(net.id);
  }

  // --- enrollment keys ---

  /** Creates an enrollment key; the returned object carries the key itself (shown once). */
  async createKey(network: string, req: CreateKeyRequest): Promise<EnrollmentKey> {
    const net = await this.networkByName(this.db, network);
    const key = newEnrollmentKey();
    const now = this.clock();
    const row: KeyRow = {
      id: newId(),
      network_id: net.id,
      name: req.name ?? null,
      key_hash: hashSecret(key),
      max_uses: req.maxUses ?? null,
      uses: 0,
      expires_at: req.expiresInS === undefined ? null : now + req.expiresInS * MS_PER_S,
      auto_approve: req.autoApprove === true ? 1 : 0,
      revoked: 0,
      created_at: now,
    };
    await this.db.run(
      `INSERT INTO enrollment_keys (id, network_id, name, key_hash, max_uses, uses, expires_at, auto_approve, revoked, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        row.id,
        row.network_id,
        row.name,
        row.key_hash,
        row.max_uses,
        row.uses,
        row.expires_at,
        row.auto_approve,
        row.revoked,
        row.created_at,
      ],
    );
    return { ...toKey(row, net.name), key };
  }

  /** A network's enrollment keys (without the keys themselves). */
  async listKeys(network: string): Promise<EnrollmentKey[]> {
    const net = await this.networkByName(this.db, network);
    const rows = await this.db.all<KeyRow>(
      'SELECT * FROM enrollment_keys WHERE network_id = ? ORDER BY created_at, id',
      [net.id],
    );
    return rows.map((k) => toKey(k, net.name));
  }

  /** Revokes a key; nodes that used it stay. Throws not_found. */
  async revokeKey(network: string, id: string): Promise<EnrollmentKey> {
    const net = await this.networkByName(this.db, network);
    const n = await this.db.run(
      'UPDATE enrollment_keys SET revoked = 1 WHERE id = ? AND network_id = ?',
      [id, net.id],
    );
    if (n === 0) throw new ApiError('not_found', `no enrollment key ${id} in network ${network}`);
    const row = await this.db.get<KeyRow>('SELECT * FROM enrollment_keys WHERE id = ?', [id]);
    return toKey(row as KeyRow, net.name);
  }

  // --- nodes ---

  /**
   * Registers a node: checks the key (or the network's open-join setting), allocates the lowest
   * free address, stores the node with a hashed secret. Returns the node and its secret.
   */
  async register(
    req: RegisterRequest,
  ): Promise<{ node: NodeRow; network: NetworkRow; secret: string }> {
    const net = await this.networkByName(this.db, req.network);
    const now = this.clock();
    const id = newId();
    const secret = newNodeSecret(id);
    const out = await this.change(net.id, async (q) => {
      const cur = await this.networkById(q, net.id);
      let state: NodeState = 'pending';
      let keyId: string | null = null;
      if (req.enrollmentKey !== undefined) {
        const key = await q.get<KeyRow>(
          `SELECT * FROM enrollment_keys WHERE key_hash = ?${this.db.forUpdate}`,
          [hashSecret(req.enrollmentKey)],
        );
        if (key === undefined || key.revoked === 1)
          throw new ApiError('enrollment_key_invalid', 'the enrollment key is unknown or revoked');
        if (key.network_id !== net.id)
          throw new ApiError(
            'enrollment_key_invalid',
            `the enrollment key is not for network ${req.network}`,
          );
        if (key.expires_at !== null && Number(key.expires_at) <= now)
          throw new ApiError(
            'enrollment_key_expired',
            'the enrollment key has expired; ask the admin for a new one',
          );
        const used = await q.run(
          'UPDATE enrollment_keys SET uses = uses + 1 WHERE id = ? AND (max_uses IS NULL OR uses < max_uses)',
          [key.id],
        );
        if (used === 0)
          throw new ApiError(
            'enrollment_key_exhausted',
            'the enrollment key has no uses left; ask the admin for a new one',
          );
        keyId = key.id;
        if (key.auto_approve === 1) state = 'approved';
      } else if (cur.allow_without_key !== 1) {
        throw new ApiError(
          'enrollment_key_required',
          `network ${req.network} needs an enrollment key (--key)`,
        );
      }
      const clash = await q.get<{ name: string; public_key: string }>(
        "SELECT name, public_key FROM nodes WHERE network_id = ? AND state IN ('pending', 'approved') AND (name = ? OR public_key = ?)",
        [net.id, req.name, req.publicKey],
      );
      if (clash !== undefined) {
        if (clash.public_key === req.publicKey)
          throw new ApiError(
            'node_exists',
            'a node with this public key is already in the network',
          );
        throw new ApiError(
          'name_taken',
          `a node named ${req.name} is already in network ${req.network}; choose another --name`,
        );
      }
      // External clients share the network's peers and names (item 1 and 6 of the probe): a node
      // with a client's key would make every map carry one key twice.
      const ext = await q.get<{ name: string; public_key: string }>(
        'SELECT name, public_key FROM ext_clients WHERE network_id = ? AND (name = ? OR public_key = ?)',
        [net.id, req.name, req.publicKey],
      );
      if (ext !== undefined) {
        if (ext.public_key === req.publicKey)
          throw new ApiError(
            'node_exists',
            `external client ${ext.name} already uses this public key in network ${req.network}; generate a new key pair`,
          );
        throw new ApiError(
          'name_taken',
          `an external client named ${req.name} is in network ${req.network}; choose another --name`,
        );
      }
      const hostIndex = await this.allocate(q, cur, id);
      const row: NodeRow = {
        id,
        network_id: net.id,
        name: req.name,
        public_key: req.publicKey,
        state,
        host_index: hostIndex,
        secret_hash: hashSecret(secret),
        os: req.os,
        version: req.version,
        backend: req.backend,
        listen_port: req.listenPort ?? cur.listen_port,
        local_endpoints: json(req.localEndpoints ?? []),
        reflected_endpoint: null,
        egress_ranges: null,
        egress_interface: null,
        is_ingress: 0,
        ingress_endpoint: null,
        is_relay: 0,
        relayed_by: null,
        last_seen_at: now,
        peer_status: '[]',
        enrollment_key_id: keyId,
        created_at: now,
      };
      await q.run(
        `INSERT INTO nodes (id, network_id, name, public_key, state, host_index, secret_hash, os, version, backend, listen_port,
           local_endpoints, reflected_endpoint, egress_ranges, egress_interface, is_ingress, ingress_endpoint, is_relay, relayed_by,
           last_seen_at, peer_status, enrollment_key_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          row.id,
          row.network_id,
          row.name,
          row.public_key,
          row.state,
          row.host_index,
          row.secret_hash,
          row.os,
          row.version,
          row.backend,
          row.listen_port,
          row.local_endpoints,
          row.reflected_endpoint,
          row.egress_ranges,
          row.egress_interface,
          row.is_ingress,
          row.ingress_endpoint,
          row.is_relay,
          row.relayed_by,
          row.last_seen_at,
          row.peer_status,
          row.enrollment_key_id,
          row.created_at,
        ],
      );
      return { node: row, network: { ...cur, revision: Number(cur.revision) } };
    });
    return { ...out, secret };
  }

  /** The node a node secret belongs to, or null when the secret is unknown or wrong. */
  async authenticateNode(secret: string): Promise<NodeRow | null> {
    const id = nodeIdOfSecret(secret);
    if (id === null) return null;
    const row = await this.db.get<NodeRow>('SELECT * FROM nodes WHERE id = ?', [id]);
    return row !== undefined && secretMatches(secret, row.secret_hash) ? row : null;
  }

  /** Nodes, optionally of one network and/or one state, oldest first. */
  async listNodes(network?: string, state?: NodeState): Promise<Node[]> {
    const nets = new Map(
      (await this.db.all<NetworkRow>('SELECT * FROM networks')).map((n) => [n.id, n]),
    );
    let sql = 'SELECT * FROM nodes WHERE 1 = 1';
    const params: string[] = [];
    if (network !== undefined) {
      const net = [...nets.values()].find((n) => n.name === network);
      if (net === undefined) throw new ApiError('not_found', `no network named ${network}`);
      sql += ' AND network_id = ?';
      params.push(net.id);
    }
    if (state !== undefined) {
      sql += ' AND state = ?';
      params.push(state);
    }
    const rows = await this.db.all<NodeRow>(`${sql} ORDER BY created_at, id`, params);
    return rows.flatMap((r) => {
      const net = nets.get(r.network_id);
      return net === undefined ? [] : [toNode(r, net)];
    });
  }

  /** One node (admin view). Throws not_found. */
  async getNode(id: string): Promise<Node> {
    const row = await this.nodeRow(this.db, id);
    return toNode(row, await this.networkById(this.db, row.network_id));
  }

  /** The raw row of a node, or undefined. */
  async nodeById(id: string): Promise<NodeRow | undefined> {
    return this.db.get<NodeRow>('SELECT * FROM nodes WHERE id = ?', [id]);
  }

  /** Applies a state change with its rules. Throws not_found or conflict. */
  async setNodeState(id: string, to: 'approved' | 'rejected' | 'removed'): Promise<Node> {
    const before = await this.nodeRow(this.db, id);
    await this.change(before.network_id, async (q) => {
      const n = await this.nodeRow(q, id);
      if (n.state === to) return;
      if (n.state === 'removed')
        throw new ApiError('conflict', 'the node was removed; it has to join again');
      if (to === 'removed' || to === 'rejected') {
        // Nodes it relayed for fall back to direct paths.
        await q.run('UPDATE nodes SET relayed_by = NULL WHERE relayed_by = ?', [id]);
        await q.run('DELETE FROM pair_relays WHERE node_a = ? OR node_b = ? OR relay_id = ?', [
          id,
          id,
          id,
        ]);
      }
      try {
        await q.run('UPDATE nodes SET state = ? WHERE id = ?', [to, id]);
      } catch (e) {
        if (e instanceof UniqueViolation)
          throw new ApiError('conflict', 'another active node now has this name or public key');
        throw e;
      }
    });
    return this.getNode(id);
  }

  /** Forgets a removed or rejected node and frees its address. Throws not_found or conflict. */
  async releaseNode(id: string): Promise<void> {
    const before = await this.nodeRow(this.db, id);
    await this.change(before.network_id, async (q) => {
      const n = await this.nodeRow(q, id);
      if (n.state !== 'removed' && n.state !== 'rejected') {
        throw new ApiError(
          'conflict',
          'only removed or rejected nodes can be released; remove it first',
        );
      }
      const clients = await q.all<{ id: string }>(
        'SELECT id FROM ext_clients WHERE ingress_node_id = ?',
        [id],
      );
      for (const c of clients) await q.run('DELETE FROM addresses WHERE owner_id = ?', [c.id]);
      await q.run('DELETE FROM ext_clients WHERE ingress_node_id = ?', [id]);
      await q.run('DELETE FROM addresses WHERE owner_id = ?', [id]);
      await q.run('DELETE FROM pair_relays WHERE node_a = ? OR node_b = ? OR relay_id = ?', [
        id,
        id,
        id,
      ]);
      await q.run('DELETE FROM nodes WHERE id = ?', [id]);
    });
  }

  /** Makes a node an egress gateway for `ranges` (replacing earlier ones). */
  async setEgress(id: string, req: SetEgressRequest): Promise<Node> {
    const ranges: string[] = [];
    for (const r of req.ranges) {
      const c = normalizeRange(r);
      if ('problem' in c) throw new ApiError('validation_failed', c.problem);
      if (!ranges.includes(c.cidr)) ranges.push(c.cidr);
    }
    const node = await this.nodeRow(this.db, id);
    const problem = egressRangeProblem(
      ranges,
      rangesOf(await this.networkById(this.db, node.network_id)),
    );
    if (problem !== null) throw new ApiError('validation_failed', problem);
    return this.updateRole(
      id,
      'UPDATE nodes SET egress_ranges = ?, egress_interface = ? WHERE id = ?',
      [json(ranges), req.interface ?? '', id],
    );
  }

  /** Removes a node's egress role. */
  async clearEgress(id: string): Promise<Node> {
    return this.updateRole(
      id,
      'UPDATE nodes SET egress_ranges = NULL, egress_interface = NULL WHERE id = ?',
      [id],
    );
  }

  /** Makes a node an ingress gateway, optionally with the endpoint external clients dial. */
  async setIngress(id: string, req: SetIngressRequest): Promise<Node> {
    return this.updateRole(
      id,
      'UPDATE nodes SET is_ingress = 1, ingress_endpoint = ? WHERE id = ?',
      [req.endpoint ?? null, id],
    );
  }

  /** Removes a node's ingress role; its external clients stay but lose their path until it returns. */
  async clearIngress(id: string): Promise<Node> {
    return this.updateRole(
      id,
      'UPDATE nodes SET is_ingress = 0, ingress_endpoint = NULL WHERE id = ?',
      [id],
    );
  }

  private async updateRole(
    id: string,
    sql: string,
    params: (string | number | null)[],
  ): Promise<Node> {
    const before = await this.nodeRow(this.db, id);
    await this.change(before.network_id, async (q) => {
      const n = await this.nodeRow(q, id);
      if (n.state === 'removed') throw new ApiError('conflict', 'the node was removed');
      await q.run(sql, params);
    });
    return this.getNode(id);
  }

  /** Makes a node the relay of `relayedNodeIds` (ids or names, all in its network), replacing its earlier set. */
  async setRelay(id: string, relayedNodeIds: string[]): Promise<Node> {
    const before = await this.nodeRow(this.db, id);
    await this.change(before.network_id, async (q) => {
      const n = await this.nodeRow(q, id);
      if (n.state === 'removed') throw new ApiError('conflict', 'the node was removed');
      const relayed: string[] = [];
      for (const r of relayedNodeIds) {
        // A node id, or the name of an active node of the relay's network.
        const other =
          (await q.get<NodeRow>('SELECT * FROM nodes WHERE id = ? AND network_id = ?', [
            r,
            n.network_id,
          ])) ??
          (await q.get<NodeRow>(
            "SELECT * FROM nodes WHERE name = ? AND network_id = ? AND state IN ('pending', 'approved')",
            [r, n.network_id],
          ));
        if (other === undefined)
          throw new ApiError('not_found', `no node ${r} in the relay's network`);
        if (other.id === id)
          throw new ApiError('validation_failed', 'a node cannot relay for itself');
        if (other.is_relay === 1)
          throw new ApiError('conflict', `node ${other.name} is itself a relay`);
        relayed.push(other.id);
      }
      await q.run('UPDATE nodes SET relayed_by = NULL WHERE relayed_by = ?', [id]);
      await q.run('UPDATE nodes SET is_relay = 1, relayed_by = NULL WHERE id = ?', [id]);
      for (const r of relayed) await q.run('UPDATE nodes SET relayed_by = ? WHERE id = ?', [id, r]);
    });
    return this.getNode(id);
  }

  /** Removes a node's relay role; the nodes and pairs it relayed for go direct. */
  async clearRelay(id: string): Promise<Node> {
    const before = await this.nodeRow(this.db, id);
    await this.change(before.network_id, async (q) => {
      await q.run('UPDATE nodes SET relayed_by = NULL WHERE relayed_by = ?', [id]);
      await q.run('DELETE FROM pair_relays WHERE relay_id = ?', [id]);
      await q.run('UPDATE nodes SET is_relay = 0 WHERE id = ?', [id]);
    });
    return this.getNode(id);
  }

  /**
   * Records a node's check-in. Fields that peers see (listen port, endpoints) bump the network's
   * revision only when they changed; status fields never do. Returns whether peers' maps changed.
   */
  async checkin(node: NodeRow, req: CheckinRequest): Promise<boolean> {
    const now = this.clock();
    const listenPort = req.listenPort ?? node.listen_port;
    const local =
      req.localEndpoints === undefined ? node.local_endpoints : json(req.localEndpoints);
    const reflected =
      req.reflectedEndpoint === undefined
        ? node.reflected_endpoint
        : req.reflectedEndpoint === null
          ? null
          : json(req.reflectedEndpoint);
    const visible =
      listenPort !== node.listen_port ||
      local !== node.local_endpoints ||
      reflected !== node.reflected_endpoint;
    const update = async (q: Queryable): Promise<void> => {
      await q.run(
        `UPDATE nodes SET listen_port = ?, local_endpoints = ?, reflected_endpoint = ?, backend = ?, version = ?, os = ?,
           peer_status = ?, last_seen_at = ? WHERE id = ?`,
        [
          listenPort,
          local,
          reflected,
          req.backend ?? node.backend,
          req.version ?? node.version,
          req.os ?? node.os,
          req.peers === undefined ? node.peer_status : json(req.peers),
          now,
          node.id,
        ],
      );
    };
    if (visible) await this.change(node.network_id, update);
    else await this.db.tx(update);
    return visible;
  }

  /**
   * Applies a relay-fallback decision to a network in one change (one new map version): the pairs
   * in `remove` go direct, those in `add` are relayed (or moved to another relay). Pairs are node
   * ids with a < b. Returns whether anything changed (nothing is published otherwise).
   */
  async applyPairRelays(
    networkId: string,
    add: readonly { a: string; b: string; relayId: string }[],
    remove: readonly { a: string; b: string }[],
  ): Promise<boolean> {
    if (add.length === 0 && remove.length === 0) return false;
    const now = this.clock();
    await this.change(networkId, async (q) => {
      for (const r of remove)
        await q.run('DELETE FROM pair_relays WHERE network_id = ? AND node_a = ? AND node_b = ?', [
          networkId,
          r.a,
          r.b,
        ]);
      for (const r of add) {
        await q.run('DELETE FROM pair_relays WHERE network_id = ? AND node_a = ? AND node_b = ?', [
          networkId,
          r.a,
          r.b,
        ]);
        await q.run(
          'INSERT INTO pair_relays (network_id, node_a, node_b, relay_id, created_at) VALUES (?, ?, ?, ?, ?)',
          [networkId, r.a, r.b, r.relayId, now],
        );
      }
    });
    return true;
  }

  // --- external clients ---

  /** Creates an external client behind an ingress gateway; generates its key pair unless given one. */
  async createExtClient(network: string, req: CreateExtClientRequest): Promise<ExtClient> {
    const net = await this.networkByName(this.db, network);
    const id = newId();
    await this.change(net.id, async (q) => {
      let ingress: NodeRow | undefined;
      if (req.ingressNodeId !== undefined) {
        ingress = await q.get<NodeRow>('SELECT * FROM nodes WHERE id = ? AND network_id = ?', [
          req.ingressNodeId,
          net.id,
        ]);
        if (ingress === undefined)
          throw new ApiError('not_found', `no node ${req.ingressNodeId} in network ${network}`);
        if (ingress.is_ingress !== 1)
          throw new ApiError('conflict', `node ${ingress.name} is not an ingress gateway`);
      } else {
        const gws = await q.all<NodeRow>(
          "SELECT * FROM nodes WHERE network_id = ? AND is_ingress = 1 AND state = 'approved'",
          [net.id],
        );
        if (gws.length === 0)
          throw new ApiError(
            'conflict',
            `network ${network} has no ingress gateway; make a node one first`,
          );
        if (gws.length > 1)
          throw new ApiError(
            'validation_failed',
            `network ${network} has several ingress gateways; name one with ingressNodeId`,
          );
        ingress = gws[0];
      }
      let publicKey = req.publicKey;
      let privateKey: string | null = null;
      if (publicKey === undefined) {
        const priv = generatePrivateKey((out) => randomBytes(out.length).copy(out));
        privateKey = keyToBase64(priv);
        publicKey = keyToBase64(publicKeyOf(nobleCrypto, priv));
        wipe(priv);
      }
      // One public key and one name per peer of the network, nodes and external clients alike.
      const node = await q.get<{ name: string; public_key: string }>(
        "SELECT name, public_key FROM nodes WHERE network_id = ? AND state IN ('pending', 'approved') AND (name = ? OR public_key = ?)",
        [net.id, req.name, publicKey],
      );
      if (node !== undefined)
        throw node.public_key === publicKey
          ? new ApiError('conflict', `node ${node.name} already uses this public key in ${network}`)
          : new ApiError(
              'name_taken',
              `a node named ${req.name} is in ${network}; choose another name`,
            );
      const sameKey = await q.get<{ name: string }>(
        'SELECT name FROM ext_clients WHERE network_id = ? AND public_key = ?',
        [net.id, publicKey],
      );
      if (sameKey !== undefined)
        throw new ApiError(
          'conflict',
          `external client ${sameKey.name} already uses this public key in ${network}`,
        );
      const hostIndex = await this.allocate(q, net, id);
      try {
        await q.run(
          `INSERT INTO ext_clients (id, network_id, name, public_key, private_key, ingress_node_id, host_index, dns, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            id,
            net.id,
            req.name,
            publicKey,
            privateKey === null || this.seal === null ? privateKey : this.seal.seal(privateKey, id),
            (ingress as NodeRow).id,
            hostIndex,
            json(req.dns ?? []),
            this.clock(),
          ],
        );
      } catch (e) {
        if (e instanceof UniqueViolation)
          throw new ApiError(
            'name_taken',
            `an external client named ${req.name} exists in ${network}`,
          );
        throw e;
      }
    });
    return this.getExtClient(id);
  }

  /** A network's external clients. */
  async listExtClients(network: string): Promise<ExtClient[]> {
    const net = await this.networkByName(this.db, network);
    const rows = await this.db.all<ExtClientRow>(
      'SELECT * FROM ext_clients WHERE network_id = ? ORDER BY created_at, id',
      [net.id],
    );
    return rows.map((r) => toExtClient(r, net));
  }

  /** One external client. Throws not_found. */
  async getExtClient(id: string): Promise<ExtClient> {
    const { row, network } = await this.extClientRow(id);
    return toExtClient(row, network);
  }

  /** The row of an external client with its network. Throws not_found. */
  async extClientRow(id: string): Promise<{ row: ExtClientRow; network: NetworkRow }> {
    const row = await this.db.get<ExtClientRow>('SELECT * FROM ext_clients WHERE id = ?', [id]);
    if (row === undefined) throw new ApiError('not_found', `no external client with id ${id}`);
    if (row.private_key !== null && this.seal !== null)
      row.private_key = this.seal.open(row.private_key, row.id);
    return { row, network: await this.networkById(this.db, row.network_id) };
  }

  /** Deletes an external client and frees its address. Throws not_found. */
  async deleteExtClient(id: string): Promise<void> {
    const { row } = await this.extClientRow(id);
    await this.change(row.network_id, async (q) => {
      await q.run('DELETE FROM ext_clients WHERE id = ?', [id]);
      await q.run('DELETE FROM addresses WHERE owner_id = ?', [id]);
    });
  }

  // --- reads for maps and metrics ---

  /** Everything a network's maps are built from, or null when the network is gone. */
  async networkState(networkId: string): Promise<NetworkState | null> {
    return this.db.tx(async (q) => {
      const network = await q.get<NetworkRow>('SELECT * FROM networks WHERE id = ?', [networkId]);
      if (network === undefined) return null;
      const nodes = await q.all<NodeRow>(
        'SELECT * FROM nodes WHERE network_id = ? ORDER BY created_at, id',
        [networkId],
      );
      const extClients = await q.all<ExtClientRow>(
        'SELECT * FROM ext_clients WHERE network_id = ? ORDER BY created_at, id',
        [networkId],
      );
      const pairRelays = await q.all<PairRelayRow>(
        'SELECT * FROM pair_relays WHERE network_id = ? ORDER BY node_a, node_b',
        [networkId],
      );
      return {
        network: { ...network, revision: Number(network.revision) },
        nodes,
        extClients,
        pairRelays,
      };
    });
  }

  /** Node counts by network and state. */
  async nodeCounts(): Promise<NodeCount[]> {
    return this.db.all<NodeCount>(
      'SELECT networks.name AS network, nodes.state AS state, COUNT(*) AS count FROM nodes JOIN networks ON networks.id = nodes.network_id GROUP BY networks.name, nodes.state',
    );
  }
}
