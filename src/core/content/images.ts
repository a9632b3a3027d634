import { RegistryError } from '../errors.ts';
import { parseImageName } from './names.ts';
import type { ImageRecord, MetadataStore } from '../../metadata/metadata-store.ts';

/**
 * Resolves wire names to image rows. Positive lookups are cached: an image's id never changes
 * while it exists (images are not deleted in this version).
 */
export class Images {
  private readonly cache = new Map<string, ImageRecord>();

  constructor(private readonly meta: MetadataStore) {}

  /** The image, or NAME_UNKNOWN (NAME_INVALID for a malformed name). */
  async find(name: string): Promise<ImageRecord> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    parseImageName(name);
    const img = await this.meta.findImage(name);
    if (!img) throw new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${name}`);
    this.remember(img);
    return img;
  }

  /** The image, created with its repository on first push (the owner must exist). */
  async ensure(name: string): Promise<ImageRecord> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const img = await this.meta.ensureImage(parseImageName(name));
    if (!img) throw new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${name}`);
    this.remember(img);
    return img;
  }

  private remember(img: ImageRecord): void {
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(img.name, img);
  }
}
