import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseAllowEntry } from '../core/egress/policy.ts';

/** One typed config (DESIGN.md §7): defaults ← YAML file (--config) ← BERTH_* environment. */
export const ConfigSchema = z
  .object({
    /** host:port or :port to listen on. */
    listen: z
      .string()
      .regex(/^(?:\[[0-9a-fA-F:]+\]|[^:\s]*):\d{1,5}$/, 'listen must be HOST:PORT or :PORT')
      .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'listen port must be at most 65535')
      .default(':5000'),
    /** HTTPS: PEM files of the certificate (chain) and its private key; re-read on SIGHUP (docs/operations.md#tls). */
    tls: z
      .object({
        cert: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
        /** Offer HTTP/2 (ALPN h2) next to HTTP/1.1 on the TLS port (docs/operations.md#http2). */
        http2: z.boolean().default(false),
      })
      .strict()
      .refine((t) => !!t.cert === !!t.key, { message: 'tls.cert and tls.key go together' })
      .default({ http2: false }),
    /** Folder for the SQLite database and the filesystem blob store. */
    data: z.string().min(1).default('./data'),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    metadata: z
      .object({
        driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
        /** SQLite file; defaults to <data>/berth.db. */
        sqlitePath: z.string().optional(),
        /** PostgreSQL connection URL (driver postgres), e.g. postgres://berth@db:5432/berth. */
        postgresUrl: z.string().optional(),
        /** Connections per process (driver postgres). */
        poolSize: z.number().int().positive().default(10),
        /** Apply pending migrations at start-up; when false, run `berth migrate` first. */
        migrate: z.boolean().default(true),
      })
      .strict()
      .refine((m) => m.driver !== 'postgres' || !!m.postgresUrl, { message: 'metadata.postgresUrl is required with driver postgres' })
      .default({ driver: 'sqlite', poolSize: 10, migrate: true }),
    storage: z
      .object({
        driver: z.enum(['fs', 's3']).default('fs'),
        /** Blob folder; defaults to <data>/storage. */
        fsPath: z.string().optional(),
        s3: z
          .object({
            bucket: z.string().min(1),
            prefix: z.string().default(''),
            region: z.string().default('us-east-1'),
            /** For S3-compatible services (MinIO, Ceph, …); path-style addressing is then used. */
            endpoint: z.string().url().optional(),
            forcePathStyle: z.boolean().optional(),
            /** Static credentials; otherwise the AWS SDK's default chain (env, profile, instance role). */
            accessKeyId: z.string().optional(),
            secretAccessKey: z.string().optional(),
            /** Multipart part size in bytes (min 5 MiB). */
            partSize: z.number().int().min(5 * 1024 * 1024).default(8 * 1024 * 1024),
            /** Answer blob GETs with a 307 to a presigned URL instead of streaming them. */
            redirect: z.boolean().default(false),
            redirectExpiresSeconds: z.number().int().min(10).max(604_800).default(900),
          })
          .strict()
          .optional(),
      })
      .strict()
      .refine((st) => st.driver !== 's3' || !!st.s3, { message: 'storage.s3 (at least bucket) is required with driver s3' })
      .default({ driver: 'fs' }),
    uploads: z
      .object({
        /** Upload sessions idle longer than this many seconds are removed. */
        expireAfterSeconds: z.number().int().positive().default(24 * 3600),
        /** Open upload sessions one user (or anonymous source) may hold; beyond, POST answers 429. */
        maxSessionsPerUser: z.number().int().positive().default(200),
        /** Open upload sessions per repository (all its images together). */
        maxSessionsPerRepository: z.number().int().positive().default(500),
      })
      .strict()
      .default({ expireAfterSeconds: 24 * 3600, maxSessionsPerUser: 200, maxSessionsPerRepository: 500 }),
    /** Connection and request timeouts, and connections per client address (docs/security.md#resource-limits). */
    http: z
      .object({
        /** Time a client has to send the request line and headers. */
        headersTimeoutSeconds: z.number().int().min(1).max(600).default(30),
        /** An idle keep-alive connection is closed after this long. */
        keepAliveTimeoutSeconds: z.number().int().min(1).max(3600).default(65),
        /**
         * A request body that brings less than `bodyMinBytes` in this many seconds (stalled, or
         * trickling) is cut off; its upload session stays resumable. An answer the client stops
         * reading for this long is cut too. No limit on a request's total time.
         */
        bodyIdleTimeoutSeconds: z.number().int().min(1).max(3600).default(60),
        bodyMinBytes: z.number().int().min(1).default(16 * 1024),
        /** Open connections per client address; more are closed at once. 0: no limit. */
        maxConnectionsPerAddress: z.number().int().nonnegative().default(256),
      })
      .strict()
      .default({ headersTimeoutSeconds: 30, keepAliveTimeoutSeconds: 65, bodyIdleTimeoutSeconds: 60, bodyMinBytes: 16 * 1024, maxConnectionsPerAddress: 256 }),
    /** The import API (`berth push`, POST …/import): bounds per archive and per user. */
    imports: z
      .object({
        /** Largest archive accepted (bytes spooled per import). */
        maxArchiveBytes: z.number().int().positive().default(32 * 1024 ** 3),
        /** Most bytes a gzip'd archive may decompress to. */
        maxUnpackedBytes: z.number().int().positive().default(64 * 1024 ** 3),
        /** Most a gzip'd archive may expand, as a multiple of its size (archives may always reach 64 MiB). */
        maxExpansionRatio: z.number().positive().default(20),
        /** Imports one user may have uploading, queued or running at once; beyond, 429. */
        maxConcurrentPerUser: z.number().int().positive().default(2),
      })
      .strict()
      .default({ maxArchiveBytes: 32 * 1024 ** 3, maxUnpackedBytes: 64 * 1024 ** 3, maxExpansionRatio: 20, maxConcurrentPerUser: 2 }),
    /**
     * The key-encryption key that seals secrets stored in the database (docs/operations.md#keys).
     * Default: `<data>/berth.kek`, created 0600 on first start.
     */
    keys: z
      .object({
        /** A key file to use instead (e.g. a mounted secret shared by every node); must exist. */
        kekFile: z.string().min(1).optional(),
        /** Keys given inline (prefer BERTH_KEK): base64 of 32 bytes each, comma-separated, the current one first. */
        kek: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    auth: z
      .object({
        /** The `service` of the bearer-token flow: the token audience and issuer. */
        service: z.string().min(1).default('berth'),
        /**
         * Public base URL (e.g. https://registry.example.com) for the token realm. Unset: the
         * address the client connected to, or X-Forwarded-Proto/-Host from a trusted proxy
         * (`events.trustedProxies`) — never the Host header; a warning is logged at start-up.
         */
        publicUrl: z.string().url().optional(),
        /** Lifetime of bearer tokens, in seconds. */
        tokenTtlSeconds: z.number().int().min(30).max(86_400).default(300),
        /** Password of the first administrator, created on an empty database; generated and printed once if unset. */
        adminPassword: z.string().min(8).optional(),
        /** Failed logins of one username from one source within the window; then that pair waits it out (docs/security.md). */
        maxLoginFailures: z.number().int().positive().default(10),
        /** Failed logins of one username from all sources within the window; then sources that failed for it wait it out. */
        maxUserLoginFailures: z.number().int().positive().default(100),
        /** Free failures of one username from one source before each next try waits (1 s, 2 s, 4 s, …). */
        loginDelayAfterFailures: z.number().int().nonnegative().default(3),
        /** Longest wait between tries of a failing (source, username); 0: no delays. */
        loginMaxDelaySeconds: z.number().int().nonnegative().max(3600).default(30),
        /** Failed-login counters last this long from their first failure. */
        loginFailureWindowSeconds: z.number().int().positive().default(300),
      })
      .strict()
      .default({
        service: 'berth',
        tokenTtlSeconds: 300,
        maxLoginFailures: 10,
        maxUserLoginFailures: 100,
        loginDelayAfterFailures: 3,
        loginMaxDelaySeconds: 30,
        loginFailureWindowSeconds: 300,
      }),
    /** The event stream: audit log, analytics, webhooks (docs/events.md). */
    events: z
      .object({
        /** Record events at all (off: no audit log, analytics or webhooks from requests). */
        enabled: z.boolean().default(true),
        /** Events older than this many days are deleted by a periodic sweep. */
        retentionDays: z.number().int().positive().default(90),
        /** Events waiting to be written; beyond this, new events are dropped and counted. */
        queueSize: z.number().int().positive().default(20_000),
        /** Events written per transaction, at most. */
        batchSize: z.number().int().positive().max(5_000).default(500),
        /** A partial batch is written after at most this many milliseconds. */
        flushIntervalMs: z.number().int().positive().max(60_000).default(200),
        /**
         * Proxies (IPs or CIDRs, or `loopback`, `linklocal`, `uniquelocal`) whose
         * `X-Forwarded-For` / `-Proto` / `-Host` are believed: the client IP is then the first
         * address not in this list. Empty: the peer address is the client.
         */
        trustedProxies: z.array(z.string().refine(isProxySpec, 'must be an IP address, a CIDR, or loopback | linklocal | uniquelocal')).default([]),
      })
      .strict()
      .default({ enabled: true, retentionDays: 90, queueSize: 20_000, batchSize: 500, flushIntervalMs: 200, trustedProxies: [] }),
    /** Repository webhooks: delivery attempts and backoff. */
    webhooks: z
      .object({
        /** Attempts per delivery, the first included. */
        maxAttempts: z.number().int().min(1).max(20).default(5),
        /** Wait before the second attempt; doubled before each next one (1 s, 2 s, 4 s, …). */
        backoffBaseMs: z.number().int().min(1).default(1000),
        /** Time allowed for the receiver to answer. */
        timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
        /** How often each node looks for due deliveries (its own are sent at once). */
        pollIntervalMs: z.number().int().min(10).default(1000),
        /** Deliveries in flight per node. */
        concurrency: z.number().int().min(1).max(64).default(4),
      })
      .strict()
      .default({ maxAttempts: 5, backoffBaseMs: 1000, timeoutMs: 10_000, pollIntervalMs: 1000, concurrency: 4 }),
    /** The pull-through cache: upstream registries per repository (docs/proxy.md). */
    proxy: z
      .object({
        /** A cached manifest fetched by tag is revalidated with its upstream at most this often. */
        tagTtlSeconds: z.number().int().nonnegative().default(300),
        /** Time an upstream may stay silent (connecting, answering, between body bytes). */
        timeoutMs: z.number().int().min(100).max(600_000).default(30_000),
        /** Retries per upstream on 429, 5xx and network errors, before the next upstream. */
        retries: z.number().int().min(0).max(10).default(2),
        /** Wait before the first retry; doubled before each next one. */
        backoffMs: z.number().int().min(0).max(60_000).default(250),
        /**
         * Deprecated: the key that encrypted upstream passwords before key management (`keys`).
         * Read once to re-seal those passwords under the key-encryption key; not used after.
         */
        secretKey: z.string().min(16).optional(),
      })
      .strict()
      .default({ tagTtlSeconds: 300, timeoutMs: 30_000, retries: 2, backoffMs: 250 }),
    /** Outbound requests (webhooks, upstreams, their redirects and token realms): docs/security.md. */
    egress: z
      .object({
        /**
         * Destinations opened beyond the public internet: CIDRs or addresses (`10.0.0.0/8`,
         * `::1`), host names (`registry.internal`), or either with a port (`127.0.0.1:5000`).
         * Empty (the default): loopback, private, link-local and other non-public addresses are refused.
         */
        allow: z
          .array(z.string().refine((s) => parseAllowEntry(s) !== undefined, 'must be a CIDR, an IP address, a host name, or one of these with :PORT'))
          .default([]),
      })
      .strict()
      .default({ allow: [] }),
    /** Custom domains (docs/domains.md): the mappings themselves live in the database. */
    domains: z
      .object({
        /** How long a node believes a host's mapping (or its absence) before asking the database again. */
        cacheSeconds: z.number().int().min(0).max(300).default(5),
      })
      .strict()
      .default({ cacheSeconds: 5 }),
    /** The durable job queue every process runs (docs/operations.md, "Background jobs"). */
    jobs: z
      .object({
        /** Jobs run at once by each process. */
        concurrency: z.number().int().min(1).max(64).default(2),
        /** How often each process looks for due jobs. */
        pollIntervalMs: z.number().int().min(10).max(3_600_000).default(1000),
        /** A running job's lease, renewed while it runs; a crashed process's jobs are taken over after it. */
        leaseSeconds: z.number().int().min(1).max(86_400).default(60),
        /** Attempts before a job is dead (kept for `berth jobs retry`). */
        maxAttempts: z.number().int().min(1).max(100).default(5),
        /** Wait before the second attempt; doubled before each next one. */
        backoffBaseMs: z.number().int().min(1).default(1000),
        /** Longest wait between attempts. */
        backoffMaxSeconds: z.number().int().min(1).default(3600),
      })
      .strict()
      .default({ concurrency: 2, pollIntervalMs: 1000, leaseSeconds: 60, maxAttempts: 5, backoffBaseMs: 1000, backoffMaxSeconds: 3600 }),
    /** Repository signing (docs/signing.md). */
    signing: z
      .object({
        /**
         * HOST[:PORT][/PATH] that signatures name images under (`critical.identity.docker-reference`
         * = this + `/OWNER/REPOSITORY/IMAGE`): the name clients pull by. Unset: the host and path of
         * `auth.publicUrl`, else the listen address (`localhost:PORT` for a wildcard host).
         */
        identity: z
          .string()
          .regex(/^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*\/?$/, 'signing.identity must be HOST[:PORT][/PATH], e.g. registry.example.com')
          .optional(),
        /** How long a node reuses a repository's signing settings and change counter before asking the database again (other nodes' changes take effect within it). */
        cacheSeconds: z.number().min(0).max(300).default(2),
      })
      .strict()
      .default({ cacheSeconds: 2 }),
    /** Online garbage collection (docs/lifecycle.md). */
    gc: z
      .object({
        /** Nothing unreferenced is deleted sooner than this after its release or last use (0: at once). */
        graceSeconds: z.number().int().nonnegative().default(21_600),
        /** How often each process does GC housekeeping (removing old tombstones). */
        intervalSeconds: z.number().int().min(1).default(3600),
        /** Collect manifests no tag and no index of their image names, after the grace period. */
        collectUntagged: z.boolean().default(true),
        /** How often the storage reconciler walks the store (on one node at a time). */
        reconcileIntervalSeconds: z.number().int().min(60).default(86_400),
        /** Stored objects without a row younger than this are never deleted (an upload may be committing them). */
        reconcileMinAgeSeconds: z.number().int().min(0).default(86_400),
        /** The scheduled reconciler deletes old orphans (true) or only reports them (false). */
        reconcileApply: z.boolean().default(false),
      })
      .strict()
      .default({ graceSeconds: 21_600, intervalSeconds: 3600, collectUntagged: true, reconcileIntervalSeconds: 86_400, reconcileMinAgeSeconds: 86_400, reconcileApply: false }),
    sbom: z
      .object({
        /** Generate an SBOM for each image pushed (repositories may switch it off; docs/supply-chain.md). */
        enabled: z.boolean().default(true),
        /** A layer is read at most this many bytes uncompressed; past that its inventory is what was read. */
        maxLayerBytes: z.number().int().min(1024 * 1024).default(16 * 1024 ** 3),
        /** Packages recorded per layer at most. */
        maxPackages: z.number().int().min(1).max(1_000_000).default(100_000),
      })
      .strict()
      .default({ enabled: true, maxLayerBytes: 16 * 1024 ** 3, maxPackages: 100_000 }),
    /** The vulnerability database and pull policies (docs/vulnerabilities.md). */
    vulns: z
      .object({
        mirror: z
          .object({
            /** OSV `all.zip` URLs (one per ecosystem) refreshed on a schedule, through egress; empty: imports only. */
            urls: z.array(z.string().url().refine((u) => /^https?:\/\//.test(u), 'must be http:// or https://')).max(50).default([]),
            /** Hours between refreshes from the mirror. */
            refreshHours: z.number().positive().max(24 * 30).default(24),
          })
          .strict()
          .default({ urls: [], refreshHours: 24 }),
        /** Bytes of one `all.zip`, uploaded (`berth vulndb import`) or downloaded, at most. */
        maxArchiveBytes: z.number().int().positive().default(2 * 1024 ** 3),
        /** Bytes of one OSV record, at most. */
        maxRecordBytes: z.number().int().positive().max(64 * 1024 * 1024).default(4 * 1024 * 1024),
        /** How long a node trusts a repository's vulnerability policy (and its reports' generation) before asking the database again. */
        policyCacheSeconds: z.number().min(0).max(300).default(2),
      })
      .strict()
      .default({ mirror: { urls: [], refreshHours: 24 }, maxArchiveBytes: 2 * 1024 ** 3, maxRecordBytes: 4 * 1024 * 1024, policyCacheSeconds: 2 }),
    rateLimits: z
      .object({
        /**
         * How often each process asks the database whether the limits changed (docs/limits.md);
         * a change made through a process applies there at once, elsewhere within this time.
         */
        refreshSeconds: z.number().int().min(1).max(3600).default(5),
      })
      .strict()
      .default({ refreshSeconds: 5 }),
    metrics: z
      .object({
        /** Serve Prometheus metrics on GET /metrics. */
        enabled: z.boolean().default(true),
      })
      .strict()
      .default({ enabled: true }),
    /** Seconds to wait for in-flight requests on shutdown. */
    shutdownGraceSeconds: z.number().int().nonnegative().default(30),
    /** Serving processes (`berth serve`); 0 = one per CPU core. See docs/performance.md. */
    workers: z.number().int().min(0).max(256).default(0),
  })
  .strict();

/** An IP, a CIDR, or one of proxy-addr's names for address ranges. */
function isProxySpec(s: string): boolean {
  if (s === 'loopback' || s === 'linklocal' || s === 'uniquelocal') return true;
  const slash = s.indexOf('/');
  const ip = slash === -1 ? s : s.slice(0, slash);
  const version = isIP(ip);
  if (version === 0) return false;
  if (slash === -1) return true;
  const bits = s.slice(slash + 1);
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (version === 4 ? 32 : 128);
}

export type Config = z.infer<typeof ConfigSchema>;

/** BERTH_* variables and the config key each sets. */
const ENV: Record<string, (c: Record<string, any>, v: string) => void> = {
  BERTH_LISTEN: (c, v) => (c.listen = v),
  BERTH_DATA: (c, v) => (c.data = v),
  BERTH_TLS_CERT: (c, v) => ((c.tls ??= {}).cert = v),
  BERTH_TLS_KEY: (c, v) => ((c.tls ??= {}).key = v),
  BERTH_TLS_HTTP2: (c, v) => ((c.tls ??= {}).http2 = v === 'true' || v === '1'),
  BERTH_LOG_LEVEL: (c, v) => (c.logLevel = v),
  BERTH_METADATA_DRIVER: (c, v) => ((c.metadata ??= {}).driver = v),
  BERTH_SQLITE_PATH: (c, v) => ((c.metadata ??= {}).sqlitePath = v),
  BERTH_POSTGRES_URL: (c, v) => ((c.metadata ??= {}).postgresUrl = v),
  BERTH_POSTGRES_POOL_SIZE: (c, v) => ((c.metadata ??= {}).poolSize = Number(v)),
  BERTH_MIGRATE: (c, v) => ((c.metadata ??= {}).migrate = v === 'true' || v === '1'),
  BERTH_STORAGE_DRIVER: (c, v) => ((c.storage ??= {}).driver = v),
  BERTH_STORAGE_PATH: (c, v) => ((c.storage ??= {}).fsPath = v),
  BERTH_S3_BUCKET: (c, v) => (((c.storage ??= {}).s3 ??= {}).bucket = v),
  BERTH_S3_PREFIX: (c, v) => (((c.storage ??= {}).s3 ??= {}).prefix = v),
  BERTH_S3_REGION: (c, v) => (((c.storage ??= {}).s3 ??= {}).region = v),
  BERTH_S3_ENDPOINT: (c, v) => (((c.storage ??= {}).s3 ??= {}).endpoint = v),
  BERTH_S3_ACCESS_KEY_ID: (c, v) => (((c.storage ??= {}).s3 ??= {}).accessKeyId = v),
  BERTH_S3_SECRET_ACCESS_KEY: (c, v) => (((c.storage ??= {}).s3 ??= {}).secretAccessKey = v),
  BERTH_S3_REDIRECT: (c, v) => (((c.storage ??= {}).s3 ??= {}).redirect = v === 'true' || v === '1'),
  BERTH_UPLOAD_EXPIRE_SECONDS: (c, v) => ((c.uploads ??= {}).expireAfterSeconds = Number(v)),
  BERTH_UPLOAD_MAX_SESSIONS_PER_USER: (c, v) => ((c.uploads ??= {}).maxSessionsPerUser = Number(v)),
  BERTH_UPLOAD_MAX_SESSIONS_PER_REPOSITORY: (c, v) => ((c.uploads ??= {}).maxSessionsPerRepository = Number(v)),
  BERTH_HEADERS_TIMEOUT_SECONDS: (c, v) => ((c.http ??= {}).headersTimeoutSeconds = Number(v)),
  BERTH_KEEP_ALIVE_TIMEOUT_SECONDS: (c, v) => ((c.http ??= {}).keepAliveTimeoutSeconds = Number(v)),
  BERTH_BODY_IDLE_TIMEOUT_SECONDS: (c, v) => ((c.http ??= {}).bodyIdleTimeoutSeconds = Number(v)),
  BERTH_BODY_MIN_BYTES: (c, v) => ((c.http ??= {}).bodyMinBytes = Number(v)),
  BERTH_MAX_CONNECTIONS_PER_ADDRESS: (c, v) => ((c.http ??= {}).maxConnectionsPerAddress = Number(v)),
  BERTH_IMPORT_MAX_ARCHIVE_BYTES: (c, v) => ((c.imports ??= {}).maxArchiveBytes = Number(v)),
  BERTH_IMPORT_MAX_UNPACKED_BYTES: (c, v) => ((c.imports ??= {}).maxUnpackedBytes = Number(v)),
  BERTH_IMPORT_MAX_CONCURRENT_PER_USER: (c, v) => ((c.imports ??= {}).maxConcurrentPerUser = Number(v)),
  BERTH_VULNS_MIRROR_URLS: (c, v) => (((c.vulns ??= {}).mirror ??= {}).urls = v.split(',').map((u) => u.trim()).filter(Boolean)),
  BERTH_VULNS_REFRESH_HOURS: (c, v) => (((c.vulns ??= {}).mirror ??= {}).refreshHours = Number(v)),
  BERTH_KEK: (c, v) => ((c.keys ??= {}).kek = v),
  BERTH_KEK_FILE: (c, v) => ((c.keys ??= {}).kekFile = v),
  BERTH_SHUTDOWN_GRACE_SECONDS: (c, v) => (c.shutdownGraceSeconds = Number(v)),
  BERTH_WORKERS: (c, v) => (c.workers = Number(v)),
  BERTH_PROXY_TAG_TTL_SECONDS: (c, v) => ((c.proxy ??= {}).tagTtlSeconds = Number(v)),
  BERTH_PROXY_TIMEOUT_MS: (c, v) => ((c.proxy ??= {}).timeoutMs = Number(v)),
  BERTH_PROXY_SECRET_KEY: (c, v) => ((c.proxy ??= {}).secretKey = v),
  BERTH_AUTH_SERVICE: (c, v) => ((c.auth ??= {}).service = v),
  BERTH_PUBLIC_URL: (c, v) => ((c.auth ??= {}).publicUrl = v),
  BERTH_SIGNING_IDENTITY: (c, v) => ((c.signing ??= {}).identity = v),
  BERTH_SIGNING_CACHE_SECONDS: (c, v) => ((c.signing ??= {}).cacheSeconds = Number(v)),
  BERTH_TOKEN_TTL_SECONDS: (c, v) => ((c.auth ??= {}).tokenTtlSeconds = Number(v)),
  BERTH_ADMIN_PASSWORD: (c, v) => ((c.auth ??= {}).adminPassword = v),
  BERTH_MAX_LOGIN_FAILURES: (c, v) => ((c.auth ??= {}).maxLoginFailures = Number(v)),
  BERTH_MAX_USER_LOGIN_FAILURES: (c, v) => ((c.auth ??= {}).maxUserLoginFailures = Number(v)),
  BERTH_LOGIN_DELAY_AFTER_FAILURES: (c, v) => ((c.auth ??= {}).loginDelayAfterFailures = Number(v)),
  BERTH_LOGIN_MAX_DELAY_SECONDS: (c, v) => ((c.auth ??= {}).loginMaxDelaySeconds = Number(v)),
  BERTH_LOGIN_FAILURE_WINDOW_SECONDS: (c, v) => ((c.auth ??= {}).loginFailureWindowSeconds = Number(v)),
  BERTH_EVENTS_ENABLED: (c, v) => ((c.events ??= {}).enabled = v === 'true' || v === '1'),
  BERTH_EVENTS_RETENTION_DAYS: (c, v) => ((c.events ??= {}).retentionDays = Number(v)),
  BERTH_EVENTS_QUEUE_SIZE: (c, v) => ((c.events ??= {}).queueSize = Number(v)),
  BERTH_TRUSTED_PROXIES: (c, v) => ((c.events ??= {}).trustedProxies = v.split(',').map((x) => x.trim()).filter(Boolean)),
  BERTH_WEBHOOK_MAX_ATTEMPTS: (c, v) => ((c.webhooks ??= {}).maxAttempts = Number(v)),
  BERTH_WEBHOOK_BACKOFF_MS: (c, v) => ((c.webhooks ??= {}).backoffBaseMs = Number(v)),
  BERTH_DOMAINS_CACHE_SECONDS: (c, v) => ((c.domains ??= {}).cacheSeconds = Number(v)),
  BERTH_EGRESS_ALLOW: (c, v) => ((c.egress ??= {}).allow = v.split(',').map((x) => x.trim()).filter(Boolean)),
  BERTH_RATE_LIMITS_REFRESH_SECONDS: (c, v) => ((c.rateLimits ??= {}).refreshSeconds = Number(v)),
  BERTH_JOBS_CONCURRENCY: (c, v) => ((c.jobs ??= {}).concurrency = Number(v)),
  BERTH_JOBS_POLL_INTERVAL_MS: (c, v) => ((c.jobs ??= {}).pollIntervalMs = Number(v)),
  BERTH_JOBS_LEASE_SECONDS: (c, v) => ((c.jobs ??= {}).leaseSeconds = Number(v)),
  BERTH_JOBS_MAX_ATTEMPTS: (c, v) => ((c.jobs ??= {}).maxAttempts = Number(v)),
  BERTH_GC_GRACE_SECONDS: (c, v) => ((c.gc ??= {}).graceSeconds = Number(v)),
  BERTH_GC_INTERVAL_SECONDS: (c, v) => ((c.gc ??= {}).intervalSeconds = Number(v)),
  BERTH_GC_COLLECT_UNTAGGED: (c, v) => ((c.gc ??= {}).collectUntagged = v === 'true' || v === '1'),
  BERTH_GC_RECONCILE_INTERVAL_SECONDS: (c, v) => ((c.gc ??= {}).reconcileIntervalSeconds = Number(v)),
  BERTH_GC_RECONCILE_MIN_AGE_SECONDS: (c, v) => ((c.gc ??= {}).reconcileMinAgeSeconds = Number(v)),
  BERTH_GC_RECONCILE_APPLY: (c, v) => ((c.gc ??= {}).reconcileApply = v === 'true' || v === '1'),
  BERTH_SBOM_ENABLED: (c, v) => ((c.sbom ??= {}).enabled = v === 'true' || v === '1'),
  BERTH_SBOM_MAX_LAYER_BYTES: (c, v) => ((c.sbom ??= {}).maxLayerBytes = Number(v)),
  BERTH_METRICS_ENABLED: (c, v) => ((c.metrics ??= {}).enabled = v === 'true' || v === '1'),
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Loads the config: defaults, then the YAML file, then the environment, then explicit
 * overrides (CLI flags). Fails fast with every problem listed.
 */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Partial<Config> } = {}): Config {
  const env = opts.env ?? process.env;
  let raw: Record<string, any> = {};
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read config file ${opts.file}: ${(e as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (e) {
      throw new ConfigError(`config file ${opts.file} is not valid YAML: ${(e as Error).message}`);
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${opts.file} must be a YAML mapping`);
      raw = doc as Record<string, any>;
    }
  }
  for (const [key, set] of Object.entries(ENV)) {
    const v = env[key];
    if (v !== undefined && v !== '') set(raw, v);
  }
  for (const [k, v] of Object.entries(opts.overrides ?? {})) if (v !== undefined) raw[k] = v;
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return parsed.data;
}

/** How many serving processes `workers` means on this machine (0: one per CPU core). */
export function workerCount(c: Pick<Config, 'workers'>): number {
  return c.workers > 0 ? c.workers : Math.max(1, os.availableParallelism());
}

export function sqlitePath(c: Config): string {
  return c.metadata.sqlitePath ?? path.join(c.data, 'berth.db');
}

export function storagePath(c: Config): string {
  return c.storage.fsPath ?? path.join(c.data, 'storage');
}

/** Splits `host:port` / `:port` / `[::1]:port`; an empty host listens on all interfaces. */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  let host = listen.slice(0, i);
  const port = Number(listen.slice(i + 1));
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host === '' ? '0.0.0.0' : host, port };
}
