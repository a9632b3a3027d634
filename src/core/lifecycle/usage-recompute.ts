import { parseManifest } from '../content/manifest.ts';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { LifecycleStore } from '../../metadata/lifecycle-store.ts';
import { ApiError } from '../access/tenancy.ts';

/** At most this many problems are listed per repository (the count covers them all). */
const MAX_PROBLEMS = 100;

export interface UsageCheck {
  /** `OWNER/REPOSITORY`, or `OWNER` for an owner's total. */
  scope: string;
  /** What quota checks use: the blobs the stored references name. */
  usageBytes: number;
  /** The same, recomputed from the manifests' own bytes. */
  recomputedBytes: number;
  drift: number;
  manifests?: number;
  problems?: string[];
  problemCount?: number;
}

export interface UsageRecomputeReport {
  scopes: UsageCheck[];
  /** Scopes whose usage differs from the recomputation. */
  drifted: number;
}

/**
 * `berth quota recompute [OWNER[/REPO]]`: usage is never kept as a counter — it is computed
 * from the references stored with each manifest (`manifest_refs`), so it cannot drift after
 * deletes or garbage collection. What could still be wrong is that derivation itself; this
 * recomputes every scope's usage from the manifests' own bytes (config and layers of each,
 * sized from the blob rows) and reports every difference: references missing or extra, and
 * named blobs that are no longer live. It reads only; the report is the repair plan.
 */
export async function recomputeUsage(store: LifecycleStore, accessStore: AccessStore, target: string | undefined): Promise<UsageRecomputeReport> {
  const [ownerName, repoName, ...rest] = (target ?? '').split('/');
  if (rest.length) throw new ApiError(400, 'INVALID', `expected OWNER or OWNER/REPOSITORY, got "${target!.slice(0, 200)}"`);
  const owners = ownerName ? [await accessStore.findOwner(ownerName)] : await accessStore.listOwners();
  if (owners.some((o) => !o)) throw new ApiError(404, 'NOT_FOUND', `owner ${ownerName} not found`);
  const scopes: UsageCheck[] = [];
  for (const owner of owners) {
    let repos = await accessStore.listRepositories(owner!.id);
    if (repoName !== undefined) {
      repos = repos.filter((r) => r.name === repoName);
      if (!repos.length) throw new ApiError(404, 'NOT_FOUND', `repository ${ownerName}/${repoName} not found`);
    }
    const ownerBlobs = new Map<string, number>();
    for (const repo of repos) {
      const check = await recomputeRepository(store, repo.id, `${owner!.name}/${repo.name}`);
      for (const [d, size] of check.blobs) ownerBlobs.set(d, size);
      scopes.push(check.result);
    }
    if (repoName === undefined) {
      const usageBytes = await store.usage({ ownerId: owner!.id });
      const recomputedBytes = [...ownerBlobs.values()].reduce((n, s) => n + s, 0);
      scopes.push({ scope: owner!.name, usageBytes, recomputedBytes, drift: recomputedBytes - usageBytes });
    }
  }
  return { scopes, drifted: scopes.filter((s) => s.drift !== 0 || (s.problemCount ?? 0) > 0).length };
}

async function recomputeRepository(store: LifecycleStore, repositoryId: number, label: string): Promise<{ result: UsageCheck; blobs: Map<string, number> }> {
  const named = new Set<string>();
  const problems: string[] = [];
  let problemCount = 0;
  const problem = (p: string) => {
    problemCount++;
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  let manifests = 0;
  for (let afterId = 0; ; ) {
    const page = await store.listManifestPayloads(repositoryId, { afterId, limit: 200 });
    for (const m of page) {
      manifests++;
      try {
        const parsed = parseManifest(m.payload, m.mediaType);
        if (parsed.config) named.add(parsed.config.digest);
        for (const l of parsed.layers) named.add(l.digest);
      } catch (e) {
        problem(`${m.image}@${m.digest}: stored bytes do not parse (${(e as Error).message.slice(0, 200)})`);
      }
    }
    if (page.length < 200) break;
    afterId = page[page.length - 1]!.id;
  }
  const rows = await store.findBlobSizes([...named]);
  const blobs = new Map<string, number>();
  for (const d of named) {
    const row = rows.get(d);
    if (!row) continue; // a non-distributable layer, or a blob never stored: never charged
    if (row.state !== 'live') problem(`${d}: named by a manifest but ${row.state}`);
    blobs.set(d, row.size);
  }
  const usageBytes = await store.usage({ repositoryId });
  const recomputedBytes = [...blobs.values()].reduce((n, s) => n + s, 0);
  if (recomputedBytes !== usageBytes) problem(`stored references give ${usageBytes} bytes, the manifests themselves ${recomputedBytes}`);
  return { result: { scope: label, usageBytes, recomputedBytes, drift: recomputedBytes - usageBytes, manifests, problems, problemCount }, blobs };
}
