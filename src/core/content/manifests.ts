import { RegistryError } from '../errors.ts';
import { digestOf, looksLikeDigest, parseDigest } from './digest.ts';
import { isValidTag } from './names.ts';
import { MAX_MANIFEST_BYTES, type ParsedManifest, parseManifest } from './manifest.ts';
import { OCI_INDEX } from './media-types.ts';
import type { Images } from './images.ts';
import type { RepositoryPolicies } from '../lifecycle/policy.ts';
import type { ImageRecord, ManifestRecord, MetadataStore, RefKind } from '../../metadata/metadata-store.ts';
import type { NewJob } from '../../metadata/job-store.ts';

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: string };

/** Parses a manifest reference: a tag, or a digest (anything with a `:`). */
export function parseReference(ref: string): Reference {
  if (looksLikeDigest(ref)) return { kind: 'digest', digest: parseDigest(ref).value };
  if (!isValidTag(ref)) {
    throw new RegistryError('MANIFEST_INVALID', `invalid tag "${ref.slice(0, 140)}": must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`, {
      detail: { tag: ref.slice(0, 140) },
    });
  }
  return { kind: 'tag', tag: ref };
}

/**
 * Parses a reference to read or delete: one that cannot be a valid tag or digest names no
 * manifest, so it is 404 MANIFEST_UNKNOWN (the spec lists only 404 for a manifest not found);
 * the message still says why. Writes use parseReference (400).
 */
export function parseLookupReference(ref: string): Reference {
  try {
    return parseReference(ref);
  } catch (e) {
    if (!(e instanceof RegistryError)) throw e;
    throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${e.message}`, { detail: { reference: ref.slice(0, 140) } });
  }
}

export interface PutManifestResult {
  digest: string;
  subject: string | null;
  /** Pushed by tag over an existing tag: the digest the tag pointed at before (may equal `digest`). */
  previousDigest?: string;
}

export interface Page<T> {
  items: T[];
  /** Set when more may follow: the `last` value for the next page. */
  next?: string;
}

/** The referrers response: an OCI image index of referrer descriptors. */
export interface ReferrersIndex {
  schemaVersion: 2;
  mediaType: typeof OCI_INDEX;
  manifests: {
    mediaType: string;
    digest: string;
    size: number;
    artifactType?: string;
    annotations?: Record<string, string>;
  }[];
}

/** A manifest committed to an image (after its transaction). */
export interface ManifestPutEvent {
  name: string;
  imageId: number;
  repositoryId: number;
  digest: string;
  mediaType: string;
  size: number;
  payload: Buffer;
  /** The tag pushed, or null for a push by digest. */
  tag: string | null;
  subject: string | null;
  /** Stored by the pull-through cache, not pushed. */
  cached: boolean;
}

/** A manifest or a tag removed from an image. */
export interface ManifestDeleteEvent {
  name: string;
  imageId: number;
  repositoryId: number;
  reference: string;
}

/**
 * Features that follow commits (a signature's arrival bumping verdict versions, …): called after
 * the transaction, awaited, so a failure fails the request and a client's retry (idempotent)
 * calls them again. Work to do later belongs in a ManifestJobs contributor instead: a crash
 * between the commit and a listener loses what the listener would have done.
 */
export interface ManifestListener {
  put?(e: ManifestPutEvent): Promise<void>;
  deleted?(e: ManifestDeleteEvent): Promise<void>;
}

/**
 * Work a pushed manifest causes (SBOM generation, signing on push), enqueued in the manifest's
 * own transaction (DESIGN §10): the job row exists exactly when the manifest does. Called
 * before the transaction, so what it reads (a repository's switch) is read then.
 */
export interface ManifestJobs {
  /** `tag`: the tag pushed, or null for a push by digest. */
  jobsFor(image: ImageRecord, digest: string, manifest: ParsedManifest, tag: string | null): Promise<NewJob[]>;
  /**
   * Also asked for manifests the pull-through cache stores (SBOM: the pull policies need a
   * report of every image served); otherwise only pushes (signing on push signs what was pushed).
   */
  cached?: boolean;
  /** After the commit of a manifest that enqueued jobs: this node looks for due jobs at once. */
  enqueued(): void;
}

/** A compare-and-swap push (`expectTag`) found the tag elsewhere: re-read it and try again. */
export class TagMovedError extends Error {
  constructor(
    readonly tag: string,
    /** Where the tag points now (null: nowhere). */
    readonly current: string | null,
  ) {
    super(`tag "${tag}" moved to ${current ?? 'nothing'} since it was read`);
  }
}

/** Manifests, tags, referrers and the catalog. */
export class Manifests {
  readonly listeners: ManifestListener[] = [];
  /** Added by the features: jobs for each manifest pushed (not for ones the pull-through cache stores). */
  readonly jobs: ManifestJobs[] = [];

  constructor(
    private readonly meta: MetadataStore,
    private readonly images: Images,
    /** Immutable tags and quotas (core/lifecycle/policy.ts); none when absent. */
    private readonly policies?: Pick<RepositoryPolicies, 'forRepository' | 'assertMayRemoveTags' | 'onTagPush'>,
  ) {}

  async get(name: string, ref: string): Promise<ManifestRecord> {
    const r = parseLookupReference(ref);
    const img = await this.images.find(name);
    const m = r.kind === 'tag' ? await this.meta.findTaggedManifest(img.id, r.tag) : await this.meta.findManifest(img.id, r.digest);
    if (!m) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${ref}`, { detail: { reference: ref } });
    return m;
  }

  /**
   * Stores a manifest under its digest (over the exact bytes received) and, when `ref` is a
   * tag, points the tag at it — in one transaction, after checking that every blob and child
   * manifest it references is in the image.
   */
  async put(
    name: string,
    ref: string,
    payload: Buffer,
    contentType: string | undefined,
    /**
     * `cached`: fetched by the pull-through cache, whose blobs arrive later, on demand (docs/proxy.md).
     * `expectTag`: write only if the tag still points at this digest (null: does not exist), else
     * TagMovedError — for a read-modify-write of a tag (a signing job adding to a `.sig`).
     */
    opts: { cached?: boolean; expectTag?: string | null } = {},
  ): Promise<PutManifestResult> {
    const r = parseReference(ref);
    if (payload.length > MAX_MANIFEST_BYTES) {
      throw new RegistryError('MANIFEST_INVALID', `manifest is larger than ${MAX_MANIFEST_BYTES} bytes`, { status: 413 });
    }
    const parsed = parseManifest(payload, contentType);
    let digest: string;
    if (r.kind === 'digest') {
      digest = digestOf(payload, parseDigest(r.digest).algorithm);
      if (digest !== r.digest) {
        throw new RegistryError('DIGEST_INVALID', `manifest digest ${digest} does not match the reference ${r.digest}`, {
          detail: { expected: r.digest, actual: digest },
        });
      }
    } else {
      digest = digestOf(payload);
    }
    const img = await this.images.ensure(name);
    const policy = this.policies ? await this.policies.forRepository(img.repositoryId) : undefined;
    const refs: { digest: string; kind: RefKind }[] = [];
    if (parsed.config) refs.push({ digest: parsed.config.digest, kind: 'config' });
    for (const l of parsed.layers) refs.push({ digest: l.digest, kind: 'layer' });
    for (const c of parsed.manifests) refs.push({ digest: c.digest, kind: 'manifest' });
    if (parsed.subject) refs.push({ digest: parsed.subject.digest, kind: 'subject' });

    const tag = r.kind === 'tag' ? r.tag : null;
    const contributed = await Promise.all(this.jobs.filter((j) => !opts.cached || j.cached).map(async (j) => ({ j, jobs: await j.jobsFor(img, digest, parsed, tag) })));
    const jobs = contributed.flatMap((c) => c.jobs);
    const result = await this.meta.saveManifest({
      imageId: img.id,
      digest,
      mediaType: parsed.mediaType,
      artifactType: parsed.artifactType,
      subjectDigest: parsed.subject?.digest ?? null,
      configDigest: parsed.config?.digest ?? null,
      payload,
      annotations: parsed.annotations,
      refs,
      requireBlobs: opts.cached ? [] : parsed.blobs.map((b) => ({ digest: b.digest, size: b.size })),
      requireManifests: opts.cached ? [] : parsed.manifests.map((b) => ({ digest: b.digest, size: b.size })),
      tag,
      ...(opts.cached ? { cached: true } : {}),
      ...(policy && r.kind === 'tag' && policy.immutable(r.tag) ? { immutableTag: true } : {}),
      ...(policy && !opts.cached && policy.quotas.length ? { quotas: policy.quotas } : {}),
      ...(jobs.length ? { jobs } : {}),
      ...(opts.expectTag !== undefined && tag !== null ? { expectTagDigest: opts.expectTag } : {}),
    });
    if (!result.ok) {
      if (result.tagMoved !== undefined) throw new TagMovedError(tag!, result.tagMoved);
      if (result.denied) throw new RegistryError('DENIED', result.denied);
      if (result.missing.length) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest references unknown blobs or manifests: ${result.missing.slice(0, 5).join(', ')}`, {
          detail: { missing: result.missing },
        });
      }
      const s = result.sizeMismatch[0]!;
      throw new RegistryError('MANIFEST_INVALID', `descriptor of ${s.digest} has size ${s.expected} but the content has ${s.actual} bytes`, {
        detail: { sizeMismatch: result.sizeMismatch },
      });
    }
    for (const c of contributed) if (c.jobs.length) c.j.enqueued();
    if (policy?.retention && r.kind === 'tag') await this.policies!.onTagPush(img.repositoryId);
    for (const l of this.listeners) {
      await l.put?.({
        name,
        imageId: img.id,
        repositoryId: img.repositoryId,
        digest,
        mediaType: parsed.mediaType,
        size: payload.length,
        payload,
        tag,
        subject: parsed.subject?.digest ?? null,
        cached: opts.cached === true,
      });
    }
    return {
      digest,
      subject: parsed.subject?.digest ?? null,
      ...(result.previousTagDigest !== undefined ? { previousDigest: result.previousTagDigest } : {}),
    };
  }

  /** By digest: removes the manifest and its tags. By tag: removes only the tag. Immutable tags refuse both. */
  async delete(name: string, ref: string): Promise<void> {
    const r = parseLookupReference(ref);
    const img = await this.images.find(name);
    if (this.policies) {
      const tags = r.kind === 'tag' ? [r.tag] : await this.meta.listManifestTags(img.id, r.digest);
      await this.policies.assertMayRemoveTags(img.repositoryId, tags);
    }
    const removed = r.kind === 'tag' ? await this.meta.removeTag(img.id, r.tag) : await this.meta.removeManifest(img.id, r.digest);
    if (!removed) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${ref}`, { detail: { reference: ref } });
    for (const l of this.listeners) await l.deleted?.({ name, imageId: img.id, repositoryId: img.repositoryId, reference: ref });
  }

  async listTags(name: string, limit: number, last?: string): Promise<Page<string>> {
    const img = await this.images.find(name);
    if (limit === 0) return { items: [] };
    const items = await this.meta.listTags(img.id, { limit: limit + 1, after: last });
    return paged(items, limit);
  }

  /** Image names, only in `repositoryIds` when given (what the caller may read). */
  async listCatalog(limit: number, last?: string, repositoryIds?: number[]): Promise<Page<string>> {
    if (limit === 0) return { items: [] };
    const items = await this.meta.listImageNames({ limit: limit + 1, after: last, repositoryIds });
    return paged(items, limit);
  }

  async referrers(name: string, digest: string, artifactType?: string): Promise<ReferrersIndex> {
    parseDigest(digest);
    const img = await this.images.find(name);
    const rows = await this.meta.listReferrers(img.id, digest, artifactType);
    return {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: rows.map((r) => ({
        mediaType: r.mediaType,
        digest: r.digest,
        size: r.size,
        ...(r.artifactType ? { artifactType: r.artifactType } : {}),
        ...(r.annotations ? { annotations: r.annotations } : {}),
      })),
    };
  }
}

function paged(items: string[], limit: number): Page<string> {
  if (items.length > limit) {
    const page = items.slice(0, limit);
    return { items: page, next: page[page.length - 1] };
  }
  return { items };
}
