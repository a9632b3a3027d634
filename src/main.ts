import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { type Config, parseListen, sqlitePath, storagePath } from './config/schema.ts';
import { Registry } from './core/registry.ts';
import { DEFAULT_LAYER_LIMITS } from './core/supply-chain/sbom/limits.ts';
import { Egress, type Resolve } from './core/egress/egress.ts';
import { buildApp } from './http/app.ts';
import type { ClusterMetrics } from './http/metrics.ts';
import { openSqlite } from './metadata/sql/sqlite.ts';
import { SqlDomainStore } from './metadata/sql/domain-store.ts';
import { TokenService } from './core/access/tokens.ts';
import type { AccessStore } from './metadata/access-store.ts';
import type { MetadataStore } from './metadata/metadata-store.ts';
import { FsBlobStore } from './storage/fs.ts';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Server as HttpsServer } from 'node:https';
import { Keyring } from './core/keys/keyring.ts';
import { sealedSites, sweepSealed } from './core/keys/sealed.ts';
import { signingIdentity } from './core/supply-chain/signing/signing.ts';
import path from 'node:path';
import type { BlobStore } from './storage/blob-store.ts';
import type { CounterBackend } from './core/limits/counters.ts';

export interface Berth {
  app: FastifyInstance;
  registry: Registry;
  meta: MetadataStore;
  accessStore: AccessStore;
  store: BlobStore;
  /** Set on the first start of an empty database when the admin password was generated. */
  generatedAdminPassword?: string;
  /** Deletes events past `events.retentionDays` now (also run hourly); returns how many. */
  pruneEvents(): Promise<number>;
  /**
   * With `tls` configured: re-reads the certificate and key and serves them to new connections
   * (SIGHUP). A pair that does not load is refused and the one in use stays.
   */
  reloadTls(): Promise<void>;
  /** Stops accepting requests, waits for in-flight ones, closes the stores. */
  close(): Promise<void>;
}

export function createLogger(config: Pick<Config, 'logLevel'>): Logger {
  return pino({
    level: config.logLevel,
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', '*.password', '*.token'], censor: '[redacted]' },
  });
}

/** Opens the configured blob store (a folder by default, or S3). */
export async function openBlobStore(config: Config): Promise<BlobStore> {
  if (config.storage.driver === 's3') {
    const s3 = config.storage.s3!;
    // Loaded only when configured: the AWS SDK costs ~15 MB of memory the default never needs.
    const { S3BlobStore } = await import('./storage/s3.ts');
    const spoolDir = path.join(config.data, 'spool');
    await mkdir(spoolDir, { recursive: true, mode: 0o700 });
    return new S3BlobStore({ ...s3, spoolDir });
  }
  const store = new FsBlobStore(storagePath(config));
  await store.init();
  return store;
}

/** Opens the configured metadata store (SQLite by default, or PostgreSQL). */
export async function openMetadata(config: Config, opts: { migrate?: boolean; check?: boolean } = {}) {
  const migrate = opts.migrate ?? config.metadata.migrate;
  if (config.metadata.driver === 'postgres') {
    // Loaded only when configured (pg is ~10 MB the embedded default never needs).
    const { openPostgres } = await import('./metadata/sql/postgres.ts');
    return openPostgres({ url: config.metadata.postgresUrl!, poolSize: config.metadata.poolSize, migrate, check: opts.check });
  }
  return openSqlite(sqlitePath(config));
}

/** Creates the data folder owner-only (0700); an existing one is left as the operator made it. */
export async function ensureDataDir(config: Config): Promise<void> {
  const made = await mkdir(config.data, { recursive: true, mode: 0o700 });
  if (made !== undefined) await chmod(config.data, 0o700); // whatever the umask
}

/** The key-encryption keys of this node (config `keys`, docs/operations.md#keys). */
export function openKeyring(config: Config): Promise<Keyring> {
  return Keyring.open({ dataDir: config.data, ...(config.keys.kekFile ? { kekFile: config.keys.kekFile } : {}), ...(config.keys.kek ? { kek: config.keys.kek } : {}) });
}

export interface CreateOptions {
  /** Name resolution for outbound requests (tests give a table; default the system's). */
  resolve?: Resolve;
  /** With several workers: GET /metrics answers for all of them (src/cli/serve.ts). */
  clusterMetrics?: ClusterMetrics;
  /**
   * A worker of `berth serve --workers N` on SQLite: rate-limit counters are kept by the
   * supervisor (src/cli/serve.ts), so that every worker counts against the same totals.
   */
  clusterCounters?: boolean;
}

/** Composition root: config → stores → core → HTTP app. Does not listen. */
export async function createBerth(config: Config, logger: Logger | false = false, opts: CreateOptions = {}): Promise<Berth> {
  await ensureDataDir(config);
  const keyring = await openKeyring(config);
  const blobStore = await openBlobStore(config);
  const opened = await openMetadata(config);
  const { meta, access, events, jobs, gc, lifecycle, signing, sbom, vulns, limits, db } = opened;
  // Counters shared by every node on PostgreSQL; the supervisor's for workers on SQLite;
  // this process's otherwise (docs/limits.md#where-the-counters-live).
  const counters: CounterBackend =
    'pool' in opened ? { kind: 'postgres', pool: opened.pool } : opts.clusterCounters ? { kind: 'cluster' } : { kind: 'memory' };
  const domains = new SqlDomainStore(db);
  // Secrets stored in plain text by an older Berth are sealed now; a value sealed with a key
  // this node lacks stops the start with a message naming it.
  try {
    await sweepSealed(keyring, await sealedSites(access, events, config.proxy.secretKey, signing, domains), { rotate: false });
  } catch (e) {
    await meta.close();
    throw e;
  }
  const tokens = await TokenService.open(access, keyring, config.auth.service, config.auth.tokenTtlSeconds);
  const s3 = config.storage.driver === 's3' ? config.storage.s3 : undefined;
  const log = logger === false ? undefined : logger;
  const registry = new Registry(meta, blobStore, access, tokens, {
    ...(s3?.redirect ? { redirectSeconds: s3.redirectExpiresSeconds } : {}),
    proxy: { ...config.proxy, onUpstreamError: (url, reason) => log?.warn({ upstream: url, reason }, 'upstream unreachable') },
    egress: new Egress({ allow: config.egress.allow, ...(opts.resolve ? { resolve: opts.resolve } : {}) }),
    keyring,
    uploads: { maxSessionsPerUser: config.uploads.maxSessionsPerUser, maxSessionsPerRepository: config.uploads.maxSessionsPerRepository },
    jobs: {
      store: jobs,
      options: {
        concurrency: config.jobs.concurrency,
        pollIntervalMs: config.jobs.pollIntervalMs,
        leaseMs: config.jobs.leaseSeconds * 1000,
        maxAttempts: config.jobs.maxAttempts,
        backoffBaseMs: config.jobs.backoffBaseMs,
        backoffMaxMs: config.jobs.backoffMaxSeconds * 1000,
        onError: (e, job) => log?.error({ err: e, job: { id: job.id, kind: job.kind, subject: job.subject, attempts: job.attempts } }, 'job failed'),
      },
    },
    lifecycle,
    signing: {
      store: signing,
      options: {
        identity: signingIdentity({ signingIdentity: config.signing.identity, publicUrl: config.auth.publicUrl, listen: parseListen(config.listen) }),
        cacheMs: config.signing.cacheSeconds * 1000,
      },
    },
    sbom,
    vulns: {
      store: vulns,
      options: {
        mirrorUrls: config.vulns.mirror.urls,
        maxArchiveBytes: config.vulns.maxArchiveBytes,
        downloadTimeoutMs: 30 * 60_000,
        policyCacheMs: config.vulns.policyCacheSeconds * 1000,
        spoolDir: path.join(config.data, 'spool', 'vulndb'),
        limits: { maxRecordBytes: config.vulns.maxRecordBytes, maxRecords: 2_000_000 },
      },
    },
    sbomOptions: { enabled: config.sbom.enabled, limits: { ...DEFAULT_LAYER_LIMITS, maxBytes: config.sbom.maxLayerBytes, maxPackages: config.sbom.maxPackages } },
    limits: { store: limits, counters, refreshMs: config.rateLimits.refreshSeconds * 1000, onError: (e) => log?.error({ err: e }, 'reading the rate limits failed') },
    domains: { store: domains, options: { cacheMs: config.domains.cacheSeconds * 1000, reserved: [config.auth.service.toLowerCase()] } },
    gc: {
      store: gc,
      options: { graceMs: config.gc.graceSeconds * 1000, collectUntagged: config.gc.collectUntagged, tombstoneMs: 7 * 86_400_000 },
      onSweepError: (e, blobs) => log?.error({ err: e, blobs }, 'deleting swept blobs failed: they stay deleting and are swept again'),
      reconcile: { minAgeMs: config.gc.reconcileMinAgeSeconds * 1000, applyOnSchedule: config.gc.reconcileApply },
      onReconcile: (r) => {
        if (r.totals.orphans || r.totals.missing || r.totals.staleMultiparts || r.failed) log?.warn({ dryRun: r.dryRun, ...r.totals, failed: r.failed }, 'storage reconciler: objects without rows or rows without objects');
        else log?.info({ scanned: r.scanned }, 'storage reconciler: store and metadata agree');
      },
    },
    events: {
      store: events,
      bus: {
        enabled: config.events.enabled,
        queueSize: config.events.queueSize,
        batchSize: config.events.batchSize,
        flushIntervalMs: config.events.flushIntervalMs,
        onError: (e, lost) => log?.error({ err: e, lost }, 'writing events failed'),
      },
      webhooks: {
        ...config.webhooks,
        onError: (e) => log?.error({ err: e }, 'webhook delivery worker failed'),
        onDeliveryError: (origin, reason) => log?.warn({ origin, reason }, 'webhook delivery attempt failed'),
      },
    },
  });
  const boot = await registry.tenancy.bootstrapAdmin(config.auth.adminPassword);
  await registry.rateLimits.start();
  if (!config.auth.publicUrl) {
    log?.warn(
      'auth.publicUrl is not set: the token realm is the address each client connected to (or X-Forwarded-Host from events.trustedProxies); set auth.publicUrl (BERTH_PUBLIC_URL) to the URL clients use',
    );
  }
  const tls = config.tls.cert && config.tls.key ? await readTlsPair(config.tls.cert, config.tls.key) : undefined;
  const app = buildApp(registry, {
    ...(tls ? { tls: { ...tls, http2: config.tls.http2 } } : {}),
    auth: { ...config.auth, listen: config.listen },
    logger: logger === false ? false : logger,
    readiness: [() => meta.ping(), async () => void (await blobStore.listUploads())],
    ...('reads' in opened && opened.reads ? { requestStarted: opened.reads.requestStarted.bind(opened.reads) } : {}),
    // Next to the blobs on the same filesystem (fs), or with the S3 part spool.
    importSpoolDir: path.join(config.storage.driver === 's3' ? path.join(config.data, 'spool') : storagePath(config), 'imports'),
    trustProxy: config.events.trustedProxies,
    metrics: config.metrics.enabled,
    http: config.http,
    imports: {
      maxBytes: config.imports.maxArchiveBytes,
      maxUnpackedBytes: config.imports.maxUnpackedBytes,
      maxExpansionRatio: config.imports.maxExpansionRatio,
      maxPerUser: config.imports.maxConcurrentPerUser,
    },
    ...(opts.clusterMetrics ? { clusterMetrics: opts.clusterMetrics } : {}),
  });
  registry.webhooks.start();
  registry.jobs.start(registry);

  const expireMs = config.uploads.expireAfterSeconds * 1000;
  const expire = () =>
    registry.uploads.expire(Date.now() - expireMs).then(
      (n) => {
        if (logger && n > 0) logger.info({ removed: n }, 'removed expired upload sessions');
      },
      (e: unknown) => {
        if (logger) logger.error({ err: e }, 'expiring stale uploads failed');
      },
    );
  await expire(); // at start-up: also clears data left by a crash
  const sweep = setInterval(() => void expire(), Math.min(expireMs, 3600_000));
  sweep.unref();

  // Retention: events (and finished webhook deliveries) older than events.retentionDays.
  const retentionMs = config.events.retentionDays * 86_400_000;
  const pruneEvents = async (): Promise<number> => {
    let removed = 0;
    for (let n = -1; n !== 0; removed += n) n = await events.deleteEventsBefore(Date.now() - retentionMs, 5000);
    if (log && removed > 0) log.info({ removed }, 'removed events past retention');
    return removed;
  };
  const prune = () => void pruneEvents().catch((e: unknown) => log?.error({ err: e }, 'removing old events failed'));
  const firstPrune = setTimeout(prune, 10_000);
  firstPrune.unref();
  const pruneTimer = setInterval(prune, 3600_000);
  pruneTimer.unref();

  // Lifecycle housekeeping: tombstones of deleted blobs older than a week go; retention rules run.
  const gcTimer = setInterval(() => {
    void registry.gc.pruneTombstones().catch((e: unknown) => log?.error({ err: e }, 'removing GC tombstones failed'));
    void registry.gc.resweep().catch((e: unknown) => log?.error({ err: e }, 'sweeping blobs left deleting failed'));
    void registry.retention.enqueueAll().catch((e: unknown) => log?.error({ err: e }, 'queueing retention runs failed'));
  }, config.gc.intervalSeconds * 1000);
  gcTimer.unref();
  // The storage reconciler: one job, deduplicated, so one node at a time walks the store.
  const reconcileTimer = setInterval(() => {
    void registry.reconciler.enqueue().catch((e: unknown) => log?.error({ err: e }, 'queueing the storage reconciler failed'));
  }, config.gc.reconcileIntervalSeconds * 1000);
  reconcileTimer.unref();

  // The vulnerability database: refreshed from the configured mirror (a job, on any one node).
  const refreshVulns = () => void registry.vulns.enqueueRefresh().catch((e: unknown) => log?.error({ err: e }, 'queueing the vulnerability database refresh failed'));
  const vulnsTimer = setInterval(refreshVulns, config.vulns.mirror.refreshHours * 3600_000);
  vulnsTimer.unref();
  if (config.vulns.mirror.urls.length) {
    const db = await registry.vulns.databaseState();
    // First start, or the last refresh is older than the interval (a restart must not wait a whole period).
    if (!db.refreshedAt || Date.now() - db.refreshedAt > config.vulns.mirror.refreshHours * 3600_000) refreshVulns();
  }

  let closed = false;
  return {
    app,
    registry,
    meta,
    accessStore: access,
    store: blobStore,
    ...(boot.generatedPassword ? { generatedAdminPassword: boot.generatedPassword } : {}),
    pruneEvents,
    async reloadTls() {
      if (!config.tls.cert || !config.tls.key) throw new Error('TLS is not configured (tls.cert, tls.key)');
      const pair = await readTlsPair(config.tls.cert, config.tls.key);
      (app.server as unknown as HttpsServer).setSecureContext(pair);
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      clearTimeout(firstPrune);
      clearInterval(pruneTimer);
      clearInterval(gcTimer);
      clearInterval(reconcileTimer);
      clearInterval(vulnsTimer);
      registry.rateLimits.stop();
      await app.close();
      await registry.events.close(); // writes what in-flight requests emitted
      await registry.webhooks.stop();
      await registry.jobs.stop();
      await registry.gc.flushSweeps();
      await registry.pulls.flush();
      registry.proxy.close(); // idle keep-alive sockets to upstreams
      await meta.close();
    },
  };
}

/** Reads a PEM certificate and key and checks that they load and belong together. */
async function readTlsPair(certFile: string, keyFile: string): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (f: string, what: string) => {
    try {
      return await readFile(f);
    } catch (e) {
      throw new Error(`cannot read the TLS ${what} ${f}: ${(e as Error).message}`);
    }
  };
  const pair = { cert: await read(certFile, 'certificate'), key: await read(keyFile, 'key') };
  try {
    createSecureContext(pair);
  } catch (e) {
    throw new Error(`the TLS certificate ${certFile} and key ${keyFile} do not load: ${(e as Error).message}`);
  }
  return pair;
}

/** Starts Berth and listens; resolves with the bound address. */
export async function serve(config: Config, logger: Logger, opts: CreateOptions = {}): Promise<{ berth: Berth; address: string }> {
  const berth = await createBerth(config, logger, opts);
  const { host, port } = parseListen(config.listen);
  const address = await berth.app.listen({ host, port });
  return { berth, address };
}
