/**
 * Upload-session caps and file modes (docs/security.md#resource-limits): open sessions are
 * capped per user and per repository with 429 TOOMANYREQUESTS, a refused POST leaves nothing
 * behind; everything Berth writes is owner-only whatever the umask.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config/schema.ts';
import { createBerth } from '../../src/main.ts';
import { tempDir } from '../helpers/e2e.ts';

const ADMIN_PASSWORD = 'limits-admin-password';
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const ADMIN = basic('admin', ADMIN_PASSWORD);

async function post(app: FastifyInstance, image: string, auth: string) {
  return app.inject({ method: 'POST', url: `/v2/${image}/blobs/uploads/`, headers: { authorization: auth } });
}

test('open upload sessions are capped per user and per repository; refused POSTs leave nothing behind', async (t) => {
  const dir = await tempDir(t, 'limits-uploads');
  const berth = await createBerth(
    loadConfig({ env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD, BERTH_DATA: dir, BERTH_UPLOAD_MAX_SESSIONS_PER_USER: '3', BERTH_UPLOAD_MAX_SESSIONS_PER_REPOSITORY: '4' } }),
  );
  t.after(() => berth.close());
  const app = berth.app;
  await berth.accessStore.createOwner('acme', 'org');
  const uploadsDir = path.join(dir, 'storage', 'uploads');
  const files = async () => (await readdir(uploadsDir)).length;

  const mine: string[] = [];
  for (const image of ['acme/one/a', 'acme/one/b', 'acme/two/a']) {
    const r = await post(app, image, ADMIN);
    assert.equal(r.statusCode, 202, r.body);
    mine.push(String(r.headers.location));
  }
  const refused = await post(app, 'acme/three/a', ADMIN);
  assert.equal(refused.statusCode, 429, refused.body);
  const err = (JSON.parse(refused.body) as { errors: { code: string; message: string }[] }).errors[0]!;
  assert.equal(err.code, 'TOOMANYREQUESTS');
  assert.match(err.message, /you have 3 upload sessions open/);
  assert.equal(await files(), 3, 'no file for the refused session');
  assert.equal(await berth.meta.countUploads({ startedBy: 'user:1' }), 3);

  // a monolithic push (no session) is not counted and still works at the cap
  const blob = Buffer.from('monolithic');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const mono = await app.inject({ method: 'POST', url: `/v2/acme/one/a/blobs/uploads/?digest=${digest}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: blob });
  assert.equal(mono.statusCode, 201, mono.body);

  // finishing or cancelling one frees a slot
  assert.equal((await app.inject({ method: 'DELETE', url: mine.shift()!, headers: { authorization: ADMIN } })).statusCode, 204);
  const again = await post(app, 'acme/one/a', ADMIN);
  assert.equal(again.statusCode, 202, again.body);

  // per repository: acme/one now has 2 of the admin's sessions; another user adds 2 more
  assert.equal((await app.inject({ method: 'POST', url: '/api/v1/users', headers: { authorization: ADMIN, 'content-type': 'application/json' }, payload: { username: 'bob', password: 'bob-password-1' } })).statusCode, 201);
  assert.equal((await app.inject({ method: 'PUT', url: '/api/v1/orgs/acme/members/bob', headers: { authorization: ADMIN, 'content-type': 'application/json' }, payload: { role: 'write' } })).statusCode, 200);
  const BOB = basic('bob', 'bob-password-1');
  for (let i = 0; i < 2; i++) assert.equal((await post(app, `acme/one/bob${i}`, BOB)).statusCode, 202);
  const full = await post(app, 'acme/one/c', BOB);
  assert.equal(full.statusCode, 429, full.body);
  assert.match(full.body, /this repository has 4 upload sessions open/);
  assert.equal((await post(app, 'acme/two/bob', BOB)).statusCode, 202, 'another repository is not affected');
  assert.equal(await files(), 3 + 3, 'only the accepted sessions have files');
});

test('files and folders are owner-only (0700 / 0600) even under umask 022', async (t) => {
  const old = process.umask(0o022);
  t.after(() => process.umask(old));
  const parent = await tempDir(t, 'limits-modes');
  const dir = path.join(parent, 'data'); // created by Berth
  const berth = await createBerth(loadConfig({ env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD, BERTH_DATA: dir } }));
  t.after(() => berth.close());
  await berth.accessStore.createOwner('acme', 'org');
  const blob = Buffer.from('a blob of acme');
  const digest = createHash('sha256').update(blob).digest('hex');
  const put = await berth.app.inject({ method: 'POST', url: `/v2/acme/prod/app/blobs/uploads/?digest=sha256:${digest}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: blob });
  assert.equal(put.statusCode, 201, put.body);
  const session = await post(berth.app, 'acme/prod/app', ADMIN);
  const id = String(session.headers.location).split('/').pop()!.split('?')[0]!;

  const mode = async (p: string) => (await stat(p)).mode & 0o777;
  assert.equal(await mode(dir), 0o700, 'data folder');
  for (const f of ['berth.db', 'berth.db-wal', 'berth.db-shm', 'berth.kek']) assert.equal(await mode(path.join(dir, f)), 0o600, f);
  for (const d of ['storage/blobs', 'storage/uploads', `storage/blobs/sha256/${digest.slice(0, 2)}`]) assert.equal(await mode(path.join(dir, d)), 0o700, d);
  assert.equal(await mode(path.join(dir, 'storage/blobs/sha256', digest.slice(0, 2), digest)), 0o600, 'blob file');
  assert.equal(await mode(path.join(dir, 'storage/uploads', id)), 0o600, 'upload file');
});
