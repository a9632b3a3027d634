import { type Kysely, type Selectable, type Transaction, sql } from 'kysely';
import type { ImageName } from '../metadata-store.ts';
import type {
  BlobRecord,
  CachedManifestRecord,
  ImageRecord,
  ManifestRecord,
  MetadataStore,
  Page,
  ReferrerRecord,
  SaveManifestInput,
  SaveBlobResult,
  SaveManifestResult,
  TagEntry,
  UploadRecord,
} from '../metadata-store.ts';
import type { Database } from './schema.ts';
import type { Dialect } from './migrations.ts';
import type { BlobState } from '../gc-store.ts';
import { enqueueJobs } from './job-store.ts';
import { blobReviews, enqueueGcForImages, manifestReviews, removeManifestRows } from './gc-reviews.ts';
import { addedBytes, usageOf } from './lifecycle-store.ts';
import { Precompiled } from './precompiled.ts';
import type { ReadCache } from './read-cache.ts';

type ManifestRow = Selectable<Database['manifests']>;

function toManifest(r: ManifestRow): ManifestRecord {
  return {
    id: Number(r.id),
    imageId: Number(r.image_id),
    digest: r.digest,
    mediaType: r.media_type,
    artifactType: r.artifact_type,
    subjectDigest: r.subject_digest,
    size: Number(r.size),
    payload: Buffer.isBuffer(r.payload) ? r.payload : Buffer.from(r.payload),
    annotations: r.annotations ? (JSON.parse(r.annotations) as Record<string, string>) : null,
    createdAt: Number(r.created_at),
    cached: Number(r.cached) === 1,
  };
}

/** The one Kysely implementation of MetadataStore, for SQLite and PostgreSQL. */
export class SqlMetadataStore implements MetadataStore {
  /** The reads every pull makes, compiled once (parameters in SQL order). */
  private readonly hot;

  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: Dialect,
    /** SQLite: the hot reads' results, kept while the database is unchanged. */
    readCache?: ReadCache,
    /** SQLite (group commit): marks the held connection's last commit as not waiting for its log sync. */
    private readonly commitWithoutSync?: () => void,
  ) {
    const c = readCache;
    this.hot = {
      image: new Precompiled(db.selectFrom('images').select(['id', 'name', 'repository_id']).where('name', '=', ''), 1, c),
      imageBlob: new Precompiled(
        db
          .selectFrom('image_blobs')
          .innerJoin('blobs', 'blobs.digest', 'image_blobs.digest')
          .select(['blobs.digest', 'blobs.size', 'blobs.generation'])
          .where('image_blobs.image_id', '=', 0)
          .where('image_blobs.digest', '=', '')
          .where('blobs.state', '=', 'live'),
        3,
        c,
      ),
      manifest: new Precompiled(db.selectFrom('manifests').selectAll().where('image_id', '=', 0).where('digest', '=', ''), 2, c),
      taggedManifest: new Precompiled(
        db
          .selectFrom('tags')
          .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
          .selectAll('manifests')
          .where('tags.image_id', '=', 0)
          .where('tags.name', '=', ''),
        2,
        c,
      ),
    };
  }

  async findImage(name: string): Promise<ImageRecord | undefined> {
    const r = await this.hot.image.first(this.db, [name]);
    return r && { id: Number(r.id), name: r.name, repositoryId: Number(r.repository_id) };
  }

  async ensureImage(name: ImageName): Promise<ImageRecord | undefined> {
    const found = await this.findImage(name.full);
    if (found) return found;
    const now = Date.now();
    return this.db.transaction().execute(async (trx) => {
      const owner = await trx.selectFrom('owners').select('id').where('name', '=', name.owner).executeTakeFirst();
      if (!owner) return undefined;
      await trx
        .insertInto('repositories')
        .values({ owner_id: owner.id, name: name.repository, visibility: 'private', description: '', created_at: now })
        .onConflict((oc) => oc.columns(['owner_id', 'name']).doNothing())
        .execute();
      const repo = await trx
        .selectFrom('repositories')
        .select('id')
        .where('owner_id', '=', owner.id)
        .where('name', '=', name.repository)
        .executeTakeFirstOrThrow();
      await trx
        .insertInto('images')
        .values({ repository_id: repo.id, name: name.full, created_at: now })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const img = await trx.selectFrom('images').select(['id', 'name', 'repository_id']).where('name', '=', name.full).executeTakeFirstOrThrow();
      return { id: Number(img.id), name: img.name, repositoryId: Number(img.repository_id) };
    });
  }

  async listImageNames(page: Page & { repositoryIds?: number[] }): Promise<string[]> {
    let q = this.db.selectFrom('images').select('name').orderBy('name').limit(page.limit);
    if (page.after !== undefined) q = q.where('name', '>', page.after);
    if (page.repositoryIds !== undefined) {
      if (page.repositoryIds.length === 0) return [];
      q = q.where('repository_id', 'in', page.repositoryIds);
    }
    return (await q.execute()).map((r) => r.name);
  }

  async findBlob(digest: string): Promise<BlobRecord | undefined> {
    const r = await this.db.selectFrom('blobs').select(['digest', 'size', 'generation']).where('digest', '=', digest).where('state', '=', 'live').executeTakeFirst();
    return r && { digest: r.digest, size: Number(r.size), generation: Number(r.generation) };
  }

  async findBlobState(digest: string): Promise<{ state: BlobState; generation: number; size: number } | undefined> {
    const r = await this.db.selectFrom('blobs').select(['state', 'generation', 'size']).where('digest', '=', digest).executeTakeFirst();
    return r && { state: r.state as BlobState, generation: Number(r.generation), size: Number(r.size) };
  }

  async findImageBlob(imageId: number, digest: string): Promise<BlobRecord | undefined> {
    // Only live blobs are served: one being deleted by garbage collection is already gone.
    const r = await this.hot.imageBlob.first(this.db, [imageId, digest, 'live']);
    return r && { digest: r.digest, size: Number(r.size), generation: Number(r.generation) };
  }

  /**
   * PostgreSQL: locks blob rows for the rest of the transaction, so a garbage-collection
   * decision (FOR UPDATE) and a writer naming the blob (FOR SHARE) run one after the other and
   * the later one sees what the earlier committed. SQLite runs one transaction at a time.
   */
  private async lockBlobs(trx: Transaction<Database>, digests: string[], mode: 'share' | 'update'): Promise<void> {
    if (this.dialect !== 'postgres' || !digests.length) return;
    for (const chunk of chunks([...new Set(digests)].sort(), 500)) {
      const q = trx.selectFrom('blobs').select('digest').where('digest', 'in', chunk).orderBy('digest');
      await (mode === 'share' ? q.forShare() : q.forUpdate()).execute();
    }
  }

  async saveBlob(imageId: number, digest: string, size: number, opts: { cached?: boolean; generation?: number } = {}): Promise<SaveBlobResult> {
    const now = Date.now();
    const generation = opts.generation ?? 0;
    return this.db.transaction().execute(async (trx): Promise<SaveBlobResult> => {
      await trx
        .insertInto('blobs')
        .values({ digest, size, created_at: now, state: 'live', generation, last_used_at: now })
        .onConflict((oc) => oc.column('digest').doNothing())
        .execute();
      await this.lockBlobs(trx, [digest], 'update');
      const row = await trx.selectFrom('blobs').select(['state', 'generation']).where('digest', '=', digest).executeTakeFirstOrThrow();
      let live = Number(row.generation);
      if (row.state === 'live') {
        await trx.updateTable('blobs').set({ last_used_at: now }).where('digest', '=', digest).execute();
      } else {
        // Being collected, or a tombstone: only bytes stored under a later generation may take
        // it over (the sweep deletes exactly the generation it decided on).
        if (generation <= live) return { ok: false, generation: live };
        await trx.updateTable('blobs').set({ state: 'live', generation, size, last_used_at: now }).where('digest', '=', digest).execute();
        live = generation;
      }
      await this.link(trx, imageId, digest, now, opts.cached);
      return { ok: true, generation: live };
    });
  }

  async linkBlob(imageId: number, digest: string, generation: number, opts: { cached?: boolean } = {}): Promise<boolean> {
    const now = Date.now();
    return this.db.transaction().execute(async (trx) => {
      // FOR UPDATE, not SHARE: two links of one blob each holding a share lock and then
      // updating the row would deadlock.
      await this.lockBlobs(trx, [digest], 'update');
      const r = await trx
        .updateTable('blobs')
        .set({ last_used_at: now })
        .where('digest', '=', digest)
        .where('state', '=', 'live')
        .where('generation', '=', generation)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) return false;
      await this.link(trx, imageId, digest, now, opts.cached);
      return true;
    });
  }

  /** Links a live blob to an image and queues its review (it may never be named by a manifest). */
  private async link(trx: Transaction<Database>, imageId: number, digest: string, now: number, cached?: boolean): Promise<void> {
    await trx
      .insertInto('image_blobs')
      .values({ image_id: imageId, digest, created_at: now, cached: cached ? 1 : 0 })
      .onConflict((oc) => oc.columns(['image_id', 'digest']).doNothing())
      .execute();
    await enqueueJobs(trx, blobReviews([digest], now));
  }

  async touchBlob(digest: string, now: number): Promise<void> {
    await this.db.updateTable('blobs').set({ last_used_at: now }).where('digest', '=', digest).where('state', '=', 'live').where('last_used_at', '<', now).execute();
  }

  async removeImageBlob(imageId: number, digest: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx.deleteFrom('image_blobs').where('image_id', '=', imageId).where('digest', '=', digest).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) return false;
      await enqueueJobs(trx, blobReviews([digest]));
      return true;
    });
  }

  async saveUpload(u: UploadRecord): Promise<void> {
    await this.db.insertInto('uploads').values({ id: u.id, image_id: u.imageId, started_at: u.startedAt, started_by: u.startedBy ?? null }).execute();
  }

  async countUploads(filter: { startedBy: string } | { repositoryId: number }): Promise<number> {
    const q =
      'startedBy' in filter
        ? this.db.selectFrom('uploads').where('started_by', '=', filter.startedBy)
        : this.db.selectFrom('uploads').innerJoin('images', 'images.id', 'uploads.image_id').where('images.repository_id', '=', filter.repositoryId);
    const r = await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async findUpload(id: string): Promise<UploadRecord | undefined> {
    const r = await this.db.selectFrom('uploads').selectAll().where('id', '=', id).executeTakeFirst();
    return r && { id: r.id, imageId: Number(r.image_id), startedAt: Number(r.started_at), ...(r.started_by !== null ? { startedBy: r.started_by } : {}) };
  }

  async removeUpload(id: string): Promise<void> {
    const noSync = this.commitWithoutSync;
    if (!noSync) {
      await this.db.deleteFrom('uploads').where('id', '=', id).execute();
      return;
    }
    // Not held up by the log's sync (one sync fewer per completed upload): a removal lost to a
    // power cut leaves a session row without data, which answers BLOB_UPLOAD_UNKNOWN and expires.
    await this.db.connection().execute(async (conn) => {
      await conn.deleteFrom('uploads').where('id', '=', id).execute();
      noSync();
    });
  }

  async listUploadsStartedBefore(time: number): Promise<UploadRecord[]> {
    const rows = await this.db.selectFrom('uploads').selectAll().where('started_at', '<', time).execute();
    return rows.map((r) => ({ id: r.id, imageId: Number(r.image_id), startedAt: Number(r.started_at) }));
  }

  async findManifest(imageId: number, digest: string): Promise<ManifestRecord | undefined> {
    const r = await this.hot.manifest.first(this.db, [imageId, digest]);
    return r && toManifest(r);
  }

  async findTaggedManifest(imageId: number, tag: string): Promise<ManifestRecord | undefined> {
    const r = await this.hot.taggedManifest.first(this.db, [imageId, tag]);
    return r && toManifest(r);
  }

  async saveManifest(m: SaveManifestInput): Promise<SaveManifestResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.saveManifestOnce(m);
      } catch (e) {
        if (!(e instanceof ManifestGoneError) || attempt >= 3) throw e;
      }
    }
  }

  private async saveManifestOnce(m: SaveManifestInput): Promise<SaveManifestResult> {
    const now = Date.now();
    return this.db.transaction().execute(async (trx): Promise<SaveManifestResult> => {
      const missing: string[] = [];
      const sizeMismatch: { digest: string; expected: number; actual: number }[] = [];
      /** Compares required digests and sizes with what `lookup` finds, in chunks of 500. */
      const check = async (required: { digest: string; size: number }[], lookup: (chunk: string[]) => Promise<{ digest: string; size: number }[]>) => {
        const found = new Map<string, number>();
        for (const chunk of chunks([...new Set(required.map((b) => b.digest))], 500)) {
          for (const r of await lookup(chunk)) found.set(r.digest, Number(r.size));
        }
        for (const b of required) {
          const size = found.get(b.digest);
          if (size === undefined) missing.push(b.digest);
          else if (size !== b.size) sizeMismatch.push({ digest: b.digest, expected: b.size, actual: size });
        }
      };
      // Garbage collection decides under FOR UPDATE: lock first, then read what it committed.
      await this.lockBlobs(trx, m.requireBlobs.map((b) => b.digest), 'share');
      await check(m.requireBlobs, (chunk) =>
        trx
          .selectFrom('image_blobs')
          .innerJoin('blobs', 'blobs.digest', 'image_blobs.digest')
          .select(['blobs.digest', 'blobs.size'])
          .where('image_blobs.image_id', '=', m.imageId)
          .where('image_blobs.digest', 'in', chunk)
          .where('blobs.state', '=', 'live')
          .execute(),
      );
      await check(m.requireManifests, (chunk) => {
        const q = trx.selectFrom('manifests').select(['digest', 'size']).where('image_id', '=', m.imageId).where('digest', 'in', chunk);
        return (this.dialect === 'postgres' ? q.forShare() : q).execute();
      });
      if (missing.length || sizeMismatch.length) return { ok: false, missing: [...new Set(missing)], sizeMismatch };
      if (m.tag !== null && this.dialect === 'postgres') {
        // Two pushes of one tag at once must not both read the tag before either writes it
        // (nor a compare-and-swap, expectTagDigest, pass on a stale read):
        // the later would move the tag without knowing it (no review of the manifest it left,
        // which then stays forever; an immutable tag moved). Serialize them per (image, tag),
        // also when the tag does not exist yet (a row lock would have nothing to hold).
        await sql`select pg_advisory_xact_lock(hashtextextended(${`${m.imageId}:${m.tag}`}, 0))`.execute(trx);
      }
      const previousTagDigest = m.tag !== null ? await tagDigest(trx, m.imageId, m.tag) : undefined;
      if (m.expectTagDigest !== undefined && (previousTagDigest ?? null) !== m.expectTagDigest) {
        return { ok: false, missing: [], sizeMismatch: [], tagMoved: previousTagDigest ?? null };
      }
      const denied = await this.policyRefusal(trx, m, previousTagDigest);
      if (denied) return { ok: false, missing: [], sizeMismatch: [], denied };

      // Insert unless present; a concurrent writer of the same digest (another node) wins
      // harmlessly: the content is the same by definition.
      let manifestId: number;
      const ins = await trx
        .insertInto('manifests')
        .values({
          image_id: m.imageId,
          digest: m.digest,
          media_type: m.mediaType,
          artifact_type: m.artifactType,
          subject_digest: m.subjectDigest,
          config_digest: m.configDigest,
          size: m.payload.length,
          payload: m.payload,
          annotations: m.annotations ? JSON.stringify(m.annotations) : null,
          created_at: now,
          cached: m.cached ? 1 : 0,
        })
        .onConflict((oc) => oc.columns(['image_id', 'digest']).doNothing())
        .returning('id')
        .executeTakeFirst();
      if (ins) {
        manifestId = Number(ins.id);
        for (const chunk of chunks(m.refs, 200)) {
          await trx
            .insertInto('manifest_refs')
            .values(chunk.map((r) => ({ manifest_id: manifestId, child_digest: r.digest, kind: r.kind })))
            .execute();
        }
      } else {
        // Locked so that a garbage-collection decision on it waits for this tag to land.
        const q = trx.selectFrom('manifests').select('id').where('image_id', '=', m.imageId).where('digest', '=', m.digest);
        const existing = await (this.dialect === 'postgres' ? q.forShare() : q).executeTakeFirst();
        if (!existing) throw new ManifestGoneError(); // collected between our insert and this read: try again
        manifestId = Number(existing.id);
      }
      if (m.tag !== null) {
        await trx
          .insertInto('tags')
          .values({ image_id: m.imageId, name: m.tag, manifest_id: manifestId, updated_at: now })
          .onConflict((oc) => oc.columns(['image_id', 'name']).doUpdateSet({ manifest_id: manifestId, updated_at: now }))
          .execute();
        if (previousTagDigest !== undefined && previousTagDigest !== m.digest) await enqueueJobs(trx, manifestReviews(m.imageId, [previousTagDigest], now));
      } else {
        await enqueueJobs(trx, manifestReviews(m.imageId, [m.digest], now)); // untagged: collectable after the grace period
      }
      if (m.jobs?.length) await enqueueJobs(trx, m.jobs);
      return previousTagDigest === undefined ? { ok: true } : { ok: true, previousTagDigest };
    });
  }

  /** Immutable tag and quotas, checked inside the manifest's transaction. */
  private async policyRefusal(trx: Transaction<Database>, m: SaveManifestInput, currentTagDigest: string | undefined): Promise<string | undefined> {
    if (m.immutableTag && currentTagDigest !== undefined && currentTagDigest !== m.digest) {
      return `tag "${m.tag}" is immutable (it points at ${currentTagDigest}): push a new tag instead`;
    }
    for (const q of m.quotas ?? []) {
      const added = await addedBytes(trx, q.scope, m.requireBlobs);
      if (added === 0) continue;
      const used = await usageOf(trx, q.scope);
      if (used + added > q.limit) return `storage quota of ${q.label} exceeded: ${used} bytes used + ${added} new > ${q.limit} bytes allowed`;
    }
    return undefined;
  }

  async listManifestTags(imageId: number, digest: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('tags')
      .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
      .select('tags.name')
      .where('tags.image_id', '=', imageId)
      .where('manifests.digest', '=', digest)
      .orderBy('tags.name')
      .execute();
    return rows.map((r) => r.name);
  }

  async removeManifest(imageId: number, digest: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('manifests').select('id').where('image_id', '=', imageId).where('digest', '=', digest).executeTakeFirst();
      if (!row) return false;
      await removeManifestRows(trx, imageId, Number(row.id), digest);
      return true;
    });
  }

  async removeImage(imageId: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      // Every blob the image links or names gets a garbage-collection review before the rows
      // go; manifests, refs, tags, links and uploads go by ON DELETE CASCADE.
      await enqueueGcForImages(trx, { imageIds: [imageId] });
      const r = await trx.deleteFrom('images').where('id', '=', imageId).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    });
  }

  async removeTag(imageId: number, tag: string, expectDigest?: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const q = trx
        .selectFrom('tags')
        .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
        .select('manifests.digest')
        .where('tags.image_id', '=', imageId)
        .where('tags.name', '=', tag);
      // A concurrent push moving the tag waits, and we see where it points afterwards.
      const row = await (this.dialect === 'postgres' ? q.forUpdate('tags') : q).executeTakeFirst();
      if (!row || (expectDigest !== undefined && row.digest !== expectDigest)) return false;
      await trx.deleteFrom('tags').where('image_id', '=', imageId).where('name', '=', tag).execute();
      await enqueueJobs(trx, manifestReviews(imageId, [row.digest]));
      return true;
    });
  }

  async listCachedManifests(repositoryId: number, limit: number): Promise<CachedManifestRecord[]> {
    const rows = await this.db
      .selectFrom('manifests')
      .innerJoin('images', 'images.id', 'manifests.image_id')
      .select(['images.name as image', 'manifests.id', 'manifests.digest', 'manifests.media_type', 'manifests.size', 'manifests.created_at'])
      .where('images.repository_id', '=', repositoryId)
      .where('manifests.cached', '=', 1)
      .orderBy('images.name')
      .orderBy('manifests.created_at', 'desc')
      .limit(limit)
      .execute();
    const tags = rows.length
      ? await this.db.selectFrom('tags').select(['manifest_id', 'name']).where('manifest_id', 'in', rows.map((r) => r.id)).orderBy('name').execute()
      : [];
    return rows.map((r) => ({
      image: r.image,
      digest: r.digest,
      mediaType: r.media_type,
      size: Number(r.size),
      tags: tags.filter((t) => Number(t.manifest_id) === Number(r.id)).map((t) => t.name),
      createdAt: Number(r.created_at),
    }));
  }

  async isBlobCached(imageId: number, digest: string): Promise<boolean> {
    const r = await this.db.selectFrom('image_blobs').select('cached').where('image_id', '=', imageId).where('digest', '=', digest).executeTakeFirst();
    return !!r && Number(r.cached) === 1;
  }

  async listTags(imageId: number, page: Page): Promise<string[]> {
    let q = this.db.selectFrom('tags').select('name').where('image_id', '=', imageId).orderBy('name').limit(page.limit);
    if (page.after !== undefined) q = q.where('name', '>', page.after);
    return (await q.execute()).map((r) => r.name);
  }

  async listTagEntries(imageId: number, page: Page & { contains?: string; newestFirst?: boolean }): Promise<TagEntry[]> {
    let q = this.db
      .selectFrom('tags')
      .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
      .select(['tags.name', 'manifests.digest', 'tags.updated_at'])
      .where('tags.image_id', '=', imageId)
      .limit(page.limit);
    if (page.newestFirst) {
      if (page.after !== undefined) throw new Error('listTagEntries: newestFirst takes no "after"');
      q = q.orderBy('tags.updated_at', 'desc').orderBy('tags.name');
    } else q = q.orderBy('tags.name');
    if (page.after !== undefined) q = q.where('tags.name', '>', page.after);
    if (page.contains) {
      // instr/strpos: a literal, case-sensitive substring test on both dialects (no LIKE escaping).
      const c = page.contains;
      q = q.where(({ fn, val }) => fn<number>(this.dialect === 'postgres' ? 'strpos' : 'instr', ['tags.name', val(c)]), '>', 0);
    }
    return (await q.execute()).map((r) => ({ name: r.name, digest: r.digest, updatedAt: Number(r.updated_at) }));
  }

  async countTags(imageId: number): Promise<number> {
    const r = await this.db.selectFrom('tags').select((eb) => eb.fn.countAll<string | number>().as('n')).where('image_id', '=', imageId).executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  async listReferrers(imageId: number, subjectDigest: string, artifactType?: string): Promise<ReferrerRecord[]> {
    let q = this.db
      .selectFrom('manifests')
      .select(['digest', 'media_type', 'artifact_type', 'size', 'annotations'])
      .where('image_id', '=', imageId)
      .where('subject_digest', '=', subjectDigest)
      .orderBy('created_at')
      .orderBy('id');
    if (artifactType !== undefined) q = q.where('artifact_type', '=', artifactType);
    const rows = await q.execute();
    return rows.map((r) => ({
      digest: r.digest,
      mediaType: r.media_type,
      artifactType: r.artifact_type,
      size: Number(r.size),
      annotations: r.annotations ? (JSON.parse(r.annotations) as Record<string, string>) : null,
    }));
  }

  async totalBlobBytes(): Promise<number> {
    const r = await this.db.selectFrom('blobs').select((eb) => eb.fn.sum<number>('size').as('total')).where('state', '=', 'live').executeTakeFirst();
    return Number(r?.total ?? 0);
  }

  async ping(): Promise<void> {
    await this.db.selectFrom('berth_migrations' as never).select((eb) => eb.lit(1).as('one')).limit(1).execute();
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** A manifest row vanished (garbage collection) between saveManifest's insert and its read. */
class ManifestGoneError extends Error {}

/** The digest a tag points at, inside a transaction; undefined when the tag does not exist. */
async function tagDigest(trx: Transaction<Database>, imageId: number, tag: string): Promise<string | undefined> {
  const r = await trx
    .selectFrom('tags')
    .innerJoin('manifests', 'manifests.id', 'tags.manifest_id')
    .select('manifests.digest')
    .where('tags.image_id', '=', imageId)
    .where('tags.name', '=', tag)
    .executeTakeFirst();
  return r?.digest;
}
