import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { type Config, parseListen, sqlitePath, storagePath } from './config/schema.ts';
import { Registry } from './core/registry.ts';
import { buildApp } from './http/app.ts';
import type { ClusterMetrics } from './http/metrics.ts';
import { openSqlite } from './metadata/sql/sqlite.ts';
import { TokenService } from './core/access/tokens.ts';
import type { AccessStore } from './metadata/access-store.ts';
import type { MetadataStore } from './metadata/metadata-store.ts';
import { FsBlobStore } from './storage/fs.ts';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from './storage/blob-store.ts';

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
    await mkdir(spoolDir, { recursive: true });
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

export interface CreateOptions {
  /**
   * One of several processes serving the same data (`berth serve --workers`): upload data
   * without a session row is left alone, since another process may be writing it; the
   * supervisor clears it before the workers start.
   */
  shared?: boolean;
  /** With several workers: GET /metrics answers for all of them (src/cli/serve.ts). */
  clusterMetrics?: ClusterMetrics;
}

/** Composition root: config → stores → core → HTTP app. Does not listen. */
export async function createBerth(config: Config, logger: Logger | false = false, opts: CreateOptions = {}): Promise<Berth> {
  const blobStore = await openBlobStore(config);
  const { meta, access, events } = await openMetadata(config);
  const tokens = await TokenService.open(access, config.auth.service, config.auth.tokenTtlSeconds);
  const s3 = config.storage.driver === 's3' ? config.storage.s3 : undefined;
  const log = logger === false ? undefined : logger;
  const registry = new Registry(meta, blobStore, access, tokens, {
    ...(s3?.redirect ? { redirectSeconds: s3.redirectExpiresSeconds } : {}),
    proxy: config.proxy,
    events: {
      store: events,
      bus: {
        enabled: config.events.enabled,
        queueSize: config.events.queueSize,
        batchSize: config.events.batchSize,
        flushIntervalMs: config.events.flushIntervalMs,
        onError: (e, lost) => log?.error({ err: e, lost }, 'writing events failed'),
      },
      webhooks: { ...config.webhooks, onError: (e) => log?.error({ err: e }, 'webhook delivery worker failed') },
    },
  });
  const boot = await registry.tenancy.bootstrapAdmin(config.auth.adminPassword);
  const app = buildApp(registry, {
    auth: config.auth,
    logger: logger === false ? false : logger,
    readiness: [() => meta.ping(), async () => void (await blobStore.listUploads())],
    // Next to the blobs on the same filesystem (fs), or with the S3 part spool.
    importSpoolDir: path.join(config.storage.driver === 's3' ? path.join(config.data, 'spool') : storagePath(config), 'imports'),
    trustProxy: config.events.trustedProxies,
    metrics: config.metrics.enabled,
    ...(opts.clusterMetrics ? { clusterMetrics: opts.clusterMetrics } : {}),
  });
  registry.webhooks.start();

  const expireMs = config.uploads.expireAfterSeconds * 1000;
  const expire = () =>
    registry.uploads.expire(Date.now() - expireMs, { orphans: !opts.shared }).then(
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

  let closed = false;
  return {
    app,
    registry,
    meta,
    accessStore: access,
    store: blobStore,
    ...(boot.generatedPassword ? { generatedAdminPassword: boot.generatedPassword } : {}),
    pruneEvents,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      clearTimeout(firstPrune);
      clearInterval(pruneTimer);
      await app.close();
      await registry.events.close(); // writes what in-flight requests emitted
      await registry.webhooks.stop();
      registry.proxy.close(); // idle keep-alive sockets to upstreams
      await meta.close();
    },
  };
}

/** Starts Berth and listens; resolves with the bound address. */
export async function serve(config: Config, logger: Logger, opts: CreateOptions = {}): Promise<{ berth: Berth; address: string }> {
  const berth = await createBerth(config, logger, opts);
  const { host, port } = parseListen(config.listen);
  const address = await berth.app.listen({ host, port });
  return { berth, address };
}
