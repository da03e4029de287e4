/**
 * Private keys at rest: the keys the coordinator generates for external clients are stored sealed
 * with AES-256-GCM under a key kept outside the database (a 0600 file beside it), bound to the
 * client's id, so a copy of the database alone (a backup, a dump) does not yield them.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { ApiError } from './api-error.js';

/** Prefix of a sealed value; a stored value without it is a key written before sealing existed. */
export const SEALED_PREFIX = 'wmseal1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FILE_MODE = 0o600;

/** Seals and opens stored private keys with one 256-bit key. */
export class KeySeal {
  private readonly key: Buffer;

  /** Takes a 32-byte key (copied). Throws RangeError for another length. */
  constructor(key: Uint8Array) {
    if (key.length !== KEY_BYTES) throw new RangeError(`a seal key has ${KEY_BYTES} bytes`);
    this.key = Buffer.from(key);
  }

  /** Seals `plain` for the row `id`; returns the text to store. */
  seal(plain: string, id: string): string {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(id, 'utf8'));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return SEALED_PREFIX + Buffer.concat([iv, c.getAuthTag(), body]).toString('base64url');
  }

  /**
   * Opens a stored value of row `id` (an unsealed one is returned as it is). Throws
   * ApiError('internal') naming the key file when the value was sealed under another key.
   */
  open(stored: string, id: string): string {
    if (!isSealed(stored)) return stored;
    const raw = Buffer.from(stored.slice(SEALED_PREFIX.length), 'base64url');
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
      d.setAAD(Buffer.from(id, 'utf8'));
      d.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([d.update(raw.subarray(IV_BYTES + TAG_BYTES)), d.final()]).toString(
        'utf8',
      );
    } catch {
      throw new ApiError(
        'internal',
        'a stored private key was sealed with another key file; start the coordinator with the --seal-key-file it was created with (every replica needs the same file)',
      );
    }
  }
}

/**
 * Reads the seal key from `file`, creating it (mode 0600, 32 random bytes as base64) when it does
 * not exist. Throws an Error with a one-line message when the file holds something else.
 */
export function loadSealKey(file: string): KeySeal {
  try {
    const fd = openSync(file, 'wx', FILE_MODE);
    try {
      writeSync(fd, `${randomBytes(KEY_BYTES).toString('base64')}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
  }
  chmodSync(file, FILE_MODE);
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== KEY_BYTES)
    throw new Error(
      `${file} is not a seal key (expected ${KEY_BYTES} bytes as base64); restore the original file`,
    );
  return new KeySeal(key);
}

/** Whether a stored value is sealed (one without the prefix was written before sealing existed). */
export function isSealed(stored: string): boolean {
  return stored.startsWith(SEALED_PREFIX);
}
