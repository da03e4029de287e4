/**
 * The admin token: one bearer token for the admin API, stored only as its SHA-256 in `meta`.
 * Created on the first start (printed once), replaced by rotation.
 */
import { hashSecret, newAdminToken, secretMatches } from '../secrets.js';
import type { StoreContext } from './context.js';

const ADMIN_TOKEN_META_KEY = 'admin_token_hash';

/** The admin token's hash and its lifecycle. */
export class AdminToken {
  constructor(private readonly s: StoreContext) {}

  /** Creates the admin token if none exists. Returns the new token (to print once) or null. */
  async ensure(): Promise<string | null> {
    const token = newAdminToken();
    // ON CONFLICT: replicas starting together on one database create exactly one token.
    const created = await this.s.db.run(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING',
      [ADMIN_TOKEN_META_KEY, hashSecret(token)],
    );
    return created === 1 ? token : null;
  }

  /** Replaces the admin token; the old one stops working at once. Returns the new token. */
  async rotate(): Promise<string> {
    const token = newAdminToken();
    await this.s.db.tx(async (q) => {
      const n = await q.run('UPDATE meta SET value = ? WHERE key = ?', [
        hashSecret(token),
        ADMIN_TOKEN_META_KEY,
      ]);
      if (n === 0)
        await q.run('INSERT INTO meta (key, value) VALUES (?, ?)', [
          ADMIN_TOKEN_META_KEY,
          hashSecret(token),
        ]);
    });
    return token;
  }

  /** Whether `token` is the current admin token. */
  async matches(token: string): Promise<boolean> {
    const row = await this.s.db.get<{ value: string }>('SELECT value FROM meta WHERE key = ?', [
      ADMIN_TOKEN_META_KEY,
    ]);
    return row !== undefined && secretMatches(token, row.value);
  }
}
