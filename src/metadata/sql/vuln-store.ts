import { type Kysely, type Transaction, sql } from 'kysely';
import type { StoredVulnRecord, VulnDatabaseState, VulnExceptionRow, VulnPolicyRow, VulnReportRow, VulnStore } from '../vuln-store.ts';
import type { Database } from './schema.ts';

type Db = Kysely<Database> | Transaction<Database>;

const BATCH = 200;

function chunks<T>(xs: T[], n = BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function policyOf(r: Database['vuln_policies']): VulnPolicyRow {
  return {
    repositoryId: Number(r.repository_id),
    denySeverity: r.deny_severity,
    fixableOnly: Number(r.fixable_only) === 1,
    blockUntilScanned: Number(r.block_until_scanned) === 1,
    blockSince: num(r.block_since),
    generation: Number(r.generation),
  };
}

function exceptionOf(r: Database['vuln_exceptions']): VulnExceptionRow {
  return {
    repositoryId: Number(r.repository_id),
    vulnId: r.vuln_id,
    expiresAt: Number(r.expires_at),
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: Number(r.created_at),
  };
}

/** A policy row with nothing in force (created when an exception comes before any setting). */
async function ensurePolicy(db: Db, repositoryId: number): Promise<void> {
  await db
    .insertInto('vuln_policies')
    .values({ repository_id: repositoryId, deny_severity: 'none', fixable_only: 0, block_until_scanned: 0, block_since: null, generation: 0, updated_at: Date.now() })
    .onConflict((oc) => oc.column('repository_id').doNothing())
    .execute();
}

async function bump(db: Db, repositoryId: number): Promise<void> {
  await db
    .updateTable('vuln_policies')
    .set((eb) => ({ generation: eb('generation', '+', 1), updated_at: Date.now() }))
    .where('repository_id', '=', repositoryId)
    .execute();
}

/** The one Kysely implementation of VulnStore, for SQLite and PostgreSQL. */
export class SqlVulnStore implements VulnStore {
  constructor(readonly db: Kysely<Database>) {}

  async saveRecords(records: StoredVulnRecord[]): Promise<{ changed: number; unchanged: number }> {
    let changed = 0;
    let unchanged = 0;
    for (const part of chunks(records)) {
      await this.db.transaction().execute(async (trx) => {
        const known = new Map(
          (await trx.selectFrom('vuln_records').select(['id', 'modified']).where('id', 'in', part.map((r) => r.id)).execute()).map((r) => [r.id, r.modified]),
        );
        const now = Date.now();
        for (const r of part) {
          if (known.get(r.id) === r.modified) {
            unchanged++;
            continue;
          }
          changed++;
          await trx
            .insertInto('vuln_records')
            .values({ id: r.id, modified: r.modified, data: r.data, imported_at: now })
            .onConflict((oc) => oc.column('id').doUpdateSet({ modified: r.modified, data: r.data, imported_at: now }))
            .execute();
          if (known.has(r.id)) await trx.deleteFrom('vuln_packages').where('record_id', '=', r.id).execute();
          const keys = [...new Map(r.keys.map((k) => [`${k.ecosystem}\0${k.name}`, k])).values()];
          for (const ks of chunks(keys, 100)) {
            await trx
              .insertInto('vuln_packages')
              .values(ks.map((k) => ({ ecosystem: k.ecosystem, name: k.name, record_id: r.id })))
              .execute();
          }
        }
      });
    }
    return { changed, unchanged };
  }

  async removeRecords(ids: string[]): Promise<number> {
    let n = 0;
    for (const part of chunks([...new Set(ids)])) {
      await this.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('vuln_packages').where('record_id', 'in', part).execute();
        const r = await trx.deleteFrom('vuln_records').where('id', 'in', part).executeTakeFirst();
        n += Number(r.numDeletedRows);
      });
    }
    return n;
  }

  async findRecords(keys: { ecosystem: string; name: string }[]): Promise<{ ecosystem: string; name: string; data: string }[]> {
    const out: { ecosystem: string; name: string; data: string }[] = [];
    const byEcosystem = new Map<string, string[]>();
    for (const k of keys) byEcosystem.set(k.ecosystem, [...(byEcosystem.get(k.ecosystem) ?? []), k.name]);
    for (const [ecosystem, names] of byEcosystem) {
      for (const part of chunks([...new Set(names)])) {
        const rows = await this.db
          .selectFrom('vuln_packages')
          .innerJoin('vuln_records', 'vuln_records.id', 'vuln_packages.record_id')
          .select(['vuln_packages.ecosystem', 'vuln_packages.name', 'vuln_records.data'])
          .where('vuln_packages.ecosystem', '=', ecosystem)
          .where('vuln_packages.name', 'in', part)
          .execute();
        out.push(...rows);
      }
    }
    return out;
  }

  async countRecords(): Promise<{ ecosystem: string; records: number }[]> {
    const rows = await this.db
      .selectFrom('vuln_packages')
      .select(['ecosystem', (eb) => eb.fn.count<string | number>('record_id').distinct().as('records')])
      .groupBy('ecosystem')
      .orderBy('ecosystem')
      .execute();
    return rows.map((r) => ({ ecosystem: r.ecosystem, records: Number(r.records) }));
  }

  async findDatabase(): Promise<VulnDatabaseState> {
    const r = await this.db.selectFrom('vuln_state').selectAll().where('id', '=', 1).executeTakeFirst();
    return {
      version: Number(r?.version ?? 0),
      asOf: num(r?.as_of),
      importedAt: num(r?.imported_at),
      source: r?.source ?? null,
      refreshedAt: num(r?.refreshed_at),
      lastError: r?.last_error ?? null,
    };
  }

  async saveImport(c: { changed: boolean; asOf: number | null; importedAt: number; source: string }): Promise<VulnDatabaseState> {
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('vuln_state')
        .values({ id: 1, version: 0, as_of: null, imported_at: null, source: null, refreshed_at: null, last_error: null })
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
      await trx
        .updateTable('vuln_state')
        .set((eb) => ({
          version: c.changed ? eb('version', '+', 1) : eb.ref('version'),
          // "As of" only moves forward: an older file imported later does not make the database older.
          as_of: c.asOf === null ? eb.ref('as_of') : sql<number>`case when as_of is null or as_of < ${c.asOf} then ${c.asOf} else as_of end`,
          imported_at: c.importedAt,
          source: c.source,
        }))
        .where('id', '=', 1)
        .execute();
    });
    return this.findDatabase();
  }

  async saveRefresh(at: number, error: string | null): Promise<void> {
    await this.db
      .insertInto('vuln_state')
      .values({ id: 1, version: 0, as_of: null, imported_at: null, source: null, refreshed_at: at, last_error: error })
      .onConflict((oc) => oc.column('id').doUpdateSet({ refreshed_at: at, last_error: error }))
      .execute();
  }

  async findReport(digest: string): Promise<VulnReportRow | undefined> {
    const r = await this.db.selectFrom('vuln_reports').selectAll().where('manifest_digest', '=', digest).executeTakeFirst();
    return r ? { digest: r.manifest_digest, scannedAt: Number(r.scanned_at), dbVersion: Number(r.db_version), dbAsOf: num(r.db_as_of), summary: r.summary, data: r.data } : undefined;
  }

  async findReportSummaries(digests: string[]): Promise<Omit<VulnReportRow, 'data'>[]> {
    const out: Omit<VulnReportRow, 'data'>[] = [];
    for (const part of chunks([...new Set(digests)])) {
      const rows = await this.db
        .selectFrom('vuln_reports')
        .select(['manifest_digest', 'scanned_at', 'db_version', 'db_as_of', 'summary'])
        .where('manifest_digest', 'in', part)
        .execute();
      for (const r of rows) out.push({ digest: r.manifest_digest, scannedAt: Number(r.scanned_at), dbVersion: Number(r.db_version), dbAsOf: num(r.db_as_of), summary: r.summary });
    }
    return out;
  }

  async saveReport(row: VulnReportRow, changed: boolean): Promise<void> {
    const values = { scanned_at: row.scannedAt, db_version: row.dbVersion, db_as_of: row.dbAsOf, summary: row.summary, data: row.data };
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('vuln_reports')
        .values({ manifest_digest: row.digest, ...values })
        .onConflict((oc) => oc.column('manifest_digest').doUpdateSet(values))
        .execute();
      if (!changed) return;
      await trx
        .updateTable('vuln_policies')
        .set((eb) => ({ generation: eb('generation', '+', 1) }))
        .where('repository_id', 'in', (eb) =>
          eb.selectFrom('manifests').innerJoin('images', 'images.id', 'manifests.image_id').select('images.repository_id').where('manifests.digest', '=', row.digest),
        )
        .execute();
    });
  }

  async listImagesWithManifest(digest: string, limit: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('manifests')
      .innerJoin('images', 'images.id', 'manifests.image_id')
      .select('images.name')
      .distinct()
      .where('manifests.digest', '=', digest)
      .orderBy('images.name')
      .limit(limit)
      .execute();
    return rows.map((r) => r.name);
  }

  async findPolicyByName(owner: string, repository: string): Promise<{ policy: VulnPolicyRow; exceptions: VulnExceptionRow[] } | undefined> {
    const r = await this.db
      .selectFrom('vuln_policies')
      .innerJoin('repositories', 'repositories.id', 'vuln_policies.repository_id')
      .innerJoin('owners', 'owners.id', 'repositories.owner_id')
      .selectAll('vuln_policies')
      .where('owners.name', '=', owner)
      .where('repositories.name', '=', repository)
      .executeTakeFirst();
    if (!r) return undefined;
    const policy = policyOf(r);
    return { policy, exceptions: await this.listExceptions(policy.repositoryId) };
  }

  async findPolicy(repositoryId: number): Promise<VulnPolicyRow | undefined> {
    const r = await this.db.selectFrom('vuln_policies').selectAll().where('repository_id', '=', repositoryId).executeTakeFirst();
    return r ? policyOf(r) : undefined;
  }

  async savePolicy(repositoryId: number, changes: Partial<Omit<VulnPolicyRow, 'repositoryId' | 'generation'>>): Promise<VulnPolicyRow> {
    await this.db.transaction().execute(async (trx) => {
      await ensurePolicy(trx, repositoryId);
      const set: Partial<Database['vuln_policies']> = {};
      if (changes.denySeverity !== undefined) set.deny_severity = changes.denySeverity;
      if (changes.fixableOnly !== undefined) set.fixable_only = changes.fixableOnly ? 1 : 0;
      if (changes.blockUntilScanned !== undefined) set.block_until_scanned = changes.blockUntilScanned ? 1 : 0;
      if (changes.blockSince !== undefined) set.block_since = changes.blockSince;
      if (Object.keys(set).length) await trx.updateTable('vuln_policies').set(set).where('repository_id', '=', repositoryId).execute();
      await bump(trx, repositoryId);
    });
    return (await this.findPolicy(repositoryId))!;
  }

  async listExceptions(repositoryId: number): Promise<VulnExceptionRow[]> {
    const rows = await this.db.selectFrom('vuln_exceptions').selectAll().where('repository_id', '=', repositoryId).orderBy('vuln_id').limit(1000).execute();
    return rows.map(exceptionOf);
  }

  async saveException(row: VulnExceptionRow): Promise<void> {
    const values = { expires_at: row.expiresAt, reason: row.reason, created_by: row.createdBy, created_at: row.createdAt };
    await this.db.transaction().execute(async (trx) => {
      await ensurePolicy(trx, row.repositoryId);
      await trx
        .insertInto('vuln_exceptions')
        .values({ repository_id: row.repositoryId, vuln_id: row.vulnId, ...values })
        .onConflict((oc) => oc.columns(['repository_id', 'vuln_id']).doUpdateSet(values))
        .execute();
      await bump(trx, row.repositoryId);
    });
  }

  async removeException(repositoryId: number, vulnId: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const r = await trx.deleteFrom('vuln_exceptions').where('repository_id', '=', repositoryId).where('vuln_id', '=', vulnId).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) return false;
      await bump(trx, repositoryId);
      return true;
    });
  }
}
