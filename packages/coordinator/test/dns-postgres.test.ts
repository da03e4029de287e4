// DNS names against a real PostgreSQL server started on loopback for this file.
import { afterAll } from 'vitest';
import { dnsCases } from './dns-cases.js';
import { startPostgres, type PgServer } from './pg-server.js';

let pg: PgServer | undefined;
afterAll(() => pg?.stop());

dnsCases(async () => {
  pg = await startPostgres();
  return { database: pg.createDatabase('wiremesh_dns') };
});
