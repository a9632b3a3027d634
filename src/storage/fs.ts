import * as fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BlobNotFoundError, type BlobReader, type BlobRef, type BlobStore, type ByteRange, type StoredBlob, blobObjectName, parseBlobObjectName } from './blob-store.ts';

const HIGH_WATER_MARK = 1024 * 1024;
/**
 * Read streams of committed blobs (HTTP/2 downloads, and readers inside Berth: SBOM scans,
 * signing, manifest checks; HTTP/1.x downloads use `openReader`, see http/.../blob-body.ts).
 * 4 MiB chunks cost about 15–20 % less CPU per GiB than 1 MiB, but every concurrent reader
 * then holds (and leaves to the GC) four times the buffers: the 1 GiB skopeo test's server
 * peaked at 240 MiB instead of 175 MiB. A range reads no more than its length.
 */
const READ_HIGH_WATER_MARK = 1024 * 1024;
/**
 * An upload's body is written in batches of this many bytes (one `pwritev` of the socket's
 * 64 KiB reads), one batch in flight while the next gathers: at most two per upload in memory.
 */
const WRITE_BATCH = 1024 * 1024;
/**
 * Write-behind: while a body streams in, an `fdatasync` starts whenever this many bytes were
 * written since the last one began (one at a time), so the disk flushes while the network
 * receives and the commit's fsync finds little left (before: the whole blob, ≈ 0.85 s per
 * 256 MiB on a 300 MiB/s disk, after the last byte). Every sync started is awaited before the
 * append returns and its error fails the append: Linux reports a writeback error to the files
 * open when it happened, not to one opened after it was seen, so the commit's fsync would miss
 * an error seen here.
 */
const SYNC_EVERY = 8 * 1024 * 1024;

/**
 * The filesystem driver. Layout under `root`:
 *
 *   root/
 *     blobs/<alg>/<first two hex>/<hex>     committed blobs, immutable
 *     blobs/<alg>/<first two hex>/<hex>.<n> generation n of a blob stored again while being collected
 *     uploads/<upload id>                    data of an open upload session
 *
 * Commit = fsync the upload file, rename it into place (atomic on one filesystem), fsync the
 * directory. A crash leaves either the upload file or the complete blob, never a partial blob.
 */
export class FsBlobStore implements BlobStore {
  private readonly blobsDir: string;
  private readonly uploadsDir: string;
  private readonly knownDirs = new Set<string>();

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs');
    this.uploadsDir = path.join(root, 'uploads');
  }

  async init(): Promise<void> {
    // Owner-only: blobs of private repositories are as private as the registry (docs/security.md).
    await fsp.mkdir(this.blobsDir, { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.uploadsDir, { recursive: true, mode: 0o700 });
  }

  private blobPath(digest: string, generation?: number): string {
    const i = digest.indexOf(':');
    const alg = digest.slice(0, i);
    const hex = digest.slice(i + 1);
    if (i <= 0 || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]{2,}$/.test(hex)) throw new Error(`bad digest for storage: ${digest}`);
    return path.join(this.blobsDir, alg, hex.slice(0, 2), blobObjectName(hex, generation));
  }

  private uploadPath(id: string): string {
    if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new Error(`bad upload id for storage: ${id}`);
    return path.join(this.uploadsDir, id);
  }

  async stat(digest: string, generation?: number): Promise<{ size: number } | undefined> {
    try {
      const st = await fsp.stat(this.blobPath(digest, generation));
      return { size: st.size };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async read(digest: string, range?: ByteRange, generation?: number): Promise<Readable> {
    return openRead(this.blobPath(digest, generation), `blob ${digest}`, range, READ_HIGH_WATER_MARK);
  }

  async openReader(digest: string, generation?: number): Promise<BlobReader> {
    const fh = await openFile(this.blobPath(digest, generation), `blob ${digest}`);
    return {
      read: async (into, position) => (await fh.read(into, 0, into.length, position)).bytesRead,
      close: () => fh.close(),
    };
  }

  async delete(digest: string, generation?: number): Promise<void> {
    await fsp.rm(this.blobPath(digest, generation), { force: true });
  }

  async deleteBlobs(items: BlobRef[]): Promise<void> {
    for (const b of items) await this.delete(b.digest, b.generation);
  }

  async *listBlobs(): AsyncIterable<StoredBlob> {
    for (const alg of await readdirSorted(this.blobsDir)) {
      for (const shard of await readdirSorted(path.join(this.blobsDir, alg))) {
        const dir = path.join(this.blobsDir, alg, shard);
        for (const name of await readdirSorted(dir)) {
          const ref = parseBlobObjectName(alg, shard, name);
          if (!ref) continue;
          const st = await fsp.stat(path.join(dir, name)).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
          if (st?.isFile()) yield { ...ref, size: st.size, modifiedAt: st.mtimeMs };
        }
      }
    }
  }

  async createUpload(id: string): Promise<void> {
    const fh = await fsp.open(this.uploadPath(id), 'wx', 0o600);
    await fh.close();
  }

  async uploadSize(id: string): Promise<number | undefined> {
    try {
      return (await fsp.stat(this.uploadPath(id))).size;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async appendUpload(id: string, offset: number, source: AsyncIterable<Buffer>): Promise<number> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.uploadPath(id), 'r+');
    } catch (e) {
      if (isNotFound(e)) throw new BlobNotFoundError(`upload ${id}`);
      throw e;
    }
    try {
      const { size } = await fh.stat();
      if (size !== offset) throw new Error(`upload ${id} holds ${size} bytes, expected ${offset}`);
      try {
        return await writeBehind(fh, offset, source);
      } catch (e) {
        // A failed sync flushed the whole file, earlier appends' bytes too, and its error will
        // not be reported again on this file (not to the commit's fsync either): those bytes
        // are suspect as well, so the upload's data goes and the session must start over.
        if (offset > 0 && syncErrors.has(e as object)) await fsp.rm(this.uploadPath(id), { force: true }).catch(() => undefined);
        else await fh.truncate(offset).catch(() => undefined);
        throw e;
      }
    } finally {
      await fh.close();
    }
  }

  async sealUpload(id: string): Promise<void> {
    if ((await this.uploadSize(id)) === undefined) throw new BlobNotFoundError(`upload ${id}`);
  }

  async readUpload(id: string): Promise<Readable> {
    return openRead(this.uploadPath(id), `upload ${id}`);
  }

  async commitUpload(id: string, digest: string, generation?: number): Promise<void> {
    const src = this.uploadPath(id);
    const dst = this.blobPath(digest, generation);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(src, 'r');
    } catch (e) {
      if (isNotFound(e)) throw new BlobNotFoundError(`upload ${id}`);
      throw e;
    }
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const dir = path.dirname(dst);
    await this.ensureDir(dir);
    // rename over an existing identical blob is harmless: same digest, same bytes.
    try {
      await fsp.rename(src, dst);
    } catch (e) {
      // The shard folder was removed behind this process's back (an operator's clean-up, a
      // restore without empty folders): made again once, instead of failing every upload to it.
      if (!isNotFound(e) || !this.knownDirs.delete(dir)) throw e;
      await this.ensureDir(dir);
      await fsp.rename(src, dst);
    }
    await fsyncDir(dir);
  }

  /** A blob shard folder, made (and its parent synced) the first time this process uses it. */
  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    await fsyncDir(path.dirname(dir));
    this.knownDirs.add(dir);
  }

  async removeUpload(id: string): Promise<void> {
    await fsp.rm(this.uploadPath(id), { force: true });
  }

  async listUploads(): Promise<string[]> {
    try {
      return await fsp.readdir(this.uploadsDir);
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }
}

async function openFile(file: string, what: string): Promise<fsp.FileHandle> {
  try {
    return await fsp.open(file, 'r');
  } catch (e) {
    if (isNotFound(e)) throw new BlobNotFoundError(what);
    throw e;
  }
}

async function openRead(file: string, what: string, range?: ByteRange, highWaterMark = HIGH_WATER_MARK): Promise<Readable> {
  const fh = await openFile(file, what);
  return fh.createReadStream({
    start: range?.start,
    end: range?.end,
    highWaterMark,
  }) as unknown as Readable;
}

/** Errors of write-behind syncs (see appendUpload). */
const syncErrors = new WeakSet<object>();

/**
 * Writes every chunk of `source` from `position` on, in batches of WRITE_BATCH with one write in
 * flight (the source is not read while a batch waits: backpressure reaches the client), and
 * syncs behind the writes (SYNC_EVERY). Resolves with the end position once every write and
 * sync it started has completed; on any failure, also only after they settled (the caller
 * truncates).
 */
async function writeBehind(fh: fsp.FileHandle, position: number, source: AsyncIterable<Buffer>): Promise<number> {
  let pos = position;
  let batch: Buffer[] = [];
  let batched = 0;
  let writing: Promise<void> = Promise.resolve();
  let syncing: Promise<void> = Promise.resolve();
  let syncBusy = false;
  let syncedFrom = position;
  const write = async (): Promise<void> => {
    await writing;
    // everything before `pos` is written: sync it behind our back if the last sync is done
    if (!syncBusy && pos - syncedFrom >= SYNC_EVERY) {
      await syncing; // settled: a failed sync fails the append (a later one on this file would not report its error)
      syncBusy = true;
      syncedFrom = pos;
      syncing = fh.datasync().then(
        () => void (syncBusy = false),
        (e: unknown) => {
          syncBusy = false;
          if (typeof e === 'object' && e !== null) syncErrors.add(e);
          throw e;
        },
      );
      syncing.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    }
    writing = writeAll(fh, batch, batched, pos);
    writing.catch(() => undefined);
    pos += batched;
    batch = [];
    batched = 0;
  };
  try {
    for await (const chunk of source) {
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= WRITE_BATCH) await write();
    }
    if (batched > 0) await write();
    await writing;
    await syncing;
    return pos;
  } finally {
    await writing.catch(() => undefined);
    await syncing.catch(() => undefined);
  }
}

/** One `pwritev` of `buffers` (`length` bytes) at `position` (libuv repeats short writes itself). */
async function writeAll(fh: fsp.FileHandle, buffers: Buffer[], length: number, position: number): Promise<void> {
  const { bytesWritten } = await fh.writev(buffers, position);
  if (bytesWritten !== length) throw new Error(`short write: ${bytesWritten} of ${length} bytes`);
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A folder's entries in code-point order (as S3 lists keys); none when it does not exist. */
async function readdirSorted(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir)).sort();
  } catch (e) {
    if (isNotFound(e) || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}

function isNotFound(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === 'ENOENT';
}

