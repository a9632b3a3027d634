// OCI distribution client operations used by the workloads. Every operation follows the
// Location headers it is given (docker-registry's carry a signed `_state` query).
import { type Body, type Client, expectStatus, location, withQuery } from './http.ts';
import { randomBlob, sha256 } from './data.ts';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export interface Descriptor {
  digest: string;
  size: number;
}

/** POST /blobs/uploads/ → the session's Location. */
export async function startUpload(c: Client, name: string): Promise<string> {
  const r = await c.request('POST', `/v2/${name}/blobs/uploads/`);
  expectStatus(r, 202, `POST /v2/${name}/blobs/uploads/`);
  return location(r, 'POST upload');
}

/** Monolithic push as every registry accepts it: POST to open a session, PUT ?digest= with the whole body. */
export async function pushBlob(c: Client, name: string, digest: string, size: number, body: Body): Promise<void> {
  const loc = await startUpload(c, name);
  const r = await c.request('PUT', withQuery(loc, 'digest', digest), {
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body,
  });
  expectStatus(r, 201, `PUT blob ${digest.slice(0, 19)}`);
}

/** Chunked push: POST, PATCH each `chunk` bytes with Content-Range, then PUT ?digest= without a body. */
export async function pushBlobChunked(
  c: Client,
  name: string,
  digest: string,
  size: number,
  chunk: number,
  range: (start: number, end: number) => AsyncIterable<Buffer>,
): Promise<void> {
  let loc = await startUpload(c, name);
  for (let start = 0; start < size; start += chunk) {
    const end = Math.min(size, start + chunk);
    const r = await c.request('PATCH', loc, {
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(end - start),
        'content-range': `${start}-${end - 1}`,
      },
      body: range(start, end),
    });
    expectStatus(r, 202, `PATCH chunk ${start}-${end - 1}`);
    loc = location(r, 'PATCH');
  }
  const r = await c.request('PUT', withQuery(loc, 'digest', digest));
  expectStatus(r, 201, `PUT (complete) ${digest.slice(0, 19)}`);
}

export async function pushRandomBlob(c: Client, name: string, size: number): Promise<Descriptor> {
  const b = randomBlob(size);
  await pushBlob(c, name, b.digest, size, b.data);
  return { digest: b.digest, size };
}

/** A config blob as a runtime would push it. */
export async function pushConfig(c: Client, name: string, label: string): Promise<Descriptor> {
  const data = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { 'bench.label': label } }, rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const digest = sha256(data);
  await pushBlob(c, name, digest, data.length, data);
  return { digest, size: data.length };
}

export function ociManifest(config: Descriptor, layers: Descriptor[], annotations?: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
      ...(annotations ? { annotations } : {}),
    }),
  );
}

export async function putManifest(c: Client, name: string, ref: string, manifest: Buffer): Promise<void> {
  const r = await c.request('PUT', `/v2/${name}/manifests/${ref}`, { headers: { 'content-type': OCI_MANIFEST }, body: manifest });
  expectStatus(r, 201, `PUT /v2/${name}/manifests/${ref}`);
}

export async function getManifest(c: Client, name: string, ref: string): Promise<{ config: Descriptor; layers: Descriptor[] }> {
  const r = await c.request('GET', `/v2/${name}/manifests/${ref}`, { headers: { accept: OCI_MANIFEST } });
  expectStatus(r, 200, `GET /v2/${name}/manifests/${ref}`);
  return JSON.parse(r.body.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
}

/** GETs a blob and drains it; returns the byte count (checked against `size` when given). */
export async function pullBlob(c: Client, name: string, digest: string, size?: number, headers?: Record<string, string>): Promise<number> {
  const r = await c.request('GET', `/v2/${name}/blobs/${digest}`, { drain: true, ...(headers ? { headers } : {}) });
  expectStatus(r, headers?.range ? 206 : 200, `GET blob ${digest.slice(0, 19)}`);
  if (size !== undefined && r.bytes !== size) throw new Error(`GET blob ${digest.slice(0, 19)}: got ${r.bytes} bytes, expected ${size}`);
  return r.bytes;
}
