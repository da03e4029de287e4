/**
 * @wiremesh/protocol: the agent<->coordinator contract (DESIGN.md "protocol"): zod schemas with
 * their inferred types, the error registry, routes, the map patch rule and the reflection format.
 */
export * from './version.js';
export * from './constants.js';
export * from './primitives.js';
export * from './errors.js';
export * from './map.js';
export * from './node-api.js';
export * from './admin-api.js';
export * from './reflect.js';
export * from './routes.js';
export * from './pinning.js';
