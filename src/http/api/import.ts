import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Identity } from '../../core/access/access.ts';
import { COMPRESSIONS, type Compression, ImportError, ImportJobs, type ImportJobsOptions, parseDestination } from '../../core/import/index.ts';

/** Bounds on imports (config `imports.*`). */
export type ImportLimits = Pick<ImportJobsOptions, 'maxBytes' | 'maxUnpackedBytes' | 'maxExpansionRatio' | 'maxPerUser' | 'quota'>;
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import type { HttpAuth } from '../auth.ts';
import { contentLength, requestBody, stringParam } from '../distribution/util.ts';

function who(identity: Identity): { key: string; all: boolean } | undefined {
  if (identity.kind !== 'user') return undefined;
  return { key: `user:${identity.userId}`, all: identity.siteAdmin };
}

function send(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  reply.header('Cache-Control', 'no-store');
  reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
  return reply;
}

/**
 * The server side of `berth push` (docs/import.md):
 * - `POST /api/v1/repos/:owner/:repo/import?image=&tag=&compress=gzip|zstd` — the body is the
 *   archive (docker save, Docker 25+ save, oci-archive; gzip'd or not), streamed to a spool
 *   file; `compress` compresses its uncompressed layers (compress.ts); needs `push`
 *   on the repository; answers 202 with the job (`id`, `Location: /api/v1/imports/<id>`);
 * - `GET /api/v1/imports/:id` — the job's state, progress and errors (its starter or a site admin);
 * - `GET /api/v1/imports` — the caller's jobs.
 */
/** `spoolDir`: where uploaded archives wait for their import (under the data folder). */
export function importRoutes(app: FastifyInstance, registry: Registry, auth: HttpAuth, spoolDir: string, limits: ImportLimits = {}): void {
  const jobs = new ImportJobs(registry, spoolDir, {
    ...limits,
    onInternalError: (e, id) => app.log.error({ err: e, importJob: id }, 'import job failed'),
  });
  app.addHook('onClose', async () => jobs.close());

  app.post('/api/v1/repos/:owner/:repo/import', async (req: FastifyRequest, reply: FastifyReply) => {
    const { identity } = await auth.authenticate(req, { apiKeyBearer: true });
    const { owner, repo } = req.params as { owner: string; repo: string };
    const q = req.query as Record<string, unknown>;
    const image = stringParam(q.image) || undefined;
    const tag = stringParam(q.tag) || undefined;
    if (tag !== undefined && image === undefined) throw new ApiError(400, 'NAME_INVALID', 'a tag needs an image: give ?image=&tag=');
    const compress = stringParam(q.compress) || undefined;
    if (compress !== undefined && !(COMPRESSIONS as readonly string[]).includes(compress)) {
      throw new ApiError(400, 'INVALID', `query parameter "compress" must be one of ${COMPRESSIONS.join(', ')} (or absent: layers as they are)`);
    }
    let dest;
    try {
      dest = parseDestination(`${owner}/${repo}${image !== undefined ? `/${image}` : ''}${tag !== undefined ? `:${tag}` : ''}`);
    } catch (e) {
      if (e instanceof ImportError) throw new ApiError(400, 'NAME_INVALID', e.message);
      throw e;
    }
    // Access is decided per repository; without ?image= the names come from the archive, all
    // inside this repository, so any image name asks the same question.
    await auth.authorize(req, `${owner}/${repo}/${image ?? 'import'}`, 'push');
    const caller = who(identity);
    if (!caller) throw new ApiError(403, 'DENIED', 'only users may import');
    const body = requestBody(req);
    if (!body) throw new ApiError(400, 'INVALID', 'send the archive as the request body (e.g. curl --data-binary @image.tar)');
    let spooled;
    let slot;
    try {
      slot = jobs.admit(caller.key);
      spooled = await jobs.spool(body, contentLength(req), `${owner}/${repo}`);
    } catch (e) {
      slot?.release();
      if (e instanceof ImportError) {
        if (e.code === 'TOO_MANY') throw new ApiError(429, 'TOOMANYREQUESTS', e.message);
        throw new ApiError(e.code === 'TOO_LARGE' ? 413 : 400, e.code, e.message);
      }
      throw e;
    }
    const job = jobs.start(caller.key, dest, spooled, slot, compress as Compression | undefined);
    reply.header('Location', `/api/v1/imports/${job.id}`);
    return send(reply, 202, job);
  });

  app.get('/api/v1/imports/:id', async (req: FastifyRequest, reply: FastifyReply) => {
    const { identity } = await auth.authenticate(req, { apiKeyBearer: true });
    if (identity.kind === 'anonymous') throw auth.unauthorized(req, 'authentication required');
    const caller = who(identity);
    const job = caller ? jobs.get((req.params as { id: string }).id, caller.key, caller.all) : undefined;
    if (!job) throw new ApiError(404, 'NOT_FOUND', 'import job not found');
    return send(reply, 200, job);
  });

  app.get('/api/v1/imports', async (req: FastifyRequest, reply: FastifyReply) => {
    const { identity } = await auth.authenticate(req, { apiKeyBearer: true });
    if (identity.kind === 'anonymous') throw auth.unauthorized(req, 'authentication required');
    const caller = who(identity);
    return send(reply, 200, caller ? jobs.list(caller.key, caller.all) : []);
  });
}
