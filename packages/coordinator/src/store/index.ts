/**
 * The coordinator's state and every rule about changing it, one module per aggregate (networks,
 * enrollment keys, nodes, gateways and relays, external clients, DNS names, the admin token, named
 * admin tokens, the audit log). Rows never leave the store: each module parses its rows, JSON
 * columns through a zod schema, into records.
 * Each change runs in one transaction that first bumps the network's revision (which also locks
 * the network row, serialising its writers) and then publishes the change.
 */
import type { PeerStatus } from '@wiremesh/protocol';
import type { Db, Queryable } from '../db.js';
import type { KeySeal } from '../key-seal.js';
import { AdminToken } from './admin-token.js';
import { AdminTokens } from './admin-tokens.js';
import { AuditLog } from './audit-log.js';
import type { StoreContext } from './context.js';
import { Dns, dnsOf, type NetworkDnsState } from './dns.js';
import { EnrollmentKeys } from './enrollment-keys.js';
import { ExtClients, extClientsOf, type ExtClientRecord } from './ext-clients.js';
import { Gateways } from './gateways.js';
import { findNetwork, Networks, type NetworkRecord } from './networks.js';
import { nodeRecordsOf, nodeReportsOf, Nodes, type NodeRecord } from './nodes.js';
import {
  pairRelaysOf,
  pairWaitsOf,
  type PairRelayRecord,
  type PairWaitRecord,
} from './pair-relays.js';

export { allows, type AdminTokenRecord, type Principal } from './admin-tokens.js';
export { addressesOf, rangesOf, type NetworkRecord, type Ranges } from './networks.js';
export type { NodeCount, NodeRecord } from './nodes.js';
export type { ExtClientRecord } from './ext-clients.js';
export {
  domainOf,
  mapRecordsOf,
  wgQuickDns,
  type DnsRecordRecord,
  type NetworkDnsState,
} from './dns.js';
export type { PairRelayRecord, PairWaitRecord } from './pair-relays.js';

/** Everything a network's maps are computed from. */
export interface NetworkState {
  network: NetworkRecord;
  nodes: NodeRecord[];
  extClients: ExtClientRecord[];
  /** Pairs relayed by the relay fallback; absent means none. */
  pairRelays?: PairRelayRecord[];
  /** What each node (by id) last reported about its peers (observed endpoints); absent: none. */
  peerStatus?: ReadonlyMap<string, readonly PeerStatus[]>;
  /** The domain and custom records (dns.ts); absent means the default domain, none. */
  dns?: NetworkDnsState;
}

/** Everything the relay fallback decides from. */
export interface RelayState {
  network: NetworkRecord;
  nodes: NodeRecord[];
  /** What each node (by id) last reported about its peers. */
  peerStatus: ReadonlyMap<string, readonly PeerStatus[]>;
  pairRelays: PairRelayRecord[];
  pairWaits: PairWaitRecord[];
}

/** The coordinator's state. Methods throw ApiError for anything the client got wrong. */
export class Store {
  readonly adminToken: AdminToken;
  readonly adminTokens: AdminTokens;
  readonly audit: AuditLog;
  readonly networks: Networks;
  readonly keys: EnrollmentKeys;
  readonly nodes: Nodes;
  readonly gateways: Gateways;
  readonly extClients: ExtClients;
  readonly dns: Dns;
  private readonly localListeners: ((networkId: string) => void)[] = [];

  constructor(
    readonly db: Db,
    clock: () => number = Date.now,
    /** Seals generated private keys of external clients at rest; null stores them as they are. */
    seal: KeySeal | null = null,
  ) {
    const changed = async (networkId: string): Promise<void> => {
      for (const l of this.localListeners) l(networkId);
      await db.publish(networkId);
    };
    const ctx: StoreContext = {
      db,
      clock,
      changed,
      async change<T>(networkId: string, fn: (q: Queryable) => Promise<T>): Promise<T> {
        const out = await db.tx(async (q) => {
          await q.run('UPDATE networks SET revision = revision + 1 WHERE id = ?', [networkId]);
          return fn(q);
        });
        await changed(networkId);
        return out;
      },
    };
    this.adminToken = new AdminToken(ctx);
    this.adminTokens = new AdminTokens(ctx);
    this.audit = new AuditLog(ctx);
    this.networks = new Networks(ctx);
    this.keys = new EnrollmentKeys(ctx);
    this.nodes = new Nodes(ctx);
    this.gateways = new Gateways(ctx);
    this.extClients = new ExtClients(ctx, seal);
    this.dns = new Dns(ctx);
  }

  /**
   * Registers `listener` for changes made through this store, called before the database's change
   * feed is told, so this coordinator reads its own writes at once.
   */
  onLocalChange(listener: (networkId: string) => void): void {
    this.localListeners.push(listener);
  }

  /** Everything a network's maps are built from, read in one transaction; null when the network is gone. */
  async networkState(networkId: string): Promise<NetworkState | null> {
    return this.readNetwork(networkId, async (q, network, { nodes, peerStatus }) => ({
      network,
      nodes,
      extClients: await extClientsOf(q, networkId),
      pairRelays: await pairRelaysOf(q, networkId),
      peerStatus,
      dns: await dnsOf(q, networkId),
    }));
  }

  /** Everything the relay fallback looks at, read in one transaction; null when the network is gone. */
  async relayState(networkId: string): Promise<RelayState | null> {
    return this.readNetwork(networkId, async (q, network, { nodes, peerStatus }) => ({
      network,
      nodes,
      peerStatus,
      pairRelays: await pairRelaysOf(q, networkId),
      pairWaits: await pairWaitsOf(q, networkId),
    }));
  }

  /**
   * In one transaction: the network and its nodes' reports, handed to `read` for the rest;
   * null when the network is gone.
   */
  private readNetwork<T>(
    networkId: string,
    read: (
      q: Queryable,
      network: NetworkRecord,
      reports: Awaited<ReturnType<typeof nodeReportsOf>>,
    ) => Promise<T>,
  ): Promise<T | null> {
    return this.db.tx(async (q) => {
      const network = await findNetwork(q, networkId);
      if (network === undefined) return null;
      return read(q, network, await nodeReportsOf(q, networkId));
    });
  }
}
