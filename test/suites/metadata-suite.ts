/**
 * The MetadataStore contract (src/metadata/metadata-store.ts), run once per dialect:
 *   runMetadataSuite('sqlite', async () => ({ meta, cleanup }))
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { parseImageName } from '../../src/core/content/names.ts';
import type { ImageRecord, MetadataStore, SaveManifestInput } from '../../src/metadata/metadata-store.ts';
import { type AccessStore, ConflictError } from '../../src/metadata/access-store.ts';
import type { EventStore, NewEvent } from '../../src/metadata/event-store.ts';

export interface MetadataFixture {
  meta: MetadataStore;
  access: AccessStore;
  events: EventStore;
  cleanup(): Promise<void>;
}

function ev(time: number, extra: Partial<NewEvent> = {}): NewEvent {
  return {
    time,
    action: 'pull',
    actorKind: 'user',
    actor: 'alice',
    credentialId: null,
    repository: 'acme/prod',
    image: 'acme/prod/app',
    reference: 'latest',
    digest: d('m'),
    clientIp: '10.0.0.1',
    userAgent: 'test',
    bytes: 100,
    status: 200,
    detail: null,
    ...extra,
  };
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
      assert.deepEqual(await meta.findBlob(d('x')), { digest: d('x'), size: 10, generation: 0 });
      assert.deepEqual(await meta.findImageBlob(a.id, d('x')), { digest: d('x'), size: 10, generation: 0 });
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

    withMeta('open upload sessions are counted per starter and per repository', async (meta) => {
      const a = await image(meta, 'o/r/a');
      const b = await image(meta, 'o/r/b');
      const c = await image(meta, 'o/s/a');
      await meta.saveUpload({ id: 'u1', imageId: a.id, startedAt: 1, startedBy: 'user:1' });
      await meta.saveUpload({ id: 'u2', imageId: b.id, startedAt: 1, startedBy: 'user:1' });
      await meta.saveUpload({ id: 'u3', imageId: c.id, startedAt: 1, startedBy: 'user:2' });
      await meta.saveUpload({ id: 'u4', imageId: c.id, startedAt: 1 });
      assert.equal((await meta.findUpload('u1'))?.startedBy, 'user:1');
      assert.equal(await meta.countUploads({ startedBy: 'user:1' }), 2);
      assert.equal(await meta.countUploads({ startedBy: 'user:3' }), 0);
      assert.equal(await meta.countUploads({ repositoryId: a.repositoryId }), 2, 'every image of o/r');
      assert.equal(await meta.countUploads({ repositoryId: c.repositoryId }), 2);
      await meta.removeUpload('u1');
      assert.equal(await meta.countUploads({ startedBy: 'user:1' }), 1);
      assert.equal(await meta.countUploads({ repositoryId: a.repositoryId }), 1);
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

    withMeta('expectTagDigest: a tag moves only from the digest expected; of two writers expecting the same, one wins', async (meta) => {
      const img = await image(meta, 'o/r/cas');
      assert.deepEqual(await meta.saveManifest(manifestInput(img.id, 'one', { tag: 't', expectTagDigest: d('zero') })), { ok: false, missing: [], sizeMismatch: [], tagMoved: null });
      assert.equal(await meta.findManifest(img.id, d('one')), undefined, 'nothing written when refused');
      assert.deepEqual(await meta.saveManifest(manifestInput(img.id, 'one', { tag: 't', expectTagDigest: null })), { ok: true });
      assert.deepEqual(await meta.saveManifest(manifestInput(img.id, 'two', { tag: 't', expectTagDigest: null })), { ok: false, missing: [], sizeMismatch: [], tagMoved: d('one') });
      const both = await Promise.all(['a', 'b'].map((p) => meta.saveManifest(manifestInput(img.id, p, { tag: 't', expectTagDigest: d('one') }))));
      assert.equal(both.filter((r) => r.ok).length, 1, JSON.stringify(both));
      const winner = both[0]!.ok ? 'a' : 'b';
      assert.deepEqual(both.find((r) => !r.ok), { ok: false, missing: [], sizeMismatch: [], tagMoved: d(winner) });
      assert.equal((await meta.findTaggedManifest(img.id, 't'))?.digest, d(winner));
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

    withMeta('listTagEntries pages and filters by substring; countTags counts', async (meta) => {
      const img = await image(meta, 'o/r/a');
      const other = await image(meta, 'o/r/b');
      for (const t of ['v1.0', 'v1.1', 'v2.0', 'latest', 'x%_1']) await meta.saveManifest(manifestInput(img.id, 'one', { tag: t }));
      await meta.saveManifest(manifestInput(other.id, 'two', { tag: 'v1.0' }));
      assert.equal(await meta.countTags(img.id), 5);
      assert.equal(await meta.countTags(other.id), 1);
      const all = await meta.listTagEntries(img.id, { limit: 10 });
      assert.deepEqual(all.map((t) => t.name), ['latest', 'v1.0', 'v1.1', 'v2.0', 'x%_1']);
      assert.equal(all[0]!.digest, d('one'));
      assert.equal(typeof all[0]!.updatedAt, 'number');
      assert.deepEqual((await meta.listTagEntries(img.id, { limit: 10, contains: 'v1' })).map((t) => t.name), ['v1.0', 'v1.1']);
      assert.deepEqual((await meta.listTagEntries(img.id, { limit: 1, after: 'v1.0', contains: 'v1' })).map((t) => t.name), ['v1.1']);
      assert.deepEqual((await meta.listTagEntries(img.id, { limit: 10, contains: '%_' })).map((t) => t.name), ['x%_1'], 'literal match');
      assert.deepEqual(await meta.listTagEntries(img.id, { limit: 10, contains: 'V1' }), [], 'case-sensitive');
    });

    withMeta('listTagEntries newestFirst orders by last update, then name', async (meta) => {
      const img = await image(meta, 'o/r/a');
      for (const t of ['b', 'a', 'c']) {
        await meta.saveManifest(manifestInput(img.id, 'one', { tag: t }));
        await new Promise((r) => setTimeout(r, 5)); // distinct updated_at (milliseconds)
      }
      await meta.saveManifest(manifestInput(img.id, 'two', { tag: 'b' })); // moved: newest
      assert.deepEqual((await meta.listTagEntries(img.id, { limit: 10, newestFirst: true })).map((t) => t.name), ['b', 'c', 'a']);
      assert.deepEqual((await meta.listTagEntries(img.id, { limit: 1, newestFirst: true })).map((t) => [t.name, t.digest]), [['b', d('two')]]);
      await assert.rejects(meta.listTagEntries(img.id, { limit: 1, newestFirst: true, after: 'a' }));
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

    withStores('findReadableImageWithBlob: a link only in a repository the reader may read', async (meta, access) => {
      const acme = (await access.findOwner('acme'))!;
      const pub = await access.createRepository(acme.id, 'pub', 'public', '');
      const priv = await access.createRepository(acme.id, 'priv', 'private', '');
      const bob = await access.createUser({ username: 'bob', passwordHash: null, siteAdmin: false, email: null });
      const carol = await access.createUser({ username: 'carol', passwordHash: null, siteAdmin: false, email: null });
      const dan = await access.createUser({ username: 'dan', passwordHash: null, siteAdmin: false, email: null });
      const eve = await access.createUser({ username: 'eve', passwordHash: null, siteAdmin: false, email: null });
      await access.setMembership(bob.id, { repositoryId: priv.id }, 'read');
      await access.setMembership(carol.id, { ownerId: acme.id }, 'read');
      const image = async (name: string) => (await meta.ensureImage(parseImageName(name)))!;
      const [a, b, c, x] = [await image('acme/pub/a'), await image('acme/priv/b'), await image('dan/own/c'), await image('other/x/i')];
      assert.equal(a.repositoryId, pub.id);
      assert.equal(b.repositoryId, priv.id);
      await meta.saveBlob(b.id, d('private'), 1);
      await meta.saveBlob(a.id, d('shared'), 2);
      await meta.saveBlob(b.id, d('shared'), 2);
      await meta.saveBlob(c.id, d('dan'), 3);
      await meta.saveBlob(x.id, d('other'), 4);
      const find = (digest: string, reader: Parameters<AccessStore['findReadableImageWithBlob']>[1]) => access.findReadableImageWithBlob(digest, reader);

      assert.equal(await find(d('private'), { userId: null }), undefined, 'anyone: not in a private repository');
      assert.equal(await find(d('shared'), { userId: null }), 'acme/pub/a', 'anyone: the public link');
      assert.equal(await find(d('private'), { userId: eve.id }), undefined);
      assert.equal(await find(d('private'), { userId: bob.id }), 'acme/priv/b', 'repository membership');
      assert.equal(await find(d('private'), { userId: carol.id }), 'acme/priv/b', 'organisation membership');
      assert.equal(await find(d('dan'), { userId: dan.id }), 'dan/own/c', 'own namespace');
      assert.equal(await find(d('dan'), { userId: eve.id }), undefined);
      assert.equal(await find(d('private'), { userId: null, repositoryId: priv.id }), 'acme/priv/b', 'one more repository (entitlement)');
      assert.equal(await find(d('other'), { userId: null, repositoryId: priv.id }), undefined);
      assert.equal(await find(d('other'), 'any'), 'other/x/i');
      assert.equal(await find(d('nowhere'), 'any'), undefined);
      assert.equal(await meta.removeImageBlob(b.id, d('private')), true);
      assert.equal(await find(d('private'), 'any'), undefined, 'an unlinked blob is found nowhere');
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

    withStores('login failures: one atomic upsert per failure, a stale window restarts at 1, cleared and expired', async (_meta, access) => {
      const keys = ['pair-a', 'user-a'];
      // concurrent failures (several nodes at once) are all counted
      await Promise.all(Array.from({ length: 8 }, (_, i) => access.addLoginFailure(keys, 1000 + i, 0)));
      let rows = await access.findLoginFailures(keys, 0);
      assert.deepEqual(rows.map((r) => [r.key, r.failures]).sort(), [['pair-a', 8], ['user-a', 8]]);
      assert.ok(rows.every((r) => r.since >= 1000 && r.lastAt <= 1007 && r.lastAt >= r.since));
      // counters whose window started before windowStart are not reported, and restart at 1
      assert.deepEqual(await access.findLoginFailures(keys, 2000), []);
      await access.addLoginFailure(['pair-a'], 5000, 2000);
      rows = await access.findLoginFailures(keys, 2000);
      assert.deepEqual(rows.map((r) => [r.key, r.failures, r.since, r.lastAt]), [['pair-a', 1, 5000, 5000]]);
      await access.clearLoginFailures(['pair-a']);
      assert.deepEqual(await access.findLoginFailures(['pair-a'], 0), []);
      assert.equal(await access.deleteLoginFailuresBefore(2000), 1, 'user-a expired');
      assert.deepEqual(await access.findLoginFailures(keys, 0), []);
    });

    withStores('settings keep the first value written', async (_meta, access) => {
      assert.equal(await access.getSetting('k'), undefined);
      assert.equal(await access.putSettingIfAbsent('k', 'first'), 'first');
      assert.equal(await access.putSettingIfAbsent('k', 'second'), 'first');
    });

    withStores('sealed values are replaced only if unchanged (compare-and-set), settings deleted', async (_meta, access) => {
      await access.putSettingIfAbsent('k', 'plain');
      assert.equal(await access.replaceSetting('k', 'other', 'x'), false);
      assert.equal(await access.replaceSetting('k', 'plain', 'sealed'), true);
      assert.equal(await access.getSetting('k'), 'sealed');
      assert.equal(await access.replaceSetting('absent', 'a', 'b'), false);
      await access.deleteSetting('k');
      assert.equal(await access.getSetting('k'), undefined);
      const acme = (await access.findOwner('acme'))!;
      const repo = await access.createRepository(acme.id, 'mirror', 'private', '');
      const base = { repositoryId: repo.id, username: 'u', priority: 0, cache: true, prefix: '', remotePrefix: '' };
      const a = await access.createUpstream({ ...base, url: 'https://a.example', passwordEnc: 'v1:a' });
      await access.createUpstream({ ...base, url: 'https://b.example', passwordEnc: null });
      assert.deepEqual(await access.listUpstreamSecrets(), [{ id: a.id, value: 'v1:a' }], 'only upstreams with a password');
      assert.equal(await access.replaceUpstreamSecret(a.id, 'v1:stale', 'sealed:a'), false);
      assert.equal(await access.replaceUpstreamSecret(a.id, 'v1:a', 'sealed:a'), true);
      assert.deepEqual(await access.listUpstreamSecrets(), [{ id: a.id, value: 'sealed:a' }]);
    });

    withStores('upstreams: create, list by priority then id, remove within the repository only', async (_meta, access) => {
      const acme = (await access.findOwner('acme'))!;
      const repo = await access.createRepository(acme.id, 'mirror', 'private', '');
      const other = await access.createRepository(acme.id, 'other', 'private', '');
      const base = { repositoryId: repo.id, username: null, passwordEnc: null, cache: true, prefix: '', remotePrefix: '' };
      const b = await access.createUpstream({ ...base, url: 'http://b.example', priority: 5 });
      const a = await access.createUpstream({ ...base, url: 'https://a.example', priority: 1, username: 'u', passwordEnc: 'v1:x:y:z', cache: false, prefix: 'hub/', remotePrefix: 'library/' });
      const c = await access.createUpstream({ ...base, url: 'http://c.example', priority: 5 });
      assert.deepEqual(
        (await access.listUpstreams(repo.id)).map((u) => u.url),
        ['https://a.example', 'http://b.example', 'http://c.example'],
      );
      const got = (await access.listUpstreams(repo.id))[0]!;
      assert.deepEqual(
        { ...got, createdAt: 0 },
        { id: a.id, repositoryId: repo.id, url: 'https://a.example', username: 'u', passwordEnc: 'v1:x:y:z', priority: 1, cache: false, prefix: 'hub/', remotePrefix: 'library/', createdAt: 0 },
      );
      assert.equal(typeof got.createdAt, 'number');
      assert.deepEqual(await access.listUpstreams(other.id), []);
      assert.equal(await access.removeUpstream(other.id, b.id), false, 'not from another repository');
      assert.equal(await access.removeUpstream(repo.id, b.id), true);
      assert.equal(await access.removeUpstream(repo.id, b.id), false);
      assert.deepEqual((await access.listUpstreams(repo.id)).map((u) => u.id), [a.id, c.id]);
    });

    withStores('cached content: blob links and manifests marked cached, listed per repository with tags', async (meta, access) => {
      const img = await image(meta, 'acme/mirror/alpine');
      const pushed = await image(meta, 'acme/mirror/own');
      const elsewhere = await image(meta, 'acme/other/alpine');
      await meta.saveBlob(img.id, d('layer'), 5, { cached: true });
      await meta.saveBlob(pushed.id, d('layer'), 5);
      assert.equal(await meta.isBlobCached(img.id, d('layer')), true);
      assert.equal(await meta.isBlobCached(pushed.id, d('layer')), false);
      assert.equal(await meta.isBlobCached(elsewhere.id, d('layer')), false, 'not linked');
      assert.deepEqual(await meta.findImageBlob(img.id, d('layer')), { digest: d('layer'), size: 5, generation: 0 });
      assert.ok((await meta.saveManifest(manifestInput(img.id, 'm1', { tag: '3', cached: true }))).ok);
      assert.ok((await meta.saveManifest(manifestInput(img.id, 'm2', { cached: true }))).ok);
      assert.ok((await meta.saveManifest(manifestInput(pushed.id, 'm3', { tag: 'v1' }))).ok);
      assert.ok((await meta.saveManifest(manifestInput(elsewhere.id, 'm4', { tag: 'x', cached: true }))).ok);
      assert.equal((await meta.findManifest(img.id, d('m1')))?.cached, true);
      assert.equal((await meta.findTaggedManifest(img.id, '3'))?.cached, true);
      assert.equal((await meta.findManifest(pushed.id, d('m3')))?.cached, false);
      const listed = await meta.listCachedManifests(img.repositoryId, 100);
      assert.deepEqual(
        listed.map((m) => ({ ...m, createdAt: 0 })).sort((x, y) => x.digest.localeCompare(y.digest)),
        [
          { image: 'acme/mirror/alpine', digest: d('m1'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 2, tags: ['3'], createdAt: 0 },
          { image: 'acme/mirror/alpine', digest: d('m2'), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 2, tags: [], createdAt: 0 },
        ].sort((x, y) => x.digest.localeCompare(y.digest)),
      );
      assert.equal((await meta.listCachedManifests(img.repositoryId, 1)).length, 1, 'limit');
    });

    /** Fresh stores with the owners of withStores, for the event store's contract. */
    const withEvents = (name: string, fn: (events: EventStore, access: AccessStore, meta: MetadataStore) => Promise<void>) =>
      test(name, async () => {
        const fx = await open();
        try {
          for (const o of ['o', 'acme', 'other']) await fx.access.createOwner(o, 'org');
          await fn(fx.events, fx.access, fx.meta);
        } finally {
          await fx.cleanup();
        }
      });

    withMeta('a tag push reports what the tag pointed at before; storage used sums blob sizes once', async (meta) => {
      const img = await image(meta, 'o/r/a');
      assert.equal(await meta.totalBlobBytes(), 0);
      await meta.saveBlob(img.id, d('x'), 10);
      await meta.saveBlob(img.id, d('y'), 32);
      await meta.saveBlob((await image(meta, 'o/r/b')).id, d('x'), 10); // deduplicated
      assert.equal(await meta.totalBlobBytes(), 42);
      const first = await meta.saveManifest(manifestInput(img.id, 'one', { tag: 'v1' }));
      assert.deepEqual(first, { ok: true }, 'a new tag had nothing before');
      const moved = await meta.saveManifest(manifestInput(img.id, 'two', { tag: 'v1' }));
      assert.deepEqual(moved, { ok: true, previousTagDigest: d('one') });
      const same = await meta.saveManifest(manifestInput(img.id, 'two', { tag: 'v1' }));
      assert.deepEqual(same, { ok: true, previousTagDigest: d('two') });
      assert.deepEqual(await meta.saveManifest(manifestInput(img.id, 'three')), { ok: true }, 'by digest: no tag');
    });

    withEvents('events: filters, newest first, keyset pagination through equal times, JSON detail', async (events) => {
      const batch = [
        ev(1000, { action: 'push', detail: { a: 1 } }),
        ev(2000),
        ev(2000, { actor: 'bob', repository: 'acme/dev', image: 'acme/dev/app' }),
        ev(2000, { action: 'login', repository: null, image: null, reference: null, digest: null, bytes: null, clientIp: null, userAgent: null }),
        ev(3000, { actorKind: 'entitlement', actor: 'token:7', credentialId: 7 }),
      ];
      await events.recordEvents(batch.map((event) => ({ event })));
      const all = await events.listEvents({}, { limit: 10 });
      assert.equal(all.length, 5);
      assert.deepEqual(all.map((e) => e.time), [3000, 2000, 2000, 2000, 1000]);
      const ids = all.map((e) => e.id);
      assert.deepEqual([...ids].sort((a, b) => b - a), ids, 'ties on time: higher id first');
      const push = all.find((e) => e.action === 'push')!;
      assert.deepEqual(push.detail, { a: 1 });
      const login = all.find((e) => e.action === 'login')!;
      assert.equal(login.repository, null);
      assert.equal(login.bytes, null);
      assert.equal(all.find((e) => e.actor === 'token:7')!.credentialId, 7);

      // pages of 2 through the ties: every event exactly once
      const seen: number[] = [];
      let before: { time: number; id: number } | undefined;
      for (;;) {
        const page = await events.listEvents({}, { limit: 2, ...(before ? { before } : {}) });
        seen.push(...page.map((e) => e.id));
        if (page.length < 2) break;
        before = { time: page[1]!.time, id: page[1]!.id };
      }
      assert.deepEqual(seen, ids);

      assert.equal((await events.listEvents({ repositories: ['acme/prod'] }, { limit: 10 })).length, 3);
      assert.equal((await events.listEvents({ repositories: ['acme/prod', 'acme/dev'] }, { limit: 10 })).length, 4);
      assert.deepEqual(await events.listEvents({ repositories: [] }, { limit: 10 }), []);
      assert.deepEqual((await events.listEvents({ actor: 'bob' }, { limit: 10 })).map((e) => e.repository), ['acme/dev']);
      assert.equal((await events.listEvents({ actions: ['pull', 'push'] }, { limit: 10 })).length, 4);
      assert.deepEqual((await events.listEvents({ since: 2000, until: 3000 }, { limit: 10 })).map((e) => e.time), [2000, 2000, 2000]);

      assert.equal(await events.deleteEventsBefore(2000, 100), 1);
      assert.equal(await events.deleteEventsBefore(2000, 100), 0);
      assert.equal(await events.deleteEventsBefore(2500, 2), 2, 'at most limit per call');
      assert.equal((await events.listEvents({}, { limit: 10 })).length, 2);
    });

    withEvents('events: a large batch in one call', async (events) => {
      await events.recordEvents(Array.from({ length: 1234 }, (_, i) => ({ event: ev(10_000 + i, { reference: `t${i}` }) })));
      const rows = await events.listEvents({}, { limit: 2000 });
      assert.equal(rows.length, 1234);
      assert.equal(rows[0]!.reference, 't1233');
    });

    withEvents('webhooks: created, listed active with their repository, updated, deleted with their deliveries', async (events, access) => {
      const acme = (await access.findOwner('acme'))!;
      const repo = await access.createRepository(acme.id, 'prod', 'private', '');
      const other = await access.createRepository(acme.id, 'dev', 'private', '');
      const h = await events.createWebhook({ repositoryId: repo.id, url: 'http://x/h', secret: 's3cret', events: ['push', 'delete'], active: true, createdBy: 'alice' });
      const off = await events.createWebhook({ repositoryId: other.id, url: 'http://x/o', secret: 's', events: ['pull'], active: false, createdBy: 'alice' });
      assert.deepEqual((await events.findWebhook(h.id))?.events, ['push', 'delete']);
      assert.equal((await events.findWebhook(h.id))?.secret, 's3cret', 'the secret is kept: it signs deliveries');
      assert.deepEqual(await events.listWebhookSecrets(), [{ id: h.id, value: 's3cret' }, { id: off.id, value: 's' }]);
      assert.equal(await events.replaceWebhookSecret(h.id, 'stale', 'sealed:h'), false);
      assert.equal(await events.replaceWebhookSecret(h.id, 's3cret', 'sealed:h'), true);
      assert.equal((await events.findWebhook(h.id))?.secret, 'sealed:h');
      assert.equal(await events.replaceWebhookSecret(h.id, 'sealed:h', 's3cret'), true);
      assert.deepEqual((await events.listWebhooks(repo.id)).map((w) => w.id), [h.id]);
      assert.deepEqual((await events.listActiveWebhooks()).map((w) => [w.id, w.repository]), [[h.id, 'acme/prod']]);
      await events.updateWebhook(off.id, { active: true, events: ['pull', 'push'], url: 'http://x/o2' });
      const changed = (await events.findWebhook(off.id))!;
      assert.deepEqual([changed.active, changed.events, changed.url], [true, ['pull', 'push'], 'http://x/o2']);
      assert.equal((await events.listActiveWebhooks()).length, 2);

      await events.createDelivery({ id: 'd-1', webhookId: h.id, event: 'ping', payload: '{}', nextAttemptAt: 0, eventId: null });
      assert.equal(await events.deleteWebhook(h.id), true);
      assert.equal(await events.deleteWebhook(h.id), false);
      assert.equal(await events.findDelivery('d-1'), undefined);
    });

    withEvents('webhook deliveries: created with their event, claimed once, retried, finished', async (events, access) => {
      const acme = (await access.findOwner('acme'))!;
      const repo = await access.createRepository(acme.id, 'prod', 'private', '');
      const h = await events.createWebhook({ repositoryId: repo.id, url: 'http://x/h', secret: 's', events: ['push'], active: true, createdBy: 'a' });
      let eventId = 0;
      await events.recordEvents([
        { event: ev(1000) },
        {
          event: ev(1001, { action: 'push' }),
          deliveries: (id) => {
            eventId = id;
            return [{ id: 'dlv-1', webhookId: h.id, event: 'push', payload: `{"eventId":${id}}`, nextAttemptAt: 1001 }];
          },
        },
        { event: ev(1002) },
      ]);
      const pushed = (await events.listEvents({ actions: ['push'] }, { limit: 1 }))[0]!;
      assert.equal(eventId, pushed.id, 'the delivery gets the id of its own event');
      const d0 = (await events.findDelivery('dlv-1'))!;
      assert.deepEqual([d0.status, d0.attempts, d0.eventId, d0.payload], ['pending', 0, pushed.id, `{"eventId":${pushed.id}}`]);

      assert.deepEqual(await events.claimDeliveries(1000, 5000, 10), [], 'not due yet');
      const [a, b] = await Promise.all([events.claimDeliveries(2000, 5000, 10), events.claimDeliveries(2000, 5000, 10)]);
      assert.equal(a.length + b.length, 1, 'claimed by exactly one');
      const claimed = [...a, ...b][0]!;
      assert.deepEqual([claimed.url, claimed.secret, claimed.active, claimed.attempts], ['http://x/h', 's', true, 1]);
      assert.deepEqual(await events.claimDeliveries(3000, 9000, 10), [], 'held until lockUntil');
      await events.finishAttempt('dlv-1', { status: 'pending', responseStatus: 500, error: 'HTTP 500', nextAttemptAt: 4000, at: 3000 });
      assert.deepEqual(await events.claimDeliveries(3500, 9000, 10), [], 'released, but not due before nextAttemptAt');
      const again = await events.claimDeliveries(4000, 9000, 10, ['dlv-1']);
      assert.equal(again[0]?.attempts, 2);
      await events.finishAttempt('dlv-1', { status: 'delivered', responseStatus: 204, error: null, nextAttemptAt: 4000, at: 4100 });
      const done = (await events.findDelivery('dlv-1'))!;
      assert.deepEqual([done.status, done.attempts, done.responseStatus, done.error, done.deliveredAt, done.lastAttemptAt], ['delivered', 2, 204, null, 4100, 4100]);
      assert.deepEqual(await events.claimDeliveries(99_999, 999_999, 10), [], 'delivered is never claimed again');
      assert.deepEqual((await events.listDeliveries(h.id, 10)).map((x) => x.id), ['dlv-1']);
      assert.deepEqual(await events.claimDeliveries(99_999, 999_999, 10, []), []);
    });

    withEvents('pull statistics: per day, tag, credential, actor, client, image; only successful pulls in range; blob downloads add bytes', async (events, access) => {
      const acme = (await access.findOwner('acme'))!;
      const repo = await access.createRepository(acme.id, 'prod', 'private', '');
      const u = await access.createUser({ username: 'cust', passwordHash: null, siteAdmin: false, email: null });
      const tok = await access.createCredential({ kind: 'entitlement', userId: u.id, repositoryId: repo.id, name: 'customer-a', prefix: 'p', secretHash: 'h', expiresAt: null, downloadLimit: null });
      const day = 86_400_000;
      const t0 = 20_000 * day; // a UTC midnight
      const rows: NewEvent[] = [
        ev(t0 + 1, { reference: 'v1', bytes: 10 }),
        ev(t0 + 2, { reference: 'v1', bytes: 10, clientIp: '10.0.0.2' }),
        ev(t0 + day + 5, { reference: 'v2', bytes: 20, actorKind: 'entitlement', actor: `token:${tok.id}`, credentialId: tok.id, clientIp: '10.0.0.3' }),
        ev(t0 + day + 6, { reference: d('m'), bytes: 20, image: 'acme/prod/other', actorKind: 'entitlement', actor: `token:${tok.id}`, credentialId: tok.id, clientIp: '10.0.0.3' }),
        ev(t0 + day + 7, { reference: 'v2', status: 304, bytes: 0, actorKind: 'api_key', actor: 'alice', credentialId: 99_999 }),
        // blob downloads: bytes, no pulls (a client that only downloaded is in the totals, not the lists)
        ev(t0 + 6, { action: 'download', reference: null, digest: d('layer'), bytes: 1000 }),
        ev(t0 + day + 8, { action: 'download', reference: null, digest: d('layer'), bytes: 500, actorKind: 'entitlement', actor: `token:${tok.id}`, credentialId: tok.id, clientIp: '10.0.0.3' }),
        ev(t0 + day + 9, { action: 'download', reference: null, digest: d('layer'), bytes: 7, clientIp: '10.0.0.9' }),
        ev(t0 + day + 10, { action: 'download', reference: null, digest: d('layer'), bytes: 99, status: 404 }),
        // not counted: a failure, a push, another repository, out of range
        ev(t0 + 3, { status: 404 }),
        ev(t0 + 4, { action: 'push' }),
        ev(t0 + 5, { repository: 'acme/dev', image: 'acme/dev/app' }),
        ev(t0 + 3 * day, {}),
      ];
      await events.recordEvents(rows.map((event) => ({ event })));
      const s = await events.pullStats('acme/prod', t0, t0 + 2 * day, 100);
      assert.equal(s.pulls, 5);
      assert.equal(s.bytes, 60 + 1000 + 500 + 7);
      assert.equal(s.uniqueClients, 3);
      assert.equal(s.uniqueActors, 2, 'alice (password and API key) and the token');
      assert.deepEqual(s.perDay, [
        { day: t0, pulls: 2, bytes: 1020, uniqueClients: 2 },
        { day: t0 + day, pulls: 3, bytes: 547, uniqueClients: 2 },
      ]);
      assert.deepEqual(s.perTag, [
        { image: 'acme/prod/app', tag: 'v1', pulls: 2 },
        { image: 'acme/prod/app', tag: 'v2', pulls: 2 },
      ]);
      assert.deepEqual(
        s.perCredential.map((c) => [c.credentialId, c.kind, c.name, c.actor, c.pulls, c.bytes]),
        [
          [tok.id, 'entitlement', 'customer-a', `token:${tok.id}`, 2, 540],
          [99_999, null, null, 'alice', 1, 0],
        ],
      );
      assert.deepEqual(s.perActor, [
        { actorKind: 'user', actor: 'alice', pulls: 2, bytes: 1027 },
        { actorKind: 'entitlement', actor: `token:${tok.id}`, pulls: 2, bytes: 540 },
        { actorKind: 'api_key', actor: 'alice', pulls: 1, bytes: 0 },
      ]);
      assert.deepEqual(s.perClient.map((c) => [c.clientIp, c.pulls, c.bytes]), [['10.0.0.1', 2, 1010], ['10.0.0.3', 2, 540], ['10.0.0.2', 1, 10]]);
      assert.deepEqual(s.topImages, [
        { image: 'acme/prod/app', pulls: 4, bytes: 1547 },
        { image: 'acme/prod/other', pulls: 1, bytes: 20 },
      ]);
      const top1 = await events.pullStats('acme/prod', t0, t0 + 2 * day, 1);
      assert.equal(top1.perClient.length, 1);
      const none = await events.pullStats('acme/none', t0, t0 + 2 * day, 10);
      assert.deepEqual([none.pulls, none.bytes, none.uniqueClients, none.perDay], [0, 0, 0, []]);
    });

    withMeta('the catalog can be restricted to repositories', async (meta) => {
      const a = await image(meta, 'acme/one/app');
      await image(meta, 'acme/two/app');
      assert.deepEqual(await meta.listImageNames({ limit: 10, repositoryIds: [a.repositoryId] }), ['acme/one/app']);
      assert.deepEqual(await meta.listImageNames({ limit: 10, repositoryIds: [] }), []);
    });

    withStores('lifecycle: removing an image, a repository, an org or a user takes their rows and leaves blob rows to GC', async (meta, access) => {
      const a = await image(meta, 'acme/prod/app');
      const b = await image(meta, 'acme/prod/other');
      const c = await image(meta, 'acme/dev/app');
      for (const img of [a, b, c]) {
        await meta.saveBlob(img.id, d('layer'), 5);
        assert.ok((await meta.saveManifest(manifestInput(img.id, `m-${img.id}`, { tag: 'v1', refs: [{ digest: d('layer'), kind: 'layer' }], requireBlobs: [{ digest: d('layer'), size: 5 }] }))).ok);
      }
      await meta.saveUpload({ id: 'u-a', imageId: a.id, startedAt: 1 });
      assert.equal(await meta.removeImage(a.id), true);
      assert.equal(await meta.removeImage(a.id), false);
      assert.equal(await meta.findImage('acme/prod/app'), undefined);
      assert.equal(await meta.findUpload('u-a'), undefined, 'uploads go with the image');
      assert.equal(await meta.findTaggedManifest(a.id, 'v1'), undefined);
      assert.deepEqual(await meta.findBlob(d('layer')), { digest: d('layer'), size: 5, generation: 0 }, 'the blob row stays for GC');
      assert.ok(await meta.findTaggedManifest(b.id, 'v1'), 'other images untouched');

      assert.equal(await access.removeRepository(b.repositoryId), true);
      assert.equal(await access.removeRepository(b.repositoryId), false);
      assert.equal(await access.findRepository('acme', 'prod'), undefined);
      assert.equal(await meta.findImage('acme/prod/other'), undefined);
      assert.ok(await meta.findImage('acme/dev/app'));

      const acme = (await access.findOwner('acme'))!;
      assert.equal(await access.removeOwner(acme.id), true);
      assert.equal(await access.findOwner('acme'), undefined);
      assert.equal(await access.findRepository('acme', 'dev'), undefined);
      assert.equal(await meta.findImage('acme/dev/app'), undefined);
      assert.equal(await access.removeOwner(acme.id), false);

      // a user: their namespace and API keys go; tokens they issued elsewhere stay
      const alice = await access.createUser({ username: 'alice', passwordHash: 'h', siteAdmin: false, email: null });
      const own = await image(meta, 'alice/stuff/app');
      const other = (await access.findOwner('other'))!;
      const shared = await access.createRepository(other.id, 'shared', 'private', '');
      await access.setMembership(alice.id, { repositoryId: shared.id }, 'admin');
      const key = await access.createCredential({ kind: 'api_key', userId: alice.id, repositoryId: null, name: 'k', prefix: 'p', secretHash: 'hk', expiresAt: null, downloadLimit: null });
      const tok = await access.createCredential({ kind: 'entitlement', userId: alice.id, repositoryId: shared.id, name: 't', prefix: 'p', secretHash: 'ht', expiresAt: null, downloadLimit: null });
      assert.equal(await access.removeUser(alice.id), true);
      assert.equal(await access.findUserByName('alice'), undefined);
      assert.equal(await access.findOwner('alice'), undefined);
      assert.equal(await meta.findImage(own.name), undefined);
      assert.equal(await access.findCredential(key.id), undefined);
      assert.deepEqual(await access.listMemberships({ repositoryId: shared.id }), []);
      const kept = await access.findCredential(tok.id);
      assert.equal(kept?.userId, null, "the repository's token stays, without its issuer");
      assert.equal(await access.removeUser(alice.id), false);
    });

    withStores('lifecycle: passwords, revoking every key of a user, leaving an owner', async (_meta, access) => {
      const bob = await access.createUser({ username: 'bob', passwordHash: 'old', siteAdmin: false, email: null });
      const carol = await access.createUser({ username: 'carol', passwordHash: null, siteAdmin: false, email: null });
      assert.equal(await access.updatePassword(bob.id, 'new'), true);
      assert.equal((await access.findUserById(bob.id))?.passwordHash, 'new');
      assert.equal(await access.updatePassword(99_999, 'x'), false);
      const mk = (userId: number, hash: string) =>
        access.createCredential({ kind: 'api_key', userId, repositoryId: null, name: 'k', prefix: 'p', secretHash: hash, expiresAt: null, downloadLimit: null });
      const k1 = await mk(bob.id, 'h1');
      await mk(bob.id, 'h2');
      await access.revokeCredential(k1.id, 5);
      const c1 = await mk(carol.id, 'h3');
      assert.equal(await access.revokeUserCredentials(bob.id, 10), 1, 'only the live one');
      assert.ok((await access.listCredentials({ userId: bob.id, kind: 'api_key' })).every((c) => c.revokedAt !== null));
      assert.equal((await access.findCredential(k1.id))?.revokedAt, 5, 'an earlier revocation keeps its time');
      assert.equal((await access.findCredential(c1.id))?.revokedAt, null, "others' keys untouched");

      const acme = (await access.findOwner('acme'))!;
      await access.setMembership(bob.id, { ownerId: acme.id }, 'owner');
      await access.setMembership(carol.id, { ownerId: acme.id }, 'write');
      assert.deepEqual(await access.listOrgsSolelyOwnedBy(bob.id), ['acme']);
      assert.equal(await access.leaveOwner(bob.id, acme.id), 'last_owner');
      assert.equal(await access.leaveOwner(carol.id, acme.id), 'removed');
      assert.equal(await access.leaveOwner(carol.id, acme.id), 'not_member');
      await access.setMembership(carol.id, { ownerId: acme.id }, 'owner');
      assert.deepEqual(await access.listOrgsSolelyOwnedBy(bob.id), []);
      // two owners leaving at once: one stays
      const both = await Promise.all([access.leaveOwner(bob.id, acme.id), access.leaveOwner(carol.id, acme.id)]);
      assert.deepEqual(both.slice().sort(), ['last_owner', 'removed']);
      assert.equal((await access.listMemberships({ ownerId: acme.id })).filter((m) => m.role === 'owner').length, 1);
    });
  });
}
