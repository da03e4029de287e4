/**
 * The storage interface: a small SQL executor that both embedded SQLite and PostgreSQL implement,
 * with serialisable write transactions and a change feed that reaches every coordinator sharing
 * the database (in-process for SQLite, LISTEN/NOTIFY for PostgreSQL). SQL is written once with `?`
 * placeholders in the dialect both understand; `forUpdate` is the only dialect switch.
 */

/** A value bound to a `?` placeholder. */
export type SqlValue = string | number | null;

/** Statement execution: the same API inside and outside a transaction. */
export interface Queryable {
  /** All rows of a query. */
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** The first row of a query, or undefined. */
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>;
  /** Runs a statement; returns the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** A database the coordinator stores everything in. */
export interface Db extends Queryable {
  readonly dialect: 'sqlite' | 'postgres';
  /** ` FOR UPDATE` where the dialect locks selected rows, else '' (SQLite serialises writers). */
  readonly forUpdate: string;
  /**
   * Runs `fn` in a write transaction: committed when it resolves, rolled back when it throws.
   * Transactions that touch the same network are serialised (the network row is the lock).
   */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  /** Tells every coordinator on this database that network `networkId` changed (call after commit). */
  publish(networkId: string): Promise<void>;
  /** Registers `listener` for changes published by any coordinator on this database, this one included. */
  subscribe(listener: (networkId: string) => void): void;
  /** A database self-check; resolves to 'ok' or a description of the damage. */
  integrityCheck(): Promise<string>;
  close(): Promise<void>;
}

/** Thrown by a Db for a violated UNIQUE constraint, so the store can map it to a 409. */
export class UniqueViolation extends Error {
  override readonly name = 'UniqueViolation';
}
