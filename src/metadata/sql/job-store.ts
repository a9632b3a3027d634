import { type Kysely, type Selectable, type Transaction, sql } from 'kysely';
import type { JobCount, JobRecord, JobState, JobStore, NewJob } from '../job-store.ts';
import type { Database } from './schema.ts';
import type { Dialect } from './migrations.ts';

type JobRow = Selectable<Database['jobs']>;

function toJob(r: JobRow): JobRecord {
  return {
    id: Number(r.id),
    kind: r.kind,
    subject: r.subject,
    state: r.state as JobState,
    runAfter: Number(r.run_after),
    attempts: Number(r.attempts),
    leaseOwner: r.lease_owner,
    leaseUntil: r.lease_until === null ? null : Number(r.lease_until),
    lastError: r.last_error,
    createdAt: Number(r.created_at),
    enqueuedAt: Number(r.enqueued_at),
  };
}

/**
 * Enqueues jobs inside the caller's transaction (or on the database): the work is recorded
 * together with the change that causes it, or not at all. Deduplicated by (kind, subject).
 */
export async function enqueueJobs(db: Kysely<Database> | Transaction<Database>, jobs: NewJob[]): Promise<void> {
  if (!jobs.length) return;
  const unique = new Map<string, NewJob>();
  for (const j of jobs) unique.set(`${j.kind}\0${j.subject}`, j); // one row per key per statement
  const now = Date.now();
  const rows = [...unique.values()];
  for (let i = 0; i < rows.length; i += 200) {
    await db
      .insertInto('jobs')
      .values(
        rows.slice(i, i + 200).map((j) => ({
          kind: j.kind,
          subject: j.subject,
          state: 'queued',
          run_after: j.runAfter,
          attempts: 0,
          lease_owner: null,
          lease_until: null,
          last_error: null,
          created_at: now,
          enqueued_at: now,
        })),
      )
      .onConflict((oc) =>
        oc.columns(['kind', 'subject']).doUpdateSet({
          run_after: (eb) => eb.ref('excluded.run_after'),
          enqueued_at: (eb) => eb.ref('excluded.enqueued_at'),
          state: sql<string>`'queued'`,
          attempts: sql<number>`CASE WHEN jobs.state = 'dead' THEN 0 ELSE jobs.attempts END`,
        }),
      )
      .execute();
  }
}

/** The one Kysely implementation of JobStore, for SQLite and PostgreSQL. */
export class SqlJobStore implements JobStore {
  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: Dialect,
  ) {}

  enqueue(jobs: NewJob[]): Promise<void> {
    return enqueueJobs(this.db, jobs);
  }

  async claim(owner: string, kinds: string[], limit: number, leaseUntil: number, now: number): Promise<JobRecord[]> {
    if (!kinds.length || limit <= 0) return [];
    let due = this.db
      .selectFrom('jobs')
      .select('id')
      .where('kind', 'in', kinds)
      .where('state', '<>', 'dead')
      .where('run_after', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('run_after')
      .orderBy('id')
      .limit(limit);
    // PostgreSQL: concurrent claimers skip each other's rows instead of waiting on them.
    // SQLite: one writer at a time, so the UPDATE below is atomic on its own.
    if (this.dialect === 'postgres') due = due.forUpdate().skipLocked();
    const rows = await this.db
      .updateTable('jobs')
      .set((eb) => ({ state: 'running', lease_owner: owner, lease_until: leaseUntil, attempts: eb('attempts', '+', 1) }))
      .where('id', 'in', due)
      .returningAll()
      .execute();
    return rows.map(toJob).sort((a, b) => a.runAfter - b.runAfter || a.id - b.id);
  }

  async renew(id: number, owner: string, leaseUntil: number): Promise<boolean> {
    const r = await this.db.updateTable('jobs').set({ lease_until: leaseUntil }).where('id', '=', id).where('lease_owner', '=', owner).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async complete(id: number, owner: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const del = await trx.deleteFrom('jobs').where('id', '=', id).where('lease_owner', '=', owner).where('state', '=', 'running').executeTakeFirst();
      if (Number(del.numDeletedRows) > 0) return true;
      // Enqueued again while it ran: leave it queued for another run, without the lease.
      const upd = await trx
        .updateTable('jobs')
        .set({ lease_owner: null, lease_until: null, attempts: 0 })
        .where('id', '=', id)
        .where('lease_owner', '=', owner)
        .executeTakeFirst();
      return Number(upd.numUpdatedRows) > 0;
    });
  }

  async fail(id: number, owner: string, o: { error: string | null; runAfter: number; dead: boolean; refund?: boolean }): Promise<boolean> {
    const r = await this.db
      .updateTable('jobs')
      .set((eb) => ({
        state: o.dead ? 'dead' : 'queued',
        run_after: o.runAfter,
        last_error: o.error === null ? eb.ref('last_error') : o.error.slice(0, 2000),
        lease_owner: null,
        lease_until: null,
        ...(o.refund ? { attempts: eb('attempts', '-', 1) } : {}),
      }))
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async list(f: { state?: JobState; kind?: string; subject?: string; limit: number; afterId?: number }): Promise<JobRecord[]> {
    let q = this.db.selectFrom('jobs').selectAll().orderBy('id').limit(f.limit);
    if (f.state) q = q.where('state', '=', f.state);
    if (f.kind) q = q.where('kind', '=', f.kind);
    if (f.subject) q = q.where('subject', '=', f.subject);
    if (f.afterId !== undefined) q = q.where('id', '>', f.afterId);
    return (await q.execute()).map(toJob);
  }

  async findJob(kind: string, subject: string): Promise<JobRecord | undefined> {
    const r = await this.db.selectFrom('jobs').selectAll().where('kind', '=', kind).where('subject', '=', subject).executeTakeFirst();
    return r && toJob(r);
  }

  async counts(now: number): Promise<JobCount[]> {
    const rows = await this.db
      .selectFrom('jobs')
      .select((eb) => [
        'kind',
        'state',
        eb.fn.countAll<string | number>().as('n'),
        eb.fn.min<number>('run_after').as('oldest'),
        eb.fn.sum<string | number>(eb.case().when('run_after', '<=', now).then(1).else(0).end()).as('due'),
      ])
      .groupBy(['kind', 'state'])
      .orderBy('kind')
      .orderBy('state')
      .execute();
    return rows.map((r) => ({ kind: r.kind, state: r.state as JobState, count: Number(r.n), oldestRunAfter: Number(r.oldest), due: Number(r.due ?? 0) }));
  }

  async retry(f: { id?: number; kind?: string }, now: number): Promise<number> {
    let q = this.db.updateTable('jobs').set({ state: 'queued', attempts: 0, run_after: now, lease_owner: null, lease_until: null }).where('state', '=', 'dead');
    if (f.id !== undefined) q = q.where('id', '=', f.id);
    if (f.kind !== undefined) q = q.where('kind', '=', f.kind);
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows);
  }
}
