/**
 * Embedded SQLite storage (better-sqlite3): WAL journal, foreign keys on. better-sqlite3 is
 * synchronous, so one async mutex keeps a transaction's statements from interleaving with other
 * requests. Durability is a group commit: SQLite commits with synchronous=NORMAL (no fsync of
 * its own per commit) and a write resolves only after the coordinator's fdatasync of the WAL,
 * run off the event loop and shared by every write that committed before it began, so a
 * resolved write survives a crash of the process or the machine.
 */
import { open, type FileHandle } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { SQLITE_BUSY_TIMEOUT_MS } from './constants.js';
import { UniqueViolation, type Db, type Queryable, type SqlValue } from './db.js';
import { groupCommit } from './group-commit.js';

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

/** Options of openSqlite. */
export interface SqliteOptions {
  /**
   * Makes committed writes durable; by default an fdatasync of the WAL file (nothing for
   * ':memory:'). Tests pass their own to watch when writes resolve.
   */
  syncLog?: () => Promise<void>;
}

/** An fdatasync of `file`'s WAL, opened on first use (SQLite creates it at the first write). */
function walSync(file: string): { sync: () => Promise<void>; close: () => Promise<void> } {
  let handle: Promise<FileHandle> | undefined;
  return {
    async sync() {
      handle ??= open(`${file}-wal`, 'r');
      const h = await handle.catch((e: unknown) => {
        handle = undefined;
        throw e;
      });
      await h.datasync();
    },
    async close() {
      if (handle !== undefined) await (await handle.catch(() => undefined))?.close();
    },
  };
}

/**
 * Opens (creating if needed) the SQLite database at `file`; ':memory:' for tests. Writes
 * (transactions, `run` that changed rows, `exec`) resolve once they are on disk.
 */
export function openSqlite(file: string, opts: SqliteOptions = {}): Db {
  const sqlite = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  sqlite.pragma('journal_mode = WAL');
  // NORMAL in WAL mode syncs only at checkpoints; the group commit below syncs each commit.
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  const wal = file === ':memory:' ? undefined : walSync(file);
  const durable = groupCommit(opts.syncLog ?? wal?.sync ?? (async () => undefined));
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
    async run(sql, params) {
      const changes = await locked(() => direct.run(sql, params));
      if (changes > 0) await durable();
      return changes;
    },
    async exec(sql) {
      await locked(() => direct.exec(sql));
      await durable();
    },
    // The lock is released at COMMIT; the wait for the sync is outside it, so the next
    // transaction runs while this one's sync is on its way and joins the one after.
    async tx(fn) {
      const out = await locked(async () => {
        sqlite.exec('BEGIN IMMEDIATE');
        try {
          const result = await fn(direct);
          sqlite.exec('COMMIT');
          return result;
        } catch (e) {
          if (sqlite.inTransaction) sqlite.exec('ROLLBACK');
          throw e;
        }
      });
      await durable();
      return out;
    },
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
      await wal?.close();
    },
  };
}
