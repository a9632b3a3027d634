import path from 'node:path';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import SQLite from 'better-sqlite3';
import { CompiledQuery, type DatabaseConnection, type Driver, Kysely, type QueryResult, SqliteDialect, SqliteDriver } from 'kysely';
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
import { GroupSync, WalFile } from './wal-sync.ts';

/** How long a statement waits for another process's write lock before it fails (SQLITE_BUSY). */
const LOCK_WAIT_MS = 5000;

/** SQLite's answer when another connection holds the lock it needs (or is recovering the log). */
function isBusy(e: unknown): boolean {
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * The connection with lock waits off the event loop. SQLite's own busy handler (busy_timeout)
 * sleeps inside the call, and better-sqlite3 calls on the event loop: with several processes on
 * one database (`berth serve --workers`), every clash over the write lock stopped the whole
 * process for 1 ms or more. The database runs with busy_timeout 0 instead, and a statement
 * refused with SQLITE_BUSY outside a transaction — a `BEGIN IMMEDIATE` or a single statement,
 * which had no effect — is run again after an asynchronous pause (1, 2, 4 … 16 ms, up to
 * LOCK_WAIT_MS in all), while the process serves other requests. Inside a transaction nothing
 * is retried: it holds the write lock from its start, and its error goes to its caller.
 */
class LockWaitingConnection implements DatabaseConnection {
  constructor(
    private readonly inner: DatabaseConnection,
    private readonly sqlite: { readonly inTransaction: boolean },
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let pause = 1; ; pause = Math.min(pause * 2, 16)) {
      try {
        return await this.inner.executeQuery<R>(query);
      } catch (e) {
        if (!isBusy(e) || this.sqlite.inTransaction || Date.now() + pause > deadline) throw e;
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize);
  }
}

/**
 * Kysely's SQLite driver with two changes.
 *
 * Write transactions take the database's write lock when they begin (`BEGIN IMMEDIATE`). With
 * several processes on one database (`berth serve --workers`), a deferred transaction that reads
 * and then writes fails with SQLITE_BUSY at once when another process wrote in between; an
 * immediate one waits for the lock instead (LockWaitingConnection).
 *
 * Group commit: the database runs with `synchronous=NORMAL`, so a commit appends its frames to
 * the write-ahead log without syncing it (SQLite still syncs the log before each checkpoint, the
 * database after it, and the log's header when the log is reused). Whoever used the connection
 * and wrote (the StatementCache counts writing statements; `BEGIN IMMEDIATE` is one, so a
 * transaction that only read waits too, cheaply) releases it first, then waits for a
 * sync of the log that began after its commit (`GroupSync`, an fdatasync in libuv's threadpool).
 * NORMAL plus that sync is `synchronous=FULL` for the committed frames — FULL's only difference
 * in WAL mode is a sync of the log after each commit — except that the sync runs off the event
 * loop, without holding the connection, and is shared by every commit made while the previous
 * one ran. Kysely awaits `releaseConnection` before the query's or transaction's promise
 * settles (DefaultConnectionProvider's `finally`), so nothing is acknowledged before its frames
 * are on disk. A write that depends on an unsynced commit (it read that row) is ordered after it
 * in the log, and its own sync covers both.
 *
 * Others may read a committed row before its sync completes (as PostgreSQL's readers see a
 * commit before its client is told). Not covered: Kysely's `startTransaction()` (its `commit()`
 * resolves before the connection is released; Berth does not use it); streamed queries are
 * read-only on SQLite.
 */
class GroupCommitSqliteDriver extends SqliteDriver {
  /** The write count when the connection was last acquired (the holder has it alone). */
  private writesAtAcquire = 0;

  constructor(
    readonly statements: StatementCache,
    /** undefined: nothing to sync (an in-memory database, or not in WAL mode: SQLite syncs). */
    private readonly wal: { group: GroupSync; file?: WalFile } | undefined,
  ) {
    super({ database: statements });
  }

  private connection: LockWaitingConnection | undefined;

  override async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await super.acquireConnection();
    this.writesAtAcquire = this.statements.writes.count;
    return (this.connection ??= new LockWaitingConnection(inner, this.statements.db));
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }

  /**
   * The connection's current holder needs no sync for what it wrote so far: call only while
   * holding it (inside `db.connection().execute`), after a commit that may be lost on a power
   * cut (the event writer's plain batches). The next sync, or checkpoint, covers it.
   */
  commitWithoutSync(): void {
    this.writesAtAcquire = this.statements.writes.count;
  }

  override async releaseConnection(): Promise<void> {
    const wrote = this.statements.writes.count !== this.writesAtAcquire;
    await super.releaseConnection();
    if (wrote && this.wal) await this.wal.group.sync();
  }

  override async destroy(): Promise<void> {
    await this.wal?.group.idle();
    await this.wal?.file?.close();
    await super.destroy();
  }
}

class GroupCommitSqliteDialect extends SqliteDialect {
  constructor(private readonly driver: GroupCommitSqliteDriver) {
    super({ database: driver.statements });
  }

  override createDriver(): Driver {
    return this.driver;
  }
}

/** Options of openSqlite for tests. */
export interface SqliteOptions {
  /** Replaces the fdatasync of the `-wal` file (to observe or delay it). */
  flushWal?: () => Promise<void>;
}

/**
 * Opens the embedded SQLite database in WAL mode with group commit (see GroupCommitSqliteDriver):
 * an acknowledged write survives a process crash and a power loss, as with `synchronous=FULL`.
 */
export async function openSqlite(file: string, options: SqliteOptions = {}): Promise<{ reads?: ReadCache; meta: SqlMetadataStore; access: SqlAccessStore; events: SqlEventStore; jobs: SqlJobStore; gc: SqlGcStore; lifecycle: SqlLifecycleStore; signing: SqlSigningStore; sbom: SqlSbomStore; vulns: SqlVulnStore; limits: SqlRateLimitStore; db: Kysely<Database> }> {
  if (file !== ':memory:') {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // Created owner-only before SQLite opens it: SQLite gives the -wal and -shm files the
    // database file's permissions.
    closeSync(openSync(file, 'a', 0o600));
  }
  const sqlite = new SQLite(file);
  // 'memory' for an in-memory database (nothing to sync); a file system without the shared
  // memory WAL needs leaves the rollback journal, where NORMAL is not safe: FULL then.
  const wal = sqlite.pragma('journal_mode = WAL', { simple: true }) === 'wal';
  sqlite.pragma(wal ? 'synchronous = NORMAL' : 'synchronous = FULL');
  sqlite.pragma('foreign_keys = ON');
  // Waits for other processes' locks while opening and migrating; afterwards the connection
  // waits asynchronously (LockWaitingConnection) instead of in SQLite's busy handler.
  sqlite.pragma(`busy_timeout = ${LOCK_WAIT_MS}`);
  const statements = new StatementCache(sqlite);
  let walSync: { group: GroupSync; file?: WalFile } | undefined;
  if (wal) {
    const walFile = options.flushWal ? undefined : new WalFile(`${path.resolve(file)}-wal`);
    walSync = { group: new GroupSync(options.flushWal ?? (() => walFile!.datasync())), file: walFile };
  }
  const driver = new GroupCommitSqliteDriver(statements, walSync);
  const db = new Kysely<Database>({ dialect: new GroupCommitSqliteDialect(driver) });
  try {
    await migrateToLatest(db, 'sqlite');
  } catch (e) {
    await db.destroy();
    throw e;
  }
  sqlite.pragma('busy_timeout = 0');
  const reads = new ReadCache(sqlite, statements.writes);
  return {
    reads,
    meta: new SqlMetadataStore(db, 'sqlite', reads, () => driver.commitWithoutSync()),
    access: new SqlAccessStore(db, reads),
    events: new SqlEventStore(db, () => driver.commitWithoutSync()),
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
