/**
 * Which image name and tags each archive image gets. The rules (docs/import.md):
 *
 * - `OWNER/REPOSITORY`: every image goes to `OWNER/REPOSITORY/<IMAGE>` where IMAGE is the last
 *   path component of the repository in its archive name (`RepoTags` `docker.io/library/nginx:1.25`
 *   → `nginx`, tag `1.25`); an image without such a name is an error (give IMAGE).
 * - `OWNER/REPOSITORY/IMAGE`: every image goes to IMAGE with its archive tags. An image without
 *   a tag is pushed by digest only.
 * - `OWNER/REPOSITORY/IMAGE:TAG`: the archive must hold exactly one image; it gets TAG and only TAG.
 *
 * Two different images may not end at the same name and tag.
 */
import { isValidComponent, isValidTag, parseImageName } from '../content/names.ts';
import { RegistryError } from '../errors.ts';
import type { ArchiveContent, ArchiveImage, ArchiveName } from './content.ts';
import { ImportError } from './errors.ts';

export interface Destination {
  owner: string;
  repository: string;
  image?: string;
  tag?: string;
}

/** One image to push: its full name, the root manifest, the tags to set once it is complete. */
export interface PushTarget {
  name: string;
  digest: string;
  mediaType: string;
  tags: string[];
}

/**
 * Parses `OWNER/REPOSITORY[/IMAGE[:TAG]]`. Throws ImportError BAD_NAME naming the problem.
 */
export function parseDestination(s: string): Destination {
  let rest = s.trim();
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw new ImportError('BAD_NAME', `invalid tag "${tag}": must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`);
  }
  if (rest.includes('@')) throw new ImportError('BAD_NAME', `"${s}": give a tag (NAME:TAG), not a digest, as the destination`);
  const parts = rest.split('/');
  if (parts.length < 2 || parts.some((p) => p === '')) {
    throw new ImportError('BAD_NAME', `"${s}": expected OWNER/REPOSITORY[/IMAGE[:TAG]], e.g. acme/prod or acme/prod/web:1.0`);
  }
  if (parts.length === 2 && tag !== undefined) {
    throw new ImportError('BAD_NAME', `"${s}": a TAG needs an IMAGE (OWNER/REPOSITORY/IMAGE:TAG)`);
  }
  const [owner, repository, ...image] = parts as [string, string, ...string[]];
  const probe = image.length ? rest : `${rest}/x`;
  try {
    parseImageName(probe);
  } catch (e) {
    if (e instanceof RegistryError) throw new ImportError('BAD_NAME', `"${s}": ${e.message}`);
    throw e;
  }
  return { owner, repository, ...(image.length ? { image: image.join('/') } : {}), ...(tag !== undefined ? { tag } : {}) };
}

/**
 * Parses a name as archives write it: `nginx:1.25`, `docker.io/library/nginx:1.25`,
 * `localhost:5000/team/app:v2`, `app@sha256:…`, or a bare tag (`v1`, from `ref.name`).
 */
export function parseArchiveName(raw: string, opts: { bareIsTag: boolean }): ArchiveName {
  let ref = raw.trim();
  const at = ref.indexOf('@');
  if (at >= 0) ref = ref.slice(0, at);
  if (opts.bareIsTag && !ref.includes('/') && !ref.includes(':')) {
    return { tag: ref, raw };
  }
  let tag: string | undefined;
  const lastSlash = ref.lastIndexOf('/');
  const colon = ref.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = ref.slice(colon + 1);
    ref = ref.slice(0, colon);
  }
  const parts = ref.split('/').filter(Boolean);
  const image = parts[parts.length - 1];
  return { ...(image ? { image } : {}), ...(tag ? { tag } : {}), raw };
}

function describe(img: ArchiveImage): string {
  const names = img.names.map((n) => n.raw);
  return `${img.where}${names.length ? ` (${names.join(', ')})` : ''} ${img.digest}`;
}

/** Applies the naming rules to the archive's images. */
export function resolveTargets(content: ArchiveContent, dest: Destination): PushTarget[] {
  const base = `${dest.owner}/${dest.repository}`;
  // One entry per root digest: several index.json entries may name the same manifest.
  const roots = new Map<string, ArchiveImage>();
  for (const img of content.images) {
    const seen = roots.get(img.digest);
    if (seen) seen.names.push(...img.names);
    else roots.set(img.digest, { ...img, names: [...img.names] });
  }
  if (roots.size === 0) throw new ImportError('MISSING_FILE', 'the archive holds no image');

  const checkTag = (tag: string, img: ArchiveImage, raw: string) => {
    if (!isValidTag(tag)) {
      throw new ImportError('BAD_NAME', `${img.where}: the tag "${tag}" of "${raw}" is not a valid tag: push it as OWNER/REPOSITORY/IMAGE:TAG to choose one`);
    }
  };
  const byName = new Map<string, PushTarget>();
  const add = (name: string, img: ArchiveImage, tag: string | undefined) => {
    let t = byName.get(`${name}\0${img.digest}`);
    if (!t) {
      t = { name, digest: img.digest, mediaType: img.mediaType, tags: [] };
      byName.set(`${name}\0${img.digest}`, t);
    }
    if (tag !== undefined && !t.tags.includes(tag)) t.tags.push(tag);
  };

  if (dest.tag !== undefined) {
    if (roots.size > 1) {
      const list = [...roots.values()].map(describe).join('; ');
      throw new ImportError(
        'BAD_NAME',
        `the archive holds ${roots.size} images (${list}); a TAG can name only one: push to ${base}/${dest.image} (each image keeps its own tags) or to ${base}`,
      );
    }
    const img = [...roots.values()][0]!;
    add(`${base}/${dest.image}`, img, dest.tag);
  } else {
    for (const img of roots.values()) {
      if (dest.image !== undefined) {
        const name = `${base}/${dest.image}`;
        const tags = img.names.map((n) => n.tag).filter((t): t is string => t !== undefined);
        for (const n of img.names) if (n.tag !== undefined) checkTag(n.tag, img, n.raw);
        if (tags.length === 0) add(name, img, undefined);
        for (const tag of tags) add(name, img, tag);
        continue;
      }
      const named = img.names.filter((n) => n.image !== undefined);
      if (named.length === 0) {
        throw new ImportError(
          'BAD_NAME',
          `cannot tell the image name of ${describe(img)}: the archive gives it no repository name; push to ${base}/IMAGE[:TAG]`,
        );
      }
      for (const n of named) {
        if (!isValidComponent(n.image!)) {
          throw new ImportError(
            'BAD_NAME',
            `${img.where}: "${n.raw}" gives the image name "${n.image}", which is not a valid name component; push to ${base}/IMAGE[:TAG]`,
          );
        }
        if (n.tag !== undefined) checkTag(n.tag, img, n.raw);
        // a bare tag (ref.name "v1") next to a name applies to every name of the image
        const tags = n.tag !== undefined ? [n.tag] : img.names.filter((m) => m.image === undefined && m.tag !== undefined).map((m) => m.tag!);
        if (tags.length === 0) add(`${base}/${n.image}`, img, undefined);
        for (const tag of tags) add(`${base}/${n.image}`, img, tag);
      }
    }
  }
  // two images must not claim the same name:tag
  const claimed = new Map<string, string>();
  for (const t of byName.values()) {
    for (const tag of t.tags) {
      const key = `${t.name}:${tag}`;
      const other = claimed.get(key);
      if (other !== undefined && other !== t.digest) {
        throw new ImportError('BAD_NAME', `two different images of the archive (${other} and ${t.digest}) would both be tagged ${key}`);
      }
      claimed.set(key, t.digest);
    }
  }
  for (const t of byName.values()) {
    try {
      parseImageName(t.name);
    } catch (e) {
      if (e instanceof RegistryError) throw new ImportError('BAD_NAME', `${t.name}: ${e.message}`);
      throw e;
    }
  }
  return [...byName.values()];
}
