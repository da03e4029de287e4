/**
 * External clients' configuration: the wg-quick file a stock WireGuard app imports (wg-quick(8)
 * `[Interface]` / `[Peer]`), and its QR code as PNG and as text for a terminal.
 */
import QRCode from 'qrcode';
import { formatEndpoint } from '@wiremesh/protocol';
import { ApiError } from './api-error.js';
import { EXT_CLIENT_KEEPALIVE_S } from './constants.js';
import {
  addressesOf,
  rangesOf,
  type ExtClientRecord,
  type NetworkRecord,
  type NodeRecord,
} from './store/index.js';

const HOST_PREFIX_V4 = 32;
const HOST_PREFIX_V6 = 128;
/** Placeholder written when the coordinator never saw the client's private key. */
export const PRIVATE_KEY_PLACEHOLDER = '<the private key of this client>';

/**
 * Renders the wg-quick config of `client`. `gateways` are the network's approved egress
 * gateways (their ranges become AllowedIPs). Throws ApiError(conflict) when the ingress gateway
 * is not usable or has no endpoint to dial.
 */
export function renderWgQuick(
  client: ExtClientRecord,
  network: NetworkRecord,
  ingress: NodeRecord | undefined,
  gateways: readonly NodeRecord[],
): string {
  if (ingress === undefined || ingress.state !== 'approved' || !ingress.isIngress) {
    throw new ApiError(
      'conflict',
      'the external client’s ingress gateway is not an approved ingress gateway',
    );
  }
  const endpoint = ingress.ingressEndpoint ?? endpointOf(ingress);
  if (endpoint === null) {
    throw new ApiError(
      'conflict',
      'the ingress gateway has no known public endpoint; set one with `gateway ingress ID --endpoint host:port`',
    );
  }
  const a = addressesOf(rangesOf(network), client.hostIndex);
  const addresses =
    a.v6 === null
      ? [`${a.v4}/${HOST_PREFIX_V4}`]
      : [`${a.v4}/${HOST_PREFIX_V4}`, `${a.v6}/${HOST_PREFIX_V6}`];
  const allowed = [network.ipv4Cidr, ...(network.ipv6Cidr === null ? [] : [network.ipv6Cidr])];
  for (const g of gateways)
    for (const r of g.egress?.ranges ?? []) if (!allowed.includes(r)) allowed.push(r);
  const lines = [
    '[Interface]',
    `PrivateKey = ${client.privateKey ?? PRIVATE_KEY_PLACEHOLDER}`,
    `Address = ${addresses.join(', ')}`,
    ...(client.dns.length > 0 ? [`DNS = ${client.dns.join(', ')}`] : []),
    `MTU = ${network.mtu}`,
    '',
    '[Peer]',
    `PublicKey = ${ingress.publicKey}`,
    `Endpoint = ${endpoint}`,
    `AllowedIPs = ${allowed.join(', ')}`,
    `PersistentKeepalive = ${EXT_CLIENT_KEEPALIVE_S}`,
    '',
  ];
  return lines.join('\n');
}

function endpointOf(n: NodeRecord): string | null {
  if (n.reflectedEndpoint !== null) return formatEndpoint(n.reflectedEndpoint);
  const local = n.localEndpoints[0];
  return local === undefined ? null : formatEndpoint(local);
}

/** The config as a PNG QR code. */
export async function qrPng(config: string): Promise<Buffer> {
  return QRCode.toBuffer(config, { type: 'png', errorCorrectionLevel: 'M', margin: 2, scale: 6 });
}

/** The config as a QR code drawn with Unicode block characters, for a terminal. */
export async function qrText(config: string): Promise<string> {
  return QRCode.toString(config, { type: 'utf8', errorCorrectionLevel: 'M', margin: 2 });
}
