/**
 * The storage reconciler ([POST /api/v1/gc/reconcile], `gc.reconcile`) and the batched GC
 * sweep's recovery (`gc.resweep`), on fs + SQLite and on S3 (Ceph) + PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CreateMultipartUploadCommand } from '@aws-sdk/client-s3';
import type { BlobStore } from '../../src/storage/blob-store.ts';
import type { S3BlobStore } from '../../src/storage/s3.ts';
import type { GcStore } from '../../src/metadata/gc-store.ts';
import { ADMIN, apiOk, pushImage, sha256 } from '../events/helpers.ts';
import { openLifecycleBerth, type LifecycleBerth } from './helpers.ts';

async function storeRaw(store: BlobStore, data: Buffer, generation = 0): Promise<string> {
  const digest = sha256(data);
  const id = `raw-${randomBytes(6).toString('hex')}`;
  await store.createUpload(id);
  await store.appendUpload(id, 0, (async function* () {
    yield data;
  })());
  await store.sealUpload(id);
  await store.commitUpload(id, digest, generation);
  return digest;
}

async function readAll(s: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

for (const combo of [
  { name: 'fs + sqlite', postgres: false, s3: false },
  { name: 's3 + postgres', postgres: true, s3: true },
]) {
  describe(`storage reconciler (${combo.name})`, () => {
    let l: LifecycleBerth;
    before(async () => {
      l = await openLifecycleBerth({ postgres: combo.postgres, s3: combo.s3, gc: { graceSeconds: 0, reconcileMinAgeSeconds: 3600 } });
      await l.berth.registry.jobs.stop(); // the tests drive GC and the reconciler themselves
      await apiOk(l.berth.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    });
    after(() => l.close());

    test('reports orphans and missing bytes; a dry run changes nothing; apply deletes only old orphans, never a re-upload', async () => {
      const store = l.berth.store;
      const img = await pushImage(l.berth.app, 'acme/rec/app', 'v1');
      const manifest = JSON.parse(img.bytes.toString()) as { config: { digest: string }; layers: { digest: string; size: number }[] };
      const layer = manifest.layers[0]!.digest;
      const orphanData = randomBytes(300);
      const orphan = await storeRaw(store, orphanData); // bytes stored, row never written (a crash)
      const unknownGen = await storeRaw(store, Buffer.from(await readAll(await store.read(layer))), 4); // a generation above the live row
      assert.equal(unknownGen, layer);
      await store.delete(manifest.config.digest); // a live row whose bytes are gone

      const dry = await apiOk(l.berth.app, 'POST', '/api/v1/gc/reconcile', ADMIN, {}, 200);
      assert.equal(dry.dryRun, true);
      assert.ok(dry.scanned.shards === 512 && dry.scanned.objects >= 2, JSON.stringify(dry.scanned));
      const byDigest = (r: { orphans: { digest: string; generation: number; action: string; reason: string }[] }) => new Map(r.orphans.map((o) => [`${o.digest}/${o.generation}`, o]));
      assert.deepEqual(
        { ...byDigest(dry).get(`${orphan}/0`), modifiedAt: undefined },
        { digest: orphan, generation: 0, size: 300, modifiedAt: undefined, reason: 'no blob row', action: 'too-young' },
      );
      assert.match(byDigest(dry).get(`${layer}/4`)!.reason, /a generation the row does not know/);
      assert.deepEqual(dry.missing, [{ digest: manifest.config.digest, generation: 0, state: 'live', size: dry.missing[0].size }]);
      assert.equal(dry.totals.orphans, 2);
      assert.equal(dry.totals.tooYoung, 2);
      assert.ok(await store.stat(orphan), 'a dry run deletes nothing');
      const anon = await l.berth.app.inject({ method: 'POST', url: '/api/v1/gc/reconcile', headers: { 'content-type': 'application/json' }, payload: {} });
      assert.ok(anon.statusCode === 401 || anon.statusCode === 403, String(anon.statusCode));

      // Two hours on: old enough. The orphan goes; the unknown generation of a live row stays.
      const later = Date.now() + 2 * 3600_000;
      const applied = await l.berth.registry.reconciler.run({ apply: true, now: later });
      assert.equal(byDigest(applied).get(`${orphan}/0`)!.action, 'deleted');
      assert.equal(byDigest(applied).get(`${layer}/4`)!.action, 'kept');
      assert.equal(applied.totals.deleted, 1);
      assert.equal(applied.totals.deletedBytes, 300);
      assert.equal(await store.stat(orphan), undefined);
      assert.deepEqual(await l.berth.meta.findBlobState(orphan), { state: 'gone', generation: 0, size: 0 }, 'a tombstone keeps uploads off the deleted generation');
      // The same digest pushed again takes the next generation and reads back intact.
      const res = await l.berth.app.inject({ method: 'POST', url: `/v2/acme/rec/app/blobs/uploads/?digest=${orphan}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: orphanData });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal((await l.berth.meta.findBlobState(orphan))!.generation, 1);
      const got = await l.berth.app.inject({ url: `/v2/acme/rec/app/blobs/${orphan}`, headers: { authorization: ADMIN } });
      assert.ok(got.rawPayload.equals(orphanData));
      const again = await l.berth.registry.reconciler.run({ apply: true, now: later });
      assert.equal(again.totals.deleted, 0, 'the re-uploaded generation is the row’s: not an orphan');
      const metrics = (await l.berth.app.inject({ url: '/metrics' })).body;
      assert.match(metrics, /^berth_storage_reconcile_findings\{kind="missing"\} 1$/m);
      assert.match(metrics, /^berth_storage_reconcile_findings\{kind="orphans"\} 1$/m, 'the unknown generation of a live row');
      assert.match(metrics, /^berth_storage_reconcile_deleted_bytes_total 300$/m);
      await store.delete(layer, 4);
    });

    // fs keeps no upload state outside its files: this one is for S3 only.
    if (combo.s3) test('multipart uploads of sessions that are gone are reported, and aborted when old (S3)', async () => {
      const store = l.berth.store as S3BlobStore;
      const lost = await store.client.send(new CreateMultipartUploadCommand({ Bucket: l.s3!.bucket, Key: 'uploads/lost-session/data' }));
      const open = await l.berth.app.inject({ method: 'POST', url: '/v2/acme/rec/app/blobs/uploads/', headers: { authorization: ADMIN } });
      assert.equal(open.statusCode, 202); // a live session: its multipart is upload expiry's business
      const dry = await l.berth.registry.reconciler.run();
      assert.deepEqual(dry.multiparts.map((m) => [m.uploadId, m.action]), [['lost-session', 'too-young']]);
      const applied = await l.berth.registry.reconciler.run({ apply: true, now: Date.now() + 2 * 3600_000 });
      assert.deepEqual(applied.multiparts.map((m) => [m.uploadId, m.action]), [['lost-session', 'aborted']]);
      const left: string[] = [];
      for await (const m of store.listPendingMultiparts()) left.push(m.multipartId);
      assert.ok(!left.includes(lost.UploadId!), 'aborted');
      assert.equal(left.length, 1, 'the live session keeps its multipart upload');
      await l.berth.app.inject({ method: 'DELETE', url: open.headers.location as string, headers: { authorization: ADMIN } });
    });

    test('a blob left deleting (its batch never ran) is swept again by resweep', async () => {
      const gcStore = (l.berth.registry.gc as unknown as { gc: GcStore }).gc;
      const data = randomBytes(200);
      const res = await l.berth.app.inject({ method: 'POST', url: `/v2/acme/rec/app/blobs/uploads/?digest=${sha256(data)}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: data });
      assert.equal(res.statusCode, 201);
      const d = await gcStore.decideBlob(sha256(data), { now: Date.now(), graceMs: 0, enqueuedAt: 0, dryRun: false });
      assert.equal(d.action, 'sweep'); // marked deleting; this process "dies" before deleting the bytes
      assert.ok(await l.berth.store.stat(sha256(data)));
      assert.equal(await l.berth.registry.gc.resweep(10 * 60_000), 0, 'too recent: its own sweep may still be running');
      assert.equal(await l.berth.registry.gc.resweep(0), 1);
      assert.equal(await l.berth.store.stat(sha256(data)), undefined);
      assert.equal((await l.berth.meta.findBlobState(sha256(data)))!.state, 'gone');
    });
  });
}
