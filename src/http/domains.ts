import { createSecureContext, type SecureContext } from 'node:tls';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../core/registry.ts';
import { type NameMap, normalizeHost } from '../core/domains/names.ts';
import { proxyTrust } from './proxies.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set when the request came in on a custom domain (docs/domains.md): its name mapping. */
    berthHost?: NameMap;
  }
}

/** The last value of a header that proxies may have appended to. */
function lastValue(v: string | string[] | undefined): string | undefined {
  return (Array.isArray(v) ? v.at(-1) : v)?.split(',').at(-1)?.trim();
}

/**
 * The host a request names: `X-Forwarded-Host` when a trusted proxy sent it, else `Host`.
 * Normalized (lowercase, no port); undefined when it is not one valid host name, and the
 * request is then served as on the main host.
 */
export function requestHost(req: FastifyRequest, trusted: (address: string | undefined) => boolean): string | undefined {
  if (trusted(req.raw.socket?.remoteAddress)) {
    const forwarded = lastValue(req.headers['x-forwarded-host']);
    if (forwarded !== undefined) return normalizeHost(forwarded);
  }
  return normalizeHost(req.headers.host);
}

const REWRITTEN_HEADERS = ['location', 'link', 'www-authenticate'] as const;

/**
 * Custom domains at the edge: every request learns its host's name mapping first (one cached
 * lookup), the /v2 dispatcher and the token endpoint map short names in, and the onSend step
 * maps every name going back out: the `Location`, `Link` and `WWW-Authenticate` headers,
 * error bodies, and the tags list's `name`. Manifest and blob bodies are never touched.
 * Returns the work of the app's onRequest and onSend hooks (http/app.ts runs them).
 */
export function domainHooks(registry: Registry, trustedProxies: readonly string[]) {
  const trusted = proxyTrust(trustedProxies);
  return {
    /** Sets `req.berthHost`; a promise only when the host's mapping had to be read from the store. */
    onRequest(req: FastifyRequest): Promise<void> | undefined {
      // Only the routes that speak names: health checks and metrics never wait on the database.
      if (!req.url.startsWith('/v2') && !req.url.startsWith('/api/')) return undefined;
      const map = registry.domains.resolveNow(requestHost(req, trusted));
      if (map instanceof Promise) {
        return map.then((m) => {
          if (m) req.berthHost = m;
        });
      }
      if (map) req.berthHost = map;
      return undefined;
    },
    /** The payload to send, with long names written short on a custom domain. */
    onSend(req: FastifyRequest, reply: FastifyReply, payload: unknown): unknown {
      const map = req.berthHost;
      if (!map || !req.url.startsWith('/v2')) return payload;
      for (const name of REWRITTEN_HEADERS) {
        const v = reply.getHeader(name);
        if (typeof v === 'string' && v.includes(map.prefix)) reply.header(name, name === 'location' ? map.shortenPath(v) : shortenLinks(map, v));
      }
      const names = reply.statusCode >= 400 || req.berthRoute === '/v2/{name}/tags/list';
      if (names && typeof payload === 'string' && payload.includes(map.prefix)) return map.shorten(payload);
      return payload;
    },
  };
}

/** `</v2/LONG/tags/list?…>; rel="next"` and challenge scopes, written short. */
function shortenLinks(map: NameMap, value: string): string {
  return value.startsWith('<') ? value.replace(/<([^>]*)>/g, (_m, url: string) => `<${map.shortenPath(url)}>`) : map.shorten(value);
}

/**
 * The https server's SNI callback: a custom domain's own certificate when it has one, else the
 * server's default context. Contexts are kept per host while the stored certificate is the
 * same (the lookup itself is cached by core/domains).
 */
export function sniCallback(registry: Registry, onError: (e: unknown, host: string) => void) {
  const contexts = new Map<string, { cert: string; ctx: SecureContext }>();
  return (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    const host = normalizeHost(servername);
    if (host === undefined) return cb(null);
    registry.domains.certificate(host).then(
      (pair) => {
        if (!pair) return cb(null);
        let hit = contexts.get(host);
        if (hit?.cert !== pair.cert) {
          if (contexts.size > 1000) contexts.clear();
          hit = { cert: pair.cert, ctx: createSecureContext({ cert: pair.cert, key: pair.key }) };
          contexts.set(host, hit);
        }
        cb(null, hit.ctx);
      },
      (e: unknown) => {
        onError(e, host);
        cb(null); // the default certificate rather than a failed handshake
      },
    );
  };
}
