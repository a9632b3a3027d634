/**
 * Repository signing (docs/signing.md): each repository's ECDSA P-256 key (created on first use,
 * private key sealed by core/keys, rotated with old keys kept for verification), signing on push
 * as a job in cosign's format, verification of the signatures clients push against the keys a
 * repository trusts, verdicts per tag, and the "require signature" pull policy.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ApiError, type Tenancy } from '../../access/tenancy.ts';
import { RegistryError } from '../../errors.ts';
import type { Identity } from '../../access/access.ts';
import type { Blobs } from '../../content/blobs.ts';
import { type ManifestDeleteEvent, type ManifestPutEvent, type Manifests, TagMovedError } from '../../content/manifests.ts';
import type { ParsedManifest } from '../../content/manifest.ts';
import type { NewJob } from '../../../metadata/job-store.ts';
import type { Uploads } from '../../content/uploads.ts';
import type { JobQueue, JobRecord } from '../../jobs/queue.ts';
import type { Keyring } from '../../keys/keyring.ts';
import type { Domains } from '../../domains/domains.ts';
import { normalizeHost } from '../../domains/names.ts';
import { PURPOSE } from '../../keys/sealed.ts';
import { cosignLayersOnly, hasSubject, type PullPolicy, type PullSubject } from '../pull-policy.ts';
import { wantsSbom } from '../sbom/sbom.ts';
import type { MetadataStore, ImageRecord } from '../../../metadata/metadata-store.ts';
import type { SigningKeyRecord, SigningRecord, SigningSettingsRecord, SigningStore } from '../../../metadata/signing-store.ts';
import {
  type Descriptor,
  EMPTY_JSON,
  MAX_PAYLOAD_BYTES,
  MAX_SIGNATURE_LAYERS,
  OCI_MANIFEST,
  SIGNATURE_ANNOTATION,
  isAttachmentTag,
  keyFingerprint,
  manifestLayers,
  parsePayload,
  parsePublicKey,
  referenceHostPath,
  referenceNames,
  referrerManifest,
  sha256,
  signPayload,
  signatureConfig,
  signatureLayer,
  signatureLayers,
  signatureManifest,
  signatureTag,
  simpleSigningPayload,
  verifyPayload,
} from './format.ts';

export const SIGN_JOB = 'signing.sign';
/** Signs what a repository holds already (enqueued when signing on push is switched on). */
export const BACKFILL_JOB = 'signing.backfill';
export const SIGNATURE_POLICY = 'signature';

/** Manifests Berth signs: images and indexes (OCI and Docker schema 2), not schema 1. */
const SIGNABLE = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
/** Bounds on what one verdict reads. */
const MAX_REFERRERS = 32;
const MAX_PARENTS = 16;
const MAX_VERDICT_TAGS = 100;
const MAX_TRUSTED_KEYS = 50;
const MAX_CHECKED = 50_000;
const PAYLOAD_CACHE = 2000;
/** Most manifests one backfill queues (tags and their indexes' children). */
const MAX_BACKFILL = 100_000;
/** Times a sign job re-reads the `.sig` tag that moved under it before it fails (and is retried later). */
const MAX_SIG_RACES = 5;

export interface SigningOptions {
  /**
   * Host and optional path prefix of the `docker-reference` Berth writes (`registry.example.com`,
   * `example.com:8443/registry`): from `signing.identity`, else `auth.publicUrl`, else the
   * listen address (docs/signing.md#identity).
   */
  identity: string;
  /** How long a node trusts its cached copy of a repository's settings and version (other nodes' changes show within it). */
  cacheMs: number;
}

export interface SigningSettingsView {
  repository: string;
  signOnPush: boolean;
  requireSignature: boolean;
  /** The docker-reference prefix signatures of this repository carry (`HOST[/PATH]/OWNER/REPOSITORY`). */
  identity: string;
  version: number;
}

export interface SigningKeyView {
  keyId: string;
  kind: 'repository' | 'trusted';
  name: string;
  current: boolean;
  publicKey: string;
  createdAt: string;
  retiredAt: string | null;
}

export interface SignedBy {
  keyId: string;
  kind: 'repository' | 'trusted';
  name: string;
  /** When the first valid signature by this key was stored. */
  since: string;
}

export interface Verdict {
  state: 'signed' | 'invalid' | 'unsigned';
  /** "signed by repository key … since …", "signature does not verify (…)", "unsigned". */
  summary: string;
  signedBy: SignedBy[];
  /** Why the signatures found do not count (state invalid). */
  reason?: string;
  /** Signature layers looked at. */
  signatures: number;
}

export interface TagVerdict extends Verdict {
  tag: string;
  digest: string;
}

interface TrustedKey {
  keyId: string;
  kind: 'repository' | 'trusted';
  name: string;
  key: KeyObject;
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

/** The signing feature: keys, settings, the sign-on-push worker, verdicts and the pull policy. */
export class Signing {
  private readonly cache = new Map<string, { at: number; value: (SigningSettingsRecord & { repositoryId: number }) | null }>();
  private readonly payloads = new Map<string, Buffer>();
  /** Signature checks already made: (repository, key, layer, signature) → verifies. */
  private readonly checked = new Map<string, boolean>();

  constructor(
    private readonly store: SigningStore,
    private readonly meta: MetadataStore,
    private readonly blobs: Blobs,
    private readonly uploads: Uploads,
    private readonly manifests: Manifests,
    private readonly tenancy: Tenancy,
    private readonly keyring: Keyring,
    private readonly jobs: JobQueue<unknown>,
    private readonly opts: SigningOptions,
    /** Custom domains (docs/domains.md): a client's identity may name the image by a mapped host's short name. */
    private readonly domains?: Pick<Domains, 'resolve'>,
  ) {
    jobs.register(SIGN_JOB, (job) => this.signJob(job));
    jobs.register(BACKFILL_JOB, (job) => this.backfillJob(job));
    // The sign job is enqueued in the manifest's transaction; verdict versions follow commits.
    manifests.jobs.push({ jobsFor: (image, digest, m, tag) => this.jobsFor(image, digest, m, tag), enqueued: () => jobs.kick() });
    manifests.listeners.push({ put: (e) => this.afterPut(e), deleted: (e) => this.afterDelete(e) });
  }

  // --- settings and keys (management API) ---------------------------------------------------

  async getSettings(actor: Identity, owner: string, name: string): Promise<SigningSettingsView> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    return this.view(`${owner}/${name}`, await this.store.findSettings(repository.id));
  }

  /** Repository managers; a change bumps the version the pull policy's verdicts hang on. */
  async setSettings(actor: Identity, owner: string, name: string, changes: { signOnPush?: boolean; requireSignature?: boolean }): Promise<SigningSettingsView> {
    const repo = await this.manageable(actor, owner, name);
    const before = await this.store.findSettings(repo);
    const saved = await this.store.saveSettings(repo, changes);
    if (changes.signOnPush) await this.currentKey(repo); // the key exists once signing is on: its public half can be shared first
    // Switched on: what the repository holds already is signed too, in the background.
    if (changes.signOnPush && !before.signOnPush) await this.jobs.enqueue([{ kind: BACKFILL_JOB, subject: String(repo), runAfter: Date.now() }]);
    this.cache.clear();
    return this.view(`${owner}/${name}`, saved);
  }

  /** The current repository key's PEM (created on first use); for whoever may pull. */
  async publicKey(actor: Identity, owner: string, name: string): Promise<string> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    return (await this.currentKey(repository.id)).publicKey;
  }

  /** Every key the repository trusts: its own (current and retired) and those an owner added. */
  async listKeys(actor: Identity, owner: string, name: string): Promise<SigningKeyView[]> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    return (await this.store.listKeys(repository.id)).map(present);
  }

  /** Adds a public key (e.g. a team's cosign.pub) whose signatures the repository trusts. */
  async addKey(actor: Identity, owner: string, name: string, pem: string, label: string): Promise<SigningKeyView> {
    const repo = await this.manageable(actor, owner, name);
    let key: KeyObject;
    try {
      key = parsePublicKey(pem);
    } catch (e) {
      throw new ApiError(400, 'INVALID', (e as Error).message);
    }
    const keys = await this.store.listKeys(repo);
    if (keys.filter((k) => k.kind === 'trusted').length >= MAX_TRUSTED_KEYS) throw new ApiError(400, 'INVALID', `a repository trusts at most ${MAX_TRUSTED_KEYS} added keys`);
    const keyId = keyFingerprint(key);
    const publicKey = key.export({ type: 'spki', format: 'pem' }).toString();
    if (!(await this.store.addTrustedKey(repo, { keyId, name: label, publicKey }))) throw new ApiError(409, 'CONFLICT', `${owner}/${name} already trusts key ${keyId}`);
    this.cache.clear();
    return present((await this.store.listKeys(repo)).find((k) => k.keyId === keyId)!);
  }

  async removeKey(actor: Identity, owner: string, name: string, keyId: string): Promise<void> {
    const repo = await this.manageable(actor, owner, name);
    if (!(await this.store.removeTrustedKey(repo, keyId))) throw new ApiError(404, 'NOT_FOUND', `no added key ${keyId} in ${owner}/${name} (repository keys are rotated, not removed)`);
    this.cache.clear();
  }

  /** A new repository key signs from now on; the old one keeps verifying what it signed. */
  async rotate(actor: Identity, owner: string, name: string): Promise<SigningKeyView> {
    const repo = await this.manageable(actor, owner, name);
    const saved = await this.store.saveRepositoryKey(repo, this.newKey(), true);
    this.cache.clear();
    return present(saved);
  }

  // --- verdicts ------------------------------------------------------------------------------

  /** The verdict of each tag of an image (the given tags, or its first 100). */
  async tagVerdicts(actor: Identity, owner: string, name: string, image: string, tags?: string[]): Promise<TagVerdict[]> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    const full = `${owner}/${name}/${image}`;
    const img = await this.meta.findImage(full);
    if (!img || img.repositoryId !== repository.id) throw new ApiError(404, 'NOT_FOUND', `image ${full} not found`);
    const names = tags?.length ? tags.slice(0, MAX_VERDICT_TAGS) : (await this.meta.listTagEntries(img.id, { limit: MAX_VERDICT_TAGS })).map((t) => t.name);
    const keys = await this.trustedKeys(repository.id);
    const out: TagVerdict[] = [];
    for (const tag of names) {
      if (isAttachmentTag(tag)) continue;
      const m = await this.meta.findTaggedManifest(img.id, tag);
      if (!m) continue;
      out.push({ tag, digest: m.digest, ...(await this.verdictOf(img, m.digest, keys)) });
    }
    return out;
  }

  /**
   * The verdict of one digest in an image: every signature layer of its `.sig` manifest and of
   * its referrers, checked against each trusted key — the signature over the payload, the
   * payload's digest against the image's, its docker-reference against the image's name.
   */
  async verdictOf(img: ImageRecord, digest: string, keys: TrustedKey[]): Promise<Verdict> {
    const found: { layer: Descriptor; createdAt: number }[] = [];
    const sig = await this.meta.findTaggedManifest(img.id, signatureTag(digest));
    if (sig) for (const layer of signatureLayers(sig.payload)) found.push({ layer, createdAt: sig.createdAt });
    for (const r of (await this.meta.listReferrers(img.id, digest)).slice(0, MAX_REFERRERS)) {
      const m = await this.meta.findManifest(img.id, r.digest);
      if (m) for (const layer of signatureLayers(m.payload)) found.push({ layer, createdAt: m.createdAt });
    }
    const records = new Map((await this.store.listRecords(img.id, [digest])).map((r) => [r.keyId, r]));
    const good = new Map<string, SignedBy & { at: number }>();
    let reason: string | undefined;
    for (const { layer, createdAt } of found.slice(0, MAX_SIGNATURE_LAYERS)) {
      const payload = await this.payload(img, layer);
      if (!payload) {
        reason ??= 'payload blob missing or not the digest its layer names';
        continue;
      }
      const signer = keys.find((k) => this.verifies(img.repositoryId, k, layer, payload));
      if (!signer) {
        reason ??= 'signature does not verify with a trusted key';
        continue;
      }
      let parsed;
      try {
        parsed = parsePayload(payload);
      } catch (e) {
        reason ??= `signed payload is invalid: ${(e as Error).message}`;
        continue;
      }
      if (parsed.digest !== digest) {
        reason ??= `signed payload names another manifest (${parsed.digest})`;
        continue;
      }
      if (!(await this.namesImage(parsed.dockerReference, img.name))) {
        reason ??= `signed payload names another image (${parsed.dockerReference.slice(0, 200)})`;
        continue;
      }
      const at = records.get(signer.keyId)?.signedAt ?? createdAt;
      const prev = good.get(signer.keyId);
      if (!prev || at < prev.at) good.set(signer.keyId, { keyId: signer.keyId, kind: signer.kind, name: signer.name, since: new Date(at).toISOString(), at });
    }
    const signedBy = [...good.values()].sort((a, b) => a.at - b.at).map(({ at: _, ...s }) => s);
    if (signedBy.length) {
      const summary = signedBy.map((s) => `signed by ${s.kind === 'repository' ? 'repository key' : `trusted key "${s.name}"`} ${s.keyId} since ${s.since}`).join('; ');
      return { state: 'signed', summary, signedBy, signatures: found.length };
    }
    if (found.length) return { state: 'invalid', summary: `signature does not verify (${reason})`, signedBy, reason: reason!, signatures: found.length };
    return { state: 'unsigned', summary: 'unsigned', signedBy, signatures: 0 };
  }

  /**
   * Whether `key` verifies `layer`'s signature over `payload`, remembered. Verdicts are
   * recomputed whenever a repository's version moves and the verdict list is not cached, so
   * without this every request would check again up to 64 layers × 51 keys of 64 KiB payloads
   * (docs/security.md, "Signing"): a repository manager's denial of service on demand.
   */
  private verifies(repositoryId: number, key: TrustedKey, layer: Descriptor, payload: Buffer): boolean {
    const signature = layer.annotations![SIGNATURE_ANNOTATION]!;
    const k = `${repositoryId}\0${key.keyId}\0${layer.digest}\0${createHash('sha256').update(signature).digest('base64')}`;
    let ok = this.checked.get(k);
    if (ok === undefined) {
      ok = verifyPayload(key.key, payload, signature);
      if (this.checked.size >= MAX_CHECKED) this.checked.delete(this.checked.keys().next().value!);
      this.checked.set(k, ok);
    }
    return ok;
  }

  /**
   * Whether a payload's docker-reference names the image: its long name under any host (the
   * one the client used), or its short name under a custom domain mapped to it
   * (`registry.acme.com/prod/app` for `acme/prod/app` when that host maps to `acme`).
   */
  private async namesImage(ref: string, image: string): Promise<boolean> {
    if (referenceNames(ref, image)) return true;
    const hp = referenceHostPath(ref);
    const host = hp && normalizeHost(hp.host);
    const map = host && this.domains ? await this.domains.resolve(host) : undefined;
    return map !== undefined && map.toLong(hp!.path) === image;
  }

  // --- the pull policy -----------------------------------------------------------------------

  /** "Require signature" (DESIGN §11): registered in the pull decision chain by the registry. */
  policy(): PullPolicy {
    return {
      name: SIGNATURE_POLICY,
      content: true,
      version: (owner, repository) => {
        const versionOf = (s: (SigningSettingsRecord & { repositoryId: number }) | null) => (s?.requireSignature ? `${s.repositoryId}:${s.version}` : undefined);
        const s = this.cachedSettings(owner, repository);
        return s instanceof Promise ? s.then(versionOf) : versionOf(s);
      },
      decide: (pull) => this.decide(pull),
    };
  }

  private async decide(pull: PullSubject): Promise<string | undefined> {
    const img = await this.meta.findImage(pull.name);
    if (!img) return undefined;
    const keys = await this.trustedKeys(img.repositoryId);
    const v = await this.verdictOf(img, pull.digest, keys);
    if (v.state === 'signed') return undefined;
    // A child of a signed index counts as signed (a platform image pulled through its index).
    for (const parent of await this.store.listParents(img.id, pull.digest, MAX_PARENTS)) {
      if ((await this.verdictOf(img, parent, keys)).state === 'signed') return undefined;
    }
    const why = v.state === 'invalid' ? `its signature does not verify (${v.reason})` : 'it is unsigned';
    return `pull refused by the signature policy of ${pull.owner}/${pull.repository}: only manifests with a valid signature from a trusted key are served, and ${pull.digest} ${why}`;
  }

  /**
   * Settings by name, trusted for `cacheMs` (several nodes: see docs/signing.md#policy); local
   * changes clear it. A promise only when the store must be read.
   */
  private cachedSettings(owner: string, repository: string): (SigningSettingsRecord & { repositoryId: number }) | null | Promise<(SigningSettingsRecord & { repositoryId: number }) | null> {
    const k = `${owner}/${repository}`;
    const now = Date.now();
    const hit = this.cache.get(k);
    if (hit && now - hit.at < this.opts.cacheMs) return hit.value;
    return this.store.findSettingsByName(owner, repository).then((found) => {
      const value = found ?? null;
      if (this.cache.size >= 10_000) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(k, { at: now, value });
      return value;
    });
  }

  // --- signing on push -----------------------------------------------------------------------

  /**
   * The sign job of a pushed image manifest or index when the repository signs on push, read
   * here (before the manifest's transaction, which enqueues it): a crash after the commit
   * cannot lose it. Signatures and other referrers are not signed.
   */
  private async jobsFor(image: ImageRecord, digest: string, m: ParsedManifest, tag: string | null): Promise<NewJob[]> {
    // An image that names a subject is still an image (docs/security.md): signed like any.
    if (!SIGNABLE.has(m.mediaType) || (m.subject !== null && !wantsSbom(m)) || (tag !== null && isAttachmentTag(tag)) || cosignLayersOnly(m.layers)) return [];
    if (!(await this.store.findSettings(image.repositoryId)).signOnPush) return [];
    return [{ kind: SIGN_JOB, subject: `${image.name}@${digest}`, runAfter: Date.now() }];
  }

  /**
   * A signature (or other referrer) changes what verdicts say: a new version. After the commit,
   * awaited (a failure fails the push, and the client's retry bumps); the version lives in the
   * signing store, outside the manifest's transaction.
   */
  private async afterPut(e: ManifestPutEvent): Promise<void> {
    if (e.cached) return;
    // A referrer (not an image that also names a subject): verdicts may change, a new version.
    if (hasSubject(e.payload) || (e.tag !== null && isAttachmentTag(e.tag))) {
      await this.store.bumpVersion(e.repositoryId);
      this.cache.clear();
    }
  }

  private async afterDelete(e: ManifestDeleteEvent): Promise<void> {
    await this.store.bumpVersion(e.repositoryId);
    this.cache.clear();
  }

  /**
   * Signs one manifest with the repository's current key (job `signing.sign`, subject
   * `NAME@DIGEST`). Idempotent: a `.sig` layer already verifying with the current key is reused
   * and the referrer is written once. Other signatures in the `.sig` manifest are kept: the
   * rewrite of the tag is a compare-and-swap, so a client's `.sig` pushed between our read and
   * our write makes us read again (up to MAX_SIG_RACES times) rather than drop its layers.
   */
  private async signJob(job: JobRecord): Promise<void> {
    const at = job.subject.lastIndexOf('@');
    const name = job.subject.slice(0, at);
    const digest = job.subject.slice(at + 1);
    const img = await this.meta.findImage(name);
    if (!img) return;
    if (!(await this.store.findSettings(img.repositoryId)).signOnPush) return;
    const m = await this.meta.findManifest(img.id, digest);
    if (!m || !SIGNABLE.has(m.mediaType) || hasSubject(m.payload)) return;
    const key = await this.currentKey(img.repositoryId);
    const publicKey = createPublicKey(key.publicKey);
    const tag = signatureTag(digest);
    const record = await this.store.findRecord(img.id, digest, key.keyId);
    const now = Date.now();
    let mine: Descriptor | undefined; // our new signature layer, made once however often we retry
    let layer: Descriptor | undefined;
    let sigDigest: string | undefined;
    for (let race = 0; !layer; race++) {
      const existing = await this.meta.findTaggedManifest(img.id, tag);
      sigDigest = existing?.digest;
      for (const l of existing ? signatureLayers(existing.payload) : []) {
        const payload = await this.payload(img, l);
        if (payload && verifyPayload(publicKey, payload, l.annotations![SIGNATURE_ANNOTATION]!) && parsePayload(payload).digest === digest) layer = l;
      }
      if (layer) break;
      if (!mine) {
        const privateKey = createPrivateKey(this.keyring.decrypt(key.privateKey!, PURPOSE.repositorySigningKey).toString('utf8'));
        const payload = simpleSigningPayload(`${this.opts.identity}/${name}`, digest, now);
        mine = signatureLayer(payload, signPayload(privateKey, payload));
        await this.putBlob(name, payload);
      }
      // Keep every signature already there (a user's, an older key's), as cosign does.
      const layers = [...(existing ? manifestLayers(existing.payload) : []).slice(-(MAX_SIGNATURE_LAYERS - 1)), mine];
      const config = signatureConfig(layers);
      await this.putBlob(name, config);
      try {
        sigDigest = (await this.manifests.put(name, tag, signatureManifest(config, layers), OCI_MANIFEST, { expectTag: existing?.digest ?? null })).digest;
        layer = mine;
      } catch (e) {
        if (!(e instanceof TagMovedError) || race + 1 >= MAX_SIG_RACES) throw e;
      }
    }
    if (layer !== mine && record && (await this.meta.findManifest(img.id, record.referrerDigest))) return;
    await this.putBlob(name, EMPTY_JSON);
    const referrer = referrerManifest(layer, { mediaType: m.mediaType, digest, size: m.size }, now);
    const referrerDigest = (await this.manifests.put(name, sha256(referrer), referrer, OCI_MANIFEST)).digest;
    const rec: SigningRecord = { digest, keyId: key.keyId, signatureDigest: sigDigest!, referrerDigest, signedAt: record?.signedAt ?? now };
    await this.store.saveRecord(img.id, rec);
  }

  /**
   * Queues a signing job for every tagged image manifest and index of the repository and the
   * children of those indexes (at most MAX_BACKFILL); each job skips what is signed already.
   */
  private async backfillJob(job: JobRecord): Promise<void> {
    const repositoryId = Number(job.subject);
    if (!Number.isSafeInteger(repositoryId) || !(await this.store.findSettings(repositoryId)).signOnPush) return;
    let queued = 0;
    for (let after: string | undefined; queued < MAX_BACKFILL; ) {
      const names = await this.meta.listImageNames({ limit: 100, after, repositoryIds: [repositoryId] });
      if (!names.length) break;
      after = names[names.length - 1];
      for (const name of names) {
        const img = await this.meta.findImage(name);
        if (!img) continue;
        for (let last: string | undefined; queued < MAX_BACKFILL; ) {
          const tags = await this.meta.listTagEntries(img.id, { limit: 200, after: last });
          if (!tags.length) break;
          last = tags[tags.length - 1]!.name;
          const digests = new Set<string>();
          for (const t of tags) {
            if (isAttachmentTag(t.name)) continue;
            const m = await this.meta.findManifest(img.id, t.digest);
            if (!m || !SIGNABLE.has(m.mediaType) || hasSubject(m.payload)) continue;
            digests.add(m.digest);
            for (const child of indexChildren(m.payload)) digests.add(child);
          }
          await this.jobs.enqueue([...digests].map((d) => ({ kind: SIGN_JOB, subject: `${name}@${d}`, runAfter: Date.now() })));
          queued += digests.size;
        }
      }
    }
  }

  private async putBlob(name: string, bytes: Buffer): Promise<void> {
    await this.uploads.putMonolithic(name, sha256(bytes), once(bytes), bytes.length);
  }

  // --- helpers -------------------------------------------------------------------------------

  /** The repository's current key, created (ECDSA P-256) on first use. */
  private async currentKey(repositoryId: number): Promise<SigningKeyRecord> {
    const keys = await this.store.listKeys(repositoryId);
    return keys.find((k) => k.current) ?? (await this.store.saveRepositoryKey(repositoryId, this.newKey(), false));
  }

  private newKey(): { keyId: string; publicKey: string; privateKey: string } {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return {
      keyId: keyFingerprint(publicKey),
      publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      privateKey: this.keyring.encrypt(PURPOSE.repositorySigningKey, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()),
    };
  }

  private async trustedKeys(repositoryId: number): Promise<TrustedKey[]> {
    return (await this.store.listKeys(repositoryId)).map((k) => ({ keyId: k.keyId, kind: k.kind, name: k.name, key: createPublicKey(k.publicKey) }));
  }

  /** A signature layer's payload, if the image links it and its bytes hash to the layer's digest (cached: content-addressed). */
  private async payload(img: ImageRecord, layer: Descriptor): Promise<Buffer | undefined> {
    if (layer.size > MAX_PAYLOAD_BYTES || !(await this.meta.findImageBlob(img.id, layer.digest))) return undefined;
    const hit = this.payloads.get(layer.digest);
    if (hit) return hit;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const c of await this.blobs.open(layer.digest)) {
        size += (c as Buffer).length;
        if (size > MAX_PAYLOAD_BYTES) return undefined;
        chunks.push(c as Buffer);
      }
    } catch (e) {
      if (e instanceof RegistryError && e.code === 'BLOB_UNKNOWN') return undefined; // the store lost it: no signature
      throw e;
    }
    const bytes = Buffer.concat(chunks);
    if (sha256(bytes) !== layer.digest) return undefined;
    if (this.payloads.size >= PAYLOAD_CACHE) this.payloads.delete(this.payloads.keys().next().value!);
    this.payloads.set(layer.digest, bytes);
    return bytes;
  }

  private async manageable(actor: Identity, owner: string, name: string): Promise<number> {
    return (await this.tenancy.manageableRepository(actor, owner, name)).id;
  }

  private view(repository: string, s: SigningSettingsRecord): SigningSettingsView {
    return { repository, signOnPush: s.signOnPush, requireSignature: s.requireSignature, identity: `${this.opts.identity}/${repository}`, version: s.version };
  }
}

/** The child digests an index lists (none for an image manifest). */
function indexChildren(payload: Buffer): string[] {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as { manifests?: { digest?: unknown }[] };
    return Array.isArray(doc.manifests) ? doc.manifests.map((c) => c?.digest).filter((d): d is string => typeof d === 'string') : [];
  } catch {
    return [];
  }
}

async function* once(bytes: Buffer): AsyncIterable<Buffer> {
  yield bytes;
}

function present(k: SigningKeyRecord): SigningKeyView {
  return { keyId: k.keyId, kind: k.kind, name: k.name, current: k.current, publicKey: k.publicKey, createdAt: iso(k.createdAt)!, retiredAt: iso(k.retiredAt) };
}

/**
 * The identity prefix from the configuration: `signing.identity` as given, else the host and
 * path of `auth.publicUrl`, else the listen address (`localhost` for a wildcard host).
 */
export function signingIdentity(c: { signingIdentity?: string; publicUrl?: string; listen: { host: string; port: number } }): string {
  if (c.signingIdentity) return c.signingIdentity.replace(/\/+$/, '');
  if (c.publicUrl) {
    const u = new URL(c.publicUrl);
    return `${u.host}${u.pathname.replace(/\/+$/, '')}`;
  }
  const wildcard = c.listen.host === '0.0.0.0' || c.listen.host === '::' || c.listen.host === '';
  const host = wildcard ? 'localhost' : c.listen.host.includes(':') ? `[${c.listen.host}]` : c.listen.host;
  return `${host}:${c.listen.port}`;
}
