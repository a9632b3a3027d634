/**
 * Lifecycle routes of the management API: change your password, reset another user's, revoke a
 * user's keys at once, delete a user / organisation / repository / image / tag (access checks,
 * confirmation, what goes and what stays), leave an organisation, list organisations only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PASSWORD, USER_PASSWORD, api, apiOk, assertError, basic, bearer, openAuthBerth, pushImage, type AuthBerth } from './helpers.ts';

const ADMIN = basic('admin', ADMIN_PASSWORD);
const pw = (u: string, p = USER_PASSWORD) => basic(u, p);

describe('[lifecycle] management API', () => {
  let b: AuthBerth;
  before(async () => {
    b = await openAuthBerth({ auth: { maxLoginFailures: 1000 } });
    for (const u of ['alice', 'bob', 'carol', 'dave']) await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: u, password: USER_PASSWORD }, 201);
  });
  after(() => b?.close());

  const whoami = async (auth: string) => (await api(b.app, 'GET', '/api/v1/whoami', auth)).json as { kind: string; username?: string };
  const v2 = (url: string, auth?: string) => b.app.inject({ method: 'GET', url, headers: auth ? { authorization: auth } : {} });

  describe('[PUT /api/v1/user/password]', () => {
    it('needs the current password; the old one stops working at once, the new one works', async () => {
      const wrong = await api(b.app, 'PUT', '/api/v1/user/password', pw('alice'), { currentPassword: 'not-it-at-all', newPassword: 'alice-new-pw-1' });
      assertError(wrong.res, 403, 'DENIED', 'wrong current password');
      const short = await api(b.app, 'PUT', '/api/v1/user/password', pw('alice'), { currentPassword: USER_PASSWORD, newPassword: 'short' });
      assertError(short.res, 400, 'INVALID', 'short');
      const huge = await api(b.app, 'PUT', '/api/v1/user/password', pw('alice'), { currentPassword: USER_PASSWORD, newPassword: 'x'.repeat(5000) });
      assertError(huge.res, 400, 'INVALID', 'too long');
      const missing = await api(b.app, 'PUT', '/api/v1/user/password', pw('alice'), { newPassword: 'alice-new-pw-1' });
      assertError(missing.res, 400, 'INVALID', 'no current password');
      assert.equal((await whoami(pw('alice'))).username, 'alice', 'cached check of the old password');
      await apiOk(b.app, 'PUT', '/api/v1/user/password', pw('alice'), { currentPassword: USER_PASSWORD, newPassword: 'alice-new-pw-1' }, 204);
      assertError((await api(b.app, 'GET', '/api/v1/whoami', pw('alice'))).res, 401, 'UNAUTHORIZED', 'old password');
      assert.equal((await whoami(pw('alice', 'alice-new-pw-1'))).username, 'alice');
      const anon = await api(b.app, 'PUT', '/api/v1/user/password', undefined, { currentPassword: 'a', newPassword: 'bbbbbbbbbb' });
      assert.equal(anon.status, 401);
    });
  });

  describe('[PUT /api/v1/users/:username/password]', () => {
    it('a site administrator resets a password; others may not; unknown users are 404', async () => {
      assertError((await api(b.app, 'PUT', '/api/v1/users/alice/password', pw('bob'), { password: 'hijacked-pw-1' })).res, 403, 'DENIED');
      assertError((await api(b.app, 'PUT', '/api/v1/users/nobody/password', ADMIN, { password: 'whatever-pw-1' })).res, 404, 'NOT_FOUND');
      assertError((await api(b.app, 'PUT', '/api/v1/users/alice/password', ADMIN, { password: 'short' })).res, 400, 'INVALID');
      await apiOk(b.app, 'PUT', '/api/v1/users/alice/password', ADMIN, { password: 'alice-reset-pw-1' }, 204);
      assert.equal((await whoami(pw('alice', 'alice-reset-pw-1'))).username, 'alice');
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', pw('alice', 'alice-new-pw-1'))).status, 401);
    });
  });

  describe('[POST /api/v1/users/:username/revoke-keys]', () => {
    it('revokes every key of a user at once: themselves, or anyone for a site administrator', async () => {
      const k1 = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', pw('bob'), { name: 'laptop' }, 201);
      const k2 = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', pw('bob'), { name: 'ci' }, 201);
      const other = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', pw('carol'), { name: 'carol' }, 201);
      assertError((await api(b.app, 'POST', '/api/v1/users/bob/revoke-keys', pw('carol'))).res, 403, 'DENIED', "carol revoking bob's");
      assert.deepEqual(await apiOk(b.app, 'POST', '/api/v1/users/bob/revoke-keys', ADMIN, undefined, 200), { revoked: 2 });
      for (const k of [k1, k2]) assert.equal((await api(b.app, 'GET', '/api/v1/whoami', bearer(k.secret))).status, 401);
      assert.equal((await whoami(bearer(other.secret))).username, 'carol', "carol's key still works");
      assert.deepEqual(await apiOk(b.app, 'POST', '/api/v1/users/carol/revoke-keys', bearer(other.secret), undefined, 200), { revoked: 1 });
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', bearer(other.secret))).status, 401);
      assertError((await api(b.app, 'POST', '/api/v1/users/nobody/revoke-keys', ADMIN)).res, 404, 'NOT_FOUND');
    });
  });

  describe('organisations: list, leave, delete', () => {
    before(async () => {
      await apiOk(b.app, 'POST', '/api/v1/orgs', pw('bob'), { name: 'acme' }, 201);
      await apiOk(b.app, 'PUT', '/api/v1/orgs/acme/members/carol', pw('bob'), { role: 'admin' }, 200);
      await apiOk(b.app, 'PUT', '/api/v1/orgs/acme/members/dave', pw('bob'), { role: 'write' }, 200);
      await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', pw('bob'), { name: 'prod' }, 201);
      await pushImage(b.app, 'acme/prod/app', 'v1', pw('bob'));
    });

    it('[GET /api/v1/orgs] lists organisations only, those the caller can see', async () => {
      const bob = (await apiOk(b.app, 'GET', '/api/v1/orgs', pw('bob'), undefined, 200)) as { name: string; kind: string }[];
      assert.deepEqual(bob.map((o) => [o.name, o.kind]), [['acme', 'org']]);
      const owners = (await apiOk(b.app, 'GET', '/api/v1/owners', pw('bob'), undefined, 200)) as { name: string }[];
      assert.ok(owners.some((o) => o.name === 'bob'), 'owners include the own namespace, orgs do not');
      assert.deepEqual(await apiOk(b.app, 'GET', '/api/v1/orgs', pw('alice', 'alice-reset-pw-1'), undefined, 200), []);
    });

    it('[POST /api/v1/orgs/:org/leave] a member leaves; the last owner cannot; strangers get 404', async () => {
      await apiOk(b.app, 'POST', '/api/v1/orgs/acme/leave', pw('dave'), undefined, 204);
      const members = (await apiOk(b.app, 'GET', '/api/v1/orgs/acme/members', pw('bob'), undefined, 200)) as { username: string }[];
      assert.deepEqual(members.map((m) => m.username), ['bob', 'carol']);
      assertError((await api(b.app, 'POST', '/api/v1/orgs/acme/leave', pw('dave'))).res, 404, 'NOT_FOUND', 'not a member any more');
      const last = await api(b.app, 'POST', '/api/v1/orgs/acme/leave', pw('bob'));
      assertError(last.res, 409, 'CONFLICT', 'last owner');
      assert.match(last.json.errors[0].message, /last owner of acme/);
      assertError((await api(b.app, 'POST', '/api/v1/orgs/nope/leave', pw('bob'))).res, 404, 'NOT_FOUND');
    });

    it('[DELETE /api/v1/users/:username] the sole owner of an org cannot be deleted; a confirmation is required', async () => {
      assertError((await api(b.app, 'DELETE', '/api/v1/users/bob?confirm=bob', pw('carol'))).res, 403, 'DENIED', 'not a site admin');
      assertError((await api(b.app, 'DELETE', '/api/v1/users/bob', ADMIN)).res, 400, 'CONFIRMATION_REQUIRED');
      assertError((await api(b.app, 'DELETE', '/api/v1/users/bob?confirm=bobby', ADMIN)).res, 400, 'CONFIRMATION_REQUIRED');
      const sole = await api(b.app, 'DELETE', '/api/v1/users/bob?confirm=bob', ADMIN);
      assertError(sole.res, 409, 'CONFLICT', 'sole owner');
      assert.match(sole.json.errors[0].message, /only owner of acme/);
      assertError((await api(b.app, 'DELETE', '/api/v1/users/admin?confirm=admin', ADMIN)).res, 409, 'CONFLICT', 'self');
      assertError((await api(b.app, 'DELETE', '/api/v1/users/nobody?confirm=nobody', ADMIN)).res, 404, 'NOT_FOUND');
    });

    it('[DELETE /api/v1/orgs/:org] only an owner, with confirmation; its repositories and images go, blobs stay for GC', async () => {
      assertError((await api(b.app, 'DELETE', '/api/v1/orgs/acme?confirm=acme', pw('carol'))).res, 403, 'DENIED', 'an admin is not an owner');
      assertError((await api(b.app, 'DELETE', '/api/v1/orgs/acme?confirm=acme', pw('dave'))).res, 404, 'NOT_FOUND', 'a former member');
      assertError((await api(b.app, 'DELETE', '/api/v1/orgs/acme', pw('bob'))).res, 400, 'CONFIRMATION_REQUIRED');
      assertError((await api(b.app, 'DELETE', '/api/v1/orgs/bob?confirm=bob', ADMIN)).res, 404, 'NOT_FOUND', 'a user namespace is not an org');
      const before = await b.berth.registry.meta.totalBlobBytes();
      await apiOk(b.app, 'DELETE', '/api/v1/orgs/acme?confirm=acme', pw('bob'), undefined, 204);
      assertError((await api(b.app, 'GET', '/api/v1/repos/acme/prod', ADMIN)).res, 404, 'NOT_FOUND');
      assert.equal((await v2('/v2/acme/prod/app/tags/list', ADMIN)).statusCode, 404);
      assert.equal(await b.berth.registry.meta.totalBlobBytes(), before, 'blob rows stay for garbage collection');
      // the name is free again, and a push there starts fresh
      await apiOk(b.app, 'POST', '/api/v1/orgs', pw('carol'), { name: 'acme' }, 201);
      await pushImage(b.app, 'acme/prod/app', 'v2', pw('carol'));
      const tags = JSON.parse((await v2('/v2/acme/prod/app/tags/list', pw('carol'))).body) as { tags: string[] };
      assert.deepEqual(tags.tags, ['v2']);
    });

    it('[DELETE /api/v1/users/:username] deletes the user, their namespace and keys', async () => {
      const key = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', pw('dave'), { name: 'k' }, 201);
      await pushImage(b.app, 'dave/tools/cli', 'v1', pw('dave'));
      await apiOk(b.app, 'DELETE', '/api/v1/users/dave?confirm=dave', ADMIN, undefined, 204);
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', bearer(key.secret))).status, 401);
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', pw('dave'))).status, 401);
      assertError((await api(b.app, 'GET', '/api/v1/repos/dave/tools', ADMIN)).res, 404, 'NOT_FOUND');
      const users = (await apiOk(b.app, 'GET', '/api/v1/users', ADMIN, undefined, 200)) as { username: string }[];
      assert.ok(!users.some((u) => u.username === 'dave'));
      // the name can be used again
      await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'dave', password: USER_PASSWORD }, 201);
    });
  });

  describe('repositories, images and tags', () => {
    before(async () => {
      await apiOk(b.app, 'POST', '/api/v1/owners/carol/repos', pw('carol'), { name: 'web' }, 201);
      await apiOk(b.app, 'PUT', '/api/v1/repos/carol/web/members/bob', pw('carol'), { role: 'write' }, 200);
      await apiOk(b.app, 'PUT', '/api/v1/repos/carol/web/members/alice', pw('carol'), { role: 'admin' }, 200);
      await pushImage(b.app, 'carol/web/site', 'v1', pw('carol'));
      await pushImage(b.app, 'carol/web/site', 'v2', pw('carol'));
      await pushImage(b.app, 'carol/web/tools/lint', 'v1', pw('carol'));
    });
    const alice = () => pw('alice', 'alice-reset-pw-1');

    it('[DELETE /api/v1/repos/:owner/:repo/tags] needs delete; the manifest stays reachable by digest', async () => {
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/tags?image=site&tag=v1', pw('bob'))).res, 403, 'DENIED', 'write may not delete');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/tags?image=site&tag=v1', pw('dave'))).res, 404, 'NOT_FOUND', 'no access: not found');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/tags?image=site', alice())).res, 400, 'INVALID', 'no tag');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/tags?image=site&tag=bad:tag', alice())).res, 400, 'INVALID');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/tags?image=site&tag=nope', alice())).res, 404, 'NOT_FOUND');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/tags?image=nope&tag=v1', alice())).res, 404, 'NOT_FOUND');
      const digest = (await v2('/v2/carol/web/site/manifests/v1', pw('carol'))).headers['docker-content-digest'] as string;
      await apiOk(b.app, 'DELETE', '/api/v1/repos/carol/web/tags?image=site&tag=v1', alice(), undefined, 204);
      assert.equal((await v2('/v2/carol/web/site/manifests/v1', pw('carol'))).statusCode, 404);
      assert.equal((await v2(`/v2/carol/web/site/manifests/${digest}`, pw('carol'))).statusCode, 200);
    });

    it('[DELETE /api/v1/repos/:owner/:repo/images] deletes one image (with slashes in its name) after confirmation', async () => {
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/images?image=tools/lint', alice())).res, 400, 'CONFIRMATION_REQUIRED');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/images?image=tools/lint&confirm=carol/web/tools/lint', pw('bob'))).res, 403, 'DENIED');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/images?image=..&confirm=x', alice())).res, 400, 'INVALID');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web/images?image=gone&confirm=carol/web/gone', alice())).res, 404, 'NOT_FOUND');
      await apiOk(b.app, 'DELETE', '/api/v1/repos/carol/web/images?image=tools/lint&confirm=carol/web/tools/lint', alice(), undefined, 204);
      const images = (await apiOk(b.app, 'GET', '/api/v1/repos/carol/web/images', pw('carol'), undefined, 200)) as { name: string }[];
      assert.deepEqual(images.map((i) => i.name), ['carol/web/site']);
      assert.equal((await v2('/v2/carol/web/tools/lint/tags/list', pw('carol'))).statusCode, 404);
      // pushing to the name again works (the image cache forgot it)
      await pushImage(b.app, 'carol/web/tools/lint', 'v9', pw('carol'));
    });

    it('[DELETE /api/v1/repos/:owner/:repo] needs manage and the full name; the name can be reused', async () => {
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web?confirm=carol/web', pw('bob'))).res, 403, 'DENIED');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web?confirm=carol/web', pw('dave'))).res, 404, 'NOT_FOUND');
      assertError((await api(b.app, 'DELETE', '/api/v1/repos/carol/web?confirm=web', pw('carol'))).res, 400, 'CONFIRMATION_REQUIRED');
      const tok = await apiOk(b.app, 'POST', '/api/v1/repos/carol/web/tokens', pw('carol'), { name: 'customer' }, 201);
      await apiOk(b.app, 'DELETE', '/api/v1/repos/carol/web?confirm=carol/web', alice(), undefined, 204);
      assertError((await api(b.app, 'GET', '/api/v1/repos/carol/web', pw('carol'))).res, 404, 'NOT_FOUND');
      assert.equal((await v2('/v2/carol/web/site/tags/list', pw('carol'))).statusCode, 404);
      const t = await b.app.inject({ method: 'GET', url: '/v2/token?service=berth', headers: { authorization: basic('token', tok.secret) } });
      assert.equal(t.statusCode, 401, "the repository's tokens went with it");
      await pushImage(b.app, 'carol/web/site', 'fresh', pw('carol'));
      const tags = JSON.parse((await v2('/v2/carol/web/site/tags/list', pw('carol'))).body) as { tags: string[] };
      assert.deepEqual(tags.tags, ['fresh']);
      const members = (await apiOk(b.app, 'GET', '/api/v1/repos/carol/web/members', pw('carol'), undefined, 200)) as unknown[];
      assert.deepEqual(members, [], 'a new repository under the old name has no old members');
    });

    it('deletions are recorded in the audit log', async () => {
      await b.berth.registry.events.flush();
      const events = await apiOk(b.app, 'GET', '/api/v1/events?action=admin&limit=1000', ADMIN, undefined, 200);
      const routes = (events.events as { detail: { method: string; route: string } }[]).map((e) => `${e.detail.method} ${e.detail.route}`);
      for (const r of ['DELETE /api/v1/repos/:owner/:repo', 'DELETE /api/v1/orgs/:org', 'DELETE /api/v1/users/:username', 'PUT /api/v1/user/password']) {
        assert.ok(routes.includes(r), `${r} in ${routes.join(', ')}`);
      }
    });
  });

  it('the OpenAPI document lists the lifecycle routes', async () => {
    const doc = JSON.parse((await b.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).body) as { paths: Record<string, Record<string, unknown>> };
    for (const [p, m] of [
      ['/api/v1/user/password', 'put'],
      ['/api/v1/users/{username}', 'delete'],
      ['/api/v1/orgs', 'get'],
      ['/api/v1/orgs/{org}/leave', 'post'],
      ['/api/v1/repos/{owner}/{repo}', 'delete'],
      ['/api/v1/repos/{owner}/{repo}/images', 'delete'],
      ['/api/v1/repos/{owner}/{repo}/tags', 'delete'],
    ] as const) {
      assert.ok(doc.paths[p]?.[m], `${m} ${p}`);
    }
  });
});
