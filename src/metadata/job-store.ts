/**
 * Rows of the one durable job queue (DESIGN.md §10). Rows only: `core/jobs/` runs them and
 * knows nothing of what a kind means; each feature's worker lives in its own core module.
 * Implemented once in Kysely for SQLite and PostgreSQL (sql/job-store.ts).
 * Contract checked by test/suites/metadata-suite.ts against every dialect.
 */

export type JobState = 'queued' | 'running' | 'dead';

/** Work to do later: at most one row per (kind, subject). */
export interface NewJob {
  kind: string;
  subject: string;
  /** Not before this time (ms since the epoch). */
  runAfter: number;
}

export interface JobRecord {
  id: number;
  kind: string;
  subject: string;
  state: JobState;
  runAfter: number;
  attempts: number;
  leaseOwner: string | null;
  leaseUntil: number | null;
  lastError: string | null;
  createdAt: number;
  /** Last time the job was enqueued (a deduplicated enqueue moves it). */
  enqueuedAt: number;
}

export interface JobCount {
  kind: string;
  state: JobState;
  count: number;
  /** Earliest `runAfter` among them. */
  oldestRunAfter: number;
  /** How many are due (runAfter ≤ now), and the earliest due `runAfter`. */
  due: number;
}

export interface JobStore {
  /**
   * Adds jobs, deduplicated by (kind, subject): an existing row is moved to the new `runAfter`,
   * re-queued (a dead one starts again with no attempts; a running one runs once more after
   * its current run) and its `enqueuedAt` set to now.
   */
  enqueue(jobs: NewJob[]): Promise<void>;
  /**
   * Leases up to `limit` due jobs of `kinds` to `owner` until `leaseUntil`: queued jobs with
   * runAfter ≤ now, and running jobs whose lease expired (their worker crashed). Each claimed
   * job's attempts grow by one. Two claimers never get the same job while its lease holds
   * (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one UPDATE … RETURNING).
   */
  claim(owner: string, kinds: string[], limit: number, leaseUntil: number, now: number): Promise<JobRecord[]>;
  /** Extends a lease the owner still holds; false when it lost it. */
  renew(id: number, owner: string, leaseUntil: number): Promise<boolean>;
  /**
   * The owner finished the job: the row goes, unless it was enqueued again while running
   * (it is then left queued, released from the lease). False when the owner had lost the lease.
   */
  complete(id: number, owner: string): Promise<boolean>;
  /**
   * The run failed: queued again at `runAfter` with `error` recorded, or `dead` (kept for
   * inspection and `retry`). `refund`: the attempt does not count (a postponed job).
   */
  fail(id: number, owner: string, outcome: { error: string | null; runAfter: number; dead: boolean; refund?: boolean }): Promise<boolean>;
  /** Jobs, oldest runAfter first, optionally of one state and kind. */
  list(filter: { state?: JobState; kind?: string; subject?: string; limit: number; afterId?: number }): Promise<JobRecord[]>;
  findJob(kind: string, subject: string): Promise<JobRecord | undefined>;
  /** Counts per kind and state, with the oldest runAfter and how many are due at `now`. */
  counts(now: number): Promise<JobCount[]>;
  /** Dead jobs queued again with no attempts: one by id, or every dead job (of a kind). Returns how many. */
  retry(filter: { id?: number; kind?: string }, now: number): Promise<number>;
}
