import type { Kysely } from 'kysely';
import type { SbomStore, StoredImageInventory } from '../sbom-store.ts';
import type { Database } from './schema.ts';

/** The one Kysely implementation of SbomStore, for SQLite and PostgreSQL. */
export class SqlSbomStore implements SbomStore {
  constructor(readonly db: Kysely<Database>) {}

  async findLayerInventory(digest: string): Promise<string | undefined> {
    const r = await this.db.selectFrom('layer_inventories').select('data').where('digest', '=', digest).executeTakeFirst();
    return r?.data;
  }

  async saveLayerInventory(digest: string, data: string): Promise<void> {
    const now = Date.now();
    await this.db
      .insertInto('layer_inventories')
      .values({ digest, data, created_at: now })
      .onConflict((oc) => oc.column('digest').doUpdateSet({ data, created_at: now }))
      .execute();
  }

  async findImageInventory(manifestDigest: string): Promise<StoredImageInventory | undefined> {
    const r = await this.db.selectFrom('image_inventories').selectAll().where('manifest_digest', '=', manifestDigest).executeTakeFirst();
    return r ? { digest: r.manifest_digest, data: r.data, packageCount: Number(r.package_count), generatedAt: Number(r.generated_at) } : undefined;
  }

  async saveImageInventory(inv: StoredImageInventory): Promise<void> {
    const row = { data: inv.data, package_count: inv.packageCount, generated_at: inv.generatedAt };
    await this.db
      .insertInto('image_inventories')
      .values({ manifest_digest: inv.digest, ...row })
      .onConflict((oc) => oc.column('manifest_digest').doUpdateSet(row))
      .execute();
  }

  async listInventoried(after: string | undefined, limit: number): Promise<string[]> {
    let q = this.db.selectFrom('image_inventories').select('manifest_digest').orderBy('manifest_digest').limit(Math.max(0, Math.min(limit, 10_000)));
    if (after !== undefined) q = q.where('manifest_digest', '>', after);
    return (await q.execute()).map((r) => r.manifest_digest);
  }

  async findSbomEnabled(repositoryId: number): Promise<boolean> {
    const r = await this.db.selectFrom('repository_sbom').select('enabled').where('repository_id', '=', repositoryId).executeTakeFirst();
    return r ? Number(r.enabled) !== 0 : true;
  }

  async saveSbomEnabled(repositoryId: number, enabled: boolean): Promise<void> {
    const now = Date.now();
    await this.db
      .insertInto('repository_sbom')
      .values({ repository_id: repositoryId, enabled: enabled ? 1 : 0, updated_at: now })
      .onConflict((oc) => oc.column('repository_id').doUpdateSet({ enabled: enabled ? 1 : 0, updated_at: now }))
      .execute();
  }
}
