/**
 * Constants of the agent<->coordinator contract: limits both sides enforce, timings of the push
 * stream and polling, and the sizes of the UDP endpoint-reflection messages (reflect.ts).
 */

// --- Names and strings ---

/** Longest node, network, enrollment-key or external-client name (a DNS label, RFC 1035 §2.3.4). */
export const MAX_NAME_LENGTH = 63;
/** Longest DNS name (RFC 1035 §3.1: 255 octets on the wire, 253 as text). */
export const MAX_DNS_NAME_LENGTH = 253;
/** Longest network DNS domain: room is left for one name label and its dot. */
export const MAX_DNS_DOMAIN_LENGTH = MAX_DNS_NAME_LENGTH - MAX_NAME_LENGTH - 1;
/** Most custom and external-client DNS records one network's map may carry. */
export const MAX_DNS_RECORDS = 4096;
/** Longest free-text field (OS, agent version). */
export const MAX_TEXT_LENGTH = 128;
/** Longest network interface name (Linux IFNAMSIZ 16 minus the terminating NUL). */
export const MAX_INTERFACE_NAME_LENGTH = 15;
/** Longest `host:port`: a 253-character DNS name (or a bracketed IPv6 address), ':' and a port. */
export const MAX_HOST_PORT_LENGTH = 261;
/** Most local endpoint candidates a node may report. */
export const MAX_LOCAL_ENDPOINTS = 16;
/** Most CIDR ranges one egress gateway may announce. */
export const MAX_EGRESS_RANGES = 64;
/** Most per-peer status rows in one check-in. */
export const MAX_PEER_STATUS = 4096;
/** Most nodes one relay may serve. */
export const MAX_RELAYED_NODES = 1024;
/** Most registrations one enrollment key may admit: what an SQL INTEGER holds. */
export const MAX_KEY_USES = 2_147_483_647;
/** Longest lifetime of an enrollment key, in seconds (100 years). */
export const MAX_KEY_LIFETIME_S = 100 * 365 * 24 * 60 * 60;
/** Most relayed peers one node's map may list (`self.peerRelays`). */
export const MAX_PEER_RELAYS = 4096;

// --- WireGuard-related ranges ---

/** Highest UDP port number. */
export const MAX_PORT = 65535;
/** Smallest MTU a network may set (IPv6 minimum link MTU, RFC 8200 §5). */
export const MIN_MTU = 1280;
/** Largest MTU a network may set (jumbo frames minus WireGuard overhead). */
export const MAX_MTU = 9000;
/** Default tunnel MTU (wg-quick's default for a 1500-byte path: 1500 - 80). */
export const DEFAULT_MTU = 1420;
/** Default WireGuard listen port of a network's nodes. */
export const DEFAULT_LISTEN_PORT = 51820;
/** Default persistent keepalive in seconds (wg(8) recommends 25 behind NAT). */
export const DEFAULT_PERSISTENT_KEEPALIVE_S = 25;
/** Largest persistent keepalive wg(8) accepts, in seconds. */
export const MAX_PERSISTENT_KEEPALIVE_S = 65535;

// --- Push stream and polling ---

/** The coordinator sends an SSE comment at least this often on an idle stream. */
export const STREAM_KEEPALIVE_MS = 15_000;
/** An agent treats a stream silent for this long as dead and reconnects. */
export const STREAM_DEAD_AFTER_MS = 3 * STREAM_KEEPALIVE_MS;
/** How often a polling agent (no stream) should check in, unless the coordinator says otherwise. */
export const DEFAULT_POLL_INTERVAL_MS = 30_000;

// --- HTTP ---

/** Prefix of every API route. */
export const API_PREFIX = '/api/v1';
/** Content type of the push stream (server-sent events). */
export const STREAM_CONTENT_TYPE = 'text/event-stream';

// --- Secrets (prefixes make a leaked string recognisable and routable to the right check) ---

/** Admin tokens start with this. */
export const ADMIN_TOKEN_PREFIX = 'wma_';
/** Node secrets start with this, followed by `<nodeId>.<random>`. */
export const NODE_SECRET_PREFIX = 'wmn_';
/** Enrollment keys start with this. */
export const ENROLLMENT_KEY_PREFIX = 'wmk_';
