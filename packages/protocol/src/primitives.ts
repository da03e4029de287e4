/**
 * Shared value schemas of the wire format: WireGuard keys (base64 of 32 bytes, as wg(8) prints
 * them), names (DNS labels, RFC 1035), IP addresses, CIDR ranges, UDP endpoints.
 */
import { z } from 'zod';
import {
  MAX_DNS_DOMAIN_LENGTH,
  MAX_HOST_PORT_LENGTH,
  MAX_INTERFACE_NAME_LENGTH,
  MAX_NAME_LENGTH,
  MAX_PORT,
  MAX_TEXT_LENGTH,
} from './constants.js';

/** Base64 of exactly 32 bytes: 43 significant characters, the last one with two zero bits, then '='. */
const WG_KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
/** A DNS label in lower case: letters, digits, inner hyphens. */
const NAME_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
/** A DNS domain: one or more lower-case labels joined by dots, no trailing dot. */
const DNS_DOMAIN_RE = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;
/** Longest label of a domain (RFC 1035 §2.3.4). */
const DNS_LABEL_MAX = 63;
/**
 * What interface names are made of. The kernel allows more (anything but '/', ':' and
 * whitespace), but the name reaches iptables arguments and nft scripts, where quotes, semicolons
 * and braces would change their meaning.
 */
const INTERFACE_NAME_RE = /^[A-Za-z0-9_.+-]*$/;
/**
 * Text without control characters (C0 and DEL) or bidirectional controls (Unicode TR 9: ALM,
 * LRM, RLM, the embeddings, overrides and isolates): PostgreSQL refuses NUL in text, line breaks
 * or escape sequences would rewrite log lines and the admin's terminal, and bidi controls make
 * the UI and the CLI show text in another order than it is (a version reading as another).
 */
const PRINTABLE_RE = /^[^\u0000-\u001f\u007f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]*$/;
const PRINTABLE_MESSAGE = 'must not contain control characters (C0, DEL or bidirectional)';
/** `host:port` with a DNS name or IPv4 address, or `[IPv6]:port`: one line, nothing else. */
const HOST_PORT_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/** A WireGuard public key as wg(8) prints it (base64, 44 characters). */
export const WgKey = z.string().regex(WG_KEY_RE, 'must be a base64 WireGuard key (44 characters)');
/** A name usable as a DNS label: 1-63 of a-z, 0-9 and inner '-'. */
export const Name = z
  .string()
  .min(1)
  .max(MAX_NAME_LENGTH)
  .regex(NAME_RE, 'must be lower-case letters, digits and inner hyphens (a DNS label)');
/**
 * A network's DNS domain (`demo`, `corp.internal`): lower-case labels of at most 63 characters
 * joined by dots, at most MAX_DNS_DOMAIN_LENGTH in all.
 */
export const DnsDomain = z
  .string()
  .min(1)
  .max(MAX_DNS_DOMAIN_LENGTH)
  .regex(
    DNS_DOMAIN_RE,
    'must be DNS labels (lower-case letters, digits, inner hyphens) joined by dots, e.g. demo or corp.internal',
  )
  .refine(
    (s) => s.split('.').every((l) => l.length <= DNS_LABEL_MAX),
    'each label of the domain must be at most 63 characters',
  );
/** Free text of bounded length (OS name, agent version). */
export const Text = z.string().max(MAX_TEXT_LENGTH).regex(PRINTABLE_RE, PRINTABLE_MESSAGE);
/** A network interface name of the host (`eth0`), or '' for none. */
export const InterfaceName = z
  .string()
  .max(MAX_INTERFACE_NAME_LENGTH)
  .regex(INTERFACE_NAME_RE, 'must be an interface name: at most 15 of letters, digits, . _ + -');
/** An opaque identifier issued by the coordinator. */
export const Id = z.string().min(1).max(MAX_TEXT_LENGTH).regex(PRINTABLE_RE, PRINTABLE_MESSAGE);
/**
 * A `host:port` that clients dial (a wg-quick `Endpoint`): a DNS name or IPv4 address, or a
 * bracketed IPv6 address, and a port 1-65535.
 */
export const HostPort = z
  .string()
  .max(MAX_HOST_PORT_LENGTH)
  .regex(HOST_PORT_RE, 'must be host:port or [ipv6]:port')
  .refine((s) => {
    const port = Number(HOST_PORT_RE.exec(s)?.[1]);
    return port >= 1 && port <= MAX_PORT;
  }, 'the port must be 1-65535');
/** A UDP/TCP port, 1-65535. */
export const Port = z.int().min(1).max(MAX_PORT);
/** An IPv4 address in dotted-quad form. */
export const Ipv4 = z.ipv4();
/** An IPv6 address in RFC 5952 or any valid textual form. */
export const Ipv6 = z.ipv6();
/** An IPv4 or IPv6 address. */
export const IpAddress = z.union([Ipv4, Ipv6]);
/** An IPv4 CIDR range such as 10.8.0.0/16. */
export const Ipv4Cidr = z.cidrv4();
/** An IPv6 CIDR range such as fd00:8::/64. */
export const Ipv6Cidr = z.cidrv6();
/** An IPv4 or IPv6 CIDR range. */
export const Cidr = z.union([Ipv4Cidr, Ipv6Cidr]);
/** A UDP endpoint: an address and a port (format with `formatEndpoint`). */
export const Endpoint = z.object({ ip: IpAddress, port: Port });
/** Unix time in milliseconds. */
export const UnixMs = z.int().min(0);

/** A WireGuard public key (base64). */
export type WgKey = z.infer<typeof WgKey>;
/** A DNS-label name. */
export type Name = z.infer<typeof Name>;
/** A UDP endpoint. */
export type Endpoint = z.infer<typeof Endpoint>;

/**
 * Formats an endpoint the way wg(8) and wg-quick write it: `1.2.3.4:51820` or `[fd00::1]:51820`.
 * Takes a valid Endpoint; returns a new string.
 */
export function formatEndpoint(e: Endpoint): string {
  return e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`;
}

/**
 * Parses `ip:port` or `[ipv6]:port` into an Endpoint. Returns null (never throws) when the text is
 * not a literal address with a valid port; host names are not accepted.
 */
export function parseEndpoint(text: string): Endpoint | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) return null;
  const parsed = Endpoint.safeParse({ ip: m[1], port: Number(m[2]) });
  return parsed.success ? parsed.data : null;
}
