/**
 * [GET /api/v1/search] owners, repositories, images and tags the caller may see — and nothing
 * private to anyone else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PASSWORD, USER_PASSWORD, api, apiOk, assertError, basic, openAuthBerth, pushImage, type AuthBerth } from './helpers.ts';

const ADMIN = basic('admin', ADMIN_PASSWORD);

describe('[GET /api/v1/search]', () => {
  let b: AuthBerth;
  before(async () => {
    b = await openAuthBerth();
    for (const u of ['alice', 'bob']) await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: u, password: USER_PASSWORD }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/alice/repos', basic('alice', USER_PASSWORD), { name: 'pub', visibility: 'public' }, 201);
    await pushImage(b.app, 'alice/secret/zebra-app', 'v1-zebra', basic('alice', USER_PASSWORD));
    await pushImage(b.app, 'alice/pub/zebra-web', 'v2-zebra', basic('alice', USER_PASSWORD));
  });
  after(() => b?.close());

  it('finds owners, repositories, images and tags the caller may read', async () => {
    const mine = await apiOk(b.app, 'GET', '/api/v1/search?q=zebra', basic('alice', USER_PASSWORD), undefined, 200);
    assert.deepEqual(mine.images.map((i: { image: string }) => i.image).sort(), ['zebra-app', 'zebra-web']);
    assert.deepEqual(mine.tags.map((t: { image: string; tag: string }) => `${t.image}:${t.tag}`).sort(), ['zebra-app:v1-zebra', 'zebra-web:v2-zebra']);
    const repos = await apiOk(b.app, 'GET', '/api/v1/search?q=alice/s', basic('alice', USER_PASSWORD), undefined, 200);
    assert.deepEqual(repos.repositories, [{ owner: 'alice', repository: 'secret' }]);
    const owners = await apiOk(b.app, 'GET', '/api/v1/search?q=bo', ADMIN, undefined, 200);
    assert.deepEqual(owners.owners, [{ name: 'bob', kind: 'user' }]);
  });

  it('never shows private content to others, anonymous included', async () => {
    for (const auth of [basic('bob', USER_PASSWORD), undefined]) {
      const r = await apiOk(b.app, 'GET', '/api/v1/search?q=zebra', auth, undefined, 200);
      assert.deepEqual(r.images.map((i: { image: string }) => i.image), ['zebra-web']);
      assert.deepEqual(r.tags.map((t: { tag: string }) => t.tag), ['v2-zebra']);
      const s = await apiOk(b.app, 'GET', '/api/v1/search?q=secret', auth, undefined, 200);
      assert.deepEqual([s.repositories, s.images], [[], []]);
    }
  });

  it('is in the OpenAPI document', async () => {
    const doc = JSON.parse((await b.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).body) as { paths: Record<string, { get?: unknown }> };
    assert.ok(doc.paths['/api/v1/search']?.get);
  });

  it('refuses an empty or oversized query', async () => {
    assertError((await api(b.app, 'GET', '/api/v1/search?q=', ADMIN)).res, 400, 'INVALID');
    assertError((await api(b.app, 'GET', `/api/v1/search?q=${'x'.repeat(101)}`, ADMIN)).res, 400, 'INVALID');
  });
});
