import { type Kysely, type Selectable, type Transaction } from 'kysely';
import type { SigningKeyKind, SigningKeyRecord, SigningRecord, SigningSettingsRecord, SigningStore } from '../signing-store.ts';
import type { Database } from './schema.ts';

type Db = Kysely<Database> | Transaction<Database>;

function toKey(r: Selectable<Database['signing_keys']>): SigningKeyRecord {
  return {
    keyId: r.key_id,
    kind: r.kind as SigningKeyKind,
    name: r.name,
    publicKey: r.public_key,
    privateKey: r.private_key,
    current: Number(r.current) === 1,
    createdAt: Number(r.created_at),
    retiredAt: r.retired_at === null ? null : Number(r.retired_at),
  };
}

function toSettings(r: { sign_on_push: number | null; require_signature: number | null; version: number | string | null } | undefined): SigningSettingsRecord {
  return { signOnPush: Number(r?.sign_on_push ?? 0) === 1, requireSignature: Number(r?.require_signature ?? 0) === 1, version: Number(r?.version ?? 0) };
}

/** Adds one to the repository's counter, creating its settings row when needed. */
async function bump(db: Db, repositoryId: number): Promise<void> {
  const now = Date.now();
  await db
    .insertInto('signing_settings')
    .values({ repository_id: repositoryId, version: 1, updated_at: now })
    .onConflict((oc) => oc.column('repository_id').doUpdateSet((eb) => ({ version: eb('signing_settings.version', '+', 1), updated_at: now })))
    .execute();
}

/** The one Kysely implementation of SigningStore, for SQLite and PostgreSQL. */
export class SqlSigningStore implements SigningStore {
  constructor(readonly db: Kysely<Database>) {}

  async findSettings(repositoryId: number): Promise<SigningSettingsRecord> {
    return toSettings(await this.db.selectFrom('signing_settings').selectAll().where('repository_id', '=', repositoryId).executeTakeFirst());
  }

  async findSettingsByName(owner: string, repository: string): Promise<(SigningSettingsRecord & { repositoryId: number }) | undefined> {
    const r = await this.db
      .selectFrom('repositories')
      .innerJoin('owners', 'owners.id', 'repositories.owner_id')
      .leftJoin('signing_settings', 'signing_settings.repository_id', 'repositories.id')
      .select(['repositories.id as id', 'signing_settings.sign_on_push', 'signing_settings.require_signature', 'signing_settings.version'])
      .where('owners.name', '=', owner)
      .where('repositories.name', '=', repository)
      .executeTakeFirst();
    return r && { repositoryId: Number(r.id), ...toSettings(r) };
  }

  async saveSettings(repositoryId: number, changes: Partial<Omit<SigningSettingsRecord, 'version'>>): Promise<SigningSettingsRecord> {
    const set: { sign_on_push?: number; require_signature?: number } = {};
    if (changes.signOnPush !== undefined) set.sign_on_push = changes.signOnPush ? 1 : 0;
    if (changes.requireSignature !== undefined) set.require_signature = changes.requireSignature ? 1 : 0;
    const now = Date.now();
    await this.db
      .insertInto('signing_settings')
      .values({ repository_id: repositoryId, ...set, version: 1, updated_at: now })
      .onConflict((oc) => oc.column('repository_id').doUpdateSet((eb) => ({ ...set, version: eb('signing_settings.version', '+', 1), updated_at: now })))
      .execute();
    return this.findSettings(repositoryId);
  }

  async bumpVersion(repositoryId: number): Promise<void> {
    await this.db
      .updateTable('signing_settings')
      .set((eb) => ({ version: eb('version', '+', 1), updated_at: Date.now() }))
      .where('repository_id', '=', repositoryId)
      .execute();
  }

  async listKeys(repositoryId: number): Promise<SigningKeyRecord[]> {
    const rows = await this.db.selectFrom('signing_keys').selectAll().where('repository_id', '=', repositoryId).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
    return rows.map(toKey);
  }

  async saveRepositoryKey(repositoryId: number, key: { keyId: string; publicKey: string; privateKey: string }, rotate: boolean): Promise<SigningKeyRecord> {
    const current = () => this.db.selectFrom('signing_keys').selectAll().where('repository_id', '=', repositoryId).where('current', '=', 1).executeTakeFirst();
    try {
      return await this.db.transaction().execute(async (trx) => {
        const now = Date.now();
        if (rotate) {
          await trx.updateTable('signing_keys').set({ current: 0, retired_at: now }).where('repository_id', '=', repositoryId).where('current', '=', 1).execute();
        } else {
          const existing = await trx.selectFrom('signing_keys').selectAll().where('repository_id', '=', repositoryId).where('current', '=', 1).executeTakeFirst();
          if (existing) return toKey(existing);
        }
        const row = await trx
          .insertInto('signing_keys')
          .values({ repository_id: repositoryId, key_id: key.keyId, kind: 'repository', name: 'repository key', public_key: key.publicKey, private_key: key.privateKey, current: 1, created_at: now, retired_at: null })
          .returningAll()
          .executeTakeFirstOrThrow();
        await bump(trx, repositoryId);
        return toKey(row);
      });
    } catch (e) {
      // Another node created the current key at the same moment (the partial unique index).
      const found = rotate ? undefined : await current();
      if (found) return toKey(found);
      throw e;
    }
  }

  async addTrustedKey(repositoryId: number, key: { keyId: string; name: string; publicKey: string }): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx
        .insertInto('signing_keys')
        .values({ repository_id: repositoryId, key_id: key.keyId, kind: 'trusted', name: key.name, public_key: key.publicKey, private_key: null, current: 0, created_at: Date.now(), retired_at: null })
        .onConflict((oc) => oc.columns(['repository_id', 'key_id']).doNothing())
        .executeTakeFirst();
      const added = Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
      if (added) await bump(trx, repositoryId);
      return added;
    });
  }

  async removeTrustedKey(repositoryId: number, keyId: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx.deleteFrom('signing_keys').where('repository_id', '=', repositoryId).where('key_id', '=', keyId).where('kind', '=', 'trusted').executeTakeFirst();
      const removed = Number(r.numDeletedRows) > 0;
      if (removed) await bump(trx, repositoryId);
      return removed;
    });
  }

  async findRecord(imageId: number, digest: string, keyId: string): Promise<SigningRecord | undefined> {
    const r = await this.db.selectFrom('signing_records').selectAll().where('image_id', '=', imageId).where('digest', '=', digest).where('key_id', '=', keyId).executeTakeFirst();
    return r && { digest: r.digest, keyId: r.key_id, signatureDigest: r.signature_digest, referrerDigest: r.referrer_digest, signedAt: Number(r.signed_at) };
  }

  async saveRecord(imageId: number, rec: SigningRecord): Promise<void> {
    const values = { signature_digest: rec.signatureDigest, referrer_digest: rec.referrerDigest, signed_at: rec.signedAt };
    await this.db
      .insertInto('signing_records')
      .values({ image_id: imageId, digest: rec.digest, key_id: rec.keyId, ...values })
      .onConflict((oc) => oc.columns(['image_id', 'digest', 'key_id']).doUpdateSet(values))
      .execute();
  }

  async listRecords(imageId: number, digests: string[]): Promise<SigningRecord[]> {
    if (!digests.length) return [];
    const rows = await this.db.selectFrom('signing_records').selectAll().where('image_id', '=', imageId).where('digest', 'in', digests.slice(0, 500)).execute();
    return rows.map((r) => ({ digest: r.digest, keyId: r.key_id, signatureDigest: r.signature_digest, referrerDigest: r.referrer_digest, signedAt: Number(r.signed_at) }));
  }

  async listParents(imageId: number, digest: string, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('manifest_refs')
      .innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id')
      .select('manifests.digest')
      .where('manifests.image_id', '=', imageId)
      .where('manifest_refs.child_digest', '=', digest)
      .where('manifest_refs.kind', '=', 'manifest')
      .limit(limit)
      .execute();
    return rows.map((r) => r.digest);
  }

  async listSealedKeys(): Promise<{ id: number; value: string }[]> {
    const rows = await this.db.selectFrom('signing_keys').select(['id', 'private_key']).where('private_key', 'is not', null).execute();
    return rows.map((r) => ({ id: Number(r.id), value: r.private_key! }));
  }

  async replaceSealedKey(id: number, from: string, to: string): Promise<boolean> {
    const r = await this.db.updateTable('signing_keys').set({ private_key: to }).where('id', '=', id).where('private_key', '=', from).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
