import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../core/registry.ts';
import { RegistryError } from '../../core/errors.ts';
import type { ByteRange } from '../../core/types.ts';
import type { HttpAuth } from '../auth.ts';
import { admitPull } from '../rate-limits.ts';

/** Parses a single `Range: bytes=…` against `size`; undefined = serve the whole blob. */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined | 'unsatisfiable' {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // multi-range or another unit: ignore, as RFC 9110 allows
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  let start: number;
  let end: number;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(size - suffix, 0);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return undefined; // invalid range-spec: ignore
  }
  if (start >= size || size === 0) return 'unsatisfiable';
  return { start, end };
}

/** GET and HEAD /v2/<name>/blobs/<digest> */
export async function getBlob(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string, digest: string, auth?: HttpAuth): Promise<void> {
  const blob = await registry.blobs.stat(name, digest).catch(async (e: unknown) => {
    // A local miss: the repository's upstreams, if any (docs/proxy.md).
    if (!(e instanceof RegistryError && (e.code === 'BLOB_UNKNOWN' || e.code === 'NAME_UNKNOWN'))) throw e;
    const proxied = await registry.proxy.blob(name, digest, req.method === 'GET');
    if (!proxied) throw e;
    if (proxied.kind === 'stored') return registry.blobs.stat(name, digest);
    if (req.method === 'GET' && req.berthLimits) await admitPull(registry.rateLimits, req, reply, proxied.size);
    reply.header('Docker-Content-Digest', digest).type('application/octet-stream');
    if (proxied.size !== undefined) reply.header('Content-Length', String(proxied.size));
    reply.send(proxied.kind === 'stream' ? proxied.stream : undefined);
    return undefined;
  });
  if (!blob) return;
  const range = parseRange(req.headers.range, blob.size);
  reply.header('Docker-Content-Digest', digest);
  reply.header('Accept-Ranges', 'bytes');
  reply.header('ETag', `"${digest}"`);
  reply.header('Cache-Control', 'max-age=31536000');
  reply.type(blob.manifest ? blob.manifest.mediaType : 'application/octet-stream');
  if (range === 'unsatisfiable') {
    reply.header('Content-Range', `bytes */${blob.size}`);
    throw new RegistryError('RANGE_INVALID', `range not satisfiable for a blob of ${blob.size} bytes`, {
      headers: { 'Content-Range': `bytes */${blob.size}` },
    });
  }
  const length = range ? range.end - range.start + 1 : blob.size;
  reply.header('Content-Length', String(length));
  if (range) {
    reply.code(206);
    reply.header('Content-Range', `bytes ${range.start}-${range.end}/${blob.size}`);
  }
  if (req.method === 'HEAD') {
    reply.send();
    return;
  }
  // Counted against the day's byte limits (docs/limits.md); a redirect counts what it sends to.
  if (req.berthLimits) await admitPull(registry.rateLimits, req, reply, length);
  if (!blob.manifest && !range) {
    const url = await registry.blobs.directUrl(digest, blob.generation);
    if (url) {
      reply.removeHeader('Content-Length');
      reply.code(307).header('Location', url).header('Cache-Control', 'no-store').header('content-length', '0').send();
      return;
    }
  }
  if (blob.manifest) {
    // A manifest's bytes through the blobs endpoint count as a download, as on /manifests.
    if (auth) await auth.countDownload(req);
    const p = blob.manifest.payload;
    reply.send(range ? p.subarray(range.start, range.end + 1) : p);
    return;
  }
  if (length === 0) {
    reply.send(Buffer.alloc(0));
    return;
  }
  reply.send(await registry.blobs.open(digest, range, blob.generation));
}

/** DELETE /v2/<name>/blobs/<digest> */
export async function deleteBlob(registry: Registry, reply: FastifyReply, name: string, digest: string): Promise<void> {
  await registry.blobs.delete(name, digest);
  reply.code(202).header('content-length', '0').send();
}
