/**
 * Bearer secrets: admin tokens, node secrets and enrollment keys are random strings with a
 * recognisable prefix; the database keeps only their SHA-256 (they have 256 bits of entropy, so
 * a fast hash suffices) and comparisons are constant-time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ADMIN_TOKEN_PREFIX, ENROLLMENT_KEY_PREFIX, NODE_SECRET_PREFIX } from '@wiremesh/protocol';
import { SECRET_BYTES } from './constants.js';

/** SHA-256 of `secret` as hex: the only form a secret is stored in. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Whether `secret` hashes to `storedHash`, in time independent of where they differ. */
export function secretMatches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

function random(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}

/** A new admin token (`wma_...`). */
export function newAdminToken(): string {
  return `${ADMIN_TOKEN_PREFIX}${random()}`;
}

/** A new enrollment key (`wmk_...`). */
export function newEnrollmentKey(): string {
  return `${ENROLLMENT_KEY_PREFIX}${random()}`;
}

/** A new node secret bound to `nodeId` (`wmn_<nodeId>.<random>`), so lookups need no scan. */
export function newNodeSecret(nodeId: string): string {
  return `${NODE_SECRET_PREFIX}${nodeId}.${random()}`;
}

/** The node id inside a node secret, or null when the text is not shaped like one. */
export function nodeIdOfSecret(secret: string): string | null {
  if (!secret.startsWith(NODE_SECRET_PREFIX)) return null;
  const rest = secret.slice(NODE_SECRET_PREFIX.length);
  const dot = rest.indexOf('.');
  return dot > 0 ? rest.slice(0, dot) : null;
}
