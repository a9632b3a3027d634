/**
 * The metadata contract on PostgreSQL (127.0.0.1:5432, database `test` by default; override
 * with BERTH_TEST_POSTGRES_URL). Each test runs in a fresh schema, dropped afterwards. Fails
 * loudly when PostgreSQL is not reachable: it never skips.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgres } from '../../src/metadata/sql/postgres.ts';
import { runMetadataSuite } from '../suites/metadata-suite.ts';
import { runJobSuite } from '../suites/jobs-suite.ts';

export const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const open = async () => {
  const schema = `berth_t_${randomBytes(6).toString('hex')}`;
  const { meta, access, events, jobs } = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 4 });
  return {
    meta,
    access,
    events,
    jobs,
    async cleanup() {
      await meta.close();
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
};

runMetadataSuite('postgres', open);
runJobSuite('postgres', open);
