/**
 * @wiremesh/wg-core/engine: everything @wiremesh/wg-core exports, with `nobleCrypto` loading its
 * @noble primitives on first use (through native.ts's loader under Node) rather than at import.
 */
export * from './constants.js';
export * from './types.js';
export type { CryptoProvider, RandomSource } from './crypto/provider.js';
export { nobleCrypto } from './crypto/noble-lazy.js';
export {
  clampPrivateKey,
  equalBytes,
  generatePrivateKey,
  isZeroKey,
  keyFromBase64,
  keyFromHex,
  keyToBase64,
  keyToHex,
  publicKeyOf,
  wipe,
} from './keys.js';
export * from './kdf.js';
export * from './tai64n.js';
export * from './messages.js';
export * from './handshake.js';
export * from './cookie.js';
export * from './ip.js';
export * from './replay.js';
export * from './allowed-ips.js';
export * from './index-table.js';
export { RandomPool } from './random-pool.js';
export * from './uapi.js';
export { Device, paddedLength, type DeviceOptions, type PeerOptions } from './device.js';
export { Peer } from './peer.js';
export { Keypair, Keypairs } from './keypair.js';
export type { TimerName } from './timers.js';
export { ipPacketLength, ipVersion } from './ip-packet.js';
