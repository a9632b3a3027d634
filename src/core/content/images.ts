import { RegistryError } from '../errors.ts';
import { parseImageName } from './names.ts';
import type { ImageRecord, MetadataStore } from '../../metadata/metadata-store.ts';

/**
 * How long a positive lookup is trusted. Images can be deleted (with their repository, owner
 * or user): the process that deletes forgets at once (`forget`); other processes sharing the
 * database find out within this time.
 */
const CACHE_MS = 30_000;

/** Resolves wire names to image rows. Positive lookups are cached for a while. */
export class Images {
  private readonly cache = new Map<string, { img: ImageRecord; until: number }>();

  constructor(private readonly meta: MetadataStore) {}

  /** The image, or NAME_UNKNOWN (NAME_INVALID for a malformed name). */
  async find(name: string): Promise<ImageRecord> {
    const cached = this.cached(name);
    if (cached) return cached;
    parseImageName(name);
    const img = await this.meta.findImage(name);
    if (!img) throw new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${name}`);
    this.remember(img);
    return img;
  }

  /** The image, created with its repository on first push (the owner must exist). */
  async ensure(name: string): Promise<ImageRecord> {
    const cached = this.cached(name);
    if (cached) return cached;
    const img = await this.meta.ensureImage(parseImageName(name));
    if (!img) throw new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${name}`);
    this.remember(img);
    return img;
  }

  /** Forgets cached images whose name is `prefix` or starts with `prefix/` (after a deletion). */
  forget(prefix: string): void {
    for (const name of this.cache.keys()) if (name === prefix || name.startsWith(`${prefix}/`)) this.cache.delete(name);
  }

  private cached(name: string): ImageRecord | undefined {
    const hit = this.cache.get(name);
    if (!hit) return undefined;
    if (hit.until > Date.now()) return hit.img;
    this.cache.delete(name);
    return undefined;
  }

  private remember(img: ImageRecord): void {
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(img.name, { img, until: Date.now() + CACHE_MS });
  }
}
