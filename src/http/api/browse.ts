import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Browse } from '../../core/content/browse.ts';
import { TAG_SORTS, type TagSort } from '../../core/content/tag-order.ts';
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import type { HttpAuth } from '../auth.ts';

/**
 * Read-only browsing routes for the web UI (docs/ui.md). Same authorization as /v2: a
 * repository the caller may not pull from is 404, whether or not it exists.
 *   GET /api/v1/search?q=                                          owners, repositories, images, tags the caller may see
 *   GET /api/v1/repos/:owner/:repo/images                          images with tag counts, kind, size, last push
 *   GET /api/v1/repos/:owner/:repo/tags?image=&q=&after=&limit=&sort=name|semver|time   a page of tags (+ next)
 *   GET /api/v1/repos/:owner/:repo/manifest?image=&ref=            manifest detail by tag or digest
 */
export function browseRoutes(app: FastifyInstance, registry: Registry, auth: HttpAuth): void {
  const browse = new Browse(registry);
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

  const readable = async (req: FastifyRequest) => {
    const { identity } = await auth.authenticate(req, { apiKeyBearer: true });
    const p = req.params as { owner: string; repo: string };
    const { repository } = await registry.tenancy.getRepository(identity, p.owner, p.repo);
    return { ...p, repository };
  };
  const imageName = (owner: string, repo: string, q: Record<string, unknown>) => {
    const image = str(q.image);
    if (!image) throw new ApiError(400, 'INVALID', 'query parameter "image" is required');
    return `${owner}/${repo}/${image}`;
  };
  const send = (reply: FastifyReply, body: unknown) => {
    reply.header('Cache-Control', 'no-store').type('application/json; charset=utf-8').send(JSON.stringify(body));
    return reply;
  };

  app.get('/api/v1/search', async (req, reply) => {
    const { identity } = await auth.authenticate(req, { apiKeyBearer: true });
    const q = str((req.query as Record<string, unknown>).q)?.trim() ?? '';
    if (q.length < 1 || q.length > 100) throw new ApiError(400, 'INVALID', 'query parameter "q" must have 1 to 100 characters');
    return send(reply, await browse.search(identity, q));
  });

  app.get('/api/v1/repos/:owner/:repo/images', async (req, reply) => {
    const { owner, repo, repository } = await readable(req);
    return send(reply, await browse.images(owner, repo, repository.id));
  });

  app.get('/api/v1/repos/:owner/:repo/tags', async (req, reply) => {
    const { owner, repo } = await readable(req);
    const q = req.query as Record<string, unknown>;
    const limit = Math.min(Math.max(Number(str(q.limit) ?? 50) || 50, 1), 1000);
    const sort = str(q.sort) ?? 'name';
    if (!(TAG_SORTS as readonly string[]).includes(sort)) throw new ApiError(400, 'INVALID', `query parameter "sort" must be one of ${TAG_SORTS.join(', ')}`);
    return send(reply, await browse.tags(imageName(owner, repo, q), { limit, after: str(q.after), q: str(q.q), sort: sort as TagSort }));
  });

  app.get('/api/v1/repos/:owner/:repo/manifest', async (req, reply) => {
    const { owner, repo } = await readable(req);
    const q = req.query as Record<string, unknown>;
    const ref = str(q.ref);
    if (!ref) throw new ApiError(400, 'INVALID', 'query parameter "ref" is required (a tag or a digest)');
    return send(reply, await browse.manifest(imageName(owner, repo, q), ref));
  });
}
