import { RegistryError } from '../errors.ts';
import { isValidComponent, isValidOwner } from '../content/names.ts';
import { type Access, type Identity, ROLES } from './access.ts';
import { API_KEY_PREFIX, ENTITLEMENT_PREFIX, hashPassword, hashSecret, newPassword, newSecret, secretPrefix } from './secrets.ts';
import {
  type AccessStore,
  ConflictError,
  type CredentialRecord,
  type MembershipRecord,
  type MembershipScope,
  type OwnerRecord,
  type RepositoryRecord,
  type Role,
  type UserRecord,
  type Visibility,
} from '../../metadata/access-store.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const notFound = (what: string) => new ApiError(404, 'NOT_FOUND', `${what} not found`);
const forbidden = (message = 'you may not do this') => new ApiError(403, 'DENIED', message);

export const MIN_PASSWORD_LENGTH = 8;

/** A credential with its secret: returned once, at creation. */
export interface IssuedSecret {
  credential: CredentialRecord;
  secret: string;
}

/**
 * Owners, repositories, members, users and credentials: the management API's logic. Every
 * method takes the acting identity and checks it through `Access` first; a private repository
 * the actor cannot read is reported as not found.
 */
export class Tenancy {
  constructor(
    private readonly store: AccessStore,
    private readonly access: Access,
  ) {}

  /**
   * First start: creates the site administrator `admin` (owner of the namespace `admin`) when
   * there are no users. Returns the password when it was generated (to be printed once).
   */
  async bootstrapAdmin(password: string | undefined): Promise<{ created: boolean; generatedPassword?: string }> {
    if ((await this.store.countUsers()) > 0) return { created: false };
    const pw = password ?? newPassword();
    try {
      await this.store.createUser({ username: 'admin', passwordHash: await hashPassword(pw), siteAdmin: true, email: null });
    } catch (e) {
      if (e instanceof ConflictError) return { created: false }; // another node won the race
      throw e;
    }
    return password === undefined ? { created: true, generatedPassword: pw } : { created: true };
  }

  private requireUser(actor: Identity): Extract<Identity, { kind: 'user' }> {
    if (actor.kind !== 'user') throw new ApiError(401, 'UNAUTHORIZED', 'sign in as a user');
    return actor;
  }

  /** Throws unless the actor is a site administrator (401 when anonymous). */
  requireSiteAdmin(actor: Identity): void {
    this.requireUser(actor);
    if (actor.kind !== 'user' || !actor.siteAdmin) throw forbidden('only a site administrator may do this');
  }

  async createUser(actor: Identity, u: { username: string; password?: string; email?: string; siteAdmin?: boolean }): Promise<UserRecord> {
    this.requireSiteAdmin(actor);
    if (!isValidOwner(u.username) || u.username === 'token') {
      throw new ApiError(400, 'INVALID', 'username must be lowercase letters, digits and "-" (max 39), and not "token"');
    }
    if (u.password !== undefined && u.password.length < MIN_PASSWORD_LENGTH) {
      throw new ApiError(400, 'INVALID', `password must have at least ${MIN_PASSWORD_LENGTH} characters`);
    }
    try {
      return await this.store.createUser({
        username: u.username,
        passwordHash: u.password === undefined ? null : await hashPassword(u.password),
        siteAdmin: u.siteAdmin ?? false,
        email: u.email ?? null,
      });
    } catch (e) {
      if (e instanceof ConflictError) throw new ApiError(409, 'CONFLICT', e.message);
      throw e;
    }
  }

  async listUsers(actor: Identity): Promise<UserRecord[]> {
    this.requireSiteAdmin(actor);
    return this.store.listUsers();
  }

  async whoami(actor: Identity): Promise<UserRecord | undefined> {
    if (actor.kind !== 'user') return undefined;
    return this.store.findUserById(actor.userId);
  }

  /** Creates an organisation; the creator becomes its owner. */
  async createOrg(actor: Identity, name: string): Promise<OwnerRecord> {
    const user = this.requireUser(actor);
    if (!isValidOwner(name) || name === 'token') throw new ApiError(400, 'INVALID', 'organisation names are lowercase letters, digits and "-" (max 39)');
    let org: OwnerRecord;
    try {
      org = await this.store.createOwner(name, 'org');
    } catch (e) {
      if (e instanceof ConflictError) throw new ApiError(409, 'CONFLICT', e.message);
      throw e;
    }
    await this.store.setMembership(user.userId, { ownerId: org.id }, 'owner');
    return org;
  }

  /** Owners the actor can see: their own, those they belong to, and owners of readable repositories. */
  async listOwners(actor: Identity): Promise<OwnerRecord[]> {
    const owners = await this.store.listOwners();
    if (actor.kind === 'user' && actor.siteAdmin) return owners;
    const readable = await this.access.readableRepositoryIds(actor);
    const visible = new Set<number>();
    for (const o of owners) {
      if (actor.kind === 'user' && o.name === actor.username) visible.add(o.id);
      if (actor.kind === 'user' && (await this.store.findRoles(actor.userId, o.id, null)).length) visible.add(o.id);
    }
    if (readable !== 'all') {
      for (const o of owners) {
        if (visible.has(o.id)) continue;
        const repos = await this.store.listRepositories(o.id);
        if (repos.some((r) => readable.has(r.id))) visible.add(o.id);
      }
    }
    return owners.filter((o) => visible.has(o.id));
  }

  async findOwner(actor: Identity, name: string): Promise<OwnerRecord> {
    const owners = await this.listOwners(actor);
    const o = owners.find((x) => x.name === name);
    if (!o) throw notFound(`owner ${name}`);
    return o;
  }

  /**
   * An owner's repositories the actor may read. An owner the actor can see nothing of (no
   * readable repository, not theirs, no membership) is not found, as a missing one is: an
   * anonymous caller cannot tell them apart.
   */
  async listRepositories(actor: Identity, owner: string): Promise<RepositoryRecord[]> {
    const o = await this.store.findOwner(owner);
    if (!o) throw notFound(`owner ${owner}`);
    const readable = await this.access.readableRepositoryIds(actor);
    const repos = await this.store.listRepositories(o.id);
    const visible = readable === 'all' ? repos : repos.filter((r) => readable.has(r.id));
    if (visible.length === 0 && !(await this.belongsTo(actor, o))) throw notFound(`owner ${owner}`);
    return visible;
  }

  /** Whether the actor is the owner's own user, a member of it, or a site administrator. */
  private async belongsTo(actor: Identity, o: OwnerRecord): Promise<boolean> {
    if (actor.kind !== 'user') return false;
    if (actor.siteAdmin || (o.kind === 'user' && o.name === actor.username)) return true;
    return (await this.store.findRoles(actor.userId, o.id, null)).length > 0;
  }

  /**
   * Whether the actor holds the `owner` role where owners are changed: a site administrator,
   * the user of a user namespace, an owner of the organisation, or (for a repository) an owner
   * of that repository. Admins manage members but never owners.
   */
  private async isOwner(actor: Identity, o: OwnerRecord, repositoryId: number | null): Promise<boolean> {
    if (actor.kind !== 'user') return false;
    if (actor.siteAdmin || (o.kind === 'user' && o.name === actor.username)) return true;
    return (await this.store.findRoles(actor.userId, o.id, repositoryId)).includes('owner');
  }

  /**
   * Refuses a change of `username`'s role from `current` to `next` (undefined: removal) unless
   * the actor is an owner when either is `owner`; and refuses to leave an organisation without
   * an owner.
   */
  private async guardOwners(actor: Identity, o: OwnerRecord, scope: MembershipScope, current: Role | undefined, next: Role | undefined): Promise<void> {
    if (current !== 'owner' && next !== 'owner') return;
    const repositoryId = 'repositoryId' in scope ? scope.repositoryId : null;
    if (!(await this.isOwner(actor, o, repositoryId))) throw forbidden(`only an owner may grant, change or remove the owner role in ${o.name}`);
    if (current === 'owner' && next !== 'owner' && !('repositoryId' in scope)) {
      const owners = (await this.store.listMemberships(scope)).filter((m) => m.role === 'owner');
      if (owners.length <= 1) throw new ApiError(409, 'CONFLICT', `${o.name} must keep at least one owner: make another member owner first`);
    }
  }

  /** A user's role held directly in the scope (organisation level or repository level). */
  private async roleIn(userId: number, scope: MembershipScope): Promise<Role | undefined> {
    return (await this.store.listMemberships(scope)).find((m) => m.userId === userId)?.role;
  }

  async createRepository(actor: Identity, owner: string, name: string, visibility: Visibility, description: string): Promise<RepositoryRecord> {
    this.requireUser(actor);
    if (!isValidComponent(name)) throw new ApiError(400, 'INVALID', `invalid repository name "${name}"`);
    const acc = await this.access.check(actor, owner, name);
    if (!acc.ownerExists) throw notFound(`owner ${owner}`);
    if (acc.repository) {
      if (acc.actions.has('pull')) throw new ApiError(409, 'CONFLICT', `${owner}/${name} exists`);
      throw forbidden(`you may not create repositories under ${owner}`);
    }
    const o = (await this.store.findOwner(owner))!;
    if (!acc.canCreate) {
      // An owner the actor can see nothing of answers as a missing one.
      if (!(await this.listRepositories(actor, owner).then(() => true, () => false))) throw notFound(`owner ${owner}`);
      throw forbidden(`you may not create repositories under ${owner}`);
    }
    try {
      return await this.store.createRepository(o.id, name, visibility, description);
    } catch (e) {
      if (e instanceof ConflictError) throw new ApiError(409, 'CONFLICT', e.message);
      throw e;
    }
  }

  /** The repository if the actor may read it (else not found), and whether they may manage it. */
  async getRepository(actor: Identity, owner: string, name: string): Promise<{ repository: RepositoryRecord; canManage: boolean }> {
    const acc = await this.access.check(actor, owner, name);
    if (!acc.repository || !acc.actions.has('pull')) throw notFound(`repository ${owner}/${name}`);
    return { repository: acc.repository, canManage: acc.actions.has('manage') };
  }

  /** The repository, for those who may manage it: 404 to those who may not read it, 403 to readers. */
  async manageableRepository(actor: Identity, owner: string, name: string): Promise<RepositoryRecord> {
    const { repository, canManage } = await this.getRepository(actor, owner, name);
    if (!canManage) throw forbidden(`you may not manage ${owner}/${name}`);
    return repository;
  }

  async updateRepository(actor: Identity, owner: string, name: string, changes: { visibility?: Visibility; description?: string }): Promise<RepositoryRecord> {
    const repo = await this.manageableRepository(actor, owner, name);
    await this.store.updateRepository(repo.id, changes);
    return (await this.store.findRepositoryById(repo.id))!;
  }

  async listRepositoryMembers(actor: Identity, owner: string, name: string): Promise<MembershipRecord[]> {
    const repo = await this.manageableRepository(actor, owner, name);
    return this.store.listMemberships({ repositoryId: repo.id });
  }

  async setRepositoryMember(actor: Identity, owner: string, name: string, username: string, role: Role): Promise<void> {
    const repo = await this.manageableRepository(actor, owner, name);
    if (!ROLES.includes(role)) throw new ApiError(400, 'INVALID', `role must be one of ${ROLES.join(', ')}`);
    const user = await this.store.findUserByName(username);
    if (!user) throw notFound(`user ${username}`);
    const scope = { repositoryId: repo.id };
    await this.guardOwners(actor, (await this.store.findOwner(owner))!, scope, await this.roleIn(user.id, scope), role);
    await this.store.setMembership(user.id, scope, role);
  }

  async removeRepositoryMember(actor: Identity, owner: string, name: string, username: string): Promise<void> {
    const repo = await this.manageableRepository(actor, owner, name);
    const user = await this.store.findUserByName(username);
    const scope = { repositoryId: repo.id };
    const current = user ? await this.roleIn(user.id, scope) : undefined;
    if (!user || !current) throw notFound(`member ${username}`);
    await this.guardOwners(actor, (await this.store.findOwner(owner))!, scope, current, undefined);
    if (!(await this.store.removeMembership(user.id, scope))) throw notFound(`member ${username}`);
  }

  private async manageableOrg(actor: Identity, org: string): Promise<OwnerRecord> {
    const user = this.requireUser(actor);
    const o = await this.store.findOwner(org);
    if (!o || o.kind !== 'org') throw notFound(`organisation ${org}`);
    if (user.siteAdmin) return o;
    const roles = await this.store.findRoles(user.userId, o.id, null);
    if (!roles.length) throw notFound(`organisation ${org}`);
    if (!roles.some((r) => r === 'owner' || r === 'admin')) throw forbidden(`you may not manage ${org}`);
    return o;
  }

  /**
   * An owner whose settings the actor may manage (owner-wide retention rules): a site
   * administrator, the user of a user namespace, an owner or admin of the organisation.
   */
  async manageableOwner(actor: Identity, owner: string): Promise<OwnerRecord> {
    const user = this.requireUser(actor);
    const o = await this.store.findOwner(owner);
    if (!o) throw notFound(`owner ${owner}`);
    if (user.siteAdmin || (o.kind === 'user' && o.name === user.username)) return o;
    const roles = await this.store.findRoles(user.userId, o.id, null);
    if (!roles.length) throw notFound(`owner ${owner}`);
    if (!roles.some((r) => r === 'owner' || r === 'admin')) throw forbidden(`you may not manage ${owner}`);
    return o;
  }

  async listOrgMembers(actor: Identity, org: string): Promise<MembershipRecord[]> {
    const o = await this.manageableOrg(actor, org);
    return this.store.listMemberships({ ownerId: o.id });
  }

  async setOrgMember(actor: Identity, org: string, username: string, role: Role): Promise<void> {
    const o = await this.manageableOrg(actor, org);
    if (!ROLES.includes(role)) throw new ApiError(400, 'INVALID', `role must be one of ${ROLES.join(', ')}`);
    const user = await this.store.findUserByName(username);
    if (!user) throw notFound(`user ${username}`);
    const scope = { ownerId: o.id };
    await this.guardOwners(actor, o, scope, await this.roleIn(user.id, scope), role);
    await this.store.setMembership(user.id, scope, role);
  }

  async removeOrgMember(actor: Identity, org: string, username: string): Promise<void> {
    const o = await this.manageableOrg(actor, org);
    const user = await this.store.findUserByName(username);
    const scope = { ownerId: o.id };
    const current = user ? await this.roleIn(user.id, scope) : undefined;
    if (!user || !current) throw notFound(`member ${username}`);
    await this.guardOwners(actor, o, scope, current, undefined);
    if (!(await this.store.removeMembership(user.id, scope))) throw notFound(`member ${username}`);
  }

  async createApiKey(actor: Identity, name: string, expiresAt: number | null): Promise<IssuedSecret> {
    const user = this.requireUser(actor);
    const secret = newSecret(API_KEY_PREFIX);
    const credential = await this.store.createCredential({
      kind: 'api_key',
      userId: user.userId,
      repositoryId: null,
      name,
      prefix: secretPrefix(secret),
      secretHash: hashSecret(secret),
      expiresAt,
      downloadLimit: null,
    });
    return { credential, secret };
  }

  async listApiKeys(actor: Identity): Promise<CredentialRecord[]> {
    const user = this.requireUser(actor);
    return this.store.listCredentials({ userId: user.userId, kind: 'api_key' });
  }

  async revokeApiKey(actor: Identity, id: number): Promise<void> {
    const user = this.requireUser(actor);
    const cred = await this.store.findCredential(id);
    if (!cred || cred.kind !== 'api_key' || (cred.userId !== user.userId && !user.siteAdmin)) throw notFound(`API key ${id}`);
    await this.store.revokeCredential(id, Date.now());
  }

  async createEntitlementToken(
    actor: Identity,
    owner: string,
    name: string,
    opts: { name: string; expiresAt: number | null; downloadLimit: number | null },
  ): Promise<IssuedSecret> {
    const repo = await this.manageableRepository(actor, owner, name);
    const user = this.requireUser(actor);
    const secret = newSecret(ENTITLEMENT_PREFIX);
    const credential = await this.store.createCredential({
      kind: 'entitlement',
      userId: user.userId,
      repositoryId: repo.id,
      name: opts.name,
      prefix: secretPrefix(secret),
      secretHash: hashSecret(secret),
      expiresAt: opts.expiresAt,
      downloadLimit: opts.downloadLimit,
    });
    return { credential, secret };
  }

  async listEntitlementTokens(actor: Identity, owner: string, name: string): Promise<CredentialRecord[]> {
    const repo = await this.manageableRepository(actor, owner, name);
    return this.store.listCredentials({ repositoryId: repo.id, kind: 'entitlement' });
  }

  async revokeEntitlementToken(actor: Identity, owner: string, name: string, id: number): Promise<void> {
    const repo = await this.manageableRepository(actor, owner, name);
    const cred = await this.store.findCredential(id);
    if (!cred || cred.kind !== 'entitlement' || cred.repositoryId !== repo.id) throw notFound(`token ${id}`);
    await this.store.revokeCredential(id, Date.now());
  }
}
