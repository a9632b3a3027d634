import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
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
