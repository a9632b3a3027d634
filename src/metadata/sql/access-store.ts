import { type Expression, type ExpressionBuilder, type Kysely, type Selectable, type SqlBool, sql } from 'kysely';
import type {
  AccessStore,
  BlobReader,
  CredentialKind,
  CredentialRecord,
  LoginFailureCount,
  MembershipRecord,
  MembershipScope,
  NewCredential,
  NewUpstream,
  OwnerKind,
  OwnerRecord,
  RepositoryRecord,
  Role,
  UpstreamRecord,
  UserRecord,
  Visibility,
} from '../access-store.ts';
import { ConflictError } from '../access-store.ts';
import type { Database } from './schema.ts';
import { enqueueGcForImages } from './gc-reviews.ts';
import { Precompiled } from './precompiled.ts';
import type { ReadCache } from './read-cache.ts';

type CredentialRow = Selectable<Database['credentials']>;
type UserRow = Selectable<Database['users']>;

function isUniqueViolation(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err.code === '23505' || err.code === 'SQLITE_CONSTRAINT_UNIQUE' || err.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || /UNIQUE constraint/.test(err.message ?? '');
}

/** Repositories `userId` (or, with null, anyone) may read through visibility, their own namespace or memberships. */
function readableBy(eb: ExpressionBuilder<Database, 'repositories'>, userId: number | null): Expression<SqlBool> {
  if (userId === null) return eb('repositories.visibility', '=', 'public');
  return eb.or([
    eb('repositories.visibility', '=', 'public'),
    eb('repositories.owner_id', 'in', eb.selectFrom('users').select('owner_id').where('id', '=', userId)),
    eb('repositories.owner_id', 'in', eb.selectFrom('memberships').select('owner_id').where('user_id', '=', userId).where('owner_id', 'is not', null)),
    eb('repositories.id', 'in', eb.selectFrom('memberships').select('repository_id').where('user_id', '=', userId).where('repository_id', 'is not', null)),
  ]);
}

function n(v: unknown): number {
  return Number(v);
}

function nn(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

function toUser(r: UserRow): UserRecord {
  return {
    id: n(r.id),
    username: r.username,
    ownerId: n(r.owner_id),
    passwordHash: r.password_hash,
    siteAdmin: Boolean(n(r.site_admin)),
    email: r.email,
    createdAt: n(r.created_at),
  };
}

function toCredential(r: CredentialRow): CredentialRecord {
  return {
    id: n(r.id),
    kind: r.kind as CredentialKind,
    userId: nn(r.user_id),
    repositoryId: nn(r.repository_id),
    name: r.name,
    prefix: r.prefix,
    expiresAt: nn(r.expires_at),
    downloadLimit: nn(r.download_limit),
    downloadCount: n(r.download_count),
    revokedAt: nn(r.revoked_at),
    lastUsedAt: nn(r.last_used_at),
    createdAt: n(r.created_at),
  };
}

/** The Kysely implementation of AccessStore, for SQLite and PostgreSQL. */
export class SqlAccessStore implements AccessStore {
  /** The reads every authenticated pull makes, compiled once (parameters in SQL order). */
  private readonly hot;

  constructor(
    private readonly db: Kysely<Database>,
    /** SQLite: the hot reads' results, kept while the database is unchanged. */
    readCache?: ReadCache,
  ) {
    const c = readCache;
    this.hot = {
      owner: new Precompiled(db.selectFrom('owners').selectAll().where('name', '=', ''), 1, c),
      repository: new Precompiled(this.repoQuery().where('owners.name', '=', '').where('repositories.name', '=', ''), 2, c),
      user: new Precompiled(db.selectFrom('users').selectAll().where('username', '=', ''), 1, c),
    };
  }

  async findOwner(name: string): Promise<OwnerRecord | undefined> {
    const r = await this.hot.owner.first(this.db, [name]);
    return r && { id: n(r.id), name: r.name, kind: r.kind as OwnerKind, createdAt: n(r.created_at) };
  }

  async createOwner(name: string, kind: OwnerKind): Promise<OwnerRecord> {
    try {
      const r = await this.db.insertInto('owners').values({ name, kind, created_at: Date.now() }).returningAll().executeTakeFirstOrThrow();
      return { id: n(r.id), name: r.name, kind: r.kind as OwnerKind, createdAt: n(r.created_at) };
    } catch (e) {
      if (isUniqueViolation(e)) throw new ConflictError(`the name "${name}" is taken`);
      throw e;
    }
  }

  async listOwners(): Promise<OwnerRecord[]> {
    const rows = await this.db.selectFrom('owners').selectAll().orderBy('name').execute();
    return rows.map((r) => ({ id: n(r.id), name: r.name, kind: r.kind as OwnerKind, createdAt: n(r.created_at) }));
  }

  private repoQuery() {
    return this.db
      .selectFrom('repositories')
      .innerJoin('owners', 'owners.id', 'repositories.owner_id')
      .select([
        'repositories.id',
        'repositories.owner_id',
        'owners.name as owner',
        'repositories.name',
        'repositories.visibility',
        'repositories.description',
        'repositories.created_at',
      ]);
  }

  private toRepo(r: {
    id: number;
    owner_id: number;
    owner: string;
    name: string;
    visibility: string;
    description: string;
    created_at: number;
  }): RepositoryRecord {
    return {
      id: n(r.id),
      ownerId: n(r.owner_id),
      owner: r.owner,
      name: r.name,
      visibility: r.visibility as Visibility,
      description: r.description,
      createdAt: n(r.created_at),
    };
  }

  async findRepository(owner: string, name: string): Promise<RepositoryRecord | undefined> {
    const r = await this.hot.repository.first(this.db, [owner, name]);
    return r && this.toRepo(r);
  }

  async findRepositoryById(id: number): Promise<RepositoryRecord | undefined> {
    const r = await this.repoQuery().where('repositories.id', '=', id).executeTakeFirst();
    return r && this.toRepo(r);
  }

  async listRepositories(ownerId: number): Promise<RepositoryRecord[]> {
    const rows = await this.repoQuery().where('repositories.owner_id', '=', ownerId).orderBy('repositories.name').execute();
    return rows.map((r) => this.toRepo(r));
  }

  async createRepository(ownerId: number, name: string, visibility: Visibility, description: string): Promise<RepositoryRecord> {
    try {
      const r = await this.db
        .insertInto('repositories')
        .values({ owner_id: ownerId, name, visibility, description, created_at: Date.now() })
        .returning('id')
        .executeTakeFirstOrThrow();
      return (await this.findRepositoryById(n(r.id)))!;
    } catch (e) {
      if (isUniqueViolation(e)) throw new ConflictError(`the repository "${name}" exists`);
      throw e;
    }
  }

  async updateRepository(id: number, changes: { visibility?: Visibility; description?: string }): Promise<void> {
    const set: { visibility?: string; description?: string } = {};
    if (changes.visibility !== undefined) set.visibility = changes.visibility;
    if (changes.description !== undefined) set.description = changes.description;
    if (Object.keys(set).length === 0) return;
    await this.db.updateTable('repositories').set(set).where('id', '=', id).execute();
  }

  async createUser(u: { username: string; passwordHash: string | null; siteAdmin: boolean; email: string | null }): Promise<UserRecord> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const now = Date.now();
        const owner = await trx.insertInto('owners').values({ name: u.username, kind: 'user', created_at: now }).returning('id').executeTakeFirstOrThrow();
        const row = await trx
          .insertInto('users')
          .values({
            username: u.username,
            owner_id: owner.id,
            password_hash: u.passwordHash,
            site_admin: u.siteAdmin ? 1 : 0,
            email: u.email,
            created_at: now,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        return toUser(row);
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new ConflictError(`the name "${u.username}" is taken`);
      throw e;
    }
  }

  async findUserByName(username: string): Promise<UserRecord | undefined> {
    const r = await this.hot.user.first(this.db, [username]);
    return r && toUser(r);
  }

  async findUserById(id: number): Promise<UserRecord | undefined> {
    const r = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toUser(r);
  }

  async listUsers(): Promise<UserRecord[]> {
    return (await this.db.selectFrom('users').selectAll().orderBy('username').execute()).map(toUser);
  }

  async countUsers(): Promise<number> {
    const r = await this.db.selectFrom('users').select((eb) => eb.fn.countAll().as('c')).executeTakeFirstOrThrow();
    return n(r.c);
  }

  async findRoles(userId: number, ownerId: number, repositoryId: number | null): Promise<Role[]> {
    const rows = await this.db
      .selectFrom('memberships')
      .select('role')
      .where('user_id', '=', userId)
      .where((eb) =>
        repositoryId === null
          ? eb('owner_id', '=', ownerId)
          : eb.or([eb('owner_id', '=', ownerId), eb('repository_id', '=', repositoryId)]),
      )
      .execute();
    return rows.map((r) => r.role as Role);
  }

  async setMembership(userId: number, scope: MembershipScope, role: Role): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      let del = trx.deleteFrom('memberships').where('user_id', '=', userId);
      del = 'ownerId' in scope ? del.where('owner_id', '=', scope.ownerId) : del.where('repository_id', '=', scope.repositoryId);
      await del.execute();
      await trx
        .insertInto('memberships')
        .values({
          user_id: userId,
          owner_id: 'ownerId' in scope ? scope.ownerId : null,
          repository_id: 'repositoryId' in scope ? scope.repositoryId : null,
          role,
          created_at: Date.now(),
        })
        .execute();
    });
  }

  async removeMembership(userId: number, scope: MembershipScope): Promise<boolean> {
    let del = this.db.deleteFrom('memberships').where('user_id', '=', userId);
    del = 'ownerId' in scope ? del.where('owner_id', '=', scope.ownerId) : del.where('repository_id', '=', scope.repositoryId);
    const r = await del.executeTakeFirst();
    return n(r.numDeletedRows) > 0;
  }

  async listMemberships(scope: MembershipScope): Promise<MembershipRecord[]> {
    let q = this.db
      .selectFrom('memberships')
      .innerJoin('users', 'users.id', 'memberships.user_id')
      .select(['memberships.user_id', 'users.username', 'memberships.owner_id', 'memberships.repository_id', 'memberships.role', 'memberships.created_at'])
      .orderBy('users.username');
    q = 'ownerId' in scope ? q.where('memberships.owner_id', '=', scope.ownerId) : q.where('memberships.repository_id', '=', scope.repositoryId);
    const rows = await q.execute();
    return rows.map((r) => ({
      userId: n(r.user_id),
      username: r.username,
      ownerId: nn(r.owner_id),
      repositoryId: nn(r.repository_id),
      role: r.role as Role,
      createdAt: n(r.created_at),
    }));
  }

  async listReadableRepositoryIds(userId: number | null): Promise<number[]> {
    const rows = await this.db
      .selectFrom('repositories')
      .select('repositories.id')
      .where((eb) => readableBy(eb, userId))
      .execute();
    return rows.map((r) => n(r.id));
  }

  async listManagedRepositoryIds(userId: number): Promise<number[]> {
    const managing = ['admin', 'owner'];
    const rows = await this.db
      .selectFrom('repositories')
      .select('repositories.id')
      .where((eb) =>
        eb.or([
          eb('repositories.owner_id', 'in', eb.selectFrom('users').select('owner_id').where('id', '=', userId)),
          eb('repositories.owner_id', 'in', eb.selectFrom('memberships').select('owner_id').where('user_id', '=', userId).where('owner_id', 'is not', null).where('role', 'in', managing)),
          eb('repositories.id', 'in', eb.selectFrom('memberships').select('repository_id').where('user_id', '=', userId).where('repository_id', 'is not', null).where('role', 'in', managing)),
        ]),
      )
      .execute();
    return rows.map((r) => n(r.id));
  }

  async findReadableImageWithBlob(digest: string, reader: BlobReader): Promise<string | undefined> {
    // Driven by the image_blobs_digest index: only the digest's own links are visited, each
    // joined by primary key; the memberships subqueries are per user and small.
    let q = this.db
      .selectFrom('image_blobs')
      .innerJoin('images', 'images.id', 'image_blobs.image_id')
      .innerJoin('repositories', 'repositories.id', 'images.repository_id')
      .select('images.name')
      .where('image_blobs.digest', '=', digest);
    if (reader !== 'any') {
      const { userId, repositoryId } = reader;
      q = q.where((eb) => (repositoryId === undefined ? readableBy(eb, userId) : eb.or([readableBy(eb, userId), eb('repositories.id', '=', repositoryId)])));
    }
    const r = await q.limit(1).executeTakeFirst();
    return r?.name;
  }

  async createCredential(c: NewCredential): Promise<CredentialRecord> {
    const r = await this.db
      .insertInto('credentials')
      .values({
        kind: c.kind,
        user_id: c.userId,
        repository_id: c.repositoryId,
        name: c.name,
        prefix: c.prefix,
        secret_hash: c.secretHash,
        expires_at: c.expiresAt,
        download_limit: c.downloadLimit,
        revoked_at: null,
        last_used_at: null,
        created_at: Date.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toCredential(r);
  }

  async findCredentialByHash(secretHash: string): Promise<CredentialRecord | undefined> {
    const r = await this.db.selectFrom('credentials').selectAll().where('secret_hash', '=', secretHash).executeTakeFirst();
    return r && toCredential(r);
  }

  async findCredential(id: number): Promise<CredentialRecord | undefined> {
    const r = await this.db.selectFrom('credentials').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toCredential(r);
  }

  async listCredentials(
    filter: { userId: number; kind: CredentialKind } | { repositoryId: number; kind: CredentialKind },
  ): Promise<CredentialRecord[]> {
    let q = this.db.selectFrom('credentials').selectAll().where('kind', '=', filter.kind).orderBy('id');
    q = 'userId' in filter ? q.where('user_id', '=', filter.userId) : q.where('repository_id', '=', filter.repositoryId);
    return (await q.execute()).map(toCredential);
  }

  async revokeCredential(id: number, at: number): Promise<boolean> {
    const r = await this.db.updateTable('credentials').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return n(r.numUpdatedRows) > 0;
  }

  async touchCredential(id: number, at: number): Promise<void> {
    await this.db.updateTable('credentials').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  async countDownload(id: number): Promise<boolean> {
    const r = await this.db
      .updateTable('credentials')
      .set({ download_count: sql`download_count + 1` })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('download_limit', 'is', null), eb('download_count', '<', eb.ref('download_limit'))]))
      .executeTakeFirst();
    return n(r.numUpdatedRows) > 0;
  }

  async listUpstreams(repositoryId: number): Promise<UpstreamRecord[]> {
    const rows = await this.db.selectFrom('upstreams').selectAll().where('repository_id', '=', repositoryId).orderBy('priority').orderBy('id').execute();
    return rows.map(toUpstream);
  }

  async createUpstream(u: NewUpstream): Promise<UpstreamRecord> {
    const r = await this.db
      .insertInto('upstreams')
      .values({
        repository_id: u.repositoryId,
        url: u.url,
        username: u.username,
        password_enc: u.passwordEnc,
        priority: u.priority,
        cache: u.cache ? 1 : 0,
        prefix: u.prefix,
        remote_prefix: u.remotePrefix,
        created_at: Date.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toUpstream(r);
  }

  async removeUpstream(repositoryId: number, id: number): Promise<boolean> {
    const r = await this.db.deleteFrom('upstreams').where('repository_id', '=', repositoryId).where('id', '=', id).executeTakeFirst();
    return n(r.numDeletedRows) > 0;
  }

  async updatePassword(userId: number, passwordHash: string): Promise<boolean> {
    const r = await this.db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', userId).executeTakeFirst();
    return n(r.numUpdatedRows) > 0;
  }

  async revokeUserCredentials(userId: number, at: number): Promise<number> {
    const r = await this.db
      .updateTable('credentials')
      .set({ revoked_at: at })
      .where('user_id', '=', userId)
      .where('kind', '=', 'api_key')
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return n(r.numUpdatedRows);
  }

  // Deletions below remove rows; the schema's ON DELETE CASCADE takes what hangs below. Every
  // blob a removed image links or names gets a garbage-collection review in the same
  // transaction, before the rows go (docs/lifecycle.md).
  async removeUser(userId: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const user = await trx.selectFrom('users').select(['id', 'owner_id']).where('id', '=', userId).executeTakeFirst();
      if (!user) return false;
      // Entitlement tokens belong to their repository, not to the user who issued them.
      await trx.updateTable('credentials').set({ user_id: null }).where('user_id', '=', userId).where('kind', '=', 'entitlement').execute();
      await enqueueGcForImages(trx, { ownerId: Number(user.owner_id) });
      await trx.deleteFrom('users').where('id', '=', userId).execute();
      await trx.deleteFrom('owners').where('id', '=', user.owner_id).execute();
      return true;
    });
  }

  async removeOwner(ownerId: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await enqueueGcForImages(trx, { ownerId });
      const r = await trx.deleteFrom('owners').where('id', '=', ownerId).executeTakeFirst();
      return n(r.numDeletedRows) > 0;
    });
  }

  async removeRepository(repositoryId: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await enqueueGcForImages(trx, { repositoryId });
      const r = await trx.deleteFrom('repositories').where('id', '=', repositoryId).executeTakeFirst();
      return n(r.numDeletedRows) > 0;
    });
  }

  async leaveOwner(userId: number, ownerId: number): Promise<'removed' | 'last_owner' | 'not_member'> {
    return this.db.transaction().execute(async (trx) => {
      // A no-op write takes the owner row's lock (PostgreSQL) / the write lock (SQLite) first.
      await trx.updateTable('owners').set({ name: sql`name` }).where('id', '=', ownerId).execute();
      const mine = await trx.selectFrom('memberships').select('role').where('user_id', '=', userId).where('owner_id', '=', ownerId).executeTakeFirst();
      if (!mine) return 'not_member';
      if (mine.role === 'owner') {
        const owners = await trx
          .selectFrom('memberships')
          .select((eb) => eb.fn.countAll().as('c'))
          .where('owner_id', '=', ownerId)
          .where('role', '=', 'owner')
          .executeTakeFirstOrThrow();
        if (n(owners.c) <= 1) return 'last_owner';
      }
      await trx.deleteFrom('memberships').where('user_id', '=', userId).where('owner_id', '=', ownerId).execute();
      return 'removed';
    });
  }

  async listOrgsSolelyOwnedBy(userId: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('memberships as m')
      .innerJoin('owners as o', 'o.id', 'm.owner_id')
      .select('o.name')
      .where('m.user_id', '=', userId)
      .where('m.role', '=', 'owner')
      .where('o.kind', '=', 'org')
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('memberships as other')
              .select('other.id')
              .whereRef('other.owner_id', '=', 'm.owner_id')
              .where('other.role', '=', 'owner')
              .whereRef('other.user_id', '<>', 'm.user_id'),
          ),
        ),
      )
      .orderBy('o.name')
      .execute();
    return rows.map((r) => r.name);
  }

  async getSetting(key: string): Promise<string | undefined> {
    const r = await this.db.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return r?.value;
  }

  async putSettingIfAbsent(key: string, value: string): Promise<string> {
    await this.db.insertInto('settings').values({ key, value }).onConflict((oc) => oc.column('key').doNothing()).execute();
    return (await this.getSetting(key))!;
  }

  async findLoginFailures(keys: string[], windowStart: number): Promise<LoginFailureCount[]> {
    if (keys.length === 0) return [];
    const rows = await this.db.selectFrom('login_failures').selectAll().where('key', 'in', keys).where('since', '>=', windowStart).execute();
    return rows.map((r) => ({ key: r.key, failures: n(r.failures), since: n(r.since), lastAt: n(r.last_at) }));
  }

  async addLoginFailure(keys: string[], now: number, windowStart: number): Promise<void> {
    if (keys.length === 0) return;
    const stale = sql<boolean>`login_failures.since < ${windowStart}`;
    await this.db
      .insertInto('login_failures')
      .values(keys.map((key) => ({ key, failures: 1, since: now, last_at: now })))
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          failures: sql`CASE WHEN ${stale} THEN 1 ELSE login_failures.failures + 1 END`,
          since: sql`CASE WHEN ${stale} THEN excluded.since ELSE login_failures.since END`,
          last_at: sql`excluded.last_at`,
        }),
      )
      .execute();
  }

  async clearLoginFailures(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.db.deleteFrom('login_failures').where('key', 'in', keys).execute();
  }

  async deleteLoginFailuresBefore(before: number): Promise<number> {
    const r = await this.db.deleteFrom('login_failures').where('last_at', '<', before).executeTakeFirst();
    return n(r.numDeletedRows);
  }

  async replaceSetting(key: string, from: string, to: string): Promise<boolean> {
    const r = await this.db.updateTable('settings').set({ value: to }).where('key', '=', key).where('value', '=', from).executeTakeFirst();
    return n(r.numUpdatedRows) > 0;
  }

  async deleteSetting(key: string): Promise<void> {
    await this.db.deleteFrom('settings').where('key', '=', key).execute();
  }

  async listUpstreamSecrets(): Promise<{ id: number; value: string }[]> {
    const rows = await this.db.selectFrom('upstreams').select(['id', 'password_enc']).where('password_enc', 'is not', null).orderBy('id').execute();
    return rows.map((r) => ({ id: n(r.id), value: r.password_enc! }));
  }

  async replaceUpstreamSecret(id: number, from: string, to: string): Promise<boolean> {
    const r = await this.db.updateTable('upstreams').set({ password_enc: to }).where('id', '=', id).where('password_enc', '=', from).executeTakeFirst();
    return n(r.numUpdatedRows) > 0;
  }
}

function toUpstream(r: Selectable<Database['upstreams']>): UpstreamRecord {
  return {
    id: n(r.id),
    repositoryId: n(r.repository_id),
    url: r.url,
    username: r.username,
    passwordEnc: r.password_enc,
    priority: n(r.priority),
    cache: n(r.cache) === 1,
    prefix: r.prefix,
    remotePrefix: r.remote_prefix,
    createdAt: n(r.created_at),
  };
}
