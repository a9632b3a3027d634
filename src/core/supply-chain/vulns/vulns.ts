import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { ApiError, type Tenancy } from '../../access/tenancy.ts';
import type { Identity } from '../../access/access.ts';
import type { Images } from '../../content/images.ts';
import type { Manifests } from '../../content/manifests.ts';
import { parseManifest } from '../../content/manifest.ts';
import type { Egress } from '../../egress/egress.ts';
import type { EventBus } from '../../events/bus.ts';
import type { JobQueue, JobRecord } from '../../jobs/queue.ts';
import type { MetadataStore } from '../../../metadata/metadata-store.ts';
import type { VulnDatabaseState, VulnStore } from '../../../metadata/vuln-store.ts';
import type { InventoryReader } from '../inventory.ts';
import { wantsSbom } from '../sbom/sbom.ts';
import { type Finding, lookups, match, osEcosystem, type Summary, summarise } from './match.ts';
import { InvalidRecord, parseRecord, type VulnRecord, withdrawnId } from './osv.ts';
import { VulnPolicies } from './policy.ts';
import { DEFAULT_SOURCE_LIMITS, readNdjson, readZip, SourceError, type SourceItem, type SourceLimits } from './sources.ts';

/** Job kinds: match one image manifest (subject: its digest); re-match every stored inventory, a page per job; refresh from the mirror. */
export const VULNS_SCAN = 'vulns.scan';
export const VULNS_RESCAN = 'vulns.rescan';
export const VULNS_REFRESH = 'vulns.refresh';

export interface VulnOptions {
  /** OSV `all.zip` URLs refreshed on a schedule (config `vulns.mirror.urls`), fetched through egress. */
  mirrorUrls: string[];
  /** Bytes of one downloaded archive, at most. */
  maxArchiveBytes: number;
  /** Time allowed for one download. */
  downloadTimeoutMs: number;
  /** How long this node trusts a repository's policy before asking the database again. */
  policyCacheMs: number;
  /** Where downloaded archives wait for their import (under the data folder). */
  spoolDir: string;
  limits: SourceLimits;
}

export const DEFAULT_VULN_OPTIONS: VulnOptions = {
  mirrorUrls: [],
  maxArchiveBytes: 2 * 1024 ** 3,
  downloadTimeoutMs: 30 * 60_000,
  policyCacheMs: 2000,
  spoolDir: '/tmp',
  limits: DEFAULT_SOURCE_LIMITS,
};

export interface ImportResult {
  source: string;
  /** Records read that Berth keeps (withdrawn ones and other ecosystems are `skipped`). */
  records: number;
  changed: number;
  unchanged: number;
  skipped: number;
  invalid: number;
  /** The first few reasons entries were invalid. */
  errors: string[];
  database: VulnDatabaseState;
}

/** A stored report: what the matcher found in one image manifest. */
export interface VulnReport {
  digest: string;
  scannedAt: string;
  /** The newest record's `modified` in the database the report was made with. */
  databaseAsOf: string | null;
  databaseVersion: number;
  /** `Debian:12` …, when the image's OS is one Berth matches. */
  osEcosystem?: string;
  os?: string;
  packages: number;
  summary: Summary;
  findings: Finding[];
}

/** The report of a tag or digest: an image's own, or for an index its platforms' reports. */
export interface ReportView {
  image: string;
  reference: string;
  digest: string;
  status: 'scanned' | 'pending' | 'not-an-image';
  summary: Summary | null;
  report?: VulnReport;
  platforms?: { digest: string; platform?: string; status: 'scanned' | 'pending'; report?: VulnReport }[];
}

const iso = (t: number | null | undefined) => (t === null || t === undefined ? null : new Date(t).toISOString());
const RESCAN_PAGE = 200;
const SAVE_BATCH = 200;

/**
 * The vulnerability database and scanning (docs/vulnerabilities.md): OSV records imported from
 * files or a mirror; matching of stored image inventories (never blobs) as jobs on the one
 * queue, after an inventory is stored and after every database change; reports per manifest
 * digest; new critical findings raise a `vulnerability` event; per-repository pull policies
 * registered in the pull decision chain (`VulnPolicies`, policy.ts).
 */
export class Vulnerabilities {
  /** Per-repository pull policies: settings, exceptions, the decision chain's entry. */
  readonly policies: VulnPolicies;
  private readonly agents: { 'http:': http.Agent; 'https:': http.Agent };
  private importing = false;

  constructor(
    private readonly store: VulnStore,
    private readonly inventories: InventoryReader,
    private readonly jobs: JobQueue<unknown>,
    private readonly events: EventBus,
    private readonly tenancy: Tenancy,
    private readonly meta: MetadataStore,
    private readonly images: Images,
    private readonly manifests: Manifests,
    sbomEnabled: (repositoryId: number) => Promise<boolean>,
    egress: Egress,
    private readonly opts: VulnOptions = DEFAULT_VULN_OPTIONS,
  ) {
    this.agents = { 'http:': egress.agent('http:', { keepAlive: false }), 'https:': egress.agent('https:', { keepAlive: false }) };
    this.policies = new VulnPolicies(store, tenancy, meta, sbomEnabled, opts.policyCacheMs, (digest) => this.storedReport(digest));
    jobs.register(VULNS_SCAN, (job) => this.scanJob(job));
    jobs.register(VULNS_RESCAN, (job) => this.rescanJob(job));
    jobs.register(VULNS_REFRESH, () => this.refresh());
  }

  // ---- the database ------------------------------------------------------------------------

  /**
   * Imports OSV documents: each is validated, withdrawn records and other ecosystems skipped,
   * the rest stored in batches (a record already stored with the same `modified` is left).
   * When anything changed, the database version goes up and every stored inventory is matched
   * again (jobs).
   */
  async importRecords(items: AsyncIterable<SourceItem>, source: string): Promise<ImportResult> {
    const result = { source, records: 0, changed: 0, unchanged: 0, skipped: 0, invalid: 0, errors: [] as string[] };
    let asOf: number | null = null;
    let batch: VulnRecord[] = [];
    let withdrawn: string[] = [];
    const flush = async () => {
      if (withdrawn.length) {
        result.changed += await this.store.removeRecords(withdrawn);
        withdrawn = [];
      }
      if (!batch.length) return;
      const r = await this.store.saveRecords(
        batch.map((rec) => ({
          id: rec.id,
          modified: rec.modified,
          data: JSON.stringify(rec),
          keys: rec.affected.map((a) => ({ ecosystem: a.ecosystem, name: a.name })),
        })),
      );
      result.changed += r.changed;
      result.unchanged += r.unchanged;
      for (const rec of batch) {
        const modified = Date.parse(rec.modified);
        if (Number.isFinite(modified) && (asOf === null || modified > asOf)) asOf = modified;
      }
      batch = [];
    };
    const invalid = (name: string, why: string) => {
      result.invalid++;
      if (result.errors.length < 10) result.errors.push(`${name.slice(0, 200)}: ${why.slice(0, 300)}`);
    };
    // What was stored counts even when the source fails half-way (a damaged zip, a long line):
    // the version moves and the inventories are matched again before the error is answered.
    const finish = async () => {
      const database = await this.store.saveImport({ changed: result.changed > 0, asOf, importedAt: Date.now(), source: source.slice(0, 200) });
      if (result.changed > 0) await this.enqueueRescan(database.version);
      return database;
    };
    try {
      for await (const item of items) {
        if ('error' in item) {
          invalid(item.name, item.error);
          continue;
        }
        let rec: VulnRecord | undefined;
        try {
          rec = parseRecord(item.doc);
        } catch (e) {
          if (e instanceof InvalidRecord) {
            invalid(item.name, e.message);
            continue;
          }
          throw e;
        }
        if (!rec) {
          result.skipped++;
          const gone = withdrawnId(item.doc);
          if (gone) withdrawn.push(gone);
          if (withdrawn.length >= SAVE_BATCH) await flush();
          continue;
        }
        result.records++;
        batch.push(rec);
        if (batch.length >= SAVE_BATCH) await flush();
      }
      await flush();
    } catch (e) {
      await finish();
      throw e;
    }
    return { ...result, database: await finish() };
  }

  /**
   * An import uploaded to the management API (`berth vulndb import`; site administrators): an
   * `all.zip` (spooled to a file, at most `maxArchiveBytes`: zip entries need random access) or
   * NDJSON records (streamed). One import at a time per node.
   */
  async importUpload(actor: Identity, body: AsyncIterable<Buffer>, kind: 'zip' | 'ndjson', source: string, declaredBytes?: number): Promise<ImportResult> {
    this.tenancy.requireSiteAdmin(actor);
    if (this.importing) throw new ApiError(429, 'TOOMANYREQUESTS', 'an import is running on this server; try again when it has finished');
    this.importing = true;
    const file = path.join(this.opts.spoolDir, `upload-${randomUUID()}.zip`);
    try {
      if (kind === 'ndjson') return await this.importRecords(readNdjson(Readable.from(body), this.opts.limits), source);
      if (declaredBytes !== undefined && declaredBytes > this.opts.maxArchiveBytes) throw new ApiError(413, 'TOO_LARGE', `the archive is over ${this.opts.maxArchiveBytes} bytes (vulns.maxArchiveBytes)`);
      await mkdir(this.opts.spoolDir, { recursive: true, mode: 0o700 });
      let n = 0;
      const max = this.opts.maxArchiveBytes;
      await pipeline(
        Readable.from(body),
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const c of chunks) {
            n += c.length;
            if (n > max) throw new ApiError(413, 'TOO_LARGE', `the archive is over ${max} bytes (vulns.maxArchiveBytes)`);
            yield c;
          }
        },
        createWriteStream(file, { mode: 0o600 }),
      );
      return await this.importZip(file, source);
    } catch (e) {
      if (e instanceof SourceError) throw new ApiError(400, 'INVALID', e.message);
      throw e;
    } finally {
      this.importing = false;
      await rm(file, { force: true });
    }
  }

  /** Imports an OSV `all.zip` file. */
  importZip(file: string, source = path.basename(file)): Promise<ImportResult> {
    return this.importRecords(readZip(file, this.opts.limits), source);
  }

  /** The database's state and its records per ecosystem (`berth vulndb status`). Site administrators. */
  async status(actor: Identity) {
    this.tenancy.requireSiteAdmin(actor);
    const db = await this.store.findDatabase();
    return {
      version: db.version,
      asOf: iso(db.asOf),
      importedAt: iso(db.importedAt),
      source: db.source,
      mirror: { urls: this.opts.mirrorUrls, refreshedAt: iso(db.refreshedAt), lastError: db.lastError },
      ecosystems: await this.store.countRecords(),
    };
  }

  /** The database's state row (versions, as of, the last refresh). */
  databaseState(): Promise<VulnDatabaseState> {
    return this.store.findDatabase();
  }

  /** Queues a refresh from the configured mirror (the periodic schedule, `berth vulndb refresh`). */
  async enqueueRefresh(runAfter = Date.now()): Promise<boolean> {
    if (!this.opts.mirrorUrls.length) return false;
    await this.jobs.enqueue([{ kind: VULNS_REFRESH, subject: 'mirror', runAfter }]);
    return true;
  }

  /** Downloads every mirror URL through egress and imports it; the outcome (time, errors) is kept in the state row. */
  private async refresh(): Promise<void> {
    const errors: string[] = [];
    await mkdir(this.opts.spoolDir, { recursive: true, mode: 0o700 });
    for (const raw of this.opts.mirrorUrls) {
      const file = path.join(this.opts.spoolDir, `osv-${randomUUID()}.zip`);
      try {
        await this.download(new URL(raw), file);
        await this.importZip(file, `mirror ${new URL(raw).pathname.split('/').slice(-2).join('/')}`);
      } catch (e) {
        errors.push(`${raw}: ${(e as Error).message}`);
      } finally {
        await rm(file, { force: true });
      }
    }
    // Recorded, not thrown: a retry would download the URLs that worked again; the next
    // scheduled refresh (or `berth vulndb refresh`) tries them all.
    await this.store.saveRefresh(Date.now(), errors.length ? errors.join('; ').slice(0, 2000) : null);
  }

  /** GET `url` into `file`: egress-checked connection, no redirects, bounded size and time. */
  private download(url: URL, file: string): Promise<void> {
    const mod = url.protocol === 'https:' ? https : http;
    const agent = this.agents[url.protocol as 'http:' | 'https:'];
    if (!agent) return Promise.reject(new Error(`unsupported protocol ${url.protocol}`));
    return new Promise((resolve, reject) => {
      const req = mod.get(url, { agent, headers: { accept: 'application/zip' } });
      const timer = setTimeout(() => req.destroy(new Error(`download took over ${this.opts.downloadTimeoutMs} ms`)), this.opts.downloadTimeoutMs);
      const done = (e?: Error) => {
        clearTimeout(timer);
        if (e) reject(e);
        else resolve();
      };
      req.on('error', (e) => done(e));
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          done(new Error(`the mirror answered ${res.statusCode}`));
          return;
        }
        const declared = Number(res.headers['content-length'] ?? 0);
        if (declared > this.opts.maxArchiveBytes) {
          res.destroy();
          done(new Error(`the archive is over ${this.opts.maxArchiveBytes} bytes`));
          return;
        }
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > this.opts.maxArchiveBytes) res.destroy(new Error(`the archive is over ${this.opts.maxArchiveBytes} bytes`));
        });
        pipeline(res, createWriteStream(file, { mode: 0o600 })).then(() => done(), (e: Error) => done(e));
      });
    });
  }

  // ---- matching -----------------------------------------------------------------------------

  /** Set as the SBOM service's hook: an inventory was stored, so match it (a job, never inline). */
  async onInventory(manifestDigest: string): Promise<void> {
    await this.jobs.enqueue([{ kind: VULNS_SCAN, subject: manifestDigest, runAfter: Date.now() }]);
  }

  private async enqueueRescan(version: number): Promise<void> {
    await this.jobs.enqueue([{ kind: VULNS_RESCAN, subject: `${version}:`, runAfter: Date.now() }]);
  }

  /** A page of stored inventories, each queued for matching; the next page is the next job. */
  private async rescanJob(job: JobRecord): Promise<void> {
    const colon = job.subject.indexOf(':');
    const version = job.subject.slice(0, colon);
    const after = job.subject.slice(colon + 1) || undefined;
    const digests = await this.inventories.listInventoried(after, RESCAN_PAGE);
    if (!digests.length) return;
    const next = digests.length === RESCAN_PAGE ? [{ kind: VULNS_RESCAN, subject: `${version}:${digests[digests.length - 1]}`, runAfter: Date.now() }] : [];
    await this.jobs.enqueue([...digests.map((d) => ({ kind: VULNS_SCAN, subject: d, runAfter: Date.now() })), ...next]);
  }

  private async scanJob(job: JobRecord): Promise<void> {
    await this.scan(job.subject);
  }

  /**
   * Matches one image manifest's stored inventory against the database and stores its report;
   * raises an event per image holding it when critical findings appeared that the previous
   * report did not have. Reads no blob. Returns undefined when no inventory is stored.
   */
  async scan(digest: string): Promise<VulnReport | undefined> {
    const inv = await this.inventories.inventoryOf(digest);
    if (!inv) return undefined;
    const db = await this.store.findDatabase();
    const items = lookups(inv);
    const keys = new Map<string, { ecosystem: string; name: string }>();
    for (const i of items) {
      keys.set(`${i.ecosystem}\0${i.name}`, { ecosystem: i.ecosystem, name: i.name });
      // Records may name a release-less ecosystem (`Debian`) too.
      const base = i.ecosystem.split(':')[0]!;
      if (base !== i.ecosystem) keys.set(`${base}\0${i.name}`, { ecosystem: base, name: i.name });
    }
    const byKey = new Map<string, VulnRecord[]>();
    for (const row of await this.store.findRecords([...keys.values()])) {
      const k = `${row.ecosystem}\0${row.name}`;
      const list = byKey.get(k) ?? [];
      list.push(JSON.parse(row.data) as VulnRecord);
      byKey.set(k, list);
    }
    const findings = match(items, (ecosystem, name) => {
      const base = ecosystem.split(':')[0]!;
      return [...(byKey.get(`${ecosystem}\0${name}`) ?? []), ...(base !== ecosystem ? (byKey.get(`${base}\0${name}`) ?? []) : [])];
    });
    const os = osEcosystem(inv);
    const report: VulnReport = {
      digest,
      scannedAt: new Date().toISOString(),
      databaseAsOf: iso(db.asOf),
      databaseVersion: db.version,
      ...(os ? { osEcosystem: os } : {}),
      ...(inv.os ? { os: inv.os.prettyName ?? `${inv.os.id} ${inv.os.versionId ?? ''}`.trim() } : {}),
      packages: inv.packages.length,
      summary: summarise(findings),
      findings,
    };
    const row = await this.store.findReport(digest);
    const before = row ? (JSON.parse(row.data) as VulnReport).findings : undefined;
    // Verdicts depend on the findings only: an unchanged rescan leaves cached verdicts alone.
    const changed = !before || JSON.stringify(before) !== JSON.stringify(findings);
    await this.store.saveReport(
      { digest, scannedAt: Date.parse(report.scannedAt), dbVersion: db.version, dbAsOf: db.asOf, summary: JSON.stringify(report.summary), data: JSON.stringify(report) },
      changed,
    );
    if (changed) {
      // This node's verdicts see the new report at once; other nodes' within policyCacheMs.
      for (const image of await this.store.listImagesWithManifest(digest, 1000)) this.policies.forget(image.split('/').slice(0, 2).join('/'));
      await this.announce(digest, before ?? [], findings);
    }
    return report;
  }

  /** A `vulnerability` event (audit log, webhooks) per image holding `digest`, naming new critical findings. */
  private async announce(digest: string, before: Finding[], after: Finding[]): Promise<void> {
    const known = new Set(before.filter((f) => f.severity === 'critical').map((f) => f.id));
    const fresh = [...new Set(after.filter((f) => f.severity === 'critical' && !known.has(f.id)).map((f) => f.id))];
    if (!fresh.length) return;
    for (const image of await this.store.listImagesWithManifest(digest, 100)) {
      this.events.emit({
        time: Date.now(),
        action: 'vulnerability',
        actorKind: 'anonymous',
        actor: 'scanner',
        credentialId: null,
        repository: image.split('/').slice(0, 2).join('/'),
        image,
        reference: digest,
        digest,
        clientIp: null,
        userAgent: null,
        bytes: null,
        status: 200,
        detail: {
          severity: 'critical',
          new: fresh.slice(0, 20),
          aliases: [...new Set(after.filter((f) => fresh.includes(f.id)).flatMap((f) => f.aliases))].slice(0, 20),
          count: fresh.length,
        },
      });
    }
  }

  // ---- results ------------------------------------------------------------------------------

  private async storedReport(digest: string): Promise<VulnReport | undefined> {
    const row = await this.store.findReport(digest);
    return row ? (JSON.parse(row.data) as VulnReport) : undefined;
  }

  /** The report of `OWNER/REPOSITORY/IMAGE` at a tag or digest (callers who may pull). */
  async report(actor: Identity, name: string, reference: string): Promise<ReportView> {
    const [owner, repo] = name.split('/');
    await this.tenancy.getRepository(actor, owner!, repo!);
    const m = await this.manifests.get(name, reference);
    const parsed = parseManifest(m.payload, m.mediaType);
    const view: ReportView = { image: name, reference, digest: m.digest, status: 'pending', summary: null };
    if (parsed.kind === 'index') {
      view.platforms = [];
      const union = new Map<string, Finding>();
      const img = await this.meta.findImage(name);
      for (const child of parsed.manifests.slice(0, 64)) {
        // Reports are kept by digest for the whole registry: only a child stored in this image
        // shows one. An index cached from an upstream need not have its children, and its
        // upstream may list any digest (another tenant's private image).
        const stored = img ? await this.meta.findManifest(img.id, child.digest) : undefined;
        const report = stored ? await this.storedReport(child.digest) : undefined;
        const p = (child as { platform?: { os?: string; architecture?: string; variant?: string } }).platform;
        const platform = p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : undefined;
        if (p?.architecture === 'unknown') continue; // attestation manifests of BuildKit
        view.platforms.push({ digest: child.digest, ...(platform ? { platform } : {}), status: report ? 'scanned' : 'pending', ...(report ? { report } : {}) });
        for (const f of report?.findings ?? []) union.set(`${f.id}\0${f.package.purl}`, f);
      }
      const scanned = view.platforms.some((p) => p.status === 'scanned');
      view.status = scanned ? 'scanned' : 'pending';
      view.summary = scanned ? summarise([...union.values()]) : null;
      return view;
    }
    if (!wantsSbom(parsed)) return { ...view, status: 'not-an-image' };
    const report = await this.storedReport(m.digest);
    if (report) Object.assign(view, { status: 'scanned', summary: report.summary, report });
    return view;
  }

  /** The severity summary of each tag of an image (a page of tags, as the tag list pages them). */
  async tagSummaries(actor: Identity, name: string, page: { limit: number; after?: string }) {
    const [owner, repo] = name.split('/');
    await this.tenancy.getRepository(actor, owner!, repo!);
    const img = await this.images.find(name);
    const tags = await this.meta.listTagEntries(img.id, { limit: Math.min(Math.max(page.limit, 1), 1000), ...(page.after ? { after: page.after } : {}) });
    const rows = new Map((await this.store.findReportSummaries(tags.map((t) => t.digest))).map((r) => [r.digest, r]));
    const out = [];
    for (const t of tags) {
      const r = rows.get(t.digest);
      if (r) {
        out.push({ tag: t.name, digest: t.digest, status: 'scanned', summary: JSON.parse(r.summary) as Summary, scannedAt: iso(r.scannedAt), databaseAsOf: iso(r.dbAsOf) });
        continue;
      }
      // An index: its platforms' findings combined.
      const view = await this.report(actor, name, t.digest).catch(() => undefined);
      out.push({ tag: t.name, digest: t.digest, status: view?.status ?? 'pending', summary: view?.summary ?? null, scannedAt: null, databaseAsOf: null });
    }
    return { image: name, tags: out, ...(tags.length === page.limit ? { next: tags[tags.length - 1]!.name } : {}) };
  }
}
