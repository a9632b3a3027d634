import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';

/**
 * A better-sqlite3 database as Kysely's SQLite dialect sees it (`prepare` and `close`), with
 * the compiled statement of each SQL text kept for reuse. Kysely's driver prepares every query
 * anew, which costs more than running it; the hot reads (a manifest by tag or digest, an image,
 * an owner, a repository) compile to the same text on every request, so preparing each text
 * once removes that cost. Bounded (least recently used evicted first): `IN (?, ?, …)` lists of
 * every length make distinct texts. SQLite re-prepares a cached statement by itself after a
 * schema change. Safe with Kysely's single connection: it runs one query at a time, and a
 * streamed query keeps the connection until its iterator is done.
 */
export class StatementCache {
  private readonly statements = new Map<string, Statement>();
  /**
   * Writing statements prepared so far: Kysely prepares every query right before running it,
   * so this moves with every write this process makes on the connection (ReadCache's signal;
   * SQLite's `data_version` only moves for other connections' commits).
   */
  readonly writes = { count: 0 };

  constructor(
    readonly db: SqliteDatabase,
    private readonly max = 500,
  ) {}

  prepare(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (stmt) {
      // Re-insert: Map keeps insertion order, so the first key is the least recently used.
      this.statements.delete(sql);
    } else {
      stmt = this.db.prepare(sql);
      if (this.statements.size >= this.max) this.statements.delete(this.statements.keys().next().value!);
    }
    this.statements.set(sql, stmt);
    if (!stmt.readonly) this.writes.count++;
    return stmt;
  }

  get size(): number {
    return this.statements.size;
  }

  close(): void {
    this.statements.clear();
    this.db.close();
  }
}
