// API tests against a real PostgreSQL server started on loopback for this file.
import { afterAll } from 'vitest';
import { apiCases } from './api-cases.js';
import { startPostgres, type PgServer } from './pg-server.js';

let pg: PgServer | undefined;
afterAll(() => pg?.stop());

apiCases('postgres', async () => {
  pg = await startPostgres();
  return { database: pg.createDatabase('wiremesh_api') };
});
