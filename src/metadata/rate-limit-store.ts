/**
 * Rows of request and byte limits (docs/limits.md). A limit is set on one subject (a user, a
 * credential, a repository) or is the default of its kind; `anonymous` is the one limit that
 * every source address gets. Contract checked by test/limits/rate-limits-*.test.ts against
 * both dialects.
 */

export type RateLimitKind = 'anonymous' | 'user' | 'token' | 'repository';

export interface RateLimitValues {
  /** Requests in a minute; null: no bound. */
  requestsPerMinute: number | null;
  /** Bytes of blob and manifest GETs in a day; null: no bound. */
  bytesPerDay: number | null;
}

export interface RateLimitRecord extends RateLimitValues {
  kind: RateLimitKind;
  /** The user, credential or repository limited; null: the default of the kind (and `anonymous`). */
  subjectId: number | null;
  /** The subject as people name it: a username, `OWNER/REPOSITORY`, a credential's name. */
  subjectName: string | null;
  /** For a credential: `api_key` or `entitlement`, and an entitlement token's repository. */
  credentialKind?: string;
  repositoryId?: number | null;
  /** For a credential: its repository as `OWNER/REPOSITORY` (entitlement tokens). */
  repository?: string | null;
  /** Set by a site administrator: only site administrators may change or remove it. */
  siteAdmin: boolean;
  updatedAt: number;
}

export interface RateLimitStore {
  /** Every limit with its subject's name (a few rows: read whole by every node). */
  listRateLimits(): Promise<RateLimitRecord[]>;
  /** Sets (creates or replaces) a limit and bumps the change counter, in one transaction. */
  saveRateLimit(kind: RateLimitKind, subjectId: number | null, values: RateLimitValues, siteAdmin: boolean): Promise<void>;
  /** Removes a limit; false when there was none. Bumps the change counter. */
  removeRateLimit(kind: RateLimitKind, subjectId: number | null): Promise<boolean>;
  /** The change counter: a node that has read this value has every limit saved before it. */
  rateLimitVersion(): Promise<string>;
}

/** The row key of a limit: `user:12`, or the kind alone for its default. */
export function rateLimitScope(kind: RateLimitKind, subjectId: number | null): string {
  return subjectId === null ? kind : `${kind}:${subjectId}`;
}
