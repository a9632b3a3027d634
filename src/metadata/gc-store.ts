/**
 * Rows of online garbage collection (docs/lifecycle.md). The metadata store enqueues a review
 * job in the same transaction as every change that may leave a blob or a manifest without a
 * reference; `core/lifecycle/gc.ts` runs the reviews and decides through this store, each
 * decision re-checking references inside one transaction.
 * Contract checked by test/suites/gc-suite.ts against every dialect.
 */

/** Job kinds of the reviews: subject a blob digest, or `<imageId>@<manifest digest>`. */
export const GC_BLOB = 'gc.blob';
export const GC_MANIFEST = 'gc.manifest';

export function manifestSubject(imageId: number, digest: string): string {
  return `${imageId}@${digest}`;
}

export function parseManifestSubject(subject: string): { imageId: number; digest: string } | undefined {
  const at = subject.indexOf('@');
  const imageId = Number(subject.slice(0, at));
  if (at <= 0 || !Number.isSafeInteger(imageId)) return undefined;
  return { imageId, digest: subject.slice(at + 1) };
}

/** live: served; deleting: collected now (its bytes may be gone); gone: a tombstone. */
export type BlobState = 'live' | 'deleting' | 'gone';

export interface ReviewTiming {
  now: number;
  /** The grace period: nothing goes sooner than this after its last use or release. */
  graceMs: number;
  /** When the review was (last) enqueued: the release time of the reference. */
  enqueuedAt: number;
  /** Decide without changing anything. */
  dryRun: boolean;
}

export type BlobDecision =
  | { action: 'absent' }
  | { action: 'keep'; reason: string }
  | { action: 'postpone'; until: number; reason: string }
  /** Marked `deleting` (or, dry run, would be): delete generation `generation`, then `finishBlob`. */
  | { action: 'sweep'; generation: number; size: number };

export type ManifestDecision =
  | { action: 'absent' }
  | { action: 'keep'; reason: string }
  | { action: 'postpone'; until: number; reason: string }
  /** Removed with its tags and refs (or, dry run, would be); its children were queued for review. */
  | { action: 'delete'; image: string; size: number; reason: string };

export interface DigestFacts {
  blob: { state: BlobState; generation: number; size: number; lastUsedAt: number; createdAt: number } | null;
  /** Manifests whose config or layers name the digest. */
  referencedBy: { image: string; manifest: string; kind: string }[];
  /** Images the blob is linked to (pushed or mounted there). */
  linkedTo: string[];
  /** Manifests with this digest, per image. */
  manifests: { imageId: number; image: string; tags: string[]; indexes: string[]; subject: string | null; subjectPresent: boolean; createdAt: number }[];
}

export interface GcStore {
  /**
   * Reviews a blob in one transaction: kept while any manifest names it; postponed within the
   * grace period after `enqueuedAt` or its last use; otherwise marked `deleting` and unlinked
   * from every image. A manifest PUT naming it from then on gets MANIFEST_BLOB_UNKNOWN.
   * A blob already `deleting` (a crashed sweep) is swept again.
   */
  decideBlob(digest: string, t: ReviewTiming): Promise<BlobDecision>;
  /** After the bytes of `generation` are deleted: the row becomes a tombstone, unless re-uploaded since. */
  finishBlob(digest: string, generation: number): Promise<boolean>;
  /**
   * Reviews a manifest of an image in one transaction: kept while tagged, named by an index of
   * the image, or a referrer of a subject still present; an untagged one (when `collectUntagged`)
   * or a referrer whose subject is gone is removed after the grace period.
   */
  decideManifest(imageId: number, digest: string, t: ReviewTiming & { collectUntagged: boolean }): Promise<ManifestDecision>;
  /** What the store knows about a digest: why it is or is not collectable. */
  explainDigest(digest: string): Promise<DigestFacts>;
  /** Removes tombstones older than `before`; returns how many. */
  pruneTombstones(before: number): Promise<number>;
  /** Blobs per state with their bytes. */
  blobTotals(): Promise<{ state: BlobState; count: number; bytes: number }[]>;
  /**
   * Blobs marked `deleting` before `before` (a sweep whose bytes may not be deleted yet: the
   * process that decided died, or its batch failed), oldest first.
   */
  listDeleting(before: number, limit: number): Promise<{ digest: string; generation: number; size: number }[]>;
  /** Every blob row of one storage shard: digests `<alg>:<shard>…` (the reconciler's walk). */
  listBlobRows(alg: string, shard: string): Promise<{ digest: string; state: BlobState; generation: number; size: number }[]>;
  /**
   * Before the reconciler deletes stored bytes that no row describes: makes sure no upload can
   * commit into that generation any more, in one transaction. No row: a tombstone of
   * `generation` is written (a re-upload then takes the next generation). A tombstone below it
   * is raised to it. True when the object may be deleted (also when a row already says another
   * generation is the digest's, an older one); false when the row holds this very generation
   * live or deleting, or a newer one is being written (a live row below it).
   */
  claimOrphan(digest: string, generation: number, now: number): Promise<boolean>;
}
