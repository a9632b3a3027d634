import { z } from 'zod';
import { Text } from './fields.ts';
import type { Registry } from '../../core/registry.ts';
import type { ApiRoute } from './index.ts';

const schemas = {
  run: z.object({ dryRun: z.boolean().default(false) }).strict(),
  reconcile: z.object({ apply: z.boolean().default(false) }).strict(),
  recompute: z.object({ target: Text.max(300).optional() }).strict(),
  repoLifecycle: z
    .object({
      /** Comma-separated tag globs, `!` for exceptions; empty string: none. */
      immutableTags: Text.max(4000).optional(),
      /** IEC units (`10GiB`), bytes, or `none`. Site administrators only. */
      quota: Text.max(40).optional(),
    })
    .strict(),
  ownerQuota: z.object({ quota: Text.max(40) }).strict(),
  /** Validated in core (RetentionSchema); null clears the rules. */
  retention: z.object({ rules: z.unknown() }).passthrough().nullable(),
};

/**
 * `/api/v1/gc` (online garbage collection, site administrators: `berth gc`) and the lifecycle
 * settings of repositories and owners: immutable tags, quotas, usage (`berth repo set`).
 */
export function lifecycleApiRoutes(registry: Registry): ApiRoute[] {
  const admin = registry.tenancy;
  const policies = registry.policies;
  return [
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/lifecycle',
      summary: "A repository's immutable tag patterns, quota and storage usage (and its owner's)",
      handler: async ({ identity, params }) => policies.get(identity, params.owner!, params.repo!),
    },
    {
      method: 'PUT',
      url: '/api/v1/repos/:owner/:repo/lifecycle',
      summary: 'Set immutable tag patterns (repository managers) and the quota (site administrators)',
      body: schemas.repoLifecycle,
      handler: async ({ identity, params, body }) => policies.set(identity, params.owner!, params.repo!, body),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/retention',
      summary: "A repository's retention rules (null: none)",
      handler: async ({ identity, params }) => ({ retention: await registry.retention.get(identity, params.owner!, params.repo!) }),
    },
    {
      method: 'PUT',
      url: '/api/v1/repos/:owner/:repo/retention',
      summary: 'Set (or with null clear) the retention rules; a run is queued (repository managers)',
      body: schemas.retention,
      handler: async ({ identity, params, body }) => ({ retention: await registry.retention.set(identity, params.owner!, params.repo!, body) }),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/retention/plan',
      summary: 'What a retention run would do now, with the reason for each tag kept or deleted',
      handler: async ({ identity, params }) => registry.retention.plan(identity, params.owner!, params.repo!),
    },
    {
      method: 'POST',
      url: '/api/v1/repos/:owner/:repo/retention/run',
      summary: 'Run the retention rules now (repository managers); returns the plan carried out',
      handler: async ({ identity, params }) => registry.retention.run(identity, params.owner!, params.repo!),
    },
    {
      method: 'GET',
      url: '/api/v1/owners/:owner/retention',
      summary: "The retention rules an owner's repositories inherit when they have none of their own (null: none)",
      handler: async ({ identity, params }) => ({ retention: await registry.retention.getOwner(identity, params.owner!) }),
    },
    {
      method: 'PUT',
      url: '/api/v1/owners/:owner/retention',
      summary: "Set (or with null clear) an owner's inherited retention rules; runs are queued (owner managers)",
      body: schemas.retention,
      handler: async ({ identity, params, body }) => ({ retention: await registry.retention.setOwner(identity, params.owner!, body) }),
    },
    {
      method: 'GET',
      url: '/api/v1/owners/:owner/usage',
      summary: "Storage used by each of an owner's repositories the caller may read; the owner's total and quota for owner managers",
      handler: async ({ identity, params }) => policies.ownerUsage(identity, params.owner!),
    },
    {
      method: 'POST',
      url: '/api/v1/quota/recompute',
      summary: 'Recompute storage usage from the manifests themselves for every repository and owner, or one (target OWNER or OWNER/REPO), and report drift (site administrators)',
      body: schemas.recompute,
      handler: async ({ identity, body }) => policies.recomputeUsage(identity, body.target),
    },
    {
      method: 'PUT',
      url: '/api/v1/owners/:owner/quota',
      summary: "Set an owner's storage quota over all its repositories (site administrators)",
      body: schemas.ownerQuota,
      handler: async ({ identity, params, body }) => policies.setOwnerQuota(identity, params.owner!, body.quota),
    },
    {
      method: 'GET',
      url: '/api/v1/gc/status',
      summary: 'Garbage collection: blobs per state, reviews queued, what this node deleted (site administrators)',
      handler: async ({ identity }) => {
        admin.requireSiteAdmin(identity);
        return registry.gc.status();
      },
    },
    {
      method: 'POST',
      url: '/api/v1/gc/run',
      summary: 'Run every due garbage-collection review now on this node; dryRun decides without deleting (site administrators)',
      body: schemas.run,
      handler: async ({ identity, body }) => {
        admin.requireSiteAdmin(identity);
        return registry.gc.run({ dryRun: body.dryRun });
      },
    },
    {
      method: 'POST',
      url: '/api/v1/gc/reconcile',
      summary: 'Compare storage with the metadata now: objects without rows and rows without objects; apply deletes orphans older than the safety age (site administrators)',
      body: schemas.reconcile,
      handler: async ({ identity, body }) => {
        admin.requireSiteAdmin(identity);
        return registry.reconciler.run({ apply: body.apply });
      },
    },
    {
      method: 'GET',
      url: '/api/v1/gc/explain/:digest',
      summary: 'Why a blob or manifest is still stored, or when it will go (site administrators)',
      handler: async ({ identity, params }) => {
        admin.requireSiteAdmin(identity);
        return registry.gc.explain(params.digest!);
      },
    },
  ];
}
