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
  /** Retention rules (JSON) an owner's repositories inherit, or null. */
  findOwnerRetention(ownerId: number): Promise<string | null>;
  saveOwnerRetention(ownerId: number, retention: string | null): Promise<void>;
  /** Repositories that have retention rules, their own or their owner's. */
  listRetentionRepositories(): Promise<number[]>;
  /**
   * Records pulls (a manifest GET that served the bytes): the latest time per image and
   * manifest, and per entitlement-token pull. Times only move forward; unknown images are
   * skipped. Batched by the caller (core/lifecycle/pulls.ts), never on the request path.
   */
  recordPulls(pulls: ManifestPull[]): Promise<void>;
  /** When each manifest of an image was last pulled (manifests never pulled are absent). */
  listManifestPulls(imageId: number): Promise<Map<string, { lastPulledAt: number; lastEntitledAt: number | null }>>;
  /** A page of a repository's manifests with their bytes, by id (for `quota recompute`). */
  listManifestPayloads(repositoryId: number, page: { afterId: number; limit: number }): Promise<{ id: number; image: string; digest: string; mediaType: string; payload: Buffer }[]>;
  /** Size and state of each of these blobs that has a row. */
  findBlobSizes(digests: string[]): Promise<Map<string, { size: number; state: string }>>;
  /** Usage of each repository of an owner (as `usage`), by repository name. */
  usageByRepository(ownerId: number): Promise<{ repository: string; usageBytes: number }[]>;
}

export interface ManifestPull {
  /** `OWNER/REPOSITORY/IMAGE`. */
  image: string;
  digest: string;
  /** Latest pull (ms). */
  at: number;
  /** Latest pull with an entitlement token (ms), if any. */
  entitledAt: number | null;
}
