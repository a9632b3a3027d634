import type { JobQueue, JobRecord } from '../../jobs/queue.ts';
import type { NewJob } from '../../../metadata/job-store.ts';
import type { ImageRecord } from '../../../metadata/metadata-store.ts';
import type { SbomStore } from '../../../metadata/sbom-store.ts';
import type { ParsedManifest } from '../../content/manifest.ts';
import { StoredInventories } from './inventories.ts';

/** The job kind: subject `NAME@DIGEST` of an image manifest. */
export const SBOM_GENERATE = 'sbom.generate';

const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

/** Whether a layer media type is a (possibly compressed) filesystem tar. */
export function isTarLayer(mediaType: string): boolean {
  return /^application\/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.diff\.tar)/.test(mediaType) || mediaType === 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
}

/**
 * Whether a manifest is a container image whose layers make a filesystem: not an index (each
 * platform child is pushed, and inventoried, on its own), not a referrer or other artifact
 * (SBOMs, signatures, attestations never get an SBOM).
 */
export function wantsSbom(m: ParsedManifest): boolean {
  if (m.kind !== 'image' || m.subject || !m.config) return false;
  if (!IMAGE_CONFIGS.has(m.config.mediaType) || (m.artifactType !== null && !IMAGE_CONFIGS.has(m.artifactType))) return false;
  return m.layers.some((l) => isTarLayer(l.mediaType));
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
  private readonly settings = new Map<number, { enabled: boolean; at: number }>();

  constructor(
    private readonly store: SbomStore,
    jobs: JobQueue<unknown>,
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
    this.settings.delete(repositoryId);
  }

  /** The jobs a pushed manifest causes: one SBOM generation for an image of a repository that wants them. */
  async jobsFor(image: ImageRecord, digest: string, manifest: ParsedManifest): Promise<NewJob[]> {
    if (!wantsSbom(manifest)) return [];
    const now = Date.now();
    let s = this.settings.get(image.repositoryId);
    if (!s || now - s.at > SETTING_TTL_MS) {
      s = { enabled: await this.store.findSbomEnabled(image.repositoryId), at: now };
      if (this.settings.size > 10_000) this.settings.clear();
      this.settings.set(image.repositoryId, s);
    }
    return s.enabled ? [{ kind: SBOM_GENERATE, subject: `${image.name}@${digest}`, runAfter: now }] : [];
  }

  private async generate(_job: JobRecord): Promise<void> {
    // filled in by the generator
  }
}
