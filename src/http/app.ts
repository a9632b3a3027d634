import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Registry } from '../core/registry.ts';
import { RegistryError } from '../core/errors.ts';
import { errorBody, handleError } from './errors.ts';
import { dirtyUrlError } from './edge.ts';
import { distributionRoutes } from './distribution/index.ts';
import { type AuthOptions, HttpAuth } from './auth.ts';
import { tokenRoutes } from './token.ts';
import { apiRoutes } from './api/index.ts';
import { type ImportLimits, importRoutes } from './api/import.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits, bodyProgress, capConnections, http1Limits, timeoutOptions } from './limits.ts';
import { browseRoutes } from './api/browse.ts';
import { vulnImportRoute } from './api/vulns.ts';
import { uiRoutes } from './ui.ts';
import { domainHooks, sniCallback } from './domains.ts';
import { observeRequests } from './events.ts';
import { type ClusterMetrics, Metrics } from './metrics.ts';
import type { Logger } from 'pino';
import { requestLoggerFactory } from './request-logger.ts';

export interface AppOptions {
  auth: AuthOptions;
  logger?: Logger | boolean;
  /** Checks run by /readyz; each rejects when its dependency is not ready. */
  readiness?: (() => Promise<void>)[];
  /** Folder for archives uploaded to the import API (default: the OS temp folder). */
  importSpoolDir?: string;
  /** Proxies whose X-Forwarded-* headers are believed (fastify's trustProxy): request.ip is then the client's. */
  trustProxy?: string[];
  /** Serve Prometheus metrics on GET /metrics (default true). */
  metrics?: boolean;
  /** Timeouts and connections per address (default DEFAULT_HTTP_LIMITS). */
  http?: HttpLimits;
  /** Bounds on the import API. */
  imports?: ImportLimits;
  /** Serve HTTPS with this certificate (chain) and key, PEM; `http2`: offer h2 too (ALPN), HTTP/1.1 stays. */
  tls?: { cert: Buffer; key: Buffer; http2?: boolean };
  /** Set in each of several worker processes: /metrics answers for all of them. */
  clusterMetrics?: ClusterMetrics;
  /** Called as each request begins, before anything reads (the SQLite read cache: see ReadCache.requestStarted). */
  requestStarted?: () => void;
}

/** Builds the HTTP app over a registry. No business logic here: parse, call core, reply. */
export function buildApp(registry: Registry, opts: AppOptions): FastifyInstance {
  const logger = opts.logger ?? false;
  // Custom domains with a certificate of their own are served it by SNI (docs/domains.md).
  const sni = sniCallback(registry, (e, host) => (typeof logger === 'object' ? logger.warn({ err: e, host }, 'loading a domain certificate failed') : undefined));
  // The options' type depends on http2 (a literal); the app is used through FastifyInstance either way.
  const app = (Fastify as (o: object) => unknown)({
    ...(typeof logger === 'boolean' ? { logger } : { loggerInstance: logger, childLoggerFactory: requestLoggerFactory }),
    exposeHeadRoutes: false,
    return503OnClosing: true,
    // Manifests are read by the handlers themselves (exact bytes); blobs are streamed.
    bodyLimit: 4 * 1024 * 1024,
    routerOptions: { ignoreDuplicateSlashes: false },
    ...timeoutOptions(opts.http ?? DEFAULT_HTTP_LIMITS),
    ...(opts.trustProxy?.length ? { trustProxy: opts.trustProxy } : {}),
    ...(opts.tls?.http2
      ? { http2: true, https: { allowHTTP1: true, cert: opts.tls.cert, key: opts.tls.key, SNICallback: sni } }
      : opts.tls
        ? { https: { cert: opts.tls.cert, key: opts.tls.key, SNICallback: sni } }
        : {}),
    // Malformed URLs (bad percent-encoding) get OCI error JSON too, not fastify's own body.
    frameworkErrors: (error: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
      if (req.raw.url?.startsWith('/v2')) reply.header('Docker-Distribution-API-Version', 'registry/2.0');
      handleError(error, req, reply);
    },
  }) as unknown as FastifyInstance;

  // Bodies are never parsed by fastify: every handler that takes one streams `request.raw`.
  const limits = opts.http ?? DEFAULT_HTTP_LIMITS;
  if (opts.tls?.http2) http1Limits(app.server, limits);
  capConnections(app.server, limits.maxConnectionsPerAddress, opts.trustProxy);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));

  app.setErrorHandler(handleError);
  app.setNotFoundHandler((req, reply) => {
    handleError(new RegistryError('NOT_FOUND', `no such endpoint: ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}`), req, reply);
  });

  const metrics = opts.metrics === false ? undefined : new Metrics(registry);
  if (metrics && opts.clusterMetrics) metrics.aggregateWith(opts.clusterMetrics);
  const body = bodyProgress(limits.bodyIdleTimeoutSeconds, limits.bodyMinBytes);
  const domains = domainHooks(registry, opts.trustProxy ?? []);
  // One onRequest and one onSend hook, callbacks rather than promises: each hook is a step of
  // fastify's chain on every request, and a manifest read is a few tens of microseconds.
  const requestStarted = opts.requestStarted;
  app.addHook('onRequest', (req, reply, done) => {
    requestStarted?.();
    body.onRequest(req);
    // Control characters in a path or query never reach a handler, the stores or the event stream.
    const dirty = dirtyUrlError(req, reply);
    if (dirty) return done(dirty);
    metrics?.start(req);
    if (req.url.startsWith('/v2')) reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    // Then the host's name mapping, if it is a custom domain; names going out are mapped back.
    const lookup = domains.onRequest(req);
    if (lookup) lookup.then(() => done(), done);
    else done();
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    body.onSend(req);
    let out: unknown;
    try {
      out = domains.onSend(req, reply, payload);
    } catch (e) {
      return done(e as Error);
    }
    done(null, out);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    try {
      for (const check of opts.readiness ?? []) await check();
      return { status: 'ready' };
    } catch (e) {
      reply.code(503);
      return errorBody('UNAVAILABLE', `not ready: ${(e as Error).message}`);
    }
  });

  observeRequests(app, registry, metrics);
  if (metrics) app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));

  const auth = new HttpAuth(registry, { ...opts.auth, trustedProxies: opts.trustProxy ?? [] });
  tokenRoutes(app, registry, auth);
  distributionRoutes(app, registry, auth);
  apiRoutes(app, registry, auth);
  importRoutes(app, registry, auth, opts.importSpoolDir ?? path.join(os.tmpdir(), 'berth-imports'), opts.imports);
  browseRoutes(app, registry, auth);
  vulnImportRoute(app, registry, auth);
  uiRoutes(app);
  return app;
}
