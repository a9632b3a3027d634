/**
 * [GET|PUT /api/v1/repos/:owner/:repo/lifecycle], [PUT /api/v1/owners/:owner/quota] and what
 * the registry answers on the wire: DENIED (403, OCI JSON) for an immutable tag or a quota.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isImmutable, parseSize, parseTagPatterns } from '../../src/core/lifecycle/policy.ts';
import { assertOciError, pushBlob, pushImage, putManifest, sha256, startBerth, type TestBerth } from '../api/helpers.ts';

let t: TestBerth;
before(async () => {
  t = await startBerth();
});
after(() => t.close());

const json = { 'content-type': 'application/json' };

test('tag patterns: globs with exceptions; sizes in IEC units', () => {
  const p = parseTagPatterns(' v*, !*-dev ,release-?');
  assert.equal(p.source, 'v*,!*-dev,release-?');
  assert.deepEqual(['v1', 'v1.2.3', 'v2-dev', 'latest', 'release-1', 'release-10', 'xv1'].map((x) => isImmutable(p, x)), [true, true, false, false, true, false, false]);
  assert.equal(isImmutable(parseTagPatterns(''), 'v1'), false);
  assert.throws(() => parseTagPatterns('v[0-9]'), /invalid tag pattern/);
  assert.equal(parseSize('10GiB'), 10 * 1024 ** 3);
  assert.equal(parseSize('1.5MiB'), 1572864);
  assert.equal(parseSize('500'), 500);
  assert.equal(parseSize('none'), null);
  assert.throws(() => parseSize('10 parsecs'), /invalid size/);
});

test('[PUT lifecycle] immutable tags refuse a move and a delete with DENIED; a new tag is fine', async () => {
  const v1 = await pushImage(t.app, 'acme/lock/app', 'v1');
  const put = await t.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/lock/lifecycle', headers: json, payload: { immutableTags: 'v*,!*-dev' } });
  assert.equal(put.statusCode, 200, put.body);
  assert.equal(JSON.parse(put.body).immutableTags, 'v*,!*-dev');
  const other = await pushImage(t.app, 'acme/lock/app', 'v2'); // a new tag: allowed
  const move = await putManifest(t.app, 'acme/lock/app', 'v1', other.bytes);
  const e = assertOciError(move, 403, 'DENIED');
  assert.match(e.message, /tag "v1" is immutable/);
  assertOciError(await t.app.inject({ method: 'DELETE', url: '/v2/acme/lock/app/manifests/v1' }), 403, 'DENIED');
  assertOciError(await t.app.inject({ method: 'DELETE', url: `/v2/acme/lock/app/manifests/${v1.digest}` }), 403, 'DENIED');
  await pushImage(t.app, 'acme/lock/app', 'v3-dev');
  assert.equal((await t.app.inject({ method: 'DELETE', url: '/v2/acme/lock/app/manifests/v3-dev' })).statusCode, 202);
  const bad = await t.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/lock/lifecycle', headers: json, payload: { immutableTags: 'v(' } });
  assert.equal(bad.statusCode, 400);
});

test('[PUT lifecycle] a quota refuses the manifest PUT that would exceed it, stating used/limit; usage is shown', async () => {
  await pushImage(t.app, 'acme/quota/app', 'a');
  const set = await t.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/quota/lifecycle', headers: json, payload: { quota: '1KiB' } });
  assert.equal(set.statusCode, 200, set.body);
  const view = JSON.parse(set.body) as { quotaBytes: number; usageBytes: number; owner: { name: string } };
  assert.equal(view.quotaBytes, 1024);
  assert.ok(view.usageBytes > 0 && view.usageBytes < 1024, String(view.usageBytes));
  const layer = Buffer.alloc(2048, 7);
  await pushBlob(t.app, 'acme/quota/app', layer); // the upload itself is accepted: charged at manifest PUT
  const res = await putManifest(t.app, 'acme/quota/app', 'big', {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: await pushBlob(t.app, 'acme/quota/app', '{}'), size: 2 },
    layers: [{ mediaType: 'application/octet-stream', digest: sha256(layer), size: 2048 }],
  });
  const e = assertOciError(res, 403, 'DENIED');
  assert.match(e.message, /storage quota of acme\/quota exceeded: \d+ bytes used \+ 2050 new > 1024 bytes allowed/);

  const owner = await t.app.inject({ method: 'PUT', url: '/api/v1/owners/acme/quota', headers: json, payload: { quota: '10GiB' } });
  assert.equal(owner.statusCode, 200, owner.body);
  assert.equal(JSON.parse(owner.body).quotaBytes, 10 * 1024 ** 3);
  const got = JSON.parse((await t.app.inject({ url: '/api/v1/repos/acme/quota/lifecycle' })).body) as { owner: { quotaBytes: number } };
  assert.equal(got.owner.quotaBytes, 10 * 1024 ** 3);
});

test('[PUT lifecycle] patterns need manage on the repository; quotas need a site administrator', async () => {
  await t.app.inject({ method: 'POST', url: '/api/v1/users', headers: json, payload: { username: 'repoadmin', password: 'repo-admin-pw' } });
  await pushImage(t.app, 'acme/team/app', 'x');
  await t.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/team/members/repoadmin', headers: json, payload: { role: 'admin' } });
  const auth = { authorization: `Basic ${Buffer.from('repoadmin:repo-admin-pw').toString('base64')}`, ...json };
  const ok = await t.berth.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/team/lifecycle', headers: auth, payload: { immutableTags: 'v*' } });
  assert.equal(ok.statusCode, 200, ok.body);
  const quota = await t.berth.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/team/lifecycle', headers: auth, payload: { quota: '100GiB' } });
  assert.equal(quota.statusCode, 403, quota.body);
  const ownerQuota = await t.berth.app.inject({ method: 'PUT', url: '/api/v1/owners/acme/quota', headers: auth, payload: { quota: '1TiB' } });
  assert.equal(ownerQuota.statusCode, 403);
  const anon = await t.berth.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/team/lifecycle', headers: json, payload: { immutableTags: '' } });
  assert.ok(anon.statusCode === 401 || anon.statusCode === 404, String(anon.statusCode));
});

test('[PUT|GET retention] rules are validated; the plan gives a reason per tag; run deletes what no rule keeps', async () => {
  for (const tag of ['a', 'b', 'c']) {
    await pushImage(t.app, 'acme/ret/app', tag);
    await new Promise((r) => setTimeout(r, 5));
  }
  const bad = await t.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/ret/retention', headers: json, payload: { rules: [{ keep: { mostRecentlyPushed: -1 } }] } });
  assert.equal(bad.statusCode, 400, bad.body);
  const put = await t.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/ret/retention', headers: json, payload: { rules: [{ tags: '*', keep: { mostRecentlyPushed: 1 } }] } });
  assert.equal(put.statusCode, 200, put.body);
  assert.deepEqual(JSON.parse(put.body).retention, { rules: [{ images: '*', tags: '*', keep: { mostRecentlyPushed: 1 } }] });
  const plan = JSON.parse((await t.app.inject({ url: '/api/v1/repos/acme/ret/retention/plan' })).body) as { entries: { tag: string; action: string; reason: string }[] };
  assert.deepEqual(plan.entries.map((e) => [e.tag, e.action]), [['a', 'delete'], ['b', 'delete'], ['c', 'keep']]);
  const run = await t.app.inject({ method: 'POST', url: '/api/v1/repos/acme/ret/retention/run' });
  assert.equal(run.statusCode, 200, run.body);
  assert.equal(JSON.parse(run.body).deleted, 2);
  const tags = JSON.parse((await t.app.inject({ url: '/v2/acme/ret/app/tags/list' })).body) as { tags: string[] };
  assert.deepEqual(tags.tags, ['c']);
  const clear = await t.app.inject({ method: 'PUT', url: '/api/v1/repos/acme/ret/retention', headers: json, payload: 'null' });
  assert.equal(clear.statusCode, 200, clear.body);
  assert.equal(JSON.parse(clear.body).retention, null);
});
