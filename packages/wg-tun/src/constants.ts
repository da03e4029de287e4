/**
 * Limits and defaults of the userspace device, its UAPI socket and the `wgts` daemon, after
 * wireguard-go's device/constants.go, ipc/uapi_linux.go and main.go.
 */

// ---- As wireguard-go (the conventions wg(8) and wg-quick(8) rely on) ----
/** Where wg(8) looks for userspace interfaces' sockets (wireguard-go ipc.socketDirectory). */
export const UAPI_SOCKET_DIR = '/var/run/wireguard';
/** The socket directory's mode when created (wireguard-go: os.MkdirAll(dir, 0755)). */
export const UAPI_SOCKET_DIR_MODE = 0o755;
/** umask while binding the socket: only its owner (root) may connect (wireguard-go: Umask(0077)). */
export const UAPI_SOCKET_UMASK = 0o077;
/** The socket file's mode after binding, set again explicitly in case the umask was ignored. */
export const UAPI_SOCKET_MODE = 0o600;
/** The socket's file name suffix: IFACE.sock. */
export const UAPI_SOCKET_SUFFIX = '.sock';
/** Tunnel MTU wireguard-go gives a new interface (device.DefaultMTU). */
export const DEFAULT_TUN_MTU = 1420;
/** wireguard-go's exit codes: setup succeeded / failed. */
export const EXIT_SETUP_SUCCESS = 0;
export const EXIT_SETUP_FAILED = 1;

// ---- Implementation limits ----
/**
 * Bytes of reused memory for the engine's output of one batch (transport messages out, decrypted
 * packets in): a full 128-packet batch of 1500-byte packets fits; a GRO-coalesced batch that does
 * not spills into ordinary allocations.
 */
export const OUTPUT_SLAB_BYTES = 4 * 1024 * 1024;
/** Concurrent UAPI connections; more are refused at once (wg(8) opens one per command). */
export const MAX_UAPI_CONNECTIONS = 64;
/** Bytes of unsent replies on one UAPI connection before the server stops reading from it. */
export const MAX_UAPI_PENDING_REPLY_BYTES = 1024 * 1024;
/** How long the probe of an existing socket file waits for an answer before calling it stale. */
export const UAPI_PROBE_TIMEOUT_MS = 1_000;
/** How long a daemonizing `wgts` waits for its child to report ready or failed. */
export const DAEMON_READY_TIMEOUT_MS = 30_000;
/** setTimeout's largest delay (a signed 32-bit ms count); later deadlines are re-armed on firing. */
export const MAX_TIMER_DELAY_MS = 0x7fff_ffff;
/**
 * How often the device reads its interface's MTU to follow `ip link set dev IFACE mtu N`: the engine
 * pads to it. wireguard-go reacts to netlink MTU events; one ioctl a second stands in for them.
 */
export const MTU_CHECK_INTERVAL_MS = 1_000;
/**
 * Slack added to the engine timer: Node fires timers on its loop clock, which may run up to a
 * millisecond behind performance.now(), so a timer armed for exactly the deadline may fire just early.
 */
export const TIMER_SLACK_MS = 1;
