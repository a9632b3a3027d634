import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../src/config/schema.ts';
import { createBerth } from '../../src/main.ts';

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

test('expire removes idle sessions and data orphaned by a crash, and keeps fresh sessions', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-expiry-'));
  const berth = await createBerth(loadConfig({ env: {}, overrides: { data: dir } }));
  try {
    await berth.accessStore.createOwner('acme', 'org');
    const { uploads } = berth.registry;
    const old = await uploads.start('acme/prod/app');
    await uploads.append('acme/prod/app', old.id, once(Buffer.from('half a layer')));
    // What a crash in the middle of a monolithic upload leaves: data without a session.
    await writeFile(path.join(dir, 'storage', 'uploads', 'crashed-0000'), 'partial');

    await sleep(5);
    const cutoff = Date.now();
    await sleep(5);
    const fresh = await uploads.start('acme/prod/app');
    assert.equal(await uploads.expire(0), 0, 'data without a session may be another node writing it: kept for one sweep');
    assert.equal(await uploads.expire(0), 1, 'only the orphaned data goes when no session is old enough');
    assert.equal((await uploads.status('acme/prod/app', old.id)).size, 12, 'sessions younger than the cutoff stay');
    assert.ok(!(await readdir(path.join(dir, 'storage', 'uploads'))).includes('crashed-0000'), 'orphaned data removed');

    const removed = await uploads.expire(cutoff);
    assert.equal(removed, 1);
    await assert.rejects(uploads.status('acme/prod/app', old.id), { code: 'BLOB_UPLOAD_UNKNOWN' });
    assert.equal((await uploads.status('acme/prod/app', fresh.id)).size, 0, 'the session started after the cutoff stays');
    assert.deepEqual((await readdir(path.join(dir, 'storage', 'uploads'))).sort(), [fresh.id]);
  } finally {
    await berth.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a chunked upload survives a restart: the hash is recomputed from the stored bytes', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-restart-'));
  const config = loadConfig({ env: {}, overrides: { data: dir } });
  const data = Buffer.concat([Buffer.from('first chunk;'), Buffer.from('second chunk')]);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  let id: string;
  {
    const berth = await createBerth(config);
    await berth.accessStore.createOwner('acme', 'org');
    const s = await berth.registry.uploads.start('acme/prod/app');
    id = s.id;
    await berth.registry.uploads.append('acme/prod/app', id, once(data.subarray(0, 12)));
    await berth.close();
  }
  const berth = await createBerth(config);
  try {
    await berth.registry.uploads.append('acme/prod/app', id, once(data.subarray(12)), { start: 12, end: data.length - 1 });
    assert.equal(await berth.registry.uploads.complete('acme/prod/app', id, digest, undefined), digest);
    const blob = await berth.registry.blobs.stat('acme/prod/app', digest);
    assert.equal(blob.size, data.length);
  } finally {
    await berth.close();
    await rm(dir, { recursive: true, force: true });
  }
});
