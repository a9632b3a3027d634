import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../core/registry.ts';
import { RegistryError } from '../../core/errors.ts';
import { deleteBlob, getBlob } from './blobs.ts';
import { cancelUpload, completeUpload, patchUpload, startUpload, uploadStatus } from './uploads.ts';
import { deleteManifest, getManifest, putManifest } from './manifests.ts';
import { listCatalog, listReferrers, listTags } from './listings.ts';

type Handler = (registry: Registry, req: FastifyRequest, reply: FastifyReply, m: string[]) => Promise<void>;

interface Route {
  pattern: RegExp;
  methods: Partial<Record<string, Handler>>;
}

/**
 * The /v2 API. Names contain slashes, so one wildcard route dispatches on the path: the
 * patterns are tried in order and the first match wins (uploads before blobs).
 */
const ROUTES: Route[] = [
  {
    pattern: /^$/,
    methods: {
      GET: async (_r, _q, reply) => void reply.type('application/json').send('{}'),
      HEAD: async (_r, _q, reply) => void reply.header('content-length', '0').send(),
    },
  },
  { pattern: /^_catalog$/, methods: { GET: (r, q, p) => listCatalog(r, q, p) } },
  { pattern: /^(.+)\/tags\/list$/, methods: { GET: (r, q, p, m) => listTags(r, q, p, m[0]!) } },
  {
    pattern: /^(.+)\/manifests\/([^/]+)$/,
    methods: {
      GET: (r, q, p, m) => getManifest(r, q, p, m[0]!, m[1]!),
      HEAD: (r, q, p, m) => getManifest(r, q, p, m[0]!, m[1]!),
      PUT: (r, q, p, m) => putManifest(r, q, p, m[0]!, m[1]!),
      DELETE: (r, _q, p, m) => deleteManifest(r, p, m[0]!, m[1]!),
    },
  },
  { pattern: /^(.+)\/blobs\/uploads\/?$/, methods: { POST: (r, q, p, m) => startUpload(r, q, p, m[0]!) } },
  {
    pattern: /^(.+)\/blobs\/uploads\/([^/]+)$/,
    methods: {
      GET: (r, _q, p, m) => uploadStatus(r, p, m[0]!, m[1]!),
      PATCH: (r, q, p, m) => patchUpload(r, q, p, m[0]!, m[1]!),
      PUT: (r, q, p, m) => completeUpload(r, q, p, m[0]!, m[1]!),
      DELETE: (r, _q, p, m) => cancelUpload(r, p, m[0]!, m[1]!),
    },
  },
  {
    pattern: /^(.+)\/blobs\/([^/]+)$/,
    methods: {
      GET: (r, q, p, m) => getBlob(r, q, p, m[0]!, m[1]!),
      HEAD: (r, q, p, m) => getBlob(r, q, p, m[0]!, m[1]!),
      DELETE: (r, _q, p, m) => deleteBlob(r, p, m[0]!, m[1]!),
    },
  },
  { pattern: /^(.+)\/referrers\/([^/]+)$/, methods: { GET: (r, q, p, m) => listReferrers(r, q, p, m[0]!, m[1]!) } },
];

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'] as const;

function pathOf(req: FastifyRequest): string | undefined {
  const raw = req.raw.url ?? '';
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  if (!path.startsWith('/v2')) return undefined;
  const rest = path.slice(3);
  if (rest === '' || rest === '/') return '';
  try {
    return decodeURIComponent(rest.slice(1));
  } catch {
    return undefined;
  }
}

export function distributionRoutes(app: FastifyInstance, registry: Registry): void {
  app.addHook('onRequest', (req, reply, done) => {
    if (req.url.startsWith('/v2')) reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    done();
  });

  // Returns the reply so fastify knows it was sent, even while a stream is still flowing.
  const dispatch = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const path = pathOf(req);
    if (path !== undefined) {
      for (const route of ROUTES) {
        const m = route.pattern.exec(path);
        if (!m) continue;
        const handler = route.methods[req.method];
        if (!handler) {
          reply.header('Allow', Object.keys(route.methods).join(', '));
          throw new RegistryError('UNSUPPORTED', `${req.method} is not supported on this endpoint`);
        }
        await handler(registry, req, reply, m.slice(1));
        return reply;
      }
    }
    throw new RegistryError('NOT_FOUND', `no such endpoint: ${req.method} ${(req.raw.url ?? '').split('?')[0]!.slice(0, 200)}`);
  };

  app.route({ method: [...METHODS], url: '/v2', handler: dispatch });
  app.route({ method: [...METHODS], url: '/v2/*', handler: dispatch });
}
