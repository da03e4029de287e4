// Admin tokens, scopes and the audit log against a real PostgreSQL server on loopback.
import { afterAll } from 'vitest';
import { tokenCases } from './tokens-cases.js';
import { startPostgres, type PgServer } from './pg-server.js';

let pg: PgServer | undefined;
afterAll(() => pg?.stop());

tokenCases(async () => {
  pg = await startPostgres();
  return { database: pg.createDatabase('wiremesh_tokens') };
});
