/**
 * Import jobs of the server (`POST /api/v1/repos/OWNER/REPOSITORY/import`): the request body is
 * spooled to a file under the data folder (never held in memory), then imported in the
 * background by the same importer `berth push` runs, into this registry through core's own
 * services (LocalTarget). Progress is polled by job id.
 *
 * Jobs live in this process's memory: a job is visible only on the node that received the
 * upload, and is forgotten on restart (its spool file is swept at the next start). See
 * docs/import.md, "Scale-out".
 */
import { createWriteStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ERROR_CODES, RegistryError, isOutOfSpace } from '../errors.ts';
import type { Registry } from '../registry.ts';
import type { ArchiveFormat } from './content.ts';
import { ImportError } from './errors.ts';
import { type ImportEvent, importArchive } from './importer.ts';
import type { Compression } from './compress.ts';
import { LocalTarget } from './local.ts';
import type { Destination } from './names.ts';

export type ImportJobState = 'queued' | 'running' | 'done' | 'failed';

/** What GET /api/v1/imports/:id answers. */
export interface ImportJobView {
  id: string;
  state: ImportJobState;
  repository: string;
  image: string | null;
  tag: string | null;
  /** Bytes of the uploaded archive. */
  archiveBytes: number;
  /** Uncompressed layers are compressed with this before they are stored (`?compress=`). */
  compress: Compression | null;
  format: ArchiveFormat | null;
  createdAt: string;
  finishedAt: string | null;
  progress: {
    blobs: { total: number; uploaded: number; skipped: number };
    bytes: { total: number; uploaded: number; skipped: number; done: number };
    manifests: number;
    tags: number;
  };
  /** Images with their tags: planned while running, pushed when done. */
  images: { name: string; digest: string; tags: string[] }[];
  warnings: string[];
  error: { code: string; message: string } | null;
}

interface Job {
  view: ImportJobView;
  /** Who started it (the caller's identity key); only they and site admins may read it. */
  owner: string;
  finished: number | null;
  /** Bytes sent so far of blobs being uploaded. */
  inFlight: Map<string, number>;
  abort: AbortController;
}

export interface ImportJobsOptions {
  /** How long finished jobs stay readable (default 1 hour). */
  retainMs?: number;
  /** Parallel blob writes per job (default 3). */
  concurrency?: number;
  /** Jobs importing at once; later ones wait, `queued` (default 2). */
  maxRunning?: number;
  /** Largest archive accepted, in bytes (default: no limit but the disk). */
  maxBytes?: number;
  /** Most bytes a gzip'd archive may decompress to, and its largest expansion ratio (source.ts). */
  maxUnpackedBytes?: number;
  maxExpansionRatio?: number;
  /** Imports one user may have at once, uploading, queued or running (default 2). */
  maxPerUser?: number;
  /**
   * Quota hook (for repository lifecycle rules): asked before an archive is spooled, with the
   * repository (`OWNER/REPOSITORY`) and the declared size if any, and again with the spooled
   * size; throws (e.g. an ApiError 403/413) to refuse. Default: no quota.
   */
  quota?: (repository: string, bytes: number | undefined) => Promise<void>;
  /** Told of failures that are not the archive's fault (for the server log). */
  onInternalError?: (e: unknown, jobId: string) => void;
}

const SPOOL_MAX_AGE_MS = 24 * 3600 * 1000;

export class ImportJobs {
  private readonly jobs = new Map<string, Job>();
  private readonly retainMs: number;
  private swept: Promise<void> | undefined;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** Imports per user (uploading, queued or running). */
  private readonly perUser = new Map<string, number>();

  constructor(
    private readonly registry: Registry,
    readonly spoolDir: string,
    private readonly opts: ImportJobsOptions = {},
  ) {
    this.retainMs = opts.retainMs ?? 3600_000;
  }

  /** Creates the spool folder and removes spool files a crashed process left (older than a day). */
  private ready(): Promise<void> {
    this.swept ??= (async () => {
      await fsp.mkdir(this.spoolDir, { recursive: true, mode: 0o700 });
      const now = Date.now();
      for (const f of await fsp.readdir(this.spoolDir)) {
        const p = path.join(this.spoolDir, f);
        const st = await fsp.stat(p).catch(() => undefined);
        if (st && now - st.mtimeMs > SPOOL_MAX_AGE_MS) await fsp.rm(p, { force: true, recursive: true });
      }
    })().catch((e: unknown) => {
      this.swept = undefined;
      throw e;
    });
    return this.swept;
  }

  /**
   * Takes one of `owner`'s import slots (TOO_MANY when all are taken); `release` gives it back.
   * A slot passed to `start` is released when the job ends.
   */
  admit(owner: string): { release: () => void } {
    const max = this.opts.maxPerUser ?? 2;
    const n = this.perUser.get(owner) ?? 0;
    if (n >= max) throw new ImportError('TOO_MANY', `you have ${n} imports in progress, the most this server allows one user: wait for one to finish`);
    this.perUser.set(owner, n + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        const left = (this.perUser.get(owner) ?? 1) - 1;
        if (left > 0) this.perUser.set(owner, left);
        else this.perUser.delete(owner);
      },
    };
  }

  /**
   * Writes an upload to a spool file. `declared` is the request's Content-Length, if any: fewer
   * bytes mean the client stopped early (error, file removed).
   */
  async spool(body: AsyncIterable<Buffer>, declared?: number, repository?: string): Promise<{ file: string; size: number }> {
    await this.ready();
    const max = this.opts.maxBytes;
    if (max !== undefined && declared !== undefined && declared > max) {
      throw new ImportError('TOO_LARGE', `the archive is ${declared} bytes; this server accepts at most ${max}`);
    }
    const quota = repository !== undefined ? this.opts.quota : undefined;
    await quota?.(repository!, declared);
    const file = path.join(this.spoolDir, `${randomUUID()}.upload`);
    let size = 0;
    const count = async function* (src: AsyncIterable<Buffer>) {
      for await (const chunk of src) {
        size += chunk.length;
        if (max !== undefined && size > max) throw new ImportError('TOO_LARGE', `the archive is larger than the ${max} bytes this server accepts`);
        yield chunk;
      }
    };
    try {
      await pipeline(body, count, createWriteStream(file, { highWaterMark: 1024 * 1024, mode: 0o600 }));
      if (declared !== undefined && size !== declared) {
        throw new ImportError('TRUNCATED', `the upload ended after ${size} of the ${declared} bytes declared`);
      }
      if (size === 0) throw new ImportError('BAD_ARCHIVE', 'the request body is empty: send the archive as the body');
      await quota?.(repository!, size);
    } catch (e) {
      await fsp.rm(file, { force: true });
      throw e;
    }
    return { file, size };
  }

  /** Starts importing a spooled file; the file is removed when the job ends. */
  start(owner: string, dest: Destination, spooled: { file: string; size: number }, slot?: { release: () => void }, compress?: Compression): ImportJobView {
    this.prune();
    const id = randomUUID();
    const view: ImportJobView = {
      id,
      state: 'queued',
      repository: `${dest.owner}/${dest.repository}`,
      image: dest.image ?? null,
      tag: dest.tag ?? null,
      archiveBytes: spooled.size,
      compress: compress ?? null,
      format: null,
      createdAt: new Date().toISOString(),
      finishedAt: null,
      progress: { blobs: { total: 0, uploaded: 0, skipped: 0 }, bytes: { total: 0, uploaded: 0, skipped: 0, done: 0 }, manifests: 0, tags: 0 },
      images: [],
      warnings: [],
      error: null,
    };
    const job: Job = { view, owner, finished: null, inFlight: new Map(), abort: new AbortController() };
    this.jobs.set(id, job);
    void this.run(job, dest, spooled.file, compress).finally(() => slot?.release());
    return this.snapshot(job);
  }

  private async run(job: Job, dest: Destination, file: string, compress: Compression | undefined): Promise<void> {
    const v = job.view;
    if (this.running >= (this.opts.maxRunning ?? 2)) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    v.state = 'running';
    const onEvent = (e: ImportEvent) => {
      const p = v.progress;
      switch (e.type) {
        case 'read':
          v.format = e.format;
          break;
        case 'warning':
          if (v.warnings.length < 100) v.warnings.push(e.message);
          break;
        case 'plan':
          p.blobs.total = e.blobs;
          p.bytes.total = e.bytes;
          v.images = e.images.map((i) => ({ name: i.name, digest: i.digest, tags: [...i.tags] }));
          break;
        case 'blob':
          if (e.state === 'exists' || e.state === 'mounted') {
            p.blobs.skipped++;
            p.bytes.skipped += e.size;
          } else if (e.state === 'done') {
            job.inFlight.delete(`${e.name}\0${e.digest}`);
            p.blobs.uploaded++;
            p.bytes.uploaded += e.size;
          }
          break;
        case 'progress':
          job.inFlight.set(`${e.name}\0${e.digest}`, e.bytes);
          break;
        case 'manifest':
          p.manifests++;
          break;
        case 'tag':
          p.tags++;
          break;
        default:
          break;
      }
    };
    try {
      await importArchive(file, dest, new LocalTarget(this.registry), {
        onEvent,
        signal: job.abort.signal,
        tempDir: this.spoolDir,
        label: 'the uploaded archive', // never the spool file's name
        ...(this.opts.maxUnpackedBytes !== undefined ? { maxUnpackedBytes: this.opts.maxUnpackedBytes } : {}),
        ...(this.opts.maxExpansionRatio !== undefined ? { maxExpansionRatio: this.opts.maxExpansionRatio } : {}),
        concurrency: this.opts.concurrency ?? 3,
        ...(compress ? { compress } : {}),
      });
      v.state = 'done';
    } catch (e) {
      v.state = 'failed';
      if (e instanceof ImportError) v.error = { code: e.code, message: e.message };
      else if (e instanceof RegistryError) v.error = { code: e.code, message: e.message };
      else if (isOutOfSpace(e)) v.error = { code: 'STORAGE_FULL', message: ERROR_CODES.STORAGE_FULL.message };
      else {
        v.error = { code: 'UNKNOWN', message: `import failed: ${(e as Error)?.message ?? String(e)}` };
        this.opts.onInternalError?.(e, v.id);
      }
    } finally {
      this.running--;
      this.waiting.shift()?.();
      job.inFlight.clear();
      job.finished = Date.now();
      v.finishedAt = new Date(job.finished).toISOString();
      await fsp.rm(file, { force: true }).catch(() => undefined);
    }
  }

  private snapshot(job: Job): ImportJobView {
    const v = structuredClone(job.view);
    let flowing = 0;
    for (const n of job.inFlight.values()) flowing += n;
    v.progress.bytes.done = v.progress.bytes.uploaded + v.progress.bytes.skipped + flowing;
    return v;
  }

  /** The job if `owner` started it (or `all` for site administrators). */
  get(id: string, owner: string, all = false): ImportJobView | undefined {
    this.prune();
    const job = this.jobs.get(id);
    if (!job || (!all && job.owner !== owner)) return undefined;
    return this.snapshot(job);
  }

  /** Jobs `owner` started (every job for site administrators), newest first. */
  list(owner: string, all = false): ImportJobView[] {
    this.prune();
    return [...this.jobs.values()]
      .filter((j) => all || j.owner === owner)
      .map((j) => this.snapshot(j))
      .reverse();
  }

  /** Stops every running job (they fail with ABORTED, nothing tagged) and waits for them. */
  async close(): Promise<void> {
    for (const j of this.jobs.values()) if (j.finished === null) j.abort.abort();
    await this.idle();
  }

  /** Resolves when no job is running (for tests and shutdown). */
  async idle(): Promise<void> {
    while ([...this.jobs.values()].some((j) => j.finished === null)) await new Promise((r) => setTimeout(r, 20));
  }

  private prune(): void {
    const now = Date.now();
    for (const [id, j] of this.jobs) if (j.finished !== null && now - j.finished > this.retainMs) this.jobs.delete(id);
  }
}
