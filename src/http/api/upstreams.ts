import { z } from 'zod';
import type { Identity } from '../../core/access/access.ts';
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import type { UpstreamRecord } from '../../core/types.ts';
import type { ApiRoute } from './index.ts';
import { Text, iso } from './fields.ts';


const PrefixSchema = Text
  .max(200)
  .regex(/^[a-z0-9._\/-]*$/, 'a name prefix: lowercase letters, digits, . _ - and /');

const schemas = {
  createUpstream: z
    .object({
      url: Text
        .pipe(z.url())
        .pipe(z.string().max(2000))
        .refine((u) => /^https?:\/\//i.test(u), 'must be an http:// or https:// URL'),
      username: Text.min(1).max(200).optional(),
      password: Text.min(1).max(4000).optional(),
      priority: z.number().int().min(-1000).max(1000).default(0),
      cache: z.boolean().default(true),
      /** Only images whose name inside the repository starts with this are proxied; stripped upstream. */
      prefix: PrefixSchema.default(''),
      /** Prepended to the (stripped) image name upstream, e.g. `library/` or `owner/repo/`. */
      remotePrefix: PrefixSchema.default(''),
    })
    .strict()
    .refine((b) => (b.username === undefined) === (b.password === undefined), 'username and password go together'),
};

export const presentUpstream = (u: UpstreamRecord) => ({
  id: u.id,
  url: u.url,
  username: u.username,
  hasPassword: u.passwordEnc !== null,
  priority: u.priority,
  cache: u.cache,
  prefix: u.prefix,
  remotePrefix: u.remotePrefix,
  createdAt: iso(u.createdAt),
});

/** `/api/v1/repos/:owner/:repo/upstreams` and the cached-content listing (docs/proxy.md). */
export function upstreamApiRoutes(registry: Registry): ApiRoute[] {
  const manageable = async (identity: Identity, params: Record<string, string>) => {
    const { repository, canManage } = await registry.tenancy.getRepository(identity, params.owner!, params.repo!);
    if (!canManage) throw new ApiError(403, 'FORBIDDEN', `you may not manage ${params.owner}/${params.repo}`);
    return repository;
  };
  return [
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/upstreams',
      summary: "A repository's upstream registries (pull-through cache), by priority",
      handler: async ({ identity, params }) => (await registry.proxy.list((await manageable(identity, params)).id)).map(presentUpstream),
    },
    {
      method: 'POST',
      url: '/api/v1/repos/:owner/:repo/upstreams',
      summary: 'Add an upstream registry; its password is stored encrypted and never returned',
      body: schemas.createUpstream,
      status: 201,
      handler: async ({ identity, params, body }) => presentUpstream(await registry.proxy.add((await manageable(identity, params)).id, body)),
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/upstreams/:id',
      summary: 'Remove an upstream registry (cached content stays)',
      status: 204,
      handler: async ({ identity, params }) => {
        const repo = await manageable(identity, params);
        const id = Number(params.id);
        if (!Number.isSafeInteger(id) || id <= 0 || !(await registry.proxy.remove(repo.id, id))) throw new ApiError(404, 'NOT_FOUND', 'no such upstream');
      },
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/cached',
      summary: 'Manifests the pull-through cache stored in the repository (cached: true), with their tags',
      handler: async ({ identity, params }) => {
        const { repository } = await registry.tenancy.getRepository(identity, params.owner!, params.repo!);
        const rows = await registry.meta.listCachedManifests(repository.id, 1000);
        return rows.map((r) => ({ ...r, cached: true, createdAt: iso(r.createdAt) }));
      },
    },
  ];
}
