/**
 * Constants of the agent's DNS: the wire values it uses (RFC 1035 §4.1.1, RFC 6895 §2.3) and
 * its own limits and timings.
 */

// --- Specification values ---

/** The DNS port (RFC 1035 §4.2). */
export const DNS_PORT = 53;
/** A message's header is 12 bytes (RFC 1035 §4.1.1). */
export const DNS_HEADER_BYTES = 12;
/** Largest UDP answer without EDNS (RFC 1035 §4.2.1); longer ones are truncated (TC). */
export const DNS_UDP_MAX_BYTES = 512;
/** The QR bit of the flags word: set in responses. */
export const FLAG_QR = 0x8000;
/** Opcode field of the flags word (bits 11-14); QUERY is 0. */
export const OPCODE_SHIFT = 11;
export const OPCODE_MASK = 0xf;
export const OPCODE_QUERY = 0;
/** Response codes (RFC 6895 §2.3). */
export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

// --- Implementation choices ---

/** TTL of mesh answers: short, so a rename outlives no cache for long. */
export const MESH_TTL_S = 5;
/** SOA timers of the mesh zone (RFC 1035 §3.3.13); `minimum` is the negative-answer TTL (RFC 2308). */
export const SOA_REFRESH_S = 60;
export const SOA_RETRY_S = 30;
export const SOA_EXPIRE_S = 3600;
export const SOA_MINIMUM_S = MESH_TTL_S;
/** How long a bind of the resolver's address is retried for (the address may just be arriving). */
export const BIND_RETRY_MS = 500;
/** Marks of the block the agent owns in a hosts file. */
export const HOSTS_BEGIN = '# BEGIN wiremesh';
export const HOSTS_END = '# END wiremesh';
