import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiError } from '../../core/access/tenancy.ts';
import type { Registry } from '../../core/registry.ts';
import { THRESHOLDS } from '../../core/supply-chain/vulns/severity.ts';
import type { HttpAuth } from '../auth.ts';
import { contentLength, requestBody, stringParam } from '../distribution/util.ts';
import { Text } from './fields.ts';
import type { ApiRoute } from './index.ts';
import { parseDuration } from './index.ts';

const schemas = {
  policy: z
    .object({
      denySeverity: z.enum(THRESHOLDS).optional(),
      fixableOnly: z.boolean().optional(),
      blockUntilScanned: z.boolean().optional(),
    })
    .strict(),
  exception: z
    .object({
      /** `30d`, `12h`, or an RFC 3339 time. */
      expires: Text.min(1).max(40),
      reason: Text.max(500).default(''),
    })
    .strict(),
};

/** `30d` from now, or an RFC 3339 time. */
function expiryOf(s: string): number {
  if (/^\d+[smhd]?$/.test(s)) return Date.now() + parseDuration(s);
  const t = Date.parse(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s) || !Number.isFinite(t)) throw new ApiError(400, 'INVALID', 'expires: a duration such as 30d or 12h, or a date such as 2027-01-31');
  return t;
}

function image(q: Record<string, unknown>, owner: string, repo: string): string {
  const img = stringParam(q.image);
  if (!img) throw new ApiError(400, 'INVALID', 'query parameter "image" is required (the image name inside the repository)');
  return `${owner}/${repo}/${img}`;
}

/**
 * The vulnerability database, reports and policies (docs/vulnerabilities.md, docs/api.md):
 * `berth vulndb`, `berth scan`, `berth vulns`, `berth repo set --deny-severity`.
 */
export function vulnApiRoutes(registry: Registry): ApiRoute[] {
  const v = registry.vulns;
  return [
    {
      method: 'GET',
      url: '/api/v1/vulndb',
      summary: 'The vulnerability database: version, as of, last import and refresh, records per ecosystem (site administrators)',
      handler: async ({ identity }) => v.status(identity),
    },
    {
      method: 'POST',
      url: '/api/v1/vulndb/refresh',
      summary: 'Queue a refresh from the configured mirror now (site administrators)',
      handler: async ({ identity }) => {
        registry.tenancy.requireSiteAdmin(identity);
        if (!(await v.enqueueRefresh())) throw new ApiError(400, 'INVALID', 'no mirror is configured (vulns.mirror.urls)');
        return { queued: true };
      },
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/vulnerabilities',
      summary: 'The vulnerability report of an image at a tag or digest (an index: per platform)',
      query: [
        { name: 'image', description: 'image name inside the repository' },
        { name: 'ref', description: 'tag or digest' },
      ],
      handler: async ({ identity, params, query }) => {
        const ref = stringParam(query.ref);
        if (!ref) throw new ApiError(400, 'INVALID', 'query parameter "ref" is required (a tag or a digest)');
        return v.report(identity, image(query, params.owner!, params.repo!), ref);
      },
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/vulnerabilities/tags',
      summary: "A severity summary per tag of an image, paged like the tag list",
      query: [
        { name: 'image', description: 'image name inside the repository' },
        { name: 'after', description: 'cursor: the last tag of the previous page' },
        { name: 'limit', description: 'tags per page (default 100, at most 1000)' },
      ],
      handler: async ({ identity, params, query }) => {
        const limit = Math.min(Math.max(Number(stringParam(query.limit) ?? 100) || 100, 1), 1000);
        const after = stringParam(query.after);
        return v.tagSummaries(identity, image(query, params.owner!, params.repo!), { limit, ...(after ? { after } : {}) });
      },
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/vulnerability-policy',
      summary: "A repository's vulnerability pull policy and its exceptions",
      handler: async ({ identity, params }) => v.policies.getPolicy(identity, params.owner!, params.repo!),
    },
    {
      method: 'PUT',
      url: '/api/v1/repos/:owner/:repo/vulnerability-policy',
      summary: 'Deny pulls at or above a severity (optionally only fixable ones); block new pushes until scanned (repository managers)',
      body: schemas.policy,
      handler: async ({ identity, params, body }) => v.policies.setPolicy(identity, params.owner!, params.repo!, body),
    },
    {
      method: 'PUT',
      url: '/api/v1/repos/:owner/:repo/vulnerability-policy/exceptions/:id',
      summary: 'Allow a vulnerability (OSV id or CVE alias) in pulls until an expiry (repository managers)',
      body: schemas.exception,
      handler: async ({ identity, params, body }) =>
        v.policies.addException(identity, params.owner!, params.repo!, { id: params.id!, expiresAt: expiryOf(body.expires), reason: body.reason }),
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/vulnerability-policy/exceptions/:id',
      summary: 'Remove an exception (repository managers)',
      handler: async ({ identity, params }) => v.policies.removeException(identity, params.owner!, params.repo!, params.id!),
    },
  ];
}

const ZIP = new Set(['application/zip', 'application/x-zip-compressed', 'application/octet-stream']);
const NDJSON = new Set(['application/x-ndjson', 'application/jsonl', 'application/json-seq', 'application/jsonlines']);

/**
 * `POST /api/v1/vulndb/import?source=NAME` (site administrators): the body is an OSV `all.zip`
 * (`application/zip`) or OSV records one per line (`application/x-ndjson`); answers with what
 * was imported once it is stored. Registered outside the JSON table: the body is a stream.
 */
export function vulnImportRoute(app: FastifyInstance, registry: Registry, auth: HttpAuth): void {
  app.post('/api/v1/vulndb/import', async (req: FastifyRequest, reply: FastifyReply) => {
    const { identity } = await auth.authenticate(req, { apiKeyBearer: true });
    if (identity.kind === 'anonymous') throw auth.unauthorized(req, 'authentication required');
    registry.tenancy.requireSiteAdmin(identity);
    const type = String(req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const kind = ZIP.has(type) ? 'zip' : NDJSON.has(type) ? 'ndjson' : undefined;
    if (!kind) throw new ApiError(415, 'UNSUPPORTED', 'send an OSV all.zip as application/zip or OSV records as application/x-ndjson');
    const body = requestBody(req);
    if (!body) throw new ApiError(400, 'INVALID', 'send the records as the request body');
    const source = (stringParam((req.query as Record<string, unknown>).source) ?? 'upload').replace(/[^\w .:/@+-]/g, '').slice(0, 200) || 'upload';
    const result = await registry.vulns.importUpload(identity, body, kind, source, contentLength(req));
    reply.header('Cache-Control', 'no-store').code(200).type('application/json; charset=utf-8').send(JSON.stringify(result));
    return reply;
  });
}
