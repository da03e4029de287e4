/**
 * External clients' configuration: the wg-quick file a stock WireGuard app imports (wg-quick(8)
 * `[Interface]` / `[Peer]`), and its QR code as PNG and as text for a terminal.
 */
import QRCode from 'qrcode';
import { formatEndpoint, type Endpoint } from '@wiremesh/protocol';
import { ApiError } from './api-error.js';
import { EXT_CLIENT_KEEPALIVE_S } from './constants.js';
import { wgQuickDns } from './dns-names.js';
import {
  addressesOf,
  egressOf,
  parseJson,
  rangesOf,
  type ExtClientRow,
  type NetworkRow,
  type NodeRow,
} from './store.js';

const HOST_PREFIX_V4 = 32;
const HOST_PREFIX_V6 = 128;
/** Placeholder written when the coordinator never saw the client's private key. */
export const PRIVATE_KEY_PLACEHOLDER = '<the private key of this client>';

/**
 * Renders the wg-quick config of `client`. `gateways` are the network's approved egress
 * gateways (their ranges become AllowedIPs); `dnsDomain` the network's domain (the search domain
 * when the ingress gateway's resolver is among the client's DNS servers). Throws ApiError(conflict) when the ingress gateway
 * is not usable or has no endpoint to dial.
 */
export function renderWgQuick(
  client: ExtClientRow,
  network: NetworkRow,
  ingress: NodeRow | undefined,
  gateways: NodeRow[],
  dnsDomain: string = network.name,
): string {
  if (ingress === undefined || ingress.state !== 'approved' || ingress.is_ingress !== 1) {
    throw new ApiError(
      'conflict',
      'the external client’s ingress gateway is not an approved ingress gateway',
    );
  }
  const endpoint = ingress.ingress_endpoint ?? endpointOf(ingress);
  if (endpoint === null) {
    throw new ApiError(
      'conflict',
      'the ingress gateway has no known public endpoint; set one with `gateway ingress ID --endpoint host:port`',
    );
  }
  const a = addressesOf(rangesOf(network), client.host_index);
  const addresses =
    a.v6 === null
      ? [`${a.v4}/${HOST_PREFIX_V4}`]
      : [`${a.v4}/${HOST_PREFIX_V4}`, `${a.v6}/${HOST_PREFIX_V6}`];
  const allowed = [network.ipv4_cidr, ...(network.ipv6_cidr === null ? [] : [network.ipv6_cidr])];
  for (const g of gateways)
    for (const r of egressOf(g)?.ranges ?? []) if (!allowed.includes(r)) allowed.push(r);
  const dns = wgQuickDns(parseJson<string[]>(client.dns, []), ingress, network, dnsDomain);
  const lines = [
    '[Interface]',
    `PrivateKey = ${client.private_key ?? PRIVATE_KEY_PLACEHOLDER}`,
    `Address = ${addresses.join(', ')}`,
    ...(dns.length > 0 ? [`DNS = ${dns.join(', ')}`] : []),
    `MTU = ${network.mtu}`,
    '',
    '[Peer]',
    `PublicKey = ${ingress.public_key}`,
    `Endpoint = ${endpoint}`,
    `AllowedIPs = ${allowed.join(', ')}`,
    `PersistentKeepalive = ${EXT_CLIENT_KEEPALIVE_S}`,
    '',
  ];
  return lines.join('\n');
}

function endpointOf(n: NodeRow): string | null {
  const reflected = parseJson<Endpoint | null>(n.reflected_endpoint, null);
  if (reflected !== null) return formatEndpoint(reflected);
  const local = parseJson<Endpoint[]>(n.local_endpoints, []);
  return local[0] === undefined ? null : formatEndpoint(local[0]);
}

/** The config as a PNG QR code. */
export async function qrPng(config: string): Promise<Buffer> {
  return QRCode.toBuffer(config, { type: 'png', errorCorrectionLevel: 'M', margin: 2, scale: 6 });
}

/** The config as a QR code drawn with Unicode block characters, for a terminal. */
export async function qrText(config: string): Promise<string> {
  return QRCode.toString(config, { type: 'utf8', errorCorrectionLevel: 'M', margin: 2 });
}
