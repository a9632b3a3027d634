import { RegistryError } from '../errors.ts';
import { parseDigest } from '../content/digest.ts';
import type { EventBus } from '../events/bus.ts';
import type { JobQueue, JobRecord, RunResult } from '../jobs/queue.ts';
import { RetryLater } from '../jobs/queue.ts';
import type { BlobStore } from '../../storage/blob-store.ts';
import {
  GC_BLOB,
  GC_MANIFEST,
  type BlobDecision,
  type DigestFacts,
  type GcStore,
  type ManifestDecision,
  manifestSubject,
  parseManifestSubject,
} from '../../metadata/gc-store.ts';
import type { JobStore } from '../../metadata/job-store.ts';

export { GC_BLOB, GC_MANIFEST };

export interface GcOptions {
  /** Nothing unreferenced goes sooner than this after its release or last use. */
  graceMs: number;
  /** Collect manifests that no tag and no index of their image names (after the grace period). */
  collectUntagged: boolean;
  /** Tombstones of deleted blobs are kept this long (they give a re-upload its next generation). */
  tombstoneMs: number;
}

export const DEFAULT_GC_OPTIONS: GcOptions = { graceMs: 6 * 3600_000, collectUntagged: true, tombstoneMs: 7 * 86_400_000 };

export interface GcStats {
  blobsDeleted: number;
  bytesReclaimed: number;
  manifestsDeleted: number;
}

/** One review's outcome, for `gc run` and its dry run. */
export interface GcOutcome {
  kind: 'blob' | 'manifest';
  digest: string;
  image?: string;
  action: 'deleted' | 'would-delete' | 'kept' | 'postponed' | 'absent';
  reason?: string;
  bytes?: number;
  until?: string;
}

export interface GcRunReport {
  dryRun: boolean;
  reviewed: number;
  deleted: { blobs: number; manifests: number; bytes: number };
  outcomes: GcOutcome[];
  failed: number;
}

export interface Explanation {
  digest: string;
  /** One line: will it go, and when; or what keeps it. */
  verdict: string;
  facts: DigestFacts;
  reviews: { kind: string; subject: string; state: string; runAfter: string; lastError: string | null }[];
}

const iso = (t: number) => new Date(t).toISOString();

/**
 * Online garbage collection (docs/lifecycle.md): reviews queued by the metadata store with
 * every change that may leave a blob or manifest unreferenced run as jobs on any node; each
 * decision re-checks references in one transaction, and a blob's bytes are deleted only after
 * the row is marked `deleting` — exactly the generation decided on.
 */
export class GarbageCollector {
  readonly stats: GcStats = { blobsDeleted: 0, bytesReclaimed: 0, manifestsDeleted: 0 };
  /** Outcomes recorded while `run` drives the queue in this process. */
  private recording: GcOutcome[] | undefined;
  /** Blobs marked `deleting` whose bytes go in the next batch. */
  private sweeps: { digest: string; generation: number; size: number }[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<number> = Promise.resolve(0);

  constructor(
    private readonly gc: GcStore,
    private readonly jobs: JobQueue<unknown>,
    private readonly jobStore: JobStore,
    private readonly store: BlobStore,
    private readonly events: EventBus,
    readonly opts: GcOptions = DEFAULT_GC_OPTIONS,
    /** A batch of byte deletions failed: its rows stay `deleting` and `resweep` retries them. */
    private readonly onSweepError: (e: unknown, blobs: number) => void = () => undefined,
  ) {
    jobs.register(GC_BLOB, (job) => this.reviewBlob(job));
    jobs.register(GC_MANIFEST, (job) => this.reviewManifest(job));
  }

  private timing(job: JobRecord, dryRun = false) {
    return { now: Date.now(), graceMs: this.opts.graceMs, enqueuedAt: job.enqueuedAt, dryRun };
  }

  private async reviewBlob(job: JobRecord): Promise<void> {
    const d = await this.gc.decideBlob(job.subject, this.timing(job));
    if (d.action === 'postpone') throw new RetryLater(d.until, d.reason);
    // The row says `deleting`: no manifest can name it now. Its bytes go in the next batch.
    if (d.action === 'sweep') this.queueSweep({ digest: job.subject, generation: d.generation, size: d.size });
    this.record({ kind: 'blob', digest: job.subject, ...blobOutcome(d, false) });
  }

  /**
   * Byte deletions are batched (S3: one DeleteObjects call for up to 1000 blobs): a review
   * marks the row `deleting` and returns; the batch goes when full or 100 ms after its first
   * blob. A batch that fails, or a process that dies first, leaves rows `deleting`, which
   * `resweep` (every `gc.intervalSeconds`) deletes again — exactly the generation decided on.
   */
  private queueSweep(b: { digest: string; generation: number; size: number }): void {
    this.sweeps.push(b);
    if (this.sweeps.length >= 1000) void this.flushSweeps();
    else if (!this.sweepTimer) {
      this.sweepTimer = setTimeout(() => void this.flushSweeps(), 100);
      this.sweepTimer.unref();
    }
  }

  /** Deletes the bytes of every blob swept so far; resolves with how many failed (they stay `deleting`). */
  flushSweeps(): Promise<number> {
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    const batch = this.sweeps.splice(0);
    this.sweeping = this.sweeping.then(async () => {
      let failed = 0;
      for (let i = 0; i < batch.length; i += 1000) {
        const part = batch.slice(i, i + 1000);
        try {
          await this.store.deleteBlobs(part);
        } catch (e) {
          failed += part.length;
          this.onSweepError(e, part.length);
          continue;
        }
        for (const b of part) {
          // A tombstone now, unless a re-upload took the digest over meanwhile.
          await this.gc.finishBlob(b.digest, b.generation).catch(() => undefined);
          this.stats.blobsDeleted++;
          this.stats.bytesReclaimed += b.size;
          this.audit(b.digest, null, b.size, { target: 'blob', generation: b.generation });
        }
      }
      return failed;
    });
    return this.sweeping;
  }

  /** Sweeps again blobs left `deleting` for `ageMs` (periodic); returns how many were queued. */
  async resweep(ageMs = 10 * 60_000): Promise<number> {
    const rows = await this.gc.listDeleting(Date.now() - ageMs, 10_000);
    for (const r of rows) this.queueSweep(r);
    await this.flushSweeps();
    return rows.length;
  }

  private async reviewManifest(job: JobRecord): Promise<void> {
    const s = parseManifestSubject(job.subject);
    if (!s) return; // not ours to read: drop it
    const d = await this.gc.decideManifest(s.imageId, s.digest, { ...this.timing(job), collectUntagged: this.opts.collectUntagged });
    if (d.action === 'postpone') throw new RetryLater(d.until, d.reason);
    if (d.action === 'delete') {
      this.stats.manifestsDeleted++;
      this.audit(s.digest, d.image, d.size, { target: 'manifest', reason: d.reason });
      this.jobs.kick(); // its blobs and children were queued
    }
    this.record({ kind: 'manifest', digest: s.digest, ...manifestOutcome(d, false) });
  }

  private record(o: GcOutcome): void {
    if (this.recording && this.recording.length < 1000) this.recording.push(o);
  }

  private audit(digest: string, image: string | null, bytes: number, detail: Record<string, unknown>): void {
    this.events.emit({
      time: Date.now(),
      action: 'gc',
      actorKind: 'anonymous',
      actor: 'gc',
      credentialId: null,
      repository: image ? image.split('/').slice(0, 2).join('/') : null,
      image,
      reference: null,
      digest,
      clientIp: null,
      userAgent: null,
      bytes,
      status: 200,
      detail,
    });
  }

  /**
   * Runs every due review now in this process (reviews other nodes hold are theirs), until none
   * is due: a manifest's removal queues its blobs, so a cascade settles in one run with a zero
   * grace period. A dry run decides each due review without changing anything (one level: what
   * a deleted manifest would release is not followed).
   */
  async run(opts: { dryRun?: boolean } = {}): Promise<GcRunReport> {
    if (opts.dryRun) return this.dryRun();
    const outcomes: GcOutcome[] = [];
    this.recording = outcomes;
    let result: RunResult;
    let unswept: number;
    try {
      result = await this.jobs.runDue([GC_BLOB, GC_MANIFEST]);
    } finally {
      this.recording = undefined;
      unswept = await this.flushSweeps(); // the report tells what is freed, not what is about to be
    }
    return summarize(false, outcomes, result.failed + unswept);
  }

  private async dryRun(): Promise<GcRunReport> {
    const outcomes: GcOutcome[] = [];
    const now = Date.now();
    for (const kind of [GC_MANIFEST, GC_BLOB]) {
      let after: number | undefined;
      for (;;) {
        const page = await this.jobStore.list({ kind, state: 'queued', limit: 200, ...(after !== undefined ? { afterId: after } : {}) });
        for (const job of page) {
          if (job.runAfter > now || outcomes.length >= 1000) continue;
          if (kind === GC_BLOB) outcomes.push({ kind: 'blob', digest: job.subject, ...blobOutcome(await this.gc.decideBlob(job.subject, this.timing(job, true)), true) });
          else {
            const s = parseManifestSubject(job.subject);
            if (!s) continue;
            const d = await this.gc.decideManifest(s.imageId, s.digest, { ...this.timing(job, true), collectUntagged: this.opts.collectUntagged });
            outcomes.push({ kind: 'manifest', digest: s.digest, ...manifestOutcome(d, true) });
          }
        }
        if (page.length < 200) break;
        after = page[page.length - 1]!.id;
      }
    }
    return summarize(true, outcomes, 0);
  }

  /** Why a digest (blob or manifest) is still here, or when it will go. */
  async explain(digest: string): Promise<Explanation> {
    parseDigest(digest);
    const facts = await this.gc.explainDigest(digest);
    const subjects = [digest, ...facts.manifests.map((m) => manifestSubject(m.imageId, digest))];
    const reviews: Explanation['reviews'] = [];
    for (const subject of subjects) {
      const job = await this.jobStore.findJob(subject === digest ? GC_BLOB : GC_MANIFEST, subject);
      if (job) reviews.push({ kind: job.kind, subject: job.subject, state: job.state, runAfter: iso(job.runAfter), lastError: job.lastError });
    }
    if (!facts.blob && !facts.manifests.length) throw new RegistryError('BLOB_UNKNOWN', `no blob or manifest ${digest} is known`, { detail: { digest } });
    return { digest, verdict: verdict(facts, this.opts), facts, reviews };
  }

  /** Totals per blob state, the reviews queued and this process's counters. */
  async status(): Promise<Record<string, unknown>> {
    const now = Date.now();
    const counts = (await this.jobStore.counts(now)).filter((c) => c.kind === GC_BLOB || c.kind === GC_MANIFEST);
    return {
      graceSeconds: this.opts.graceMs / 1000,
      collectUntagged: this.opts.collectUntagged,
      blobs: await this.gc.blobTotals(),
      reviews: counts.map((c) => ({ kind: c.kind, state: c.state, count: c.count, due: c.due, oldestRunAfter: iso(c.oldestRunAfter) })),
      thisProcess: { ...this.stats },
    };
  }

  /** Removes old tombstones (periodic); returns how many. */
  pruneTombstones(): Promise<number> {
    return this.gc.pruneTombstones(Date.now() - this.opts.tombstoneMs);
  }
}

function blobOutcome(d: BlobDecision, dryRun: boolean): Omit<GcOutcome, 'kind' | 'digest'> {
  switch (d.action) {
    case 'sweep':
      return { action: dryRun ? 'would-delete' : 'deleted', bytes: d.size, reason: 'named by no manifest' };
    case 'keep':
      return { action: 'kept', reason: d.reason };
    case 'postpone':
      return { action: 'postponed', reason: d.reason, until: iso(d.until) };
    default:
      return { action: 'absent' };
  }
}

function manifestOutcome(d: ManifestDecision, dryRun: boolean): Omit<GcOutcome, 'kind' | 'digest'> {
  switch (d.action) {
    case 'delete':
      return { action: dryRun ? 'would-delete' : 'deleted', image: d.image, bytes: d.size, reason: d.reason };
    case 'keep':
      return { action: 'kept', reason: d.reason };
    case 'postpone':
      return { action: 'postponed', reason: d.reason, until: iso(d.until) };
    default:
      return { action: 'absent' };
  }
}

function summarize(dryRun: boolean, outcomes: GcOutcome[], failed: number): GcRunReport {
  const gone = outcomes.filter((o) => o.action === 'deleted' || o.action === 'would-delete');
  return {
    dryRun,
    reviewed: outcomes.length,
    deleted: {
      blobs: gone.filter((o) => o.kind === 'blob').length,
      manifests: gone.filter((o) => o.kind === 'manifest').length,
      bytes: gone.filter((o) => o.kind === 'blob').reduce((n, o) => n + (o.bytes ?? 0), 0),
    },
    outcomes,
    failed,
  };
}

function verdict(f: DigestFacts, opts: GcOptions): string {
  const parts: string[] = [];
  if (f.blob) {
    if (f.blob.state === 'gone') parts.push('blob: deleted (a tombstone remains)');
    else if (f.blob.state === 'deleting') parts.push('blob: being deleted now');
    else if (f.referencedBy.length) {
      const r = f.referencedBy[0]!;
      parts.push(`blob: kept — named by ${f.referencedBy.length}${f.referencedBy.length === 50 ? '+' : ''} manifest(s), e.g. ${r.image}@${r.manifest} (${r.kind})`);
    } else parts.push(`blob: collectable — named by no manifest; goes once unused for ${opts.graceMs / 1000}s (last used ${iso(f.blob.lastUsedAt)})`);
  }
  for (const m of f.manifests) {
    if (m.tags.length) parts.push(`manifest in ${m.image}: kept — tagged ${m.tags.slice(0, 5).join(', ')}`);
    else if (m.indexes.length) parts.push(`manifest in ${m.image}: kept — child of index ${m.indexes[0]}`);
    else if (m.subject && m.subjectPresent) parts.push(`manifest in ${m.image}: kept — referrer of ${m.subject}`);
    else if (m.subject) parts.push(`manifest in ${m.image}: collectable — its subject ${m.subject} is gone`);
    else if (!opts.collectUntagged) parts.push(`manifest in ${m.image}: kept — untagged, but gc.collectUntagged is off`);
    else parts.push(`manifest in ${m.image}: collectable — untagged, named by no index; goes ${opts.graceMs / 1000}s after it was untagged or pushed`);
  }
  return parts.join('; ');
}
