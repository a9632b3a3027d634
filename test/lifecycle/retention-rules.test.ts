/**
 * Retention by pulls, by semantic version and by entitlement pulls, and rules inherited from
 * the owner ([GET|PUT /api/v1/owners/:owner/retention], [GET …/retention/plan]) — on SQLite
 * and on PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ADMIN, apiOk, openBerth, pull, pushImage, setupTenancy, type EventsBerth, type Tenancy } from '../events/helpers.ts';

type Plan = { source: string | null; entries: { image: string; tag: string; action: string; reason: string }[]; deleted?: number };
const verdicts = (p: Plan) => Object.fromEntries(p.entries.map((e) => [e.tag, e.action]));

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`retention rules (${dialect})`, () => {
    let b: EventsBerth;
    let ten: Tenancy;
    before(async () => {
      b = await openBerth({ postgres: dialect === 'postgres' });
      ten = await setupTenancy(b.app);
      // Plans are read before the runs a rules change queues would change the tags.
      await b.berth.registry.jobs.stop();
    });
    after(() => b.close());

    test('semver keeps the N highest versions per line; other selected tags go', async () => {
      for (const t of ['v1.0.0', 'v1.1.0', '1.2.0', 'v1.2.1-rc.1', 'v2.0.0', 'v2.1.0', 'latest']) await pushImage(b.app, 'acme/dev/sem', t);
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/dev/retention', ADMIN, { rules: [{ keep: { semver: { latest: 1, per: 'major' } } }] }, 200);
      const plan: Plan = await apiOk(b.app, 'GET', '/api/v1/repos/acme/dev/retention/plan', ADMIN, undefined, 200);
      assert.equal(plan.source, 'repository');
      assert.deepEqual(verdicts(plan), { '1.2.0': 'delete', latest: 'delete', 'v1.0.0': 'delete', 'v1.1.0': 'delete', 'v1.2.1-rc.1': 'keep', 'v2.0.0': 'delete', 'v2.1.0': 'keep' });
      assert.match(plan.entries.find((e) => e.tag === 'v2.1.0')!.reason, /rule 1: one of the 1 highest versions of its major line/);
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/dev/retention', ADMIN, { rules: [{ tags: 'v*', keep: { semver: { latest: 2 } } }] }, 200);
      const all: Plan = await apiOk(b.app, 'GET', '/api/v1/repos/acme/dev/retention/plan', ADMIN, undefined, 200);
      assert.deepEqual(verdicts(all), { '1.2.0': 'keep', latest: 'keep', 'v1.0.0': 'delete', 'v1.1.0': 'delete', 'v1.2.1-rc.1': 'delete', 'v2.0.0': 'keep', 'v2.1.0': 'keep' });
      const bad = await b.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/dev/retention', headers: { authorization: ADMIN, 'content-type': 'application/json' }, payload: { rules: [{ keep: { semver: { latest: 1, per: 'patch' } } }] } });
      assert.equal(bad.statusCode, 400, bad.body);
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/dev/retention', ADMIN, null, 200);
    });

    test('pulledWithin keeps what was pulled (by tag or digest); pulledByEntitlementWithin only what a token pulled', async () => {
      const a = await pushImage(b.app, 'acme/prod/pl', 'a');
      const bImg = await pushImage(b.app, 'acme/prod/pl', 'b');
      const c = await pushImage(b.app, 'acme/prod/pl', 'c');
      await pushImage(b.app, 'acme/prod/pl', 'd');
      assert.equal((await pull(b.app, 'acme/prod/pl', 'a', ADMIN)).statusCode, 200);
      assert.equal((await pull(b.app, 'acme/prod/pl', c.digest, ten.token)).statusCode, 200);
      assert.equal((await b.app.inject({ method: 'HEAD', url: '/v2/acme/prod/pl/manifests/d', headers: { authorization: ADMIN } })).statusCode, 200); // a HEAD is no pull
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/retention', ADMIN, { rules: [{ keep: { pulledWithin: '1h' } }] }, 200);
      let plan: Plan = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/retention/plan', ADMIN, undefined, 200);
      assert.deepEqual(verdicts(plan), { a: 'keep', b: 'delete', c: 'keep', d: 'delete' });
      assert.match(plan.entries[0]!.reason, /pulled within 1h \(last /);
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/retention', ADMIN, { rules: [{ keep: { pulledByEntitlementWithin: '30d' } }] }, 200);
      plan = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/retention/plan', ADMIN, undefined, 200);
      assert.deepEqual(verdicts(plan), { a: 'delete', b: 'delete', c: 'keep', d: 'delete' });
      // A pull before the window does not keep a tag.
      b.berth.registry.pulls.note('acme/prod/pl', bImg.digest, true, Date.now() - 40 * 86_400_000);
      plan = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/retention/plan', ADMIN, undefined, 200);
      assert.equal(verdicts(plan).b, 'delete');
      const run: Plan = await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/retention/run', ADMIN, undefined, 200);
      assert.equal(run.deleted, 3);
      assert.equal((await pull(b.app, 'acme/prod/pl', 'c', ADMIN)).statusCode, 200);
      assert.equal((await pull(b.app, 'acme/prod/pl', a.digest, ADMIN)).statusCode, 200, 'the untagged manifest stays until GC');
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/retention', ADMIN, null, 200);
    });

    test('owner rules apply to repositories without their own; a repository rule set replaces them', async () => {
      await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'inh', visibility: 'private' }, 201);
      for (const t of ['x1', 'x2', 'x3']) {
        await pushImage(b.app, 'acme/inh/app', t);
        await new Promise((r) => setTimeout(r, 5));
      }
      const put = await b.app.inject({ method: 'PUT', url: '/api/v1/owners/acme/retention', headers: { authorization: ten.carol, 'content-type': 'application/json' }, payload: { rules: [] } });
      assert.equal(put.statusCode, 404, 'a repository reader may not set owner rules (nor learn more of the owner)');
      await apiOk(b.app, 'PUT', '/api/v1/owners/acme/retention', ADMIN, { rules: [{ tags: 'x*', keep: { mostRecentlyPushed: 1 } }] }, 200);
      assert.deepEqual((await apiOk(b.app, 'GET', '/api/v1/owners/acme/retention', ADMIN, undefined, 200)).retention.rules[0].keep, { mostRecentlyPushed: 1 });
      let plan: Plan = await apiOk(b.app, 'GET', '/api/v1/repos/acme/inh/retention/plan', ADMIN, undefined, 200);
      assert.equal(plan.source, 'owner');
      assert.deepEqual(verdicts(plan), { x1: 'delete', x2: 'delete', x3: 'keep' });
      assert.match(plan.entries[2]!.reason, /^owner rule 1:/);
      assert.equal((await apiOk(b.app, 'GET', '/api/v1/repos/acme/inh/retention', ADMIN, undefined, 200)).retention, null, 'the repository has no rules of its own');
      // A push queues a run: inherited rules count as rules.
      const policy = await b.berth.registry.policies.forRepository((await b.berth.accessStore.findRepository('acme', 'inh'))!.id);
      assert.equal(policy.retention, true);
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/inh/retention', ADMIN, { rules: [{ tags: 'x1' }] }, 200);
      plan = await apiOk(b.app, 'GET', '/api/v1/repos/acme/inh/retention/plan', ADMIN, undefined, 200);
      assert.equal(plan.source, 'repository');
      assert.deepEqual(verdicts(plan), { x1: 'delete', x2: 'keep', x3: 'keep' });
      await apiOk(b.app, 'PUT', '/api/v1/owners/acme/retention', ADMIN, null, 200);
    });
  });
}
