/**
 * Read-only views for the web UI: images of a repository with tag counts, tags with search and
 * keyset pagination, and a manifest's details (kind, layers, config, annotations, referrers).
 * Callers authorize first (the repository must be readable); this only reads.
 */
import type { Readable } from 'node:stream';
import type { Identity } from '../access/access.ts';
import type { TagEntry } from '../../metadata/metadata-store.ts';
import { classifyManifest, type KindInfo } from './artifact-kind.ts';
import type { Registry } from '../registry.ts';
import { ApiError } from '../access/tenancy.ts';
import { type TagSort, bySemver } from './tag-order.ts';

export interface ImageSummary {
  /** Full name, OWNER/REPOSITORY/IMAGE. */
  name: string;
  /** The IMAGE part. */
  image: string;
  tagCount: number;
  /** Of the most recently pushed tag's manifest; null for an image without tags. */
  kind: KindInfo | null;
  /** That manifest's bytes with its config and layers (an index: with its children's). */
  size: number | null;
  /** When a tag of the image last moved (ISO 8601). */
  lastPushedAt: string | null;
  /** The most recently pushed tag. */
  latestTag: string | null;
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  artifactType?: string;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export interface ReferrerNode {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  kind: KindInfo;
  annotations: Record<string, string> | null;
  referrers: ReferrerNode[];
}

export interface ManifestDetail {
  name: string;
  reference: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  kind: KindInfo;
  /** Manifest bytes plus every layer and config it lists (not children of an index). */
  size: number;
  manifestSize: number;
  pushedAt: string;
  /** From the image config's `created`, or the `org.opencontainers.image.created` annotation. */
  createdAt: string | null;
  tags: string[];
  config: { mediaType: string; digest: string; size: number; content?: unknown } | null;
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  manifests: { mediaType: string; digest: string; size: number; platform?: string; artifactType?: string }[];
  subject: { digest: string; mediaType?: string } | null;
  annotations: Record<string, string>;
  referrers: ReferrerNode[];
  /** Stored by the pull-through cache from an upstream (manifests.cached, docs/proxy.md). */
  cached: boolean;
}

const MAX_CONFIG = 256 * 1024;
/** Tags read to sort by semver or time (in memory; sorting by name pages through the index). */
export const MAX_SORTED_TAGS = 20_000;
/** Children of an index whose sizes count into an image list's size. */
const MAX_INDEX_CHILDREN = 64;

async function readAll(s: Readable, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s) {
    n += (c as Buffer).length;
    if (n > max) {
      s.destroy();
      return undefined;
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** What a search found, each list capped at SEARCH_LIMIT. */
export interface SearchResult {
  owners: { name: string; kind: string }[];
  repositories: { owner: string; repository: string }[];
  images: { owner: string; repository: string; image: string }[];
  tags: { owner: string; repository: string; image: string; tag: string; digest: string }[];
}

const SEARCH_LIMIT = 50;
/** Image names scanned per search, and images whose tags are searched: bounds the work of one query. */
const SEARCH_SCAN = 5000;
const TAG_SCAN_IMAGES = 200;

export class Browse {
  constructor(private readonly r: Registry) {}

  /**
   * Case-insensitive substring search over what the identity may see: owners, repositories,
   * images, and tags (in up to TAG_SCAN_IMAGES readable images). Nothing private leaks: every
   * list is filtered by the same access decision as /v2.
   */
  async search(identity: Identity, query: string): Promise<SearchResult> {
    const q = query.toLowerCase();
    const owners = await this.r.tenancy.listOwners(identity);
    const readable = await this.r.access.readableRepositoryIds(identity);
    const repositories: SearchResult['repositories'] = [];
    for (const o of owners) {
      for (const repo of await this.r.tenancy.listRepositories(identity, o.name)) {
        if (`${o.name}/${repo.name}`.includes(q) && repositories.length < SEARCH_LIMIT) repositories.push({ owner: o.name, repository: repo.name });
      }
    }
    const names = await this.r.meta.listImageNames({ limit: SEARCH_SCAN, ...(readable === 'all' ? {} : { repositoryIds: [...readable] }) });
    const split = (name: string) => {
      const [owner, repository, ...rest] = name.split('/');
      return { owner: owner!, repository: repository!, image: rest.join('/') };
    };
    const images = names.filter((n) => n.includes(q)).slice(0, SEARCH_LIMIT).map(split);
    const tags: SearchResult['tags'] = [];
    for (const name of names.slice(0, TAG_SCAN_IMAGES)) {
      if (tags.length >= SEARCH_LIMIT) break;
      const img = await this.r.meta.findImage(name);
      if (!img) continue;
      for (const t of await this.r.meta.listTagEntries(img.id, { limit: SEARCH_LIMIT - tags.length, contains: query })) tags.push({ ...split(name), tag: t.name, digest: t.digest });
    }
    return { owners: owners.filter((o) => o.name.includes(q)).slice(0, SEARCH_LIMIT).map((o) => ({ name: o.name, kind: o.kind })), repositories, images, tags };
  }

  /** Images of OWNER/REPOSITORY (up to `limit`), with tag counts and their latest push. */
  async images(owner: string, repo: string, repositoryId: number, limit = 1000): Promise<ImageSummary[]> {
    const prefix = `${owner}/${repo}/`;
    const names = await this.r.meta.listImageNames({ limit, repositoryIds: [repositoryId] });
    const out: ImageSummary[] = [];
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const img = await this.r.images.find(name);
      const [latest] = await this.r.meta.listTagEntries(img.id, { limit: 1, newestFirst: true });
      const summary = latest ? await this.summarize(name, latest.digest) : undefined;
      out.push({
        name,
        image: name.slice(prefix.length),
        tagCount: await this.r.meta.countTags(img.id),
        kind: summary?.kind ?? null,
        size: summary?.size ?? null,
        lastPushedAt: latest ? new Date(latest.updatedAt).toISOString() : null,
        latestTag: latest?.name ?? null,
      });
    }
    return out;
  }

  /** A manifest's kind and total size; undefined when it cannot be read. */
  private async summarize(name: string, digest: string): Promise<{ kind: KindInfo; size: number } | undefined> {
    try {
      const m = await this.r.manifests.get(name, digest);
      const doc = JSON.parse(m.payload.toString('utf8')) as { config?: Descriptor; layers?: Descriptor[]; manifests?: Descriptor[] };
      let size = m.size + Number(doc.config?.size ?? 0) + (doc.layers ?? []).reduce((a, l) => a + Number(l.size ?? 0), 0);
      for (const c of (doc.manifests ?? []).slice(0, MAX_INDEX_CHILDREN)) {
        if (typeof c.digest !== 'string') continue;
        const child = await this.summarize(name, c.digest).catch(() => undefined);
        size += child?.size ?? Number(c.size ?? 0);
      }
      return { kind: classifyManifest(m.mediaType, doc), size };
    } catch {
      return undefined;
    }
  }

  /**
   * A page of tags. By name (default): keyset pagination over the index, `after` the last
   * name seen. By `semver` (highest first) or `time` (newest first): up to MAX_SORTED_TAGS
   * tags are read and sorted in memory, `after` still the last name seen. `q` keeps names
   * containing it.
   */
  async tags(name: string, opts: { limit: number; after?: string; q?: string; sort?: TagSort }): Promise<{ tags: TagEntry[]; next?: string; total: number }> {
    const img = await this.r.images.find(name);
    const total = await this.r.meta.countTags(img.id);
    const contains = opts.q || undefined;
    if (opts.sort === 'semver' || opts.sort === 'time') {
      const all = await this.r.meta.listTagEntries(img.id, { limit: MAX_SORTED_TAGS + 1, contains, newestFirst: opts.sort === 'time' });
      if (all.length > MAX_SORTED_TAGS) {
        throw new ApiError(400, 'INVALID', `${name} has more than ${MAX_SORTED_TAGS} tags${contains ? ' matching' : ''}: narrow them with q=, or sort by name`);
      }
      const sorted = opts.sort === 'semver' ? bySemver(all) : all; // newestFirst came sorted by time
      let start = 0;
      if (opts.after !== undefined) {
        const at = sorted.findIndex((t) => t.name === opts.after);
        if (at < 0) throw new ApiError(400, 'INVALID', `"after" names no tag of ${name}${contains ? ' matching q' : ''}`);
        start = at + 1;
      }
      const tags = sorted.slice(start, start + opts.limit);
      return start + opts.limit < sorted.length ? { tags, next: tags[tags.length - 1]!.name, total } : { tags, total };
    }
    const rows = await this.r.meta.listTagEntries(img.id, { limit: opts.limit + 1, after: opts.after, contains });
    if (rows.length > opts.limit) {
      const tags = rows.slice(0, opts.limit);
      return { tags, next: tags[tags.length - 1]!.name, total };
    }
    return { tags: rows, total };
  }

  async manifest(name: string, reference: string): Promise<ManifestDetail> {
    const m = await this.r.manifests.get(name, reference);
    let doc: {
      config?: Descriptor;
      layers?: Descriptor[];
      manifests?: Descriptor[];
      subject?: Descriptor;
      annotations?: Record<string, string>;
      artifactType?: string;
    } = {};
    try {
      doc = JSON.parse(m.payload.toString('utf8')) as typeof doc;
    } catch {
      /* stored manifests are valid JSON; be lenient anyway */
    }
    const kind = classifyManifest(m.mediaType, doc);
    const layers = (doc.layers ?? []).map((l) => ({
      mediaType: String(l.mediaType ?? ''),
      digest: String(l.digest ?? ''),
      size: Number(l.size ?? 0),
      ...(l.annotations ? { annotations: l.annotations } : {}),
    }));
    let config: ManifestDetail['config'] = null;
    let createdAt: string | null = doc.annotations?.['org.opencontainers.image.created'] ?? null;
    if (doc.config?.digest) {
      config = { mediaType: String(doc.config.mediaType ?? ''), digest: doc.config.digest, size: Number(doc.config.size ?? 0) };
      if (config.size > 2 && config.size <= MAX_CONFIG && /json/.test(config.mediaType)) {
        try {
          await this.r.blobs.stat(name, config.digest); // linked to this image
          const bytes = await readAll(await this.r.blobs.open(config.digest), MAX_CONFIG);
          if (bytes) {
            const content = JSON.parse(bytes.toString('utf8')) as { created?: unknown };
            config.content = content;
            if (typeof content.created === 'string') createdAt = content.created;
          }
        } catch {
          /* config unreadable: show the descriptor only */
        }
      }
    }
    const manifests = (doc.manifests ?? []).map((c) => {
      const p = c.platform;
      const platform = p?.os ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : undefined;
      return {
        mediaType: String(c.mediaType ?? ''),
        digest: String(c.digest ?? ''),
        size: Number(c.size ?? 0),
        ...(platform ? { platform } : {}),
        ...(c.artifactType ? { artifactType: c.artifactType } : {}),
      };
    });
    const img = await this.r.images.find(name);
    const tags = (await this.r.meta.listTagEntries(img.id, { limit: 50 })).filter((t) => t.digest === m.digest).map((t) => t.name);
    return {
      name,
      reference,
      digest: m.digest,
      mediaType: m.mediaType,
      artifactType: typeof doc.artifactType === 'string' ? doc.artifactType : null,
      kind,
      size: m.size + (config?.size ?? 0) + layers.reduce((a, l) => a + l.size, 0),
      manifestSize: m.size,
      pushedAt: new Date(m.createdAt).toISOString(),
      createdAt,
      tags,
      config,
      layers,
      manifests,
      subject: doc.subject?.digest ? { digest: doc.subject.digest, ...(doc.subject.mediaType ? { mediaType: doc.subject.mediaType } : {}) } : null,
      annotations: doc.annotations ?? {},
      referrers: await this.referrerTree(name, m.digest, 3),
      cached: m.cached === true,
    };
  }

  /** Referrers of `digest`, and theirs, `depth` levels deep. */
  async referrerTree(name: string, digest: string, depth: number): Promise<ReferrerNode[]> {
    if (depth <= 0) return [];
    const index = await this.r.manifests.referrers(name, digest);
    const out: ReferrerNode[] = [];
    for (const d of index.manifests.slice(0, 100)) {
      let kind: KindInfo;
      try {
        const m = await this.r.manifests.get(name, d.digest);
        kind = classifyManifest(m.mediaType, JSON.parse(m.payload.toString('utf8')));
      } catch {
        kind = classifyManifest(d.mediaType, { artifactType: d.artifactType });
      }
      out.push({
        digest: d.digest,
        mediaType: d.mediaType,
        artifactType: d.artifactType ?? null,
        size: d.size,
        kind,
        annotations: d.annotations ?? null,
        referrers: await this.referrerTree(name, d.digest, depth - 1),
      });
    }
    return out;
  }
}
