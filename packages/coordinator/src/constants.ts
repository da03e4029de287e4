/**
 * Coordinator constants: defaults of `serve`, limits it enforces, and timings of its background
 * work. Protocol-wide values (ports, keepalive, stream timings) live in @wiremesh/protocol.
 */

// --- Defaults of `serve` ---

/** Default HTTP listen address: loopback only, so nothing is exposed by accident. */
export const DEFAULT_LISTEN = '127.0.0.1:8080';
/** Default data directory (SQLite database) relative to the working directory. */
export const DEFAULT_DATA_DIR = './wiremesh-data';
/** File name of the SQLite database inside the data directory. */
export const SQLITE_FILE_NAME = 'coordinator.db';
/** File name of the seal key (key-seal.ts) inside the data directory. */
export const SEAL_KEY_FILE_NAME = 'seal.key';
/** Port of the HTTP listen address when only a host is given. */
export const DEFAULT_HTTP_PORT = 8080;

// --- Limits ---

/** Largest request body in bytes (the biggest is a check-in with MAX_PEER_STATUS rows). */
export const BODY_LIMIT_BYTES = 1024 * 1024;
/** Longest path parameter the router matches (ids and names are far shorter). */
export const MAX_PATH_PARAM_LENGTH = 100;
/** Registrations a single client address may burst before the rate limit applies. */
export const REGISTER_BURST = 30;
/** Registrations per second a client address regains after its burst. */
export const REGISTER_REFILL_PER_S = 1;
/** Most client addresses the rate limiter remembers (oldest forgotten first). */
export const RATE_LIMITER_MAX_CLIENTS = 10_000;
/** Bytes of randomness in admin tokens, node secrets and enrollment keys. */
export const SECRET_BYTES = 32;
/** Longest IPv4 prefix a network may use (a /30 leaves two host addresses). */
export const MAX_IPV4_PREFIX = 30;
/** Shortest IPv6 prefix a network may use (host indexes are shared with IPv4 and fit in 64 bits). */
export const MIN_IPV6_PREFIX = 64;
/** Longest IPv6 prefix a network may use. */
export const MAX_IPV6_PREFIX = 120;

// --- Timings ---

/**
 * Longest time a request may take to arrive, headers and body (a body that trickles is cut off
 * with 408, as slow headers are by Node's headersTimeout). The push stream's response is not bound.
 */
export const REQUEST_TIMEOUT_MS = 30_000;
/**
 * A connection with no I/O for this long is closed: four push-stream keepalives
 * (STREAM_KEEPALIVE_MS), so a live stream never is, while a client that stopped reading is.
 */
export const CONNECTION_IDLE_TIMEOUT_MS = 60_000;
/** How often Node checks connections against REQUEST_TIMEOUT_MS (its default is 30 s). */
export const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

/** How long the hub waits to coalesce a burst of changes into one map push. */
export const PUSH_COALESCE_MS = 5;
/** Busy timeout of SQLite when another connection holds the write lock. */
export const SQLITE_BUSY_TIMEOUT_MS = 5_000;
/** Delay before a replica reconnects its PostgreSQL LISTEN connection after losing it. */
export const PG_LISTEN_RETRY_MS = 1_000;
/** Persistent keepalive written into external clients' wg-quick configs, in seconds. */
export const EXT_CLIENT_KEEPALIVE_S = 25;
/** How long after its last check-in a node counts as online, for metrics and the UI. */
export const ONLINE_WINDOW_MS = 3 * 60_000;
/** A stream whose unsent bytes exceed this is closed; its agent reconnects and gets a full map. */
export const STREAM_MAX_BUFFER_BYTES = 32 * 1024 * 1024;

// --- Relay fallback (relay-fallback.ts, path-monitor.ts) ---

/**
 * How long a pair of nodes that both configured each other may show no direct handshake before it
 * is routed through a relay: three WireGuard handshake attempts (REKEY_TIMEOUT 5 s) after the
 * push that started hole punching.
 */
export const RELAY_AFTER_MS = 15_000;
/**
 * A reported handshake younger than this is a working direct path: WireGuard's REJECT_AFTER_TIME
 * (180 s; a path with persistent keepalive re-handshakes within it) plus 15 s for report delay.
 */
export const DIRECT_HANDSHAKE_FRESH_MS = 195_000;
/** How soon to look again at a pair that needs a relay while no relay reaches both nodes. */
export const RELAY_RETRY_MS = 5_000;
/** A burst of check-ins is looked at once, this long after the first. */
export const PATH_EVAL_DELAY_MS = 200;
