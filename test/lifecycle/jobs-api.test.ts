/**
 * [GET /api/v1/jobs], [GET /api/v1/jobs/counts], [POST /api/v1/jobs/retry] and the job
 * metrics in /metrics: site administrators only.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startBerth, type TestBerth } from '../api/helpers.ts';

let t: TestBerth;
before(async () => {
  t = await startBerth();
  await t.berth.registry.jobs.stop(); // the test drives the rows itself
});
after(() => t.close());

test('[GET /api/v1/jobs] lists jobs; counts group them; retry revives dead ones; metrics show them', async () => {
  const store = t.berth.registry.jobs.store;
  await store.enqueue([{ kind: 'test.kind', subject: 'a', runAfter: Date.now() - 5000 }, { kind: 'test.kind', subject: 'b', runAfter: Date.now() + 60_000 }]);
  const [a] = await store.claim('me', ['test.kind'], 1, Date.now() + 1000, Date.now());
  await store.fail(a!.id, 'me', { error: 'it broke', runAfter: Date.now(), dead: true });

  const list = await t.app.inject({ url: '/api/v1/jobs?state=dead' });
  assert.equal(list.statusCode, 200, list.body);
  const body = JSON.parse(list.body) as { jobs: { subject: string; state: string; lastError: string; attempts: number }[] };
  assert.deepEqual(body.jobs.map((j) => [j.subject, j.state, j.lastError, j.attempts]), [['a', 'dead', 'it broke', 1]]);

  const counts = JSON.parse((await t.app.inject({ url: '/api/v1/jobs/counts' })).body) as { kind: string; state: string; count: number; due: number }[];
  assert.deepEqual(counts.filter((c) => c.kind === 'test.kind').map((c) => [c.state, c.count, c.due]), [['dead', 1, 1], ['queued', 1, 0]]);

  const metrics = (await t.app.inject({ url: '/metrics' })).body;
  assert.match(metrics, /berth_jobs\{kind="test.kind",state="dead"\} 1/);
  assert.match(metrics, /berth_jobs\{kind="test.kind",state="queued"\} 1/);
  assert.match(metrics, /berth_jobs_oldest_due_seconds\{kind="test.kind"\} 0/);
  assert.match(metrics, /berth_job_failures_total/);

  const retry = await t.app.inject({ method: 'POST', url: '/api/v1/jobs/retry', payload: { kind: 'test.kind' }, headers: { 'content-type': 'application/json' } });
  assert.equal(retry.statusCode, 200, retry.body);
  assert.deepEqual(JSON.parse(retry.body), { retried: 1 });
  assert.equal((await store.findJob('test.kind', 'a'))?.state, 'queued');

  assert.equal((await t.app.inject({ url: '/api/v1/jobs?state=bogus' })).statusCode, 400);
  assert.equal((await t.app.inject({ url: '/api/v1/jobs?limit=0' })).statusCode, 400);
});

test('[GET /api/v1/jobs] is refused to anyone but a site administrator', async () => {
  const anon = await t.berth.app.inject({ url: '/api/v1/jobs' });
  assert.equal(anon.statusCode, 401);
  await t.app.inject({ method: 'POST', url: '/api/v1/users', payload: { username: 'plainuser', password: 'plain-user-pw' }, headers: { 'content-type': 'application/json' } });
  const auth = `Basic ${Buffer.from('plainuser:plain-user-pw').toString('base64')}`;
  for (const [method, url] of [['GET', '/api/v1/jobs'], ['GET', '/api/v1/jobs/counts'], ['POST', '/api/v1/jobs/retry']] as const) {
    const res = await t.berth.app.inject({ method, url, headers: { authorization: auth, 'content-type': 'application/json' }, payload: method === 'POST' ? {} : undefined });
    assert.equal(res.statusCode, 403, `${method} ${url}: ${res.body}`);
  }
});
