/**
 * The importer: reads an archive (archive.ts), decides names (names.ts), then pushes to a
 * TargetRegistry — the HTTP client for `berth push`, or core's own services for the server's
 * import API — in an order that never shows a half-imported image:
 *
 *   1. blobs, a few in parallel: HEAD first (a re-run skips what landed), a mount when another
 *      image of this import already has it, else an upload streamed from the file and checked
 *      against its digest while it streams (the registry checks it again);
 *   2. manifests by digest, children before their index;
 *   3. only then the tags.
 *
 * A failure at any point stops the import before step 3: nothing is tagged.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { newHash, parseDigest } from '../content/digest.ts';
import { RegistryError } from '../errors.ts';
import { readArchive } from './archive.ts';
import { type Compression, compressLayers } from './compress.ts';
import type { ArchiveContent, ArchiveFormat, PlannedBlob, PlannedManifest } from './content.ts';
import { ImportError } from './errors.ts';
import { type Destination, type PushTarget, resolveTargets } from './names.ts';
import { type OpenSourceOptions, openSource, type ImportSource } from './source.ts';

/** Where an import goes: any OCI registry over HTTP, or this Berth in-process. */
export interface TargetRegistry {
  /** For messages: the registry's URL, or "this server". */
  readonly location: string;
  /** Whether image `name` already has the blob (a HEAD). */
  hasBlob(name: string, digest: string, signal?: AbortSignal): Promise<boolean>;
  /** Links a blob `from` another image of the registry; false when it could not. */
  mountBlob?(name: string, digest: string, from: string, signal?: AbortSignal): Promise<boolean>;
  /**
   * Uploads a blob of `size` bytes. `open` gives the bytes from the start; it may be called
   * again to retry. Resolves once the registry has stored and verified it.
   */
  putBlob(name: string, digest: string, size: number, open: () => Promise<AsyncIterable<Buffer>>, signal?: AbortSignal): Promise<void>;
  /** Puts manifest bytes by digest or tag; resolves with the digest the registry reports. */
  putManifest(name: string, reference: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string>;
}

export type BlobState = 'exists' | 'mounted' | 'start' | 'done';

export type ImportEvent =
  | { type: 'read'; source: string; format: ArchiveFormat }
  | { type: 'warning'; message: string }
  | { type: 'compressed'; label: string; compression: Compression; from: string; to: string; size: number; compressedSize: number }
  | { type: 'plan'; format: ArchiveFormat; images: PushTarget[]; blobs: number; bytes: number }
  | { type: 'blob'; state: BlobState; name: string; digest: string; size: number; mediaType: string; label: string }
  | { type: 'progress'; name: string; digest: string; bytes: number; size: number }
  | { type: 'retry'; name: string; digest: string; attempt: number; message: string }
  | { type: 'manifest'; name: string; digest: string; mediaType: string }
  | { type: 'tag'; name: string; tag: string; digest: string }
  | { type: 'done'; images: PushTarget[]; uploaded: { blobs: number; bytes: number }; skipped: { blobs: number; bytes: number }; seconds: number };

export interface ImportOptions {
  /** Parallel blob uploads (default 3). */
  concurrency?: number;
  onEvent?: (e: ImportEvent) => void;
  signal?: AbortSignal;
  /** Where a gzip'd archive is decompressed. */
  tempDir?: string;
  /** Names the input in messages (default: its file name). */
  label?: string;
  /** Bounds on decompressing a gzip'd archive (OpenSourceOptions). */
  maxUnpackedBytes?: number;
  maxExpansionRatio?: number;
  /** Attempts per blob on transient failures (network, 5xx, 429); default 3. */
  attempts?: number;
  /** Milliseconds between progress events of one blob (default 250). */
  progressIntervalMs?: number;
  /**
   * Compress the archive's uncompressed layers before pushing (compress.ts): the layer and
   * manifest digests then differ from the archive's. Default: push the layers as they are.
   */
  compress?: Compression;
}

export interface ImportResult {
  format: ArchiveFormat;
  images: PushTarget[];
  uploaded: { blobs: number; bytes: number };
  skipped: { blobs: number; bytes: number };
  warnings: string[];
}

/** Reads `input` and pushes it to `target` under `dest`. */
export async function importArchive(input: string, dest: Destination, target: TargetRegistry, opts: ImportOptions = {}): Promise<ImportResult> {
  const emit = opts.onEvent ?? (() => {});
  if (opts.signal?.aborted) throw new ImportError('ABORTED', 'import aborted');
  const sourceOpts: OpenSourceOptions = {
    ...(opts.tempDir ? { tempDir: opts.tempDir } : {}),
    ...(opts.label ? { label: opts.label } : {}),
    ...(opts.maxUnpackedBytes !== undefined ? { maxUnpackedBytes: opts.maxUnpackedBytes } : {}),
    ...(opts.maxExpansionRatio !== undefined ? { maxExpansionRatio: opts.maxExpansionRatio } : {}),
    onDecompress: () => emit({ type: 'warning', message: `${opts.label ?? input} is gzip'd: decompressing it to a temporary file first` }),
  };
  const src = await openSource(input, sourceOpts);
  try {
    let content = await readArchive(src);
    emit({ type: 'read', source: src.label, format: content.format });
    for (const w of content.warnings) emit({ type: 'warning', message: w });
    let cleanup = async () => {};
    try {
      if (opts.compress) {
        const c = await compressLayers(src, content, opts.compress, {
          ...(opts.tempDir ? { tempDir: opts.tempDir } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
          onLayer: (e) => emit({ type: 'compressed', ...e, compression: opts.compress! }),
        });
        cleanup = c.cleanup;
        if (c.layers === 0) emit({ type: 'warning', message: `nothing to compress: every layer is compressed already; digests kept` });
        else emit({ type: 'warning', message: c.content.warnings[c.content.warnings.length - 1]! });
        content = c.content;
      }
      const targets = resolveTargets(content, dest);
      return await pushContent(src, content, targets, target, opts);
    } finally {
      await cleanup();
    }
  } finally {
    await src.close();
  }
}

/** Every manifest reachable from `root`, children before parents. */
function manifestOrder(content: ArchiveContent, root: string): PlannedManifest[] {
  const out: PlannedManifest[] = [];
  const seen = new Set<string>();
  const visit = (digest: string) => {
    if (seen.has(digest)) return;
    seen.add(digest);
    const m = content.manifests.get(digest);
    if (!m) throw new ImportError('MISSING_FILE', `manifest ${digest} is not in the archive`);
    for (const c of m.children) visit(c);
    out.push(m);
  };
  visit(root);
  return out;
}

function isTransient(e: unknown): boolean {
  if (e instanceof ImportError) return e.code === 'REGISTRY' && e.status !== undefined && (e.status >= 500 || e.status === 429);
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'ECONNREFUSED' || code === 'UND_ERR_SOCKET';
}

function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/**
 * The blob's bytes, checked as they pass: more bytes than declared fail at once; at the end
 * the digest is compared before the last chunk is handed on, so a registry never receives a
 * complete body for a wrong digest.
 */
export async function* verified(
  source: AsyncIterable<Buffer>,
  blob: PlannedBlob,
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const d = parseDigest(blob.digest);
  const hash = newHash(d.algorithm);
  const what = `${blob.label}${blob.member ? ` ("${blob.member}")` : ''}`;
  let n = 0;
  let held: Buffer | undefined;
  for await (const chunk of source) {
    if (signal?.aborted) throw new ImportError('ABORTED', 'import aborted');
    n += chunk.length;
    if (n > blob.size) {
      throw new ImportError('SIZE_MISMATCH', `${what} has more than the ${blob.size} bytes its descriptor claims`);
    }
    hash.update(chunk);
    if (held) {
      yield held;
      onBytes(held.length);
    }
    held = chunk;
  }
  if (n !== blob.size) {
    throw new ImportError('SIZE_MISMATCH', `${what} has ${n} bytes, not the ${blob.size} its descriptor claims (truncated?)`);
  }
  const actual = `${d.algorithm}:${hash.digest('hex')}`;
  if (actual !== blob.digest) {
    throw new ImportError('DIGEST_MISMATCH', `${what} hashes to ${actual}, not ${blob.digest} (the digest ${blob.claim ?? 'its descriptor'} claims)`);
  }
  if (held) {
    yield held;
    onBytes(held.length);
  }
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new ImportError('ABORTED', 'import aborted'));
      },
      { once: true },
    );
  });

/** Pushes read content. Exported for callers that read the archive themselves. */
export async function pushContent(
  src: ImportSource,
  content: ArchiveContent,
  targets: PushTarget[],
  target: TargetRegistry,
  opts: ImportOptions = {},
): Promise<ImportResult> {
  const emit = opts.onEvent ?? (() => {});
  const started = Date.now();
  const concurrency = Math.max(1, Math.min(16, opts.concurrency ?? 3));
  const attempts = Math.max(1, opts.attempts ?? 3);
  const interval = opts.progressIntervalMs ?? 250;
  const controller = new AbortController();
  const outer = opts.signal;
  const onOuterAbort = () => controller.abort();
  outer?.addEventListener('abort', onOuterAbort, { once: true });
  const signal = controller.signal;
  const checkAbort = () => {
    if (signal.aborted) throw new ImportError('ABORTED', 'import aborted');
  };

  // Which images need which blobs, and each image's manifests in push order.
  const orders = new Map<string, PlannedManifest[]>();
  const needs = new Map<string, string[]>(); // blob digest → image names
  for (const t of targets) {
    const order = manifestOrder(content, t.digest);
    orders.set(`${t.name}\0${t.digest}`, order);
    for (const m of order) {
      for (const b of m.blobs) {
        const names = needs.get(b) ?? [];
        if (!names.includes(t.name)) names.push(t.name);
        needs.set(b, names);
      }
    }
  }
  const blobs = [...needs.keys()].map((digest) => {
    const b = content.blobs.get(digest);
    if (!b) throw new ImportError('MISSING_FILE', `blob ${digest} is not in the archive`);
    return b;
  });
  // Largest first: the long uploads start early, the small ones fill in around them.
  blobs.sort((a, b) => b.size - a.size);
  // Counted per image: a blob two images need is one upload and one mount (or two uploads).
  const totalBlobs = blobs.reduce((s, b) => s + needs.get(b.digest)!.length, 0);
  const totalBytes = blobs.reduce((s, b) => s + b.size * needs.get(b.digest)!.length, 0);
  emit({ type: 'plan', format: content.format, images: targets, blobs: totalBlobs, bytes: totalBytes });

  const uploaded = { blobs: 0, bytes: 0 };
  const skipped = { blobs: 0, bytes: 0 };

  const pushBlob = async (blob: PlannedBlob) => {
    const names = needs.get(blob.digest)!;
    let landedIn: string | undefined;
    const base = { digest: blob.digest, size: blob.size, mediaType: blob.mediaType, label: blob.label };
    for (const name of names) {
      checkAbort();
      if (await target.hasBlob(name, blob.digest, signal)) {
        emit({ type: 'blob', state: 'exists', name, ...base });
        skipped.blobs++;
        skipped.bytes += blob.size;
        landedIn ??= name;
        continue;
      }
      if (landedIn !== undefined && target.mountBlob && (await target.mountBlob(name, blob.digest, landedIn, signal))) {
        emit({ type: 'blob', state: 'mounted', name, ...base });
        skipped.blobs++;
        skipped.bytes += blob.size;
        continue;
      }
      emit({ type: 'blob', state: 'start', name, ...base });
      for (let attempt = 1; ; attempt++) {
        let sent = 0;
        let last = 0;
        const open = async () => {
          sent = 0;
          const raw: AsyncIterable<Buffer> =
            blob.data !== undefined ? once(blob.data) : blob.file !== undefined ? createReadStream(blob.file, { highWaterMark: 1024 * 1024 }) : ((await src.open(blob.member!)) as Readable);
          return verified(
            raw,
            blob,
            (n) => {
              sent += n;
              const now = Date.now();
              if (now - last >= interval || sent === blob.size) {
                last = now;
                emit({ type: 'progress', name, digest: blob.digest, bytes: sent, size: blob.size });
              }
            },
            signal,
          );
        };
        try {
          await target.putBlob(name, blob.digest, blob.size, open, signal);
          break;
        } catch (e) {
          if (signal.aborted || attempt >= attempts || !isTransient(e)) throw e;
          emit({ type: 'retry', name, digest: blob.digest, attempt, message: describeError(e) });
          await sleep(attempt * 1000, signal);
        }
      }
      emit({ type: 'blob', state: 'done', name, ...base });
      uploaded.blobs++;
      uploaded.bytes += blob.size;
      landedIn ??= name;
    }
  };

  try {
    // 1. blobs, `concurrency` at a time; the first failure stops the rest
    let next = 0;
    let failure: unknown;
    const worker = async () => {
      while (failure === undefined && next < blobs.length) {
        const blob = blobs[next++]!;
        try {
          await pushBlob(blob);
        } catch (e) {
          if (failure === undefined) {
            failure = wrap(e, target, `uploading ${blob.label}`);
            controller.abort();
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, blobs.length) }, worker));
    if (failure !== undefined) throw failure;
    checkAbort();

    // 2. manifests by digest, children first
    for (const t of targets) {
      for (const m of orders.get(`${t.name}\0${t.digest}`)!) {
        checkAbort();
        try {
          await target.putManifest(t.name, m.digest, m.bytes, m.mediaType, signal);
        } catch (e) {
          throw wrap(e, target, `putting manifest ${m.digest} to ${t.name}`);
        }
        emit({ type: 'manifest', name: t.name, digest: m.digest, mediaType: m.mediaType });
      }
    }

    // 3. tags, last
    for (const t of targets) {
      const root = content.manifests.get(t.digest)!;
      for (const tag of t.tags) {
        checkAbort();
        try {
          await target.putManifest(t.name, tag, root.bytes, root.mediaType, signal);
        } catch (e) {
          throw wrap(e, target, `tagging ${t.name}:${tag}`);
        }
        emit({ type: 'tag', name: t.name, tag, digest: t.digest });
      }
    }
  } finally {
    outer?.removeEventListener('abort', onOuterAbort);
  }
  const seconds = (Date.now() - started) / 1000;
  emit({ type: 'done', images: targets, uploaded, skipped, seconds });
  return { format: content.format, images: targets, uploaded, skipped, warnings: content.warnings };
}

/** Gives a registry's or the network's error the context of what was being done. */
function wrap(e: unknown, target: TargetRegistry, doing?: string): Error {
  if (e instanceof ImportError) return e;
  if (e instanceof RegistryError) return new ImportError('REGISTRY', `${doing ? `${doing}: ` : ''}${e.message} (${e.code})`, e.status);
  const err = e as NodeJS.ErrnoException;
  if (err?.code && /^E[A-Z]+$/.test(err.code)) {
    return new ImportError('REGISTRY', `${doing ? `${doing}: ` : ''}cannot reach ${target.location}: ${err.message}`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

export type { ArchiveContent, Destination, PushTarget };
