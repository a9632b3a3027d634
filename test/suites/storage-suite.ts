/**
 * The BlobStore contract (src/storage/blob-store.ts), run once per driver:
 *   runStorageSuite('fs', async () => ({ store, cleanup }))
 * Every test starts from an empty store and checks that nothing is left behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BlobNotFoundError, type BlobStore, type StoredBlob, shardOf } from '../../src/storage/blob-store.ts';

export interface StorageFixture {
  store: BlobStore;
  cleanup(): Promise<void>;
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

async function* chunksOf(b: Buffer, size = 7777): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export function runStorageSuite(driver: string, open: () => Promise<StorageFixture>): void {
  describe(`BlobStore contract: ${driver}`, () => {
    const withStore = (name: string, fn: (store: BlobStore) => Promise<void>) =>
      test(name, async () => {
        const fx = await open();
        try {
          await fn(fx.store);
        } catch (e) {
          await fx.cleanup().catch(() => undefined); // report the test's own failure, not leftovers
          throw e;
        }
        await fx.cleanup();
      });

    withStore('an upload appended in chunks commits to a readable blob', async (store) => {
      const data = randomBytes(100_000);
      const digest = sha256(data);
      await store.createUpload('u1');
      assert.equal(await store.uploadSize('u1'), 0);
      let size = await store.appendUpload('u1', 0, chunksOf(data.subarray(0, 40_000)));
      assert.equal(size, 40_000);
      size = await store.appendUpload('u1', size, chunksOf(data.subarray(40_000)));
      assert.equal(size, 100_000);
      assert.equal(await store.uploadSize('u1'), 100_000);
      assert.equal(await store.stat(digest), undefined, 'nothing visible before commit');
      await store.sealUpload('u1');
      await store.sealUpload('u1'); // idempotent
      assert.deepEqual(await readAll(await store.readUpload('u1')), data);
      await store.commitUpload('u1', digest);
      assert.deepEqual(await store.stat(digest), { size: 100_000 });
      assert.deepEqual(await readAll(await store.read(digest)), data);
      assert.equal(await store.uploadSize('u1'), undefined, 'upload gone after commit');
      assert.deepEqual(await store.listUploads(), []);
      await store.delete(digest);
    });

    withStore('ranged reads return exactly the inclusive range', async (store) => {
      const data = randomBytes(5000);
      const digest = sha256(data);
      await store.createUpload('r');
      await store.appendUpload('r', 0, chunksOf(data));
      await store.commitUpload('r', digest);
      assert.deepEqual(await readAll(await store.read(digest, { start: 0, end: 0 })), data.subarray(0, 1));
      assert.deepEqual(await readAll(await store.read(digest, { start: 100, end: 4999 })), data.subarray(100));
      assert.deepEqual(await readAll(await store.read(digest, { start: 1234, end: 2345 })), data.subarray(1234, 2346));
      await store.delete(digest);
    });

    withStore('a failing source leaves the upload at its previous size', async (store) => {
      await store.createUpload('f');
      await store.appendUpload('f', 0, chunksOf(Buffer.from('hello ')));
      async function* failing(): AsyncGenerator<Buffer> {
        yield Buffer.from('partial data');
        throw new Error('client went away');
      }
      await assert.rejects(store.appendUpload('f', 6, failing()), /client went away/);
      assert.equal(await store.uploadSize('f'), 6);
      assert.equal(await store.appendUpload('f', 6, chunksOf(Buffer.from('world'))), 11, 'the upload goes on after a failed chunk');
      await store.sealUpload('f');
      assert.deepEqual(await readAll(await store.readUpload('f')), Buffer.from('hello world'));
      await store.removeUpload('f');
      assert.equal(await store.uploadSize('f'), undefined);
    });

    withStore('appending at the wrong offset is refused and changes nothing', async (store) => {
      await store.createUpload('o');
      await store.appendUpload('o', 0, chunksOf(Buffer.from('abc')));
      await assert.rejects(store.appendUpload('o', 1, chunksOf(Buffer.from('zzz'))));
      assert.equal(await store.uploadSize('o'), 3);
      await store.removeUpload('o');
    });

    withStore('committing a digest that already exists is idempotent (dedupe)', async (store) => {
      const data = Buffer.from('same bytes twice');
      const digest = sha256(data);
      for (const id of ['d1', 'd2']) {
        await store.createUpload(id);
        await store.appendUpload(id, 0, chunksOf(data));
        await store.commitUpload(id, digest);
      }
      assert.deepEqual(await readAll(await store.read(digest)), data);
      assert.deepEqual(await store.listUploads(), []);
      await store.delete(digest);
    });

    withStore('missing blobs and uploads are reported as BlobNotFoundError', async (store) => {
      const digest = sha256(Buffer.from('never stored'));
      assert.equal(await store.stat(digest), undefined);
      await assert.rejects(store.read(digest), BlobNotFoundError);
      await assert.rejects(store.readUpload('nope'), BlobNotFoundError);
      await assert.rejects(store.appendUpload('nope', 0, chunksOf(Buffer.from('x'))), BlobNotFoundError);
      await assert.rejects(store.commitUpload('nope', digest), BlobNotFoundError);
      await store.delete(digest); // absent: resolves
      await store.removeUpload('nope'); // absent: resolves
    });

    withStore('an empty blob can be stored and read', async (store) => {
      const digest = sha256(Buffer.alloc(0));
      await store.createUpload('e');
      await store.commitUpload('e', digest);
      assert.deepEqual(await store.stat(digest), { size: 0 });
      await store.delete(digest);
      assert.equal(await store.stat(digest), undefined);
    });

    withStore('uploads larger than a part span several parts and a tail', async (store) => {
      const data = randomBytes(12 * 1024 * 1024 + 12345);
      const digest = sha256(data);
      await store.createUpload('big');
      let size = 0;
      for (let i = 0; i < data.length; i += 3 * 1024 * 1024 + 7) {
        size = await store.appendUpload('big', size, chunksOf(data.subarray(i, i + 3 * 1024 * 1024 + 7), 64 * 1024));
      }
      assert.equal(size, data.length);
      await store.commitUpload('big', digest);
      assert.deepEqual(await store.stat(digest), { size: data.length });
      const back = await readAll(await store.read(digest));
      assert.equal(sha256(back), digest);
      assert.deepEqual(await readAll(await store.read(digest, { start: 5 * 1024 * 1024 - 2, end: 5 * 1024 * 1024 + 2 })), data.subarray(5 * 1024 * 1024 - 2, 5 * 1024 * 1024 + 3));
      await store.delete(digest);
    });

    withStore('one long append (many write batches and syncs behind them), a long failing one rolled back exactly, then resumed and committed', async (store) => {
      const data = randomBytes(20 * 1024 * 1024 + 333);
      await store.createUpload('long');
      assert.equal(await store.appendUpload('long', 0, chunksOf(data, 64 * 1024)), data.length);
      async function* failingLate(): AsyncGenerator<Buffer> {
        yield* chunksOf(randomBytes(11 * 1024 * 1024), 64 * 1024);
        throw new Error('client went away late');
      }
      await assert.rejects(store.appendUpload('long', data.length, failingLate()), /client went away late/);
      assert.equal(await store.uploadSize('long'), data.length);
      // The client resumes: its next chunk and the commit go on from the last good size (on S3
      // the failed append's parts are in the multipart upload and must be left out).
      const more = randomBytes(6 * 1024 * 1024 + 5);
      const whole = sha256(Buffer.concat([data, more]));
      assert.equal(await store.appendUpload('long', data.length, chunksOf(more, 64 * 1024)), data.length + more.length);
      await store.commitUpload('long', whole);
      assert.equal(sha256(await readAll(await store.read(whole))), whole);
      await store.delete(whole);
    });

    withStore('positional reads (where the driver offers them) read in place and end at the size', async (store) => {
      if (!store.openReader) return;
      const data = randomBytes(10_000);
      const digest = sha256(data);
      await store.createUpload('p');
      await store.appendUpload('p', 0, chunksOf(data));
      await store.commitUpload('p', digest);
      const r = await store.openReader(digest);
      try {
        const buf = Buffer.alloc(4096);
        assert.equal(await r.read(buf, 0), 4096);
        assert.deepEqual(buf, data.subarray(0, 4096));
        assert.equal(await r.read(buf, 8000), 2000, 'a short read at the end');
        assert.deepEqual(buf.subarray(0, 2000), data.subarray(8000));
        assert.equal(await r.read(buf, 10_000), 0, 'nothing past the end');
      } finally {
        await r.close();
      }
      await assert.rejects(store.openReader(sha256(Buffer.from('never stored'))), BlobNotFoundError);
      await store.delete(digest);
    });

    withStore('listUploads lists open uploads only', async (store) => {
      await store.createUpload('a1');
      await store.createUpload('a2');
      assert.deepEqual((await store.listUploads()).sort(), ['a1', 'a2']);
      await store.removeUpload('a1');
      await store.removeUpload('a2');
      assert.deepEqual(await store.listUploads(), []);
    });

    withStore('generations of one digest are separate objects: deleting one leaves the other', async (store) => {
      const data = randomBytes(3000);
      const digest = sha256(data);
      await store.createUpload('g0');
      await store.appendUpload('g0', 0, chunksOf(data));
      await store.commitUpload('g0', digest);
      await store.createUpload('g1');
      await store.appendUpload('g1', 0, chunksOf(data));
      await store.commitUpload('g1', digest, 1);
      assert.deepEqual(await store.stat(digest, 1), { size: 3000 });
      assert.deepEqual(await store.stat(digest, 0), { size: 3000 });
      await store.delete(digest); // generation 0, as collected
      assert.equal(await store.stat(digest), undefined);
      assert.deepEqual(await readAll(await store.read(digest, undefined, 1)), data, 'generation 1 intact');
      assert.deepEqual(await readAll(await store.read(digest, { start: 10, end: 19 }, 1)), data.subarray(10, 20));
      await assert.rejects(store.read(digest, undefined, 2), BlobNotFoundError);
      await store.delete(digest, 1);
      await store.delete(digest, 1); // idempotent
      assert.equal(await store.stat(digest, 1), undefined);
    });

    withStore('listBlobs lists every generation in shard order, with size and time; deleteBlobs removes many at once', async (store) => {
      const started = Date.now() - 60_000; // object stores keep whole seconds, clocks differ a little
      const blobs = Array.from({ length: 5 }, (_, i) => randomBytes(100 + i));
      const refs: { digest: string; generation: number }[] = [];
      for (const [i, data] of blobs.entries()) {
        const digest = sha256(data);
        const generation = i === 4 ? 3 : 0;
        await store.createUpload(`l${i}`);
        await store.appendUpload(`l${i}`, 0, chunksOf(data));
        await store.commitUpload(`l${i}`, digest, generation);
        refs.push({ digest, generation });
      }
      const listAll = async () => {
        const out: StoredBlob[] = [];
        for await (const b of store.listBlobs()) out.push(b);
        return out;
      };
      const listed = await listAll();
      assert.deepEqual(
        listed.map((b) => `${b.digest}/${b.generation}/${b.size}`).sort(),
        refs.map((r, i) => `${r.digest}/${r.generation}/${100 + i}`).sort(),
      );
      const shards = listed.map((b) => shardOf(b.digest));
      assert.deepEqual(shards, [...shards].sort(), 'in shard order');
      assert.ok(listed.every((b) => b.modifiedAt >= started && b.modifiedAt <= Date.now() + 60_000), 'modification times');
      await store.deleteBlobs([...refs, { digest: sha256(randomBytes(8)), generation: 0 }]); // an absent one is fine
      assert.deepEqual(await listAll(), []);
      await store.deleteBlobs([]);
    });
  });
}
