/**
 * The nodes aggregate: registration (key check, address allocation, hashed secret), node
 * authentication, the approval lifecycle (pending -> approved | rejected -> removed -> released)
 * and check-ins (endpoints, versions, peer status).
 */
import { z } from 'zod';
import {
  Backend,
  Cidr,
  type EgressRole,
  Endpoint,
  NodeState,
  PeerStatus,
  type CheckinRequest,
  type Node,
  type RegisterRequest,
} from '@wiremesh/protocol';
import { ApiError } from '../api-error.js';
import { isPublicNode, observationKey } from '../observed-endpoints.js';
import { UniqueViolation, type Queryable } from '../db.js';
import { hashSecret, newNodeSecret, nodeIdOfSecret, secretMatches } from '../secrets.js';
import { allocateAddress, freeAddress } from './addresses.js';
import { newId, type StoreContext } from './context.js';
import { useEnrollmentKey } from './enrollment-keys.js';
import { jsonText, parseColumn, parseValue } from './json.js';
import { assertNameFree } from './names.js';
import { forgetPairsOf } from './pair-relays.js';
import {
  addressesOf,
  allNetworks,
  networkById,
  networkByName,
  rangesOf,
  type NetworkRecord,
} from './networks.js';

/** A node row as stored: snake_case, booleans as 0/1, JSON in the TEXT columns. */
interface NodeRow {
  id: string;
  network_id: string;
  name: string;
  public_key: string;
  state: string;
  host_index: number;
  secret_hash: string;
  os: string;
  version: string;
  backend: string;
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

const LocalEndpointsColumn = z.array(Endpoint);
const ReflectedEndpointColumn = Endpoint.nullable();
const EgressRangesColumn = z.array(Cidr).nullable();
const PeerStatusColumn = z.array(PeerStatus);

/**
 * A stored node, parsed. Its secret's hash and its last peer-status report stay in the store
 * (`Nodes.authenticate`, `Nodes.get`, `Store.relayState` use them).
 */
export interface NodeRecord {
  readonly id: string;
  readonly networkId: string;
  readonly name: string;
  readonly publicKey: string;
  readonly state: NodeState;
  readonly hostIndex: number;
  readonly os: string;
  readonly version: string;
  readonly backend: Backend;
  readonly listenPort: number;
  readonly localEndpoints: readonly Endpoint[];
  readonly reflectedEndpoint: Endpoint | null;
  /** The egress-gateway role, or null. */
  readonly egress: EgressRole | null;
  readonly isIngress: boolean;
  /** The `host:port` external clients dial, when an admin set one. */
  readonly ingressEndpoint: string | null;
  readonly isRelay: boolean;
  /** The relay an admin routes all of this node's peers through, or null. */
  readonly relayedBy: string | null;
  readonly lastSeenAt: number | null;
  readonly enrollmentKeyId: string | null;
  readonly createdAt: number;
}

function recordOf(n: NodeRow): NodeRecord {
  const owner = `node ${n.id}`;
  const ranges = parseColumn(EgressRangesColumn, n.egress_ranges, 'egress_ranges', owner);
  return {
    id: n.id,
    networkId: n.network_id,
    name: n.name,
    publicKey: n.public_key,
    state: parseValue(NodeState, n.state, 'state', owner),
    hostIndex: n.host_index,
    os: n.os,
    version: n.version,
    backend: parseValue(Backend, n.backend, 'backend', owner),
    listenPort: n.listen_port,
    localEndpoints: parseColumn(LocalEndpointsColumn, n.local_endpoints, 'local_endpoints', owner),
    reflectedEndpoint: parseColumn(
      ReflectedEndpointColumn,
      n.reflected_endpoint,
      'reflected_endpoint',
      owner,
    ),
    egress: ranges === null ? null : { ranges, interface: n.egress_interface ?? '' },
    isIngress: n.is_ingress === 1,
    ingressEndpoint: n.ingress_endpoint,
    isRelay: n.is_relay === 1,
    relayedBy: n.relayed_by,
    lastSeenAt: n.last_seen_at === null ? null : Number(n.last_seen_at),
    enrollmentKeyId: n.enrollment_key_id,
    createdAt: Number(n.created_at),
  };
}

/** The peer status a stored node last reported. */
export function peerStatusOf(n: { id: string; peer_status: string }): PeerStatus[] {
  return parseColumn(PeerStatusColumn, n.peer_status, 'peer_status', `node ${n.id}`);
}

/** The admin view of a node. */
function toNode(n: NodeRecord, net: NetworkRecord, peers: PeerStatus[]): Node {
  const a = addressesOf(rangesOf(net), n.hostIndex);
  return {
    id: n.id,
    network: net.name,
    name: n.name,
    publicKey: n.publicKey,
    state: n.state,
    addressV4: a.v4,
    addressV6: a.v6,
    os: n.os,
    version: n.version,
    backend: n.backend,
    listenPort: n.listenPort,
    localEndpoints: [...n.localEndpoints],
    reflectedEndpoint: n.reflectedEndpoint,
    egress: n.egress,
    isIngressGateway: n.isIngress,
    ingressEndpoint: n.ingressEndpoint,
    isRelay: n.isRelay,
    relayedBy: n.relayedBy,
    lastSeenAt: n.lastSeenAt,
    peers,
    createdAt: n.createdAt,
  };
}

/** The node with id `id`, or undefined. */
export async function findNode(q: Queryable, id: string): Promise<NodeRecord | undefined> {
  const n = await q.get<NodeRow>('SELECT * FROM nodes WHERE id = ?', [id]);
  return n === undefined ? undefined : recordOf(n);
}

/** The node with id `id`. Throws not_found. */
export async function nodeById(q: Queryable, id: string): Promise<NodeRecord> {
  const n = await findNode(q, id);
  if (n === undefined) throw new ApiError('not_found', `no node with id ${id}`);
  return n;
}

/** The node with id `id` in network `networkId`, or undefined. */
export async function findNodeInNetwork(
  q: Queryable,
  networkId: string,
  id: string,
): Promise<NodeRecord | undefined> {
  const n = await q.get<NodeRow>('SELECT * FROM nodes WHERE id = ? AND network_id = ?', [
    id,
    networkId,
  ]);
  return n === undefined ? undefined : recordOf(n);
}

/** The active (pending or approved) node named `name` in network `networkId`, or undefined. */
export async function activeNodeByName(
  q: Queryable,
  networkId: string,
  name: string,
): Promise<NodeRecord | undefined> {
  const n = await q.get<NodeRow>(
    "SELECT * FROM nodes WHERE name = ? AND network_id = ? AND state IN ('pending', 'approved')",
    [name, networkId],
  );
  return n === undefined ? undefined : recordOf(n);
}

/** The approved ingress gateways of network `networkId`. */
export async function ingressGateways(q: Queryable, networkId: string): Promise<NodeRecord[]> {
  const rows = await q.all<NodeRow>(
    "SELECT * FROM nodes WHERE network_id = ? AND is_ingress = 1 AND state = 'approved'",
    [networkId],
  );
  return rows.map(recordOf);
}

/** The nodes of network `networkId`, oldest first. */
export async function nodeRecordsOf(q: Queryable, networkId: string): Promise<NodeRecord[]> {
  const rows = await q.all<NodeRow>(
    'SELECT * FROM nodes WHERE network_id = ? ORDER BY created_at, id',
    [networkId],
  );
  return rows.map(recordOf);
}

/**
 * The nodes of network `networkId`, oldest first, with what each last reported about its peers
 * (by node id).
 */
export async function nodeReportsOf(
  q: Queryable,
  networkId: string,
): Promise<{ nodes: NodeRecord[]; peerStatus: Map<string, PeerStatus[]> }> {
  const rows = await q.all<NodeRow>(
    'SELECT * FROM nodes WHERE network_id = ? ORDER BY created_at, id',
    [networkId],
  );
  return {
    nodes: rows.map(recordOf),
    peerStatus: new Map(rows.map((r) => [r.id, peerStatusOf(r)])),
  };
}

/** The admin view of node `id`. Throws not_found. */
export async function nodeView(q: Queryable, id: string): Promise<Node> {
  const row = await q.get<NodeRow>('SELECT * FROM nodes WHERE id = ?', [id]);
  if (row === undefined) throw new ApiError('not_found', `no node with id ${id}`);
  return toNode(recordOf(row), await networkById(q, row.network_id), peerStatusOf(row));
}

/** Counts of nodes by network and state, for /metrics. */
export interface NodeCount {
  network: string;
  state: NodeState;
  count: number;
}

/** Nodes: registration, authentication, lifecycle, check-ins. */
export class Nodes {
  constructor(private readonly s: StoreContext) {}

  /**
   * Registers a node: checks the key (or the network's open-join setting), allocates the lowest
   * free address, stores the node with a hashed secret. Returns the node and its secret.
   */
  async register(
    req: RegisterRequest,
  ): Promise<{ node: NodeRecord; network: NetworkRecord; secret: string }> {
    const net = await networkByName(this.s.db, req.network);
    const now = this.s.clock();
    const id = newId();
    const secret = newNodeSecret(id);
    const out = await this.s.change(net.id, async (q) => {
      const cur = await networkById(q, net.id);
      let state: NodeState = 'pending';
      let keyId: string | null = null;
      if (req.enrollmentKey !== undefined) {
        const k = await useEnrollmentKey(q, this.s.db.forUpdate, cur, req.enrollmentKey, now);
        keyId = k.keyId;
        if (k.autoApprove) state = 'approved';
      } else if (!cur.allowJoinWithoutKey) {
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
      await assertNameFree(q, net.id, req.name);
      // External clients share the network's peers: a node with a client's key would make every
      // map carry one key twice.
      const ext = await q.get<{ name: string }>(
        'SELECT name FROM ext_clients WHERE network_id = ? AND public_key = ?',
        [net.id, req.publicKey],
      );
      if (ext !== undefined)
        throw new ApiError(
          'node_exists',
          `external client ${ext.name} already uses this public key in network ${req.network}; generate a new key pair`,
        );
      const hostIndex = await allocateAddress(q, cur, id);
      const node: NodeRecord = {
        id,
        networkId: net.id,
        name: req.name,
        publicKey: req.publicKey,
        state,
        hostIndex,
        os: req.os,
        version: req.version,
        backend: req.backend,
        listenPort: req.listenPort ?? cur.listenPort,
        localEndpoints: req.localEndpoints ?? [],
        reflectedEndpoint: null,
        egress: null,
        isIngress: false,
        ingressEndpoint: null,
        isRelay: false,
        relayedBy: null,
        lastSeenAt: now,
        enrollmentKeyId: keyId,
        createdAt: now,
      };
      await q.run(
        `INSERT INTO nodes (id, network_id, name, public_key, state, host_index, secret_hash, os, version, backend, listen_port,
           local_endpoints, reflected_endpoint, egress_ranges, egress_interface, is_ingress, ingress_endpoint, is_relay, relayed_by,
           last_seen_at, peer_status, enrollment_key_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, 0, NULL, 0, NULL, ?, '[]', ?, ?)`,
        [
          node.id,
          node.networkId,
          node.name,
          node.publicKey,
          node.state,
          node.hostIndex,
          hashSecret(secret),
          node.os,
          node.version,
          node.backend,
          node.listenPort,
          jsonText(node.localEndpoints),
          now,
          node.enrollmentKeyId,
          node.createdAt,
        ],
      );
      return { node, network: cur };
    });
    return { ...out, secret };
  }

  /** The node a node secret belongs to, or null when the secret is unknown or wrong. */
  async authenticate(secret: string): Promise<NodeRecord | null> {
    const id = nodeIdOfSecret(secret);
    if (id === null) return null;
    const row = await this.s.db.get<NodeRow>('SELECT * FROM nodes WHERE id = ?', [id]);
    return row !== undefined && secretMatches(secret, row.secret_hash) ? recordOf(row) : null;
  }

  /** Nodes (admin view), optionally of one network and/or one state, oldest first. Throws not_found. */
  async list(network?: string, state?: NodeState): Promise<Node[]> {
    const nets = new Map((await allNetworks(this.s.db)).map((n) => [n.id, n]));
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
    const rows = await this.s.db.all<NodeRow>(`${sql} ORDER BY created_at, id`, params);
    return rows.flatMap((r) => {
      const net = nets.get(r.network_id);
      return net === undefined ? [] : [toNode(recordOf(r), net, peerStatusOf(r))];
    });
  }

  /** One node (admin view). Throws not_found. */
  async get(id: string): Promise<Node> {
    return nodeView(this.s.db, id);
  }

  /** The stored node with id `id`. Throws not_found. */
  async record(id: string): Promise<NodeRecord> {
    return nodeById(this.s.db, id);
  }

  /** Applies a state change with its rules. Throws not_found or conflict. */
  async setState(id: string, to: 'approved' | 'rejected' | 'removed'): Promise<Node> {
    const before = await nodeById(this.s.db, id);
    await this.s.change(before.networkId, async (q) => {
      const n = await nodeById(q, id);
      if (n.state === to) return;
      if (n.state === 'removed')
        throw new ApiError('conflict', 'the node was removed; it has to join again');
      if (to === 'removed' || to === 'rejected') {
        // Nodes it relayed for fall back to direct paths.
        await q.run('UPDATE nodes SET relayed_by = NULL WHERE relayed_by = ?', [id]);
        await forgetPairsOf(q, id);
      }
      try {
        await q.run('UPDATE nodes SET state = ? WHERE id = ?', [to, id]);
      } catch (e) {
        if (e instanceof UniqueViolation)
          throw new ApiError('conflict', 'another active node now has this name or public key');
        throw e;
      }
    });
    return this.get(id);
  }

  /** Forgets a removed or rejected node and frees its address. Throws not_found or conflict. */
  async release(id: string): Promise<void> {
    const before = await nodeById(this.s.db, id);
    await this.s.change(before.networkId, async (q) => {
      const n = await nodeById(q, id);
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
      for (const c of clients) await freeAddress(q, c.id);
      await q.run('DELETE FROM ext_clients WHERE ingress_node_id = ?', [id]);
      await freeAddress(q, id);
      await forgetPairsOf(q, id);
      await q.run('DELETE FROM nodes WHERE id = ?', [id]);
    });
  }

  /**
   * Records a check-in of `node` (as authenticated for this request). Fields that peers see
   * (listen port, endpoints) bump the network's revision only when they changed; status fields
   * never do. Returns whether peers' maps changed.
   */
  /**
   * Whether a public node's check-in changes what it observes of its peers: those observations
   * are other nodes' public endpoints in every map (observed-endpoints.ts).
   */
  private async observationsChanged(
    node: NodeRecord,
    req: CheckinRequest,
    reflected: NodeRecord['reflectedEndpoint'],
  ): Promise<boolean> {
    if (req.peers === undefined) return false;
    const after: NodeRecord = {
      ...node,
      localEndpoints: req.localEndpoints ?? node.localEndpoints,
      reflectedEndpoint: reflected,
    };
    const key = observationKey(after, req.peers);
    if (key === '' && !isPublicNode(node)) return false;
    const row = await this.s.db.get<{ id: string; peer_status: string }>(
      'SELECT id, peer_status FROM nodes WHERE id = ?',
      [node.id],
    );
    return key !== observationKey(node, row === undefined ? [] : peerStatusOf(row));
  }

  async checkin(node: NodeRecord, req: CheckinRequest): Promise<boolean> {
    const now = this.s.clock();
    const listenPort = req.listenPort ?? node.listenPort;
    const local = jsonText(req.localEndpoints ?? node.localEndpoints);
    const reflected =
      req.reflectedEndpoint === undefined ? node.reflectedEndpoint : req.reflectedEndpoint;
    const reflectedText = reflected === null ? null : jsonText(reflected);
    const visible =
      listenPort !== node.listenPort ||
      local !== jsonText(node.localEndpoints) ||
      reflectedText !==
        (node.reflectedEndpoint === null ? null : jsonText(node.reflectedEndpoint)) ||
      (await this.observationsChanged(node, req, reflected));
    const update = async (q: Queryable): Promise<void> => {
      await q.run(
        `UPDATE nodes SET listen_port = ?, local_endpoints = ?, reflected_endpoint = ?, backend = ?, version = ?, os = ?,
           peer_status = COALESCE(?, peer_status), last_seen_at = ? WHERE id = ?`,
        [
          listenPort,
          local,
          reflectedText,
          req.backend ?? node.backend,
          req.version ?? node.version,
          req.os ?? node.os,
          req.peers === undefined ? null : jsonText(req.peers),
          now,
          node.id,
        ],
      );
    };
    if (visible) await this.s.change(node.networkId, update);
    else await this.s.db.tx(update);
    return visible;
  }

  /** Node counts by network and state. */
  async counts(): Promise<NodeCount[]> {
    const rows = await this.s.db.all<{ network: string; state: string; count: number }>(
      'SELECT networks.name AS network, nodes.state AS state, COUNT(*) AS count FROM nodes JOIN networks ON networks.id = nodes.network_id GROUP BY networks.name, nodes.state',
    );
    return rows.map((r) => ({
      network: r.network,
      state: NodeState.parse(r.state),
      count: Number(r.count),
    }));
  }
}
