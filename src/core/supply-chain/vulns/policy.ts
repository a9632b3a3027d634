import { ApiError, type Tenancy } from '../../access/tenancy.ts';
import type { Identity } from '../../access/access.ts';
import { parseManifest } from '../../content/manifest.ts';
import type { MetadataStore } from '../../../metadata/metadata-store.ts';
import type { VulnExceptionRow, VulnPolicyRow, VulnStore } from '../../../metadata/vuln-store.ts';
import type { PullPolicy, PullSubject } from '../pull-policy.ts';
import { wantsSbom } from '../sbom/sbom.ts';
import type { Finding } from './match.ts';
import { atOrAbove, rank, THRESHOLDS, type Threshold } from './severity.ts';
import type { VulnReport } from './vulns.ts';

export interface PolicyView {
  repository: string;
  denySeverity: Threshold;
  fixableOnly: boolean;
  blockUntilScanned: boolean;
  exceptions: { id: string; expiresAt: string; expired: boolean; reason: string; createdBy: string; createdAt: string }[];
}

interface CachedPolicy {
  at: number;
  policy?: VulnPolicyRow;
  exceptions: VulnExceptionRow[];
}

const iso = (t: number) => new Date(t).toISOString();
const MAX_EXCEPTIONS = 500;
const VULN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

/**
 * Per-repository vulnerability pull policies (docs/vulnerabilities.md): deny at or above a
 * severity, fixable findings only, expiring exceptions, block until scanned; set by repository
 * managers, decided in the pull decision chain (DESIGN §11) from the stored reports.
 */
export class VulnPolicies {
  private readonly policyCache = new Map<string, CachedPolicy>();
  private readonly loading = new Map<string, Promise<CachedPolicy>>();

  constructor(
    private readonly store: VulnStore,
    private readonly tenancy: Tenancy,
    private readonly meta: MetadataStore,
    private readonly sbomEnabled: (repositoryId: number) => Promise<boolean>,
    /** How long a node keeps a repository's policy before reading it again. */
    private readonly cacheMs: number,
    /** The stored report of a manifest digest, if it was scanned. */
    private readonly reportOf: (digest: string) => Promise<VulnReport | undefined>,
  ) {}

  async getPolicy(actor: Identity, owner: string, name: string): Promise<PolicyView> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    return this.policyView(`${owner}/${name}`, repository.id);
  }

  private async policyView(label: string, repositoryId: number): Promise<PolicyView> {
    const p = await this.store.findPolicy(repositoryId);
    const now = Date.now();
    return {
      repository: label,
      denySeverity: (p?.denySeverity ?? 'none') as Threshold,
      fixableOnly: p?.fixableOnly ?? false,
      blockUntilScanned: p?.blockUntilScanned ?? false,
      exceptions: (await this.store.listExceptions(repositoryId)).map((e) => ({
        id: e.vulnId,
        expiresAt: iso(e.expiresAt),
        expired: e.expiresAt <= now,
        reason: e.reason,
        createdBy: e.createdBy,
        createdAt: iso(e.createdAt),
      })),
    };
  }

  private async manageable(actor: Identity, owner: string, name: string): Promise<number> {
    return (await this.tenancy.manageableRepository(actor, owner, name)).id;
  }

  /** Changes a repository's pull policy (repository managers). */
  async setPolicy(actor: Identity, owner: string, name: string, changes: { denySeverity?: string; fixableOnly?: boolean; blockUntilScanned?: boolean }): Promise<PolicyView> {
    const id = await this.manageable(actor, owner, name);
    if (changes.denySeverity !== undefined && !(THRESHOLDS as readonly string[]).includes(changes.denySeverity)) {
      throw new ApiError(400, 'INVALID', `deny severity must be one of ${THRESHOLDS.join(', ')}`);
    }
    const current = await this.store.findPolicy(id);
    const blockSince = changes.blockUntilScanned === true && !current?.blockUntilScanned ? Date.now() : changes.blockUntilScanned === false ? null : undefined;
    await this.store.savePolicy(id, {
      ...(changes.denySeverity !== undefined ? { denySeverity: changes.denySeverity } : {}),
      ...(changes.fixableOnly !== undefined ? { fixableOnly: changes.fixableOnly } : {}),
      ...(changes.blockUntilScanned !== undefined ? { blockUntilScanned: changes.blockUntilScanned } : {}),
      ...(blockSince !== undefined ? { blockSince } : {}),
    });
    this.forget(`${owner}/${name}`);
    return this.policyView(`${owner}/${name}`, id);
  }

  /** Allows a vulnerability (OSV id or alias) in the repository's pulls until `expiresAt` (repository managers). */
  async addException(actor: Identity, owner: string, name: string, e: { id: string; expiresAt: number; reason: string }): Promise<PolicyView> {
    const id = await this.manageable(actor, owner, name);
    if (!VULN_ID.test(e.id)) throw new ApiError(400, 'INVALID', 'a vulnerability id such as CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx');
    if (!Number.isFinite(e.expiresAt) || e.expiresAt <= Date.now()) throw new ApiError(400, 'INVALID', 'an exception needs an expiry in the future');
    if (e.expiresAt > Date.now() + 5 * 365 * 86_400_000) throw new ApiError(400, 'INVALID', 'an exception may last at most five years');
    const existing = await this.store.listExceptions(id);
    if (existing.length >= MAX_EXCEPTIONS && !existing.some((x) => x.vulnId === e.id)) throw new ApiError(400, 'INVALID', `at most ${MAX_EXCEPTIONS} exceptions per repository`);
    await this.store.saveException({ repositoryId: id, vulnId: e.id, expiresAt: e.expiresAt, reason: e.reason, createdBy: actor.kind === 'user' ? actor.username : actor.kind, createdAt: Date.now() });
    this.forget(`${owner}/${name}`);
    return this.policyView(`${owner}/${name}`, id);
  }

  async removeException(actor: Identity, owner: string, name: string, vulnId: string): Promise<PolicyView> {
    const id = await this.manageable(actor, owner, name);
    if (!(await this.store.removeException(id, vulnId))) throw new ApiError(404, 'NOT_FOUND', `no exception for ${vulnId.slice(0, 200)} in ${owner}/${name}`);
    this.forget(`${owner}/${name}`);
    return this.policyView(`${owner}/${name}`, id);
  }

  /** Drops this node's copy of `OWNER/REPOSITORY`'s policy: its next pull reads it anew. */
  forget(repository: string): void {
    this.policyCache.delete(repository);
  }

  /** The repository's policy as this node knows it (at most `policyCacheMs` old). */
  private cachedPolicy(key: string, owner: string, repository: string): CachedPolicy | Promise<CachedPolicy> {
    const hit = this.policyCache.get(key);
    if (hit && Date.now() - hit.at < this.cacheMs) return hit;
    let p = this.loading.get(key);
    if (!p) {
      p = this.store
        .findPolicyByName(owner, repository)
        .then((r) => {
          const entry: CachedPolicy = { at: Date.now(), ...(r ? { policy: r.policy } : {}), exceptions: r?.exceptions ?? [] };
          if (this.policyCache.size >= 10_000) this.policyCache.clear();
          this.policyCache.set(key, entry);
          return entry;
        })
        .finally(() => this.loading.delete(key));
      this.loading.set(key, p);
    }
    return p;
  }

  /** The content policy registered in the pull decision chain (DESIGN §11). */
  pullPolicy(): PullPolicy {
    const versionOf = (c: CachedPolicy): string | undefined => {
      const p = c.policy;
      if (!p || (p.denySeverity === 'none' && !p.blockUntilScanned)) return undefined;
      const now = Date.now();
      // An exception that expires changes the verdict: count the expired ones into the version.
      return `${p.generation}.${c.exceptions.filter((e) => e.expiresAt <= now).length}`;
    };
    return {
      name: 'vulnerabilities',
      content: true,
      version: (owner, repository) => {
        const c = this.cachedPolicy(`${owner}/${repository}`, owner, repository);
        return c instanceof Promise ? c.then(versionOf) : versionOf(c);
      },
      decide: async (pull) => {
        const c = await this.cachedPolicy(`${pull.owner}/${pull.repository}`, pull.owner, pull.repository);
        return c.policy ? this.decide(pull, c.policy, c.exceptions) : undefined;
      },
    };
  }

  private async decide(pull: PullSubject, p: VulnPolicyRow, exceptions: VulnExceptionRow[]): Promise<string | undefined> {
    let parsed;
    try {
      parsed = parseManifest(pull.payload, pull.mediaType);
    } catch {
      return undefined;
    }
    if (!wantsSbom(parsed)) return undefined; // an index (its platforms are decided when pulled), an artifact
    const label = `${pull.owner}/${pull.repository}`;
    const report = await this.reportOf(pull.digest);
    if (!report) {
      if (!p.blockUntilScanned || p.blockSince === null) return undefined;
      const img = await this.meta.findImage(pull.name);
      const m = img ? await this.meta.findManifest(img.id, pull.digest) : undefined;
      if (!img || !m || m.createdAt < p.blockSince || !(await this.sbomEnabled(img.repositoryId))) return undefined;
      return `pull refused by the vulnerability policy of ${label}: ${pull.digest} has not been scanned for vulnerabilities yet (block until scanned); try again in a minute`;
    }
    const threshold = p.denySeverity as Threshold;
    const now = Date.now();
    const allowed = new Set(exceptions.filter((e) => e.expiresAt > now).map((e) => e.vulnId));
    const worst = report.findings.filter(
      (f) => atOrAbove(f.severity, threshold) && (!p.fixableOnly || f.fixed !== undefined) && !allowed.has(f.id) && !f.aliases.some((a) => allowed.has(a)),
    );
    if (!worst.length) return undefined;
    worst.sort((a, b) => rank(a.severity) - rank(b.severity) || (b.score ?? 0) - (a.score ?? 0));
    const ids = new Map<string, Finding>();
    for (const f of worst) if (!ids.has(f.id)) ids.set(f.id, f);
    const named = [...ids.values()].slice(0, 3).map((f) => {
      const cve = f.aliases.find((a) => a.startsWith('CVE-'));
      const fix = f.fixed ? `fixed in ${f.fixed}` : 'no fix yet';
      return `${f.id}${cve && cve !== f.id ? ` (${cve})` : ''} in ${f.package.name} ${f.installed}, ${f.severity}, ${fix}`;
    });
    const more = ids.size > 3 ? `; and ${ids.size - 3} more` : '';
    const what = `${ids.size} ${p.fixableOnly ? 'fixable ' : ''}vulnerabilit${ids.size === 1 ? 'y' : 'ies'} at or above ${threshold}`;
    return `pull refused by the vulnerability policy of ${label}: ${what}: ${named.join('; ')}${more}`;
  }
}
