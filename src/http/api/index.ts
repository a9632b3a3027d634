import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Identity } from '../../core/access/access.ts';
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import type { CredentialRecord, MembershipRecord, OwnerRecord, RepositoryRecord, UserRecord } from '../../core/types.ts';
import type { HttpAuth } from '../auth.ts';
import { readSmallBody } from '../distribution/util.ts';
import { eventApiRoutes } from './events.ts';
import { upstreamApiRoutes } from './upstreams.ts';
import { domainApiRoutes } from './domains.ts';
import { jobApiRoutes } from './jobs.ts';
import { lifecycleApiRoutes } from './lifecycle.ts';
import { sbomApiRoutes } from './sbom.ts';
import { limitApiRoutes } from './limits.ts';
import { accountApiRoutes } from './account.ts';
import { signingApiRoutes } from './signing.ts';
import { vulnApiRoutes } from './vulns.ts';
import { RawResponse } from './raw.ts';
import { MultilineText, Text, iso } from './fields.ts';

const Role = z.enum(['read', 'write', 'admin', 'owner']);
const Visibility = z.enum(['public', 'private']);
/** `30d`, `12h`, `90m`, or a number of seconds. */
const Duration = Text.regex(/^\d+[smhd]?$/, 'use e.g. 30d, 12h, 90m or seconds');

const schemas = {
  createUser: z.object({
    username: Text,
    password: Text.min(8).optional(),
    email: Text.pipe(z.email()).optional(),
    siteAdmin: z.boolean().optional(),
  }).strict(),
  createOrg: z.object({ name: Text }).strict(),
  createRepo: z.object({ name: Text, visibility: Visibility.default('private'), description: MultilineText.max(2000).default('') }).strict(),
  updateRepo: z.object({ visibility: Visibility.optional(), description: MultilineText.max(2000).optional() }).strict(),
  setMember: z.object({ role: Role }).strict(),
  createApiKey: z.object({ name: Text.min(1).max(200).default('api key'), expiresIn: Duration.optional() }).strict(),
  createToken: z
    .object({
      name: Text.min(1).max(200).default('entitlement token'),
      expiresIn: Duration.optional(),
      downloadLimit: z.number().int().positive().optional(),
    })
    .strict(),
};

export function parseDuration(s: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(s);
  if (!m) throw new ApiError(400, 'INVALID', `invalid duration "${s}"`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit * 1000;
}


export const present = {
  user: (u: UserRecord) => ({ username: u.username, siteAdmin: u.siteAdmin, email: u.email, createdAt: iso(u.createdAt) }),
  owner: (o: OwnerRecord) => ({ name: o.name, kind: o.kind, createdAt: iso(o.createdAt) }),
  repo: (r: RepositoryRecord) => ({
    name: `${r.owner}/${r.name}`,
    owner: r.owner,
    repository: r.name,
    visibility: r.visibility,
    description: r.description,
    createdAt: iso(r.createdAt),
  }),
  member: (m: MembershipRecord) => ({ username: m.username, role: m.role, createdAt: iso(m.createdAt) }),
  credential: (c: CredentialRecord) => ({
    id: c.id,
    kind: c.kind,
    name: c.name,
    prefix: c.prefix,
    expiresAt: iso(c.expiresAt),
    ...(c.kind === 'entitlement' ? { downloadLimit: c.downloadLimit, downloadCount: c.downloadCount } : {}),
    revokedAt: iso(c.revokedAt),
    lastUsedAt: iso(c.lastUsedAt),
    createdAt: iso(c.createdAt),
  }),
};

export interface ApiRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  summary: string;
  body?: z.ZodType;
  /** Query parameters, for the OpenAPI document. */
  query?: { name: string; description: string }[];
  status?: number;
  /** Returns the JSON body, or a RawResponse to send as is. */
  handler: (ctx: { identity: Identity; params: Record<string, string>; query: Record<string, unknown>; body: any; req: FastifyRequest }) => Promise<unknown>;
}

async function jsonBody(req: FastifyRequest, schema: z.ZodType): Promise<unknown> {
  const raw = await readSmallBody(req, 1024 * 1024, () => new ApiError(413, 'TOO_LARGE', 'request body over 1 MiB'));
  let doc: unknown = {};
  if (raw.length) {
    try {
      doc = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new ApiError(400, 'INVALID', 'request body is not valid JSON');
    }
  }
  const r = schema.safeParse(doc);
  if (!r.success) {
    throw new ApiError(400, 'INVALID', r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  }
  return r.data;
}

/** The management API, `/api/v1`: the CLI's and the web UI's way in. */
export function apiRoutes(app: FastifyInstance, registry: Registry, auth: HttpAuth): void {
  const t = registry.tenancy;
  const id = (p: Record<string, string>) => {
    const n = Number(p.id);
    if (!Number.isSafeInteger(n) || n <= 0) throw new ApiError(404, 'NOT_FOUND', 'no such id');
    return n;
  };
  const routes: ApiRoute[] = [
    {
      method: 'GET',
      url: '/api/v1/whoami',
      summary: 'The caller: a user, an entitlement token or anonymous',
      handler: async ({ identity }) => {
        const user = await t.whoami(identity);
        if (user) return { kind: 'user', ...present.user(user) };
        return { kind: identity.kind };
      },
    },
    {
      method: 'GET',
      url: '/api/v1/users',
      summary: 'List users (site administrators)',
      handler: async ({ identity }) => (await t.listUsers(identity)).map(present.user),
    },
    {
      method: 'POST',
      url: '/api/v1/users',
      summary: 'Create a user and their namespace (site administrators)',
      body: schemas.createUser,
      status: 201,
      handler: async ({ identity, body }) => present.user(await t.createUser(identity, body)),
    },
    {
      method: 'POST',
      url: '/api/v1/orgs',
      summary: 'Create an organisation; the caller becomes its owner',
      body: schemas.createOrg,
      status: 201,
      handler: async ({ identity, body }) => present.owner(await t.createOrg(identity, body.name)),
    },
    {
      method: 'GET',
      url: '/api/v1/orgs/:org/members',
      summary: 'List organisation members',
      handler: async ({ identity, params }) => (await t.listOrgMembers(identity, params.org!)).map(present.member),
    },
    {
      method: 'PUT',
      url: '/api/v1/orgs/:org/members/:username',
      summary: 'Add an organisation member or change their role',
      body: schemas.setMember,
      handler: async ({ identity, params, body }) => {
        await t.setOrgMember(identity, params.org!, params.username!, body.role);
        return { username: params.username, role: body.role };
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/orgs/:org/members/:username',
      summary: 'Remove an organisation member',
      status: 204,
      handler: async ({ identity, params }) => t.removeOrgMember(identity, params.org!, params.username!),
    },
    {
      method: 'GET',
      url: '/api/v1/owners',
      summary: 'Owners (users and organisations) the caller can see',
      handler: async ({ identity }) => (await t.listOwners(identity)).map(present.owner),
    },
    {
      method: 'GET',
      url: '/api/v1/owners/:owner/repos',
      summary: "An owner's repositories the caller may read",
      handler: async ({ identity, params }) => (await t.listRepositories(identity, params.owner!)).map(present.repo),
    },
    {
      method: 'POST',
      url: '/api/v1/owners/:owner/repos',
      summary: 'Create a repository',
      body: schemas.createRepo,
      status: 201,
      handler: async ({ identity, params, body }) =>
        present.repo(await t.createRepository(identity, params.owner!, body.name, body.visibility, body.description)),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo',
      summary: 'A repository',
      handler: async ({ identity, params }) => {
        const { repository, canManage } = await t.getRepository(identity, params.owner!, params.repo!);
        return { ...present.repo(repository), canManage };
      },
    },
    {
      method: 'PATCH',
      url: '/api/v1/repos/:owner/:repo',
      summary: "Change a repository's visibility or description",
      body: schemas.updateRepo,
      handler: async ({ identity, params, body }) => present.repo(await t.updateRepository(identity, params.owner!, params.repo!, body)),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/members',
      summary: 'List repository members',
      handler: async ({ identity, params }) => (await t.listRepositoryMembers(identity, params.owner!, params.repo!)).map(present.member),
    },
    {
      method: 'PUT',
      url: '/api/v1/repos/:owner/:repo/members/:username',
      summary: 'Add a repository member or change their role',
      body: schemas.setMember,
      handler: async ({ identity, params, body }) => {
        await t.setRepositoryMember(identity, params.owner!, params.repo!, params.username!, body.role);
        return { username: params.username, role: body.role };
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/members/:username',
      summary: 'Remove a repository member',
      status: 204,
      handler: async ({ identity, params }) => t.removeRepositoryMember(identity, params.owner!, params.repo!, params.username!),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/tokens',
      summary: "List a repository's entitlement tokens",
      handler: async ({ identity, params }) => (await t.listEntitlementTokens(identity, params.owner!, params.repo!)).map(present.credential),
    },
    {
      method: 'POST',
      url: '/api/v1/repos/:owner/:repo/tokens',
      summary: 'Create a read-only entitlement token; its secret is returned only now',
      body: schemas.createToken,
      status: 201,
      handler: async ({ identity, params, body }) => {
        const issued = await t.createEntitlementToken(identity, params.owner!, params.repo!, {
          name: body.name,
          expiresAt: body.expiresIn ? Date.now() + parseDuration(body.expiresIn) : null,
          downloadLimit: body.downloadLimit ?? null,
        });
        return { ...present.credential(issued.credential), secret: issued.secret, username: `${params.owner}/${params.repo}` };
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/tokens/:id',
      summary: 'Revoke an entitlement token',
      status: 204,
      handler: async ({ identity, params }) => t.revokeEntitlementToken(identity, params.owner!, params.repo!, id(params)),
    },
    {
      method: 'GET',
      url: '/api/v1/user/api-keys',
      summary: "The caller's API keys",
      handler: async ({ identity }) => (await t.listApiKeys(identity)).map(present.credential),
    },
    {
      method: 'POST',
      url: '/api/v1/user/api-keys',
      summary: 'Create an API key; its secret is returned only now',
      body: schemas.createApiKey,
      status: 201,
      handler: async ({ identity, body }) => {
        const issued = await t.createApiKey(identity, body.name, body.expiresIn ? Date.now() + parseDuration(body.expiresIn) : null);
        return { ...present.credential(issued.credential), secret: issued.secret };
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/user/api-keys/:id',
      summary: 'Revoke one of your API keys',
      status: 204,
      handler: async ({ identity, params }) => t.revokeApiKey(identity, id(params)),
    },
    ...eventApiRoutes(registry),
    ...upstreamApiRoutes(registry),
    ...domainApiRoutes(registry),
    ...jobApiRoutes(registry),
    ...lifecycleApiRoutes(registry),
    ...sbomApiRoutes(registry),
    ...limitApiRoutes(registry),
    ...accountApiRoutes(registry),
    ...signingApiRoutes(registry),
    ...vulnApiRoutes(registry),
  ];

  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.url,
      handler: async (req: FastifyRequest, reply: FastifyReply) => {
        const { identity } = await auth.authenticate(req, { apiKeyBearer: true });
        const body = r.body ? await jsonBody(req, r.body) : undefined;
        const result = await r.handler({ identity, params: req.params as Record<string, string>, query: req.query as Record<string, unknown>, body, req });
        reply.header('Cache-Control', 'no-store');
        if (result instanceof RawResponse) {
          reply.headers(result.headers).code(result.status).type(result.contentType).send(result.body);
          return reply;
        }
        if (r.status === 204) {
          reply.code(204).send();
          return reply;
        }
        reply.code(r.status ?? 200).type('application/json; charset=utf-8').send(JSON.stringify(result));
        return reply;
      },
    });
  }

  const openapi = buildOpenApi(routes);
  app.get('/api/v1/openapi.json', async (_req, reply) => reply.type('application/json').send(openapi));
}

function buildOpenApi(routes: ApiRoute[]): string {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:([a-zA-Z]+)/g, '{$1}');
    const params = [
      ...[...r.url.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...(r.query ?? []).map((q) => ({ name: q.name, in: 'query', required: false, description: q.description, schema: { type: 'string' } })),
    ];
    paths[path] ??= {};
    paths[path]![r.method.toLowerCase()] = {
      summary: r.summary,
      ...(params.length ? { parameters: params } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(r.body, { io: 'input' }) } } } } : {}),
      responses: {
        [String(r.status ?? 200)]: { description: r.status === 204 ? 'done' : 'JSON' },
        '4XX': { description: 'error: {"errors":[{"code","message"}]}' },
      },
      security: [{ basic: [] }, { apiKey: [] }],
    };
  }
  // Routes registered outside the table (their bodies are streams, not JSON): documented here.
  const security = [{ basic: [] }, { apiKey: [] }];
  const param = (name: string, where: 'path' | 'query', description?: string) => ({
    name,
    in: where,
    required: where === 'path',
    ...(description ? { description } : {}),
    schema: { type: 'string' },
  });
  paths['/api/v1/repos/{owner}/{repo}/import'] = {
    post: {
      summary: 'Import a docker save archive, an oci-archive or a tar of an OCI layout (docs/import.md); returns a job to poll',
      parameters: [param('owner', 'path'), param('repo', 'path'), param('image', 'query', 'image name inside the repository'), param('tag', 'query', 'tag to set')],
      requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
      responses: { '202': { description: 'JSON {id}; Location: the job' }, '4XX': { description: 'error' } },
      security,
    },
  };
  paths['/api/v1/vulndb/import'] = {
    post: {
      summary: 'Import OSV records: an all.zip (application/zip) or one record per line (application/x-ndjson); site administrators (docs/vulnerabilities.md)',
      parameters: [param('source', 'query', 'a name for the import, shown by berth vulndb status')],
      requestBody: {
        required: true,
        content: { 'application/zip': { schema: { type: 'string', format: 'binary' } }, 'application/x-ndjson': { schema: { type: 'string' } } },
      },
      responses: { '200': { description: 'JSON: records, changed, unchanged, skipped, invalid, errors, database' }, '4XX': { description: 'error' } },
      security,
    },
  };
  // The web UI's read-only views (src/http/api/browse.ts; docs/ui.md).
  const repoParams = [param('owner', 'path'), param('repo', 'path')];
  paths['/api/v1/repos/{owner}/{repo}/images'] = {
    ...paths['/api/v1/repos/{owner}/{repo}/images'],
    get: { summary: "A repository's images with tag counts", parameters: repoParams, responses: { '200': { description: 'JSON' } }, security },
  };
  paths['/api/v1/repos/{owner}/{repo}/tags'] = {
    ...paths['/api/v1/repos/{owner}/{repo}/tags'],
    get: {
      summary: "An image's tags, paged and searchable",
      parameters: [...repoParams, param('image', 'query'), param('q', 'query', 'substring filter'), param('after', 'query', 'cursor'), param('limit', 'query')],
      responses: { '200': { description: 'JSON {tags, next, total}' } },
      security,
    },
  };
  paths['/api/v1/repos/{owner}/{repo}/manifest'] = {
    get: {
      summary: 'A manifest in detail: kind, layers, config, annotations, referrers tree',
      parameters: [...repoParams, param('image', 'query'), param('ref', 'query', 'tag or digest')],
      responses: { '200': { description: 'JSON' } },
      security,
    },
  };
  paths['/api/v1/search'] = {
    get: { summary: 'Owners, repositories, images and tags the caller may see, by substring', parameters: [{ ...param('q', 'query', '1–100 characters'), required: true }], responses: { '200': { description: 'JSON {owners, repositories, images, tags}' } }, security },
  };
  paths['/api/v1/imports'] = { get: { summary: 'Your import jobs', responses: { '200': { description: 'JSON' } }, security } };
  paths['/api/v1/imports/{id}'] = {
    get: { summary: 'An import job: state, progress, errors', parameters: [param('id', 'path')], responses: { '200': { description: 'JSON' } }, security },
  };
  return JSON.stringify({
    openapi: '3.1.0',
    info: { title: 'Berth management API', version: '1' },
    components: {
      securitySchemes: {
        basic: { type: 'http', scheme: 'basic', description: 'username and password, or username and API key' },
        apiKey: { type: 'http', scheme: 'bearer', description: 'an API key (berth_k_…)' },
      },
    },
    paths,
  });
}

