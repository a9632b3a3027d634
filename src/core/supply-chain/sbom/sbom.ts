import type { JobQueue, JobRecord } from '../../jobs/queue.ts';
import type { NewJob } from '../../../metadata/job-store.ts';
import type { ImageRecord, ManifestRecord, MetadataStore } from '../../../metadata/metadata-store.ts';
import type { SbomStore, StoredImageInventory } from '../../../metadata/sbom-store.ts';
import { RegistryError } from '../../errors.ts';
import type { Blobs } from '../../content/blobs.ts';
import { digestOf } from '../../content/digest.ts';
import type { Images } from '../../content/images.ts';
import { type ParsedManifest, parseManifest } from '../../content/manifest.ts';
import type { Manifests } from '../../content/manifests.ts';
import { OCI_EMPTY, OCI_MANIFEST } from '../../content/media-types.ts';
import type { Uploads } from '../../content/uploads.ts';
import type { ImageInventory, InventoryOs, InventoryPackage } from '../inventory.ts';
import { ApiError, type Tenancy } from '../../access/tenancy.ts';
import type { Identity } from '../../access/access.ts';
import { StoredInventories } from './inventories.ts';
import type { LayerInventory } from './layer-scan.ts';
import { CYCLONEDX_JSON, DEFAULT_LAYER_LIMITS, LAYER_FORMAT, type LayerScanLimits } from './limits.ts';
import { IMAGE_CONFIGS, isTarLayer } from '../pull-policy.ts';

/** The scanner, the combiner and the CycloneDX writer, loaded by the first job (limits.ts says why). */
const generator = async () => {
  const [{ scanLayer }, { combineLayers }, { cycloneDx }] = await Promise.all([import('./layer-scan.ts'), import('./combine.ts'), import('./cyclonedx.ts')]);
  return { scanLayer, combineLayers, cycloneDx };
};

/** The job kind: subject `NAME@DIGEST` of an image manifest. */
export const SBOM_GENERATE = 'sbom.generate';

/**
 * Whether a manifest is a container image whose layers make a filesystem: not an index (each
 * platform child is pushed, and inventoried, on its own), not an artifact (SBOMs, signatures,
 * attestations never get an SBOM). An image that names a `subject` or an `artifactType` is
 * still an image: clients run it, so it is inventoried, scanned and decided like any other.
 */
export function wantsSbom(m: ParsedManifest): boolean {
  if (m.kind !== 'image' || !m.config || !IMAGE_CONFIGS.has(m.config.mediaType)) return false;
  return m.layers.some((l) => isTarLayer(l.mediaType));
}

/** Marks the SBOMs Berth made (so a newer one replaces them, and only them). */
export const GENERATOR_ANNOTATION = 'dev.berth.sbom.generator';
export const PACKAGES_ANNOTATION = 'dev.berth.sbom.packages';

const EMPTY = Buffer.from('{}');

export interface SbomOptions {
  /** Global switch (config `sbom.enabled`): off, no push enqueues a job. */
  enabled: boolean;
  limits: LayerScanLimits;
}

export const DEFAULT_SBOM_OPTIONS: SbomOptions = { enabled: true, limits: DEFAULT_LAYER_LIMITS };

/** The services a generation uses (the registry's own: an SBOM is stored like any push). */
export interface SbomDeps {
  meta: MetadataStore;
  images: Images;
  blobs: Blobs;
  uploads: Uploads;
  manifests: Manifests;
  tenancy: Tenancy;
  /** The pull-through cache: a cached image's layers arrive on demand, so its job fetches them. */
  proxy: { blob(name: string, digest: string, withBody: boolean): Promise<unknown> };
}

/** What the management API tells of one image manifest's SBOM. */
export interface SbomStatus {
  digest: string;
  /**
   * generated (Berth's SBOM is a referrer here); empty (inventoried, nothing found: no SBOM
   * pushed); pending (its job has not run yet); off (the repository does not generate SBOMs);
   * not-an-image (an index, an artifact).
   */
  state: 'generated' | 'empty' | 'pending' | 'off' | 'not-an-image';
  generatedAt?: string;
  packageCount?: number;
  /** The SBOM referrer Berth pushed. */
  sbom?: string;
  os?: InventoryOs;
  packages?: InventoryPackage[];
  platform?: Record<string, unknown>;
  /** For an index: each platform's image. */
  children?: SbomStatus[];
}

/** How long a repository's on/off switch is trusted in this process when deciding at push time. */
const SETTING_TTL_MS = 5000;

/**
 * SBOM on push (docs/supply-chain.md): when an image manifest is stored, a job
 * (`sbom.generate`) inventories its layers, stores the inventory, and pushes a CycloneDX SBOM
 * as a referrer of the image. Never on the push's path: the push only enqueues.
 */
export class SbomService {
  /** Stored inventories (`registry.inventories`). */
  readonly inventories: StoredInventories;
  /** Called after an image's inventory is stored (the vulnerability matcher sets it). */
  onInventory?: (manifestDigest: string, repositoryId: number) => Promise<void>;
  /** This process's work: layers read from the blob store, layers found already inventoried, images inventoried. */
  readonly stats = { layersRead: 0, layersCached: 0, inventoried: 0 };
  private readonly switches = new Map<number, { enabled: boolean; at: number }>();
  /** Layers being read by this process: a second image sharing one waits for the same read. */
  private readonly reading = new Map<string, Promise<LayerInventory>>();

  constructor(
    private readonly store: SbomStore,
    jobs: JobQueue<unknown>,
    private readonly deps: SbomDeps,
    readonly opts: SbomOptions = DEFAULT_SBOM_OPTIONS,
  ) {
    this.inventories = new StoredInventories(store);
    jobs.register(SBOM_GENERATE, (job) => this.generate(job));
  }

  /** Whether the repository generates SBOMs (on by default). */
  enabled(repositoryId: number): Promise<boolean> {
    return this.store.findSbomEnabled(repositoryId);
  }

  async setEnabled(repositoryId: number, enabled: boolean): Promise<void> {
    await this.store.saveSbomEnabled(repositoryId, enabled);
    this.switches.delete(repositoryId);
  }

  /** The repository's SBOM setting (readers). */
  async settings(actor: Identity, owner: string, repo: string): Promise<{ repository: string; enabled: boolean }> {
    const { repository } = await this.deps.tenancy.getRepository(actor, owner, repo);
    return { repository: `${owner}/${repo}`, enabled: this.opts.enabled && (await this.enabled(repository.id)) };
  }

  /** Switches SBOM generation of a repository's future pushes (managers). */
  async setSettings(actor: Identity, owner: string, repo: string, enabled: boolean): Promise<{ repository: string; enabled: boolean }> {
    const repository = await this.deps.tenancy.manageableRepository(actor, owner, repo);
    await this.setEnabled(repository.id, enabled);
    return this.settings(actor, owner, repo);
  }

  /** The SBOM state and inventory of an image by tag or digest (an index: of each platform). */
  async status(actor: Identity, owner: string, repo: string, image: string, ref: string, opts: { packages?: boolean } = {}): Promise<SbomStatus> {
    const withPackages = opts.packages ?? true;
    const { repository } = await this.deps.tenancy.getRepository(actor, owner, repo);
    const name = `${owner}/${repo}/${image}`;
    const m = await this.deps.manifests.get(name, ref);
    const enabled = this.opts.enabled && (await this.enabled(repository.id));
    const parsed = parseManifest(m.payload, m.mediaType);
    if (parsed.kind === 'index') {
      const img = await this.deps.images.find(name);
      const children: SbomStatus[] = [];
      for (const c of parsed.manifests.slice(0, 64)) {
        const child = await this.deps.meta.findManifest(img.id, c.digest);
        if (child) children.push({ ...(await this.one(name, child, enabled, withPackages)), ...(c.platform ? { platform: c.platform } : {}) });
      }
      return { digest: m.digest, state: 'not-an-image', children };
    }
    return this.one(name, m, enabled, withPackages);
  }

  /**
   * Generated: Berth's SBOM is a referrer of the manifest in this image. The inventory is kept
   * by digest, so the same manifest in another image may have one already: listed either way.
   */
  private async one(name: string, m: ManifestRecord, enabled: boolean, withPackages: boolean): Promise<SbomStatus> {
    const row = await this.store.findImageInventory(m.digest);
    const referrers = await this.deps.manifests.referrers(name, m.digest, CYCLONEDX_JSON);
    const ours = referrers.manifests.find((r) => r.annotations?.[GENERATOR_ANNOTATION] === 'berth');
    const state = ours ? 'generated' : !wantsSbom(parseManifest(m.payload, m.mediaType)) ? 'not-an-image' : !enabled ? 'off' : row && isEmpty(row) ? 'empty' : 'pending';
    if (!row) return { digest: m.digest, state };
    const inv = JSON.parse(row.data) as ImageInventory;
    return {
      digest: m.digest,
      state,
      generatedAt: new Date(row.generatedAt).toISOString(),
      packageCount: row.packageCount,
      ...(ours ? { sbom: ours.digest } : {}),
      ...(inv.os ? { os: inv.os } : {}),
      ...(withPackages ? { packages: inv.packages } : {}),
    };
  }

  /** The jobs a pushed manifest causes: one SBOM generation for an image of a repository that wants them. */
  async jobsFor(image: ImageRecord, digest: string, manifest: ParsedManifest): Promise<NewJob[]> {
    if (!this.opts.enabled || !wantsSbom(manifest)) return [];
    const now = Date.now();
    let s = this.switches.get(image.repositoryId);
    if (!s || now - s.at > SETTING_TTL_MS) {
      s = { enabled: await this.store.findSbomEnabled(image.repositoryId), at: now };
      if (this.switches.size > 10_000) this.switches.clear();
      this.switches.set(image.repositoryId, s);
    }
    if (!s.enabled) return [];
    // A tag pushed again to a manifest this image already holds and that was inventoried: its
    // job has run, and re-tagging (`:latest` next to `:1.2.3`) queues nothing. Another image
    // pushing the same digest still gets its own job (the SBOM is a referrer in each image).
    if ((await this.deps.meta.findManifest(image.id, digest)) && (await this.store.findImageInventory(digest))) return [];
    return [{ kind: SBOM_GENERATE, subject: `${image.name}@${digest}`, runAfter: now }];
  }

  /**
   * The job: inventories the image's layers (each layer read once, ever), stores the image's
   * inventory and pushes its SBOM as a referrer, replacing an older SBOM Berth made for it.
   * Nothing to do (done) when the image, the manifest or the repository's switch is gone.
   */
  private async generate(job: JobRecord): Promise<void> {
    const at = job.subject.lastIndexOf('@');
    const name = job.subject.slice(0, at);
    const digest = job.subject.slice(at + 1);
    let image: ImageRecord;
    try {
      image = await this.deps.images.find(name);
    } catch (e) {
      if (e instanceof RegistryError && e.code === 'NAME_UNKNOWN') return;
      throw e;
    }
    if (!this.opts.enabled || !(await this.store.findSbomEnabled(image.repositoryId))) return;
    const manifest = await this.deps.meta.findManifest(image.id, digest);
    if (!manifest) return;
    if (manifest.cached) await this.fetchLayers(name, manifest);
    const inventory = await this.inventory(manifest);
    if (!inventory) return;
    await this.inventories.save(inventory);
    // An SBOM that lists nothing (layers of no known OS or package, or no tar at all) is noise.
    if (inventory.os || inventory.packages.length) await this.push(name, manifest, inventory);
    this.stats.inventoried++;
    await this.onInventory?.(digest, image.repositoryId);
  }

  /**
   * A pull-through-cached image: its layers are stored when a client pulls them, maybe never.
   * Those not here yet (and not inventoried already) are fetched from the upstream into the
   * cache, without a body to serve, so the policies that need a report ("deny severity",
   * "block until scanned") decide cached images too. An upstream failure fails the job (retried).
   */
  private async fetchLayers(name: string, manifest: Pick<ManifestRecord, 'payload' | 'mediaType'>): Promise<void> {
    const parsed = parseManifest(manifest.payload, manifest.mediaType);
    if (!wantsSbom(parsed)) return;
    const stored = new Set(parsed.blobs.map((b) => b.digest));
    for (const l of parsed.layers) {
      if (!isTarLayer(l.mediaType) || !stored.has(l.digest)) continue;
      if (await this.store.findLayerInventory(l.digest)) continue;
      try {
        await this.deps.blobs.stat(name, l.digest);
      } catch (e) {
        if (!(e instanceof RegistryError && e.code === 'BLOB_UNKNOWN')) throw e;
        await this.deps.proxy.blob(name, l.digest, false);
      }
    }
  }

  /** The inventory of an image manifest from its layers (undefined when it is not an image). */
  async inventory(manifest: Pick<ManifestRecord, 'digest' | 'payload' | 'mediaType'>): Promise<ImageInventory | undefined> {
    const parsed = parseManifest(manifest.payload, manifest.mediaType);
    if (!wantsSbom(parsed)) return undefined;
    const stored = new Set(parsed.blobs.map((b) => b.digest));
    const layers: LayerInventory[] = [];
    for (const l of parsed.layers) {
      // Non-distributable layers are not in the blob store: what they hold stays unknown.
      if (isTarLayer(l.mediaType) && stored.has(l.digest)) layers.push(await this.layer(l.digest));
    }
    return (await generator()).combineLayers(manifest.digest, layers, Date.now());
  }

  /** A layer's inventory: from the store, or read once from the blob (single-flight in this process). */
  private async layer(digest: string): Promise<LayerInventory> {
    const cached = await this.store.findLayerInventory(digest);
    if (cached) {
      const inv = JSON.parse(cached) as LayerInventory;
      if (inv.v === LAYER_FORMAT) {
        this.stats.layersCached++;
        return inv;
      }
    }
    let p = this.reading.get(digest);
    if (!p) {
      p = (async () => {
        const stream = await this.deps.blobs.open(digest);
        this.stats.layersRead++;
        const inv = await (await generator()).scanLayer(stream, this.opts.limits);
        await this.store.saveLayerInventory(digest, JSON.stringify(inv));
        return inv;
      })().finally(() => this.reading.delete(digest));
      this.reading.set(digest, p);
    }
    return p;
  }

  /**
   * Pushes the SBOM through the same core path as any push (blobs, then the manifest), by
   * digest; then removes SBOMs Berth made earlier for the same image with other content.
   */
  private async push(name: string, subject: ManifestRecord, inventory: ImageInventory): Promise<string> {
    const json = Buffer.from((await generator()).cycloneDx(inventory, name));
    const jsonDigest = digestOf(json);
    const emptyDigest = digestOf(EMPTY);
    await this.deps.uploads.putMonolithic(name, emptyDigest, once(EMPTY), EMPTY.length);
    await this.deps.uploads.putMonolithic(name, jsonDigest, once(json), json.length);
    const payload = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: CYCLONEDX_JSON,
        config: { mediaType: OCI_EMPTY, digest: emptyDigest, size: EMPTY.length, data: EMPTY.toString('base64') },
        layers: [{ mediaType: CYCLONEDX_JSON, digest: jsonDigest, size: json.length, annotations: { 'org.opencontainers.image.title': 'sbom.cdx.json' } }],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        annotations: { [GENERATOR_ANNOTATION]: 'berth', [PACKAGES_ANNOTATION]: String(inventory.packages.length) },
      }),
    );
    const sbomDigest = digestOf(payload);
    await this.deps.manifests.put(name, sbomDigest, payload, OCI_MANIFEST);
    const referrers = await this.deps.manifests.referrers(name, subject.digest, CYCLONEDX_JSON);
    for (const r of referrers.manifests) {
      if (r.digest !== sbomDigest && r.annotations?.[GENERATOR_ANNOTATION] === 'berth') await this.deps.manifests.delete(name, r.digest);
    }
    return sbomDigest;
  }
}

function isEmpty(row: StoredImageInventory): boolean {
  return row.packageCount === 0 && !(JSON.parse(row.data) as ImageInventory).os;
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}
