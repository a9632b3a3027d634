import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from '../../core/registry.ts';
import { RegistryError } from '../../core/errors.ts';
import { MAX_MANIFEST_BYTES } from '../../core/content/manifest.ts';
import { parseImageName } from '../../core/content/names.ts';
import { emptyReply, readSmallBody } from './util.ts';
import type { HttpAuth } from '../auth.ts';
import { addEvent, noteEvent } from '../events.ts';
import { admitPull } from '../rate-limits.ts';

/** GET and HEAD /v2/<name>/manifests/<reference> */
export async function getManifest(
  registry: Registry,
  req: FastifyRequest,
  reply: FastifyReply,
  name: string,
  ref: string,
  auth?: HttpAuth,
): Promise<void> {
  const m = await registry.proxy.manifest(name, ref);
  noteEvent(req, { digest: m.digest });
  const etag = `"${m.digest}"`;
  reply.header('Docker-Content-Digest', m.digest);
  reply.header('ETag', etag);
  reply.type(m.mediaType);
  if (req.headers['if-none-match'] === etag) {
    noteEvent(req, { bytes: 0 });
    reply.code(304).send();
    return;
  }
  const policies = enforcePullPolicies(registry, req, name, m);
  if (policies) await policies;
  // A GET that yields the bytes counts against the day's byte limits (docs/limits.md)...
  if (req.method === 'GET' && req.berthLimits) await admitPull(registry.rateLimits, req, reply, m.size);
  // ...and against an entitlement token's download limit.
  if (req.method === 'GET' && auth) await auth.countDownload(req);
  reply.header('Content-Length', String(m.size));
  if (req.method === 'HEAD') {
    reply.send();
    return;
  }
  noteEvent(req, { bytes: m.size });
  // Retention's pulledWithin: a map entry now, written in a batch later.
  registry.pulls.note(name, m.digest, req.berthAuth?.identity?.kind === 'entitlement');
  reply.send(m.payload);
}

/**
 * The decision chain (DESIGN §11) on a GET that yields a manifest's bytes: from /manifests, and
 * from /blobs/<manifest digest> (which containerd falls back to), so neither path skips it. A
 * HEAD reveals no content, and a client then reads the refusal's message on the GET that follows.
 * Undefined when no policy is in force for the repository (see PullPolicies.enforce).
 */
export function enforcePullPolicies(
  registry: Registry,
  req: FastifyRequest,
  name: string,
  m: { digest: string; mediaType: string; payload: Buffer },
): Promise<void> | undefined {
  if (req.method !== 'GET' || !registry.pullPolicies.size) return undefined;
  const { owner, repository } = parseImageName(name);
  return registry.pullPolicies.enforce({ identity: req.berthAuth?.identity ?? { kind: 'anonymous' }, name, owner, repository, digest: m.digest, mediaType: m.mediaType, payload: m.payload });
}

/** PUT /v2/<name>/manifests/<reference> */
export async function putManifest(registry: Registry, req: FastifyRequest, reply: FastifyReply, name: string, ref: string): Promise<void> {
  const payload = await readSmallBody(
    req,
    MAX_MANIFEST_BYTES,
    () => new RegistryError('MANIFEST_INVALID', `manifest is larger than ${MAX_MANIFEST_BYTES} bytes`, { status: 413 }),
  );
  const r = await registry.manifests.put(name, ref, payload, req.headers['content-type']);
  noteEvent(req, { digest: r.digest, bytes: payload.length });
  if (r.previousDigest !== undefined && r.previousDigest !== r.digest) {
    addEvent(req, { action: 'tag_move', image: name, reference: ref, digest: r.digest, detail: { from: r.previousDigest } });
  }
  reply.header('Location', `/v2/${name}/manifests/${r.digest}`);
  reply.header('Docker-Content-Digest', r.digest);
  if (r.subject) reply.header('OCI-Subject', r.subject);
  emptyReply(reply, 201);
}

/** DELETE /v2/<name>/manifests/<reference> */
export async function deleteManifest(registry: Registry, reply: FastifyReply, name: string, ref: string): Promise<void> {
  await registry.manifests.delete(name, ref);
  emptyReply(reply, 202);
}
