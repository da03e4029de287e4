/**
 * PostgreSQL storage (pg): the same SQL as SQLite with `?` rewritten to `$n`, transactions on a
 * pooled client, and change fan-out across replicas with LISTEN/NOTIFY on one channel (the payload
 * is the network id; NOTIFY is delivered only after commit, so readers see the change).
 */
import pg from 'pg';
import { PG_LISTEN_RETRY_MS } from './constants.js';
import { UniqueViolation, type Db, type Queryable, type SqlValue } from './db.js';

const CHANNEL = 'wiremesh_changes';
const PG_INT8_OID = 20;
const PG_UNIQUE_VIOLATION = '23505';

// BIGINT columns hold unix milliseconds and revisions, far below 2^53: numbers, not strings.
pg.types.setTypeParser(PG_INT8_OID, (v) => Number(v));

function toPg(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function wrap(e: unknown): unknown {
  return e instanceof Error && (e as { code?: string }).code === PG_UNIQUE_VIOLATION
    ? new UniqueViolation(e.message)
    : e;
}

function queryable(c: pg.Pool | pg.PoolClient): Queryable {
  return {
    async all<T>(sql: string, params: readonly SqlValue[] = []) {
      try {
        return (await c.query(toPg(sql), params as SqlValue[])).rows as T[];
      } catch (e) {
        throw wrap(e);
      }
    },
    async get<T>(sql: string, params: readonly SqlValue[] = []) {
      try {
        return (await c.query(toPg(sql), params as SqlValue[])).rows[0] as T | undefined;
      } catch (e) {
        throw wrap(e);
      }
    },
    async run(sql: string, params: readonly SqlValue[] = []) {
      try {
        return (await c.query(toPg(sql), params as SqlValue[])).rowCount ?? 0;
      } catch (e) {
        throw wrap(e);
      }
    },
    async exec(sql: string) {
      await c.query(sql);
    },
  };
}

/** Connects to PostgreSQL at `url` (postgres://...). Resolves once the pool answers. */
export async function openPostgres(url: string, onError: (e: Error) => void): Promise<Db> {
  const pool = new pg.Pool({ connectionString: url });
  pool.on('error', onError);
  await pool.query('SELECT 1');
  const base = queryable(pool);
  const listeners: ((networkId: string) => void)[] = [];
  let listener: pg.Client | null = null;
  let closed = false;

  const listen = async (): Promise<void> => {
    const client = new pg.Client({ connectionString: url });
    client.on('notification', (msg) => {
      if (msg.channel === CHANNEL && msg.payload) for (const l of listeners) l(msg.payload);
    });
    client.on('error', (e) => {
      onError(e);
      client.end().catch(() => undefined);
      if (!closed) setTimeout(() => void listen().catch(onError), PG_LISTEN_RETRY_MS);
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    listener = client;
  };
  await listen();

  return {
    dialect: 'postgres',
    forUpdate: ' FOR UPDATE',
    ...base,
    async tx(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const out = await fn(queryable(client));
        await client.query('COMMIT');
        return out;
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw e;
      } finally {
        client.release();
      }
    },
    async publish(networkId) {
      await pool.query('SELECT pg_notify($1, $2)', [CHANNEL, networkId]);
    },
    subscribe(l) {
      listeners.push(l);
    },
    async integrityCheck() {
      await pool.query('SELECT count(*) FROM schema_migrations');
      return 'ok';
    },
    async close() {
      closed = true;
      await listener?.end().catch(() => undefined);
      await pool.end();
    },
  };
}
