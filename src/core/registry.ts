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
import { Signing, type SigningOptions } from './supply-chain/signing/signing.ts';
import type { SigningStore } from '../metadata/signing-store.ts';
import type { InventoryReader } from './supply-chain/inventory.ts';
import { type SbomOptions, SbomService } from './supply-chain/sbom/sbom.ts';
import type { SbomStore } from '../metadata/sbom-store.ts';
import { DEFAULT_VULN_OPTIONS, type VulnOptions, Vulnerabilities } from './supply-chain/vulns/vulns.ts';
import type { VulnStore } from '../metadata/vuln-store.ts';
import { BYTE_WINDOW_SECONDS, RateLimits, REQUEST_WINDOW_SECONDS } from './limits/rate-limits.ts';
import { type CounterBackend, openCounter } from './limits/counters.ts';
import type { RateLimitStore } from '../metadata/rate-limit-store.ts';
import { type DomainOptions, Domains } from './domains/domains.ts';
import type { DomainStore } from '../metadata/domain-store.ts';
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

/** Repository signing's store and settings (docs/signing.md). */
export interface SigningSetup {
  store: SigningStore;
  options: SigningOptions;
}

/** Request and byte limits (docs/limits.md): their rows, where counters live, how often to re-read. */
export interface LimitsSetup {
  store: RateLimitStore;
  counters: CounterBackend;
  refreshMs: number;
  onError?: (e: unknown) => void;
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
  /** Repository signing keys, signing on push, verdicts and the signature pull policy (docs/signing.md). */
  readonly signing: Signing;
  /** SBOM on push: inventories and CycloneDX referrers made by jobs (docs/supply-chain.md). */
  readonly sbom: SbomService;
  /** Stored image inventories, read by the vulnerability matcher. */
  readonly inventories: InventoryReader;
  /** The vulnerability database, matching, reports and pull policy (docs/vulnerabilities.md). */
  readonly vulns: Vulnerabilities;
  /** Request and byte limits per identity and repository (docs/limits.md); inactive when none is set. */
  readonly rateLimits: RateLimits;
  /** Custom domains: host names mapped to owners or repositories (docs/domains.md). */
  readonly domains: Domains;

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
      signing: SigningSetup;
      sbom: SbomStore;
      vulns: { store: VulnStore; options?: VulnOptions };
      sbomOptions?: SbomOptions;
      limits: LimitsSetup;
      /** Without it no host is mapped and adding one answers 503. */
      domains?: { store: DomainStore; options?: DomainOptions };
    },
  ) {
    this.egress = opts.egress ?? new Egress();
    this.keyring = opts.keyring ?? Keyring.ephemeral();
    this.jobs = new JobQueue<Registry>(opts.jobs.store, opts.jobs.options);
    this.access = new Access(accessStore);
    this.domains = new Domains(opts.domains?.store, accessStore, this.keyring, opts.domains?.options);
    this.authenticator = new Authenticator(accessStore);
    this.tenancy = new Tenancy(accessStore, this.access);
    this.policies = new RepositoryPolicies(opts.lifecycle, accessStore, this.tenancy);
    this.pullPolicies = new PullPolicies(async (identity, owner, repository) => (await this.access.check(identity, owner, repository)).actions.has('push'));
    const l = opts.limits;
    this.rateLimits = new RateLimits(
      l.store,
      accessStore,
      this.tenancy,
      { requests: openCounter(l.counters, 'requests', REQUEST_WINDOW_SECONDS), bytes: openCounter(l.counters, 'bytes', BYTE_WINDOW_SECONDS) },
      { refreshMs: l.refreshMs, ...(l.onError ? { onError: l.onError } : {}) },
    );
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
    this.sbom = new SbomService(opts.sbom, this.jobs as JobQueue<unknown>, this, opts.sbomOptions);
    this.inventories = this.sbom.inventories;
    this.manifests.jobs.push({ jobsFor: (image, digest, manifest) => this.sbom.jobsFor(image, digest, manifest), enqueued: () => this.jobs.kick(), cached: true });
    this.vulns = new Vulnerabilities(
      opts.vulns.store,
      this.inventories,
      this.jobs as JobQueue<unknown>,
      this.events,
      this.tenancy,
      meta,
      this.images,
      this.manifests,
      (repositoryId) => this.sbom.enabled(repositoryId),
      this.egress,
      opts.vulns.options ?? DEFAULT_VULN_OPTIONS,
    );
    // A stored inventory is matched by a job; pulls meet the repository's vulnerability policy.
    this.sbom.onInventory = (digest) => this.vulns.onInventory(digest);
    this.pullPolicies.register(this.vulns.policies.pullPolicy());
    this.gc = new GarbageCollector(opts.gc.store, this.jobs as JobQueue<unknown>, opts.jobs.store, store, this.events, opts.gc.options, opts.gc.onSweepError);
    this.reconciler = new StorageReconciler(opts.gc.store, store, this.events, this.jobs as JobQueue<unknown>, async (id) => (await meta.findUpload(id)) !== undefined, opts.gc.reconcile, opts.gc.onReconcile);
    this.signing = new Signing(opts.signing.store, meta, this.blobs, this.uploads, this.manifests, this.tenancy, this.keyring, this.jobs as JobQueue<unknown>, opts.signing.options, this.domains);
    this.pullPolicies.register(this.signing.policy());
    this.accounts = new Accounts(accessStore, meta, this.access, this.tenancy, this.images, this.manifests, this.policies, {
      passwords: () => this.authenticator.forgetPasswords(),
      deleted: () => this.webhooks.forgetCache(),
    });
  }
}
