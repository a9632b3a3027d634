import { open, type FileHandle } from 'node:fs/promises';

const ignore = () => {};

/**
 * Group commit for SQLite's write-ahead log: `sync()` resolves once a flush of the log that
 * began after the call has completed, so every frame written before the call is durable. One
 * flush runs at a time; callers arriving while it runs share the next one (not the running
 * one: their frames may have been written after it began), so any number of concurrent
 * commits cost one flush each time the disk completes one.
 *
 * A failed flush poisons the log for good: after a failed fsync, Linux may have dropped the
 * dirty pages and marked them clean, so a later flush that succeeds proves nothing about them
 * (PostgreSQL panics for the same reason). Every later `sync()` rejects, so no write is
 * acknowledged until the process is restarted (and SQLite recovers the log from the disk).
 */
export class GroupSync {
  private inFlight: Promise<void> | undefined;
  /** The flush that starts when the one in flight ends, shared by everyone who asked meanwhile. */
  private queued: Promise<void> | undefined;
  private failure: Error | undefined;

  constructor(private readonly flush: () => Promise<void>) {}

  sync(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.inFlight) return this.start();
    this.queued = this.inFlight.then(ignore, ignore).then(() => {
      this.queued = undefined;
      return this.start();
    });
    return this.queued;
  }

  /** Waits until no flush is running or queued (their callers see their outcome). */
  async idle(): Promise<void> {
    while (this.queued ?? this.inFlight) await (this.queued ?? this.inFlight)!.then(ignore, ignore);
  }

  private start(): Promise<void> {
    const run = this.flushOnce();
    this.inFlight = run;
    const done = () => {
      if (this.inFlight === run) this.inFlight = undefined;
    };
    run.then(done, done);
    return run;
  }

  private async flushOnce(): Promise<void> {
    if (this.failure) throw this.failure;
    try {
      await this.flush();
    } catch (e) {
      // `unavailable`: answered 503 (not 500) until the operator restarts the process.
      this.failure = Object.assign(new Error('SQLite write-ahead log could not be synced to disk; writes are refused until Berth restarts', { cause: e }), { unavailable: true });
      throw this.failure;
    }
  }
}

/**
 * The `-wal` file of an SQLite database, opened read-only on first use and kept open:
 * `datasync()` is an fdatasync(2) in libuv's threadpool, off the event loop. fdatasync also
 * flushes the file's size when it grew, which is all a reader of the appended frames needs.
 *
 * The handle stays valid while this process's SQLite connection is open: SQLite deletes the log
 * only when the last connection to the database closes (it must get the database's exclusive
 * lock, which our open connection's shared lock prevents), and otherwise reuses the same file
 * from its start after a checkpoint. A log missing when first opened (ENOENT) holds nothing to
 * sync: it was checkpointed into the database (which SQLite syncs) and removed. SQLite takes no
 * POSIX locks on the `-wal` file (only on the database and `-shm` files), so closing this
 * handle cannot drop one of SQLite's locks.
 */
export class WalFile {
  private handle: FileHandle | undefined;
  /** After close(): a late sync (a writer that released just before) opens the file once. */
  private closed = false;

  constructor(private readonly path: string) {}

  /** Not concurrent with itself (GroupSync runs one flush at a time). */
  async datasync(): Promise<void> {
    let h = this.handle;
    if (!h) {
      try {
        h = await open(this.path, 'r');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      if (this.closed) {
        try {
          await h.datasync();
        } finally {
          await h.close();
        }
        return;
      }
      this.handle = h;
    }
    await h.datasync();
  }

  async close(): Promise<void> {
    this.closed = true;
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }
}
