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
import { SqlSigningStore } from './signing-store.ts';
import { SqlSbomStore } from './sbom-store.ts';
import { SqlVulnStore } from './vuln-store.ts';
import { SqlRateLimitStore } from './rate-limit-store.ts';

// int8 (bigint) columns hold sizes and times well below 2^53: read them as numbers.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

const CONNECT_TIMEOUT_MS = 3000;
const POOL_WAIT_MS = 60_000;

class TimedClient extends pg.Client {
  constructor(config?: pg.ClientConfig) {
    super({ ...config, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  }
}

/**
 * Errors meaning "the database is not answering" (no connection within the timeout, a
 * connection lost mid-query, the server shutting down or refusing connections) get
 * `unavailable: true`, which the HTTP layer answers with 503; SQL errors stay as they are.
 */
function markUnavailableErrors(pool: pg.Pool): void {
  const mark = (e: unknown): unknown => {
    if (e && typeof e === 'object') {
      const code = (e as { code?: unknown }).code;
      const lost = !(e instanceof pg.DatabaseError) && /connect|terminat|timeout|queryable|ECONN|EPIPE|ETIMEDOUT/i.test(`${(e as Error).message} ${String(code)}`);
      const serverSide = typeof code === 'string' && (/^(08|57P)/.test(code) || code === '53300');
      if (lost || serverSide) (e as { unavailable?: boolean }).unavailable = true;
    }
    return e;
  };
  const connect = pool.connect.bind(pool) as (cb?: unknown) => Promise<pg.PoolClient>;
  const wrapped = new WeakSet<pg.PoolClient>();
  (pool as { connect: unknown }).connect = (cb?: unknown) => {
    if (typeof cb === 'function') return connect(cb); // pool.query's own path
    return connect().then(
      (client) => {
        if (!wrapped.has(client)) {
          wrapped.add(client);
          const query = client.query.bind(client) as (...a: unknown[]) => unknown;
          (client as { query: unknown }).query = (...args: unknown[]) => {
            const r = query(...args);
            return r instanceof Promise ? r.catch((e: unknown) => Promise.reject(mark(e))) : r;
          };
        }
        return client;
      },
      (e: unknown) => Promise.reject(mark(e)),
    );
  };
}

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
export async function openPostgres(opts: PostgresOptions): Promise<{ meta: SqlMetadataStore; access: SqlAccessStore; events: SqlEventStore; jobs: SqlJobStore; gc: SqlGcStore; lifecycle: SqlLifecycleStore; signing: SqlSigningStore; sbom: SqlSbomStore; vulns: SqlVulnStore; limits: SqlRateLimitStore; db: Kysely<Database>; pool: pg.Pool }> {
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
    // An unreachable database fails requests within seconds (503), never hangs them: each new
    // connection gets CONNECT_TIMEOUT_MS; waiting for a free pooled one (under load) is
    // bounded separately and more generously.
    Client: TimedClient,
    connectionTimeoutMillis: POOL_WAIT_MS,
    keepAlive: true,
    ...(schema !== 'public' ? { options: `-c search_path=${schema}` } : {}),
  });
  pool.on('error', () => undefined); // an idle client's error must not crash the process
  // Nor a checked-out one's: a connection lost while its holder awaits something else (a
  // transaction around other work, a job between queries) emits 'error' on the client, and
  // with no listener that kills the process. The holder's next query fails instead (503), and
  // the pool drops the broken client when it is released.
  pool.on('connect', (client) => client.on('error', () => undefined));
  markUnavailableErrors(pool);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (opts.migrate ?? true) await migrateToLatest(db, 'postgres');
    else if (opts.check ?? true) await requireCurrentSchema(db, 'postgres');
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return { meta: new SqlMetadataStore(db, 'postgres'), access: new SqlAccessStore(db), events: new SqlEventStore(db), jobs: new SqlJobStore(db, 'postgres'), gc: new SqlGcStore(db, 'postgres'), lifecycle: new SqlLifecycleStore(db), signing: new SqlSigningStore(db), sbom: new SqlSbomStore(db), vulns: new SqlVulnStore(db), limits: new SqlRateLimitStore(db), db, pool };
}
