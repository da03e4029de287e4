/** Builders of schema-valid network maps for the agent's unit tests. */
import { PROTOCOL_VERSION, type MapPeer, type NetworkMap } from '@wiremesh/protocol';
import { keyToBase64 } from '@wiremesh/wg-core';
import type { NetworkState } from '../src/state-store.js';

/** A canonical base64 WireGuard key made of byte `n` (distinct n give distinct keys). */
export function key(n: number): string {
  return keyToBase64(new Uint8Array(32).fill(n));
}

/** A peer `n` of network 10.8.0.0/16 at 10.8.0.n, on LAN 192.0.2.n:51820. */
export function peer(n: number, over: Partial<MapPeer> = {}): MapPeer {
  return {
    id: `node-${n}`,
    name: `node-${n}`,
    dnsName: `node-${n}.demo.wm`,
    publicKey: key(n),
    addressV4: `10.8.0.${n}`,
    addressV6: null,
    allowedIps: [`10.8.0.${n}/32`],
    endpoints: { reflected: null, local: [{ ip: `192.0.2.${n}`, port: 51820 }] },
    listenPort: 51820,
    persistentKeepalive: 25,
    relayedBy: null,
    isRelay: false,
    relays: [],
    isEgressGateway: false,
    egressRanges: [],
    isIngressGateway: false,
    ...over,
  };
}

/** The map of node 1 with `peers`, at `version`. */
export function map(
  peers: MapPeer[],
  version = 1,
  over: Partial<NetworkMap['self']> = {},
): NetworkMap {
  return {
    protocolVersion: PROTOCOL_VERSION,
    version,
    network: { name: 'demo', ipv4Cidr: '10.8.0.0/16', ipv6Cidr: null, dnsDomain: 'demo.wm' },
    self: {
      id: 'node-1',
      name: 'node-1',
      dnsName: 'node-1.demo.wm',
      publicKey: key(1),
      addressV4: '10.8.0.1',
      addressV6: null,
      interfaceAddresses: ['10.8.0.1/16'],
      networkCidrs: ['10.8.0.0/16'],
      listenPort: 51820,
      mtu: 1420,
      persistentKeepalive: 25,
      egress: null,
      isIngressGateway: false,
      externalClients: [],
      isRelay: false,
      relays: [],
      relayedBy: null,
      ...over,
    },
    peers,
    reflectPort: null,
  };
}

/** Host addresses: on the 192.0.2.0/24 LAN as .1. */
export const LAN = { localAddresses: [{ address: '192.0.2.1', cidr: '192.0.2.1/24' }] };

/** The stored state of node 1 joined to network `demo` (userspace backend), with `over`. */
export function nodeState(over: Partial<NetworkState> = {}): NetworkState {
  return {
    format: 1,
    network: 'demo',
    server: 'http://10.0.0.1:8080',
    nodeId: 'node-1',
    nodeSecret: 'wmn_node-1.secret',
    name: 'node-1',
    interface: 'wm-demo',
    backend: 'userspace',
    listenPort: null,
    publicKey: key(1),
    joinedAt: 0,
    ...over,
  };
}
