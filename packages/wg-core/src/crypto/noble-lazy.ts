/**
 * `nobleCrypto`, the pure-TypeScript provider, as a stable object whose primitives (noble-impl.ts
 * on @noble/*, about 8 MiB resident in Node once loaded) are bound on first use: a process that
 * runs the native provider never loads them.
 */
import type { CryptoProvider } from './provider.js';

const NAME = 'noble (pure TypeScript)';

let impl: CryptoProvider | undefined;
let loader: (() => CryptoProvider) | undefined;

/** Binds the primitives now (the eager entry points, crypto/noble.ts). */
export function provideNoble(primitives: CryptoProvider): void {
  impl = primitives;
}

/**
 * Sets how to load the primitives synchronously on first use, for an entry point that does not
 * import them (native.ts under Node). Ignored once they are bound.
 */
export function provideNobleLoader(load: () => CryptoProvider): void {
  loader = load;
}

/** True once the noble primitives have been bound (loaded or provided). */
export function nobleLoaded(): boolean {
  return impl !== undefined;
}

function primitives(): CryptoProvider {
  if (impl !== undefined) return impl;
  if (loader === undefined) {
    throw new Error(
      'the noble provider is not loaded: import @wiremesh/wg-core (or @wiremesh/wg-core/native) first',
    );
  }
  impl = loader();
  return impl;
}

/** The pure-TypeScript provider: portable, the reference every other provider is tested against. */
export const nobleCrypto: CryptoProvider = {
  name: NAME,
  x25519: (privateKey, publicKey) => primitives().x25519(privateKey, publicKey),
  x25519Public: (privateKey) => primitives().x25519Public(privateKey),
  seal: (key, nonce, pt, ad, dst) => primitives().seal(key, nonce, pt, ad, dst),
  open: (key, nonce, ct, ad, dst) => primitives().open(key, nonce, ct, ad, dst),
  xseal: (key, nonce, pt, ad, dst) => primitives().xseal(key, nonce, pt, ad, dst),
  xopen: (key, nonce, ct, ad, dst) => primitives().xopen(key, nonce, ct, ad, dst),
  hash: (...parts) => primitives().hash(...parts),
  mac: (key, data) => primitives().mac(key, data),
  hmac: (key, data) => primitives().hmac(key, data),
};
