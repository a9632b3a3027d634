/**
 * Reads an OCI image layout (a folder, an oci-archive tar, or the OCI layout Docker 25+ writes
 * with `docker save`): index.json → manifests and indexes (read whole, ≤ 4 MiB, digest and size
 * checked now) → configs and layers (sizes checked now, digests checked while they stream).
 * Manifests and indexes are pushed with their exact bytes, so their digests do not change.
 */
import { digestOf, parseDigest } from '../content/digest.ts';
import { RegistryError } from '../errors.ts';
import { MAX_MANIFEST_BYTES, parseDescriptor, parseManifest, type Descriptor } from '../content/manifest.ts';
import { INDEX_TYPES, MANIFEST_TYPES } from '../content/media-types.ts';
import type { ArchiveContent, ArchiveFormat, ArchiveImage, ArchiveName, PlannedBlob, PlannedManifest } from './content.ts';
import { ImportError } from './errors.ts';
import { parseArchiveName } from './names.ts';
import type { ImportSource } from './source.ts';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';
/** BuildKit marks attestation manifests inside an index with this annotation. */
const DOCKER_REFERENCE_TYPE = 'vnd.docker.reference.type';

export function blobMember(digest: string): string {
  const d = parseDigest(digest);
  return `blobs/${d.algorithm}/${d.hex}`;
}

/** `sha256:0123456789ab…` → `0123456789ab` for labels. */
export function shortDigest(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

function asJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new ImportError('BAD_ARCHIVE', `${what} is not valid JSON: ${(e as Error).message}`);
  }
}

function descriptor(v: unknown, where: string): Descriptor {
  try {
    return parseDescriptor(v, where);
  } catch (e) {
    if (e instanceof RegistryError) throw new ImportError('BAD_ARCHIVE', e.message);
    throw e;
  }
}

/** Collects one graph; merged into the content only when complete. */
class Walk {
  readonly blobs = new Map<string, PlannedBlob>();
  readonly manifests = new Map<string, PlannedManifest>();

  constructor(
    private readonly src: ImportSource,
    private readonly known: ArchiveContent,
  ) {}

  private async member(d: Descriptor, what: string): Promise<string> {
    const member = blobMember(d.digest);
    const size = await this.src.size(member);
    if (size === undefined) {
      throw new ImportError('MISSING_FILE', `${this.src.label}: ${what} ${d.digest} is missing (no ${member} in the layout)`);
    }
    if (size !== d.size) {
      throw new ImportError('SIZE_MISMATCH', `${this.src.label}: ${what} ${d.digest} is ${size} bytes in the layout (${member}) but its descriptor says ${d.size}`);
    }
    return member;
  }

  /** Visits a manifest or index descriptor: reads, verifies and records it and everything below. */
  async manifest(d: Descriptor, what: string, depth = 0): Promise<PlannedManifest> {
    if (depth > 8) throw new ImportError('BAD_ARCHIVE', `${this.src.label}: indexes nested too deep at ${d.digest}`);
    const done = this.manifests.get(d.digest) ?? this.known.manifests.get(d.digest);
    if (done) return done;
    if (!MANIFEST_TYPES.has(d.mediaType)) {
      throw new ImportError('UNSUPPORTED', `${this.src.label}: ${what} ${d.digest} has media type "${d.mediaType}", not an image manifest or index`);
    }
    if (d.size > MAX_MANIFEST_BYTES) throw new ImportError('BAD_ARCHIVE', `${this.src.label}: ${what} ${d.digest} is ${d.size} bytes; manifests are limited to ${MAX_MANIFEST_BYTES}`);
    const member = await this.member(d, what);
    const bytes = await this.src.read(member, MAX_MANIFEST_BYTES);
    const alg = parseDigest(d.digest).algorithm;
    const actual = digestOf(bytes, alg);
    if (actual !== d.digest) {
      throw new ImportError('DIGEST_MISMATCH', `${this.src.label}: ${what} ${member} hashes to ${actual}, not the digest ${d.digest} its descriptor claims`);
    }
    let parsed;
    try {
      parsed = parseManifest(bytes, d.mediaType);
    } catch (e) {
      if (e instanceof RegistryError) throw new ImportError('BAD_ARCHIVE', `${this.src.label}: ${what} ${d.digest}: ${e.message}`);
      throw e;
    }
    const planned: PlannedManifest = { digest: d.digest, mediaType: parsed.mediaType, bytes, blobs: [], children: [] };
    if (parsed.kind === 'index') {
      for (const [i, child] of parsed.manifests.entries()) {
        await this.manifest(child, `manifest ${i} of index ${d.digest}`, depth + 1);
        planned.children.push(child.digest);
      }
    } else {
      const required = new Set(parsed.blobs.map((b) => b.digest));
      const all = [parsed.config!, ...parsed.layers];
      for (const [i, b] of all.entries()) {
        const role = i === 0 ? 'config' : `layer ${i - 1}`;
        if (!required.has(b.digest)) continue; // non-distributable with urls: not pushed
        if (!this.blobs.has(b.digest) && !this.known.blobs.get(b.digest)) {
          this.blobs.set(b.digest, await this.blob(b, `${role} of manifest ${shortDigest(d.digest)}`, i === 0));
        }
        if (!planned.blobs.includes(b.digest)) planned.blobs.push(b.digest);
      }
    }
    this.manifests.set(d.digest, planned);
    return planned;
  }

  private async blob(d: Descriptor & { data?: unknown }, what: string, small: boolean): Promise<PlannedBlob> {
    const member = blobMember(d.digest);
    const size = await this.src.size(member);
    if (size === undefined && typeof d.data === 'string') {
      // the descriptor may embed small content (e.g. the empty config `{}`)
      const data = Buffer.from(d.data, 'base64');
      if (data.length === d.size && digestOf(data, parseDigest(d.digest).algorithm) === d.digest) {
        return { digest: d.digest, size: d.size, mediaType: d.mediaType, data, label: what };
      }
    }
    await this.member(d, what);
    if (small && d.size <= MAX_MANIFEST_BYTES) {
      const data = await this.src.read(member, MAX_MANIFEST_BYTES);
      const actual = digestOf(data, parseDigest(d.digest).algorithm);
      if (actual !== d.digest) {
        throw new ImportError('DIGEST_MISMATCH', `${this.src.label}: ${what} ${member} hashes to ${actual}, not the digest ${d.digest} its descriptor claims`);
      }
      return { digest: d.digest, size: d.size, mediaType: d.mediaType, data, member, label: what };
    }
    return { digest: d.digest, size: d.size, mediaType: d.mediaType, member, label: what };
  }

  mergeInto(content: ArchiveContent): void {
    for (const [k, v] of this.blobs) content.blobs.set(k, v);
    for (const [k, v] of this.manifests) content.manifests.set(k, v);
  }
}

function namesOf(d: Descriptor): ArchiveName[] {
  const names: ArchiveName[] = [];
  const a = d.annotations ?? {};
  const ref = a[REF_NAME];
  const containerd = a[CONTAINERD_NAME];
  if (containerd) {
    const n = parseArchiveName(containerd, { bareIsTag: false });
    // Docker writes both: the full name here and the bare tag in ref.name
    if (n.tag === undefined && ref && !ref.includes('/') && !ref.includes(':')) n.tag = ref;
    names.push(n);
  } else if (ref) {
    names.push(parseArchiveName(ref, { bareIsTag: true }));
  }
  return names;
}

/**
 * Reads index.json. `format` says what the source was (folder, oci-archive, Docker 25+ save).
 * When an index of a `docker save` archive lists platform manifests the archive does not hold
 * (the containerd image store saves only the current platform), its one complete platform
 * manifest is imported instead, with a warning.
 */
export async function readOciLayout(src: ImportSource, format: ArchiveFormat): Promise<ArchiveContent> {
  const content: ArchiveContent = { format, blobs: new Map(), manifests: new Map(), images: [], warnings: [] };
  const layoutSize = await src.size('oci-layout');
  if (layoutSize !== undefined) {
    const doc = asJson(await src.read('oci-layout', 64 * 1024), `${src.label}: oci-layout`) as { imageLayoutVersion?: unknown };
    if (typeof doc?.imageLayoutVersion !== 'string' || !doc.imageLayoutVersion.startsWith('1.')) {
      throw new ImportError('UNSUPPORTED', `${src.label}: oci-layout has imageLayoutVersion ${JSON.stringify(doc?.imageLayoutVersion)}; only 1.x layouts are supported`);
    }
  } else if (format !== 'docker-oci-archive') {
    content.warnings.push(`${src.label}: no oci-layout file; reading index.json anyway`);
  }
  const index = asJson(await src.read('index.json', MAX_MANIFEST_BYTES), `${src.label}: index.json`) as { manifests?: unknown; schemaVersion?: unknown };
  if (typeof index !== 'object' || index === null || !Array.isArray(index.manifests)) {
    throw new ImportError('BAD_ARCHIVE', `${src.label}: index.json has no "manifests" array`);
  }
  if (index.manifests.length === 0) throw new ImportError('MISSING_FILE', `${src.label}: index.json lists no image`);
  for (const [i, raw] of index.manifests.entries()) {
    const where = `index.json manifests[${i}]`;
    const d = descriptor(raw, where);
    const walk = new Walk(src, content);
    let root: PlannedManifest;
    try {
      root = await walk.manifest(d, where);
      walk.mergeInto(content);
    } catch (e) {
      const fallback = format === 'docker-oci-archive' && INDEX_TYPES.has(d.mediaType) && e instanceof ImportError && e.code === 'MISSING_FILE';
      if (!fallback) throw e;
      root = await completePlatform(src, content, d, where, e);
    }
    content.images.push({ digest: root.digest, mediaType: root.mediaType, names: namesOf(d), where });
  }
  return content;
}

/** The one complete, non-attestation platform manifest of an incomplete index (Docker 25+ save). */
async function completePlatform(src: ImportSource, content: ArchiveContent, d: Descriptor, where: string, cause: ImportError): Promise<PlannedManifest> {
  const bytes = await src.read(blobMember(d.digest), MAX_MANIFEST_BYTES).catch(() => {
    throw cause;
  });
  const doc = asJson(bytes, `${where} ${d.digest}`) as { manifests?: unknown[] };
  const complete: { walk: Walk; root: PlannedManifest; desc: Descriptor }[] = [];
  for (const [i, raw] of (doc.manifests ?? []).entries()) {
    const child = descriptor(raw, `manifests[${i}] of index ${d.digest}`);
    if (child.annotations?.[DOCKER_REFERENCE_TYPE]) continue;
    const walk = new Walk(src, content);
    try {
      complete.push({ walk, root: await walk.manifest(child, `platform manifest ${i} of index ${d.digest}`), desc: child });
    } catch {
      /* not in the archive */
    }
  }
  if (complete.length !== 1) throw cause;
  const only = complete[0]!;
  only.walk.mergeInto(content);
  const p = only.desc.platform as { os?: string; architecture?: string; variant?: string } | undefined;
  const platform = p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : 'one platform';
  content.warnings.push(
    `${where}: index ${d.digest} lists ${(doc.manifests ?? []).length} manifests but the archive holds only ${platform} ` +
      `(docker save with the containerd image store saves the current platform): importing that platform's manifest ${only.root.digest} instead`,
  );
  return only.root;
}
