/**
 * The REST routes of the coordinator, shared so agent, CLI and server never disagree on a path.
 * Functions build concrete paths; the `:param` forms are the server's route patterns.
 */
import { API_PREFIX } from './constants.js';

const e = encodeURIComponent;

/** Routes a node calls, authenticated by its node secret (register needs none or an enrollment key). */
export const NODE_ROUTES = {
  info: `${API_PREFIX}/info`,
  register: `${API_PREFIX}/register`,
  checkin: `${API_PREFIX}/node/checkin`,
  map: `${API_PREFIX}/node/map`,
  stream: `${API_PREFIX}/node/stream`,
  /** DELETE: the node leaves (state becomes removed). */
  self: `${API_PREFIX}/node`,
} as const;

/** Admin routes (Bearer admin token). */
export const ADMIN_ROUTES = {
  networks: `${API_PREFIX}/networks`,
  network: (name: string) => `${API_PREFIX}/networks/${e(name)}`,
  keys: (network: string) => `${API_PREFIX}/networks/${e(network)}/keys`,
  key: (network: string, id: string) => `${API_PREFIX}/networks/${e(network)}/keys/${e(id)}`,
  /** GET: the network's nodes and the path (direct, LAN, relay) of every pair (`NetworkPaths`). */
  paths: (network: string) => `${API_PREFIX}/networks/${e(network)}/paths`,
  networkNodes: (network: string) => `${API_PREFIX}/networks/${e(network)}/nodes`,
  nodes: `${API_PREFIX}/nodes`,
  node: (id: string) => `${API_PREFIX}/nodes/${e(id)}`,
  nodeMap: (id: string) => `${API_PREFIX}/nodes/${e(id)}/map`,
  approve: (id: string) => `${API_PREFIX}/nodes/${e(id)}/approve`,
  reject: (id: string) => `${API_PREFIX}/nodes/${e(id)}/reject`,
  /** POST: forget a removed or rejected node and free its address. */
  release: (id: string) => `${API_PREFIX}/nodes/${e(id)}/release`,
  egress: (id: string) => `${API_PREFIX}/nodes/${e(id)}/egress`,
  ingress: (id: string) => `${API_PREFIX}/nodes/${e(id)}/ingress`,
  relay: (id: string) => `${API_PREFIX}/nodes/${e(id)}/relay`,
  extClients: (network: string) => `${API_PREFIX}/networks/${e(network)}/extclients`,
  extClient: (id: string) => `${API_PREFIX}/extclients/${e(id)}`,
  extClientConfig: (id: string) => `${API_PREFIX}/extclients/${e(id)}/config`,
  extClientQrPng: (id: string) => `${API_PREFIX}/extclients/${e(id)}/qr.png`,
  extClientQrText: (id: string) => `${API_PREFIX}/extclients/${e(id)}/qr.txt`,
  /** PUT `{name}`: rename a node (its DNS name follows). */
  nodeName: (id: string) => `${API_PREFIX}/nodes/${e(id)}/name`,
  /** GET: the domain and every name; PUT `{domain, force?}`: set the domain. */
  dns: (network: string) => `${API_PREFIX}/networks/${e(network)}/dns`,
  dnsRecords: (network: string) => `${API_PREFIX}/networks/${e(network)}/dns/records`,
  /** DELETE: remove a custom record by id or name. */
  dnsRecord: (network: string, idOrName: string) =>
    `${API_PREFIX}/networks/${e(network)}/dns/records/${e(idOrName)}`,
  rotateToken: `${API_PREFIX}/admin/token/rotate`,
  /** GET, POST: named admin tokens with scopes. */
  tokens: `${API_PREFIX}/admin/tokens`,
  /** DELETE: revoke a named admin token. */
  token: (id: string) => `${API_PREFIX}/admin/tokens/${e(id)}`,
  /** GET `?limit=N&before=ID`: the audit log of mutating admin calls, newest first. */
  audit: `${API_PREFIX}/admin/audit`,
} as const;
