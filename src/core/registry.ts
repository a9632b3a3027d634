import { Access } from './access/access.ts';
import { AuditLog } from './events/audit.ts';
import { EventBus, type EventBusOptions } from './events/bus.ts';
import { type WebhookOptions, Webhooks } from './events/webhooks.ts';
import { Authenticator } from './access/auth.ts';
import { Blobs } from './content/blobs.ts';
import { Images } from './content/images.ts';
import { Manifests } from './content/manifests.ts';
import { type ProxyOptions, UpstreamProxy } from './proxy/proxy.ts';
import { Tenancy } from './access/tenancy.ts';
import { Lifecycle } from './access/lifecycle.ts';
import type { TokenService } from './access/tokens.ts';
import { Uploads } from './content/uploads.ts';
import type { AccessStore } from '../metadata/access-store.ts';
import type { MetadataStore } from '../metadata/metadata-store.ts';
import type { EventStore } from '../metadata/event-store.ts';
import type { BlobStore } from '../storage/blob-store.ts';

/** The event stream's store and settings; without them events are off and their APIs answer 503. */
export interface EventsSetup {
  store: EventStore;
  bus: Omit<EventBusOptions, 'deliveriesFor' | 'onDeliveries'>;
  webhooks: WebhookOptions;
}

/** The registry's domain logic, composed over the stores. */
export class Registry {
  readonly images: Images;
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly manifests: Manifests;
  readonly access: Access;
  readonly authenticator: Authenticator;
  readonly tenancy: Tenancy;
  /** Passwords and deletions (docs/api.md#lifecycle). */
  readonly lifecycle: Lifecycle;
  /** The event stream (docs/events.md): the HTTP layer emits, a background writer records. */
  readonly events: EventBus;
  readonly webhooks: Webhooks;
  readonly audit: AuditLog;
  /** The pull-through cache (docs/proxy.md). */
  readonly proxy: UpstreamProxy;

  constructor(
    readonly meta: MetadataStore,
    readonly store: BlobStore,
    readonly accessStore: AccessStore,
    readonly tokens: TokenService,
    opts: { redirectSeconds?: number; events?: EventsSetup; proxy?: ProxyOptions } = {},
  ) {
    this.images = new Images(meta);
    this.blobs = new Blobs(meta, store, this.images, opts.redirectSeconds);
    this.uploads = new Uploads(meta, store, this.images);
    this.manifests = new Manifests(meta, this.images);
    this.proxy = new UpstreamProxy(meta, accessStore, this.images, this.manifests, this.uploads, opts.proxy);
    this.access = new Access(accessStore);
    this.authenticator = new Authenticator(accessStore);
    this.tenancy = new Tenancy(accessStore, this.access);
    const ev = opts.events;
    this.webhooks = new Webhooks(ev?.store, this.access, ev?.webhooks ?? { maxAttempts: 5, backoffBaseMs: 1000, timeoutMs: 10_000, pollIntervalMs: 1000, concurrency: 4 });
    this.events = new EventBus(ev?.store, {
      ...(ev?.bus ?? { enabled: false, queueSize: 1, batchSize: 1, flushIntervalMs: 1000 }),
      deliveriesFor: (events) => this.webhooks.deliveriesFor(events),
      onDeliveries: () => this.webhooks.kick(),
    });
    this.audit = new AuditLog(ev?.store, this.access, accessStore);
    this.lifecycle = new Lifecycle(accessStore, meta, this.access, this.tenancy, this.images, this.manifests, {
      passwords: () => this.authenticator.forgetPasswords(),
      deleted: () => this.webhooks.forgetCache(),
    });
  }
}
