// Builders of valid protocol values for the protocol tests.
import type { MapPeer, MapSelf, NetworkMap } from '../src/index.js';

export const KEY_A = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
export const KEY_B = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

export function peer(id: string, over: Partial<MapPeer> = {}): MapPeer {
  return {
    id,
    name: id,
    dnsName: `${id}.demo`,
    publicKey: KEY_B,
    addressV4: '10.8.0.2',
    addressV6: null,
    allowedIps: ['10.8.0.2/32'],
    endpoints: { reflected: null, local: [{ ip: '192.168.1.2', port: 51820 }] },
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

export function self(over: Partial<MapSelf> = {}): MapSelf {
  return {
    id: 'a',
    name: 'a',
    dnsName: 'a.demo',
    publicKey: KEY_A,
    addressV4: '10.8.0.1',
    addressV6: 'fd00:8::1',
    interfaceAddresses: ['10.8.0.1/16', 'fd00:8::1/64'],
    networkCidrs: ['10.8.0.0/16', 'fd00:8::/64'],
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
  };
}

export function map(version: number, peers: MapPeer[]): NetworkMap {
  return {
    protocolVersion: 1,
    version,
    network: { name: 'demo', ipv4Cidr: '10.8.0.0/16', ipv6Cidr: 'fd00:8::/64', dnsDomain: 'demo' },
    self: self(),
    peers,
    reflectPort: 3478,
  };
}
