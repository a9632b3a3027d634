import { z } from 'zod';
import type { Registry } from '../../core/registry.ts';
import type { ApiRoute } from './index.ts';

const schemas = {
  run: z.object({ dryRun: z.boolean().default(false) }).strict(),
};

/** `/api/v1/gc`: online garbage collection for site administrators (`berth gc`). */
export function gcApiRoutes(registry: Registry): ApiRoute[] {
  const admin = registry.tenancy;
  return [
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
