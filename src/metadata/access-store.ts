/**
 * Rows of tenancy and access (DESIGN.md §2, §3, §5): owners, repositories, users, memberships,
 * credentials and settings. Rows only: `core/access.ts` decides what they mean.
 * Contract checked by test/suites/metadata-suite.ts against every dialect.
 */
export type OwnerKind = 'user' | 'org';
export type Visibility = 'public' | 'private';
export type Role = 'read' | 'write' | 'admin' | 'owner';
export type CredentialKind = 'api_key' | 'entitlement';

export interface OwnerRecord {
  id: number;
  name: string;
  kind: OwnerKind;
  createdAt: number;
}

export interface RepositoryRecord {
  id: number;
  ownerId: number;
  owner: string;
  name: string;
  visibility: Visibility;
  description: string;
  createdAt: number;
}

export interface UserRecord {
  id: number;
  username: string;
  ownerId: number;
  passwordHash: string | null;
  siteAdmin: boolean;
  email: string | null;
  createdAt: number;
}

export interface MembershipRecord {
  userId: number;
  username: string;
  ownerId: number | null;
  repositoryId: number | null;
  role: Role;
  createdAt: number;
}

export interface CredentialRecord {
  id: number;
  kind: CredentialKind;
  userId: number | null;
  repositoryId: number | null;
  name: string;
  /** The first characters of the secret, to recognise it in lists. */
  prefix: string;
  expiresAt: number | null;
  downloadLimit: number | null;
  downloadCount: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
  createdAt: number;
}

export interface NewCredential {
  kind: CredentialKind;
  userId: number | null;
  repositoryId: number | null;
  name: string;
  prefix: string;
  /** SHA-256 hex of the secret; the secret itself is never stored. */
  secretHash: string;
  expiresAt: number | null;
  downloadLimit: number | null;
}

/** An upstream registry of a repository (pull-through cache, docs/proxy.md). */
export interface UpstreamRecord {
  id: number;
  repositoryId: number;
  url: string;
  username: string | null;
  /** The password encrypted by core (AES-256-GCM); never the plain text. */
  passwordEnc: string | null;
  priority: number;
  cache: boolean;
  /** Only images whose name (inside the repository) starts with this are proxied; it is stripped. */
  prefix: string;
  /** Prepended to the stripped name upstream. */
  remotePrefix: string;
  createdAt: number;
}

export type NewUpstream = Omit<UpstreamRecord, 'id' | 'createdAt'>;

/** A failed-login counter (docs/security.md): failures counted since `since`, the last at `lastAt`. */
export interface LoginFailureCount {
  key: string;
  failures: number;
  since: number;
  lastAt: number;
}
/** Whose reading rights bound a search: a user (null: anyone), plus one more repository (an entitlement's); or `any`. */
export type BlobReader = { userId: number | null; repositoryId?: number } | 'any';

export type MembershipScope = { ownerId: number } | { repositoryId: number };

export class ConflictError extends Error {
  override name = 'ConflictError';
}

export interface AccessStore {
  findOwner(name: string): Promise<OwnerRecord | undefined>;
  /** Throws ConflictError when the name is taken. */
  createOwner(name: string, kind: OwnerKind): Promise<OwnerRecord>;
  listOwners(): Promise<OwnerRecord[]>;

  findRepository(owner: string, name: string): Promise<RepositoryRecord | undefined>;
  findRepositoryById(id: number): Promise<RepositoryRecord | undefined>;
  listRepositories(ownerId: number): Promise<RepositoryRecord[]>;
  /** Throws ConflictError when the repository exists. */
  createRepository(ownerId: number, name: string, visibility: Visibility, description: string): Promise<RepositoryRecord>;
  updateRepository(id: number, changes: { visibility?: Visibility; description?: string }): Promise<void>;

  /** Creates the user and its own owner namespace; throws ConflictError when the name is taken. */
  createUser(u: { username: string; passwordHash: string | null; siteAdmin: boolean; email: string | null }): Promise<UserRecord>;
  findUserByName(username: string): Promise<UserRecord | undefined>;
  findUserById(id: number): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  countUsers(): Promise<number>;

  /** The roles a user holds in an owner and, if given, one of its repositories. */
  findRoles(userId: number, ownerId: number, repositoryId: number | null): Promise<Role[]>;
  setMembership(userId: number, scope: MembershipScope, role: Role): Promise<void>;
  removeMembership(userId: number, scope: MembershipScope): Promise<boolean>;
  listMemberships(scope: MembershipScope): Promise<MembershipRecord[]>;
  /** Ids of repositories the user (or, with null, anyone) may read through visibility or membership. */
  listReadableRepositoryIds(userId: number | null): Promise<number[]>;
  /** Ids of repositories the user may manage: in their own namespace, or by an admin or owner role in the owner or the repository. */
  listManagedRepositoryIds(userId: number): Promise<number[]>;
  /**
   * The name of an image linking blob `digest` in a repository `reader` may read (the rows of
   * listReadableRepositoryIds, plus `repositoryId` when given; `any`: every repository), or
   * undefined. One query driven by the digest's links (indexed), never a scan of repositories.
   */
  findReadableImageWithBlob(digest: string, reader: BlobReader): Promise<string | undefined>;

  createCredential(c: NewCredential): Promise<CredentialRecord>;
  findCredentialByHash(secretHash: string): Promise<CredentialRecord | undefined>;
  findCredential(id: number): Promise<CredentialRecord | undefined>;
  listCredentials(filter: { userId: number; kind: CredentialKind } | { repositoryId: number; kind: CredentialKind }): Promise<CredentialRecord[]>;
  revokeCredential(id: number, at: number): Promise<boolean>;
  touchCredential(id: number, at: number): Promise<void>;
  /** Counts one download; false (and no count) when the limit is reached. */
  countDownload(id: number): Promise<boolean>;

  /** A repository's upstreams, by priority (lowest first), then id. */
  listUpstreams(repositoryId: number): Promise<UpstreamRecord[]>;
  createUpstream(u: NewUpstream): Promise<UpstreamRecord>;
  /** False when the repository has no such upstream. */
  removeUpstream(repositoryId: number, id: number): Promise<boolean>;

  /** Sets a user's password hash; false when there is no such user. */
  updatePassword(userId: number, passwordHash: string): Promise<boolean>;
  /** Revokes every live API key of the user; returns how many. */
  revokeUserCredentials(userId: number, at: number): Promise<number>;
  /**
   * Deletes a user in one transaction: their namespace (owner row) and with it their
   * repositories, images, manifests, tags, memberships and API keys. Entitlement tokens they
   * created in other owners' repositories stay (they belong to the repository). Blob bytes and
   * blob rows are left to garbage collection. False when there is no such user.
   */
  removeUser(userId: number): Promise<boolean>;
  /** Deletes an owner and everything under it (repositories, images, …) in one transaction. */
  removeOwner(ownerId: number): Promise<boolean>;
  /** Deletes a repository and everything under it in one transaction. */
  removeRepository(repositoryId: number): Promise<boolean>;
  /**
   * Removes the user's membership in an owner unless they are its last `owner` (checked and
   * changed in one transaction, the owner row locked, so two last owners cannot both leave).
   */
  leaveOwner(userId: number, ownerId: number): Promise<'removed' | 'last_owner' | 'not_member'>;
  /** Names of organisations where the user is the only `owner`. */
  listOrgsSolelyOwnedBy(userId: number): Promise<string[]>;

  getSetting(key: string): Promise<string | undefined>;
  /** Stores the value unless the key exists; returns the value now stored. */
  putSettingIfAbsent(key: string, value: string): Promise<string>;

  /** The failed-login counters of these keys whose window started at or after `windowStart`. */
  findLoginFailures(keys: string[], windowStart: number): Promise<LoginFailureCount[]>;
  /**
   * Counts one failure for each key, atomically (one upsert): a counter whose window started
   * before `windowStart` starts again at 1.
   */
  addLoginFailure(keys: string[], now: number, windowStart: number): Promise<void>;
  clearLoginFailures(keys: string[]): Promise<void>;
  /** Removes counters whose last failure is older than `before`; returns how many. */
  deleteLoginFailuresBefore(before: number): Promise<number>;
  /** Sets the value only if it is still `from` (compare-and-set); false when it changed or is absent. */
  replaceSetting(key: string, from: string, to: string): Promise<boolean>;
  deleteSetting(key: string): Promise<void>;
  /** Every upstream's stored password (for re-encryption; core/keys). */
  listUpstreamSecrets(): Promise<{ id: number; value: string }[]>;
  /** Sets an upstream's stored password only if it is still `from`. */
  replaceUpstreamSecret(id: number, from: string, to: string): Promise<boolean>;
}
