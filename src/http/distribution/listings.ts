import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../core/registry.ts';
import { OCI_INDEX } from '../../core/content/media-types.ts';
import type { HttpAuth } from '../auth.ts';
import { parsePageSize, setNextLink, stringParam } from './util.ts';

/** GET /v2/<name>/tags/list?n=&last= */
export async function listTags(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string): Promise<void> {
  const q = req.query as Record<string, unknown>;
  const n = parsePageSize(q.n);
  const page = await registry.proxy.listTags(name, n, stringParam(q.last));
  setNextLink(reply, `/v2/${name}/tags/list`, n, page.next);
  reply.type('application/json').send({ name, tags: page.items });
}

/** GET /v2/_catalog?n=&last= — only images the caller may read. */
export async function listCatalog(registry: Registry, req: FastifyRequest, reply: FastifyReply, auth: HttpAuth): Promise<void> {
  const q = req.query as Record<string, unknown>;
  const n = parsePageSize(q.n);
  let readable = await auth.readableRepositoryIds(req);
  const host = req.berthHost;
  if (!host) {
    const page = await registry.manifests.listCatalog(n, stringParam(q.last), readable);
    setNextLink(reply, '/v2/_catalog', n, page.next);
    reply.type('application/json').send({ repositories: page.items });
    return;
  }
  // A custom domain lists only what it maps, by its short names (docs/domains.md).
  const mapped = await registry.domains.repositoryIds(host);
  const may = readable === undefined ? undefined : new Set(readable);
  readable = may === undefined ? mapped : mapped.filter((id) => may.has(id));
  const last = stringParam(q.last);
  const page = readable.length ? await registry.manifests.listCatalog(n, last === undefined ? undefined : (host.toLong(last) ?? host.prefix), readable) : { items: [] };
  const short = (name: string) => host.toShort(name) ?? name;
  setNextLink(reply, '/v2/_catalog', n, page.next === undefined ? undefined : short(page.next));
  reply.type('application/json').send({ repositories: page.items.map(short) });
}

/** GET /v2/<name>/referrers/<digest>?artifactType= — merged with upstreams where the repository has some. */
export async function listReferrers(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string, digest: string): Promise<void> {
  const artifactType = stringParam((req.query as Record<string, unknown>).artifactType);
  const index = await registry.proxy.referrers(name, digest, artifactType);
  if (artifactType !== undefined) reply.header('OCI-Filters-Applied', 'artifactType');
  // A Buffer, so fastify sends the media type exactly (no "; charset=utf-8" appended).
  reply.type(OCI_INDEX).send(Buffer.from(JSON.stringify(index)));
}
