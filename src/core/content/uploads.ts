import { randomUUID, type Hash } from 'node:crypto';
import { RegistryError } from '../errors.ts';
import { type Algorithm, newHash, parseDigest } from './digest.ts';
import type { Images } from './images.ts';
import type { MetadataStore, UploadRecord } from '../../metadata/metadata-store.ts';
import { BlobNotFoundError, type BlobStore } from '../../storage/blob-store.ts';

/** An inclusive range of a chunk, from `Content-Range: start-end`. */
export interface ChunkRange {
  start: number;
  end: number;
}

export interface UploadStatus {
  id: string;
  /** Bytes received so far. */
  size: number;
}

interface HashState {
  hash: Hash;
  size: number;
}

/** Parses the OCI chunk `Content-Range` (`start-end`, also `bytes start-end/total`). */
export function parseContentRange(header: string): ChunkRange {
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
  if (!m) throw new RegistryError('BLOB_UPLOAD_INVALID', `invalid Content-Range "${header.slice(0, 64)}"; expected <start>-<end>`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) {
    throw new RegistryError('RANGE_INVALID', `invalid Content-Range "${header.slice(0, 64)}"`, { status: 416 });
  }
  return { start, end };
}

/** Caps on open upload sessions (config `uploads.*`). */
export interface UploadLimits {
  maxSessionsPerUser: number;
  maxSessionsPerRepository: number;
}

/**
 * Upload sessions (POST, PATCH, PUT, GET, DELETE of /blobs/uploads). The session row lives in
 * the metadata store and its bytes in the blob store, so any process can continue it. The
 * running SHA-256 is kept in memory as a cache only: when missing (restart, another node) it is
 * recomputed from the stored bytes.
 */
export class Uploads {
  private readonly hashes = new Map<string, HashState>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly commits = new Map<string, Promise<void>>();
  /** Upload data this process is writing without a session row (monolithic uploads, starts). */
  private readonly active = new Set<string>();
  /**
   * Upload data without a session seen by the previous sweep. Another node may be writing it
   * (a monolithic upload has no session row), so it is removed only if still there a sweep later.
   */
  private orphanCandidates = new Set<string>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
    private readonly images: Images,
    private readonly limits: UploadLimits = { maxSessionsPerUser: 200, maxSessionsPerRepository: 500 },
  ) {}

  /**
   * Opens a session for image `name` (created on first push). `startedBy` names the caller for
   * the per-user cap. Over a cap: TOOMANYREQUESTS, and nothing is created.
   */
  async start(name: string, startedBy?: string): Promise<UploadStatus> {
    const img = await this.images.ensure(name);
    if (startedBy !== undefined && (await this.meta.countUploads({ startedBy })) >= this.limits.maxSessionsPerUser) {
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `you have ${this.limits.maxSessionsPerUser} upload sessions open, the most allowed: finish or cancel (DELETE) one, or wait for idle ones to expire`,
      );
    }
    if ((await this.meta.countUploads({ repositoryId: img.repositoryId })) >= this.limits.maxSessionsPerRepository) {
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `this repository has ${this.limits.maxSessionsPerRepository} upload sessions open, the most allowed: finish or cancel some, or wait for idle ones to expire`,
      );
    }
    const id = randomUUID();
    this.active.add(id);
    try {
      await this.store.createUpload(id);
      await this.meta.saveUpload({ id, imageId: img.id, startedAt: Date.now(), ...(startedBy !== undefined ? { startedBy } : {}) });
    } catch (e) {
      await this.store.removeUpload(id).catch(() => undefined);
      throw e;
    } finally {
      this.active.delete(id);
    }
    this.hashes.set(id, { hash: newHash(), size: 0 });
    return { id, size: 0 };
  }

  /**
   * Monolithic upload: the whole blob in one request, verified against `digest`, durable
   * before this resolves. The temporary data never has a session row: it is either
   * committed or removed here.
   */
  async putMonolithic(name: string, digest: string, body: AsyncIterable<Buffer>, contentLength?: number, opts: { cached?: boolean } = {}): Promise<string> {
    const d = parseDigest(digest);
    const img = await this.images.ensure(name);
    const id = randomUUID();
    this.active.add(id);
    await this.store.createUpload(id);
    try {
      const hash = newHash(d.algorithm);
      const size = await this.store.appendUpload(id, 0, hashing(body, hash, contentLength));
      const actual = `${d.algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) throw digestMismatch(digest, actual);
      await this.commit(id, digest, size, img.id, opts.cached);
      return digest;
    } finally {
      this.active.delete(id);
      await this.store.removeUpload(id);
    }
  }

  /** The session's progress; BLOB_UPLOAD_UNKNOWN if it does not exist in this image. */
  async status(name: string, id: string): Promise<UploadStatus> {
    await this.find(name, id);
    const size = await this.store.uploadSize(id);
    if (size === undefined) throw uploadUnknown(id);
    return { id, size };
  }

  /**
   * Appends a chunk. With `range`, its start must equal the bytes received so far (else 416)
   * and its length must match the body (else SIZE_INVALID, and the chunk is discarded).
   */
  async append(name: string, id: string, body: AsyncIterable<Buffer>, range?: ChunkRange, contentLength?: number): Promise<UploadStatus> {
    const upload = await this.find(name, id);
    return this.locked(id, async () => {
      const size = await this.currentSize(id);
      if (range && range.start !== size) {
        throw new RegistryError('RANGE_INVALID', `chunk starts at ${range.start} but the upload holds ${size} bytes`, {
          status: 416,
          headers: rangeHeaders(upload, size),
        });
      }
      const expected = range ? range.end - range.start + 1 : contentLength;
      return { id, size: await this.appendChunk(id, size, body, expected) };
    });
  }

  /**
   * Completes the session: appends the optional final chunk, verifies `digest` over all bytes,
   * makes the blob durable and links it to the image. Returns the digest.
   */
  async complete(
    name: string,
    id: string,
    digest: string,
    body: AsyncIterable<Buffer> | undefined,
    range?: ChunkRange,
    contentLength?: number,
  ): Promise<string> {
    const d = parseDigest(digest);
    const upload = await this.find(name, id);
    return this.locked(id, async () => {
      let size = await this.currentSize(id);
      if (body) {
        if (range && range.start !== size) {
          throw new RegistryError('RANGE_INVALID', `chunk starts at ${range.start} but the upload holds ${size} bytes`, {
            status: 416,
            headers: rangeHeaders(upload, size),
          });
        }
        const expected = range ? range.end - range.start + 1 : contentLength;
        size = await this.appendChunk(id, size, body, expected);
      }
      const actual = await this.finalDigest(id, size, d.algorithm);
      if (actual !== digest) throw digestMismatch(digest, actual);
      await this.commit(id, digest, size, upload.imageId);
      await this.meta.removeUpload(id);
      this.hashes.delete(id);
      return digest;
    });
  }

  /** Cancels the session and removes its data. */
  async cancel(name: string, id: string): Promise<void> {
    await this.find(name, id);
    await this.locked(id, async () => {
      await this.meta.removeUpload(id);
      await this.store.removeUpload(id);
      this.hashes.delete(id);
    });
  }

  /**
   * Removes sessions started before `before`, and upload data that has no session, is not
   * being written by this process and was already without a session at the previous call
   * (left by a crash during a monolithic upload; with several processes or nodes, data another
   * one is writing right now has no session either). Returns how many were removed.
   */
  async expire(before: number): Promise<number> {
    const stale = await this.meta.listUploadsStartedBefore(before);
    for (const u of stale) {
      await this.meta.removeUpload(u.id);
      await this.store.removeUpload(u.id);
      this.hashes.delete(u.id);
    }
    let orphans = 0;
    const seen = new Set<string>();
    for (const id of await this.store.listUploads()) {
      if (this.active.has(id) || (await this.meta.findUpload(id))) continue;
      if (!this.orphanCandidates.has(id)) {
        seen.add(id);
        continue;
      }
      await this.store.removeUpload(id);
      orphans++;
    }
    this.orphanCandidates = seen;
    return stale.length + orphans;
  }

  private async find(name: string, id: string): Promise<UploadRecord> {
    const img = await this.images.find(name).catch((e: unknown) => {
      if (e instanceof RegistryError && e.code === 'NAME_UNKNOWN') throw uploadUnknown(id);
      throw e;
    });
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw uploadUnknown(id);
    const upload = await this.meta.findUpload(id);
    if (!upload || upload.imageId !== img.id) throw uploadUnknown(id);
    return upload;
  }

  private async currentSize(id: string): Promise<number> {
    const size = await this.store.uploadSize(id);
    if (size === undefined) throw uploadUnknown(id);
    return size;
  }

  private async appendChunk(id: string, size: number, body: AsyncIterable<Buffer>, expected: number | undefined): Promise<number> {
    // The running hash continues only if this process saw every byte so far; otherwise the
    // digest is recomputed from the stored bytes at completion.
    const cached = this.hashes.get(id);
    const state = cached && cached.size === size ? cached : undefined;
    if (!state) this.hashes.delete(id);
    try {
      const newSize = await this.store.appendUpload(id, size, hashing(body, state?.hash, expected));
      if (state) state.size = newSize;
      return newSize;
    } catch (e) {
      // The store rolled the bytes back, but the hash has seen them: drop it.
      this.hashes.delete(id);
      if (e instanceof BlobNotFoundError) throw uploadUnknown(id);
      throw e;
    }
  }

  private async finalDigest(id: string, size: number, algorithm: Algorithm): Promise<string> {
    const cached = this.hashes.get(id);
    if (algorithm === 'sha256' && cached && cached.size === size) {
      return `sha256:${cached.hash.copy().digest('hex')}`;
    }
    try {
      await this.store.sealUpload(id);
    } catch (e) {
      if (e instanceof BlobNotFoundError) throw uploadUnknown(id);
      throw e;
    }
    return `${algorithm}:${(await this.rehash(id, algorithm)).digest('hex')}`;
  }

  private async rehash(id: string, algorithm: Algorithm): Promise<Hash> {
    const hash = newHash(algorithm);
    let stream;
    try {
      stream = await this.store.readUpload(id);
    } catch (e) {
      if (e instanceof BlobNotFoundError) throw uploadUnknown(id);
      throw e;
    }
    for await (const chunk of stream) hash.update(chunk as Buffer);
    return hash;
  }

  private async commit(id: string, digest: string, size: number, imageId: number, cached?: boolean): Promise<void> {
    // One commit per digest at a time in this process: the others find it stored.
    const running = this.commits.get(digest);
    if (running) await running.catch(() => undefined);
    const attempt = this.storeOnce(id, digest, size, imageId, cached);
    this.commits.set(digest, attempt);
    try {
      await attempt;
    } finally {
      if (this.commits.get(digest) === attempt) this.commits.delete(digest);
    }
  }

  /**
   * Stores the upload's bytes as the blob and records it. When the digest is live and its bytes
   * are there, the upload is dropped (dedupe) once the link is committed. When garbage collection
   * is deleting the digest, the bytes go to the next generation, which the sweep never touches
   * (docs/lifecycle.md): a re-upload of a digest being collected keeps its new bytes.
   */
  private async storeOnce(id: string, digest: string, size: number, imageId: number, cached?: boolean): Promise<void> {
    const opts = cached ? { cached: true } : {};
    const row = await this.meta.findBlobState(digest);
    if (row?.state === 'live' && (await this.store.stat(digest, row.generation))) {
      if (await this.meta.linkBlob(imageId, digest, row.generation, opts)) {
        await this.store.removeUpload(id); // already stored once: dedupe
        return;
      }
      // Collected between our look and our link: store our bytes as the next generation.
    }
    const now = await this.meta.findBlobState(digest);
    const generation = !now ? 0 : now.state === 'live' ? now.generation : now.generation + 1;
    await this.commitBytes(id, digest, generation);
    const saved = await this.meta.saveBlob(imageId, digest, size, { ...opts, generation });
    if (saved.ok && saved.generation !== generation) await this.store.delete(digest, generation); // another writer's copy won
    if (!saved.ok) {
      // Collected again while we stored (a zero grace period): our bytes are in the doomed generation.
      throw new RegistryError('BLOB_UPLOAD_INVALID', `blob ${digest} was garbage-collected while it was stored: upload it again`, { detail: { digest } });
    }
  }

  private async commitBytes(id: string, digest: string, generation: number): Promise<void> {
    try {
      await this.store.commitUpload(id, digest, generation);
    } catch (e) {
      // A concurrent writer of the same digest on another node may have won the race:
      // content-addressed, so its blob is ours.
      for (let i = 0; i < 3; i++) {
        await new Promise((r) => setTimeout(r, 50 * (i + 1)));
        if (await this.store.stat(digest, generation)) {
          await this.store.removeUpload(id);
          return;
        }
      }
      throw e;
    }
  }

  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }
}

/** Feeds each chunk to `hash` (if any) on its way to storage; enforces an expected length. */
async function* hashing(source: AsyncIterable<Buffer>, hash: Hash | undefined, expected: number | undefined): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const chunk of source) {
    n += chunk.length;
    if (expected !== undefined && n > expected) {
      throw new RegistryError('SIZE_INVALID', `received more than the declared ${expected} bytes`);
    }
    hash?.update(chunk);
    yield chunk;
  }
  if (expected !== undefined && n !== expected) {
    throw new RegistryError('SIZE_INVALID', `received ${n} bytes but ${expected} were declared`);
  }
}

function rangeHeaders(upload: UploadRecord, size: number): Record<string, string> {
  return { Range: `0-${Math.max(size - 1, 0)}`, 'Docker-Upload-UUID': upload.id };
}

function uploadUnknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', `blob upload unknown: ${id.slice(0, 64)}`);
}

function digestMismatch(expected: string, actual: string): RegistryError {
  return new RegistryError('DIGEST_INVALID', `provided digest ${expected} does not match the uploaded content (${actual})`, {
    detail: { expected, actual },
  });
}
