import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.ts';
import { migrateToLatest, requireCurrentSchema } from './migrations.ts';
import { SqlMetadataStore } from './store.ts';
import { SqlAccessStore } from './access-store.ts';
import { SqlEventStore } from './event-store.ts';
import { SqlJobStore } from './job-store.ts';
import { SqlGcStore } from './gc-store.ts';
import { SqlLifecycleStore } from './lifecycle-store.ts';

// int8 (bigint) columns hold sizes and times well below 2^53: read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export interface PostgresOptions {
  /** postgres://user:pass@host:port/db */
  url: string;
  /** Connections in the pool. */
  poolSize?: number;
  /** Schema to use (created if missing); default `public`. */
  schema?: string;
  /** Apply pending migrations (default true). */
  migrate?: boolean;
  /** Without migrating, refuse a schema that is not this version's (default true). */
  check?: boolean;
}

/**
 * Opens PostgreSQL through a pooled `pg` connection and Kysely's Postgres dialect. Every
 * commit is durable when its promise resolves (PostgreSQL's default synchronous_commit).
 */
export async function openPostgres(opts: PostgresOptions): Promise<{ meta: SqlMetadataStore; access: SqlAccessStore; events: SqlEventStore; jobs: SqlJobStore; gc: SqlGcStore; lifecycle: SqlLifecycleStore; db: Kysely<Database> }> {
  const schema = opts.schema ?? 'public';
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name "${schema}"`);
  if (schema !== 'public') {
    const c = new pg.Client({ connectionString: opts.url });
    await c.connect();
    try {
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    } finally {
      await c.end();
    }
  }
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 10,
    ...(schema !== 'public' ? { options: `-c search_path=${schema}` } : {}),
  });
  pool.on('error', () => undefined); // an idle client's error must not crash the process
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (opts.migrate ?? true) {
      // The schema the connection really uses (a search_path in the URL may choose it).
      const { rows } = await sql<{ s: string }>`SELECT current_schema() AS s`.execute(db);
      await migrateToLatest(db, 'postgres', rows[0]?.s ?? schema);
    }
    else if (opts.check ?? true) await requireCurrentSchema(db, 'postgres');
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return { meta: new SqlMetadataStore(db, 'postgres'), access: new SqlAccessStore(db), events: new SqlEventStore(db), jobs: new SqlJobStore(db, 'postgres'), gc: new SqlGcStore(db, 'postgres'), lifecycle: new SqlLifecycleStore(db), db };
}
