/**
 * The MetadataStore contract (src/metadata/metadata-store.ts), run once per dialect:
 *   runMetadataSuite('sqlite', async () => ({ meta, cleanup }))
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseImageName } from '../../src/core/names.ts';
import type { MetadataStore, SaveManifestInput } from '../../src/metadata/metadata-store.ts';

export interface MetadataFixture {
  meta: MetadataStore;
  cleanup(): Promise<void>;
}

function d(s: string): string {
  return `sha256:${createHash('sha256').update(s).digest('hex')}`;
}

function manifestInput(imageId: number, payload: string, extra: Partial<SaveManifestInput> = {}): SaveManifestInput {
  const buf = Buffer.from(payload);
  return {
    imageId,
    digest: d(payload),
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    artifactType: null,
    subjectDigest: null,
    configDigest: null,
    payload: buf,
    annotations: null,
    refs: [],
    requireBlobs: [],
    requireManifests: [],
    tag: null,
    ...extra,
  };
}

export function runMetadataSuite(dialect: string, open: () => Promise<MetadataFixture>): void {
  describe(`MetadataStore contract: ${dialect}`, () => {
    const withMeta = (name: string, fn: (meta: MetadataStore) => Promise<void>) =>
      test(name, async () => {
        const fx = await open();
        try {
          await fn(fx.meta);
        } finally {
          await fx.cleanup();
        }
      });

    withMeta('ensureImage creates owner, repository and image once', async (meta) => {
      const a = await meta.ensureImage(parseImageName('acme/prod/web/api'));
      const b = await meta.ensureImage(parseImageName('acme/prod/web/api'));
      assert.equal(a.id, b.id);
      const c = await meta.ensureImage(parseImageName('acme/prod/worker'));
      assert.notEqual(c.id, a.id);
      assert.equal(c.repositoryId, a.repositoryId, 'same OWNER/REPOSITORY');
      const other = await meta.ensureImage(parseImageName('acme/dev/worker'));
      assert.notEqual(other.repositoryId, a.repositoryId);
      assert.deepEqual(await meta.findImage('acme/prod/web/api'), a);
      assert.equal(await meta.findImage('acme/prod/nope'), undefined);
      assert.deepEqual(await meta.listImageNames({ limit: 10 }), ['acme/dev/worker', 'acme/prod/web/api', 'acme/prod/worker']);
      assert.deepEqual(await meta.listImageNames({ limit: 1, after: 'acme/dev/worker' }), ['acme/prod/web/api']);
    });

    withMeta('blobs are global, links are per image', async (meta) => {
      const a = await meta.ensureImage(parseImageName('o/r/a'));
      const b = await meta.ensureImage(parseImageName('o/r/b'));
      await meta.saveBlob(a.id, d('x'), 10);
      await meta.saveBlob(a.id, d('x'), 10); // idempotent
      assert.deepEqual(await meta.findBlob(d('x')), { digest: d('x'), size: 10 });
      assert.deepEqual(await meta.findImageBlob(a.id, d('x')), { digest: d('x'), size: 10 });
      assert.equal(await meta.findImageBlob(b.id, d('x')), undefined, 'not linked to b');
      assert.equal(await meta.removeImageBlob(a.id, d('x')), true);
      assert.equal(await meta.removeImageBlob(a.id, d('x')), false);
      assert.equal(await meta.findImageBlob(a.id, d('x')), undefined);
    });

    withMeta('uploads are saved, found, listed by age and removed', async (meta) => {
      const a = await meta.ensureImage(parseImageName('o/r/a'));
      await meta.saveUpload({ id: 'u-old', imageId: a.id, startedAt: 1000 });
      await meta.saveUpload({ id: 'u-new', imageId: a.id, startedAt: 5000 });
      assert.deepEqual(await meta.findUpload('u-old'), { id: 'u-old', imageId: a.id, startedAt: 1000 });
      assert.deepEqual((await meta.listUploadsStartedBefore(2000)).map((u) => u.id), ['u-old']);
      await meta.removeUpload('u-old');
      assert.equal(await meta.findUpload('u-old'), undefined);
    });

    withMeta('saveManifest checks references atomically and writes manifest, refs and tag', async (meta) => {
      const img = await meta.ensureImage(parseImageName('o/r/a'));
      const missing = await meta.saveManifest(
        manifestInput(img.id, 'm1', { requireBlobs: [{ digest: d('cfg'), size: 3 }], tag: 'v1' }),
      );
      assert.deepEqual(missing, { ok: false, missing: [d('cfg')], sizeMismatch: [] });
      assert.equal(await meta.findTaggedManifest(img.id, 'v1'), undefined, 'nothing written on failure');

      await meta.saveBlob(img.id, d('cfg'), 3);
      const wrongSize = await meta.saveManifest(manifestInput(img.id, 'm1', { requireBlobs: [{ digest: d('cfg'), size: 4 }] }));
      assert.equal(wrongSize.ok, false);

      const ok = await meta.saveManifest(
        manifestInput(img.id, 'm1', {
          requireBlobs: [{ digest: d('cfg'), size: 3 }],
          refs: [{ digest: d('cfg'), kind: 'config' }],
          annotations: { a: 'b' },
          tag: 'v1',
        }),
      );
      assert.deepEqual(ok, { ok: true });
      const byTag = await meta.findTaggedManifest(img.id, 'v1');
      assert.equal(byTag?.digest, d('m1'));
      assert.deepEqual(byTag?.payload, Buffer.from('m1'));
      assert.deepEqual(byTag?.annotations, { a: 'b' });
      const byDigest = await meta.findManifest(img.id, d('m1'));
      assert.equal(byDigest?.size, 2);
    });

    withMeta('tags move last-writer-wins and list in lexical order with paging', async (meta) => {
      const img = await meta.ensureImage(parseImageName('o/r/a'));
      await meta.saveManifest(manifestInput(img.id, 'one', { tag: 'latest' }));
      await meta.saveManifest(manifestInput(img.id, 'two', { tag: 'latest' }));
      assert.equal((await meta.findTaggedManifest(img.id, 'latest'))?.digest, d('two'));
      for (const t of ['b', 'a', 'c', 'B', '1']) await meta.saveManifest(manifestInput(img.id, 'one', { tag: t }));
      const all = await meta.listTags(img.id, { limit: 100 });
      assert.deepEqual(all, ['1', 'B', 'a', 'b', 'c', 'latest']);
      assert.deepEqual(await meta.listTags(img.id, { limit: 2, after: 'B' }), ['a', 'b']);
      assert.equal(await meta.removeTag(img.id, 'a'), true);
      assert.equal(await meta.removeTag(img.id, 'a'), false);
    });

    withMeta('removeManifest removes the manifest and every tag on it', async (meta) => {
      const img = await meta.ensureImage(parseImageName('o/r/a'));
      await meta.saveManifest(manifestInput(img.id, 'one', { tag: 'x' }));
      await meta.saveManifest(manifestInput(img.id, 'one', { tag: 'y' }));
      await meta.saveManifest(manifestInput(img.id, 'two', { tag: 'z' }));
      assert.equal(await meta.removeManifest(img.id, d('one')), true);
      assert.equal(await meta.removeManifest(img.id, d('one')), false);
      assert.deepEqual(await meta.listTags(img.id, { limit: 10 }), ['z']);
      assert.equal(await meta.findManifest(img.id, d('one')), undefined);
    });

    withMeta('referrers are found by subject, filtered by artifactType, per image', async (meta) => {
      const img = await meta.ensureImage(parseImageName('o/r/a'));
      const other = await meta.ensureImage(parseImageName('o/r/b'));
      const subject = d('subject');
      await meta.saveManifest(manifestInput(img.id, 'sig', { subjectDigest: subject, artifactType: 'application/sig' }));
      await meta.saveManifest(
        manifestInput(img.id, 'sbom', { subjectDigest: subject, artifactType: 'application/sbom', annotations: { k: 'v' } }),
      );
      await meta.saveManifest(manifestInput(other.id, 'elsewhere', { subjectDigest: subject, artifactType: 'application/sig' }));
      const all = await meta.listReferrers(img.id, subject);
      assert.deepEqual(all.map((r) => r.digest).sort(), [d('sbom'), d('sig')].sort());
      const sboms = await meta.listReferrers(img.id, subject, 'application/sbom');
      assert.deepEqual(sboms, [
        { digest: d('sbom'), mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/sbom', size: 4, annotations: { k: 'v' } },
      ]);
      assert.deepEqual(await meta.listReferrers(img.id, d('nothing')), []);
    });

    withMeta('index children must exist in the image', async (meta) => {
      const img = await meta.ensureImage(parseImageName('o/r/a'));
      await meta.saveManifest(manifestInput(img.id, 'child'));
      const bad = await meta.saveManifest(manifestInput(img.id, 'index', { requireManifests: [{ digest: d('absent'), size: 1 }] }));
      assert.equal(bad.ok, false);
      const good = await meta.saveManifest(manifestInput(img.id, 'index', { requireManifests: [{ digest: d('child'), size: 5 }], tag: 'multi' }));
      assert.deepEqual(good, { ok: true });
    });

    withMeta('concurrent tag pushes all land', async (meta) => {
      const img = await meta.ensureImage(parseImageName('o/r/a'));
      await Promise.all(Array.from({ length: 50 }, (_, i) => meta.saveManifest(manifestInput(img.id, `m${i}`, { tag: `t${String(i).padStart(2, '0')}` }))));
      assert.equal((await meta.listTags(img.id, { limit: 100 })).length, 50);
    });

    withMeta('ping answers', async (meta) => {
      await meta.ping();
    });
  });
}
