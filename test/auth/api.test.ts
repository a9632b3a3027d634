/**
 * The management API (/api/v1): users, organisations, owners, repositories, members, API keys,
 * entitlement tokens, whoami and the OpenAPI document — who may do what, validation errors,
 * secrets shown once and stored hashed — and repositories created by pushing.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ADMIN_PASSWORD, USER_PASSWORD, api, apiOk, assertError, basic, bearer, openAuthBerth, pushImage, type AuthBerth } from './helpers.ts';

const ADMIN = basic('admin', ADMIN_PASSWORD);
const pw = (u: string) => basic(u, USER_PASSWORD);

function apiError(r: { status: number; json: any; res: { body: string } }, status: number, code?: string): string {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.res.body}`);
  assert.ok(Array.isArray(r.json?.errors), `error body: ${r.res.body}`);
  if (code) assert.equal(r.json.errors[0].code, code);
  assert.equal(typeof r.json.errors[0].message, 'string');
  return r.json.errors[0].message as string;
}

describe('management API', () => {
  let b: AuthBerth;
  before(async () => {
    b = await openAuthBerth({ auth: { maxLoginFailures: 1000, maxUserLoginFailures: 1000, loginMaxDelaySeconds: 0 } });
  });
  after(() => b?.close());

  describe('users', () => {
    it('a site administrator creates and lists users; the hash never leaves the server', async () => {
      const u = await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'bob', password: USER_PASSWORD, email: 'bob@example.com' }, 201);
      assert.deepEqual(Object.keys(u).sort(), ['createdAt', 'email', 'siteAdmin', 'username']);
      assert.equal(u.username, 'bob');
      assert.equal(u.siteAdmin, false);
      for (const n of ['carol', 'dave', 'eve']) await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: n, password: USER_PASSWORD }, 201);
      const list = (await apiOk(b.app, 'GET', '/api/v1/users', ADMIN, undefined, 200)) as { username: string }[];
      assert.deepEqual(list.map((x) => x.username), ['admin', 'bob', 'carol', 'dave', 'eve']);
      assert.doesNotMatch(JSON.stringify(list), /argon|password|hash/i);
      // the new user can sign in; a user created without a password cannot
      assert.equal((await apiOk(b.app, 'GET', '/api/v1/whoami', pw('bob'), undefined, 200)).username, 'bob');
      await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'nopw' }, 201);
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', basic('nopw', ''))).status, 401);
    });

    it('non-administrators get 403, anonymous 401', async () => {
      apiError(await api(b.app, 'POST', '/api/v1/users', pw('bob'), { username: 'mallory', password: USER_PASSWORD }), 403, 'DENIED');
      apiError(await api(b.app, 'GET', '/api/v1/users', pw('bob')), 403, 'DENIED');
      apiError(await api(b.app, 'POST', '/api/v1/users', undefined, { username: 'mallory', password: USER_PASSWORD }), 401, 'UNAUTHORIZED');
      apiError(await api(b.app, 'GET', '/api/v1/users'), 401);
      // nothing was created
      const list = (await apiOk(b.app, 'GET', '/api/v1/users', ADMIN, undefined, 200)) as { username: string }[];
      assert.ok(!list.some((x) => x.username === 'mallory'));
    });

    it('a site administrator can make another one', async () => {
      await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'root2', password: USER_PASSWORD, siteAdmin: true }, 201);
      assert.equal((await apiOk(b.app, 'GET', '/api/v1/whoami', pw('root2'), undefined, 200)).siteAdmin, true);
      await apiOk(b.app, 'GET', '/api/v1/users', pw('root2'), undefined, 200);
    });

    it('validation: duplicate, bad names, short password, bad email, unknown fields, bad JSON → 400/409 with a clear message', async () => {
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'bob', password: USER_PASSWORD }), 409, 'CONFLICT'), /bob/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'Bob_X', password: USER_PASSWORD }), 400, 'INVALID'), /username/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'token', password: USER_PASSWORD }), 400, 'INVALID'), /token/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'shorty', password: 'short' }), 400, 'INVALID'), /password/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'mailer', email: 'not-an-email' }), 400, 'INVALID'), /email/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'extra', isRoot: true }), 400, 'INVALID'), /isRoot|unrecognized/i);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { password: USER_PASSWORD }), 400, 'INVALID'), /username/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, '{"username": "x",'), 400, 'INVALID'), /not valid JSON/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/users', ADMIN, { username: 42 }), 400, 'INVALID'), /username/);
      // an org name is taken by a user of that name, and vice versa
      assert.equal((await api(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'bob' })).status, 409);
    });
  });

  describe('organisations, owners and members', () => {
    it('a user creates an organisation and becomes its owner', async () => {
      const org = await apiOk(b.app, 'POST', '/api/v1/orgs', pw('carol'), { name: 'acme' }, 201);
      assert.deepEqual({ name: org.name, kind: org.kind }, { name: 'acme', kind: 'org' });
      const members = await apiOk(b.app, 'GET', '/api/v1/orgs/acme/members', pw('carol'), undefined, 200);
      assert.deepEqual(members.map((m: any) => [m.username, m.role]), [['carol', 'owner']]);
      apiError(await api(b.app, 'POST', '/api/v1/orgs', undefined, { name: 'anon-org' }), 401);
      apiError(await api(b.app, 'POST', '/api/v1/orgs', pw('carol'), { name: 'acme' }), 409, 'CONFLICT');
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/orgs', pw('carol'), { name: 'Bad Name' }), 400, 'INVALID'), /organisation/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/orgs', pw('carol'), {}), 400, 'INVALID'), /name/);
    });

    it('org members: owners and admins manage, readers get 403, outsiders 404', async () => {
      await apiOk(b.app, 'PUT', '/api/v1/orgs/acme/members/dave', pw('carol'), { role: 'admin' }, 200);
      await apiOk(b.app, 'PUT', '/api/v1/orgs/acme/members/bob', pw('dave'), { role: 'read' }, 200);
      const members = await apiOk(b.app, 'GET', '/api/v1/orgs/acme/members', pw('dave'), undefined, 200);
      assert.deepEqual(members.map((m: any) => [m.username, m.role]), [['bob', 'read'], ['carol', 'owner'], ['dave', 'admin']]);
      apiError(await api(b.app, 'GET', '/api/v1/orgs/acme/members', pw('bob')), 403, 'DENIED');
      apiError(await api(b.app, 'PUT', '/api/v1/orgs/acme/members/bob', pw('bob'), { role: 'owner' }), 403, 'DENIED');
      apiError(await api(b.app, 'GET', '/api/v1/orgs/acme/members', pw('eve')), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'PUT', '/api/v1/orgs/acme/members/eve', pw('eve'), { role: 'owner' }), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'GET', '/api/v1/orgs/acme/members'), 401);
      assert.match(apiError(await api(b.app, 'PUT', '/api/v1/orgs/acme/members/bob', pw('carol'), { role: 'superuser' }), 400, 'INVALID'), /role/);
      apiError(await api(b.app, 'PUT', '/api/v1/orgs/acme/members/nobody', pw('carol'), { role: 'read' }), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'GET', '/api/v1/orgs/bob/members', ADMIN), 404, 'NOT_FOUND'); // a user, not an org
      // changing a role replaces it
      await apiOk(b.app, 'PUT', '/api/v1/orgs/acme/members/bob', pw('carol'), { role: 'write' }, 200);
      const again = await apiOk(b.app, 'GET', '/api/v1/orgs/acme/members', ADMIN, undefined, 200);
      assert.deepEqual(again.filter((m: any) => m.username === 'bob').map((m: any) => m.role), ['write']);
      // remove
      await apiOk(b.app, 'DELETE', '/api/v1/orgs/acme/members/bob', pw('carol'), undefined, 204);
      apiError(await api(b.app, 'DELETE', '/api/v1/orgs/acme/members/bob', pw('carol')), 404, 'NOT_FOUND');
    });

    it('owners: each caller sees their own namespace, their orgs, and owners of readable repositories', async () => {
      const names = async (a?: string) => ((await apiOk(b.app, 'GET', '/api/v1/owners', a, undefined, 200)) as { name: string }[]).map((o) => o.name).sort();
      assert.deepEqual(await names(pw('dave')), ['acme', 'dave']);
      assert.deepEqual(await names(pw('eve')), ['eve']);
      assert.deepEqual(await names(), []);
      assert.ok((await names(ADMIN)).includes('eve'));
    });
  });

  describe('repositories', () => {
    it('create with visibility and description; private by default', async () => {
      const r = await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', pw('dave'), { name: 'prod', description: 'production images' }, 201);
      assert.deepEqual(
        { name: r.name, owner: r.owner, repository: r.repository, visibility: r.visibility, description: r.description },
        { name: 'acme/prod', owner: 'acme', repository: 'prod', visibility: 'private', description: 'production images' },
      );
      const p = await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', pw('carol'), { name: 'oss', visibility: 'public' }, 201);
      assert.equal(p.visibility, 'public');
      await apiOk(b.app, 'POST', '/api/v1/owners/eve/repos', pw('eve'), { name: 'mine' }, 201);
      const shown = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod', pw('dave'), undefined, 200);
      assert.equal(shown.canManage, true);
    });

    it('who may create: manager of the owner yes; org reader 403; user on a namespace they see nothing of 404, as an unknown owner', async () => {
      await apiOk(b.app, 'PUT', '/api/v1/orgs/acme/members/bob', pw('carol'), { role: 'write' }, 200);
      apiError(await api(b.app, 'POST', '/api/v1/owners/acme/repos', pw('bob'), { name: 'x' }), 403, 'DENIED');
      apiError(await api(b.app, 'POST', '/api/v1/owners/eve/repos', pw('bob'), { name: 'x' }), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'POST', '/api/v1/owners/nosuchowner/repos', pw('bob'), { name: 'x' }), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'POST', '/api/v1/owners/acme/repos', undefined, { name: 'x' }), 401);
      apiError(await api(b.app, 'POST', '/api/v1/owners/acme/repos', pw('dave'), { name: 'prod' }), 409, 'CONFLICT');
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/owners/acme/repos', pw('dave'), { name: 'Has Spaces' }), 400, 'INVALID'), /repository name/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/owners/acme/repos', pw('dave'), { name: 'x', visibility: 'secret' }), 400, 'INVALID'), /visibility/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/owners/acme/repos', pw('dave'), { name: 'x', description: 'd'.repeat(2001) }), 400, 'INVALID'), /description/);
      // nothing called x was created
      apiError(await api(b.app, 'GET', '/api/v1/repos/acme/x', ADMIN), 404, 'NOT_FOUND');
      // bob (org write) sees the private repository but may not manage it
      const seen = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod', pw('bob'), undefined, 200);
      assert.equal(seen.canManage, false);
      await apiOk(b.app, 'DELETE', '/api/v1/orgs/acme/members/bob', pw('carol'), undefined, 204);
    });

    it('listing: only readable repositories', async () => {
      const names = async (owner: string, a?: string) => ((await apiOk(b.app, 'GET', `/api/v1/owners/${owner}/repos`, a, undefined, 200)) as { name: string }[]).map((r) => r.name).sort();
      assert.deepEqual(await names('acme', pw('dave')), ['acme/oss', 'acme/prod']);
      assert.deepEqual(await names('acme', pw('eve')), ['acme/oss']);
      assert.deepEqual(await names('acme'), ['acme/oss']);
      assert.deepEqual(await names('eve', pw('eve')), ['eve/mine']);
      // an owner the caller can see nothing of answers as a missing one
      apiError(await api(b.app, 'GET', '/api/v1/owners/eve/repos', pw('bob')), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'GET', '/api/v1/owners/nosuchowner/repos', ADMIN), 404);
    });

    it('PATCH visibility and description: managers only; the change takes effect on /v2', async () => {
      await pushImage(b.app, 'acme/prod/app', 'v1', ADMIN);
      assertError(await b.app.inject({ url: '/v2/acme/prod/app/manifests/v1' }), 401, 'UNAUTHORIZED');
      const r = await apiOk(b.app, 'PATCH', '/api/v1/repos/acme/prod', pw('dave'), { visibility: 'public', description: 'now public' }, 200);
      assert.deepEqual([r.visibility, r.description], ['public', 'now public']);
      assert.equal((await b.app.inject({ url: '/v2/acme/prod/app/manifests/v1' })).statusCode, 200);
      // eve can read it now but still not manage it
      apiError(await api(b.app, 'PATCH', '/api/v1/repos/acme/prod', pw('eve'), { visibility: 'private' }), 403, 'DENIED');
      await apiOk(b.app, 'PATCH', '/api/v1/repos/acme/prod', pw('carol'), { visibility: 'private' }, 200);
      assertError(await b.app.inject({ url: '/v2/acme/prod/app/manifests/v1' }), 401, 'UNAUTHORIZED');
      apiError(await api(b.app, 'PATCH', '/api/v1/repos/acme/prod', pw('eve'), { visibility: 'public' }), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'PATCH', '/api/v1/repos/acme/prod', undefined, { visibility: 'public' }), 404, 'NOT_FOUND');
      assert.match(apiError(await api(b.app, 'PATCH', '/api/v1/repos/acme/prod', pw('dave'), { visibility: 'hidden' }), 400, 'INVALID'), /visibility/);
      assert.match(apiError(await api(b.app, 'PATCH', '/api/v1/repos/acme/prod', pw('dave'), { name: 'renamed' }), 400, 'INVALID'), /name|unrecognized/i);
      const shown = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod', ADMIN, undefined, 200);
      assert.deepEqual([shown.visibility, shown.description], ['private', 'now public']);
    });

    it('repository members: manage-level only; roles take effect on /v2', async () => {
      assertError(await b.app.inject({ url: '/v2/acme/prod/app/manifests/v1', headers: { authorization: pw('eve') } }), 404, 'NAME_UNKNOWN');
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/eve', pw('dave'), { role: 'read' }, 200);
      assert.equal((await b.app.inject({ url: '/v2/acme/prod/app/manifests/v1', headers: { authorization: pw('eve') } })).statusCode, 200);
      assertError(await b.app.inject({ method: 'POST', url: '/v2/acme/prod/app/blobs/uploads/', headers: { authorization: pw('eve') } }), 403, 'DENIED');
      // a reader may not list or change members
      apiError(await api(b.app, 'GET', '/api/v1/repos/acme/prod/members', pw('eve')), 403, 'DENIED');
      apiError(await api(b.app, 'PUT', '/api/v1/repos/acme/prod/members/eve', pw('eve'), { role: 'admin' }), 403, 'DENIED');
      // a repository admin may
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/bob', pw('dave'), { role: 'admin' }, 200);
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/eve', pw('bob'), { role: 'write' }, 200);
      const list = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/members', pw('bob'), undefined, 200);
      assert.deepEqual(list.map((m: any) => [m.username, m.role]), [['bob', 'admin'], ['eve', 'write']]);
      assert.equal((await b.app.inject({ method: 'POST', url: '/v2/acme/prod/app/blobs/uploads/', headers: { authorization: pw('eve') } })).statusCode, 202);
      assert.match(apiError(await api(b.app, 'PUT', '/api/v1/repos/acme/prod/members/eve', pw('bob'), { role: 'god' }), 400, 'INVALID'), /role/);
      apiError(await api(b.app, 'PUT', '/api/v1/repos/acme/prod/members/ghost', pw('bob'), { role: 'read' }), 404);
      // removing takes the access away again
      await apiOk(b.app, 'DELETE', '/api/v1/repos/acme/prod/members/eve', pw('bob'), undefined, 204);
      apiError(await api(b.app, 'DELETE', '/api/v1/repos/acme/prod/members/eve', pw('bob')), 404);
      assertError(await b.app.inject({ url: '/v2/acme/prod/app/manifests/v1', headers: { authorization: pw('eve') } }), 404, 'NAME_UNKNOWN');
      await apiOk(b.app, 'DELETE', '/api/v1/repos/acme/prod/members/bob', pw('dave'), undefined, 204);
    });
  });

  describe('credentials', () => {
    it('API keys: the secret is shown once, never listed, and stored only as a hash', async () => {
      const k = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', pw('bob'), { name: 'laptop', expiresIn: '90d' }, 201);
      assert.match(k.secret, /^berth_k_[A-Za-z0-9_-]{43}$/);
      assert.equal(k.prefix, k.secret.slice(0, 12));
      assert.equal(k.kind, 'api_key');
      assert.equal(k.name, 'laptop');
      const exp = Date.parse(k.expiresAt) - Date.now();
      assert.ok(exp > 89 * 86_400_000 && exp <= 90 * 86_400_000, `expiresAt ${k.expiresAt}`);
      const listRes = await api(b.app, 'GET', '/api/v1/user/api-keys', pw('bob'));
      assert.equal(listRes.status, 200);
      assert.ok(!listRes.res.body.includes(k.secret), 'the secret is not in the list');
      for (const row of listRes.json as Record<string, unknown>[]) assert.ok(!('secret' in row), 'no secret field in the list');
      assert.deepEqual((listRes.json as { id: number }[]).map((r) => r.id), [k.id]);
      // each user sees their own only
      assert.ok(!(await api(b.app, 'GET', '/api/v1/user/api-keys', pw('eve'))).res.body.includes(k.prefix));
      apiError(await api(b.app, 'GET', '/api/v1/user/api-keys'), 401);
      apiError(await api(b.app, 'POST', '/api/v1/user/api-keys'), 401);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/user/api-keys', pw('bob'), { expiresIn: 'tomorrow' }), 400, 'INVALID'), /expiresIn/);
      apiError(await api(b.app, 'DELETE', '/api/v1/user/api-keys/abc', pw('bob')), 404);
      // the key authenticates as Bearer on the management API and as a password on /v2
      assert.equal((await apiOk(b.app, 'GET', '/api/v1/whoami', bearer(k.secret), undefined, 200)).username, 'bob');

      const ent = await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', pw('dave'), { name: 'customer-1', downloadLimit: 5 }, 201);
      // the SQLite file holds neither secret, only their SHA-256
      const dbFile = path.join(b.dir, 'berth.db');
      const db = new Database(dbFile, { readonly: true, fileMustExist: true });
      try {
        const rows = db.prepare('SELECT * FROM credentials').all() as Record<string, unknown>[];
        assert.ok(rows.length >= 2);
        const dump = JSON.stringify(rows);
        for (const s of [k.secret, ent.secret]) {
          assert.ok(!dump.includes(s), 'secret not stored');
          assert.ok(!dump.includes(s.slice(8)), 'secret body not stored');
          const hash = createHash('sha256').update(s).digest('hex');
          assert.equal(rows.filter((r) => r.secret_hash === hash).length, 1, 'stored as its SHA-256');
        }
        const users = db.prepare('SELECT username, password_hash FROM users').all() as { username: string; password_hash: string | null }[];
        for (const u of users.filter((x) => x.password_hash)) assert.match(u.password_hash!, /^\$argon2id\$/, `${u.username}: argon2id`);
      } finally {
        db.close();
      }
      for (const f of [dbFile, `${dbFile}-wal`]) {
        if (!existsSync(f)) continue;
        const bytes = readFileSync(f);
        for (const s of [k.secret, ent.secret, USER_PASSWORD, ADMIN_PASSWORD]) assert.equal(bytes.indexOf(s), -1, `${path.basename(f)} holds a secret in plain text`);
      }
    });

    it('entitlement tokens: managers create, list (without secret) and revoke; others may not', async () => {
      const t = await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', pw('carol'), { name: 'customer-2', expiresIn: '30d', downloadLimit: 10 }, 201);
      assert.match(t.secret, /^berth_t_/);
      assert.equal(t.username, 'acme/prod');
      assert.equal(t.kind, 'entitlement');
      assert.equal(t.downloadLimit, 10);
      assert.equal(t.downloadCount, 0);
      const list = await api(b.app, 'GET', '/api/v1/repos/acme/prod/tokens', pw('dave'));
      assert.equal(list.status, 200);
      assert.ok(!list.res.body.includes(t.secret));
      for (const row of list.json as Record<string, unknown>[]) assert.ok(!('secret' in row));
      assert.ok((list.json as { name: string }[]).some((r) => r.name === 'customer-2'));
      // a write member may not mint tokens; an outsider does not see the repository
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/eve', pw('dave'), { role: 'write' }, 200);
      apiError(await api(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', pw('eve'), {}), 403, 'DENIED');
      apiError(await api(b.app, 'GET', '/api/v1/repos/acme/prod/tokens', pw('eve')), 403, 'DENIED');
      await apiOk(b.app, 'DELETE', '/api/v1/repos/acme/prod/members/eve', pw('dave'), undefined, 204);
      apiError(await api(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', pw('eve'), {}), 404, 'NOT_FOUND');
      apiError(await api(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', undefined, {}), 404, 'NOT_FOUND');
      // validation
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', pw('dave'), { downloadLimit: -1 }), 400, 'INVALID'), /downloadLimit/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', pw('dave'), { downloadLimit: 'many' }), 400, 'INVALID'), /downloadLimit/);
      assert.match(apiError(await api(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', pw('dave'), { expiresIn: '3 weeks' }), 400, 'INVALID'), /expiresIn/);
      // revoke: only through its own repository
      await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', pw('dave'), { name: 'other' }, 201);
      apiError(await api(b.app, 'DELETE', `/api/v1/repos/acme/other/tokens/${t.id}`, pw('dave')), 404);
      await apiOk(b.app, 'DELETE', `/api/v1/repos/acme/prod/tokens/${t.id}`, pw('dave'), undefined, 204);
      const after = (await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/tokens', pw('dave'), undefined, 200)) as { id: number; revokedAt: string | null }[];
      assert.ok(after.find((r) => r.id === t.id)!.revokedAt);
    });

    it('a registry bearer token (JWT from /v2/token) is not a management credential', async () => {
      const q = '/v2/token?service=berth&scope=repository:admin/x/app:pull';
      const jwt = JSON.parse((await b.app.inject({ url: q, headers: { authorization: ADMIN } })).body).token as string;
      // it is good on /v2 …
      assert.equal((await b.app.inject({ url: '/v2/', headers: { authorization: bearer(jwt) } })).statusCode, 200);
      // … but may not mint API keys or site administrators on /api/v1
      apiError(await api(b.app, 'POST', '/api/v1/user/api-keys', bearer(jwt), { name: 'from-jwt' }), 401, 'UNAUTHORIZED');
      apiError(await api(b.app, 'POST', '/api/v1/users', bearer(jwt), { username: 'mallory', password: USER_PASSWORD, siteAdmin: true }), 401, 'UNAUTHORIZED');
      apiError(await api(b.app, 'GET', '/api/v1/whoami', bearer(jwt)), 401, 'UNAUTHORIZED');
      const users = (await apiOk(b.app, 'GET', '/api/v1/users', ADMIN, undefined, 200)) as { username: string }[];
      assert.ok(!users.some((u) => u.username === 'mallory'));
      const keys = (await apiOk(b.app, 'GET', '/api/v1/user/api-keys', ADMIN, undefined, 200)) as { name: string }[];
      assert.ok(!keys.some((k) => k.name === 'from-jwt'));
    });

    it('a user cannot revoke another user’s API key (404), a site administrator can', async () => {
      const k = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', pw('eve'), {}, 201);
      apiError(await api(b.app, 'DELETE', `/api/v1/user/api-keys/${k.id}`, pw('bob')), 404);
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', bearer(k.secret))).status, 200);
      await apiOk(b.app, 'DELETE', `/api/v1/user/api-keys/${k.id}`, ADMIN, undefined, 204);
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', bearer(k.secret))).status, 401);
    });
  });

  it('whoami: user, entitlement token, anonymous', async () => {
    const me = await apiOk(b.app, 'GET', '/api/v1/whoami', pw('bob'), undefined, 200);
    assert.deepEqual({ kind: me.kind, username: me.username, siteAdmin: me.siteAdmin, email: me.email }, { kind: 'user', username: 'bob', siteAdmin: false, email: 'bob@example.com' });
    assert.equal((await apiOk(b.app, 'GET', '/api/v1/whoami', ADMIN, undefined, 200)).siteAdmin, true);
    assert.deepEqual(await apiOk(b.app, 'GET', '/api/v1/whoami', undefined, undefined, 200), { kind: 'anonymous' });
    const t = await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', ADMIN, {}, 201);
    assert.deepEqual(await apiOk(b.app, 'GET', '/api/v1/whoami', basic('token', t.secret), undefined, 200), { kind: 'entitlement' });
    apiError(await api(b.app, 'GET', '/api/v1/whoami', basic('bob', 'wrong-password')), 401);
    apiError(await api(b.app, 'GET', '/api/v1/whoami', 'Bearer berth_k_not-a-key'), 401);
  });

  it('GET /api/v1/openapi.json is a valid OpenAPI document listing the paths', async () => {
    const res = await b.app.inject({ url: '/api/v1/openapi.json' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const doc = JSON.parse(res.body) as { openapi: string; info: { title: string }; paths: Record<string, Record<string, any>> };
    assert.match(doc.openapi, /^3\.\d+\.\d+$/);
    assert.ok(doc.info.title);
    for (const p of [
      '/api/v1/whoami',
      '/api/v1/users',
      '/api/v1/orgs',
      '/api/v1/orgs/{org}/members/{username}',
      '/api/v1/owners/{owner}/repos',
      '/api/v1/repos/{owner}/{repo}',
      '/api/v1/repos/{owner}/{repo}/members/{username}',
      '/api/v1/repos/{owner}/{repo}/tokens',
      '/api/v1/repos/{owner}/{repo}/tokens/{id}',
      '/api/v1/user/api-keys',
      '/api/v1/user/api-keys/{id}',
      '/api/v1/repos/{owner}/{repo}/import',
      '/api/v1/imports/{id}',
      '/api/v1/events',
      '/api/v1/repos/{owner}/{repo}/tags',
      '/api/v1/repos/{owner}/{repo}/manifest',
    ]) {
      assert.ok(doc.paths[p], `path ${p}`);
    }
    assert.ok(doc.paths['/api/v1/repos/{owner}/{repo}/import']!.post.requestBody.content['application/octet-stream']);
    assert.ok(doc.paths['/api/v1/users']!.post.requestBody.content['application/json'].schema.properties.username);
    assert.deepEqual(
      doc.paths['/api/v1/repos/{owner}/{repo}']!.patch.parameters.map((p: { name: string }) => p.name),
      ['owner', 'repo'],
    );
    assert.ok(doc.paths['/api/v1/repos/{owner}/{repo}/tokens']!.post.responses['201']);
    // every operation documented by the API exists: a GET on each GET path answers (not 404 "no such endpoint");
    // one with a required query parameter answers 400 without it
    for (const [p, ops] of Object.entries(doc.paths)) {
      if (!ops.get || p.includes('{')) continue;
      if ((ops.get.parameters ?? []).some((x: { in: string; required?: boolean }) => x.in === 'query' && x.required)) {
        const r = await b.app.inject({ url: p, headers: { authorization: ADMIN } });
        assert.equal(r.statusCode, 400, `${p} without its required query parameter: ${r.body}`);
        continue;
      }
      const r = await b.app.inject({ url: p, headers: { authorization: ADMIN } });
      assert.equal(r.statusCode, 200, `${p}: ${r.body}`);
    }
  });

  describe('repositories created by pushing', () => {
    it('a push under an owner you may manage creates the repository, private', async () => {
      await pushImage(b.app, 'eve/fresh/app', 'v1', pw('eve'));
      const shown = await apiOk(b.app, 'GET', '/api/v1/repos/eve/fresh', pw('eve'), undefined, 200);
      assert.equal(shown.visibility, 'private');
      assert.equal(shown.canManage, true);
      assertError(await b.app.inject({ url: '/v2/eve/fresh/app/manifests/v1' }), 401, 'UNAUTHORIZED');
      assertError(await b.app.inject({ url: '/v2/eve/fresh/app/manifests/v1', headers: { authorization: pw('bob') } }), 404, 'NAME_UNKNOWN');
      // an org admin may create under the org, via an API key too
      const k = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', pw('dave'), {}, 201);
      await pushImage(b.app, 'acme/pushed/app', 'v1', basic('dave', k.secret));
      assert.equal((await apiOk(b.app, 'GET', '/api/v1/repos/acme/pushed', ADMIN, undefined, 200)).visibility, 'private');
    });

    it('a push under an owner you cannot manage is refused and creates nothing', async () => {
      const start = (name: string, authz?: string) => b.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/`, headers: authz ? { authorization: authz } : {} });
      assertError(await start('acme/sneaky/app', pw('eve')), 404, 'NAME_UNKNOWN');
      assertError(await start('bob/sneaky/app', pw('eve')), 404, 'NAME_UNKNOWN');
      assertError(await start('nosuchowner/sneaky/app', pw('eve')), 404, 'NAME_UNKNOWN');
      assertError(await start('acme/sneaky/app'), 401, 'UNAUTHORIZED');
      // a repository-level admin of acme/prod may not create other repositories in acme
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/bob', ADMIN, { role: 'admin' }, 200);
      assertError(await start('acme/sneaky/app', pw('bob')), 404, 'NAME_UNKNOWN');
      assert.equal((await start('acme/prod/newimage', pw('bob'))).statusCode, 202, 'but may push new images into acme/prod');
      // an entitlement token may create nothing
      const t = await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', ADMIN, {}, 201);
      assertError(await start('acme/sneaky/app', basic('token', t.secret)), 404, 'NAME_UNKNOWN');
      for (const r of ['acme/sneaky', 'bob/sneaky', 'nosuchowner/sneaky']) apiError(await api(b.app, 'GET', `/api/v1/repos/${r}`, ADMIN), 404);
    });
  });
});
