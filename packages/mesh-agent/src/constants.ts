/**
 * Constants of the mesh agent: where state lives, how the interface is named, how hard to retry a
 * coordinator that went away, and the exit codes each failure ends with.
 */

// --- Files and names ---

/** Default state directory: one `<network>.json`, one `<network>.key` (0600) per joined network. */
export const DEFAULT_STATE_DIR = '/var/lib/wiremesh';
/** Mode of files holding secrets (node secret, private key): owner read/write only. */
export const SECRET_FILE_MODE = 0o600;
/** Mode of the state directory. */
export const STATE_DIR_MODE = 0o700;
/** Prefix of the interfaces the agent creates: `wm-<network>`. */
export const INTERFACE_PREFIX = 'wm-';
/** Longest Linux interface name (IFNAMSIZ 16 minus the terminating NUL). */
export const MAX_INTERFACE_NAME_LENGTH = 15;
/** Hex digits of the name hash that keeps truncated interface names of long networks distinct. */
export const INTERFACE_HASH_HEX_DIGITS = 4;
/** Where wg(8) finds userspace implementations' UAPI sockets (wireguard-go, wgts). */
export const WG_SOCKET_DIR = '/var/run/wireguard';
/** The TUN clone device the userspace backend needs. */
export const TUN_DEVICE_PATH = '/dev/net/tun';
/** systemd is PID 1 when this directory exists (sd_booted(3)). */
export const SYSTEMD_RUN_DIR = '/run/systemd/system';
/** Where the systemd unit is installed. */
export const SYSTEMD_UNIT_PATH = '/etc/systemd/system/wiremesh.service';
/** The systemd unit's name. */
export const SYSTEMD_UNIT_NAME = 'wiremesh.service';
/** Environment variable naming the userspace implementation to spawn (like wg-quick's). */
export const USERSPACE_IMPLEMENTATION_ENV = 'WIREMESH_USERSPACE_IMPLEMENTATION';
/** Default userspace implementation: our drop-in for wireguard-go. */
export const DEFAULT_USERSPACE_IMPLEMENTATION = 'wgts';

// --- Routes and firewall ---

/**
 * Routing protocol number the agent stamps on its routes (`ip route ... proto 87`, rtnetlink's
 * rtm_protocol): the agent finds exactly its own routes and never touches anyone else's.
 */
export const ROUTE_PROTOCOL = 87;
/** Every firewall rule the agent adds carries a comment starting with this, then `<iface>:<hash>`. */
export const RULE_TAG_PREFIX = 'wiremesh';
/** Hex digits of the per-rule hash inside the comment tag. */
export const RULE_HASH_HEX_DIGITS = 8;

// --- Timing ---

/** First retry delay after the coordinator fails. */
export const BACKOFF_MIN_MS = 500;
/** Retry delay cap: the agent keeps trying at least this often however long the outage. */
export const BACKOFF_MAX_MS = 30_000;
/** Each failure multiplies the delay by this. */
export const BACKOFF_FACTOR = 2;
/** Delays are spread by up to this fraction either way so agents do not retry in lockstep. */
export const BACKOFF_JITTER = 0.2;
/** How often the daemon reports status (and checks in, the fallback when the stream is down). */
export const REPORT_INTERVAL_MS = 10_000;
/** Timeout of one HTTP request to the coordinator (the stream has its own silence bound). */
export const HTTP_TIMEOUT_MS = 10_000;
/**
 * Largest coordinator answer (bytes) or push event (characters) the agent takes: a full map of
 * about 50,000 peers fits, and a broken or hostile coordinator cannot exhaust a small router's
 * memory with an endless one.
 */
export const MAX_MESSAGE_BYTES = 32 * 1024 * 1024;
/** How long to wait for a userspace implementation's UAPI socket to appear. */
export const SOCKET_WAIT_MS = 10_000;
/** Poll step while waiting for the UAPI socket. */
export const SOCKET_POLL_MS = 50;
/** How long `join` waits for a running daemon to bring a newly joined network's interface up. */
export const HANDOVER_WAIT_MS = 15_000;
/** How long to wait for a stopped userspace process to exit before SIGKILL. */
export const PROCESS_EXIT_WAIT_MS = 3_000;
/** Timeout of one external command (ip, wg, iptables, nft). */
export const COMMAND_TIMEOUT_MS = 15_000;
/** How often `join` in the foreground reprints that it still waits for approval. */
export const APPROVAL_REMINDER_MS = 60_000;

/**
 * Apply results an agent keeps (newest last) for status and tests: enough to see the last changes,
 * bounded so a daemon that runs for months does not grow with every map.
 */
export const APPLY_HISTORY_LIMIT = 64;

// --- NAT traversal (reflect-client.ts, network-agent.ts) ---

/** How long one reflection probe waits for its reply. */
export const REFLECT_TIMEOUT_MS = 1_000;
/** Probes per discovery round before the agent gives up until the next round. */
export const REFLECT_ATTEMPTS = 3;
/**
 * The one quick probe right after the first apply waits this long: enough for a reflector on
 * the other side of the world, short enough not to hold up a mesh restored while the
 * coordinator is down.
 */
export const EARLY_PROBE_TIMEOUT_MS = 300;
/** How often the agent probes its public endpoint again (NAT mappings and addresses change). */
export const REFLECT_INTERVAL_MS = 30_000;
/** How soon the agent probes again while it has never had a reply. */
export const REFLECT_RETRY_MS = 5_000;
/**
 * How long the side of a pair with the greater public key holds its first packet to a new
 * endpoint: more than the spread of the push reaching both sides, so the other side's packet has
 * opened its own NAT before ours arrives there, and ours is answered instead of crossing.
 */
export const PUNCH_STAGGER_MS = 1_000;
/** How often the agent looks at handshakes while a peer's direct path is being established. */
export const PATH_CHECK_MS = 1_000;
/**
 * A peer whose endpoint was set this long ago and has had no handshake since counts as a failed
 * direct attempt: the agent probes its own endpoint again (the NAT may have remapped it) and reports.
 * Two WireGuard handshake attempts (REKEY_TIMEOUT 5 s).
 */
export const DIRECT_WAIT_MS = 10_000;
/** After this long without a handshake the agent stops watching a peer (the relay fallback takes it). */
export const PATH_WATCH_MAX_MS = 60_000;
/**
 * A handshake younger than this is a working session (WireGuard's REJECT_AFTER_TIME, 180 s: with
 * persistent keepalive a working path re-handshakes before it).
 */
export const SESSION_FRESH_MS = 180_000;

// --- Exit codes (distinct so scripts can tell failures apart) ---

/** Exit codes of the `wiremesh` command. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  enrollment: 3,
  unreachable: 4,
  rejected: 5,
  notRoot: 6,
  noTun: 7,
  notJoined: 8,
} as const;
/** One of the exit codes. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
