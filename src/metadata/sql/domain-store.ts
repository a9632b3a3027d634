import type { Kysely } from 'kysely';
import type { DomainRecord, DomainStore, NewDomain } from '../domain-store.ts';
import type { Database } from './schema.ts';

const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/** The one Kysely implementation of DomainStore, for SQLite and PostgreSQL. */
export class SqlDomainStore implements DomainStore {
  constructor(readonly db: Kysely<Database>) {}

  private select() {
    return this.db
      .selectFrom('domains')
      .innerJoin('owners', 'owners.id', 'domains.owner_id')
      .leftJoin('repositories', 'repositories.id', 'domains.repository_id')
      .select([
        'domains.host',
        'domains.owner_id',
        'owners.name as owner',
        'domains.repository_id',
        'repositories.name as repository',
        'domains.mirror',
        'domains.cert_pem',
        'domains.key_sealed',
        'domains.cert_expires_at',
        'domains.created_at',
      ]);
  }

  private row(r: Awaited<ReturnType<ReturnType<SqlDomainStore['select']>['executeTakeFirstOrThrow']>>): DomainRecord {
    return {
      host: r.host,
      ownerId: Number(r.owner_id),
      owner: r.owner,
      repositoryId: n(r.repository_id),
      repository: r.repository ?? null,
      mirror: Number(r.mirror) === 1,
      certPem: r.cert_pem,
      keySealed: r.key_sealed,
      certExpiresAt: n(r.cert_expires_at),
      createdAt: Number(r.created_at),
    };
  }

  async saveDomain(d: NewDomain): Promise<boolean> {
    const r = await this.db
      .insertInto('domains')
      .values({
        host: d.host,
        owner_id: d.ownerId,
        repository_id: d.repositoryId,
        mirror: d.mirror ? 1 : 0,
        cert_pem: d.certPem,
        key_sealed: d.keySealed,
        cert_expires_at: d.certExpiresAt,
        created_at: Date.now(),
      })
      .onConflict((oc) => oc.column('host').doNothing())
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
  }

  async findDomain(host: string): Promise<DomainRecord | undefined> {
    const r = await this.select().where('domains.host', '=', host).executeTakeFirst();
    return r ? this.row(r) : undefined;
  }

  async listDomains(ownerId: number | undefined, limit: number): Promise<DomainRecord[]> {
    let q = this.select().orderBy('domains.host').limit(limit);
    if (ownerId !== undefined) q = q.where('domains.owner_id', '=', ownerId);
    return (await q.execute()).map((r) => this.row(r));
  }

  async removeDomain(host: string): Promise<boolean> {
    const r = await this.db.deleteFrom('domains').where('host', '=', host).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async saveCertificate(host: string, cert: Pick<DomainRecord, 'certPem' | 'keySealed' | 'certExpiresAt'> | undefined): Promise<boolean> {
    const r = await this.db
      .updateTable('domains')
      .set({ cert_pem: cert?.certPem ?? null, key_sealed: cert?.keySealed ?? null, cert_expires_at: cert?.certExpiresAt ?? null })
      .where('host', '=', host)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async listDomainKeys(): Promise<{ id: string; value: string }[]> {
    const rows = await this.db.selectFrom('domains').select(['host', 'key_sealed']).where('key_sealed', 'is not', null).orderBy('host').execute();
    return rows.map((r) => ({ id: r.host, value: r.key_sealed! }));
  }

  async replaceDomainKey(host: string, from: string, to: string): Promise<boolean> {
    const r = await this.db.updateTable('domains').set({ key_sealed: to }).where('host', '=', host).where('key_sealed', '=', from).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
