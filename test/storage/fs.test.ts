import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
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

test('a write-behind sync that fails fails the append (a later sync on the same file would report success)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-fs-'));
  const store = new FsBlobStore(dir);
  await store.init();
  // FileHandle is not exported: patch its prototype through an open handle
  const probe = await open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { datasync(): Promise<void> };
  await probe.close();
  const real = proto.datasync;
  let calls = 0;
  proto.datasync = async function (this: unknown) {
    if (++calls === 1) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    return real.call(this);
  };
  try {
    await store.createUpload('u');
    const data = randomBytes(40 * 1024 * 1024);
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
    }
    await assert.rejects(store.appendUpload('u', 0, chunks()), /EIO/);
    assert.equal(await store.uploadSize('u'), 0, 'rolled back');
    // after an acknowledged append, a failed sync may concern its bytes too: the data goes
    assert.equal(await store.appendUpload('u', 0, chunks()), data.length);
    calls = 0;
    await assert.rejects(store.appendUpload('u', data.length, chunks()), /EIO/);
    assert.equal(await store.uploadSize('u'), undefined, 'the upload is gone: the client starts over');
  } finally {
    proto.datasync = real;
    await rm(dir, { recursive: true, force: true });
  }
});
