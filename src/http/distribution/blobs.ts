import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../core/registry.ts';
import { Readable } from 'node:stream';
import { RegistryError } from '../../core/errors.ts';
import { MAX_MANIFEST_BYTES, parseManifest } from '../../core/content/manifest.ts';
import { parseImageName } from '../../core/content/names.ts';
import type { ByteRange } from '../../core/types.ts';
import type { HttpAuth } from '../auth.ts';
import { admitPull } from '../rate-limits.ts';
import { enforcePullPolicies } from './manifests.ts';
import { BlobBody } from './blob-body.ts';

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
    if ((await policiesInForce(registry, name)) && (await upstreamManifest(registry, req, reply, name, digest, auth))) return undefined;
    const proxied = await registry.proxy.blob(name, digest, req.method === 'GET');
    if (!proxied) throw e;
    if (proxied.kind === 'stored') return registry.blobs.stat(name, digest);
    let body = proxied.kind === 'stream' ? proxied.stream : undefined;
    if (body && (proxied.size === undefined || proxied.size <= MAX_MANIFEST_BYTES) && (await policiesInForce(registry, name))) {
      body = await guardStream(registry, req, name, digest, body);
    }
    if (req.method === 'GET' && req.berthLimits) await admitPull(registry.rateLimits, req, reply, proxied.size);
    reply.header('Docker-Content-Digest', digest).type('application/octet-stream');
    if (proxied.size !== undefined) reply.header('Content-Length', String(proxied.size));
    reply.send(body);
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
  // A manifest read as a blob is still a manifest pull: the same policies decide.
  if (blob.manifest) await enforcePullPolicies(registry, req, name, { digest, ...blob.manifest });
  else if (req.method === 'GET' && blob.size <= MAX_MANIFEST_BYTES && !notManifests.has(digest) && (await policiesInForce(registry, name))) {
    // Stored as a plain blob (cached from an upstream, or before a policy was registered) but
    // a manifest all the same: a client that runs it pulled a manifest.
    const chunks: Buffer[] = [];
    for await (const c of await registry.blobs.open(digest, undefined, blob.generation)) chunks.push(c as Buffer);
    await guardBytes(registry, req, name, digest, Buffer.concat(chunks));
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
  // HTTP/1.x: a copy through two reused buffers (blob-body.ts), where the store reads in place (fs).
  const reader = req.raw.httpVersionMajor === 1 ? await registry.blobs.reader(digest, blob.generation) : undefined;
  reply.send(reader ? new BlobBody(reader, reply.raw, range?.start ?? 0, length) : await registry.blobs.open(digest, range, blob.generation));
}

/** Whether a pull policy is in force for the image's repository (the checks below cost only then). */
async function policiesInForce(registry: Registry, name: string): Promise<boolean> {
  if (!registry.pullPolicies.size) return false;
  const { owner, repository } = parseImageName(name);
  return registry.pullPolicies.inForce(owner, repository);
}

/** Digests of small blobs seen not to be manifests (content-addressed: true for good); bounded. */
const notManifests = new Set<string>();
const MAX_NOT_MANIFESTS = 50_000;

/** The decision chain on `bytes` if they parse as a manifest; otherwise remembers that they do not. */
async function guardBytes(registry: Registry, req: FastifyRequest, name: string, digest: string, bytes: Buffer): Promise<void> {
  let mediaType: string;
  try {
    mediaType = parseManifest(bytes, undefined).mediaType;
  } catch {
    if (notManifests.size >= MAX_NOT_MANIFESTS) notManifests.clear();
    notManifests.add(digest);
    return;
  }
  await enforcePullPolicies(registry, req, name, { digest, mediaType, payload: bytes });
}

/**
 * A blob streaming from an upstream, small enough to be a manifest: read up to the manifest
 * limit first; if it ended there and parses as a manifest the decision chain decides. What is
 * read is then sent ahead of the rest. A refusal destroys the stream; a caching upstream's copy
 * is complete by then and the local path checks it on every later GET.
 */
async function guardStream(registry: Registry, req: FastifyRequest, name: string, digest: string, stream: Readable): Promise<Readable> {
  const it = stream[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let n = 0;
  let ended = false;
  while (n <= MAX_MANIFEST_BYTES) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head.push(r.value as Buffer);
    n += (r.value as Buffer).length;
  }
  if (ended && req.method === 'GET' && !notManifests.has(digest)) {
    try {
      await guardBytes(registry, req, name, digest, Buffer.concat(head));
    } catch (e) {
      stream.destroy();
      throw e;
    }
  }
  return Readable.from(
    (async function* () {
      yield* head;
      if (!ended) for (let r = await it.next(); !r.done; r = await it.next()) yield r.value as Buffer;
    })(),
    { objectMode: false },
  );
}

/**
 * Where a pull policy is in force, a GET or HEAD for a digest that is not here asks the
 * upstreams for it as a manifest first: a manifest's bytes from an upstream are then served
 * (and, when caching, stored) only as a manifest, so this GET and every later one meet the
 * decision chain, as the local /blobs/<manifest digest> path does (a HEAD, free, must not cache
 * them as a plain blob either). No manifest (or an upstream error) falls through to the blob
 * fetch, whose bytes are still checked as a manifest when small enough (guardStream, and the
 * local path once cached). The price: one more upstream request for each layer miss.
 */
async function upstreamManifest(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string, digest: string, auth?: HttpAuth): Promise<boolean> {
  let m;
  try {
    m = await registry.proxy.manifest(name, digest);
  } catch (e) {
    // docker-registry answers 500 for a layer's digest on /manifests: fall through.
    if (e instanceof RegistryError && (e.code === 'MANIFEST_UNKNOWN' || e.code === 'NAME_UNKNOWN' || e.code === 'UPSTREAM_UNAVAILABLE')) return false;
    throw e;
  }
  if (m.digest !== digest) return false; // never: a lookup by digest answers that digest
  await enforcePullPolicies(registry, req, name, m);
  const get = req.method === 'GET';
  if (get && req.berthLimits) await admitPull(registry.rateLimits, req, reply, m.size);
  if (get && auth) await auth.countDownload(req);
  reply.header('Docker-Content-Digest', digest).header('ETag', `"${digest}"`).header('Content-Length', String(m.size)).type(m.mediaType);
  reply.send(get ? m.payload : undefined);
  return true;
}

/** DELETE /v2/<name>/blobs/<digest> */
export async function deleteBlob(registry: Registry, reply: FastifyReply, name: string, digest: string): Promise<void> {
  await registry.blobs.delete(name, digest);
  reply.code(202).header('content-length', '0').send();
}
