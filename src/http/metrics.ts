import type { FastifyReply, FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import type { Registry } from '../core/registry.ts';
import type { JobCount } from '../core/jobs/queue.ts';

/** Seconds: from a fast manifest GET to a multi-GiB blob. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Storage used is a SUM over the blobs table: computed at most this often, on scrape. */
const STORAGE_TTL_MS = 30_000;

/** The jobs table is grouped at most this often, on scrape. */
const JOB_COUNTS_TTL_MS = 5_000;

const UPLOADS_ROUTE = '/v2/{name}/blobs/uploads/';
const UPLOAD_ROUTE = '/v2/{name}/blobs/uploads/{uuid}';

declare module 'fastify' {
  interface FastifyRequest {
    berthSocketStart: { read: number; written: number } | null;
  }
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  return undefined;
}

/**
 * Prometheus metrics (prom-client, one registry per app). Labels use route patterns, never raw
 * URLs, so their number stays bounded: `/v2/{name}/manifests/{reference}`,
 * `/api/v1/repos/:owner/:repo`, `unmatched` for 404s outside any route.
 */
export class Metrics {
  readonly registry = new PromRegistry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: Histogram<'route' | 'method' | 'status'>;
  private readonly bytesIn: Counter<'route'>;
  private readonly bytesOut: Counter<'route'>;
  private readonly uploadsStarted: Counter;
  private readonly uploadsCompleted: Counter;
  private storage: { at: number; bytes: number } | undefined;

  constructor(core: Registry) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: 'berth_http_requests_total', help: 'HTTP requests answered, by route pattern, method and status', labelNames: ['route', 'method', 'status'], registers });
    this.duration = new Histogram({
      name: 'berth_http_request_duration_seconds',
      help: 'Time from request to response sent, by route pattern, method and status',
      labelNames: ['route', 'method', 'status'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.bytesIn = new Counter({ name: 'berth_http_request_bytes_total', help: 'Request body bytes received (Content-Length, else bytes read from the connection)', labelNames: ['route'], registers });
    this.bytesOut = new Counter({ name: 'berth_http_response_bytes_total', help: 'Response body bytes sent (Content-Length, else bytes written to the connection)', labelNames: ['route'], registers });
    this.uploadsStarted = new Counter({ name: 'berth_upload_sessions_started_total', help: 'Blob uploads started (sessions opened, and monolithic uploads)', registers });
    this.uploadsCompleted = new Counter({ name: 'berth_upload_sessions_completed_total', help: 'Blob uploads completed (digest verified, blob stored)', registers });

    const meta = core.meta;
    const self = this;
    new Gauge({
      name: 'berth_storage_used_bytes',
      help: 'Sum of the sizes of all stored blobs (each digest once), refreshed at most every 30 s',
      registers,
      aggregator: 'max', // every worker reads the same database: not a sum across workers
      async collect() {
        const now = Date.now();
        if (!self.storage || self.storage.at < now - STORAGE_TTL_MS) self.storage = { at: now, bytes: await meta.totalBlobBytes() };
        this.set(self.storage.bytes);
      },
    });
    const bus = core.events;
    new Counter({
      name: 'berth_events_recorded_total',
      help: 'Events written to the event store',
      registers,
      collect() {
        this.reset();
        this.inc(bus.stats.recorded);
      },
    });
    new Counter({
      name: 'berth_events_dropped_total',
      help: 'Events dropped: queue_full (the queue was full), write_failed (the store failed three times), rejected (the store refused that one row even sanitised; the rest of its batch was written)',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        this.inc({ reason: 'queue_full' }, bus.stats.droppedQueueFull);
        this.inc({ reason: 'write_failed' }, bus.stats.droppedWriteFailed);
        this.inc({ reason: 'rejected' }, bus.stats.droppedRejected);
      },
    });
    new Counter({
      name: 'berth_events_sanitised_total',
      help: 'Events recorded with control characters (or values the store refused) replaced',
      registers,
      collect() {
        this.reset();
        this.inc(bus.stats.sanitised);
      },
    });
    new Gauge({
      name: 'berth_events_queue_length',
      help: 'Events waiting to be written',
      registers,
      collect() {
        this.set(bus.queueLength);
      },
    });
    new Gauge({
      name: 'berth_events_batch_max_seconds',
      help: 'Longest event batch write since start',
      registers,
      aggregator: 'max',
      collect() {
        this.set(bus.stats.maxBatchMs / 1000);
      },
    });
    const hooks = core.webhooks;
    new Counter({
      name: 'berth_webhook_deliveries_total',
      help: 'Webhook delivery attempts by outcome: delivered, retry (failed, will be retried), failed (given up)',
      labelNames: ['outcome'],
      registers,
      collect() {
        this.reset();
        this.inc({ outcome: 'delivered' }, hooks.stats.delivered);
        this.inc({ outcome: 'retry' }, hooks.stats.retried);
        this.inc({ outcome: 'failed' }, hooks.stats.failed);
      },
    });
    // The job queue (DESIGN §10): one GROUP BY over the jobs table, at most every 5 s, on scrape.
    const jobs = core.jobs;
    let jobCounts: { at: number; rows: Promise<JobCount[]> } | undefined;
    const counts = () => {
      const now = Date.now();
      if (!jobCounts || jobCounts.at < now - JOB_COUNTS_TTL_MS) {
        jobCounts = { at: now, rows: jobs.store.counts(now) };
        jobCounts.rows.catch(() => (jobCounts = undefined));
      }
      return jobCounts;
    };
    new Gauge({
      name: 'berth_jobs',
      help: 'Jobs in the durable queue, by kind and state (queued, running, dead)',
      labelNames: ['kind', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const c of await counts().rows) this.set({ kind: c.kind, state: c.state }, c.count);
      },
    });
    new Gauge({
      name: 'berth_jobs_oldest_due_seconds',
      help: 'Age of the oldest due job not yet done, by kind (0 when none is due)',
      labelNames: ['kind'],
      registers,
      async collect() {
        this.reset();
        const { at, rows } = counts();
        const oldest = new Map<string, number>();
        for (const c of await rows) {
          const age = c.state !== 'dead' && c.due > 0 ? Math.max(0, (at - c.oldestRunAfter) / 1000) : 0;
          oldest.set(c.kind, Math.max(oldest.get(c.kind) ?? 0, age));
        }
        for (const [kind, age] of oldest) this.set({ kind }, age);
      },
    });
    new Counter({
      name: 'berth_job_failures_total',
      help: 'Failed job attempts in this process, by kind (each retry counts)',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const [kind, n] of jobs.stats.failures) this.inc({ kind }, n);
      },
    });
    new Counter({
      name: 'berth_jobs_completed_total',
      help: 'Jobs completed by this process',
      registers,
      collect() {
        this.reset();
        this.inc(jobs.stats.completed);
      },
    });
    const gc = core.gc;
    new Counter({
      name: 'berth_gc_reclaimed_bytes_total',
      help: 'Blob bytes deleted by garbage collection in this process',
      registers,
      collect() {
        this.reset();
        this.inc(gc.stats.bytesReclaimed);
      },
    });
    new Counter({
      name: 'berth_gc_deleted_total',
      help: 'Blobs and manifests deleted by garbage collection in this process',
      labelNames: ['target'],
      registers,
      collect() {
        this.reset();
        this.inc({ target: 'blob' }, gc.stats.blobsDeleted);
        this.inc({ target: 'manifest' }, gc.stats.manifestsDeleted);
      },
    });
    const reconciler = core.reconciler;
    new Gauge({
      name: 'berth_storage_reconcile_findings',
      help: "The storage reconciler's last run in this process: objects without a row (orphans, orphan_bytes), live rows without bytes (missing)",
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const l = reconciler.last;
        if (!l) return;
        this.set({ kind: 'orphans' }, l.orphans);
        this.set({ kind: 'orphan_bytes' }, l.orphanBytes);
        this.set({ kind: 'missing' }, l.missing);
      },
    });
    new Counter({
      name: 'berth_storage_reconcile_deleted_bytes_total',
      help: 'Bytes of objects without a row deleted by the storage reconciler in this process',
      registers,
      collect() {
        this.reset();
        this.inc(reconciler.stats.orphanBytesDeleted);
      },
    });
    // Registered for the pull-through proxy (upstreams), which does not exist yet: always 0.
    new Counter({ name: 'berth_proxy_cache_hits_total', help: 'Pull-through proxy cache hits (no proxy yet: always 0)', registers });
    new Counter({ name: 'berth_proxy_cache_misses_total', help: 'Pull-through proxy cache misses (no proxy yet: always 0)', registers });
  }

  /** onRequest: where the connection's byte counters stood. */
  start(req: FastifyRequest): void {
    const s = req.raw.socket as { bytesRead?: number; bytesWritten?: number } | null;
    if (s && typeof s.bytesRead === 'number' && typeof s.bytesWritten === 'number') req.berthSocketStart = { read: s.bytesRead, written: s.bytesWritten };
  }

  /** onResponse: counts the request. */
  observe(req: FastifyRequest, reply: FastifyReply): void {
    const status = reply.statusCode;
    const matched = req.berthRoute ?? req.routeOptions?.url;
    // The web UI's catch-all answers unknown paths with 404: those matched no real route.
    const route = !matched || (matched === '/*' && status === 404) ? 'unmatched' : matched;
    const labels = this.labelsOf(route, req.method, status);
    this.requests.inc(labels);
    this.duration.observe(labels, reply.elapsedTime / 1000);

    const s = req.raw.socket as { bytesRead?: number; bytesWritten?: number } | null;
    const start = req.berthSocketStart;
    const inBytes = num(req.headers['content-length']) ?? (start && s?.bytesRead !== undefined ? Math.max(0, s.bytesRead - start.read) : 0);
    const outBytes = num(reply.getHeader('content-length')) ?? (start && s?.bytesWritten !== undefined ? Math.max(0, s.bytesWritten - start.written) : 0);
    if (inBytes > 0) this.bytesIn.inc({ route }, inBytes);
    if (outBytes > 0 && req.method !== 'HEAD') this.bytesOut.inc({ route }, outBytes);

    if (route === UPLOADS_ROUTE && req.method === 'POST') {
      const q = req.query as Record<string, unknown>;
      if (status === 202) this.uploadsStarted.inc();
      else if (status === 201 && q.digest !== undefined && q.mount === undefined) {
        this.uploadsStarted.inc();
        this.uploadsCompleted.inc();
      }
    } else if (route === UPLOAD_ROUTE && req.method === 'PUT' && status === 201) {
      this.uploadsCompleted.inc();
    }
  }

  /** Label sets of the requests seen, kept: one object per (route, method, status), not one per request. */
  private readonly labelSets = new Map<string, { route: string; method: string; status: string }>();

  private labelsOf(route: string, method: string, status: number): { route: string; method: string; status: string } {
    const key = `${status} ${method} ${route}`;
    let labels = this.labelSets.get(key);
    if (labels === undefined) {
      // Routes are patterns and statuses few: bounded, but cleared if something unforeseen grows it.
      if (this.labelSets.size >= 10_000) this.labelSets.clear();
      labels = { route, method, status: String(status) };
      this.labelSets.set(key, labels);
    }
    return labels;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.cluster ? this.cluster.render() : this.registry.metrics();
  }

  private cluster: ClusterMetrics | undefined;

  /** One of several workers: /metrics answers for all of them together (src/cli/serve.ts). */
  aggregateWith(cluster: ClusterMetrics): void {
    this.cluster = cluster;
    cluster.register(this.registry);
  }
}

/** Metrics of every worker process, summed (counters, histograms) or as declared per metric. */
export interface ClusterMetrics {
  /** This worker's registry, for the supervisor to collect. */
  register(local: PromRegistry): void;
  /** The text exposition of every worker together. */
  render(): Promise<string>;
}
