/**
 * `--compress gzip|zstd` for archives whose layers are plain tars (a legacy `docker save` keeps
 * them uncompressed): each uncompressed layer is compressed once to a temporary file, and every
 * manifest that lists it is rewritten to point at the compressed blob — and every index and
 * referrer above a rewritten manifest in turn. The image config, and so the image ID and the
 * layers' diffIDs, stay as they are; the layer digests and the manifest digests change (that is
 * why the default keeps the archive's digests).
 *
 * gzip runs in-process (node:zlib, level 6: the output is the same for the same input, so a
 * re-run finds the blobs it already pushed). zstd runs through the `zstd` command (Debian's
 * `zstd` package, level 3, one thread, also deterministic): Node 20's zlib has no zstd (Node
 * 22.15 added it) and the `fzstd` library only decompresses. Docker schema2 manifests have no
 * zstd layer type, so with zstd a Docker manifest becomes an OCI one (config media type too).
 */
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { digestOf } from '../content/digest.ts';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../content/media-types.ts';
import type { ArchiveContent, PlannedBlob, PlannedManifest } from './content.ts';
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP } from './docker.ts';
import { ImportError } from './errors.ts';
import type { ImportSource } from './source.ts';

export const COMPRESSIONS = ['gzip', 'zstd'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const UNCOMPRESSED: ReadonlySet<string> = new Set([DOCKER_LAYER, OCI_LAYER]);

/** The media type of a layer compressed with `c` in a manifest of type `manifestType`. */
function compressedType(c: Compression, manifestType: string): string {
  if (c === 'zstd') return `${OCI_LAYER}+zstd`;
  return manifestType === DOCKER_MANIFEST ? DOCKER_LAYER_GZIP : `${OCI_LAYER}+gzip`;
}

export interface CompressOptions {
  /** Where the compressed layers are written (default: the OS temp folder). */
  tempDir?: string;
  signal?: AbortSignal;
  /** Told of each layer once compressed. */
  onLayer?: (e: { label: string; from: string; to: string; size: number; compressedSize: number }) => void;
}

export interface Compressed {
  /** The content with compressed layers and rewritten manifests (the input when nothing changed). */
  content: ArchiveContent;
  /** Uncompressed layers that were compressed. */
  layers: number;
  /** Removes the temporary files. */
  cleanup(): Promise<void>;
}

interface Doc {
  mediaType?: string;
  config?: { mediaType?: string; digest?: string; size?: number };
  layers?: { mediaType?: string; digest?: string; size?: number }[];
  manifests?: { mediaType?: string; digest?: string; size?: number }[];
  subject?: { mediaType?: string; digest?: string; size?: number };
}

/** Streams `input` through `zstd`, its output to `consume`; a clear error when the command is missing. */
async function zstdPipe(input: Readable, consume: (out: Readable) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const child = spawn('zstd', ['-3', '-T1', '-q', '-c', '--no-progress'], { stdio: ['pipe', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-1000)));
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new ImportError('UNSUPPORTED', 'zstd compression needs the zstd command (Debian package zstd); or use --compress gzip') : e),
    );
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd exited with ${code}: ${stderr.trim()}`))));
  });
  exited.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  await Promise.all([pipeline(input, child.stdin), consume(child.stdout), exited]);
}

/**
 * Compresses the uncompressed layers of `content` with `c`, checking each layer's digest as
 * it is read, and rewrites the manifests above them. Nothing to compress: the content is
 * returned as it is.
 */
export async function compressLayers(src: ImportSource, content: ArchiveContent, c: Compression, opts: CompressOptions = {}): Promise<Compressed> {
  const dir = path.join(opts.tempDir ?? os.tmpdir(), `berth-compress-${randomUUID()}`);
  let made = false;
  const cleanup = async () => {
    if (made) await fsp.rm(dir, { recursive: true, force: true });
  };
  const blobs = new Map(content.blobs);
  const compressedBlob = new Map<string, PlannedBlob>(); // uncompressed digest → compressed blob
  const manifests = new Map<string, PlannedManifest>();
  const renamed = new Map<string, { digest: string; size: number; mediaType: string }>(); // old manifest digest → new

  const compress = async (layer: PlannedBlob, mediaType: string): Promise<PlannedBlob> => {
    const known = compressedBlob.get(`${layer.digest}\0${mediaType}`);
    if (known) return known;
    if (!made) {
      await fsp.mkdir(dir, { recursive: true });
      made = true;
    }
    const file = path.join(dir, `${compressedBlob.size}.${c === 'gzip' ? 'gz' : 'zst'}`);
    const inHash = createHash('sha256');
    const outHash = createHash('sha256');
    let inBytes = 0;
    let outBytes = 0;
    const source: AsyncIterable<Buffer> = layer.data !== undefined ? Readable.from([layer.data]) : await src.open(layer.member!);
    const input = Readable.from(
      (async function* () {
        for await (const chunk of source) {
          if (opts.signal?.aborted) throw new ImportError('ABORTED', 'import aborted');
          inHash.update(chunk);
          inBytes += chunk.length;
          yield chunk;
        }
      })(),
    );
    const tap = async function* (s: AsyncIterable<Buffer>) {
      for await (const chunk of s) {
        outHash.update(chunk);
        outBytes += chunk.length;
        yield chunk;
      }
    };
    try {
      if (c === 'gzip') await pipeline(input, createGzip({ level: 6 }), tap, createWriteStream(file));
      else await zstdPipe(input, (out) => pipeline(out, tap, createWriteStream(file)), opts.signal);
    } catch (e) {
      if (e instanceof ImportError) throw e;
      if (opts.signal?.aborted) throw new ImportError('ABORTED', 'import aborted');
      throw new ImportError('BAD_ARCHIVE', `compressing ${layer.label}: ${(e as Error).message}`);
    }
    const actual = `sha256:${inHash.digest('hex')}`;
    if (inBytes !== layer.size || actual !== layer.digest) {
      throw new ImportError('DIGEST_MISMATCH', `${layer.label} hashes to ${actual} (${inBytes} bytes), not ${layer.digest} (${layer.size} bytes) as ${layer.claim ?? 'its descriptor'} claims`);
    }
    const blob: PlannedBlob = { digest: `sha256:${outHash.digest('hex')}`, size: outBytes, mediaType, file, label: `${layer.label} (${c})` };
    compressedBlob.set(`${layer.digest}\0${mediaType}`, blob);
    opts.onLayer?.({ label: layer.label, from: layer.digest, to: blob.digest, size: layer.size, compressedSize: outBytes });
    return blob;
  };

  /** Rewrites manifest `digest` (children and subject first); returns its new descriptor fields. */
  const rewrite = async (digest: string): Promise<{ digest: string; size: number; mediaType: string }> => {
    const done = renamed.get(digest);
    if (done) return done;
    const m = content.manifests.get(digest);
    if (!m) return { digest, size: 0, mediaType: '' }; // not in the archive (a subject elsewhere): leave it
    const doc = JSON.parse(m.bytes.toString('utf8')) as Doc;
    let changed = false;
    let mediaType = m.mediaType;
    const needs = new Set(m.blobs);
    if (m.mediaType === DOCKER_MANIFEST || m.mediaType === OCI_MANIFEST) {
      const toOci = c === 'zstd' && m.mediaType === DOCKER_MANIFEST && (doc.layers ?? []).some((l) => UNCOMPRESSED.has(l.mediaType ?? ''));
      for (const l of doc.layers ?? []) {
        const blob = l.digest ? blobs.get(l.digest) : undefined;
        if (!blob || !UNCOMPRESSED.has(l.mediaType ?? '')) {
          if (toOci && l.mediaType === DOCKER_LAYER_GZIP) l.mediaType = `${OCI_LAYER}+gzip`;
          continue;
        }
        const z = await compress(blob, compressedType(c, toOci ? OCI_MANIFEST : m.mediaType));
        blobs.set(z.digest, z);
        needs.delete(l.digest!);
        needs.add(z.digest);
        Object.assign(l, { mediaType: z.mediaType, digest: z.digest, size: z.size });
        changed = true;
      }
      if (toOci) {
        mediaType = OCI_MANIFEST;
        doc.mediaType = OCI_MANIFEST;
        if (doc.config?.mediaType === DOCKER_CONFIG) doc.config.mediaType = OCI_CONFIG;
      }
    }
    if (m.mediaType === OCI_INDEX || m.mediaType === DOCKER_MANIFEST_LIST) {
      for (const child of doc.manifests ?? []) {
        if (!child.digest || !content.manifests.has(child.digest)) continue;
        const n = await rewrite(child.digest);
        if (n.digest === child.digest) continue;
        Object.assign(child, n);
        changed = true;
      }
    }
    if (doc.subject?.digest && content.manifests.has(doc.subject.digest)) {
      const n = await rewrite(doc.subject.digest);
      if (n.digest !== doc.subject.digest) {
        Object.assign(doc.subject, n);
        changed = true;
      }
    }
    let out = m;
    if (changed) {
      const bytes = Buffer.from(JSON.stringify(doc));
      out = {
        digest: digestOf(bytes),
        mediaType,
        bytes,
        blobs: [...needs],
        children: m.children.map((d) => renamed.get(d)?.digest ?? d),
      };
    }
    manifests.set(out.digest, out);
    const r = { digest: out.digest, size: out.bytes.length, mediaType: out.mediaType };
    renamed.set(digest, r);
    return r;
  };

  try {
    for (const d of content.manifests.keys()) await rewrite(d);
  } catch (e) {
    await cleanup();
    throw e;
  }
  if (compressedBlob.size === 0) return { content, layers: 0, cleanup };
  const images = content.images.map((i) => {
    const n = renamed.get(i.digest)!;
    return { ...i, digest: n.digest, mediaType: n.mediaType };
  });
  const warnings = [...content.warnings, `${compressedBlob.size} uncompressed layer${compressedBlob.size === 1 ? '' : 's'} compressed with ${c}: layer and manifest digests differ from the archive's (the image ID stays)`];
  return { content: { ...content, blobs, manifests, images, warnings }, layers: compressedBlob.size, cleanup };
}
