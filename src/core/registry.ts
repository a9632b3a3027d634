import { Access } from './access/access.ts';
import { AuditLog } from './events/audit.ts';
import { EventBus, type EventBusOptions } from './events/bus.ts';
import { type WebhookOptions, Webhooks } from './events/webhooks.ts';
import { Authenticator } from './access/auth.ts';
import { Blobs } from './content/blobs.ts';
import { Images } from './content/images.ts';
import { Manifests } from './content/manifests.ts';
import { DEFAULT_PROXY_OPTIONS, type ProxyOptions, UpstreamProxy } from './proxy/proxy.ts';
import { Egress } from './egress/egress.ts';
import { Tenancy } from './access/tenancy.ts';
import { Accounts } from './access/accounts.ts';
import type { TokenService } from './access/tokens.ts';
import { type UploadLimits, Uploads } from './content/uploads.ts';
import { Keyring } from './keys/keyring.ts';
import { JobQueue, type JobQueueOptions } from './jobs/queue.ts';
import type { JobStore } from '../metadata/job-store.ts';
import { GarbageCollector, type GcOptions } from './lifecycle/gc.ts';
import type { GcStore } from '../metadata/gc-store.ts';
import type { LifecycleStore } from '../metadata/lifecycle-store.ts';
import { RepositoryPolicies } from './lifecycle/policy.ts';
import { RetentionRules } from './lifecycle/retention.ts';
import { PullLog } from './lifecycle/pulls.ts';
import { StorageReconciler, type ReconcileOptions, type ReconcileReport } from './lifecycle/reconcile.ts';
import { PullPolicies } from './supply-chain/pull-policy.ts';
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

/** The durable job queue's store and settings (DESIGN §10). */
export interface JobsSetup {
  store: JobStore;
  options?: JobQueueOptions;
}

/** Online garbage collection's store and settings (docs/lifecycle.md). */
export interface GcSetup {
  store: GcStore;
  options?: GcOptions;
  /** A batch of blob byte deletions failed (retried by `gc.resweep`). */
  onSweepError?: (e: unknown, blobs: number) => void;
  reconcile?: ReconcileOptions;
  /** A scheduled reconciler run finished. */
  onReconcile?: (r: ReconcileReport) => void;
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
  readonly accounts: Accounts;
  /** The event stream (docs/events.md): the HTTP layer emits, a background writer records. */
  readonly events: EventBus;
  readonly webhooks: Webhooks;
  readonly audit: AuditLog;
  /** The pull-through cache (docs/proxy.md). */
  readonly proxy: UpstreamProxy;
  /** Every outbound request (webhooks, upstreams) connects through it (docs/security.md). */
  readonly egress: Egress;
  /** Seals secrets stored in the database (core/keys). */
  readonly keyring: Keyring;
  /** The one durable job queue (DESIGN §10): workers are registered by the features using it. */
  readonly jobs: JobQueue<Registry>;
  /** Online garbage collection: reviews run as jobs (docs/lifecycle.md). */
  readonly gc: GarbageCollector;
  /** Immutable tags and storage quotas (docs/lifecycle.md). */
  readonly policies: RepositoryPolicies;
  /** Retention rules, run as jobs (docs/lifecycle.md). */
  readonly retention: RetentionRules;
  /** When each manifest was last pulled, written in batches (retention's pulledWithin). */
  readonly pulls: PullLog;
  /** Objects in storage without a row, rows without their bytes (docs/lifecycle.md). */
  readonly reconciler: StorageReconciler;
  /** The ordered chain that may refuse a manifest pull after access (DESIGN §11). */
  readonly pullPolicies: PullPolicies;

  constructor(
    readonly meta: MetadataStore,
    readonly store: BlobStore,
    readonly accessStore: AccessStore,
    readonly tokens: TokenService,
    opts: {
      redirectSeconds?: number;
      events?: EventsSetup;
      proxy?: ProxyOptions;
      egress?: Egress;
      uploads?: UploadLimits;
      keyring?: Keyring;
      jobs: JobsSetup;
      gc: GcSetup;
      lifecycle: LifecycleStore;
      /** How often pull times are written (core/lifecycle/pulls.ts); default 30 s. */
      pullFlushMs?: number;
    },
  ) {
    this.egress = opts.egress ?? new Egress();
    this.keyring = opts.keyring ?? Keyring.ephemeral();
    this.jobs = new JobQueue<Registry>(opts.jobs.store, opts.jobs.options);
    this.access = new Access(accessStore);
    this.authenticator = new Authenticator(accessStore);
    this.tenancy = new Tenancy(accessStore, this.access);
    this.policies = new RepositoryPolicies(opts.lifecycle, accessStore, this.tenancy);
    this.pullPolicies = new PullPolicies(async (identity, owner, repository) => (await this.access.check(identity, owner, repository)).actions.has('push'));
    this.images = new Images(meta);
    this.blobs = new Blobs(meta, store, this.images, opts.redirectSeconds);
    this.uploads = new Uploads(meta, store, this.images, opts.uploads);
    this.manifests = new Manifests(meta, this.images, this.policies);
    this.proxy = new UpstreamProxy(meta, accessStore, this.images, this.manifests, this.uploads, { ...(opts.proxy ?? DEFAULT_PROXY_OPTIONS), keyring: this.keyring }, this.egress);
    const ev = opts.events;
    this.webhooks = new Webhooks(
      ev?.store,
      this.access,
      { ...(ev?.webhooks ?? { maxAttempts: 5, backoffBaseMs: 1000, timeoutMs: 10_000, pollIntervalMs: 1000, concurrency: 4 }), keyring: this.keyring },
      this.egress,
    );
    this.events = new EventBus(ev?.store, {
      ...(ev?.bus ?? { enabled: false, queueSize: 1, batchSize: 1, flushIntervalMs: 1000 }),
      deliveriesFor: (events) => this.webhooks.deliveriesFor(events),
      onDeliveries: () => this.webhooks.kick(),
    });
    this.audit = new AuditLog(ev?.store, this.access, accessStore);
    this.pulls = new PullLog(opts.lifecycle, opts.pullFlushMs);
    this.retention = new RetentionRules(opts.lifecycle, meta, accessStore, this.tenancy, this.policies, this.jobs as JobQueue<unknown>, this.events, this.pulls);
    // A push batches with the next minute's pushes into one run of the repository's rules.
    this.policies.onTagPush = (repositoryId) => this.retention.enqueue([repositoryId], Date.now() + 60_000);
    this.gc = new GarbageCollector(opts.gc.store, this.jobs as JobQueue<unknown>, opts.jobs.store, store, this.events, opts.gc.options, opts.gc.onSweepError);
    this.reconciler = new StorageReconciler(opts.gc.store, store, this.events, this.jobs as JobQueue<unknown>, async (id) => (await meta.findUpload(id)) !== undefined, opts.gc.reconcile, opts.gc.onReconcile);
    this.accounts = new Accounts(accessStore, meta, this.access, this.tenancy, this.images, this.manifests, this.policies, {
      passwords: () => this.authenticator.forgetPasswords(),
      deleted: () => this.webhooks.forgetCache(),
    });
  }
}
