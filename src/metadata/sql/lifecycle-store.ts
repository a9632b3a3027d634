import { type Kysely, type Transaction, sql } from 'kysely';
import type { LifecycleStore, ManifestPull, RepositoryLifecycleRecord, UsageScope } from '../lifecycle-store.ts';
import type { Database } from './schema.ts';

type Db = Kysely<Database> | Transaction<Database>;

/** The distinct blob digests named by the scope's manifests (config and layers). */
function namedBlobs(db: Db, scope: UsageScope) {
  let q = db
    .selectFrom('manifest_refs')
    .innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id')
    .innerJoin('images', 'images.id', 'manifests.image_id')
    .select('manifest_refs.child_digest')
    .distinct()
    .where('manifest_refs.kind', 'in', ['config', 'layer']);
  if ('repositoryId' in scope) q = q.where('images.repository_id', '=', scope.repositoryId);
  else q = q.innerJoin('repositories', 'repositories.id', 'images.repository_id').where('repositories.owner_id', '=', scope.ownerId);
  return q;
}

/** Logical usage of a scope (see LifecycleStore.usage), inside a transaction or not. */
export async function usageOf(db: Db, scope: UsageScope): Promise<number> {
  const r = await db
    .selectFrom('blobs')
    .select((eb) => eb.fn.coalesce(eb.fn.sum<string | number>('size'), sql<number>`0`).as('bytes'))
    .where('digest', 'in', namedBlobs(db, scope))
    .executeTakeFirst();
  return Number(r?.bytes ?? 0);
}

/** Of `blobs`, the bytes not yet named within the scope: what a manifest naming them adds. */
export async function addedBytes(db: Db, scope: UsageScope, blobs: { digest: string; size: number }[]): Promise<number> {
  const unique = new Map(blobs.map((b) => [b.digest, b.size]));
  if (!unique.size) return 0;
  const known = new Set<string>();
  const digests = [...unique.keys()];
  for (let i = 0; i < digests.length; i += 500) {
    const rows = await namedBlobs(db, scope).where('manifest_refs.child_digest', 'in', digests.slice(i, i + 500)).execute();
    for (const r of rows) known.add(r.child_digest);
  }
  let added = 0;
  for (const [d, size] of unique) if (!known.has(d)) added += size;
  return added;
}

/** The one Kysely implementation of LifecycleStore, for SQLite and PostgreSQL. */
export class SqlLifecycleStore implements LifecycleStore {
  constructor(readonly db: Kysely<Database>) {}

  async findRepositoryLifecycle(repositoryId: number): Promise<RepositoryLifecycleRecord> {
    const r = await this.db.selectFrom('repository_lifecycle').selectAll().where('repository_id', '=', repositoryId).executeTakeFirst();
    return {
      immutableTags: r?.immutable_tags ?? '',
      quotaBytes: r?.quota_bytes === null || r?.quota_bytes === undefined ? null : Number(r.quota_bytes),
      retention: r?.retention ?? null,
    };
  }

  async saveRepositoryLifecycle(repositoryId: number, changes: Partial<RepositoryLifecycleRecord>): Promise<RepositoryLifecycleRecord> {
    const next = { ...(await this.findRepositoryLifecycle(repositoryId)), ...changes };
    const now = Date.now();
    await this.db
      .insertInto('repository_lifecycle')
      .values({ repository_id: repositoryId, immutable_tags: next.immutableTags, quota_bytes: next.quotaBytes, retention: next.retention, updated_at: now })
      .onConflict((oc) =>
        oc.column('repository_id').doUpdateSet({ immutable_tags: next.immutableTags, quota_bytes: next.quotaBytes, retention: next.retention, updated_at: now }),
      )
      .execute();
    return next;
  }

  async findOwnerQuota(ownerId: number): Promise<number | null> {
    const r = await this.db.selectFrom('owner_lifecycle').select('quota_bytes').where('owner_id', '=', ownerId).executeTakeFirst();
    return r?.quota_bytes === null || r?.quota_bytes === undefined ? null : Number(r.quota_bytes);
  }

  async saveOwnerQuota(ownerId: number, quotaBytes: number | null): Promise<void> {
    const now = Date.now();
    await this.db
      .insertInto('owner_lifecycle')
      .values({ owner_id: ownerId, quota_bytes: quotaBytes, updated_at: now })
      .onConflict((oc) => oc.column('owner_id').doUpdateSet({ quota_bytes: quotaBytes, updated_at: now }))
      .execute();
  }

  usage(scope: UsageScope): Promise<number> {
    return usageOf(this.db, scope);
  }

  async findOwnerRetention(ownerId: number): Promise<string | null> {
    const r = await this.db.selectFrom('owner_lifecycle').select('retention').where('owner_id', '=', ownerId).executeTakeFirst();
    return r?.retention ?? null;
  }

  async saveOwnerRetention(ownerId: number, retention: string | null): Promise<void> {
    const now = Date.now();
    await this.db
      .insertInto('owner_lifecycle')
      .values({ owner_id: ownerId, quota_bytes: null, retention, updated_at: now })
      .onConflict((oc) => oc.column('owner_id').doUpdateSet({ retention, updated_at: now }))
      .execute();
  }

  async listRetentionRepositories(): Promise<number[]> {
    const own = await this.db.selectFrom('repository_lifecycle').select('repository_id').where('retention', 'is not', null).execute();
    const inherited = await this.db
      .selectFrom('repositories')
      .innerJoin('owner_lifecycle', 'owner_lifecycle.owner_id', 'repositories.owner_id')
      .select('repositories.id')
      .where('owner_lifecycle.retention', 'is not', null)
      .execute();
    return [...new Set([...own.map((r) => Number(r.repository_id)), ...inherited.map((r) => Number(r.id))])];
  }

  async recordPulls(pulls: ManifestPull[]): Promise<void> {
    if (!pulls.length) return;
    const names = [...new Set(pulls.map((p) => p.image))];
    const ids = new Map<string, number>();
    for (let i = 0; i < names.length; i += 500) {
      const rows = await this.db.selectFrom('images').select(['id', 'name']).where('name', 'in', names.slice(i, i + 500)).execute();
      for (const r of rows) ids.set(r.name, Number(r.id));
    }
    const values = pulls.flatMap((p) => {
      const id = ids.get(p.image);
      return id === undefined ? [] : [{ image_id: id, digest: p.digest, last_pulled_at: p.at, last_entitled_at: p.entitledAt }];
    });
    for (let i = 0; i < values.length; i += 200) {
      // Only forward: another node may have written a later pull meanwhile.
      await this.db
        .insertInto('manifest_pulls')
        .values(values.slice(i, i + 200))
        .onConflict((oc) =>
          oc.columns(['image_id', 'digest']).doUpdateSet({
            last_pulled_at: sql`case when excluded.last_pulled_at > manifest_pulls.last_pulled_at then excluded.last_pulled_at else manifest_pulls.last_pulled_at end`,
            last_entitled_at: sql`case when manifest_pulls.last_entitled_at is null or excluded.last_entitled_at > manifest_pulls.last_entitled_at then coalesce(excluded.last_entitled_at, manifest_pulls.last_entitled_at) else manifest_pulls.last_entitled_at end`,
          }),
        )
        .execute();
    }
  }

  async listManifestPulls(imageId: number): Promise<Map<string, { lastPulledAt: number; lastEntitledAt: number | null }>> {
    const rows = await this.db.selectFrom('manifest_pulls').select(['digest', 'last_pulled_at', 'last_entitled_at']).where('image_id', '=', imageId).execute();
    return new Map(rows.map((r) => [r.digest, { lastPulledAt: Number(r.last_pulled_at), lastEntitledAt: r.last_entitled_at === null ? null : Number(r.last_entitled_at) }]));
  }

  async listManifestPayloads(repositoryId: number, page: { afterId: number; limit: number }): Promise<{ id: number; image: string; digest: string; mediaType: string; payload: Buffer }[]> {
    const rows = await this.db
      .selectFrom('manifests')
      .innerJoin('images', 'images.id', 'manifests.image_id')
      .select(['manifests.id', 'images.name', 'manifests.digest', 'manifests.media_type', 'manifests.payload'])
      .where('images.repository_id', '=', repositoryId)
      .where('manifests.id', '>', page.afterId)
      .orderBy('manifests.id')
      .limit(page.limit)
      .execute();
    return rows.map((r) => ({ id: Number(r.id), image: r.name, digest: r.digest, mediaType: r.media_type, payload: Buffer.from(r.payload) }));
  }

  async findBlobSizes(digests: string[]): Promise<Map<string, { size: number; state: string }>> {
    const out = new Map<string, { size: number; state: string }>();
    const unique = [...new Set(digests)];
    for (let i = 0; i < unique.length; i += 500) {
      const rows = await this.db.selectFrom('blobs').select(['digest', 'size', 'state']).where('digest', 'in', unique.slice(i, i + 500)).execute();
      for (const r of rows) out.set(r.digest, { size: Number(r.size), state: r.state });
    }
    return out;
  }

  async usageByRepository(ownerId: number): Promise<{ repository: string; usageBytes: number }[]> {
    // Distinct (repository, blob) pairs first: a blob counts once per repository.
    const pairs = this.db
      .selectFrom('manifest_refs')
      .innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id')
      .innerJoin('images', 'images.id', 'manifests.image_id')
      .innerJoin('repositories', 'repositories.id', 'images.repository_id')
      .select(['images.repository_id as repository_id', 'manifest_refs.child_digest as digest'])
      .distinct()
      .where('manifest_refs.kind', 'in', ['config', 'layer'])
      .where('repositories.owner_id', '=', ownerId)
      .as('pairs');
    const used = await this.db
      .selectFrom(pairs)
      .innerJoin('blobs', 'blobs.digest', 'pairs.digest')
      .select((eb) => ['pairs.repository_id', eb.fn.sum<string | number>('blobs.size').as('bytes')])
      .groupBy('pairs.repository_id')
      .execute();
    const bytes = new Map(used.map((r) => [Number(r.repository_id), Number(r.bytes)]));
    const repos = await this.db.selectFrom('repositories').select(['id', 'name']).where('owner_id', '=', ownerId).orderBy('name').execute();
    return repos.map((r) => ({ repository: r.name, usageBytes: bytes.get(Number(r.id)) ?? 0 }));
  }
}
