/**
 * @wiremesh/coordinator: the `wiremesh-coordinator` server (DESIGN.md "coordinator"): storage,
 * REST API, push streams, endpoint reflection, metrics. Import it to embed a coordinator.
 */
export { startCoordinator, parseListen, openDatabase, COORDINATOR_VERSION } from './coordinator.js';
export type { Coordinator, CoordinatorOptions } from './coordinator.js';
export { Store } from './store/index.js';
export type {
  ExtClientRecord,
  NetworkRecord,
  NetworkState,
  NodeRecord,
  PairRelayRecord,
  PairWaitRecord,
  RelayState,
} from './store/index.js';
export { Hub } from './hub.js';
export type { Db, Queryable } from './db.js';
export { openSqlite } from './sqlite.js';
export { openPostgres } from './postgres.js';
export { migrate } from './migrations.js';
export { renderWgQuick } from './ext-config.js';
export { RelayFallback, pathNodes, type RelayFallbackOptions } from './relay-fallback.js';
export {
  PathMonitor,
  pairKey,
  type PairRelay,
  type PairWait,
  type PathDecision,
  type PathMonitorOptions,
  type PathNode,
} from './path-monitor.js';
