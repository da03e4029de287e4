/**
 * @wiremesh/mesh-agent: the `wiremesh` agent (DESIGN.md "mesh-agent"). The data flows one way:
 * control client -> validated network map -> reconciler (netmapToConfig -> diff -> dataplane:
 * wg, ip, firewall), with endpoint discovery a state machine beside it. The pieces are exported
 * for tests and tools; the CLI is `wiremesh` (cli.ts, cli/).
 */
export * from './constants.js';
export { AgentError, errorMessage, type AgentErrorCode } from './errors.js';
export {
  createLogger,
  memoryLogger,
  parseLogLevel,
  silentLogger,
  type LogLevel,
  type Logger,
} from './log.js';
export { canonicalCidr, cidrContains } from './prefix.js';
export {
  chooseEndpoint,
  netmapToConfig,
  type DesiredConfig,
  type DesiredEgress,
  type DesiredForwarding,
  type DesiredPeer,
  type LocalAddress,
  type NetmapContext,
  type PeerPath,
} from './reconcile/netmap.js';
export {
  describeDiff,
  diffConfig,
  isEmptyDiff,
  type ConfigDiff,
  type ObservedInterface,
  type ObservedPeer,
  type PeerUpdate,
  type PunchOptions,
} from './reconcile/diff.js';
export {
  parseIpAddr,
  parseIpRoutes,
  parseWgDump,
  type DumpInterface,
  type LinkInfo,
  type WgDump,
} from './dataplane/wg-dump.js';
export {
  commandError,
  findExecutable,
  systemRunner,
  type CommandResult,
  type Runner,
} from './runner.js';
export {
  createFirewall,
  forwardingRules,
  parseTaggedRules,
  ruleTag,
  systemProcSys,
  type Firewall,
  type FirewallOptions,
  type FirewallRule,
  type ProcSys,
  type TaggedRule,
} from './dataplane/firewall.js';
export {
  inProcessBackend,
  kernelBackend,
  linkKind,
  selectBackend,
  socketPath,
  userspaceBackend,
  userspaceCommand,
  type Backend,
  type BackendChoice,
  type BackendOptions,
  type ProbeOptions,
} from './dataplane/backend.js';
export {
  ipCommands,
  systemDataplane,
  wgSetArgs,
  type ApplyResult,
  type Dataplane,
  type DeviceIdentity,
  type Observed,
} from './dataplane/dataplane.js';
export { NetworkState, StateStore, writeFileAtomic } from './state-store.js';
export { Backoff, type BackoffOptions } from './control/backoff.js';
export { SseParser, type SseEvent } from './control/sse.js';
export {
  CoordinatorError,
  HttpCoordinator,
  parseStreamEvent,
  validateMap,
  type CheckinResult,
  type CoordinatorApi,
  type HttpCoordinatorOptions,
  type MapResult,
  type StreamEvent,
} from './control/coordinator-client.js';
export { localAddresses, localEndpoints } from './discovery/local-addresses.js';
export {
  ReflectionMatcher,
  Reflector,
  resolveHost,
  type RawSocket,
} from './discovery/reflect-client.js';
export {
  ControlClient,
  goneReason,
  realSleep,
  type ControlClientOptions,
  type ControlHandler,
  type GoneReason,
  type Sleep,
} from './control/control-client.js';
export {
  Discovery,
  type DiscoveryAction,
  type DiscoveryInput,
  type DiscoveryOptions,
  type ProbeKind,
  type ReportReason,
} from './discovery/discovery.js';
export { Reconciler, type ReconcilerOptions } from './reconcile/reconciler.js';
export { NetworkAgent, type NetworkAgentDeps } from './network-agent.js';
export { AGENT_SEMVER, AGENT_VERSION } from './version.js';
