/**
 * Rows of per-repository and per-owner lifecycle settings: immutable tag patterns and storage
 * quotas (docs/lifecycle.md), and the exact storage usage a quota is checked against.
 * Contract checked by test/suites/lifecycle-suite.ts against every dialect.
 */

export interface RepositoryLifecycleRecord {
  /** Comma-separated tag globs, `!` for exceptions (`v*,!*-dev`); empty: none. */
  immutableTags: string;
  /** Bytes, or null for no quota. */
  quotaBytes: number | null;
  /** Retention rules as JSON (validated by core/lifecycle/retention.ts), or null. */
  retention: string | null;
}

/** Whose usage: a repository's images, or every repository of an owner. */
export type UsageScope = { repositoryId: number } | { ownerId: number };

export interface LifecycleStore {
  findRepositoryLifecycle(repositoryId: number): Promise<RepositoryLifecycleRecord>;
  saveRepositoryLifecycle(repositoryId: number, changes: Partial<RepositoryLifecycleRecord>): Promise<RepositoryLifecycleRecord>;
  findOwnerQuota(ownerId: number): Promise<number | null>;
  saveOwnerQuota(ownerId: number, quotaBytes: number | null): Promise<void>;
  /**
   * Logical usage: the sizes of the distinct blobs named (config, layers) by the scope's
   * manifests, each counted once within the scope. Computed, never a counter: exact after any
   * delete or garbage collection.
   */
  usage(scope: UsageScope): Promise<number>;
  /** Repositories that have retention rules. */
  listRetentionRepositories(): Promise<number[]>;
}
