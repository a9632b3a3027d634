import type { Statement } from 'better-sqlite3';

/** Bounds of a ReadCache. */
export interface ReadCacheLimits {
  /** Result sets kept at most. */
  entries: number;
  /** Approximate bytes of the kept rows at most (manifest payloads dominate). */
  bytes: number;
  /** A result set larger than this is never kept. */
  entryBytes: number;
}

export const DEFAULT_READ_CACHE_LIMITS: ReadCacheLimits = { entries: 10_000, bytes: 32 * 1024 * 1024, entryBytes: 1024 * 1024 };

/**
 * Results of the hot reads on one SQLite connection (a manifest by tag or digest, an image, an
 * owner, a repository, a user), kept only while the database is exactly as it was when they
 * were read. The database's state is named by two counters (see `state()` for when each is read):
 *
 * - SQLite's `PRAGMA data_version`, which changes whenever *another* connection commits —
 *   another worker process, another node's process on the same file, another handle in this
 *   process (a few microseconds: it reads the WAL index in shared memory, under its locks);
 * - `writes`, counted by this process's StatementCache for every writing statement it
 *   prepares on this connection (Kysely prepares each query right before running it), which
 *   `data_version` does not see.
 *
 * When either moved, every kept result is dropped: the cache never answers with anything a
 * plain read would not have answered since the request began (outside requests: in the same
 * turn of the event loop), so revocations, tag moves and deletes take effect on the next
 * request as before. A result is kept under the state read *before* its
 * query ran, so a write landing in between only makes it unusable, never wrong. Reads inside a
 * transaction never use it (they must see the transaction's own writes). Rows are shared
 * between callers: they must not be mutated (the stores map them into new records).
 */
export class ReadCache {
  private readonly entries = new Map<string, { rows: readonly unknown[]; bytes: number }>();
  private bytes = 0;
  /** The state the kept entries belong to, and a number that changes with it. */
  private dataVersion = -1;
  private writesSeen = -1;
  private epoch = 0;
  /** `data_version` was read since the last request began and in this turn of the event loop. */
  private fresh = false;
  private turnEnding = false;
  private readonly versionStatement: Statement;
  hits = 0;
  misses = 0;

  constructor(
    db: { prepare(sql: string): Statement },
    private readonly writes: { readonly count: number },
    private readonly limits: ReadCacheLimits = DEFAULT_READ_CACHE_LIMITS,
  ) {
    this.versionStatement = db.prepare('PRAGMA data_version').pluck();
  }

  /**
   * The current state's epoch, after dropping every entry if the state moved; undefined when
   * it cannot be read now (the connection is busy or closed): the caller then reads without
   * the cache.
   *
   * `PRAGMA data_version` opens and closes a read transaction (shared-memory locks: the
   * largest cost of a cached read). It is read at most once per request and per turn of the
   * event loop: again on the first lookup after `requestStarted()` (so every request sees
   * whatever was committed before it arrived) and after the turn ends (`setImmediate`: work
   * outside requests, such as jobs, never uses a version read in an earlier turn). This
   * connection's own writes are checked on every lookup.
   */
  state(): number | undefined {
    if (this.fresh && this.writes.count === this.writesSeen) return this.epoch;
    let dv: number;
    try {
      dv = Number(this.versionStatement.get());
    } catch {
      return undefined;
    }
    this.fresh = true;
    if (!this.turnEnding) {
      this.turnEnding = true;
      setImmediate(() => {
        this.turnEnding = false;
        this.fresh = false;
      });
    }
    const w = this.writes.count;
    if (dv !== this.dataVersion || w !== this.writesSeen) {
      this.entries.clear();
      this.bytes = 0;
      this.dataVersion = dv;
      this.writesSeen = w;
      this.epoch++;
    }
    return this.epoch;
  }

  /** A client request begins: the next lookup reads `data_version` again. */
  requestStarted(): void {
    this.fresh = false;
  }

  get(key: string): readonly unknown[] | undefined {
    const e = this.entries.get(key);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return e.rows;
  }

  /**
   * Keeps `rows`, read after `state()` returned `epoch`, unless the state has moved since as far
   * as this process can tell (another connection's commit that nobody has looked for yet is
   * found by the next `state()`, which then drops these rows).
   */
  set(key: string, rows: readonly unknown[], epoch: number): void {
    if (epoch !== this.epoch || this.writes.count !== this.writesSeen) return;
    const bytes = key.length + sizeOfRows(rows);
    if (bytes > this.limits.entryBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.bytes;
    }
    while (this.entries.size > 0 && (this.entries.size >= this.limits.entries || this.bytes + bytes > this.limits.bytes)) {
      // Map keeps insertion order: the first key is the oldest.
      const [k, v] = this.entries.entries().next().value!;
      this.entries.delete(k);
      this.bytes -= v.bytes;
    }
    this.entries.set(key, { rows, bytes });
    this.bytes += bytes;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Approximate memory of rows: text and byte columns by length, a fixed cost per column. */
function sizeOfRows(rows: readonly unknown[]): number {
  let n = 0;
  for (const row of rows) {
    n += 64;
    for (const v of Object.values(row as Record<string, unknown>)) {
      n += 16;
      if (typeof v === 'string') n += v.length * 2;
      else if (v instanceof Uint8Array) n += v.byteLength;
    }
  }
  return n;
}
