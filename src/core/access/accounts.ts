import { isValidComponent, isValidTag } from '../content/names.ts';
import type { Images } from '../content/images.ts';
import type { Manifests } from '../content/manifests.ts';
import type { RepositoryPolicies } from '../lifecycle/policy.ts';
import type { Access, Identity } from './access.ts';
import { hashPassword, verifyPassword } from './secrets.ts';
import { ApiError, MIN_PASSWORD_LENGTH, type Tenancy } from './tenancy.ts';
import type { AccessStore, OwnerRecord, UserRecord } from '../../metadata/access-store.ts';
import type { MetadataStore } from '../../metadata/metadata-store.ts';

/** Longer passwords are refused before hashing: argon2 on megabytes is a denial of service. */
export const MAX_PASSWORD_LENGTH = 1024;

const notFound = (what: string) => new ApiError(404, 'NOT_FOUND', `${what} not found`);
const forbidden = (message: string) => new ApiError(403, 'DENIED', message);

/**
 * The destructive confirmation: the caller repeats the name of what goes. One check for the
 * API, the CLI (which sends what the user typed or `--yes`) and the web UI.
 */
function requireConfirmation(name: string, confirm: string | undefined): void {
  if (confirm !== name) {
    throw new ApiError(400, 'CONFIRMATION_REQUIRED', `this deletes ${name} and everything in it: confirm with confirm=${name}`);
  }
}

function checkPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new ApiError(400, 'INVALID', `password must have at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw new ApiError(400, 'INVALID', `password must have at most ${MAX_PASSWORD_LENGTH} characters`);
}

/**
 * Running Berth day to day: passwords, revoking a user's keys, deleting users, organisations,
 * repositories, images and tags, leaving an organisation. Every method takes the acting
 * identity and checks it first (a repository the actor may not read is not found).
 *
 * Deletions remove metadata rows in one transaction (the stores' `remove*`); blob bytes and
 * blob rows stay for garbage collection, which finds them unreferenced. Bearer JWTs already
 * issued to a deleted user expire within `auth.tokenTtlSeconds`.
 */
export class Accounts {
  constructor(
    private readonly store: AccessStore,
    private readonly meta: MetadataStore,
    private readonly access: Access,
    private readonly tenancy: Tenancy,
    private readonly images: Images,
    private readonly manifests: Manifests,
    private readonly policies: RepositoryPolicies,
    /** Caches to drop: `passwords` after a password change or a deleted user, `deleted` after anything is deleted. */
    private readonly forget: { passwords: () => void; deleted: () => void },
  ) {}

  private user(actor: Identity): Extract<Identity, { kind: 'user' }> {
    if (actor.kind !== 'user') throw new ApiError(401, 'UNAUTHORIZED', 'sign in as a user');
    return actor;
  }

  private siteAdmin(actor: Identity): Extract<Identity, { kind: 'user' }> {
    const u = this.user(actor);
    if (!u.siteAdmin) throw forbidden('only a site administrator may do this');
    return u;
  }

  private async userNamed(username: string): Promise<UserRecord> {
    const u = await this.store.findUserByName(username);
    if (!u) throw notFound(`user ${username}`);
    return u;
  }

  /** Changes the actor's own password; the current one must be given. */
  async changePassword(actor: Identity, current: string, next: string): Promise<void> {
    const me = this.user(actor);
    const row = await this.store.findUserById(me.userId);
    if (!row) throw notFound(`user ${me.username}`);
    if (current.length > MAX_PASSWORD_LENGTH || !row.passwordHash || !(await verifyPassword(row.passwordHash, current))) {
      throw forbidden('the current password is wrong');
    }
    checkPassword(next);
    await this.store.updatePassword(row.id, await hashPassword(next));
    this.forget.passwords();
  }

  /** A site administrator sets another user's password. */
  async resetPassword(actor: Identity, username: string, password: string): Promise<void> {
    this.siteAdmin(actor);
    const u = await this.userNamed(username);
    checkPassword(password);
    await this.store.updatePassword(u.id, await hashPassword(password));
    this.forget.passwords();
  }

  /** Revokes every API key (web UI sessions included) of a user: themselves or, for a site administrator, anyone. */
  async revokeCredentials(actor: Identity, username: string): Promise<number> {
    const me = this.user(actor);
    if (me.username !== username && !me.siteAdmin) throw forbidden('only a site administrator may revoke another user’s keys');
    const u = await this.userNamed(username);
    return this.store.revokeUserCredentials(u.id, Date.now());
  }

  /**
   * A site administrator deletes a user with their namespace. Refused for oneself and for the
   * last owner of an organisation (make someone else owner, or delete it, first).
   */
  async deleteUser(actor: Identity, username: string, confirm: string | undefined): Promise<void> {
    const me = this.siteAdmin(actor);
    const u = await this.userNamed(username);
    if (u.id === me.userId) throw new ApiError(409, 'CONFLICT', 'you cannot delete yourself');
    requireConfirmation(username, confirm);
    const sole = await this.store.listOrgsSolelyOwnedBy(u.id);
    if (sole.length) throw new ApiError(409, 'CONFLICT', `${username} is the only owner of ${sole.join(', ')}: add another owner or delete it first`);
    await this.store.removeUser(u.id);
    this.images.forget(username);
    this.forget.deleted();
    this.forget.passwords();
  }

  /** Organisations (not users' namespaces) the actor can see. */
  async listOrgs(actor: Identity): Promise<OwnerRecord[]> {
    return (await this.tenancy.listOwners(actor)).filter((o) => o.kind === 'org');
  }

  /** An organisation's owner (or a site administrator) deletes it with everything in it. */
  async deleteOrg(actor: Identity, org: string, confirm: string | undefined): Promise<void> {
    const me = this.user(actor);
    const o = await this.store.findOwner(org);
    if (!o || o.kind !== 'org') throw notFound(`organisation ${org}`);
    if (!me.siteAdmin) {
      const roles = await this.store.findRoles(me.userId, o.id, null);
      if (!roles.length) throw notFound(`organisation ${org}`);
      if (!roles.includes('owner')) throw forbidden(`only an owner may delete ${org}`);
    }
    requireConfirmation(org, confirm);
    await this.store.removeOwner(o.id);
    this.images.forget(org);
    this.forget.deleted();
  }

  /** The actor leaves an organisation; its last owner cannot. */
  async leaveOrg(actor: Identity, org: string): Promise<void> {
    const me = this.user(actor);
    const o = await this.store.findOwner(org);
    if (!o || o.kind !== 'org') throw notFound(`organisation ${org}`);
    const r = await this.store.leaveOwner(me.userId, o.id);
    if (r === 'not_member') throw notFound(`membership of ${org}`);
    if (r === 'last_owner') throw new ApiError(409, 'CONFLICT', `you are the last owner of ${org}: make someone else owner, or delete it`);
  }

  /** Whoever may manage a repository deletes it with its images, tags, tokens, webhooks and upstreams. */
  async deleteRepository(actor: Identity, owner: string, name: string, confirm: string | undefined): Promise<void> {
    const acc = await this.access.check(actor, owner, name);
    if (!acc.repository || !acc.actions.has('pull')) throw notFound(`repository ${owner}/${name}`);
    if (!acc.actions.has('manage')) throw forbidden(`you may not delete ${owner}/${name}`);
    requireConfirmation(`${owner}/${name}`, confirm);
    await this.store.removeRepository(acc.repository.id);
    this.images.forget(`${owner}/${name}`);
    this.forget.deleted();
  }

  private async deletable(actor: Identity, owner: string, repo: string, image: string): Promise<string> {
    if (!image || image.split('/').some((p) => !isValidComponent(p))) throw new ApiError(400, 'INVALID', `invalid image name "${image}"`);
    const acc = await this.access.check(actor, owner, repo);
    if (!acc.repository || !acc.actions.has('pull')) throw notFound(`repository ${owner}/${repo}`);
    if (!acc.actions.has('delete')) throw forbidden(`you may not delete in ${owner}/${repo}`);
    return `${owner}/${repo}/${image}`;
  }

  /** Deletes an image (all its manifests and tags); needs `delete` on the repository. */
  async deleteImage(actor: Identity, owner: string, repo: string, image: string, confirm: string | undefined): Promise<void> {
    const full = await this.deletable(actor, owner, repo, image);
    const img = await this.meta.findImage(full);
    if (!img) throw notFound(`image ${full}`);
    requireConfirmation(full, confirm);
    // Immutable tags may not be deleted, not even with their whole image.
    for (let after: string | undefined; ; ) {
      const tags = await this.meta.listTags(img.id, { limit: 1000, ...(after !== undefined ? { after } : {}) });
      await this.policies.assertMayRemoveTags(img.repositoryId, tags);
      if (tags.length < 1000) break;
      after = tags[tags.length - 1];
    }
    await this.meta.removeImage(img.id);
    this.images.forget(full);
    this.forget.deleted();
  }

  /** Deletes a tag (the manifest stays, reachable by digest); needs `delete` on the repository. */
  async deleteTag(actor: Identity, owner: string, repo: string, image: string, tag: string): Promise<void> {
    const full = await this.deletable(actor, owner, repo, image);
    if (!isValidTag(tag)) throw new ApiError(400, 'INVALID', `invalid tag "${tag}"`);
    try {
      await this.manifests.delete(full, tag);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN') throw notFound(`tag ${full}:${tag}`);
      throw e;
    }
  }
}
