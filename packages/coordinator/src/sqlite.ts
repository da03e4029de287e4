/**
 * Embedded SQLite storage (better-sqlite3): WAL journal, synchronous=FULL so a committed write
 * survives a crash of the process or the machine, foreign keys on. better-sqlite3 is synchronous,
 * so one async mutex keeps a transaction's statements from interleaving with other requests.
 */
import Database from 'better-sqlite3';
import { SQLITE_BUSY_TIMEOUT_MS } from './constants.js';
import { UniqueViolation, type Db, type Queryable, type SqlValue } from './db.js';

type Statement = Database.Statement<unknown[], unknown>;

function wrap(e: unknown): unknown {
  if (e instanceof Error && (e as { code?: string }).code?.startsWith('SQLITE_CONSTRAINT_UNIQUE')) {
    return new UniqueViolation(e.message);
  }
  if (e instanceof Error && (e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new UniqueViolation(e.message);
  }
  return e;
}

/** Opens (creating if needed) the SQLite database at `file`; ':memory:' for tests. */
export function openSqlite(file: string): Db {
  const sqlite = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  const cache = new Map<string, Statement>();
  const prepare = (sql: string): Statement => {
    let s = cache.get(sql);
    if (s === undefined) {
      s = sqlite.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  const direct: Queryable = {
    async all<T>(sql: string, params: readonly SqlValue[] = []) {
      return prepare(sql).all(...params) as T[];
    },
    async get<T>(sql: string, params: readonly SqlValue[] = []) {
      return prepare(sql).get(...params) as T | undefined;
    },
    async run(sql: string, params: readonly SqlValue[] = []) {
      try {
        return prepare(sql).run(...params).changes;
      } catch (e) {
        throw wrap(e);
      }
    },
    async exec(sql: string) {
      sqlite.exec(sql);
    },
  };
  // The mutex: a chain of promises; each holder runs alone on the connection.
  let tail: Promise<unknown> = Promise.resolve();
  const locked = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
  const listeners: ((networkId: string) => void)[] = [];
  return {
    dialect: 'sqlite',
    forUpdate: '',
    all: (sql, params) => locked(() => direct.all(sql, params)),
    get: (sql, params) => locked(() => direct.get(sql, params)),
    run: (sql, params) => locked(() => direct.run(sql, params)),
    exec: (sql) => locked(() => direct.exec(sql)),
    tx: (fn) =>
      locked(async () => {
        sqlite.exec('BEGIN IMMEDIATE');
        try {
          const out = await fn(direct);
          sqlite.exec('COMMIT');
          return out;
        } catch (e) {
          if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
          throw e;
        }
      }),
    async publish(networkId) {
      for (const l of listeners) l(networkId);
    },
    subscribe(listener) {
      listeners.push(listener);
    },
    integrityCheck: () =>
      locked(async () => {
        const rows = sqlite.pragma('integrity_check') as { integrity_check: string }[];
        return rows.map((r) => r.integrity_check).join('; ');
      }),
    async close() {
      await locked(async () => sqlite.close());
    },
  };
}
