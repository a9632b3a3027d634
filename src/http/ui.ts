import { createReadStream, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../core/errors.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};

/** dist/web, whether running from src/ (tsx) or dist/ (compiled). */
export function defaultWebRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, '..', '..', 'dist', 'web');
}

/** A browser navigating (not a script or a registry client): it asks for HTML. */
const wantsHtml = (accept: string | undefined) => accept !== undefined && /\btext\/html\b/i.test(accept);

/**
 * Serves the built web UI (web/ → dist/web) at `/`: index.html and the static files of the build.
 * The UI routes in the URL fragment (`/#/r/acme/prod`), so the app lives at `/`. Any other path
 * that matches no route answers 404: a browser asking for HTML gets the app shell, which shows
 * the UI's own 404 page; everything else (scripts, API and registry clients) an OCI-style JSON
 * 404 — always under /v2, where only registry clients belong. Registered as a catch-all GET, so
 * every other route (/v2, /api, /healthz, /metrics) keeps priority. Without a build, `/` says
 * how to build it.
 */
export function uiRoutes(app: FastifyInstance, root = defaultWebRoot()): void {
  const index = path.join(root, 'index.html');
  app.get('/*', async (req, reply) => {
    const url = req.url.split('?')[0]!;
    const notFound = () => new RegistryError('NOT_FOUND', `no such endpoint: GET ${url.slice(0, 200)}`);
    const html = wantsHtml(req.headers.accept);
    if (url === '/v2' || url.startsWith('/v2/') || ((url === '/api' || url.startsWith('/api/')) && !html)) throw notFound();
    let rel: string;
    try {
      rel = decodeURIComponent(url);
    } catch {
      rel = '/';
    }
    const file = path.join(root, path.normalize(rel).replace(/^([/\\])+/, ''));
    const safe = file.startsWith(root + path.sep);
    if (safe && existsSync(file) && statSync(file).isFile()) {
      const immutable = rel.startsWith('/assets/');
      reply
        .type(TYPES[path.extname(file)] ?? 'application/octet-stream')
        .header('Cache-Control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
        .header('X-Content-Type-Options', 'nosniff');
      return reply.send(createReadStream(file));
    }
    const shell = rel === '/' || rel === '/index.html';
    if (!shell && !html) throw notFound();
    if (!existsSync(index)) {
      reply.code(404).type('text/plain; charset=utf-8');
      return 'The web UI is not built: run `npm run build`.\n';
    }
    if (!shell) reply.code(404); // the app shell, whose router shows its 404 page for this path
    reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-cache').header('X-Content-Type-Options', 'nosniff');
    return reply.send(createReadStream(index));
  });
}
