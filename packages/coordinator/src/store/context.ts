/**
 * What every aggregate of the store shares: the database, the clock, and the one way to change a
 * network (a transaction that first bumps its revision, which also locks its row, then a publish).
 */
import { randomBytes } from 'node:crypto';
import type { Db, Queryable } from '../db.js';

const ID_BYTES = 8;

/** The shared part of the store an aggregate is built on. */
export interface StoreContext {
  readonly db: Db;
  /** Wall clock in unix ms. */
  readonly clock: () => number;
  /**
   * Runs a change to network `networkId`: `fn` gets the transaction after the revision bump (the
   * lock); the change is published after commit. Resolves with what `fn` resolved with.
   */
  change<T>(networkId: string, fn: (q: Queryable) => Promise<T>): Promise<T>;
  /** Publishes a change committed without `change` (a deleted network has no revision to bump). */
  changed(networkId: string): Promise<void>;
}

/** A new random row id (hex). */
export function newId(): string {
  return randomBytes(ID_BYTES).toString('hex');
}

/** SQLite and PostgreSQL both store booleans here as INTEGER 0/1. */
export function flag(b: boolean): number {
  return b ? 1 : 0;
}
