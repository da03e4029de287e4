/**
 * The external-clients aggregate: stock WireGuard devices (phones) that reach the network through
 * an ingress gateway node. Each has an overlay address; the coordinator keeps its private key only
 * when it generated the key pair (to render a complete wg-quick file).
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { IpAddress, type CreateExtClientRequest, type ExtClient } from '@wiremesh/protocol';
import { generatePrivateKey, keyToBase64, nobleCrypto, publicKeyOf, wipe } from '@wiremesh/wg-core';
import { ApiError } from '../api-error.js';
import { UniqueViolation, type Queryable } from '../db.js';
import { isSealed, type KeySeal } from '../key-seal.js';
import { allocateAddress, freeAddress } from './addresses.js';
import { newId, type StoreContext } from './context.js';
import { meshDnsList } from './dns.js';
import { jsonText, parseColumn } from './json.js';
import { assertNameFree } from './names.js';
import {
  addressesOf,
  networkById,
  networkByName,
  rangesOf,
  type NetworkRecord,
} from './networks.js';
import { findNodeInNetwork, ingressGateways, type NodeRecord } from './nodes.js';

interface ExtClientRow {
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

const DnsColumn = z.array(IpAddress);

/** A stored external client, parsed. */
export interface ExtClientRecord {
  readonly id: string;
  readonly networkId: string;
  readonly name: string;
  readonly publicKey: string;
  /**
   * Base64, when the coordinator generated the key pair; a secret (never logged). Opened only by
   * `ExtClients.record`; the read models (`extClientsOf`) carry it sealed as stored.
   */
  readonly privateKey: string | null;
  readonly ingressNodeId: string;
  readonly hostIndex: number;
  /** DNS servers for the wg-quick `DNS =` line. */
  readonly dns: readonly string[];
  readonly createdAt: number;
}

function recordOf(c: ExtClientRow): ExtClientRecord {
  return {
    id: c.id,
    networkId: c.network_id,
    name: c.name,
    publicKey: c.public_key,
    privateKey: c.private_key,
    ingressNodeId: c.ingress_node_id,
    hostIndex: c.host_index,
    dns: parseColumn(DnsColumn, c.dns, 'dns', `external client ${c.id}`),
    createdAt: Number(c.created_at),
  };
}

function toExtClient(c: ExtClientRecord, net: NetworkRecord): ExtClient {
  const a = addressesOf(rangesOf(net), c.hostIndex);
  return {
    id: c.id,
    network: net.name,
    name: c.name,
    publicKey: c.publicKey,
    hasPrivateKey: c.privateKey !== null,
    ingressNodeId: c.ingressNodeId,
    addressV4: a.v4,
    addressV6: a.v6,
    dns: [...c.dns],
    createdAt: c.createdAt,
  };
}

/** The external clients of network `networkId`, oldest first. */
export async function extClientsOf(q: Queryable, networkId: string): Promise<ExtClientRecord[]> {
  const rows = await q.all<ExtClientRow>(
    'SELECT * FROM ext_clients WHERE network_id = ? ORDER BY created_at, id',
    [networkId],
  );
  return rows.map(recordOf);
}

/** The ingress gateway a new client of `net` goes behind. Throws not_found, conflict, validation_failed. */
async function pickIngress(
  q: Queryable,
  net: NetworkRecord,
  ingressNodeId: string | undefined,
): Promise<NodeRecord> {
  if (ingressNodeId !== undefined) {
    const ingress = await findNodeInNetwork(q, net.id, ingressNodeId);
    if (ingress === undefined)
      throw new ApiError('not_found', `no node ${ingressNodeId} in network ${net.name}`);
    if (!ingress.isIngress)
      throw new ApiError('conflict', `node ${ingress.name} is not an ingress gateway`);
    return ingress;
  }
  const gws = await ingressGateways(q, net.id);
  if (gws.length > 1)
    throw new ApiError(
      'validation_failed',
      `network ${net.name} has several ingress gateways; name one with ingressNodeId`,
    );
  const only = gws[0];
  if (only === undefined)
    throw new ApiError(
      'conflict',
      `network ${net.name} has no ingress gateway; make a node one first`,
    );
  return only;
}

/** External clients: creation (with a generated key pair unless given a key), listing, deletion. */
export class ExtClients {
  constructor(
    private readonly s: StoreContext,
    /** Seals generated private keys at rest (key-seal.ts); null stores them as they are. */
    private readonly seal: KeySeal | null = null,
  ) {}

  /** Creates an external client behind an ingress gateway; generates its key pair unless given one. */
  async create(network: string, req: CreateExtClientRequest): Promise<ExtClient> {
    const net = await networkByName(this.s.db, network);
    const id = newId();
    await this.s.change(net.id, async (q) => {
      const ingress = await pickIngress(q, net, req.ingressNodeId);
      let publicKey = req.publicKey;
      let privateKey: string | null = null;
      if (publicKey === undefined) {
        const priv = generatePrivateKey((out) => randomBytes(out.length).copy(out));
        privateKey = keyToBase64(priv);
        publicKey = keyToBase64(publicKeyOf(nobleCrypto, priv));
        wipe(priv);
      }
      await assertNameFree(q, net.id, req.name);
      // One public key per peer of the network, nodes and external clients alike.
      const node = await q.get<{ name: string }>(
        "SELECT name FROM nodes WHERE network_id = ? AND state IN ('pending', 'approved') AND public_key = ?",
        [net.id, publicKey],
      );
      if (node !== undefined)
        throw new ApiError(
          'conflict',
          `node ${node.name} already uses this public key in ${network}`,
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
      const hostIndex = await allocateAddress(q, net, id);
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
            ingress.id,
            hostIndex,
            jsonText(meshDnsList(req, ingress, net)),
            this.s.clock(),
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
    return this.get(id);
  }

  /** A network's external clients. Throws not_found. */
  async list(network: string): Promise<ExtClient[]> {
    const net = await networkByName(this.s.db, network);
    return (await extClientsOf(this.s.db, net.id)).map((c) => toExtClient(c, net));
  }

  /** One external client. Throws not_found. */
  async get(id: string): Promise<ExtClient> {
    const { client, network } = await this.record(id);
    return toExtClient(client, network);
  }

  /** The stored external client with its network. Throws not_found. */
  async record(id: string): Promise<{ client: ExtClientRecord; network: NetworkRecord }> {
    const row = await this.s.db.get<ExtClientRow>('SELECT * FROM ext_clients WHERE id = ?', [id]);
    if (row === undefined) throw new ApiError('not_found', `no external client with id ${id}`);
    if (row.private_key !== null && this.seal !== null)
      row.private_key = this.seal.open(row.private_key, row.id);
    return { client: recordOf(row), network: await networkById(this.s.db, row.network_id) };
  }

  /** Seals the private keys stored before sealing existed (none without a seal). Returns how many. */
  async sealStored(): Promise<number> {
    const seal = this.seal;
    if (seal === null) return 0;
    return this.s.db.tx(async (q) => {
      const rows = await q.all<{ id: string; private_key: string }>(
        'SELECT id, private_key FROM ext_clients WHERE private_key IS NOT NULL',
      );
      let n = 0;
      for (const r of rows) {
        if (isSealed(r.private_key)) continue;
        await q.run('UPDATE ext_clients SET private_key = ? WHERE id = ?', [
          seal.seal(r.private_key, r.id),
          r.id,
        ]);
        n++;
      }
      return n;
    });
  }

  /** Deletes an external client and frees its address. Throws not_found. */
  async delete(id: string): Promise<void> {
    const { client } = await this.record(id);
    await this.s.change(client.networkId, async (q) => {
      await q.run('DELETE FROM ext_clients WHERE id = ?', [id]);
      await freeAddress(q, id);
    });
  }
}
