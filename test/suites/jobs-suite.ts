/**
 * The JobStore contract (src/metadata/job-store.ts) and the JobQueue over it (src/core/jobs/),
 * run once per dialect: runJobSuite('sqlite', async () => ({ jobs, cleanup })).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { JobQueue, RetryLater, type JobQueueOptions } from '../../src/core/jobs/queue.ts';
import type { JobRecord, JobStore } from '../../src/metadata/job-store.ts';

export interface JobFixture {
  jobs: JobStore;
  cleanup(): Promise<void>;
}

const T = 1_000_000;
const job = (subject: string, runAfter = T, kind = 'k') => ({ kind, subject, runAfter });
const opts = (o: Partial<JobQueueOptions> = {}): JobQueueOptions => ({
  concurrency: 2,
  pollIntervalMs: 20,
  leaseMs: 5_000,
  maxAttempts: 3,
  backoffBaseMs: 1,
  backoffMaxMs: 10,
  ...o,
});

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function runJobSuite(dialect: string, open: () => Promise<JobFixture>): void {
  describe(`JobStore and JobQueue: ${dialect}`, () => {
    const withJobs = (name: string, fn: (jobs: JobStore) => Promise<void>) =>
      test(name, async () => {
        const fx = await open();
        try {
          await fn(fx.jobs);
        } finally {
          await fx.cleanup();
        }
      });

    withJobs('enqueue dedupes by (kind, subject); counts group by kind and state', async (jobs) => {
      await jobs.enqueue([job('a'), job('a', T + 5), job('b', T + 10), job('a', T, 'other')]);
      await jobs.enqueue([job('b', T + 20)]);
      const all = await jobs.list({ limit: 10 });
      assert.deepEqual(all.map((j) => [j.kind, j.subject, j.state, j.runAfter, j.attempts]), [
        ['k', 'a', 'queued', T + 5, 0],
        ['k', 'b', 'queued', T + 20, 0],
        ['other', 'a', 'queued', T, 0],
      ]);
      const counts = await jobs.counts(T + 10);
      assert.deepEqual(counts.map((c) => [c.kind, c.state, c.count, c.due, c.oldestRunAfter]), [
        ['k', 'queued', 2, 1, T + 5],
        ['other', 'queued', 1, 1, T],
      ]);
      assert.equal((await jobs.findJob('k', 'b'))?.runAfter, T + 20);
      assert.equal(await jobs.findJob('k', 'zzz'), undefined);
    });

    withJobs('claim leases due jobs of the given kinds; a held lease keeps others off until it expires', async (jobs) => {
      await jobs.enqueue([job('due'), job('later', T + 1000), job('x', T, 'other')]);
      const a = await jobs.claim('A', ['k'], 10, T + 100, T);
      assert.deepEqual(a.map((j) => [j.subject, j.state, j.leaseOwner, j.leaseUntil, j.attempts]), [['due', 'running', 'A', T + 100, 1]]);
      assert.deepEqual(await jobs.claim('B', ['k'], 10, T + 150, T + 50), [], 'leased to A, and `later` not due');
      assert.equal(await jobs.renew(a[0]!.id, 'A', T + 200), true);
      assert.equal(await jobs.renew(a[0]!.id, 'B', T + 999), false, 'only the holder renews');
      assert.deepEqual(await jobs.claim('B', ['k'], 10, T + 300, T + 150), [], 'renewed lease still holds');
      // A crashed: its lease runs out, B takes the job over.
      const b = await jobs.claim('B', ['k'], 10, T + 400, T + 201);
      assert.deepEqual(b.map((j) => [j.subject, j.leaseOwner, j.attempts]), [['due', 'B', 2]]);
      assert.equal(await jobs.complete(a[0]!.id, 'A'), false, 'A lost its lease: its completion does not count');
      assert.equal(await jobs.complete(b[0]!.id, 'B'), true);
      assert.equal(await jobs.findJob('k', 'due'), undefined, 'a completed job is gone');
      assert.deepEqual((await jobs.claim('C', ['k', 'other'], 10, T + 2000, T + 1000)).map((j) => j.subject).sort(), ['later', 'x']);
    });

    withJobs('two claimers at once never get the same job', async (jobs) => {
      await jobs.enqueue(Array.from({ length: 60 }, (_, i) => job(`s${i}`, Date.now() - 1000)));
      const seen: string[] = [];
      const claimer = async (owner: string) => {
        for (;;) {
          const got = await jobs.claim(owner, ['k'], 3, Date.now() + 60_000, Date.now());
          if (!got.length) return;
          seen.push(...got.map((j) => j.subject));
        }
      };
      await Promise.all([claimer('A'), claimer('B'), claimer('C'), claimer('D')]);
      assert.equal(seen.length, 60, 'every job claimed once');
      assert.equal(new Set(seen).size, 60, 'no job claimed twice');
    });

    withJobs('failures back off, then go dead; retry and a new enqueue revive a dead job', async (jobs) => {
      await jobs.enqueue([job('a')]);
      let [a] = await jobs.claim('A', ['k'], 1, T + 100, T);
      assert.equal(await jobs.fail(a!.id, 'A', { error: 'boom', runAfter: T + 50, dead: false }), true);
      let row = (await jobs.findJob('k', 'a'))!;
      assert.deepEqual([row.state, row.attempts, row.runAfter, row.lastError, row.leaseOwner], ['queued', 1, T + 50, 'boom', null]);
      assert.deepEqual(await jobs.claim('A', ['k'], 1, T + 100, T + 10), [], 'backing off');
      [a] = await jobs.claim('A', ['k'], 1, T + 200, T + 50);
      assert.equal(a!.attempts, 2);
      await jobs.fail(a!.id, 'A', { error: null, runAfter: T + 500, dead: false, refund: true });
      row = (await jobs.findJob('k', 'a'))!;
      assert.deepEqual([row.attempts, row.lastError], [1, 'boom'], 'a postponed run does not count an attempt');
      [a] = await jobs.claim('A', ['k'], 1, T + 600, T + 500);
      await jobs.fail(a!.id, 'A', { error: 'dead now', runAfter: T + 500, dead: true });
      assert.deepEqual(await jobs.claim('A', ['k'], 1, T + 99_999, T + 99_000), [], 'dead jobs are never claimed');
      assert.deepEqual((await jobs.list({ state: 'dead', limit: 10 })).map((j) => j.subject), ['a']);
      assert.equal(await jobs.retry({ kind: 'nope' }, T), 0);
      assert.equal(await jobs.retry({ id: a!.id }, T + 700), 1);
      row = (await jobs.findJob('k', 'a'))!;
      assert.deepEqual([row.state, row.attempts, row.runAfter], ['queued', 0, T + 700]);
      [a] = await jobs.claim('A', ['k'], 1, T + 800, T + 700);
      await jobs.fail(a!.id, 'A', { error: 'again', runAfter: T, dead: true });
      await jobs.enqueue([job('a', T + 900)]);
      row = (await jobs.findJob('k', 'a'))!;
      assert.deepEqual([row.state, row.attempts, row.runAfter], ['queued', 0, T + 900], 'enqueue revives a dead job');
    });

    withJobs('a job enqueued again while it runs runs once more', async (jobs) => {
      await jobs.enqueue([job('a')]);
      const [a] = await jobs.claim('A', ['k'], 1, T + 100, T);
      await jobs.enqueue([job('a', T + 10)]);
      assert.equal(await jobs.complete(a!.id, 'A'), true);
      const row = (await jobs.findJob('k', 'a'))!;
      assert.deepEqual([row.state, row.leaseOwner, row.runAfter], ['queued', null, T + 10]);
      assert.equal((await jobs.claim('B', ['k'], 1, T + 200, T + 10)).length, 1);
    });

    withJobs('the queue runs workers, retries with backoff and dead-letters after maxAttempts', async (jobs) => {
      const q = new JobQueue<string>(jobs, opts({ maxAttempts: 3 }));
      const ran: string[] = [];
      let failsLeft = 2;
      q.register('ok', async (j, core) => void ran.push(`${core}:${j.subject}`));
      q.register('flaky', async () => {
        if (failsLeft-- > 0) throw new Error('not yet');
      });
      q.register('broken', async () => {
        throw new Error('always');
      });
      let notBefore = 0;
      q.register('later', async () => {
        if (Date.now() < notBefore) throw new RetryLater(notBefore);
      });
      const errors: string[] = [];
      q.opts.onError = (e) => errors.push((e as Error).message);
      notBefore = Date.now() + 150;
      await q.store.enqueue([{ kind: 'ok', subject: '1', runAfter: 0 }, { kind: 'flaky', subject: 'f', runAfter: 0 }, { kind: 'broken', subject: 'b', runAfter: 0 }, { kind: 'later', subject: 'l', runAfter: 0 }]);
      q.start('core');
      try {
        await until(async () => (await jobs.list({ limit: 10 })).every((j) => j.state === 'dead'));
        await until(async () => (await jobs.list({ limit: 10 })).length === 1);
      } finally {
        await q.stop();
      }
      assert.deepEqual(ran, ['core:1']);
      const left = await jobs.list({ limit: 10 });
      assert.deepEqual(left.map((j) => [j.kind, j.state, j.attempts, j.lastError]), [['broken', 'dead', 3, 'always']]);
      assert.equal(q.stats.failures.get('flaky'), 2);
      assert.equal(q.stats.failures.get('broken'), 3);
      assert.equal(q.stats.dead.get('broken'), 1);
      assert.ok(Date.now() >= notBefore, 'the postponed job ran once due');
    });

    withJobs("a crashed worker's job is taken over by another node when its lease expires", async (jobs) => {
      await jobs.enqueue([{ kind: 'work', subject: 'x', runAfter: 0 }]);
      // Node A claims and dies without finishing (a lease of 100 ms, never renewed).
      const [held] = await jobs.claim('node-A', ['work'], 1, Date.now() + 100, Date.now());
      assert.ok(held);
      const done: JobRecord[] = [];
      const b = new JobQueue<null>(jobs, opts());
      b.register('work', async (j) => void done.push(j));
      b.start(null);
      try {
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(done.length, 0, 'not while the lease holds');
        await until(async () => done.length === 1);
      } finally {
        await b.stop();
      }
      assert.equal(done[0]!.attempts, 2);
      assert.equal(await jobs.findJob('work', 'x'), undefined);
    });

    withJobs('runDue runs every due job now and reports outcomes; two queues share the work', async (jobs) => {
      const a = new JobQueue<null>(jobs, opts());
      const b = new JobQueue<null>(jobs, opts());
      const ranBy = new Map<string, string>();
      for (const [q, name] of [[a, 'A'], [b, 'B']] as const) {
        q.register('w', async (j) => {
          assert.equal(ranBy.has(j.subject), false, `ran twice: ${j.subject}`);
          ranBy.set(j.subject, name);
          await new Promise((r) => setTimeout(r, 2));
        });
        q.start(null);
        await q.stop(); // started for its core, without polling: runDue drives it
      }
      await jobs.enqueue(Array.from({ length: 40 }, (_, i) => ({ kind: 'w', subject: `j${i}`, runAfter: 0 })));
      await jobs.enqueue([{ kind: 'w', subject: 'future', runAfter: Date.now() + 60_000 }]);
      const [ra, rb] = await Promise.all([a.runDue(), b.runDue()]);
      assert.equal(ra.completed + rb.completed, 40);
      assert.equal(ranBy.size, 40);
      assert.deepEqual((await jobs.list({ limit: 10 })).map((j) => j.subject), ['future']);
    });
  });
}
