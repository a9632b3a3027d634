import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../core/registry.ts';
import { RegistryError } from '../../core/errors.ts';
import type { Action } from '../../core/access/access.ts';
import { type HttpAuth, parseMountSource } from '../auth.ts';
import { stringParam } from './util.ts';
import { deleteBlob, getBlob } from './blobs.ts';
import { cancelUpload, completeUpload, patchUpload, startUpload, uploadStatus } from './uploads.ts';
import { deleteManifest, getManifest, putManifest } from './manifests.ts';
import { listCatalog, listReferrers, listTags } from './listings.ts';
import type { PendingEvent } from '../events.ts';
import { limitIdentity, limitRepository } from '../rate-limits.ts';
import type { NameMap } from '../../core/domains/names.ts';

type Handler = (registry: Registry, req: FastifyRequest, reply: FastifyReply, m: string[]) => Promise<void>;

/** A method's handler and the action it needs on the image named by the path's first group. */
interface Endpoint {
  action?: Action;
  handler: Handler;
  /** The event the request makes (docs/events.md), noted before authorization so refusals are recorded too. */
  event?: (m: string[]) => PendingEvent;
  /** Another image the request reads (a mount's `from`): its pull scope joins the challenge. */
  alsoPull?: (req: FastifyRequest) => string | undefined;
}

interface Route {
  pattern: RegExp;
  /** The route's label in metrics. */
  label: string;
  methods: Partial<Record<string, Endpoint>>;
}

const pull = (handler: Handler): Endpoint => ({ action: 'pull', handler });
const push = (handler: Handler): Endpoint => ({ action: 'push', handler });
const del = (handler: Handler): Endpoint => ({ action: 'delete', handler });

/**
 * The /v2 API. Names contain slashes, so one wildcard route dispatches on the path: the
 * patterns are tried in order and the first match wins (uploads before blobs). Every endpoint
 * with a name is authorized for its action before its handler runs.
 */
function routes(auth: HttpAuth): Route[] {
  return [
  {
    pattern: /^$/,
    label: '/v2/',
    methods: {
      GET: { handler: async (_r, _q, reply) => void reply.type('application/json').send('{}') },
      HEAD: { handler: async (_r, _q, reply) => void reply.header('content-length', '0').send() },
    },
  },
  { pattern: /^_catalog$/, label: '/v2/_catalog', methods: { GET: { handler: (r, q, p) => listCatalog(r, q, p, auth) } } },
  { pattern: /^(.+)\/tags\/list$/, label: '/v2/{name}/tags/list', methods: { GET: pull((r, q, p, m) => listTags(r, q, p, m[0]!)) } },
  {
    pattern: /^(.+)\/manifests\/([^/]+)$/,
    label: '/v2/{name}/manifests/{reference}',
    methods: {
      GET: { ...pull((r, q, p, m) => getManifest(r, q, p, m[0]!, m[1]!, auth)), event: (m) => ({ action: 'pull', image: m[0], reference: m[1] }) },
      HEAD: pull((r, q, p, m) => getManifest(r, q, p, m[0]!, m[1]!)),
      PUT: { ...push((r, q, p, m) => putManifest(r, q, p, m[0]!, m[1]!)), event: (m) => ({ action: 'push', image: m[0], reference: m[1] }) },
      DELETE: {
        ...del((r, _q, p, m) => deleteManifest(r, p, m[0]!, m[1]!)),
        event: (m) => ({
          action: 'delete',
          image: m[0],
          reference: m[1],
          ...(m[1]!.includes(':') ? { digest: m[1], detail: { target: 'manifest' } } : { detail: { target: 'tag' } }),
        }),
      },
    },
  },
  {
    pattern: /^(.+)\/blobs\/uploads\/?$/,
    label: '/v2/{name}/blobs/uploads/',
    methods: { POST: { ...push((r, q, p, m) => startUpload(r, q, p, m[0]!, auth)), alsoPull: mountSource } },
  },
  {
    pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/,
    label: '/v2/{name}/blobs/uploads/{uuid}',
    methods: {
      GET: push((r, _q, p, m) => uploadStatus(r, p, m[0]!, m[1]!)),
      PATCH: push((r, q, p, m) => patchUpload(r, q, p, m[0]!, m[1]!)),
      PUT: push((r, q, p, m) => completeUpload(r, q, p, m[0]!, m[1]!)),
      DELETE: push((r, _q, p, m) => cancelUpload(r, p, m[0]!, m[1]!)),
    },
  },
  {
    pattern: /^(.+)\/blobs\/([^/]+)$/,
    label: '/v2/{name}/blobs/{digest}',
    methods: {
      GET: { ...pull((r, q, p, m) => getBlob(r, q, p, m[0]!, m[1]!, auth)), event: (m) => ({ action: 'download', image: m[0], digest: m[1] }) },
      HEAD: pull((r, q, p, m) => getBlob(r, q, p, m[0]!, m[1]!)),
      DELETE: {
        ...del((r, _q, p, m) => deleteBlob(r, p, m[0]!, m[1]!)),
        event: (m) => ({ action: 'delete', image: m[0], digest: m[1], detail: { target: 'blob' } }),
      },
    },
  },
  { pattern: /^(.+)\/referrers\/([^/]+)$/, label: '/v2/{name}/referrers/{digest}', methods: { GET: pull((r, q, p, m) => listReferrers(r, q, p, m[0]!, m[1]!)) } },
  ];
}

/** The `from` of a cross-repository mount, when it is a valid image name. */
function mountSource(req: FastifyRequest): string | undefined {
  const q = req.query as Record<string, unknown>;
  const from = stringParam(q.from);
  return stringParam(q.mount) !== undefined && parseMountSource(from) ? from : undefined;
}

/**
 * On a custom domain (docs/domains.md): the path's short name becomes the long one, and so does
 * a mount's `from` (one outside the mapping is dropped: the mount falls back to an upload). A
 * name outside the mapping is NAME_UNKNOWN; a mirror host takes reads only.
 */
function mapIn(req: FastifyRequest, host: NameMap, args: string[], action: Action): void {
  const long = host.toLong(args[0]!);
  if (long === undefined) throw new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${args[0]!.slice(0, 255)}`);
  if (host.target.mirror && action !== 'pull') throw new RegistryError('UNSUPPORTED', `${host.host} is a read-only mirror: push to the registry it mirrors`);
  args[0] = long;
  const q = req.query as Record<string, unknown>;
  const from = stringParam(q.from);
  if (from !== undefined) {
    const longFrom = host.toLong(from);
    if (longFrom === undefined) delete q.from;
    else q.from = longFrom;
  }
}

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'] as const;

function pathOf(req: FastifyRequest): string | undefined {
  const raw = req.raw.url ?? '';
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  if (!path.startsWith('/v2')) return undefined;
  const rest = path.slice(3);
  if (rest === '' || rest === '/') return '';
  if (!rest.includes('%')) return rest.slice(1);
  try {
    return decodeURIComponent(rest.slice(1));
  } catch {
    return undefined;
  }
}

export function distributionRoutes(app: FastifyInstance, registry: Registry, auth: HttpAuth): void {
  // Returns the reply so fastify knows it was sent, even while a stream is still flowing.
  const ROUTES = routes(auth);
  const dispatch = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const path = pathOf(req);
    if (path !== undefined) {
      for (const route of ROUTES) {
        const m = route.pattern.exec(path);
        if (!m) continue;
        req.berthRoute = route.label;
        const endpoint = route.methods[req.method];
        if (!endpoint) {
          reply.header('Allow', Object.keys(route.methods).join(', '));
          throw new RegistryError('UNSUPPORTED', `${req.method} is not supported on this endpoint`);
        }
        const args = m.slice(1);
        if (req.berthHost && endpoint.action) mapIn(req, req.berthHost, args, endpoint.action);
        if (endpoint.event) req.berthEvent = endpoint.event(args);
        try {
          // Request limits (docs/limits.md): the identity's once it is known, the repository's
          // once access is settled. With none set this is the one check.
          const limits = registry.rateLimits.active ? registry.rateLimits : undefined;
          if (limits) await limitIdentity(limits, req, reply, (await auth.authenticate(req)).identity);
          if (endpoint.action) {
            const alsoPull = endpoint.alsoPull?.(req);
            await auth.authorize(req, args[0]!, endpoint.action, alsoPull === undefined ? {} : { alsoPull });
            if (limits) await limitRepository(limits, req, reply, args[0]!);
          } else {
            const { identity } = await auth.authenticate(req);
            // The version check answers 401 to anonymous clients so that they log in (docker login).
            if (path === '' && identity.kind === 'anonymous') throw auth.unauthorized(req, 'authentication required');
          }
          await endpoint.handler(registry, req, reply, args);
        } catch (e) {
          // A HEAD answer has no body to explain a malformed name, and clients print only its
          // status: 404 (no such image can exist) lets them go on to the GET or POST whose
          // error message they do print (skopeo and podman HEAD a blob first when pushing).
          if (req.method === 'HEAD' && e instanceof RegistryError && e.code === 'NAME_INVALID') {
            throw new RegistryError('NAME_INVALID', e.message, { status: 404 });
          }
          throw e;
        }
        return reply;
      }
    }
    throw new RegistryError('NOT_FOUND', `no such endpoint: ${req.method} ${(req.raw.url ?? '').split('?')[0]!.slice(0, 200)}`);
  };

  app.route({ method: [...METHODS], url: '/v2', handler: dispatch });
  app.route({ method: [...METHODS], url: '/v2/*', handler: dispatch });
}
