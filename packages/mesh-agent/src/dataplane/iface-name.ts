/**
 * Interface names of joined networks: `wm-<network>`, within Linux's 15-character limit (IFNAMSIZ).
 * A name that does not fit is cut and given a short hash of the full network name, so two long
 * networks with the same prefix still get distinct interfaces.
 */
import { createHash } from 'node:crypto';
import {
  INTERFACE_HASH_HEX_DIGITS,
  INTERFACE_PREFIX,
  MAX_INTERFACE_NAME_LENGTH,
} from '../constants.js';

/** The interface of `network`: `wm-demo`, or `wm-averylo-1a2b` for long names. Pure. */
export function interfaceName(network: string): string {
  const full = `${INTERFACE_PREFIX}${network}`;
  if (full.length <= MAX_INTERFACE_NAME_LENGTH) return full;
  const hash = createHash('sha256')
    .update(network)
    .digest('hex')
    .slice(0, INTERFACE_HASH_HEX_DIGITS);
  const keep = MAX_INTERFACE_NAME_LENGTH - INTERFACE_PREFIX.length - 1 - INTERFACE_HASH_HEX_DIGITS;
  return `${INTERFACE_PREFIX}${network.slice(0, keep).replace(/-+$/, '')}-${hash}`;
}

/** Whether `name` is usable as a Linux interface name (1-15 characters, no '/', ':' or space). */
export function isInterfaceName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= MAX_INTERFACE_NAME_LENGTH &&
    /^[A-Za-z0-9_.-]+$/.test(name) &&
    name !== '.' &&
    name !== '..'
  );
}
