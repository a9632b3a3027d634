/** The GC suite on PostgreSQL: a fresh schema per test, dropped afterwards (see test/metadata/postgres.test.ts). */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openPostgres } from '../../src/metadata/sql/postgres.ts';
const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
import { runGcSuite } from '../suites/gc-suite.ts';

runGcSuite('postgres', async () => {
  const schema = `berth_gc_${randomBytes(6).toString('hex')}`;
  return {
    open: () => openPostgres({ url: POSTGRES_URL, schema, poolSize: 4 }),
    async cleanup() {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP SCHEMA ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    },
  };
}, { multiNode: true });
