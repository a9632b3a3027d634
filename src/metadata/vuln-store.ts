/**
 * Rows of the vulnerability database and its results (docs/vulnerabilities.md): OSV records
 * (JSON text whose shape belongs to core/supply-chain/vulns/osv.ts) indexed by the
 * (ecosystem, package name) pairs they affect; one state row; reports per image manifest
 * digest; per-repository pull policies and exceptions. Shared by every node. Implemented once in
 * Kysely for SQLite and PostgreSQL (sql/vuln-store.ts); tested on both by test/vulns/.
 */

export interface StoredVulnRecord {
  id: string;
  /** The record's `modified` (RFC 3339): an import skips a record it already has unchanged. */
  modified: string;
  data: string;
  /** The (ecosystem, name) pairs it is found under. */
  keys: { ecosystem: string; name: string }[];
}

export interface VulnDatabaseState {
  /** Bumped by every import that changed a record: reports name the version they were made with. */
  version: number;
  /** The newest `modified` among the records (ms), or null when empty. */
  asOf: number | null;
  importedAt: number | null;
  /** Where the last import came from (a file name, `mirror`). */
  source: string | null;
  /** The last scheduled refresh attempt and its error, if it failed. */
  refreshedAt: number | null;
  lastError: string | null;
}

export interface VulnReportRow {
  digest: string;
  scannedAt: number;
  dbVersion: number;
  dbAsOf: number | null;
  /** JSON: counts per severity. */
  summary: string;
  /** JSON: the report (findings). */
  data: string;
}

export interface VulnPolicyRow {
  repositoryId: number;
  /** `critical`, `high`, `medium`, `low` or `none`. */
  denySeverity: string;
  fixableOnly: boolean;
  blockUntilScanned: boolean;
  /** When block-until-scanned was switched on: manifests pushed since then wait for their report. */
  blockSince: number | null;
  /** Bumped by every change a pull verdict depends on (settings, exceptions, a report of one of its manifests). */
  generation: number;
}

export interface VulnExceptionRow {
  repositoryId: number;
  /** An OSV id or one of its aliases (a CVE id). */
  vulnId: string;
  expiresAt: number;
  reason: string;
  createdBy: string;
  createdAt: number;
}

export interface VulnStore {
  /** Inserts or replaces records (and their index rows); one with the same `modified` is left alone. */
  saveRecords(records: StoredVulnRecord[]): Promise<{ changed: number; unchanged: number }>;
  /** Deletes records (withdrawn ones) with their index rows; returns how many there were. */
  removeRecords(ids: string[]): Promise<number>;
  /** The records indexed under any of `keys`, each with the key it was found under. */
  findRecords(keys: { ecosystem: string; name: string }[]): Promise<{ ecosystem: string; name: string; data: string }[]>;
  /** Records per ecosystem (`vulndb status`). */
  countRecords(): Promise<{ ecosystem: string; records: number }[]>;
  findDatabase(): Promise<VulnDatabaseState>;
  /** Records an import: the version goes up by one when `changed`. */
  saveImport(changes: { changed: boolean; asOf: number | null; importedAt: number; source: string }): Promise<VulnDatabaseState>;
  /** Records a scheduled refresh attempt. */
  saveRefresh(at: number, error: string | null): Promise<void>;

  findReport(digest: string): Promise<VulnReportRow | undefined>;
  /** Summaries (no findings) of the reports of `digests`. */
  findReportSummaries(digests: string[]): Promise<Omit<VulnReportRow, 'data'>[]>;
  /**
   * Stores a report; with `changed` (its findings differ from the previous report's) also bumps
   * the policy generation of every repository holding the digest, in the same transaction.
   */
  saveReport(row: VulnReportRow, changed: boolean): Promise<void>;
  /** Images (`OWNER/REPOSITORY/IMAGE`) holding a manifest digest. */
  listImagesWithManifest(digest: string, limit: number): Promise<string[]>;

  /** The policy of a repository by name, with its exceptions, in one round trip's worth of queries. */
  findPolicyByName(owner: string, repository: string): Promise<{ policy: VulnPolicyRow; exceptions: VulnExceptionRow[] } | undefined>;
  findPolicy(repositoryId: number): Promise<VulnPolicyRow | undefined>;
  /** Creates or changes a repository's policy; bumps its generation. */
  savePolicy(repositoryId: number, changes: Partial<Omit<VulnPolicyRow, 'repositoryId' | 'generation'>>): Promise<VulnPolicyRow>;
  listExceptions(repositoryId: number): Promise<VulnExceptionRow[]>;
  /** Adds or replaces an exception; bumps the generation. */
  saveException(row: VulnExceptionRow): Promise<void>;
  /** Removes an exception; bumps the generation. False when there was none. */
  removeException(repositoryId: number, vulnId: string): Promise<boolean>;
}
