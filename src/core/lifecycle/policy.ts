import { RegistryError } from '../errors.ts';
import { ApiError, type Tenancy } from '../access/tenancy.ts';
import type { Identity } from '../access/access.ts';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { LifecycleStore } from '../../metadata/lifecycle-store.ts';
import { recomputeUsage, type UsageRecomputeReport } from './usage-recompute.ts';

/** Parsed immutable-tag patterns: a tag is immutable when it matches an `allow` glob and no `except` glob. */
export interface TagPatterns {
  source: string;
  allow: RegExp[];
  except: RegExp[];
}

const PATTERN = /^!?[A-Za-z0-9_.*?-]{1,128}$/;

/** Parses `v*,!*-dev`: comma-separated globs (`*` any run, `?` one character), `!` for exceptions. */
export function parseTagPatterns(source: string): TagPatterns {
  const parts = source.split(',').map((p) => p.trim()).filter(Boolean);
  if (parts.length > 50) throw new ApiError(400, 'INVALID', 'at most 50 immutable tag patterns');
  const out: TagPatterns = { source: parts.join(','), allow: [], except: [] };
  for (const p of parts) {
    if (!PATTERN.test(p)) throw new ApiError(400, 'INVALID', `invalid tag pattern "${p.slice(0, 140)}": tag characters with * and ?, optionally after !`);
    (p.startsWith('!') ? out.except : out.allow).push(globToRegExp(p.replace(/^!/, '')));
  }
  return out;
}

/** A glob (`*` any run, `?` one character; everything else literal) as an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\/-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

export function isImmutable(p: TagPatterns, tag: string): boolean {
  return p.allow.some((r) => r.test(tag)) && !p.except.some((r) => r.test(tag));
}

const UNITS: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3, tb: 1000 ** 4 };

/** `10GiB`, `500MiB`, `1TB`, or bytes; `none` clears a quota (null). */
export function parseSize(s: string): number | null {
  if (/^(none|off|unlimited)$/i.test(s.trim())) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(s.trim());
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ApiError(400, 'INVALID', `invalid size "${s.slice(0, 40)}": use e.g. 10GiB, 500MiB or bytes`);
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw new ApiError(400, 'INVALID', 'size too large');
  return n;
}

/** What the manifest path needs of a repository's settings. */
export interface ManifestPolicy {
  immutable(tag: string): boolean;
  /** The repository has retention rules: a tag push queues a run. */
  retention: boolean;
  quotas: { scope: { repositoryId: number } | { ownerId: number }; limit: number; label: string }[];
}

export interface LifecycleView {
  repository: string;
  immutableTags: string;
  quotaBytes: number | null;
  usageBytes: number;
  owner: { name: string; quotaBytes: number | null; usageBytes: number };
}

export interface OwnerUsageView {
  owner: string;
  /** Null unless the caller manages the owner. */
  quotaBytes: number | null;
  /** All repositories together, each blob once; null unless the caller manages the owner. */
  usageBytes: number | null;
  /** Per repository the caller may read, each blob once within its repository. */
  repositories: { repository: string; usageBytes: number }[];
}

/**
 * Per-repository immutable tags and per-repository / per-owner storage quotas
 * (docs/lifecycle.md). Repository managers set tag patterns; quotas are set by site
 * administrators (a tenant may not raise its own). Changes are audited as `admin` events by
 * the management API.
 */
export class RepositoryPolicies {
  constructor(
    private readonly store: LifecycleStore,
    private readonly accessStore: AccessStore,
    private readonly tenancy: Tenancy,
  ) {}

  /** The policy the manifest path applies in an image of `repositoryId`. */
  async forRepository(repositoryId: number): Promise<ManifestPolicy> {
    const s = await this.store.findRepositoryLifecycle(repositoryId);
    const repo = await this.accessStore.findRepositoryById(repositoryId);
    const patterns = parseTagPatterns(s.immutableTags);
    const quotas: ManifestPolicy['quotas'] = [];
    if (s.quotaBytes !== null && repo) quotas.push({ scope: { repositoryId }, limit: s.quotaBytes, label: `${repo.owner}/${repo.name}` });
    let retention = s.retention !== null;
    if (repo) {
      const ownerQuota = await this.store.findOwnerQuota(repo.ownerId);
      if (ownerQuota !== null) quotas.push({ scope: { ownerId: repo.ownerId }, limit: ownerQuota, label: repo.owner });
      retention ||= (await this.store.findOwnerRetention(repo.ownerId)) !== null; // inherited rules
    }
    return { immutable: (tag) => isImmutable(patterns, tag), quotas, retention };
  }

  /** Set by the composition: queues a retention run of a repository after a tag push. */
  onTagPush: (repositoryId: number) => Promise<void> = async () => undefined;

  /** Refuses deleting `tags` when one is immutable. */
  async assertMayRemoveTags(repositoryId: number, tags: string[]): Promise<void> {
    if (!tags.length) return;
    const p = await this.forRepository(repositoryId);
    const locked = tags.filter((t) => p.immutable(t));
    if (locked.length) throw new RegistryError('DENIED', `tag${locked.length > 1 ? 's' : ''} ${locked.slice(0, 5).map((t) => `"${t}"`).join(', ')} immutable: it may not be deleted or moved`);
  }

  async get(actor: Identity, owner: string, name: string): Promise<LifecycleView> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    const s = await this.store.findRepositoryLifecycle(repository.id);
    return {
      repository: `${owner}/${name}`,
      immutableTags: s.immutableTags,
      quotaBytes: s.quotaBytes,
      usageBytes: await this.store.usage({ repositoryId: repository.id }),
      owner: { name: owner, quotaBytes: await this.store.findOwnerQuota(repository.ownerId), usageBytes: await this.store.usage({ ownerId: repository.ownerId }) },
    };
  }

  async set(actor: Identity, owner: string, name: string, changes: { immutableTags?: string; quota?: string }): Promise<LifecycleView> {
    const { repository, canManage } = await this.tenancy.getRepository(actor, owner, name);
    if (!canManage) throw new ApiError(403, 'DENIED', `you may not manage ${owner}/${name}`);
    const next: { immutableTags?: string; quotaBytes?: number | null } = {};
    if (changes.immutableTags !== undefined) next.immutableTags = parseTagPatterns(changes.immutableTags).source;
    if (changes.quota !== undefined) {
      this.tenancy.requireSiteAdmin(actor);
      next.quotaBytes = parseSize(changes.quota);
    }
    await this.store.saveRepositoryLifecycle(repository.id, next);
    return this.get(actor, owner, name);
  }

  /**
   * Storage usage of an owner's repositories the actor may read; the owner's total and quota
   * only for those who manage the owner (a total would reveal the size of private repositories).
   */
  async ownerUsage(actor: Identity, owner: string): Promise<OwnerUsageView> {
    const visible = new Set((await this.tenancy.listRepositories(actor, owner)).map((r) => r.name));
    const o = (await this.accessStore.findOwner(owner))!;
    const repositories = (await this.store.usageByRepository(o.id)).filter((r) => visible.has(r.repository));
    const manages = await this.tenancy.manageableOwner(actor, owner).then(
      () => true,
      () => false,
    );
    return {
      owner,
      quotaBytes: manages ? await this.store.findOwnerQuota(o.id) : null,
      usageBytes: manages ? await this.store.usage({ ownerId: o.id }) : null,
      repositories,
    };
  }

  /** Recomputes usage from the manifests' bytes and reports drift (site administrators; usage-recompute.ts). */
  async recomputeUsage(actor: Identity, target: string | undefined): Promise<UsageRecomputeReport> {
    this.tenancy.requireSiteAdmin(actor);
    return recomputeUsage(this.store, this.accessStore, target);
  }

  async setOwnerQuota(actor: Identity, owner: string, quota: string): Promise<{ owner: string; quotaBytes: number | null; usageBytes: number }> {
    this.tenancy.requireSiteAdmin(actor);
    const o = await this.accessStore.findOwner(owner);
    if (!o) throw new ApiError(404, 'NOT_FOUND', `owner ${owner} not found`);
    const quotaBytes = parseSize(quota);
    await this.store.saveOwnerQuota(o.id, quotaBytes);
    return { owner, quotaBytes, usageBytes: await this.store.usage({ ownerId: o.id }) };
  }
}
