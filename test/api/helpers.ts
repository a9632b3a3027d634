/**
 * Helpers for the API tests: a Berth on a fresh temporary data folder, driven with
 * `app.inject()` (no sockets), plus builders to push blobs, manifests and whole images.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { loadConfig } from '../../src/config/schema.ts';
import { createBerth, type Berth } from '../../src/main.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const DOCKER_SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
export const DOCKER_SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';

/** The 2-byte `{}` blob of OCI's empty descriptor, and its well-known digest. */
export const EMPTY_JSON = Buffer.from('{}');
export const EMPTY_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

export const ADMIN_PASSWORD = 'api-tests-admin-pw';
/** `Authorization` of the site administrator, who may do anything on any existing owner. */
export const ADMIN_AUTH = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;

/**
 * Owners created in every test Berth (pushing needs an existing owner). `evil` and `nobody`
 * are deliberately absent: names under them are unknown.
 */
export const OWNERS = [
  'acme', 'acme-corp', 'newowner', 'someone', 'dedupe', 'fresh', 'zeta', 'b', '0wner',
  ...Array.from({ length: 10 }, (_, i) => `owner${i}`),
];

export interface TestBerth {
  /** The app, with the administrator's credentials added to every `inject` that has none. */
  app: FastifyInstance;
  /** The Berth itself; `berth.app.inject` sends requests as given (e.g. anonymous). */
  berth: Berth;
  /** The temporary data folder. */
  dir: string;
  close(): Promise<void>;
}

/** A Berth on a fresh temporary data folder. Call `close()` (e.g. in `after`). */
export async function startBerth(): Promise<TestBerth> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-api-'));
  const berth = await createTestBerth(dir);
  return {
    app: asAdmin(berth.app),
    berth,
    dir,
    async close() {
      await berth.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Berth on an existing data folder (e.g. to restart one); the caller closes it. Its `app`
 * sends the administrator's credentials; the owners of OWNERS are created on first start.
 */
export async function openBerth(dir: string): Promise<Berth> {
  const berth = await createTestBerth(dir);
  return { ...berth, app: asAdmin(berth.app), close: () => berth.close() };
}

async function createTestBerth(dir: string): Promise<Berth> {
  const berth = await createBerth(loadConfig({ env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD }, overrides: { data: dir } }));
  await berth.app.ready();
  for (const owner of OWNERS) {
    if (!(await berth.accessStore.findOwner(owner))) await berth.accessStore.createOwner(owner, 'org');
  }
  return berth;
}

/** Wraps `app` so that `inject` adds the administrator's Authorization unless one is given. */
function asAdmin(app: FastifyInstance): FastifyInstance {
  return new Proxy(app, {
    get(target, prop) {
      if (prop === 'inject') {
        return (opts: InjectOptions | string) => {
          const o: InjectOptions = typeof opts === 'string' ? { url: opts } : opts;
          const headers = { ...(o.headers ?? {}) } as Record<string, string>;
          if (!Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) headers.authorization = ADMIN_AUTH;
          return target.inject({ ...o, headers });
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function sha512(data: Uint8Array | string): string {
  return `sha512:${createHash('sha512').update(data).digest('hex')}`;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
  urls?: string[];
}

export function descriptor(mediaType: string, data: Uint8Array | string, extra: Partial<Descriptor> = {}): Descriptor {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  return { mediaType, digest: sha256(bytes), size: bytes.length, ...extra };
}

/** Asserts an OCI error response: status, JSON body with `errors[0].code`, and returns the error. */
export function assertOciError(res: LightMyRequestResponse, status: number, code?: string): { code: string; message: string; detail?: unknown } {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/json/, 'error responses are JSON');
  const body = JSON.parse(res.body) as { errors: { code: string; message: string; detail?: unknown }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, 'body has an errors array');
  const err = body.errors[0]!;
  assert.equal(typeof err.code, 'string');
  assert.equal(typeof err.message, 'string');
  if (code !== undefined) assert.equal(err.code, code, `error code (message: ${err.message})`);
  return err;
}

/** Pushes `data` as a blob of `name` in one monolithic POST; asserts 201 and returns its digest. */
export async function pushBlob(app: FastifyInstance, name: string, data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data);
  const digest = sha256(bytes);
  const res = await app.inject({
    method: 'POST',
    url: `/v2/${name}/blobs/uploads/?digest=${digest}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: bytes,
  });
  assert.equal(res.statusCode, 201, `push blob to ${name}: ${res.body}`);
  return digest;
}

/** PUTs a manifest; returns the raw response (not asserted). */
export async function putManifest(
  app: FastifyInstance,
  name: string,
  ref: string,
  manifest: unknown,
  contentType?: string,
): Promise<LightMyRequestResponse> {
  const payload = Buffer.isBuffer(manifest) ? manifest : Buffer.from(typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  let ct = contentType;
  if (ct === undefined && !Buffer.isBuffer(manifest) && typeof manifest === 'object' && manifest !== null) {
    ct = (manifest as { mediaType?: string }).mediaType ?? OCI_MANIFEST;
  }
  return app.inject({
    method: 'PUT',
    url: `/v2/${name}/manifests/${ref}`,
    headers: ct === undefined ? {} : { 'content-type': ct },
    payload,
  });
}

export interface PushedImage {
  /** Digest of the manifest. */
  digest: string;
  manifest: Record<string, unknown>;
  bytes: Buffer;
  config: Descriptor;
  layers: Descriptor[];
}

let seq = 0;

/**
 * Pushes a small OCI image (config + one layer by default) to `name`, tagged `tag` (or by
 * digest when tag is undefined). Content is unique per call unless `seed` is given.
 */
export async function pushImage(
  app: FastifyInstance,
  name: string,
  tag: string | undefined,
  opts: { seed?: string; layers?: number; mediaType?: string; extra?: Record<string, unknown> } = {},
): Promise<PushedImage> {
  const seed = opts.seed ?? `image-${++seq}-${Date.now()}-${Math.random()}`;
  const docker = opts.mediaType === DOCKER_MANIFEST;
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const config = descriptor(docker ? DOCKER_CONFIG : OCI_CONFIG, configBytes);
  await pushBlob(app, name, configBytes);
  const layers: Descriptor[] = [];
  for (let i = 0; i < (opts.layers ?? 1); i++) {
    const layerBytes = Buffer.from(`layer ${i} of ${seed}`);
    await pushBlob(app, name, layerBytes);
    layers.push(descriptor(docker ? DOCKER_LAYER : OCI_LAYER, layerBytes));
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: opts.mediaType ?? OCI_MANIFEST,
    config,
    layers,
    ...opts.extra,
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = sha256(bytes);
  const res = await putManifest(app, name, tag ?? digest, bytes, manifest.mediaType);
  assert.equal(res.statusCode, 201, `push manifest to ${name}: ${res.body}`);
  assert.equal(res.headers['docker-content-digest'], digest);
  return { digest, manifest, bytes, config, layers };
}

/** Pushes an artifact manifest (empty config) referring to `subject`; returns its digest. */
export async function pushArtifact(
  app: FastifyInstance,
  name: string,
  subject: Descriptor,
  artifactType: string,
  opts: { annotations?: Record<string, string>; tag?: string; payload?: string } = {},
): Promise<{ digest: string; bytes: Buffer; res: LightMyRequestResponse }> {
  await pushBlob(app, name, EMPTY_JSON);
  const layerBytes = Buffer.from(opts.payload ?? `artifact ${artifactType} ${++seq} ${Math.random()}`);
  await pushBlob(app, name, layerBytes);
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { mediaType: OCI_EMPTY, digest: EMPTY_DIGEST, size: 2 },
    layers: [descriptor('application/octet-stream', layerBytes)],
    subject,
  };
  if (opts.annotations) manifest.annotations = opts.annotations;
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = sha256(bytes);
  const res = await putManifest(app, name, opts.tag ?? digest, bytes, OCI_MANIFEST);
  assert.equal(res.statusCode, 201, `push artifact: ${res.body}`);
  return { digest, bytes, res };
}

/** Starts an upload session; returns its Location path and id. */
export async function startUpload(app: FastifyInstance, name: string): Promise<{ location: string; id: string }> {
  const res = await app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/` });
  assert.equal(res.statusCode, 202, res.body);
  const location = String(res.headers.location);
  return { location, id: String(res.headers['docker-upload-uuid']) };
}

/** Appends `?k=v` (or `&k=v`) to a Location. */
export function withQuery(location: string, query: string): string {
  return location + (location.includes('?') ? '&' : '?') + query;
}

/** Parses a `Link: <url>; rel="next"` header into its URL, or undefined. */
export function nextLink(res: LightMyRequestResponse): string | undefined {
  const link = res.headers.link;
  if (link === undefined) return undefined;
  const m = /^<([^>]+)>;\s*rel="next"$/.exec(String(link));
  assert.ok(m, `Link header has the RFC 5988 form: ${String(link)}`);
  return m[1];
}
