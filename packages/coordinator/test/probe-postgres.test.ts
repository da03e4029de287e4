// The probe's defects (issue 17) against a real PostgreSQL server started on loopback for this file.
import { afterAll } from 'vitest';
import { probeCases } from './probe-cases.js';
import { startPostgres, type PgServer } from './pg-server.js';

let pg: PgServer | undefined;
afterAll(() => pg?.stop());

probeCases(async () => {
  pg = await startPostgres();
  return { database: pg.createDatabase('wiremesh_probe') };
});
