import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../core/registry.ts';
import { RegistryError } from '../../core/errors.ts';
import { type ChunkRange, parseContentRange } from '../../core/content/uploads.ts';
import { parseDigest } from '../../core/content/digest.ts';
import { contentLength, emptyReply, requestBody, stringParam } from './util.ts';
import type { HttpAuth } from '../auth.ts';
import { parseImageName } from '../../core/content/names.ts';

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

function sendProgress(reply: FastifyReply, status: number, name: string, id: string, size: number): void {
  reply.header('Location', uploadLocation(name, id));
  reply.header('Docker-Upload-UUID', id);
  reply.header('Range', `0-${Math.max(size - 1, 0)}`);
  emptyReply(reply, status);
}

function sendCreated(reply: FastifyReply, name: string, digest: string): void {
  reply.header('Location', `/v2/${name}/blobs/${digest}`);
  reply.header('Docker-Content-Digest', digest);
  emptyReply(reply, 201);
}

function chunkRange(req: FastifyRequest): ChunkRange | undefined {
  const h = req.headers['content-range'];
  return h === undefined ? undefined : parseContentRange(h);
}

/** Who opens an upload session, for the per-user cap: the user, the token, or the address. */
function sessionOwner(req: FastifyRequest): string {
  const id = req.berthAuth?.identity;
  if (id?.kind === 'user') return `user:${id.userId}`;
  if (id?.kind === 'entitlement') return `token:${id.credentialId}`;
  return `ip:${req.ip}`;
}

/** POST /v2/<name>/blobs/uploads/ — open a session, upload monolithically, or mount. */
export async function startUpload(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string, auth: HttpAuth): Promise<void> {
  const q = req.query as Record<string, unknown>;
  const mount = stringParam(q.mount);
  const from = stringParam(q.from);
  const digest = stringParam(q.digest);
  if (mount !== undefined && (await tryMount(registry, req, name, parseDigest(mount).value, from, auth))) {
    sendCreated(reply, name, mount);
    return;
  }
  if (digest !== undefined) {
    const body = requestBody(req) ?? emptyBody();
    const d = await registry.uploads.putMonolithic(name, digest, body, contentLength(req));
    sendCreated(reply, name, d);
    return;
  }
  const s = await registry.uploads.start(name, sessionOwner(req));
  sendProgress(reply, 202, name, s.id, s.size);
}

/**
 * A cross-repository mount: links `digest` into `name` from `from` when the request may pull
 * there, or else from any image linking it that the request may read (automatic content
 * discovery, which the spec allows). False → an ordinary upload (202); a source the caller
 * may not read is never tried, so 201/202 reveals nothing about it.
 */
async function tryMount(registry: Registry, req: FastifyRequest, name: string, digest: string, from: string | undefined, auth: HttpAuth): Promise<boolean> {
  if (from !== undefined && mountable(registry, name, from) && (await auth.mayMountFrom(req, name, from)) && (await registry.blobs.mount(name, digest, from))) return true;
  for (const source of await auth.readableImagesWithBlob(req, digest)) {
    if (source !== from && mountable(registry, name, source) && (await registry.blobs.mount(name, digest, source))) return true;
  }
  return false;
}

/**
 * Whether a blob may be mounted from image `source` into image `name`: not across repositories
 * when the source's repository has a daily byte limit (docs/limits.md), or pulling the blob
 * from one's own repository would sidestep it. The client uploads instead (202), with bytes it
 * must have pulled, counted, from the source.
 */
function mountable(registry: Registry, name: string, source: string): boolean {
  const limits = registry.rateLimits;
  if (!limits.active) return true;
  const from = parseImageName(source);
  const to = parseImageName(name);
  if (from.owner === to.owner && from.repository === to.repository) return true;
  return (limits.repositorySubject(`${from.owner}/${from.repository}`)?.limit.bytesPerDay ?? null) === null;
}

/** GET /v2/<name>/blobs/uploads/<id> — progress. */
export async function uploadStatus(registry: Registry, reply: FastifyReply, name: string, id: string): Promise<void> {
  const s = await registry.uploads.status(name, id);
  sendProgress(reply, 204, name, s.id, s.size);
}

/** PATCH /v2/<name>/blobs/uploads/<id> — append a chunk (streamed). */
export async function patchUpload(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string, id: string): Promise<void> {
  const range = chunkRange(req);
  const body = requestBody(req) ?? emptyBody();
  const s = await registry.uploads.append(name, id, body, range, contentLength(req));
  sendProgress(reply, 202, name, s.id, s.size);
}

/** PUT /v2/<name>/blobs/uploads/<id>?digest= — complete, with an optional last chunk. */
export async function completeUpload(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string, id: string): Promise<void> {
  const digest = stringParam((req.query as Record<string, unknown>).digest);
  if (digest === undefined) throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required to complete an upload');
  const body = requestBody(req);
  const d = await registry.uploads.complete(name, id, digest, body, body ? chunkRange(req) : undefined, contentLength(req));
  sendCreated(reply, name, d);
}

/** DELETE /v2/<name>/blobs/uploads/<id> — cancel. */
export async function cancelUpload(registry: Registry, reply: FastifyReply, name: string, id: string): Promise<void> {
  await registry.uploads.cancel(name, id);
  emptyReply(reply, 204);
}

async function* emptyBody(): AsyncGenerator<Buffer> {}
