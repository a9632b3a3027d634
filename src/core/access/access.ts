import type { AccessStore, BlobReader, RepositoryRecord, Role } from '../../metadata/access-store.ts';

/** What an identity may do on a repository. `manage` = members, tokens, settings. */
export type Action = 'pull' | 'push' | 'delete' | 'manage';
export const ALL_ACTIONS: readonly Action[] = ['pull', 'push', 'delete', 'manage'];

export const ROLES: readonly Role[] = ['read', 'write', 'admin', 'owner'];

/** Role → actions, the same at organisation and repository level. */
export const ROLE_ACTIONS: Record<Role, readonly Action[]> = {
  read: ['pull'],
  write: ['pull', 'push'],
  admin: ['pull', 'push', 'delete', 'manage'],
  owner: ['pull', 'push', 'delete', 'manage'],
};

/** Who is asking. Established by authentication (http/auth.ts), decided on here. */
export type Identity =
  | { kind: 'anonymous' }
  | { kind: 'user'; userId: number; username: string; siteAdmin: boolean; apiKeyId?: number }
  | { kind: 'entitlement'; credentialId: number; repositoryId: number };

export interface RepositoryAccess {
  /** The repository, when it exists. */
  repository?: RepositoryRecord;
  /** Whether the owner exists. */
  ownerExists: boolean;
  /** Actions held on the repository (on a missing one: what creating it would give). */
  actions: Set<Action>;
  /** Whether the identity may create the repository by pushing (it does not exist yet). */
  canCreate: boolean;
}

/**
 * The one access decision (DESIGN.md §5): (identity, OWNER/REPOSITORY) → the actions held.
 * Every /v2 route, the token endpoint and the management API go through it.
 *
 * - Site administrators hold every action everywhere.
 * - Public repositories grant `pull` to everyone, anonymous included.
 * - An entitlement token grants `pull` on its one repository, nothing else.
 * - A user holds the union of the actions of their roles in the owner (organisation
 *   membership, or their own namespace: role owner) and in the repository.
 * - A repository that does not exist yet may be created by pushing to it by whoever may
 *   `manage` at owner level; it is created private.
 */
export class Access {
  constructor(private readonly store: AccessStore) {}

  async check(identity: Identity, owner: string, repositoryName: string): Promise<RepositoryAccess> {
    const ownerRow = await this.store.findOwner(owner);
    if (!ownerRow) return { ownerExists: false, actions: new Set(), canCreate: false };
    const repository = await this.store.findRepository(owner, repositoryName);
    const actions = new Set<Action>();
    let ownerLevel = new Set<Action>();

    if (identity.kind === 'user') {
      if (identity.siteAdmin || (ownerRow.kind === 'user' && ownerRow.name === identity.username)) {
        ownerLevel = new Set(ALL_ACTIONS);
        for (const a of ALL_ACTIONS) actions.add(a);
      } else {
        const roles = await this.store.findRoles(identity.userId, ownerRow.id, repository?.id ?? null);
        // findRoles returns owner-level and repository-level roles together; owner-level
        // ones decide creation, so ask again for the owner alone when it matters.
        for (const r of roles) for (const a of ROLE_ACTIONS[r]) actions.add(a);
        if (!repository) ownerLevel = actions;
      }
    } else if (identity.kind === 'entitlement') {
      if (repository && identity.repositoryId === repository.id) actions.add('pull');
    }
    if (repository?.visibility === 'public') actions.add('pull');
    if (!repository) {
      const canCreate = ownerLevel.has('manage');
      return { ownerExists: true, actions: canCreate ? actions : new Set(), canCreate };
    }
    return { repository, ownerExists: true, actions, canCreate: false };
  }

  /**
   * The name of an image that links blob `digest` in a repository the identity may pull from,
   * or undefined: the source of a cross-repository mount without `from`. One indexed query over
   * the digest's links, whatever the number of repositories.
   */
  async findReadableImageWithBlob(identity: Identity, digest: string): Promise<string | undefined> {
    const reader: BlobReader =
      identity.kind === 'user'
        ? identity.siteAdmin
          ? 'any'
          : { userId: identity.userId }
        : identity.kind === 'entitlement'
          ? { userId: null, repositoryId: identity.repositoryId }
          : { userId: null };
    return this.store.findReadableImageWithBlob(digest, reader);
  }

  /** Repository ids the identity may read (for the catalog). */
  async readableRepositoryIds(identity: Identity): Promise<Set<number> | 'all'> {
    if (identity.kind === 'user' && identity.siteAdmin) return 'all';
    if (identity.kind === 'user') return new Set(await this.store.listReadableRepositoryIds(identity.userId));
    const ids = new Set(await this.store.listReadableRepositoryIds(null));
    if (identity.kind === 'entitlement') ids.add(identity.repositoryId);
    return ids;
  }
}
