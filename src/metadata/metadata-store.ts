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
}

export interface UploadRecord {
  id: string;
  imageId: number;
  startedAt: number;
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
  | { ok: false; missing: string[]; sizeMismatch: { digest: string; expected: number; actual: number }[] };

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

  findBlob(digest: string): Promise<BlobRecord | undefined>;
  /** A blob only if linked to the image. */
  findImageBlob(imageId: number, digest: string): Promise<BlobRecord | undefined>;
  /** Records a stored blob (idempotent) and links it to the image; `cached`: fetched from an upstream. */
  saveBlob(imageId: number, digest: string, size: number, opts?: { cached?: boolean }): Promise<void>;
  /** Whether the blob's link to the image was made by the pull-through cache. */
  isBlobCached(imageId: number, digest: string): Promise<boolean>;
  /** Manifests of the repository's images stored by the pull-through cache, at most `limit`. */
  listCachedManifests(repositoryId: number, limit: number): Promise<CachedManifestRecord[]>;
  /** Unlinks a blob from an image; false when it was not linked. */
  removeImageBlob(imageId: number, digest: string): Promise<boolean>;

  saveUpload(upload: UploadRecord): Promise<void>;
  findUpload(id: string): Promise<UploadRecord | undefined>;
  removeUpload(id: string): Promise<void>;
  listUploadsStartedBefore(time: number): Promise<UploadRecord[]>;

  findManifest(imageId: number, digest: string): Promise<ManifestRecord | undefined>;
  findTaggedManifest(imageId: number, tag: string): Promise<ManifestRecord | undefined>;
  /**
   * In one transaction: checks that every required blob and manifest exists in the image with
   * the claimed size, then writes the manifest, its refs and the tag. Nothing is written when
   * a check fails.
   */
  saveManifest(input: SaveManifestInput): Promise<SaveManifestResult>;
  /** Removes a manifest, its refs and every tag pointing at it; false when absent. */
  removeManifest(imageId: number, digest: string): Promise<boolean>;
  removeTag(imageId: number, tag: string): Promise<boolean>;
  /**
   * Removes an image with its manifests, tags, blob links and uploads in one transaction; blob
   * rows and bytes are left to garbage collection. False when absent.
   */
  removeImage(imageId: number): Promise<boolean>;
  listTags(imageId: number, page: Page): Promise<string[]>;
  /** Tags with their manifest digest, by name; `contains` keeps names holding that substring (literal, case-sensitive). */
  listTagEntries(imageId: number, page: Page & { contains?: string }): Promise<TagEntry[]>;
  /** How many tags an image has. */
  countTags(imageId: number): Promise<number>;
  listReferrers(imageId: number, subjectDigest: string, artifactType?: string): Promise<ReferrerRecord[]>;

  /** Sum of the sizes of all blobs (storage used, for metrics). */
  totalBlobBytes(): Promise<number>;

  /** Whether the store answers (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
