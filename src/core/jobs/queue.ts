import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { JobCount, JobRecord, JobState, JobStore, NewJob } from '../../metadata/job-store.ts';

export type { JobCount, JobRecord, JobState, NewJob };

/**
 * A worker: does one job of its kind. Resolving completes the job; throwing fails this
 * attempt (retried with backoff, dead after `maxAttempts`); throwing `RetryLater` reschedules
 * it without counting an attempt. The queue knows nothing of what a kind means (DESIGN §10).
 */
export type Worker<C> = (job: JobRecord, core: C) => Promise<void>;

/** Thrown by a worker whose job is not due yet (e.g. a grace period still running). */
export class RetryLater extends Error {
  constructor(
    readonly runAfter: number,
    reason = 'not due yet',
  ) {
    super(reason);
    this.name = 'RetryLater';
  }
}

export interface JobQueueOptions {
  /** Jobs run at once by this process. */
  concurrency: number;
  /** How often this process looks for due jobs (enqueues by this process look at once). */
  pollIntervalMs: number;
  /** A claimed job is leased this long, renewed while it runs; a crashed worker's lease expires. */
  leaseMs: number;
  /** Attempts before a job is dead (kept for `berth jobs retry`). */
  maxAttempts: number;
  /** Wait before the second attempt, doubled for each next one, at most `backoffMaxMs`. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  onError?: (e: unknown, job: JobRecord) => void;
}

export const DEFAULT_JOB_OPTIONS: JobQueueOptions = {
  concurrency: 2,
  pollIntervalMs: 1000,
  leaseMs: 60_000,
  maxAttempts: 5,
  backoffBaseMs: 1000,
  backoffMaxMs: 3_600_000,
};

export interface JobStats {
  completed: number;
  /** Failed attempts (each retry counts), per kind. */
  failures: Map<string, number>;
  /** Jobs moved to dead by this process, per kind. */
  dead: Map<string, number>;
}

export interface RunResult {
  completed: number;
  failed: number;
  postponed: number;
}

/**
 * The one durable job queue (DESIGN §10) over the JobStore. Every process runs it: each
 * claims due jobs of the kinds it has workers for, under a lease, so any node may do any job
 * and a crashed node's jobs are taken over when their lease expires.
 */
export class JobQueue<C> {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly stats: JobStats = { completed: 0, failures: new Map(), dead: new Map() };
  private readonly workers = new Map<string, Worker<C>>();
  private core: { value: C } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  private readonly inflight = new Set<Promise<unknown>>();
  private polling = false;
  private stopped = true;

  constructor(
    readonly store: JobStore,
    readonly opts: JobQueueOptions = DEFAULT_JOB_OPTIONS,
  ) {}

  /** Registers the worker of a kind (one per kind). */
  register(kind: string, worker: Worker<C>): void {
    if (this.workers.has(kind)) throw new Error(`a worker for job kind "${kind}" is already registered`);
    this.workers.set(kind, worker);
  }

  get kinds(): string[] {
    return [...this.workers.keys()];
  }

  /** Enqueues jobs on their own (features that change rows enqueue inside their transaction). */
  async enqueue(jobs: NewJob[]): Promise<void> {
    await this.store.enqueue(jobs);
    this.kick();
  }

  /** Starts polling for due jobs with `core` as the workers' second argument. */
  start(core: C): void {
    this.core = { value: core };
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops polling and waits for running jobs (their rows complete or fail as usual). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.allSettled([...this.inflight]);
  }

  /** Looks for due jobs soon (after an enqueue on this node). */
  kick(): void {
    if (!this.stopped) this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), ms);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return;
    this.polling = true;
    try {
      const free = this.opts.concurrency - this.running;
      if (free > 0) {
        const jobs = await this.claim(this.kinds, free);
        for (const job of jobs) {
          this.running++;
          const p = this.execute(job).finally(() => {
            this.running--;
            this.inflight.delete(p);
            this.kick(); // a slot is free: more may be due
          });
          this.inflight.add(p);
        }
      }
    } catch (e) {
      this.opts.onError?.(e, { id: 0, kind: 'poll', subject: '', state: 'queued', runAfter: 0, attempts: 0, leaseOwner: null, leaseUntil: null, lastError: null, createdAt: 0, enqueuedAt: 0 });
    } finally {
      this.polling = false;
      this.schedule(this.opts.pollIntervalMs);
    }
  }

  private claim(kinds: string[], limit: number): Promise<JobRecord[]> {
    const now = Date.now();
    return this.store.claim(this.owner, kinds, limit, now + this.opts.leaseMs, now);
  }

  /**
   * Runs due jobs of `kinds` in this process now, one at a time, until none is due or `max`
   * ran (operators' `gc run`, tests). Jobs other nodes hold are left to them.
   */
  async runDue(kinds: string[] = this.kinds, max = 10_000): Promise<RunResult> {
    if (!this.core) throw new Error('the job queue has not been started');
    const result: RunResult = { completed: 0, failed: 0, postponed: 0 };
    for (let n = 0; n < max; ) {
      const jobs = await this.claim(kinds.filter((k) => this.workers.has(k)), Math.min(20, max - n));
      if (!jobs.length) break;
      for (const job of jobs) {
        const outcome = await this.execute(job);
        result[outcome]++;
        n++;
      }
    }
    return result;
  }

  /** Runs one claimed job and records its outcome; renews the lease while it runs. */
  private async execute(job: JobRecord): Promise<'completed' | 'failed' | 'postponed'> {
    const worker = this.workers.get(job.kind);
    const now = Date.now();
    if (!worker || !this.core) {
      await this.store.fail(job.id, this.owner, { error: `no worker for kind ${job.kind}`, runAfter: now + this.opts.pollIntervalMs, dead: false, refund: true });
      return 'postponed';
    }
    if (job.attempts > this.opts.maxAttempts) {
      // Its earlier workers died holding it (each claim counts an attempt).
      await this.store.fail(job.id, this.owner, { error: `lease expired ${job.attempts - 1} times: worker crashed?`, runAfter: now, dead: true });
      this.count(this.stats.dead, job.kind);
      return 'failed';
    }
    const renew = setInterval(() => void this.store.renew(job.id, this.owner, Date.now() + this.opts.leaseMs).catch(() => undefined), Math.max(10, this.opts.leaseMs / 3));
    renew.unref();
    try {
      await worker(job, this.core.value);
      clearInterval(renew);
      await this.store.complete(job.id, this.owner);
      this.stats.completed++;
      return 'completed';
    } catch (e) {
      clearInterval(renew);
      if (e instanceof RetryLater) {
        await this.store.fail(job.id, this.owner, { error: null, runAfter: e.runAfter, dead: false, refund: true });
        return 'postponed';
      }
      this.count(this.stats.failures, job.kind);
      const dead = job.attempts >= this.opts.maxAttempts;
      if (dead) this.count(this.stats.dead, job.kind);
      const backoff = Math.min(this.opts.backoffBaseMs * 2 ** (job.attempts - 1), this.opts.backoffMaxMs);
      const message = e instanceof Error ? e.message : String(e);
      await this.store.fail(job.id, this.owner, { error: message, runAfter: Date.now() + backoff, dead }).catch(() => undefined);
      this.opts.onError?.(e, job);
      return 'failed';
    }
  }

  private count(map: Map<string, number>, kind: string): void {
    map.set(kind, (map.get(kind) ?? 0) + 1);
  }
}
