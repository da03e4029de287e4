/**
 * Which crypto provider this agent's userspace devices use (wg-core's selectCrypto, as the device
 * in the daemon and a detached wgts choose it), for `wiremesh status`. Kernel devices use the kernel's.
 */
import { nobleCrypto } from '@wiremesh/wg-core';
import { selectCrypto } from '@wiremesh/wg-core/native';

/** The provider a userspace device picks: 'native' (libsodium, OpenSSL) or 'noble' (pure TypeScript). */
export interface CryptoStatus {
  readonly provider: 'native' | 'noble';
  /** Why, as selectCrypto says it (what native has, or why it is unavailable). */
  readonly detail: string;
}

/**
 * The provider chosen under `env` (WGTS_CRYPTO=noble|native pins one, as for wgts). Never throws:
 * a forced native provider that is unavailable is reported as noble with the reason.
 */
export function cryptoStatus(env: NodeJS.ProcessEnv): CryptoStatus {
  const force = env['WGTS_CRYPTO'];
  try {
    const s = selectCrypto(force === 'noble' || force === 'native' ? { force } : {});
    return { provider: s.provider === nobleCrypto ? 'noble' : 'native', detail: s.reason };
  } catch (e) {
    return { provider: 'noble', detail: (e as Error).message };
  }
}

/** What one network's status shows as its crypto: the kernel's, or the userspace provider. */
export function cryptoLabel(backend: string, status: CryptoStatus): string {
  return backend === 'kernel' ? 'kernel' : status.provider;
}
