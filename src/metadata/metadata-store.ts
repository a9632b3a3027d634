import type { BlobState } from './gc-store.ts';
import type { UsageScope } from './lifecycle-store.ts';
import type { NewJob } from './job-store.ts';

/** A parsed wire name `OWNER/REPOSITORY/IMAGE[/MORE]`; core/content/names.ts parses and validates it. */
export interface ImageName {
  /** The full OCI name: `owner/repository/image[/more]`. */
  readonly full: string;
  readonly owner: string;
  readonly repository: string;
  /** The image part, which may contain `/`. */
  readonly image: string;
}

export interface ImageRecord {
  id: number;
  name: string;
  repositoryId: number;
}

export interface BlobRecord {
  digest: string;
  size: number;
  /** Which stored object holds the bytes (BlobStore generations; 0 unless re-uploaded while collected). */
  generation: number;
}

/** What saveBlob made of a blob stored under `generation`. */
export type SaveBlobResult =
  /** Live and linked; `generation` is the live one (another writer's, when it won the race). */
  | { ok: true; generation: number }
  /** The digest is being collected under this or a later generation: store it again, past `generation`. */
  | { ok: false; generation: number };

export interface UploadRecord {
  id: string;
  imageId: number;
  startedAt: number;
  /** Who opened it (`user:<id>`, `token:<id>`, `ip:<address>`), for per-user caps. */
  startedBy?: string | null;
}

export interface ManifestRecord {
  id: number;
  imageId: number;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  subjectDigest: string | null;
  size: number;
  payload: Buffer;
  annotations: Record<string, string> | null;
  createdAt: number;
  /** Stored by the pull-through cache (docs/proxy.md). */
  cached?: boolean;
}

export interface ReferrerRecord {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  annotations: Record<string, string> | null;
}

export type RefKind = 'config' | 'layer' | 'manifest' | 'subject';

export interface SaveManifestInput {
  imageId: number;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  subjectDigest: string | null;
  configDigest: string | null;
  payload: Buffer;
  annotations: Record<string, string> | null;
  refs: { digest: string; kind: RefKind }[];
  /** Blobs that must be linked to the image, with the size each descriptor claims. */
  requireBlobs: { digest: string; size: number }[];
  /** Manifests that must exist in the image, with the size each descriptor claims. */
  requireManifests: { digest: string; size: number }[];
  /** Tag to point at the manifest, if pushed by tag. */
  tag: string | null;
  /** Fetched from an upstream by the pull-through cache (docs/proxy.md). */
  cached?: boolean;
  /** The tag is immutable: refused (nothing written) when it exists on another manifest. */
  immutableTag?: boolean;
  /**
   * Compare-and-swap on `tag`: refused (nothing written, `tagMoved`) unless the tag points at
   * this digest — or, for null, does not exist — when the transaction reads it (under the
   * per-(image, tag) lock a push takes), so a read-modify-write of a tag loses no other write.
   */
  expectTagDigest?: string | null;
  /** Quotas to check inside the transaction: refused when the new blobs would exceed one. */
  quotas?: { scope: UsageScope; limit: number; label: string }[];
  /** Work the new manifest causes (SBOM generation, signing on push), enqueued in the same transaction. */
  jobs?: NewJob[];
}

/** A manifest the pull-through cache stored, with the tags pointing at it. */
export interface CachedManifestRecord {
  image: string;
  digest: string;
  mediaType: string;
  size: number;
  tags: string[];
  createdAt: number;
}

export type SaveManifestResult =
  /** `previousTagDigest`: what the tag pointed at before, when it existed. */
  | { ok: true; previousTagDigest?: string }
  | {
      ok: false;
      missing: string[];
      sizeMismatch: { digest: string; expected: number; actual: number }[];
      /** Refused by policy (immutable tag, quota): the message for DENIED. */
      denied?: string;
      /** `expectTagDigest` did not hold: the tag's digest now (null: no such tag). */
      tagMoved?: string | null;
    };

export interface TagEntry {
  name: string;
  digest: string;
  updatedAt: number;
}

export interface Page {
  limit: number;
  after?: string;
}

/**
 * Everything but blob bytes, in SQL (DESIGN.md §3). Rows, not OCI meaning: `core` validates.
 * Every method is atomic; when its promise resolves, the change is durable.
 * Contract checked by test/suites/metadata-suite.ts against every dialect.
 */
export interface MetadataStore {
  findImage(name: string): Promise<ImageRecord | undefined>;
  /**
   * Finds or creates the image of `name`, and its repository (private) if missing. The owner
   * must exist: undefined when it does not.
   */
  ensureImage(name: ImageName): Promise<ImageRecord | undefined>;
  /** Image names in lexical order, after `after`; only in `repositoryIds` when given. */
  listImageNames(page: Page & { repositoryIds?: number[] }): Promise<string[]>;

  /** A live blob (not being collected). */
  findBlob(digest: string): Promise<BlobRecord | undefined>;
  /** The blob's row in any state: its generation tells a re-upload where to store the bytes. */
  findBlobState(digest: string): Promise<{ state: BlobState; generation: number; size: number } | undefined>;
  /** A live blob only if linked to the image. */
  findImageBlob(imageId: number, digest: string): Promise<BlobRecord | undefined>;
  /**
   * Records a blob whose bytes were just stored under `generation` (default 0), links it to the
   * image and enqueues its garbage-collection review, in one transaction. Idempotent. A row being
   * collected is taken over only by a later generation (else `ok: false`). `cached`: fetched
   * from an upstream.
   */
  saveBlob(imageId: number, digest: string, size: number, opts?: { cached?: boolean; generation?: number }): Promise<SaveBlobResult>;
  /**
   * Links a blob already stored (a mount, a re-push of known bytes) if it is still live in
   * `generation`; false when garbage collection took it meanwhile. Postpones its collection.
   */
  linkBlob(imageId: number, digest: string, generation: number, opts?: { cached?: boolean }): Promise<boolean>;
  /** Marks a live blob used now (HEAD/GET), which postpones its collection. */
  touchBlob(digest: string, now: number): Promise<void>;
  /** Whether the blob's link to the image was made by the pull-through cache. */
  isBlobCached(imageId: number, digest: string): Promise<boolean>;
  /** Manifests of the repository's images stored by the pull-through cache, at most `limit`. */
  listCachedManifests(repositoryId: number, limit: number): Promise<CachedManifestRecord[]>;
  /** Unlinks a blob from an image (and enqueues its review); false when it was not linked. */
  removeImageBlob(imageId: number, digest: string): Promise<boolean>;

  saveUpload(upload: UploadRecord): Promise<void>;
  findUpload(id: string): Promise<UploadRecord | undefined>;
  removeUpload(id: string): Promise<void>;
  listUploadsStartedBefore(time: number): Promise<UploadRecord[]>;
  /** Open upload sessions started by `startedBy`, or in any image of repository `repositoryId`. */
  countUploads(filter: { startedBy: string } | { repositoryId: number }): Promise<number>;

  findManifest(imageId: number, digest: string): Promise<ManifestRecord | undefined>;
  findTaggedManifest(imageId: number, tag: string): Promise<ManifestRecord | undefined>;
  /**
   * In one transaction: checks that every required blob and manifest exists in the image with
   * the claimed size (a blob being collected counts as missing), then writes the manifest, its
   * refs and the tag. Nothing is written when a check fails. Enqueues a review of the manifest a
   * moved tag left, or of the manifest itself when pushed without a tag.
   */
  saveManifest(input: SaveManifestInput): Promise<SaveManifestResult>;
  /**
   * Removes a manifest, its refs and every tag pointing at it; false when absent. Enqueues
   * reviews of its blobs, child manifests and referrers in the same transaction.
   */
  removeManifest(imageId: number, digest: string): Promise<boolean>;
  /**
   * Removes a tag and enqueues a review of the manifest it pointed at; with `expectDigest`,
   * only while the tag still points there (a tag pushed meanwhile stays).
   */
  removeTag(imageId: number, tag: string, expectDigest?: string): Promise<boolean>;
  /** The tags pointing at a manifest of the image. */
  listManifestTags(imageId: number, digest: string): Promise<string[]>;
  /**
   * Removes an image with its manifests, tags, blob links and uploads in one transaction, and
   * enqueues garbage-collection reviews of its blobs in it; blob rows and bytes are left to
   * garbage collection. False when absent.
   */
  removeImage(imageId: number): Promise<boolean>;
  listTags(imageId: number, page: Page): Promise<string[]>;
  /**
   * Tags with their manifest digest, by name; `contains` keeps names holding that substring
   * (literal, case-sensitive). `newestFirst` orders by last update (newest first, then name)
   * instead, and then takes no `after`.
   */
  listTagEntries(imageId: number, page: Page & { contains?: string; newestFirst?: boolean }): Promise<TagEntry[]>;
  /** How many tags an image has. */
  countTags(imageId: number): Promise<number>;
  listReferrers(imageId: number, subjectDigest: string, artifactType?: string): Promise<ReferrerRecord[]>;

  /** Sum of the sizes of all live blobs (storage used, for metrics). */
  totalBlobBytes(): Promise<number>;

  /** Whether the store answers (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
