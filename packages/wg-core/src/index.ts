/** @wiremesh/wg-core: a sans-IO WireGuard engine in pure TypeScript. */
export * from './engine.js';
// The same object as engine.ts's, with its primitives bound at import (no loader needed).
export { nobleCrypto } from './crypto/noble.js';
