/**
 * The MetadataStore contract (src/metadata/metadata-store.ts), run once per dialect:
 *   runMetadataSuite('sqlite', async () => ({ meta, cleanup }))
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseImageName } from '../../src/core/names.ts';
import type { ImageRecord, MetadataStore, SaveManifestInput } from '../../src/metadata/metadata-store.ts';
import { type AccessStore, ConflictError } from '../../src/metadata/access-store.ts';

export interface MetadataFixture {
  meta: MetadataStore;
  access: AccessStore;
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
    /** Each test gets fresh stores with the owners `o`, `acme` and `other` created. */
    const withStores = (name: string, fn: (meta: MetadataStore, access: AccessStore) => Promise<void>) =>
      test(name, async () => {
        const fx = await open();
        try {
          for (const o of ['o', 'acme', 'other']) await fx.access.createOwner(o, 'org');
          await fn(fx.meta, fx.access);
        } finally {
          await fx.cleanup();
        }
      });
    const withMeta = (name: string, fn: (meta: MetadataStore) => Promise<void>) => withStores(name, (meta) => fn(meta));
    const image = async (meta: MetadataStore, name: string): Promise<ImageRecord> => {
      const img = await meta.ensureImage(parseImageName(name));
      assert.ok(img, `image ${name}`);
      return img;
    };

    withMeta('ensureImage creates repository and image once, under an existing owner only', async (meta) => {
      const a = await image(meta, 'acme/prod/web/api');
      const b = await image(meta, 'acme/prod/web/api');
      assert.equal(a.id, b.id);
      const c = await image(meta, 'acme/prod/worker');
      assert.notEqual(c.id, a.id);
      assert.equal(c.repositoryId, a.repositoryId, 'same OWNER/REPOSITORY');
      assert.equal(await meta.ensureImage(parseImageName('nobody/prod/app')), undefined, 'the owner must exist');
      const other = await image(meta, 'acme/dev/worker');
      assert.notEqual(other.repositoryId, a.repositoryId);
      assert.deepEqual(await meta.findImage('acme/prod/web/api'), a);
      assert.equal(await meta.findImage('acme/prod/nope'), undefined);
      assert.deepEqual(await meta.listImageNames({ limit: 10 }), ['acme/dev/worker', 'acme/prod/web/api', 'acme/prod/worker']);
      assert.deepEqual(await meta.listImageNames({ limit: 1, after: 'acme/dev/worker' }), ['acme/prod/web/api']);
    });

    withMeta('blobs are global, links are per image', async (meta) => {
      const a = await image(meta, 'o/r/a');
      const b = await image(meta, 'o/r/b');
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
      const a = await image(meta, 'o/r/a');
      await meta.saveUpload({ id: 'u-old', imageId: a.id, startedAt: 1000 });
      await meta.saveUpload({ id: 'u-new', imageId: a.id, startedAt: 5000 });
      assert.deepEqual(await meta.findUpload('u-old'), { id: 'u-old', imageId: a.id, startedAt: 1000 });
      assert.deepEqual((await meta.listUploadsStartedBefore(2000)).map((u) => u.id), ['u-old']);
      await meta.removeUpload('u-old');
      assert.equal(await meta.findUpload('u-old'), undefined);
    });

    withMeta('saveManifest checks references atomically and writes manifest, refs and tag', async (meta) => {
      const img = await image(meta, 'o/r/a');
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
      const img = await image(meta, 'o/r/a');
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
      const img = await image(meta, 'o/r/a');
      await meta.saveManifest(manifestInput(img.id, 'one', { tag: 'x' }));
      await meta.saveManifest(manifestInput(img.id, 'one', { tag: 'y' }));
      await meta.saveManifest(manifestInput(img.id, 'two', { tag: 'z' }));
      assert.equal(await meta.removeManifest(img.id, d('one')), true);
      assert.equal(await meta.removeManifest(img.id, d('one')), false);
      assert.deepEqual(await meta.listTags(img.id, { limit: 10 }), ['z']);
      assert.equal(await meta.findManifest(img.id, d('one')), undefined);
    });

    withMeta('referrers are found by subject, filtered by artifactType, per image', async (meta) => {
      const img = await image(meta, 'o/r/a');
      const other = await image(meta, 'o/r/b');
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
      const img = await image(meta, 'o/r/a');
      await meta.saveManifest(manifestInput(img.id, 'child'));
      const bad = await meta.saveManifest(manifestInput(img.id, 'index', { requireManifests: [{ digest: d('absent'), size: 1 }] }));
      assert.equal(bad.ok, false);
      const good = await meta.saveManifest(manifestInput(img.id, 'index', { requireManifests: [{ digest: d('child'), size: 5 }], tag: 'multi' }));
      assert.deepEqual(good, { ok: true });
    });

    withMeta('concurrent tag pushes all land', async (meta) => {
      const img = await image(meta, 'o/r/a');
      await Promise.all(Array.from({ length: 50 }, (_, i) => meta.saveManifest(manifestInput(img.id, `m${i}`, { tag: `t${String(i).padStart(2, '0')}` }))));
      assert.equal((await meta.listTags(img.id, { limit: 100 })).length, 50);
    });

    withMeta('ping answers', async (meta) => {
      await meta.ping();
    });
    withStores('users get their own namespace; names are unique across users and orgs', async (_meta, access) => {
      const u = await access.createUser({ username: 'alice', passwordHash: 'h', siteAdmin: false, email: null });
      assert.equal((await access.findOwner('alice'))?.kind, 'user');
      assert.equal((await access.findUserByName('alice'))?.id, u.id);
      assert.equal((await access.findUserById(u.id))?.username, 'alice');
      await assert.rejects(access.createUser({ username: 'alice', passwordHash: null, siteAdmin: false, email: null }), ConflictError);
      await assert.rejects(access.createUser({ username: 'acme', passwordHash: null, siteAdmin: false, email: null }), ConflictError);
      await assert.rejects(access.createOwner('alice', 'org'), ConflictError);
      assert.equal(await access.countUsers(), 1);
      assert.deepEqual((await access.listOwners()).map((o) => o.name), ['acme', 'alice', 'o', 'other']);
    });

    withStores('repositories and memberships at owner and repository level', async (_meta, access) => {
      const acme = (await access.findOwner('acme'))!;
      const pub = await access.createRepository(acme.id, 'pub', 'public', 'open');
      const priv = await access.createRepository(acme.id, 'priv', 'private', '');
      await assert.rejects(access.createRepository(acme.id, 'pub', 'public', ''), ConflictError);
      assert.deepEqual((await access.findRepository('acme', 'pub'))?.description, 'open');
      await access.updateRepository(priv.id, { visibility: 'public', description: 'now open' });
      assert.equal((await access.findRepositoryById(priv.id))?.visibility, 'public');
      await access.updateRepository(priv.id, { visibility: 'private' });

      const bob = await access.createUser({ username: 'bob', passwordHash: null, siteAdmin: false, email: null });
      const eve = await access.createUser({ username: 'eve', passwordHash: null, siteAdmin: false, email: null });
      await access.setMembership(bob.id, { repositoryId: priv.id }, 'read');
      await access.setMembership(bob.id, { repositoryId: priv.id }, 'write'); // replaces
      await access.setMembership(bob.id, { ownerId: acme.id }, 'read');
      assert.deepEqual((await access.findRoles(bob.id, acme.id, priv.id)).sort(), ['read', 'write']);
      assert.deepEqual(await access.findRoles(bob.id, acme.id, null), ['read']);
      assert.deepEqual(await access.findRoles(eve.id, acme.id, priv.id), []);
      assert.deepEqual((await access.listMemberships({ repositoryId: priv.id })).map((m) => [m.username, m.role]), [['bob', 'write']]);

      assert.deepEqual((await access.listReadableRepositoryIds(null)).sort(), [pub.id]);
      assert.deepEqual((await access.listReadableRepositoryIds(eve.id)).sort(), [pub.id]);
      assert.deepEqual((await access.listReadableRepositoryIds(bob.id)).sort((a, b) => a - b), [pub.id, priv.id].sort((a, b) => a - b));
      assert.equal(await access.removeMembership(bob.id, { ownerId: acme.id }), true);
      assert.equal(await access.removeMembership(bob.id, { ownerId: acme.id }), false);
      assert.deepEqual((await access.listRepositories(acme.id)).map((r) => r.name), ['priv', 'pub']);
    });

    withStores('credentials: found by hash, revoked, touched, download limits counted atomically', async (_meta, access) => {
      const acme = (await access.findOwner('acme'))!;
      const repo = await access.createRepository(acme.id, 'r', 'private', '');
      const u = await access.createUser({ username: 'ci', passwordHash: null, siteAdmin: false, email: null });
      const key = await access.createCredential({ kind: 'api_key', userId: u.id, repositoryId: null, name: 'k', prefix: 'berth_k_abcd', secretHash: 'h1', expiresAt: null, downloadLimit: null });
      const tok = await access.createCredential({ kind: 'entitlement', userId: u.id, repositoryId: repo.id, name: 't', prefix: 'berth_t_abcd', secretHash: 'h2', expiresAt: 123, downloadLimit: 3 });
      assert.equal((await access.findCredentialByHash('h1'))?.id, key.id);
      assert.equal((await access.findCredentialByHash('h2'))?.expiresAt, 123);
      assert.equal(await access.findCredentialByHash('nope'), undefined);
      assert.deepEqual((await access.listCredentials({ userId: u.id, kind: 'api_key' })).map((c) => c.id), [key.id]);
      assert.deepEqual((await access.listCredentials({ repositoryId: repo.id, kind: 'entitlement' })).map((c) => c.id), [tok.id]);
      const results = await Promise.all(Array.from({ length: 5 }, () => access.countDownload(tok.id)));
      assert.equal(results.filter(Boolean).length, 3, 'exactly the limit is counted');
      assert.equal((await access.findCredential(tok.id))?.downloadCount, 3);
      assert.equal(await access.countDownload(key.id), true, 'no limit');
      await access.touchCredential(key.id, 999);
      assert.equal((await access.findCredential(key.id))?.lastUsedAt, 999);
      assert.equal(await access.revokeCredential(key.id, 1000), true);
      assert.equal(await access.revokeCredential(key.id, 2000), false, 'already revoked');
      assert.equal((await access.findCredential(key.id))?.revokedAt, 1000);
    });

    withStores('settings keep the first value written', async (_meta, access) => {
      assert.equal(await access.getSetting('k'), undefined);
      assert.equal(await access.putSettingIfAbsent('k', 'first'), 'first');
      assert.equal(await access.putSettingIfAbsent('k', 'second'), 'first');
    });

    withMeta('the catalog can be restricted to repositories', async (meta) => {
      const a = await image(meta, 'acme/one/app');
      await image(meta, 'acme/two/app');
      assert.deepEqual(await meta.listImageNames({ limit: 10, repositoryIds: [a.repositoryId] }), ['acme/one/app']);
      assert.deepEqual(await meta.listImageNames({ limit: 10, repositoryIds: [] }), []);
    });
  });
}
