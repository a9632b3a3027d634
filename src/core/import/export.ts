/**
 * The way back (`berth pull`): an image from a registry into an OCI layout folder, an
 * oci-archive tar, or a docker-archive tar (`docker load`). Blobs stream from the registry to
 * the file, each checked against its digest as it passes; nothing is held in memory but
 * manifests and configs. Archives are written to a temporary name and renamed when complete.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { digestOf, newHash, parseDigest } from '../content/digest.ts';
import { RegistryError } from '../errors.ts';
import { parseManifest, type Descriptor } from '../content/manifest.ts';
import { INDEX_TYPES, NON_DISTRIBUTABLE_TYPES, OCI_INDEX } from '../content/media-types.ts';
import type { SourceRegistry } from './client.ts';
import { ImportError } from './errors.ts';
import { REF_NAME, blobMember } from './oci.ts';
import { tarEnd, tarHeaders, tarPadding } from './tar.ts';

export type ExportFormat = 'oci-dir' | 'oci-archive' | 'docker-archive';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['oci-dir', 'oci-archive', 'docker-archive'];

export type ExportEvent =
  | { type: 'resolve'; name: string; reference: string; digest: string; mediaType: string; blobs: number; bytes: number }
  | { type: 'blob'; state: 'exists' | 'start' | 'done'; name: string; digest: string; size: number; mediaType: string; label: string }
  | { type: 'progress'; name: string; digest: string; bytes: number; size: number }
  | { type: 'warning'; message: string }
  | { type: 'done'; path: string; format: ExportFormat; digest: string; bytes: number; seconds: number };

export interface ExportOptions {
  /** `os/arch[/variant]` for docker-archive from a multi-platform index (default: this machine's). */
  platform?: string;
  /** The tag to record (ref.name in index.json, RepoTags in manifest.json); default the reference if a tag. */
  tag?: string;
  /** RepoTags entry of a docker-archive, e.g. `registry.example.com/acme/prod/web:1.0`. */
  repoTag?: string;
  onEvent?: (e: ExportEvent) => void;
  signal?: AbortSignal;
  progressIntervalMs?: number;
}

interface ManifestNode {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

const UNCOMPRESSED = new Set([
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
]);
const GZIP = new Set([
  'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
]);

function hostPlatform(): string {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
  return `linux/${arch}`;
}

function parsed(m: ManifestNode) {
  try {
    return parseManifest(m.bytes, m.mediaType);
  } catch (e) {
    if (e instanceof RegistryError) throw new ImportError('BAD_ARCHIVE', `manifest ${m.digest}: ${e.message}`);
    throw e;
  }
}

/** A blob's bytes through a digest and size check; `onBytes` sees progress. */
async function* checked(source: AsyncIterable<Buffer>, d: Descriptor, what: string, onBytes: (n: number) => void): AsyncGenerator<Buffer> {
  const hash = newHash(parseDigest(d.digest).algorithm);
  let n = 0;
  for await (const chunk of source) {
    n += chunk.length;
    if (n > d.size) throw new ImportError('SIZE_MISMATCH', `${what} ${d.digest}: the registry sent more than the ${d.size} bytes of its descriptor`);
    hash.update(chunk);
    onBytes(n);
    yield chunk;
  }
  if (n !== d.size) throw new ImportError('SIZE_MISMATCH', `${what} ${d.digest}: the registry sent ${n} of ${d.size} bytes`);
  const actual = `${parseDigest(d.digest).algorithm}:${hash.digest('hex')}`;
  if (actual !== d.digest) throw new ImportError('DIGEST_MISMATCH', `${what} ${d.digest}: the registry sent content hashing to ${actual}`);
}

/** Appends members to a tar file, sequentially. */
class TarFile {
  private pos = 0;
  private constructor(private readonly fh: fsp.FileHandle) {}

  static async create(file: string): Promise<TarFile> {
    return new TarFile(await fsp.open(file, 'w'));
  }

  private async write(b: Buffer): Promise<void> {
    let off = 0;
    while (off < b.length) {
      const { bytesWritten } = await this.fh.write(b, off, b.length - off, this.pos);
      off += bytesWritten;
      this.pos += bytesWritten;
    }
  }

  async dir(name: string): Promise<void> {
    await this.write(tarHeaders(name, 0, 'dir'));
  }

  async add(name: string, data: Buffer): Promise<void> {
    await this.write(tarHeaders(name, data.length));
    await this.write(data);
    await this.write(tarPadding(data.length));
  }

  async addStream(name: string, size: number, data: AsyncIterable<Buffer>): Promise<void> {
    await this.write(tarHeaders(name, size));
    let n = 0;
    for await (const chunk of data) {
      n += chunk.length;
      await this.write(chunk);
    }
    if (n !== size) throw new ImportError('SIZE_MISMATCH', `tar member ${name}: wrote ${n} of ${size} bytes`);
    await this.write(tarPadding(size));
  }

  async finish(): Promise<void> {
    await this.write(tarEnd());
    await this.fh.sync();
    await this.fh.close();
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

/** Exports `name:reference` from `src` to `out` in `format`. Returns the root manifest digest. */
export async function exportImage(
  src: SourceRegistry,
  name: string,
  reference: string,
  format: ExportFormat,
  out: string,
  opts: ExportOptions = {},
): Promise<{ digest: string; mediaType: string; bytes: number }> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => {});
  const interval = opts.progressIntervalMs ?? 250;
  const tag = opts.tag ?? (reference.includes(':') ? undefined : reference);
  let root: ManifestNode = await src.getManifest(name, reference, opts.signal);

  // What to fetch: every manifest under the root (OCI outputs), or one platform's image (docker).
  const manifests: ManifestNode[] = [];
  const blobs = new Map<string, Descriptor & { label: string }>();
  const seen = new Set<string>();
  const visit = async (m: ManifestNode, depth: number): Promise<void> => {
    if (seen.has(m.digest)) return;
    seen.add(m.digest);
    if (depth > 8) throw new ImportError('BAD_ARCHIVE', `indexes nested too deep at ${m.digest}`);
    const p = parsed(m);
    if (p.kind === 'index') {
      for (const c of p.manifests) {
        const child = await src.getManifest(name, c.digest, opts.signal);
        if (child.bytes.length !== c.size) throw new ImportError('SIZE_MISMATCH', `manifest ${c.digest} has ${child.bytes.length} bytes, its descriptor says ${c.size}`);
        await visit(child, depth + 1);
      }
    } else {
      const all = [p.config!, ...p.layers];
      const required = new Set(p.blobs.map((b) => b.digest));
      for (const [i, b] of all.entries()) {
        if (!required.has(b.digest)) continue;
        if (!blobs.has(b.digest)) blobs.set(b.digest, { ...b, label: i === 0 ? 'config' : `layer ${i - 1}` });
      }
    }
    manifests.push(m);
  };

  if (format === 'docker-archive' && INDEX_TYPES.has(root.mediaType)) {
    const want = opts.platform ?? hostPlatform();
    const [os, arch, variant] = want.split('/');
    const p = parsed(root);
    const candidates = p.manifests.filter((c) => !c.annotations?.['vnd.docker.reference.type']);
    const match = candidates.find((c) => {
      const pl = c.platform as { os?: string; architecture?: string; variant?: string } | undefined;
      return pl?.os === os && pl?.architecture === arch && (variant === undefined || pl?.variant === variant);
    });
    if (!match) {
      const have = candidates.map((c) => {
        const pl = c.platform as { os?: string; architecture?: string; variant?: string } | undefined;
        return pl ? [pl.os, pl.architecture, pl.variant].filter(Boolean).join('/') : 'unknown';
      });
      throw new ImportError('UNSUPPORTED', `${name}:${reference} has no ${want} image (it has ${have.join(', ') || 'none'}): choose one with --platform`);
    }
    const platformRoot = await src.getManifest(name, match.digest, opts.signal);
    emit({ type: 'warning', message: `${name}:${reference} is a multi-platform index: exporting its ${want} image ${match.digest}` });
    root = platformRoot;
  }
  await visit(root, 0);
  const total = [...blobs.values()].reduce((s, b) => s + b.size, 0);
  emit({ type: 'resolve', name, reference, digest: root.digest, mediaType: root.mediaType, blobs: blobs.size, bytes: total });

  const fetchBlob = async (d: Descriptor & { label: string }): Promise<AsyncIterable<Buffer>> => {
    emit({ type: 'blob', state: 'start', name, digest: d.digest, size: d.size, mediaType: d.mediaType, label: d.label });
    const stream = await src.openBlob(name, d.digest, opts.signal);
    let last = 0;
    return checked(stream as AsyncIterable<Buffer>, d, d.label, (n) => {
      const now = Date.now();
      if (now - last >= interval || n === d.size) {
        last = now;
        emit({ type: 'progress', name, digest: d.digest, bytes: n, size: d.size });
      }
    });
  };
  const blobDone = (d: Descriptor & { label: string }, state: 'exists' | 'done' = 'done') =>
    emit({ type: 'blob', state, name, digest: d.digest, size: d.size, mediaType: d.mediaType, label: d.label });

  const rootDescriptor = { mediaType: root.mediaType, digest: root.digest, size: root.bytes.length };
  if (format === 'oci-dir') {
    await writeOciDir(out, manifests, blobs, rootDescriptor, tag, fetchBlob, blobDone);
  } else if (format === 'oci-archive') {
    await atomically(out, async (tmp) => {
      const tar = await TarFile.create(tmp);
      try {
        await tar.add('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
        await tar.dir('blobs');
        const algs = new Set([...manifests.map((m) => m.digest), ...blobs.keys()].map((d) => parseDigest(d).algorithm));
        for (const a of algs) await tar.dir(`blobs/${a}`);
        for (const m of manifests) await tar.add(blobMember(m.digest), m.bytes);
        for (const b of blobs.values()) {
          await tar.addStream(blobMember(b.digest), b.size, await fetchBlob(b));
          blobDone(b);
        }
        await tar.add('index.json', indexJson([], rootDescriptor, tag));
        await tar.finish();
      } catch (e) {
        await tar.abort();
        throw e;
      }
    });
  } else {
    await writeDockerArchive(out, root, blobs, opts.repoTag, fetchBlob, blobDone);
  }
  emit({ type: 'done', path: out, format, digest: root.digest, bytes: total, seconds: (Date.now() - started) / 1000 });
  return { digest: root.digest, mediaType: root.mediaType, bytes: total };
}

function indexJson(existing: Descriptor[], root: Descriptor, tag: string | undefined): Buffer {
  const manifests = existing.filter((d) => (tag === undefined ? d.digest !== root.digest || d.annotations?.[REF_NAME] !== undefined : d.annotations?.[REF_NAME] !== tag));
  manifests.push({ ...root, ...(tag !== undefined ? { annotations: { [REF_NAME]: tag } } : {}) });
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
}

/** Writes to a temporary name next to `out`, renamed into place only when complete. */
async function atomically(out: string, write: (tmp: string) => Promise<void>): Promise<void> {
  await fsp.mkdir(path.dirname(path.resolve(out)), { recursive: true });
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.${randomUUID().slice(0, 8)}.partial`);
  try {
    await write(tmp);
    await fsp.rename(tmp, out);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
}

async function fileDigest(file: string, algorithm: 'sha256' | 'sha512'): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return `${algorithm}:${hash.digest('hex')}`;
}

async function writeOciDir(
  out: string,
  manifests: ManifestNode[],
  blobs: Map<string, Descriptor & { label: string }>,
  root: Descriptor,
  tag: string | undefined,
  fetchBlob: (d: Descriptor & { label: string }) => Promise<AsyncIterable<Buffer>>,
  blobDone: (d: Descriptor & { label: string }, state?: 'exists' | 'done') => void,
): Promise<void> {
  await fsp.mkdir(out, { recursive: true });
  let existing: Descriptor[] = [];
  try {
    const doc = JSON.parse(await fsp.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests?: Descriptor[] };
    if (Array.isArray(doc.manifests)) existing = doc.manifests;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ImportError('BAD_ARCHIVE', `${out} has an index.json that is not a readable OCI index: ${(e as Error).message}`);
    }
    const entries = await fsp.readdir(out);
    if (entries.length > 0) throw new ImportError('BAD_NAME', `${out} is a folder that is neither empty nor an OCI layout: choose another path`);
  }
  const place = async (digest: string, write: (tmp: string) => Promise<void>) => {
    const file = path.join(out, blobMember(digest));
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomUUID().slice(0, 8)}.partial`;
    try {
      await write(tmp);
      await fsp.rename(tmp, file);
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  };
  const present = async (d: { digest: string; size: number }) => {
    const file = path.join(out, blobMember(d.digest));
    const st = await fsp.stat(file).catch(() => undefined);
    return st?.isFile() === true && st.size === d.size && (await fileDigest(file, parseDigest(d.digest).algorithm)) === d.digest;
  };
  for (const b of blobs.values()) {
    if (await present(b)) {
      blobDone(b, 'exists');
      continue;
    }
    await place(b.digest, async (tmp) => pipeline(await fetchBlob(b), createWriteStream(tmp, { highWaterMark: 1024 * 1024 })));
    blobDone(b);
  }
  for (const m of manifests) {
    if (digestOf(m.bytes, parseDigest(m.digest).algorithm) !== m.digest) throw new ImportError('DIGEST_MISMATCH', `manifest ${m.digest} does not hash to its digest`);
    await place(m.digest, (tmp) => fsp.writeFile(tmp, m.bytes));
  }
  await fsp.writeFile(path.join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const tmpIndex = path.join(out, `.index.json.${randomUUID().slice(0, 8)}`);
  await fsp.writeFile(tmpIndex, indexJson(existing, root, tag));
  await fsp.rename(tmpIndex, path.join(out, 'index.json'));
}

async function writeDockerArchive(
  out: string,
  root: ManifestNode,
  blobs: Map<string, Descriptor & { label: string }>,
  repoTag: string | undefined,
  fetchBlob: (d: Descriptor & { label: string }) => Promise<AsyncIterable<Buffer>>,
  blobDone: (d: Descriptor & { label: string }, state?: 'exists' | 'done') => void,
): Promise<void> {
  const p = parsed(root);
  if (p.kind !== 'image') throw new ImportError('UNSUPPORTED', `${root.digest} is not an image manifest`);
  const configDesc = p.config!;
  if (configDesc.digest.split(':')[0] !== 'sha256') throw new ImportError('UNSUPPORTED', 'docker-archive needs sha256 digests');
  const chunks: Buffer[] = [];
  const cfg = blobs.get(configDesc.digest)!;
  for await (const c of await fetchBlob(cfg)) chunks.push(c);
  const configBytes = Buffer.concat(chunks);
  blobDone(cfg);
  let config: { rootfs?: { diff_ids?: unknown } };
  try {
    config = JSON.parse(configBytes.toString('utf8')) as typeof config;
  } catch {
    throw new ImportError('UNSUPPORTED', `the config ${configDesc.digest} is not JSON: ${root.digest} is not a container image (an artifact?)`);
  }
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== p.layers.length || !diffIds.every((d) => typeof d === 'string' && /^sha256:[a-f0-9]{64}$/.test(d))) {
    throw new ImportError('UNSUPPORTED', `the config ${configDesc.digest} has no rootfs.diff_ids matching its ${p.layers.length} layers: not a container image`);
  }
  const dir = path.dirname(path.resolve(out));
  await atomically(out, async (tmp) => {
    const tar = await TarFile.create(tmp);
    const temps: string[] = [];
    try {
      const configName = `${configDesc.digest.slice('sha256:'.length)}.json`;
      await tar.add(configName, configBytes);
      const layerNames: string[] = [];
      const written = new Set<string>();
      for (const [i, l] of p.layers.entries()) {
        const diffId = diffIds[i] as string;
        const member = `${diffId.slice('sha256:'.length)}.tar`;
        layerNames.push(member);
        if (written.has(diffId)) continue;
        if (NON_DISTRIBUTABLE_TYPES.has(l.mediaType) && !blobs.has(l.digest)) {
          throw new ImportError('UNSUPPORTED', `layer ${i} (${l.digest}) is a foreign layer the registry does not hold: a docker-archive cannot include it`);
        }
        const d = blobs.get(l.digest)!;
        if (UNCOMPRESSED.has(l.mediaType)) {
          if (l.digest !== diffId) {
            throw new ImportError('DIGEST_MISMATCH', `layer ${i} is uncompressed but its digest ${l.digest} differs from rootfs.diff_ids[${i}] ${diffId}`);
          }
          await tar.addStream(member, l.size, await fetchBlob(d));
        } else if (GZIP.has(l.mediaType)) {
          // the tar header needs the uncompressed size: decompress to a temporary file first
          const t = path.join(dir, `.berth-layer-${randomUUID().slice(0, 8)}.tar`);
          temps.push(t);
          const inner = createHash('sha256');
          let size = 0;
          await pipeline(
            await fetchBlob(d),
            createGunzip(),
            async function* (src: AsyncIterable<Buffer>) {
              for await (const c of src) {
                inner.update(c);
                size += c.length;
                yield c;
              }
            },
            createWriteStream(t, { highWaterMark: 1024 * 1024 }),
          );
          const actual = `sha256:${inner.digest('hex')}`;
          if (actual !== diffId) throw new ImportError('DIGEST_MISMATCH', `layer ${i} (${l.digest}) decompresses to ${actual}, not rootfs.diff_ids[${i}] ${diffId}`);
          await tar.addStream(member, size, createReadStream(t, { highWaterMark: 1024 * 1024 }) as Readable & AsyncIterable<Buffer>);
          await fsp.rm(t, { force: true });
        } else {
          throw new ImportError('UNSUPPORTED', `layer ${i} has media type ${l.mediaType}: a docker-archive holds only tar or tar+gzip layers`);
        }
        written.add(diffId);
        blobDone(d);
      }
      const manifestJson = [{ Config: configName, RepoTags: repoTag ? [repoTag] : null, Layers: layerNames }];
      await tar.add('manifest.json', Buffer.from(JSON.stringify(manifestJson)));
      await tar.finish();
    } catch (e) {
      await tar.abort();
      throw e;
    } finally {
      for (const t of temps) await fsp.rm(t, { force: true });
    }
  });
}

