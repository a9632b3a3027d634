import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { FsBlobStore } from '../../src/storage/fs.ts';
import { runStorageSuite } from '../suites/storage-suite.ts';

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  return out;
}

runStorageSuite('fs', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-fs-'));
  const store = new FsBlobStore(dir);
  await store.init();
  return {
    store,
    async cleanup() {
      const left = await listFiles(dir);
      await rm(dir, { recursive: true, force: true });
      assert.deepEqual(left, [], 'the test left files behind');
    },
  };
});

test('a blob shard folder removed behind the store is made again on the next commit', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-fs-'));
  try {
    const store = new FsBlobStore(dir);
    await store.init();
    const put = async (id: string, digest: string) => {
      await store.createUpload(id);
      await store.appendUpload(id, 0, Readable.from([Buffer.from(id)]));
      await store.commitUpload(id, digest);
    };
    await put('one', `sha256:ab${'1'.repeat(62)}`);
    await rm(path.join(dir, 'blobs'), { recursive: true, force: true }); // an operator's clean-up
    await put('two', `sha256:ab${'2'.repeat(62)}`);
    assert.deepEqual(await store.stat(`sha256:ab${'2'.repeat(62)}`), { size: 3 });
    await assert.rejects(store.commitUpload('gone', `sha256:ab${'3'.repeat(62)}`), /upload gone/, 'a missing upload is still reported as missing');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
