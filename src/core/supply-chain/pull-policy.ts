import { RegistryError } from '../errors.ts';
import type { Identity } from '../access/access.ts';

/** One manifest pull as the decision chain sees it (DESIGN §11). */
export interface PullSubject {
  identity: Identity;
  /** The image name as pulled: OWNER/REPOSITORY/IMAGE[/...]. */
  name: string;
  owner: string;
  repository: string;
  digest: string;
  mediaType: string;
  payload: Buffer;
}

/**
 * A policy that may refuse a manifest pull. Content policies (vulnerabilities, signatures)
 * never refuse referrers (signatures, SBOMs) and never refuse callers who may push to the
 * repository (its owners and maintainers); others (rate limits) see every pull.
 */
export interface PullPolicy {
  /** Names the policy in metrics and in the verdict cache. */
  readonly name: string;
  readonly content: boolean;
  /**
   * The version of the policy in force for the repository, or undefined when it has none (the
   * fast path: nothing else runs). Must be cheap: a cached lookup behind a change counter.
   * A verdict is cached per (policy, digest, version): bump the version whenever anything a
   * verdict depends on changes (settings, trusted keys, the vulnerability database).
   */
  version(owner: string, repository: string): Promise<string | undefined> | string | undefined;
  /** undefined to allow; otherwise the refusal's message, naming the policy. */
  decide(pull: PullSubject, version: string): Promise<string | undefined>;
  /** Uncached policies (rate limits) decide on every pull. */
  readonly uncached?: boolean;
}

const MAX_VERDICTS = 20_000;
const MAX_REFERRER_FLAGS = 20_000;

/**
 * The ordered chain of pull policies, after access and entitlement limits. With no policy
 * registered or none in force for the repository a pull costs a map lookup per policy; a
 * verdict is computed once per (policy, image, digest, version). A refusal is 403 DENIED.
 */
export class PullPolicies {
  private readonly chain: PullPolicy[] = [];
  private readonly verdicts = new Map<string, string | null>();
  private readonly referrers = new Map<string, boolean>();

  constructor(private readonly mayPush: (identity: Identity, owner: string, repository: string) => Promise<boolean>) {}

  /** Adds a policy at the end of the chain. */
  register(policy: PullPolicy): void {
    if (this.chain.some((p) => p.name === policy.name)) throw new Error(`pull policy ${policy.name} registered twice`);
    this.chain.push(policy);
  }

  get size(): number {
    return this.chain.length;
  }

  /** Whether any policy is in force for the repository: a cheap cached lookup per policy. */
  async inForce(owner: string, repository: string): Promise<boolean> {
    for (const policy of this.chain) if ((await policy.version(owner, repository)) !== undefined) return true;
    return false;
  }

  /**
   * Throws (rejects with) 403 DENIED when a policy refuses the pull. Returns undefined, nothing
   * to wait for, when no policy is in force for the repository and every policy knew that
   * without reading the store: the common pull costs one cached lookup per policy.
   */
  enforce(pull: PullSubject): Promise<void> | undefined {
    for (let i = 0; i < this.chain.length; i++) {
      const version = this.chain[i]!.version(pull.owner, pull.repository);
      if (version !== undefined) return this.enforceFrom(i, version, pull);
    }
    return undefined;
  }

  /** The chain from policy `start` on, whose version (or the promise of it) is `first`. */
  private async enforceFrom(start: number, first: Promise<string | undefined> | string, pull: PullSubject): Promise<void> {
    let exempt: boolean | undefined;
    for (let i = start; i < this.chain.length; i++) {
      const policy = this.chain[i]!;
      const version = i === start ? await first : await policy.version(pull.owner, pull.repository);
      if (version === undefined) continue;
      if (policy.content) {
        if (this.isReferrer(pull)) continue;
        exempt ??= await this.mayPush(pull.identity, pull.owner, pull.repository);
        if (exempt) continue;
      }
      const refusal = policy.uncached ? await policy.decide(pull, version) : await this.cached(policy, pull, version);
      if (refusal !== undefined) throw new RegistryError('DENIED', refusal);
    }
  }

  /** Forgets every cached verdict (a policy whose inputs changed without a version). */
  forget(): void {
    this.verdicts.clear();
  }

  private async cached(policy: PullPolicy, pull: PullSubject, version: string): Promise<string | undefined> {
    // Per image: the same digest may be signed in one image of a repository and not in another.
    const key = `${policy.name}\0${pull.name}\0${pull.digest}\0${version}`;
    const hit = this.verdicts.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const refusal = await policy.decide(pull, version);
    if (this.verdicts.size >= MAX_VERDICTS) this.verdicts.delete(this.verdicts.keys().next().value!);
    this.verdicts.set(key, refusal ?? null);
    return refusal;
  }

  /** A manifest with a `subject` is a referrer (an SBOM, a signature): by digest, so cached for good. */
  private isReferrer(pull: PullSubject): boolean {
    let flag = this.referrers.get(pull.digest);
    if (flag === undefined) {
      flag = hasSubject(pull.payload);
      if (this.referrers.size >= MAX_REFERRER_FLAGS) this.referrers.delete(this.referrers.keys().next().value!);
      this.referrers.set(pull.digest, flag);
    }
    return flag;
  }
}

/**
 * Whether a manifest is a referrer (a signature, an SBOM, an attestation): it names a `subject`
 * or is a cosign `.sig`/attestation manifest by its layers, and is not itself a runnable image.
 * Clients run an image whatever its `subject` or `artifactType` say, so an image that adds a
 * `subject` (a pusher's, or an upstream's through the pull-through cache) stays under the
 * content policies (docs/security.md, "Pull policies").
 */
export function hasSubject(payload: Buffer): boolean {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as { subject?: unknown; config?: { mediaType?: unknown }; layers?: { mediaType?: unknown }[] };
    if (isRunnableImage(doc)) return false;
    if (doc.subject && typeof doc.subject === 'object') return true;
    return Array.isArray(doc.layers) && cosignLayersOnly(doc.layers);
  } catch {
    return false;
  }
}

export const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

/** Whether a layer media type is a (possibly compressed) filesystem tar. */
export function isTarLayer(mediaType: string): boolean {
  return /^application\/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.diff\.tar)/.test(mediaType);
}

/** An image manifest's JSON a container runtime would run: an image config and a filesystem layer. */
function isRunnableImage(doc: { config?: { mediaType?: unknown }; layers?: { mediaType?: unknown }[] }): boolean {
  const config = doc.config?.mediaType;
  return (
    typeof config === 'string' &&
    IMAGE_CONFIGS.has(config) &&
    Array.isArray(doc.layers) &&
    doc.layers.some((l) => typeof l?.mediaType === 'string' && isTarLayer(l.mediaType))
  );
}

/** Whether a manifest's layers are all cosign signatures or attestations (an attachment, even without a subject). */
export function cosignLayersOnly(layers: { mediaType?: unknown }[]): boolean {
  return layers.length > 0 && layers.every((l) => typeof l?.mediaType === 'string' && COSIGN_LAYERS.has(l.mediaType));
}

const COSIGN_LAYERS = new Set(['application/vnd.dev.cosign.simplesigning.v1+json', 'application/vnd.dsse.envelope.v1+json']);
