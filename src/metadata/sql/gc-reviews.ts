import { type Kysely, type Transaction } from 'kysely';
import { GC_BLOB, GC_MANIFEST, manifestSubject } from '../gc-store.ts';
import type { NewJob } from '../job-store.ts';
import { enqueueJobs } from './job-store.ts';
import type { Database } from './schema.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** Review jobs for blobs, due now (the reviewer applies the grace period from `enqueuedAt`). */
export function blobReviews(digests: Iterable<string>, now = Date.now()): NewJob[] {
  return [...new Set(digests)].map((d) => ({ kind: GC_BLOB, subject: d, runAfter: now }));
}

export function manifestReviews(imageId: number, digests: Iterable<string>, now = Date.now()): NewJob[] {
  return [...new Set(digests)].map((d) => ({ kind: GC_MANIFEST, subject: manifestSubject(imageId, d), runAfter: now }));
}

/**
 * Removes a manifest with its tags and refs, inside `trx`, and enqueues reviews of what it
 * named: its config and layer blobs, its child manifests, and its referrers in the image.
 */
export async function removeManifestRows(trx: Db, imageId: number, manifestId: number, digest: string): Promise<void> {
  const refs = await trx.selectFrom('manifest_refs').select(['child_digest', 'kind']).where('manifest_id', '=', manifestId).execute();
  const referrers = await trx.selectFrom('manifests').select('digest').where('image_id', '=', imageId).where('subject_digest', '=', digest).execute();
  await enqueueJobs(trx, [
    ...blobReviews(refs.filter((r) => r.kind === 'config' || r.kind === 'layer').map((r) => r.child_digest)),
    ...manifestReviews(imageId, [...refs.filter((r) => r.kind === 'manifest').map((r) => r.child_digest), ...referrers.map((r) => r.digest)]),
  ]);
  await trx.deleteFrom('tags').where('manifest_id', '=', manifestId).execute();
  await trx.deleteFrom('manifest_refs').where('manifest_id', '=', manifestId).execute();
  await trx.deleteFrom('manifests').where('id', '=', manifestId).execute();
}

/**
 * For whoever deletes images, repositories or owners (their rows cascade to manifests, refs,
 * tags and blob links): call this inside the same transaction, BEFORE the DELETE, so every blob
 * the doomed images link or name gets a garbage-collection review. Returns how many.
 */
export async function enqueueGcForImages(trx: Db, which: { imageIds: number[] } | { repositoryId: number } | { ownerId: number }): Promise<number> {
  let ids: number[];
  if ('imageIds' in which) ids = which.imageIds;
  else if ('repositoryId' in which) ids = (await trx.selectFrom('images').select('id').where('repository_id', '=', which.repositoryId).execute()).map((r) => Number(r.id));
  else {
    ids = (
      await trx
        .selectFrom('images')
        .innerJoin('repositories', 'repositories.id', 'images.repository_id')
        .select('images.id')
        .where('repositories.owner_id', '=', which.ownerId)
        .execute()
    ).map((r) => Number(r.id));
  }
  const digests = new Set<string>();
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    for (const r of await trx.selectFrom('image_blobs').select('digest').distinct().where('image_id', 'in', chunk).execute()) digests.add(r.digest);
    const named = await trx
      .selectFrom('manifest_refs')
      .innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id')
      .select('manifest_refs.child_digest')
      .distinct()
      .where('manifests.image_id', 'in', chunk)
      .where('manifest_refs.kind', 'in', ['config', 'layer'])
      .execute();
    for (const r of named) digests.add(r.child_digest);
  }
  await enqueueJobs(trx, blobReviews(digests));
  return digests.size;
}
