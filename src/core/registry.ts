import { Access } from './access.ts';
import { Authenticator } from './auth.ts';
import { Blobs } from './blobs.ts';
import { Images } from './images.ts';
import { Manifests } from './manifests.ts';
import { Tenancy } from './tenancy.ts';
import type { TokenService } from './tokens.ts';
import { Uploads } from './uploads.ts';
import type { AccessStore } from '../metadata/access-store.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { BlobStore } from '../storage/blob-store.ts';

/** The registry's domain logic, composed over the stores. */
export class Registry {
  readonly images: Images;
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly manifests: Manifests;
  readonly access: Access;
  readonly authenticator: Authenticator;
  readonly tenancy: Tenancy;

  constructor(
    readonly meta: MetadataStore,
    readonly store: BlobStore,
    readonly accessStore: AccessStore,
    readonly tokens: TokenService,
    opts: { redirectSeconds?: number } = {},
  ) {
    this.images = new Images(meta);
    this.blobs = new Blobs(meta, store, this.images, opts.redirectSeconds);
    this.uploads = new Uploads(meta, store, this.images);
    this.manifests = new Manifests(meta, this.images);
    this.access = new Access(accessStore);
    this.authenticator = new Authenticator(accessStore);
    this.tenancy = new Tenancy(accessStore, this.access);
  }
}
