/**
 * Builds OCI image layouts (image-spec image-layout.md) on disk for end-to-end tests: real
 * tar layers (optionally gzip'd) of random content, a config whose rootfs.diff_ids are the
 * sha256 of the uncompressed tars, an image manifest, and index.json / oci-layout. Layers are
 * streamed to disk, so a layer of several GiB costs no more memory than a small one.
 *
 *   dir/
 *     oci-layout                      {"imageLayoutVersion":"1.0.0"}
 *     index.json                      one descriptor per tag (org.opencontainers.image.ref.name)
 *     blobs/sha256/<hex>              layers, configs, manifests, indexes
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

export const MEDIA_TYPES = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface LayerSpec {
  /** Bytes of random content in the layer's one file (the tar adds headers and padding). */
  size: number;
  /** gzip the tar (default true). false gives an uncompressed `…layer.v1.tar` layer. */
  gzip?: boolean;
  /** Path of the file inside the tar (default `random-<n>.bin`). */
  fileName?: string;
}

export interface ImageSpec {
  layers: LayerSpec[];
  /** Default linux/amd64. */
  platform?: Platform;
  /** Annotations of the image manifest. */
  annotations?: Record<string, string>;
}

export interface BuiltLayer {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** Size of the uncompressed tar. */
  tarSize: number;
}

export interface BuiltImage {
  /** Descriptor of the image manifest (with `platform` when built as part of an index). */
  manifest: Descriptor;
  manifestBytes: Buffer;
  config: Descriptor;
  configBytes: Buffer;
  layers: BuiltLayer[];
}

export interface BuiltIndex {
  index: Descriptor;
  indexBytes: Buffer;
  images: BuiltImage[];
}

export interface MultiArchSpec {
  platforms: Platform[];
  /** Layers built separately (different random content) for every platform. */
  layers: LayerSpec[];
  /** Layers built once and shared by every platform's manifest (placed first). */
  sharedLayers?: LayerSpec[];
}

const CHUNK = 1024 * 1024;
const BLOCK = 512;

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** sha256 of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

export function blobPath(dir: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  if (!alg || !hex) throw new Error(`bad digest ${digest}`);
  return path.join(dir, 'blobs', alg, hex);
}

/** Creates the layout skeleton (idempotent). */
export async function initLayout(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  try {
    await fsp.access(path.join(dir, 'index.json'));
  } catch {
    await writeIndexJson(dir, []);
  }
}

/** Writes `bytes` as a blob; returns its descriptor. */
export async function writeBlob(dir: string, mediaType: string, bytes: Buffer): Promise<Descriptor> {
  const digest = sha256(bytes);
  await fsp.writeFile(blobPath(dir, digest), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** Writes a JSON document (compact) as a blob. */
export async function writeJsonBlob(dir: string, mediaType: string, doc: unknown): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
  const bytes = Buffer.from(JSON.stringify(doc));
  return { descriptor: await writeBlob(dir, mediaType, bytes), bytes };
}

function writeOctal(buf: Buffer, value: number, offset: number, length: number): void {
  const s = value.toString(8).padStart(length - 1, '0');
  if (s.length > length - 1) throw new Error(`tar field overflow: ${value}`);
  buf.write(s, offset, length - 1, 'ascii');
  buf[offset + length - 1] = 0;
}

/** A POSIX ustar header for one regular file. */
export function tarHeader(name: string, size: number, mtime = 1_700_000_000): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 100, 'utf8');
  writeOctal(h, 0o644, 100, 8); // mode
  writeOctal(h, 0, 108, 8); // uid
  writeOctal(h, 0, 116, 8); // gid
  writeOctal(h, size, 124, 12); // size (11 octal digits: < 8 GiB)
  writeOctal(h, mtime, 136, 12);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h.write('0', 156, 'ascii'); // typeflag: regular file
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0'), 148, 6, 'ascii');
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

/** The bytes of a one-file tar with `size` random bytes, chunk by chunk. */
async function* randomTar(fileName: string, size: number, onChunk: (b: Buffer) => void): AsyncGenerator<Buffer> {
  const emit = (b: Buffer): Buffer => {
    onChunk(b);
    return b;
  };
  yield emit(tarHeader(fileName, size));
  for (let left = size; left > 0; ) {
    const n = Math.min(CHUNK, left);
    yield emit(randomFillSync(Buffer.allocUnsafe(n)));
    left -= n;
  }
  const pad = (BLOCK - (size % BLOCK)) % BLOCK;
  // end of archive: two zero blocks
  yield emit(Buffer.alloc(pad + 2 * BLOCK, 0));
}

/** Streams one random tar layer into the layout; never holds the layer in memory. */
export async function writeRandomLayer(dir: string, spec: LayerSpec, n: number): Promise<BuiltLayer> {
  const gzip = spec.gzip ?? true;
  const fileName = spec.fileName ?? `random-${n}.bin`;
  const tmp = path.join(dir, 'blobs', 'sha256', `.tmp-${randomBytes(8).toString('hex')}`);
  const tarHash = createHash('sha256');
  let tarSize = 0;
  const blobHash = createHash('sha256');
  let blobSize = 0;
  const source = randomTar(fileName, spec.size, (b) => {
    tarHash.update(b);
    tarSize += b.length;
  });
  const count = async function* (src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of src) {
      blobHash.update(chunk);
      blobSize += chunk.length;
      yield chunk;
    }
  };
  const out = createWriteStream(tmp, { highWaterMark: CHUNK });
  try {
    if (gzip) await pipeline(source, createGzip({ level: 1 }), count, out);
    else await pipeline(source, count, out);
    const digest = `sha256:${blobHash.digest('hex')}`;
    await fsp.rename(tmp, blobPath(dir, digest));
    return {
      descriptor: { mediaType: gzip ? MEDIA_TYPES.layerGzip : MEDIA_TYPES.layerTar, digest, size: blobSize },
      diffId: `sha256:${tarHash.digest('hex')}`,
      tarSize,
    };
  } finally {
    await fsp.rm(tmp, { force: true });
  }
}

/** Writes config and manifest for already written layers; does not touch index.json. */
export async function writeImage(dir: string, layers: BuiltLayer[], platform: Platform, annotations?: Record<string, string>): Promise<BuiltImage> {
  const created = new Date().toISOString();
  const config = await writeJsonBlob(dir, MEDIA_TYPES.config, {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      // makes every built image distinct even with identical layers
      Labels: { 'test.berth.nonce': randomBytes(8).toString('hex') },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created, created_by: `berth e2e layer ${i}` })),
  });
  const manifest = await writeJsonBlob(dir, MEDIA_TYPES.manifest, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.manifest,
    config: config.descriptor,
    layers: layers.map((l) => l.descriptor),
    ...(annotations ? { annotations } : {}),
  });
  return {
    manifest: manifest.descriptor,
    manifestBytes: manifest.bytes,
    config: config.descriptor,
    configBytes: config.bytes,
    layers,
  };
}

async function writeLayers(dir: string, specs: LayerSpec[], first = 0): Promise<BuiltLayer[]> {
  const out: BuiltLayer[] = [];
  for (const [i, spec] of specs.entries()) out.push(await writeRandomLayer(dir, spec, first + i));
  return out;
}

/**
 * Builds a single-platform image into the layout at `dir` (created if needed) and, with a
 * tag, points index.json's `tag` entry at it (replacing an older entry of that tag).
 */
export async function buildImage(dir: string, spec: ImageSpec, tag?: string): Promise<BuiltImage> {
  await initLayout(dir);
  const layers = await writeLayers(dir, spec.layers);
  const image = await writeImage(dir, layers, spec.platform ?? { architecture: 'amd64', os: 'linux' }, spec.annotations);
  if (tag !== undefined) await setTag(dir, tag, image.manifest);
  return image;
}

/**
 * Builds one image per platform plus an OCI image index over them (platform entries), and
 * with a tag points index.json at the index.
 */
export async function buildMultiArchImage(dir: string, spec: MultiArchSpec, tag?: string): Promise<BuiltIndex> {
  await initLayout(dir);
  const shared = await writeLayers(dir, spec.sharedLayers ?? []);
  const images: BuiltImage[] = [];
  for (const platform of spec.platforms) {
    const own = await writeLayers(dir, spec.layers, shared.length);
    const image = await writeImage(dir, [...shared, ...own], platform);
    image.manifest = { ...image.manifest, platform };
    images.push(image);
  }
  const index = await writeJsonBlob(dir, MEDIA_TYPES.index, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: images.map((i) => i.manifest),
  });
  if (tag !== undefined) await setTag(dir, tag, index.descriptor);
  return { index: index.descriptor, indexBytes: index.bytes, images };
}

export interface IndexJson {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export async function readIndexJson(dir: string): Promise<IndexJson> {
  return JSON.parse(await fsp.readFile(path.join(dir, 'index.json'), 'utf8')) as IndexJson;
}

async function writeIndexJson(dir: string, manifests: Descriptor[]): Promise<void> {
  const doc: IndexJson = { schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests };
  await fsp.writeFile(path.join(dir, 'index.json'), JSON.stringify(doc));
}

/** Points `tag` in index.json at `descriptor`. */
export async function setTag(dir: string, tag: string, descriptor: Descriptor): Promise<void> {
  const idx = await readIndexJson(dir);
  const others = idx.manifests.filter((d) => d.annotations?.[REF_NAME] !== tag);
  others.push({ ...descriptor, annotations: { ...(descriptor.annotations ?? {}), [REF_NAME]: tag } });
  await writeIndexJson(dir, others);
}

/** The index.json descriptor of `tag`, or an error naming the tags present. */
export async function resolveTag(dir: string, tag: string): Promise<Descriptor> {
  const idx = await readIndexJson(dir);
  const d = idx.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
  if (!d) {
    const tags = idx.manifests.map((m) => m.annotations?.[REF_NAME]);
    throw new Error(`tag ${tag} not in ${dir}/index.json (has ${JSON.stringify(tags)})`);
  }
  return d;
}

export async function readBlob(dir: string, digest: string): Promise<Buffer> {
  return fsp.readFile(blobPath(dir, digest));
}

export interface ReachableBlob {
  digest: string;
  size: number;
  mediaType: string;
}

/**
 * Every blob reachable from `root` (the root itself, child manifests, configs, layers), in a
 * stable order, each checked to exist in the layout with the descriptor's size.
 */
export async function reachableBlobs(dir: string, root: Descriptor): Promise<ReachableBlob[]> {
  const seen = new Map<string, ReachableBlob>();
  const visit = async (d: Descriptor): Promise<void> => {
    if (seen.has(d.digest)) return;
    const st = await fsp.stat(blobPath(dir, d.digest));
    if (st.size !== d.size) throw new Error(`${dir}: blob ${d.digest} has ${st.size} bytes, descriptor says ${d.size}`);
    seen.set(d.digest, { digest: d.digest, size: d.size, mediaType: d.mediaType });
    if (d.mediaType === MEDIA_TYPES.index || d.mediaType === 'application/vnd.docker.distribution.manifest.list.v2+json') {
      const doc = JSON.parse((await readBlob(dir, d.digest)).toString('utf8')) as { manifests: Descriptor[] };
      for (const m of doc.manifests) await visit(m);
    } else if (d.mediaType === MEDIA_TYPES.manifest || d.mediaType === 'application/vnd.docker.distribution.manifest.v2+json') {
      const doc = JSON.parse((await readBlob(dir, d.digest)).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
      await visit(doc.config);
      for (const l of doc.layers) await visit(l);
    }
  };
  await visit(root);
  return [...seen.values()].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}
