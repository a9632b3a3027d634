/**
 * Out of space (docs/security.md#resource-limits), for real: Berth's data folder on a small
 * tmpfs that is filled up. Blob uploads and database writes answer 507 STORAGE_FULL (never
 * 500 UNKNOWN), reads keep working, and writes work again once space is freed. PostgreSQL's
 * disk_full (SQLSTATE 53100) is raised by a real trigger, as PostgreSQL raises it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { loadConfig } from '../../src/config/schema.ts';
import { type Berth, createBerth } from '../../src/main.ts';
import { tempDir } from '../helpers/e2e.ts';

const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ADMIN_PASSWORD = 'limits-admin-password';
const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function assertFull(res: LightMyRequestResponse): void {
  assert.equal(res.statusCode, 507, res.body);
  const err = (JSON.parse(res.body) as { errors: { code: string; message: string }[] }).errors[0]!;
  assert.equal(err.code, 'STORAGE_FULL');
  assert.match(err.message, /out of storage space/);
}

function pushBlob(app: FastifyInstance, blob: Buffer): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'POST',
    url: `/v2/acme/prod/app/blobs/uploads/?digest=${sha256(blob)}`,
    headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' },
    payload: blob,
  });
}

function createOrg(app: FastifyInstance, name: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/api/v1/orgs', headers: { authorization: ADMIN, 'content-type': 'application/json' }, payload: { name } });
}

/** Writes a file until the filesystem is full; returns its path. */
async function fill(dir: string): Promise<string> {
  const file = path.join(dir, 'filler');
  const fh = await open(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) await fh.write(chunk);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    // and the last few bytes
    for (let n = 4096; n >= 1; n = Math.floor(n / 2)) {
      try {
        for (;;) await fh.write(chunk.subarray(0, n));
      } catch {
        /* next smaller */
      }
    }
  } finally {
    await fh.close();
  }
  return file;
}

test('a full disk (tmpfs): blob uploads and SQLite writes answer 507 STORAGE_FULL, reads work, writes resume after', async (t) => {
  const mnt = await mkdtemp(path.join(tmpdir(), 'berth-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt]);
  let berth: Berth | undefined;
  t.after(async () => {
    await berth?.close();
    execFileSync('umount', [mnt]);
    await rmdir(mnt);
  });
  berth = await createBerth(loadConfig({ env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD, BERTH_DATA: path.join(mnt, 'data'), BERTH_EVENTS_ENABLED: 'false' } }));
  const app = berth.app;
  await berth.accessStore.createOwner('acme', 'org');
  const before = randomBytes(1000);
  assert.equal((await pushBlob(app, before)).statusCode, 201);

  const filler = await fill(mnt);

  // a blob upload: monolithic, and a chunk into a session opened before the disk filled
  assertFull(await pushBlob(app, randomBytes(256 * 1024)));
  // the database: every write either fits in pages SQLite already has, or answers 507
  let full = 0;
  for (let i = 0; i < 3000 && full === 0; i++) {
    const r = await createOrg(app, `org-${i}`);
    if (r.statusCode === 507) {
      assertFull(r);
      full++;
    } else {
      assert.equal(r.statusCode, 201, r.body);
    }
  }
  assert.equal(full, 1, 'SQLite ran out of space and said so');

  // reads keep working
  const get = await app.inject({ url: `/v2/acme/prod/app/blobs/${sha256(before)}`, headers: { authorization: ADMIN } });
  assert.equal(get.statusCode, 200);
  assert.deepEqual(get.rawPayload, before);
  assert.equal((await app.inject({ url: '/api/v1/owners', headers: { authorization: ADMIN } })).statusCode, 200);

  // space comes back: writes resume, no restart
  await rm(filler);
  const after = randomBytes(256 * 1024);
  const pushed = await pushBlob(app, after);
  assert.equal(pushed.statusCode, 201, pushed.body);
  assert.equal((await createOrg(app, 'after-the-flood')).statusCode, 201);
  const back = await app.inject({ url: `/v2/acme/prod/app/blobs/${sha256(after)}`, headers: { authorization: ADMIN } });
  assert.deepEqual(back.rawPayload, after);
});

test('PostgreSQL disk_full (53100) answers 507 STORAGE_FULL; writes resume when it clears', async (t) => {
  const schema = `berth_full_${randomBytes(5).toString('hex')}`;
  const q = async (text: string) => {
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };
  await q(`CREATE SCHEMA ${schema}`);
  t.after(() => q(`DROP SCHEMA ${schema} CASCADE`));
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const dir = await tempDir(t, 'limits-pgfull');
  const berth = await createBerth(
    loadConfig({ env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD, BERTH_DATA: dir, BERTH_METADATA_DRIVER: 'postgres', BERTH_POSTGRES_URL: url.toString() } }),
  );
  t.after(() => berth.close());
  await q(`CREATE FUNCTION ${schema}.raise_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`);
  await q(`CREATE TRIGGER disk_full_now BEFORE INSERT ON ${schema}.owners FOR EACH ROW EXECUTE FUNCTION ${schema}.raise_disk_full()`);
  assertFull(await createOrg(berth.app, 'acme'));
  assert.equal((await berth.app.inject({ url: '/api/v1/owners', headers: { authorization: ADMIN } })).statusCode, 200, 'reads work');
  await q(`DROP TRIGGER disk_full_now ON ${schema}.owners`);
  assert.equal((await createOrg(berth.app, 'acme')).statusCode, 201);
});
