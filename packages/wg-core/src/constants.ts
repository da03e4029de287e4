/**
 * WireGuard constants. First the specification's (whitepaper §5.4 and §6, wireguard-go
 * device/constants.go), with units in their names; then this implementation's limits.
 */

// ---- Specification: protocol strings (whitepaper §5.4) ----
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

// ---- Specification: message types and sizes (whitepaper §5.4.2-§5.4.7) ----
export const MESSAGE_INITIATION_TYPE = 1;
export const MESSAGE_RESPONSE_TYPE = 2;
export const MESSAGE_COOKIE_REPLY_TYPE = 3;
export const MESSAGE_TRANSPORT_TYPE = 4;

export const KEY_LEN = 32;
export const HASH_LEN = 32;
export const MAC_LEN = 16;
export const COOKIE_LEN = 16;
export const AEAD_TAG_LEN = 16;
export const AEAD_NONCE_LEN = 12;
export const XAEAD_NONCE_LEN = 24;
export const TAI64N_LEN = 12;

export const MESSAGE_INITIATION_SIZE =
  4 + 4 + KEY_LEN + (KEY_LEN + AEAD_TAG_LEN) + (TAI64N_LEN + AEAD_TAG_LEN) + 2 * MAC_LEN; // 148
export const MESSAGE_RESPONSE_SIZE = 4 + 4 + 4 + KEY_LEN + AEAD_TAG_LEN + 2 * MAC_LEN; // 92
export const MESSAGE_COOKIE_REPLY_SIZE = 4 + 4 + XAEAD_NONCE_LEN + COOKIE_LEN + AEAD_TAG_LEN; // 64
export const MESSAGE_TRANSPORT_HEADER_SIZE = 4 + 4 + 8; // 16
export const MESSAGE_TRANSPORT_MIN_SIZE = MESSAGE_TRANSPORT_HEADER_SIZE + AEAD_TAG_LEN; // 32, a keepalive
export const PADDING_MULTIPLE = 16;

// ---- Specification: timers and limits (whitepaper §6.1, wireguard-go constants.go) ----
export const REKEY_AFTER_MESSAGES = 2n ** 60n;
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;
export const REKEY_AFTER_TIME_MS = 120_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME_MS / REKEY_TIMEOUT_MS; // 18
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
export const REJECT_AFTER_TIME_MS = 180_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
export const COOKIE_REFRESH_TIME_MS = 120_000;
export const HANDSHAKE_INITIATION_RATE_MS = 1_000 / 50; // one accepted initiation per peer per 20 ms
/** A keypair whose age passes this, with the initiator receiving, triggers a rekey (whitepaper §6.2). */
export const REKEY_ON_RECEIVE_AFTER_MS =
  REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS;
/** Session keys and the ephemeral are zeroed after this much silence (whitepaper §6.3). */
export const ZERO_KEYS_AFTER_MS = REJECT_AFTER_TIME_MS * 3;

// ---- Specification: replay window (RFC 6479 as the kernel and wireguard-go size it) ----
export const REPLAY_WINDOW_WORD_BITS = 64;
export const REPLAY_WINDOW_BLOCKS = 128;
export const REPLAY_WINDOW_SIZE = (REPLAY_WINDOW_BLOCKS - 1) * REPLAY_WINDOW_WORD_BITS; // 8128

// ---- Implementation limits ----
/** Handshake messages queued per peer waiting for a session (wireguard-go QueueStagedSize). */
export const MAX_STAGED_PACKETS = 128;
/**
 * Handshake messages with a valid mac1 per second, across all peers, above which MAC2 (a cookie)
 * is demanded. wireguard-go is under load once its handshake queue is 1/8 full; lacking a queue we
 * take 1/8 of what the slowest provider can consume: pure-TS X25519 costs about 1 ms, so about
 * 1,000 initiations/s fill a core. (At 1,000/s, a flood just below it kept a pure-TS device's core
 * busy on X25519 without ever drawing a cookie reply.) Legitimate traffic stays far below: a peer
 * handshakes about once per REKEY_AFTER_TIME_MS, so 125/s is thousands of peers.
 */
export const UNDER_LOAD_HANDSHAKES_PER_SECOND = 1_000 / 8;
/** How long the device stays "under load" after the rate fell back (wireguard-go UnderLoadAfterTime). */
export const UNDER_LOAD_AFTER_TIME_MS = 1_000;
/** Per-source-address initiation rate when under load (wireguard-go ratelimiter). */
export const RATELIMIT_PACKETS_PER_SECOND = 20;
export const RATELIMIT_BURST = 5;
export const DEFAULT_MTU = 1420;
/** Bytes the engine's random pool draws from its source at once (random-pool.ts): 64 jitters. */
export const RANDOM_POOL_BYTES = 256;
export const MAX_PEERS = 1 << 16;
/**
 * Longest UAPI line, without its '\n': wireguard-go reads lines with bufio.Scanner, whose 64 KiB
 * buffer must hold the line and its newline.
 */
export const MAX_UAPI_LINE_BYTES = 64 * 1024 - 1;
/**
 * Largest UAPI request held in memory. wireguard-go streams a set=1 line by line with no total
 * limit; we apply a request whole or not at all, so we buffer it: room for MAX_PEERS peers of
 * about 500 bytes each (key, PSK, endpoint, keepalive and a few allowed IPs).
 */
export const MAX_UAPI_REQUEST_BYTES = 32 * 1024 * 1024;
