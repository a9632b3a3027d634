import type { EventBus } from '../events/bus.ts';
import type { JobQueue } from '../jobs/queue.ts';
import { BLOB_SHARDS, type BlobStore, type StoredBlob, shardOf } from '../../storage/blob-store.ts';
import type { BlobState, GcStore } from '../../metadata/gc-store.ts';

export const GC_RECONCILE = 'gc.reconcile';

/** Digest algorithms whose blobs the walk visits. */
const ALGORITHMS = ['sha256', 'sha512'] as const;
/** At most this many findings of each kind are listed in a report (the totals count them all). */
const MAX_LISTED = 1000;

export interface ReconcileOptions {
  /** Stored objects younger than this are never deleted: an upload may be committing them. */
  minAgeMs: number;
  /** The periodic job deletes (true) or only reports (false, the default). */
  applyOnSchedule: boolean;
}

export const DEFAULT_RECONCILE_OPTIONS: ReconcileOptions = { minAgeMs: 86_400_000, applyOnSchedule: false };

export interface OrphanObject {
  digest: string;
  generation: number;
  size: number;
  modifiedAt: string;
  /** Why no row claims it. */
  reason: string;
  action: 'deleted' | 'would-delete' | 'too-young' | 'kept';
}

export interface MissingObject {
  digest: string;
  generation: number;
  state: BlobState;
  size: number;
}

export interface StaleMultipart {
  uploadId: string;
  startedAt: string;
  action: 'aborted' | 'would-abort' | 'too-young';
}

export interface ReconcileReport {
  dryRun: boolean;
  minAgeSeconds: number;
  scanned: { objects: number; rows: number; shards: number };
  /** Objects in storage that no row describes (at most 1000 listed). */
  orphans: OrphanObject[];
  /** Live rows whose bytes are not in storage: data lost, nothing to free (at most 1000 listed). */
  missing: MissingObject[];
  /** S3 multipart uploads of upload sessions that no longer exist (at most 1000 listed). */
  multiparts: StaleMultipart[];
  totals: { orphans: number; orphanBytes: number; deleted: number; deletedBytes: number; tooYoung: number; missing: number; staleMultiparts: number; aborted: number };
  failed: number;
}

const iso = (t: number) => new Date(t).toISOString();

/**
 * The storage reconciler (docs/lifecycle.md): walks the BlobStore and the blob rows one shard
 * (`<alg>/<xx>`) at a time and reports objects no row describes — left by a crash between
 * storing bytes and writing their row, or by an older generation — and rows whose bytes are
 * missing. A dry run by default; with `apply` it deletes orphans older than the safety age
 * (`gc.reconcileMinAgeSeconds`), each first claimed in the metadata store (a tombstone of its
 * generation) so that an upload of the same digest can never commit into bytes about to be
 * deleted, then in batches (S3: DeleteObjects). Missing bytes are only reported.
 * Runs as the `gc.reconcile` job (every `gc.reconcileIntervalSeconds`, on one node at a time)
 * and on demand (`berth gc reconcile [--apply]`).
 */
export class StorageReconciler {
  /** The totals of the last run in this process (metrics), and what it deleted since start. */
  last: (ReconcileReport['totals'] & { at: number }) | undefined;
  readonly stats = { orphansDeleted: 0, orphanBytesDeleted: 0 };

  constructor(
    private readonly gc: GcStore,
    private readonly store: BlobStore,
    private readonly events: EventBus,
    private readonly jobs: JobQueue<unknown>,
    /** Whether an upload session exists (the metadata store's uploads). */
    private readonly sessionExists: (uploadId: string) => Promise<boolean>,
    readonly opts: ReconcileOptions = DEFAULT_RECONCILE_OPTIONS,
    private readonly onReport: (r: ReconcileReport) => void = () => undefined,
  ) {
    jobs.register(GC_RECONCILE, async () => void this.onReport(await this.run({ apply: this.opts.applyOnSchedule })));
  }

  /** Queues the scheduled run: one job for the whole store, so one node at a time walks it. */
  async enqueue(runAfter = Date.now()): Promise<void> {
    await this.jobs.enqueue([{ kind: GC_RECONCILE, subject: 'store', runAfter }]);
  }

  /** Walks every shard; deletes old orphans only with `apply`. */
  async run(opts: { apply?: boolean; now?: number } = {}): Promise<ReconcileReport> {
    const apply = opts.apply === true;
    const now = opts.now ?? Date.now();
    const report: ReconcileReport = {
      dryRun: !apply,
      minAgeSeconds: this.opts.minAgeMs / 1000,
      scanned: { objects: 0, rows: 0, shards: 0 },
      orphans: [],
      missing: [],
      multiparts: [],
      totals: { orphans: 0, orphanBytes: 0, deleted: 0, deletedBytes: 0, tooYoung: 0, missing: 0, staleMultiparts: 0, aborted: 0 },
      failed: 0,
    };
    // The store lists its objects in shard order: take one shard's objects at a time.
    const listing = this.store.listBlobs()[Symbol.asyncIterator]();
    let next = await listing.next();
    for (const alg of ALGORITHMS) {
      for (const shard of BLOB_SHARDS) {
        const key = `${alg}/${shard}`;
        const objects: StoredBlob[] = [];
        // Objects of shards before this one belong to no algorithm walked here (skipped).
        while (!next.done && shardOf(next.value.digest) <= key) {
          if (shardOf(next.value.digest) === key) objects.push(next.value);
          next = await listing.next();
        }
        await this.shard(alg, shard, objects, apply, now, report);
      }
    }
    await this.multiparts(apply, now, report);
    this.last = { ...report.totals, at: Date.now() };
    this.stats.orphansDeleted += report.totals.deleted;
    this.stats.orphanBytesDeleted += report.totals.deletedBytes;
    return report;
  }

  /**
   * Multipart uploads (S3) whose upload session is gone: a crash between starting one and
   * recording the session, or between removing a session and aborting its parts. Sessions
   * that exist are upload expiry's business; young ones may be starting right now.
   */
  private async multiparts(apply: boolean, now: number, report: ReconcileReport): Promise<void> {
    if (!this.store.listPendingMultiparts || !this.store.abortPendingMultipart) return;
    for await (const m of this.store.listPendingMultiparts()) {
      if (await this.sessionExists(m.uploadId)) continue;
      report.totals.staleMultiparts++;
      let action: StaleMultipart['action'] = m.startedAt > now - this.opts.minAgeMs ? 'too-young' : apply ? 'aborted' : 'would-abort';
      if (action === 'aborted') {
        try {
          await this.store.abortPendingMultipart(m);
          report.totals.aborted++;
        } catch {
          report.failed++;
          action = 'would-abort';
        }
      }
      if (report.multiparts.length < MAX_LISTED) report.multiparts.push({ uploadId: m.uploadId, startedAt: iso(m.startedAt), action });
    }
  }

  private async shard(alg: string, shard: string, objects: StoredBlob[], apply: boolean, now: number, report: ReconcileReport): Promise<void> {
    const rows = await this.gc.listBlobRows(alg, shard);
    report.scanned.shards++;
    report.scanned.objects += objects.length;
    report.scanned.rows += rows.length;
    const byDigest = new Map(rows.map((r) => [r.digest, r]));
    const stored = new Set(objects.map((o) => `${o.digest}/${o.generation}`));
    for (const r of rows) {
      if (r.state !== 'live' || stored.has(`${r.digest}/${r.generation}`)) continue;
      report.totals.missing++;
      if (report.missing.length < MAX_LISTED) report.missing.push({ digest: r.digest, generation: r.generation, state: r.state, size: r.size });
    }
    const doomed: (StoredBlob & { reason: string })[] = [];
    for (const o of objects) {
      const row = byDigest.get(o.digest);
      const reason = orphanReason(o, row);
      if (!reason) continue;
      report.totals.orphans++;
      report.totals.orphanBytes += o.size;
      const young = o.modifiedAt > now - this.opts.minAgeMs;
      let action: OrphanObject['action'] = young ? 'too-young' : apply ? 'kept' : 'would-delete';
      if (young) report.totals.tooYoung++;
      else if (apply && (await this.gc.claimOrphan(o.digest, o.generation, now))) {
        doomed.push({ ...o, reason });
        action = 'deleted';
      }
      if (report.orphans.length < MAX_LISTED) report.orphans.push({ digest: o.digest, generation: o.generation, size: o.size, modifiedAt: iso(o.modifiedAt), reason, action });
    }
    if (!doomed.length) return;
    try {
      await this.store.deleteBlobs(doomed);
    } catch {
      // Claimed but not deleted: the tombstones keep uploads off them; the next run deletes them.
      report.failed += doomed.length;
      for (const o of report.orphans) if (o.action === 'deleted' && doomed.some((d) => d.digest === o.digest && d.generation === o.generation)) o.action = 'kept';
      return;
    }
    for (const o of doomed) {
      report.totals.deleted++;
      report.totals.deletedBytes += o.size;
      this.events.emit({
        time: Date.now(),
        action: 'gc',
        actorKind: 'anonymous',
        actor: 'gc',
        credentialId: null,
        repository: null,
        image: null,
        reference: null,
        digest: o.digest,
        clientIp: null,
        userAgent: null,
        bytes: o.size,
        status: 200,
        detail: { target: 'orphan', generation: o.generation, reason: o.reason },
      });
    }
  }
}

/** Why a stored object is an orphan, or undefined when a row holds it. */
function orphanReason(o: StoredBlob, row: { state: BlobState; generation: number } | undefined): string | undefined {
  if (!row) return 'no blob row';
  if (row.generation > o.generation) return `an older generation (the row holds generation ${row.generation})`;
  if (row.generation === o.generation) return row.state === 'gone' ? 'the blob was deleted (tombstone)' : undefined;
  // A generation above the row's: bytes stored by an upload that never wrote its row.
  return `a generation the row does not know (the row holds generation ${row.generation}, ${row.state})`;
}
