import path from 'node:path';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import SQLite from 'better-sqlite3';
import { CompiledQuery, type DatabaseConnection, type Driver, Kysely, SqliteDialect, SqliteDriver } from 'kysely';
import type { Database } from './schema.ts';
import { migrateToLatest } from './migrations.ts';
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
import { StatementCache } from './statement-cache.ts';
import { ReadCache } from './read-cache.ts';

/**
 * Kysely's SQLite driver with write transactions that take the database's write lock when they
 * begin (`BEGIN IMMEDIATE`). With several processes on one database (`berth serve --workers`),
 * a deferred transaction that reads and then writes fails with SQLITE_BUSY at once when another
 * process wrote in between; an immediate one waits (busy_timeout) for the lock instead.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly database: StatementCache) {
    super({ database });
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver({ database: this.database });
  }
}

/**
 * Opens the embedded SQLite database. WAL mode with synchronous=FULL: every commit is fsynced
 * before its promise resolves, so an acknowledged write survives a process crash and a power
 * loss.
 */
export async function openSqlite(file: string): Promise<{ reads?: ReadCache; meta: SqlMetadataStore; access: SqlAccessStore; events: SqlEventStore; jobs: SqlJobStore; gc: SqlGcStore; lifecycle: SqlLifecycleStore; signing: SqlSigningStore; sbom: SqlSbomStore; vulns: SqlVulnStore; limits: SqlRateLimitStore; db: Kysely<Database> }> {
  if (file !== ':memory:') {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Created owner-only before SQLite opens it: SQLite gives the -wal and -shm files the
    // database file's permissions.
    closeSync(openSync(file, 'a', 0o600));
  }
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const statements = new StatementCache(sqlite);
  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect(statements) });
  try {
    await migrateToLatest(db, 'sqlite');
  } catch (e) {
    await db.destroy();
    throw e;
  }
  const reads = new ReadCache(sqlite, statements.writes);
  return {
    reads,
    meta: new SqlMetadataStore(db, 'sqlite', reads),
    access: new SqlAccessStore(db, reads),
    events: new SqlEventStore(db, true),
    jobs: new SqlJobStore(db, 'sqlite'),
    gc: new SqlGcStore(db, 'sqlite'),
    lifecycle: new SqlLifecycleStore(db),
    signing: new SqlSigningStore(db),
    sbom: new SqlSbomStore(db),
    vulns: new SqlVulnStore(db),
    limits: new SqlRateLimitStore(db),
    db,
  };
}
