import type { Readable } from 'node:stream';
import { RegistryError } from '../errors.ts';
import { parseDigest } from './digest.ts';
import type { Images } from './images.ts';
import type { MetadataStore } from '../../metadata/metadata-store.ts';
import { BlobNotFoundError, type BlobReader, type BlobStore, type ByteRange } from '../../storage/blob-store.ts';

/** How often a blob's last use is written per process (postpones its garbage collection). */
const TOUCH_EVERY_MS = 60_000;

export interface BlobInfo {
  digest: string;
  size: number;
  /** The stored generation of a blob (not set for a manifest). */
  generation?: number;
  /** Set when the digest names a manifest of the image rather than a blob. */
  manifest?: { payload: Buffer; mediaType: string };
}

/** Reading and deleting blobs of an image. A blob is served only where it is linked. */
export class Blobs {
  private readonly touched = new Map<string, number>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly store: BlobStore,
    private readonly images: Images,
    /** When set and the store can presign, blob GETs may be redirected for this long. */
    private readonly redirectSeconds?: number,
  ) {}

  /** A URL the client may fetch the blob from directly, when redirects are configured. */
  async directUrl(digest: string, generation?: number): Promise<string | undefined> {
    if (!this.redirectSeconds || !this.store.presignedUrl) return undefined;
    return this.store.presignedUrl(digest, this.redirectSeconds, generation);
  }

  /** The blob (or manifest) `digest` as linked to image `name`, or BLOB_UNKNOWN. */
  async stat(name: string, digest: string): Promise<BlobInfo> {
    parseDigest(digest);
    const img = await this.images.find(name);
    const blob = await this.meta.findImageBlob(img.id, digest);
    if (blob) {
      this.touch(digest);
      return blob;
    }
    const m = await this.meta.findManifest(img.id, digest);
    if (m) return { digest, size: m.size, manifest: { payload: m.payload, mediaType: m.mediaType } };
    throw new RegistryError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, { detail: { digest } });
  }

  /**
   * A HEAD or GET postpones the blob's collection (a client that saw it may name it in a
   * manifest next): its last use is written at most once a minute per digest per process.
   */
  private touch(digest: string): void {
    const now = Date.now();
    if ((this.touched.get(digest) ?? 0) > now - TOUCH_EVERY_MS) return;
    if (this.touched.size >= 10_000) this.touched.clear();
    this.touched.set(digest, now);
    void this.meta.touchBlob(digest, now).catch(() => this.touched.delete(digest));
  }

  /** Opens a stored blob's bytes (the live generation unless given); BLOB_UNKNOWN if the store lost them. */
  async open(digest: string, range?: ByteRange, generation?: number): Promise<Readable> {
    try {
      const gen = generation ?? (await this.meta.findBlob(digest))?.generation ?? 0;
      return await this.store.read(digest, range, gen);
    } catch (e) {
      if (e instanceof BlobNotFoundError) {
        throw new RegistryError('BLOB_UNKNOWN', `blob data missing from storage: ${digest}`, { detail: { digest } });
      }
      throw e;
    }
  }

  /**
   * A stored blob open for positional reads when the store offers them (fs), else undefined
   * (use `open`); BLOB_UNKNOWN if the store lost the bytes.
   */
  async reader(digest: string, generation?: number): Promise<BlobReader | undefined> {
    if (!this.store.openReader) return undefined;
    try {
      const gen = generation ?? (await this.meta.findBlob(digest))?.generation ?? 0;
      return await this.store.openReader(digest, gen);
    } catch (e) {
      if (e instanceof BlobNotFoundError) {
        throw new RegistryError('BLOB_UNKNOWN', `blob data missing from storage: ${digest}`, { detail: { digest } });
      }
      throw e;
    }
  }

  /** Unlinks the blob from the image; the bytes go when garbage collection finds them unused. */
  async delete(name: string, digest: string): Promise<void> {
    parseDigest(digest);
    const img = await this.images.find(name);
    if (!(await this.meta.removeImageBlob(img.id, digest))) {
      throw new RegistryError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, { detail: { digest } });
    }
  }

  /**
   * Cross-repository mount: links `digest` into `name` if `from` has it. Returns false (the
   * caller then opens an ordinary upload) when `from` is unknown or lacks the blob.
   */
  async mount(name: string, digest: string, from: string): Promise<boolean> {
    parseDigest(digest);
    let source;
    try {
      source = await this.images.find(from);
    } catch (e) {
      if (e instanceof RegistryError && (e.code === 'NAME_UNKNOWN' || e.code === 'NAME_INVALID')) return false;
      throw e;
    }
    const blob = await this.meta.findImageBlob(source.id, digest);
    if (!blob || !(await this.store.stat(digest, blob.generation))) return false;
    const target = await this.images.ensure(name);
    // False when garbage collection took it meanwhile: the client then uploads it.
    return this.meta.linkBlob(target.id, digest, blob.generation);
  }
}
