import { Blobs } from './blobs.ts';
import { Images } from './images.ts';
import { Manifests } from './manifests.ts';
import { Uploads } from './uploads.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { BlobStore } from '../storage/blob-store.ts';

/** The registry's domain logic, composed over one metadata store and one blob store. */
export class Registry {
  readonly images: Images;
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly manifests: Manifests;

  constructor(
    readonly meta: MetadataStore,
    readonly store: BlobStore,
  ) {
    this.images = new Images(meta);
    this.blobs = new Blobs(meta, store, this.images);
    this.uploads = new Uploads(meta, store, this.images);
    this.manifests = new Manifests(meta, this.images);
  }
}
