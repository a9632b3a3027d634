import { z } from 'zod';
import type { Registry } from '../../core/registry.ts';
import type { DomainRecord } from '../../core/domains/domains.ts';
import type { ApiRoute } from './index.ts';
import { MultilineText, Text } from './fields.ts';

const Pem = MultilineText.max(64 * 1024);

const schemas = {
  createDomain: z
    .object({
      /** The host name clients use: lowercase DNS name or IPv4 address, no port. */
      host: Text.min(1).max(253),
      /** `OWNER` or `OWNER/REPOSITORY`. */
      target: Text.min(1).max(200),
      mirror: z.boolean().default(false),
      cert: Pem.optional(),
      key: Pem.optional(),
    })
    .strict()
    .refine((b) => (b.cert === undefined) === (b.key === undefined), 'cert and key go together'),
  setCertificate: z.object({ cert: Pem, key: Pem }).strict(),
};

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** A domain as the API shows it: never the key. */
export const presentDomain = (d: DomainRecord) => ({
  host: d.host,
  owner: d.owner,
  repository: d.repository,
  target: d.repository === null ? d.owner : `${d.owner}/${d.repository}`,
  mirror: d.mirror,
  certificate: d.certPem !== null,
  certificateExpiresAt: iso(d.certExpiresAt),
  createdAt: iso(d.createdAt),
});

/** `/api/v1/domains` (docs/domains.md) and `/api/v1/host`, the mapping of the host the request came in on. */
export function domainApiRoutes(registry: Registry): ApiRoute[] {
  const d = registry.domains;
  return [
    {
      method: 'GET',
      url: '/api/v1/domains',
      summary: 'Custom domains: all of them for a site administrator, else those of the owners you manage (?owner=)',
      query: [{ name: 'owner', description: 'only the domains of this owner' }],
      handler: async ({ identity, query }) => {
        const owner = typeof query.owner === 'string' && query.owner !== '' ? query.owner : undefined;
        return (await d.list(identity, owner)).map(presentDomain);
      },
    },
    {
      method: 'POST',
      url: '/api/v1/domains',
      summary: 'Map a host name to an owner or one repository (site administrators); optionally a read-only mirror, with a certificate',
      body: schemas.createDomain,
      status: 201,
      handler: async ({ identity, body }) =>
        presentDomain(await d.add(identity, { host: body.host, target: body.target, mirror: body.mirror, ...(body.cert ? { certificate: { cert: body.cert, key: body.key } } : {}) })),
    },
    {
      method: 'DELETE',
      url: '/api/v1/domains/:host',
      summary: 'Remove a custom domain (a site administrator, or whoever manages its owner)',
      status: 204,
      handler: async ({ identity, params }) => d.remove(identity, params.host!),
    },
    {
      method: 'PUT',
      url: '/api/v1/domains/:host/certificate',
      summary: "Replace a domain's certificate and key (PEM); the key is stored sealed and never returned",
      body: schemas.setCertificate,
      handler: async ({ identity, params, body }) => presentDomain(await d.setCertificate(identity, params.host!, body)),
    },
    {
      method: 'DELETE',
      url: '/api/v1/domains/:host/certificate',
      summary: "Remove a domain's certificate: the server's own is served for it",
      status: 204,
      handler: async ({ identity, params }) => void (await d.setCertificate(identity, params.host!, undefined)),
    },
    {
      method: 'GET',
      url: '/api/v1/host',
      summary: 'The host this request came in on: a custom domain with the prefix its short names drop (to callers who may read what it maps), or the main host (for setup snippets)',
      handler: async ({ identity, req }) => {
        const h = req.berthHost;
        if (!h) return { domain: null, prefix: '', mirror: false };
        // The prefix names the mapped owner or repository: only for those who may read it, so a
        // private repository's name does not leak to whoever knows its domain.
        const { owner, repository } = h.target;
        const readable = await (repository === undefined ? registry.tenancy.listRepositories(identity, owner) : registry.tenancy.getRepository(identity, owner, repository)).then(
          () => true,
          () => false,
        );
        return { domain: h.host, prefix: readable ? h.prefix : '', mirror: h.target.mirror };
      },
    },
  ];
}
