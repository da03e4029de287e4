/** @wiremesh/wg-core: a sans-IO WireGuard engine in pure TypeScript. */
export * from './constants.js';
export * from './types.js';
export type { CryptoProvider, RandomSource } from './crypto/provider.js';
export { nobleCrypto } from './crypto/noble.js';
