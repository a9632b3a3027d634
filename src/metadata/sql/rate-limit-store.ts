import { type Kysely, sql } from 'kysely';
import { type RateLimitKind, type RateLimitRecord, type RateLimitStore, type RateLimitValues, rateLimitScope } from '../rate-limit-store.ts';
import type { Database } from './schema.ts';

const VERSION_KEY = 'rate_limits_version';

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

/** The one Kysely implementation of RateLimitStore, for SQLite and PostgreSQL. */
export class SqlRateLimitStore implements RateLimitStore {
  constructor(readonly db: Kysely<Database>) {}

  async listRateLimits(): Promise<RateLimitRecord[]> {
    const rows = await this.db
      .selectFrom('rate_limits as l')
      .leftJoin('users as u', 'u.id', 'l.user_id')
      .leftJoin('credentials as c', 'c.id', 'l.credential_id')
      .leftJoin('repositories as r', (j) => j.on((eb) => eb.or([eb('r.id', '=', eb.ref('l.repository_id')), eb('r.id', '=', eb.ref('c.repository_id'))])))
      .leftJoin('owners as o', 'o.id', 'r.owner_id')
      .select([
        'l.kind',
        'l.user_id',
        'l.credential_id',
        'l.repository_id',
        'l.requests_per_minute',
        'l.bytes_per_day',
        'l.site_admin',
        'l.updated_at',
        'u.username',
        'c.name as credential_name',
        'c.kind as credential_kind',
        'c.repository_id as credential_repository_id',
        'r.name as repository_name',
        'o.name as owner_name',
      ])
      .orderBy('l.scope')
      .execute();
    return rows.map((r) => {
      const repo = r.repository_name !== null && r.owner_name !== null ? `${r.owner_name}/${r.repository_name}` : null;
      const kind = r.kind as RateLimitKind;
      const base = {
        kind,
        requestsPerMinute: num(r.requests_per_minute),
        bytesPerDay: num(r.bytes_per_day),
        siteAdmin: Number(r.site_admin) === 1,
        updatedAt: Number(r.updated_at),
      };
      if (kind === 'user') return { ...base, subjectId: num(r.user_id), subjectName: r.username ?? null };
      if (kind === 'repository') return { ...base, subjectId: num(r.repository_id), subjectName: r.repository_id === null ? null : repo };
      if (kind === 'token' && r.credential_id !== null) {
        return {
          ...base,
          subjectId: Number(r.credential_id),
          subjectName: r.credential_name ?? null,
          credentialKind: r.credential_kind ?? 'entitlement',
          repositoryId: num(r.credential_repository_id),
          repository: repo,
        };
      }
      return { ...base, subjectId: null, subjectName: null };
    });
  }

  async saveRateLimit(kind: RateLimitKind, subjectId: number | null, values: RateLimitValues, siteAdmin: boolean): Promise<void> {
    const row = {
      scope: rateLimitScope(kind, subjectId),
      kind,
      user_id: kind === 'user' ? subjectId : null,
      credential_id: kind === 'token' ? subjectId : null,
      repository_id: kind === 'repository' ? subjectId : null,
      requests_per_minute: values.requestsPerMinute,
      bytes_per_day: values.bytesPerDay,
      site_admin: siteAdmin ? 1 : 0,
      updated_at: Date.now(),
    };
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('rate_limits')
        .values(row)
        .onConflict((oc) => oc.column('scope').doUpdateSet({ requests_per_minute: row.requests_per_minute, bytes_per_day: row.bytes_per_day, site_admin: row.site_admin, updated_at: row.updated_at }))
        .execute();
      await bump(tx);
    });
  }

  async removeRateLimit(kind: RateLimitKind, subjectId: number | null): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const r = await tx.deleteFrom('rate_limits').where('scope', '=', rateLimitScope(kind, subjectId)).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) return false;
      await bump(tx);
      return true;
    });
  }

  async rateLimitVersion(): Promise<string> {
    const r = await this.db.selectFrom('settings').select('value').where('key', '=', VERSION_KEY).executeTakeFirst();
    return r?.value ?? '0';
  }
}

/** Adds one to the change counter (created at 1). */
async function bump(tx: Kysely<Database>): Promise<void> {
  await tx
    .insertInto('settings')
    .values({ key: VERSION_KEY, value: '1' })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: sql<string>`CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)` }))
    .execute();
}
