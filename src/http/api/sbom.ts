import { z } from 'zod';
import { ApiError } from '../../core/access/tenancy.ts';
import type { Registry } from '../../core/registry.ts';
import type { ApiRoute } from './index.ts';

const schemas = {
  settings: z.object({ enabled: z.boolean() }).strict(),
};

const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);

/** SBOM on push (docs/supply-chain.md): the per-repository switch and an image's SBOM status and packages. */
export function sbomApiRoutes(registry: Registry): ApiRoute[] {
  const sbom = registry.sbom;
  return [
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/sbom',
      summary: 'Whether pushes to the repository get an SBOM (on by default)',
      handler: async ({ identity, params }) => sbom.settings(identity, params.owner!, params.repo!),
    },
    {
      method: 'PUT',
      url: '/api/v1/repos/:owner/:repo/sbom',
      summary: 'Switch SBOM generation for future pushes (repository managers)',
      body: schemas.settings,
      handler: async ({ identity, params, body }) => sbom.setSettings(identity, params.owner!, params.repo!, body.enabled),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/sbom/status',
      summary: "An image's SBOM: state, generation time, the referrer's digest, OS and packages (an index: per platform)",
      query: [
        { name: 'image', description: 'the image inside the repository (required)' },
        { name: 'ref', description: 'a tag or digest (required)' },
        { name: 'packages', description: '`false`: leave the package list out (counts only)' },
      ],
      handler: async ({ identity, params, query }) => {
        const image = str(query.image);
        const ref = str(query.ref);
        if (!image || !ref) throw new ApiError(400, 'INVALID', 'query parameters "image" and "ref" (a tag or a digest) are required');
        return sbom.status(identity, params.owner!, params.repo!, image, ref, { packages: query.packages !== 'false' });
      },
    },
  ];
}
