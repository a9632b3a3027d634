import { type Kysely, type Transaction, sql } from 'kysely';
import type { BlobDecision, BlobState, DigestFacts, GcStore, ManifestDecision, ReviewTiming } from '../gc-store.ts';
import type { Database } from './schema.ts';
import type { Dialect } from './migrations.ts';
import { removeManifestRows } from './gc-reviews.ts';

/** Rolls a dry run's transaction back after deciding. */
class DryRun extends Error {
  constructor(readonly result: unknown) {
    super('dry run');
  }
}

/** The one Kysely implementation of GcStore, for SQLite and PostgreSQL. */
export class SqlGcStore implements GcStore {
  constructor(
    readonly db: Kysely<Database>,
    readonly dialect: Dialect,
  ) {}

  /** Runs `fn` in a transaction; a dry run's changes are rolled back and its answer kept. */
  private async decide<T>(dryRun: boolean, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const r = await fn(trx);
        if (dryRun) throw new DryRun(r);
        return r;
      });
    } catch (e) {
      if (e instanceof DryRun) return e.result as T;
      throw e;
    }
  }

  /**
   * SQLite: a transaction that reads first and writes later fails with SQLITE_BUSY when another
   * connection wrote in between; writing first takes the write lock up front (waiting on the
   * busy timeout), so the decision reads and writes one consistent state.
   */
  private async writeLock(trx: Transaction<Database>): Promise<void> {
    if (this.dialect === 'sqlite') await trx.updateTable('jobs').set({ id: sql`id` }).where('id', '=', -1).execute();
  }

  decideBlob(digest: string, t: ReviewTiming): Promise<BlobDecision> {
    return this.decide(t.dryRun, async (trx): Promise<BlobDecision> => {
      await this.writeLock(trx);
      let q = trx.selectFrom('blobs').select(['state', 'generation', 'size', 'last_used_at']).where('digest', '=', digest);
      if (this.dialect === 'postgres') q = q.forUpdate(); // a manifest PUT naming it waits, then sees our verdict
      const blob = await q.executeTakeFirst();
      if (!blob || blob.state === 'gone') return { action: 'absent' };
      if (blob.state === 'deleting') return { action: 'sweep', generation: Number(blob.generation), size: Number(blob.size) };
      const refs = await trx
        .selectFrom('manifest_refs')
        .select((eb) => eb.fn.countAll<string | number>().as('n'))
        .where('child_digest', '=', digest)
        .where('kind', 'in', ['config', 'layer'])
        .executeTakeFirst();
      const n = Number(refs?.n ?? 0);
      if (n > 0) return { action: 'keep', reason: `named by ${n} manifest${n === 1 ? '' : 's'}` };
      const due = Math.max(t.enqueuedAt, Number(blob.last_used_at)) + t.graceMs;
      if (t.now < due) return { action: 'postpone', until: due, reason: 'unreferenced; within the grace period of its last use' };
      await trx.updateTable('blobs').set({ state: 'deleting', last_used_at: t.now }).where('digest', '=', digest).execute();
      await trx.deleteFrom('image_blobs').where('digest', '=', digest).execute();
      return { action: 'sweep', generation: Number(blob.generation), size: Number(blob.size) };
    });
  }

  async finishBlob(digest: string, generation: number): Promise<boolean> {
    const r = await this.db
      .updateTable('blobs')
      .set({ state: 'gone', last_used_at: Date.now() })
      .where('digest', '=', digest)
      .where('state', '=', 'deleting')
      .where('generation', '=', generation)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  decideManifest(imageId: number, digest: string, t: ReviewTiming & { collectUntagged: boolean }): Promise<ManifestDecision> {
    return this.decide(t.dryRun, async (trx): Promise<ManifestDecision> => {
      await this.writeLock(trx);
      let q = trx
        .selectFrom('manifests')
        .innerJoin('images', 'images.id', 'manifests.image_id')
        .select(['manifests.id', 'manifests.subject_digest', 'manifests.created_at', 'manifests.size', 'images.name'])
        .where('manifests.image_id', '=', imageId)
        .where('manifests.digest', '=', digest);
      if (this.dialect === 'postgres') q = q.forUpdate('manifests'); // a tag push onto it waits, then sees our verdict
      const m = await q.executeTakeFirst();
      if (!m) return { action: 'absent' };
      const tags = await trx.selectFrom('tags').select('name').where('manifest_id', '=', m.id).limit(3).execute();
      if (tags.length) return { action: 'keep', reason: `tagged ${tags.map((x) => x.name).join(', ')}` };
      const parent = await trx
        .selectFrom('manifest_refs')
        .innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id')
        .select('manifests.digest')
        .where('manifest_refs.child_digest', '=', digest)
        .where('manifest_refs.kind', '=', 'manifest')
        .where('manifests.image_id', '=', imageId)
        .executeTakeFirst();
      if (parent) return { action: 'keep', reason: `child of index ${parent.digest}` };
      let reason: string;
      if (m.subject_digest !== null) {
        const subject = await trx.selectFrom('manifests').select('id').where('image_id', '=', imageId).where('digest', '=', m.subject_digest).executeTakeFirst();
        if (subject) return { action: 'keep', reason: `referrer of ${m.subject_digest}, which is present` };
        reason = `referrer whose subject ${m.subject_digest} is gone`;
      } else {
        if (!t.collectUntagged) return { action: 'keep', reason: 'untagged (gc.collectUntagged is off)' };
        reason = 'untagged and named by no index';
      }
      const due = Math.max(t.enqueuedAt, Number(m.created_at)) + t.graceMs;
      if (t.now < due) return { action: 'postpone', until: due, reason: `${reason}; within the grace period` };
      await removeManifestRows(trx, imageId, Number(m.id), digest);
      return { action: 'delete', image: m.name, size: Number(m.size), reason };
    });
  }

  async explainDigest(digest: string): Promise<DigestFacts> {
    const b = await this.db.selectFrom('blobs').selectAll().where('digest', '=', digest).executeTakeFirst();
    const referencedBy = await this.db
      .selectFrom('manifest_refs')
      .innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id')
      .innerJoin('images', 'images.id', 'manifests.image_id')
      .select(['images.name', 'manifests.digest', 'manifest_refs.kind'])
      .where('manifest_refs.child_digest', '=', digest)
      .orderBy('images.name')
      .limit(50)
      .execute();
    const linked = await this.db
      .selectFrom('image_blobs')
      .innerJoin('images', 'images.id', 'image_blobs.image_id')
      .select('images.name')
      .where('image_blobs.digest', '=', digest)
      .orderBy('images.name')
      .limit(50)
      .execute();
    const ms = await this.db
      .selectFrom('manifests')
      .innerJoin('images', 'images.id', 'manifests.image_id')
      .select(['manifests.id', 'manifests.image_id', 'images.name', 'manifests.subject_digest', 'manifests.created_at'])
      .where('manifests.digest', '=', digest)
      .orderBy('images.name')
      .limit(50)
      .execute();
    const manifests: DigestFacts['manifests'] = [];
    for (const m of ms) {
      const tags = await this.db.selectFrom('tags').select('name').where('manifest_id', '=', m.id).orderBy('name').limit(50).execute();
      const indexes = await this.db
        .selectFrom('manifest_refs')
        .innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id')
        .select('manifests.digest')
        .where('manifest_refs.child_digest', '=', digest)
        .where('manifest_refs.kind', '=', 'manifest')
        .where('manifests.image_id', '=', m.image_id)
        .limit(50)
        .execute();
      const subjectPresent =
        m.subject_digest !== null &&
        !!(await this.db.selectFrom('manifests').select('id').where('image_id', '=', m.image_id).where('digest', '=', m.subject_digest).executeTakeFirst());
      manifests.push({
        imageId: Number(m.image_id),
        image: m.name,
        tags: tags.map((x) => x.name),
        indexes: indexes.map((x) => x.digest),
        subject: m.subject_digest,
        subjectPresent,
        createdAt: Number(m.created_at),
      });
    }
    return {
      blob: b
        ? { state: b.state as BlobState, generation: Number(b.generation), size: Number(b.size), lastUsedAt: Number(b.last_used_at), createdAt: Number(b.created_at) }
        : null,
      referencedBy: referencedBy.map((r) => ({ image: r.name, manifest: r.digest, kind: r.kind })),
      linkedTo: linked.map((r) => r.name),
      manifests,
    };
  }

  async pruneTombstones(before: number): Promise<number> {
    const r = await this.db.deleteFrom('blobs').where('state', '=', 'gone').where('last_used_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async blobTotals(): Promise<{ state: BlobState; count: number; bytes: number }[]> {
    const rows = await this.db
      .selectFrom('blobs')
      .select((eb) => ['state', eb.fn.countAll<string | number>().as('n'), eb.fn.sum<string | number>('size').as('bytes')])
      .groupBy('state')
      .orderBy('state')
      .execute();
    return rows.map((r) => ({ state: r.state as BlobState, count: Number(r.n), bytes: Number(r.bytes ?? 0) }));
  }

  async listDeleting(before: number, limit: number): Promise<{ digest: string; generation: number; size: number }[]> {
    const rows = await this.db
      .selectFrom('blobs')
      .select(['digest', 'generation', 'size'])
      .where('state', '=', 'deleting')
      .where('last_used_at', '<', before)
      .orderBy('last_used_at')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ digest: r.digest, generation: Number(r.generation), size: Number(r.size) }));
  }

  async listBlobRows(alg: string, shard: string): Promise<{ digest: string; state: BlobState; generation: number; size: number }[]> {
    if (!/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]{2}$/.test(shard)) throw new Error(`bad blob shard: ${alg}/${shard}`);
    // LIKE rather than a range: PostgreSQL compares text by the database's collation.
    const rows = await this.db.selectFrom('blobs').select(['digest', 'state', 'generation', 'size']).where('digest', 'like', `${alg}:${shard}%`).execute();
    return rows.map((r) => ({ digest: r.digest, state: r.state as BlobState, generation: Number(r.generation), size: Number(r.size) }));
  }

  claimOrphan(digest: string, generation: number, now: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await this.writeLock(trx);
      await trx
        .insertInto('blobs')
        .values({ digest, size: 0, created_at: now, state: 'gone', generation, last_used_at: now })
        .onConflict((oc) => oc.column('digest').doNothing())
        .execute();
      let q = trx.selectFrom('blobs').select(['state', 'generation']).where('digest', '=', digest);
      if (this.dialect === 'postgres') q = q.forUpdate(); // an upload's saveBlob waits, then sees the tombstone
      const row = (await q.executeTakeFirst())!;
      const live = Number(row.generation);
      if (live > generation) return true; // an older generation: uploads only go forward
      if (row.state !== 'gone') return false; // this generation is the digest's, or a newer one is being written
      if (live < generation) await trx.updateTable('blobs').set({ generation, last_used_at: now }).where('digest', '=', digest).where('state', '=', 'gone').execute();
      return true;
    });
  }
}
