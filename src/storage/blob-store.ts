import type { Readable } from 'node:stream';

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Content-addressed bytes, and the temporary data of upload sessions. Knows nothing of OCI
 * names, manifests or access: `core` decides what a digest means and who may read it.
 *
 * Contract (checked by test/suites/storage-suite.ts against every driver):
 * - Blobs are immutable and keyed by digest (`alg:hex`); `commitUpload` of a digest that is
 *   already stored succeeds and drops the upload's data (idempotent, dedupe).
 * - When `commitUpload` resolves, the blob is durable (survives a crash or power loss) and
 *   complete; before it resolves, nothing is visible under the digest.
 * - `appendUpload` is all-or-nothing: when the source fails, the upload is left at its size
 *   before the call.
 * - A blob may be stored in several generations (default 0), each an object of its own: the
 *   metadata store says which one is live. Garbage collection deletes exactly the generation
 *   it decided on, so a re-upload of a digest being collected (stored as the next generation)
 *   never loses its bytes (docs/lifecycle.md).
 * - Methods reject with `BlobNotFoundError` for a missing blob or upload.
 */
export interface BlobStore {
  /** Size of a stored blob, or undefined when absent. */
  stat(digest: string, generation?: number): Promise<{ size: number } | undefined>;
  /** A stream of the blob's bytes, or of the inclusive range. */
  read(digest: string, range?: ByteRange, generation?: number): Promise<Readable>;
  /**
   * Positional reads of a stored blob into the caller's buffers, where the driver can (fs): a
   * download then copies through a fixed pair of buffers instead of allocating every chunk.
   */
  openReader?(digest: string, generation?: number): Promise<BlobReader>;
  /** Removes a blob (of that generation only); resolves also when it was absent. */
  delete(digest: string, generation?: number): Promise<void>;
  /**
   * Removes many blob generations, in as few requests as the backend allows (S3: DeleteObjects,
   * 1000 keys a call); absent ones are fine. Rejects when any could not be removed.
   */
  deleteBlobs(items: BlobRef[]): Promise<void>;
  /**
   * Every blob object stored, every generation, in ascending order of shard — `<alg>/<xx>`,
   * the algorithm and the first two hex characters — so the storage reconciler can compare one
   * shard at a time with the metadata and keep its memory bounded. Streamed (S3: one listing of
   * 1000 keys a request).
   */
  listBlobs(): AsyncIterable<StoredBlob>;
  /**
   * Multipart uploads the backend still holds for upload sessions (S3: their parts are invisible
   * to listings and cost storage until aborted), with the session id they belong to. For the
   * reconciler; drivers without such state (fs) leave it out.
   */
  listPendingMultiparts?(): AsyncIterable<PendingMultipart>;
  /** Aborts one (idempotent). */
  abortPendingMultipart?(m: PendingMultipart): Promise<void>;

  /** Creates empty temporary data for a new upload session. */
  createUpload(id: string): Promise<void>;
  /** Current size of an upload's data, or undefined when the upload does not exist. */
  uploadSize(id: string): Promise<number | undefined>;
  /**
   * Appends every chunk of `source` to the upload, which must currently hold exactly `offset`
   * bytes. Resolves with the new size. On failure the upload is truncated back to `offset`;
   * fs: when the disk reported a write error that may concern earlier appends too (a failed
   * sync), the upload's data is removed instead (then BlobNotFoundError, as for a missing upload).
   */
  appendUpload(id: string, offset: number, source: AsyncIterable<Buffer>): Promise<number>;
  /**
   * Ends appends to an upload and makes its data readable with `readUpload` (S3: completes
   * the multipart upload). Idempotent; fs: nothing to do.
   */
  sealUpload(id: string): Promise<void>;
  /** Streams the upload's data (after `sealUpload`; fs: any time). Used to recompute a hash. */
  readUpload(id: string): Promise<Readable>;
  /** Makes the upload's data durable as blob `digest` (of `generation`) and removes the upload. */
  commitUpload(id: string, digest: string, generation?: number): Promise<void>;
  /** Removes an upload's data; resolves also when it was absent. */
  removeUpload(id: string): Promise<void>;
  /** Upload ids with data in the store (for cleaning up expired sessions). */
  listUploads(): Promise<string[]>;
  /** A time-limited URL a client may fetch the blob from directly, when the driver offers one. */
  presignedUrl?(digest: string, expiresInSeconds: number, generation?: number): Promise<string>;
}

/** An open blob for positional reads (see `BlobStore.openReader`). */
export interface BlobReader {
  /** Reads up to `into.length` bytes at `position` into `into`; resolves with the count (0: the end). */
  read(into: Buffer, position: number): Promise<number>;
  /** Releases the blob; call it once, after the last read settled. */
  close(): Promise<void>;
}

/** One stored generation of a blob. */
export interface BlobRef {
  digest: string;
  generation: number;
}

export interface StoredBlob extends BlobRef {
  size: number;
  /** Last modification (ms): when the object was written. */
  modifiedAt: number;
}

/** A multipart upload in progress at the backend. */
export interface PendingMultipart {
  /** The upload session it belongs to. */
  uploadId: string;
  key: string;
  multipartId: string;
  startedAt: number;
}

/** The shards of a walk over the store: `00` … `ff`. */
export const BLOB_SHARDS: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Parses an object name under `<alg>/<xx>/` (`<hex>` or `<hex>.<n>`); undefined for anything else. */
export function parseBlobObjectName(alg: string, shard: string, name: string): BlobRef | undefined {
  const m = /^([a-f0-9]{2,})(?:\.([1-9][0-9]{0,8}))?$/.exec(name);
  if (!/^[a-z0-9]+$/.test(alg) || !m || !m[1]!.startsWith(shard)) return undefined;
  return { digest: `${alg}:${m[1]}`, generation: m[2] ? Number(m[2]) : 0 };
}

/** The shard of a digest: `<alg>/<xx>`. */
export function shardOf(digest: string): string {
  const i = digest.indexOf(':');
  return `${digest.slice(0, i)}/${digest.slice(i + 1, i + 3)}`;
}

export class BlobNotFoundError extends Error {
  constructor(what: string) {
    super(`${what} not found`);
    this.name = 'BlobNotFoundError';
  }
}

/** The object name of a blob generation under `<alg>/<xx>/`: the hex, then `.<n>` past generation 0. */
export function blobObjectName(hex: string, generation = 0): string {
  if (!Number.isSafeInteger(generation) || generation < 0) throw new Error(`bad blob generation for storage: ${generation}`);
  return generation === 0 ? hex : `${hex}.${generation}`;
}
