/**
 * The pull-through cache (docs/proxy.md): a repository may name upstream registries; a pull
 * that misses locally is answered from them in priority order and, where the upstream has
 * `cache: true`, stored through the same core functions a push uses, so the next pull is local
 * and still works when the upstream is down.
 *
 * Talking to upstreams reuses the importer's OCI client (auth negotiation, token caching);
 * retries with backoff, timeouts and the fall-through to the next upstream live here.
 */
import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { RegistryError } from '../errors.ts';
import { digestOf, newHash, parseDigest } from '../content/digest.ts';
import { parseImageName } from '../content/names.ts';
import { type Manifests, type Page, type ReferrersIndex, parseLookupReference } from '../content/manifests.ts';
import { OCI_INDEX } from '../content/media-types.ts';
import { parseManifest } from '../content/manifest.ts';
import { Egress, EgressError } from '../egress/egress.ts';
import type { Images } from '../content/images.ts';
import type { Uploads } from '../content/uploads.ts';
import { RegistryClient } from '../import/client.ts';
import { ApiError } from '../access/tenancy.ts';
import { ImportError } from '../import/errors.ts';
import { Keyring } from '../keys/keyring.ts';
import { PURPOSE } from '../keys/sealed.ts';
import type { AccessStore, UpstreamRecord } from '../../metadata/access-store.ts';
import type { ManifestRecord, MetadataStore } from '../../metadata/metadata-store.ts';

export interface ProxyOptions {
  /** A cached manifest fetched by tag is revalidated at most this often. */
  tagTtlSeconds: number;
  /** Time an upstream may stay silent. */
  timeoutMs: number;
  /** Retries per upstream on 429, 5xx and network errors. */
  retries: number;
  /** Wait before the first retry, doubled each time. */
  backoffMs: number;
  /** The real reason an upstream could not be reached, for the server's log (clients read only "connection failed"). */
  onUpstreamError?: (url: string, reason: string) => void;
  /** Seals upstream passwords at rest (core/keys); default: a key that lives as long as the process. */
  keyring?: Keyring;
}

export const DEFAULT_PROXY_OPTIONS: ProxyOptions = { tagTtlSeconds: 300, timeoutMs: 30_000, retries: 2, backoffMs: 250 };

/** What a manifest GET serves. */
export type ServedManifest = Pick<ManifestRecord, 'digest' | 'mediaType' | 'size' | 'payload'>;

/** What the blob handler does after a local miss. */
export type ProxiedBlob =
  /** Now stored and linked: serve it as any local blob. */
  | { kind: 'stored' }
  /** Streaming from the upstream (verified before the end; destroyed on a mismatch). */
  | { kind: 'stream'; size: number | undefined; stream: Readable }
  /** A HEAD through a non-caching upstream. */
  | { kind: 'head'; size: number | undefined };

export interface NewUpstreamInput {
  url: string;
  username?: string;
  password?: string;
  priority?: number;
  cache?: boolean;
  prefix?: string;
  remotePrefix?: string;
}

interface Candidate {
  upstream: UpstreamRecord;
  /** The image's name upstream. */
  remote: string;
  client: RegistryClient;
  /** Who Berth is at this upstream: a hash of its URL, username and password. */
  identity: string;
}

/** A blob fetch in flight: the stored size (-1: not cached), and whose authorisation it ran under. */
interface BlobFlight {
  size: Promise<number>;
  /** The identities and remote names of every candidate the fetch could use, in order. */
  authority: string;
}

const authorityOf = (cands: Candidate[]) => cands.map((c) => `${c.identity}\0${c.remote}`).join('\n');

function isNotFound(e: unknown): boolean {
  return e instanceof ImportError && e.status === 404;
}

/** 429, 5xx and network trouble are worth another try; auth and other 4xx are not. */
function retryable(e: unknown): boolean {
  if (e instanceof ImportError) {
    if (e.status === undefined) return e.code === 'REGISTRY';
    return e.status === 429 || e.status >= 500;
  }
  return true;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Feeds `src` to the store while copying it to `out`, holding back the last chunk until verified. */
async function* teeHoldingLast(src: AsyncIterable<Buffer>, out: PassThrough | undefined, held: { last?: Buffer }): AsyncGenerator<Buffer> {
  for await (const chunk of src) {
    if (held.last && out && !out.destroyed) {
      if (!out.write(held.last)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            out.off('drain', done);
            out.off('close', done);
            resolve();
          };
          out.on('drain', done);
          out.on('close', done);
        });
      }
    }
    held.last = chunk;
    yield chunk;
  }
}

export class UpstreamProxy {
  private readonly clients = new Map<number, { client: RegistryClient; identity: string }>();
  /** When each cached tag was last revalidated by this process (`name:tag` → ms). A cache only. */
  private readonly checked = new Map<string, number>();
  /** Single-flight: one upstream fetch per missing blob digest in this process. */
  private readonly blobFlights = new Map<string, BlobFlight>();
  private readonly manifestFlights = new Map<string, Promise<ServedManifest>>();

  constructor(
    private readonly meta: MetadataStore,
    private readonly access: AccessStore,
    private readonly images: Images,
    private readonly manifests: Manifests,
    private readonly uploads: Uploads,
    private readonly opts: ProxyOptions = DEFAULT_PROXY_OPTIONS,
    private readonly egress: Egress = new Egress(),
  ) {}

  private get keyring(): Keyring {
    return (this.opts.keyring ??= Keyring.ephemeral());
  }

  // ---- management (authorization is the caller's: Tenancy-level manage check in the API) ----

  async add(repositoryId: number, u: NewUpstreamInput): Promise<UpstreamRecord> {
    let url: URL;
    try {
      url = new URL(u.url);
    } catch {
      throw new ApiError(400, 'INVALID', `invalid upstream URL "${u.url}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ApiError(400, 'INVALID', 'upstream URL must be http:// or https://');
    try {
      await this.egress.validateUrl(url.toString());
    } catch (e) {
      if (!(e instanceof EgressError)) throw e;
      throw new ApiError(400, 'INVALID', `upstream URL refused by the egress policy: ${e.reason} (an operator may allow it with egress.allow)`);
    }
    const norm = (p: string | undefined) => (p ? p.replace(/^\/+/, '').replace(/\/*$/, '/') : '');
    return this.access.createUpstream({
      repositoryId,
      url: url.origin + url.pathname.replace(/\/+$/, ''),
      username: u.username ?? null,
      passwordEnc: u.password !== undefined ? this.keyring.encrypt(PURPOSE.upstreamPassword, u.password) : null,
      priority: u.priority ?? 0,
      cache: u.cache ?? true,
      prefix: norm(u.prefix),
      remotePrefix: norm(u.remotePrefix),
    });
  }

  list(repositoryId: number): Promise<UpstreamRecord[]> {
    return this.access.listUpstreams(repositoryId);
  }

  async remove(repositoryId: number, id: number): Promise<boolean> {
    const ok = await this.access.removeUpstream(repositoryId, id);
    this.clients.get(id)?.client.close();
    this.clients.delete(id);
    return ok;
  }

  // ---- pulling ----

  /** The upstreams that serve image `name`, in priority order, with the name each knows it by. */
  private async candidates(name: string): Promise<Candidate[]> {
    const n = parseImageName(name);
    const repo = await this.access.findRepository(n.owner, n.repository);
    if (!repo) return [];
    const ups = await this.access.listUpstreams(repo.id);
    const out: Candidate[] = [];
    for (const up of ups) {
      if (up.prefix && !(n.image.startsWith(up.prefix) && n.image.length > up.prefix.length)) continue;
      out.push({ upstream: up, remote: up.remotePrefix + n.image.slice(up.prefix.length), ...(await this.client(up)) });
    }
    return out;
  }

  private async client(up: UpstreamRecord): Promise<{ client: RegistryClient; identity: string }> {
    let c = this.clients.get(up.id);
    if (!c) {
      const password = up.passwordEnc ? this.keyring.decryptText(up.passwordEnc, PURPOSE.upstreamPassword) : undefined;
      const client = new RegistryClient({
        url: up.url,
        ...(up.username !== null && password !== undefined ? { username: up.username, password } : {}),
        mode: 'pull',
        userAgent: 'berth-proxy',
        timeoutMs: this.opts.timeoutMs,
        egress: this.egress,
      });
      const identity = createHash('sha256').update(`${up.url}\0${up.username ?? ''}\0${password ?? ''}`).digest('hex');
      c = { client, identity };
      this.clients.set(up.id, c);
    }
    return c;
  }

  /**
   * Runs `fn` against each upstream in order, retrying 429/5xx/network errors with backoff.
   * `undefined` from `fn` means "not there": the next upstream is asked. Returns undefined when
   * no upstream has it; throws UPSTREAM_UNAVAILABLE when none could answer.
   */
  private async first<T>(cands: Candidate[], what: string, fn: (c: Candidate) => Promise<T | undefined>): Promise<{ value: T; cand: Candidate } | undefined> {
    const errors: string[] = [];
    let answered = false;
    for (const cand of cands) {
      for (let attempt = 0; ; attempt++) {
        try {
          const value = await fn(cand);
          answered = true;
          if (value !== undefined) return { value, cand };
          break;
        } catch (e) {
          if (isNotFound(e)) {
            answered = true;
            break;
          }
          if (e instanceof RegistryError) throw e;
          if (!retryable(e) || attempt >= this.opts.retries) {
            errors.push(`${cand.upstream.url}: ${(e as Error).message}`);
            const cause = (e as { cause?: unknown }).cause;
            if (cause) this.opts.onUpstreamError?.(cand.upstream.url, cause instanceof EgressError ? cause.reason : String((cause as Error).message ?? cause));
            break;
          }
          await sleep(this.opts.backoffMs * 2 ** attempt);
        }
      }
    }
    if (!answered && errors.length) {
      throw new RegistryError('UPSTREAM_UNAVAILABLE', `no upstream could serve ${what}: ${errors.join('; ')}`.slice(0, 1000), {
        detail: { upstreams: errors.length },
      });
    }
    return undefined;
  }

  /**
   * A manifest for GET/HEAD: local content first; pushed content is never overridden. On a
   * miss, or for a cached tag older than the TTL, the upstreams are asked.
   */
  async manifest(name: string, ref: string): Promise<ServedManifest> {
    const r = parseLookupReference(ref);
    let local: ManifestRecord | undefined;
    let miss: RegistryError | undefined;
    try {
      local = await this.manifests.get(name, ref);
    } catch (e) {
      if (!(e instanceof RegistryError && (e.code === 'MANIFEST_UNKNOWN' || e.code === 'NAME_UNKNOWN'))) throw e;
      miss = e;
    }
    if (local && (r.kind === 'digest' || !local.cached)) return local;
    if (local && r.kind === 'tag') {
      const at = this.checked.get(`${name}:${r.tag}`);
      if (at !== undefined && Date.now() - at < this.opts.tagTtlSeconds * 1000) return local;
    }
    const cands = await this.candidates(name);
    if (!cands.length) {
      if (local) return local;
      throw miss!;
    }
    const key = `${name}@${ref}`;
    let flight = this.manifestFlights.get(key);
    if (!flight) {
      flight = this.fetchManifest(name, ref, cands, local).finally(() => this.manifestFlights.delete(key));
      this.manifestFlights.set(key, flight);
    }
    return flight;
  }

  private async fetchManifest(name: string, ref: string, cands: Candidate[], local: ManifestRecord | undefined): Promise<ServedManifest> {
    const r = parseLookupReference(ref);
    if (local && r.kind === 'tag') {
      // Revalidate: HEAD, honour the upstream's digest; serve the cached copy when it fails.
      let found;
      try {
        found = await this.first(cands, `${name}:${r.tag}`, (c) => c.client.headManifest(c.remote, r.tag));
      } catch {
        return local;
      }
      this.checked.set(`${name}:${r.tag}`, Date.now());
      if (!found || found.value === local.digest) return local;
      try {
        const m = await found.cand.client.getManifest(found.cand.remote, found.value);
        return await this.keep(name, r.tag, m.bytes, m.mediaType, found.cand.upstream.cache);
      } catch {
        return local;
      }
    }
    const found = await this.first(cands, `${name}${r.kind === 'tag' ? ':' : '@'}${ref}`, (c) => c.client.getManifest(c.remote, ref));
    if (!found) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${ref}`, { detail: { reference: ref } });
    if (r.kind === 'tag') this.checked.set(`${name}:${r.tag}`, Date.now());
    return this.keep(name, ref, found.value.bytes, found.value.mediaType, found.cand.upstream.cache);
  }

  /**
   * Serves (and, when caching, stores by the same core function a push uses) a fetched manifest
   * only once it parses as a manifest of a known media type: an upstream answering something
   * else (an internal service's page, an error document) is the upstream's failure, a 502.
   */
  private async keep(name: string, ref: string, bytes: Buffer, mediaType: string, cache: boolean): Promise<ServedManifest> {
    let parsed;
    try {
      parsed = parseManifest(bytes, mediaType);
    } catch (e) {
      if (!(e instanceof RegistryError)) throw e;
      // Not the parser's message: it may quote the answer (JSON.parse does).
      throw new RegistryError('UPSTREAM_UNAVAILABLE', `the upstream's answer for ${name}${ref.includes(':') ? '@' : ':'}${ref} is not a manifest of a known media type`);
    }
    if (!cache) return { digest: digestOf(bytes), mediaType: parsed.mediaType, size: bytes.length, payload: bytes };
    const put = await this.manifests.put(name, ref, bytes, parsed.mediaType, { cached: true });
    return this.manifests.get(name, put.digest);
  }

  /**
   * After a local BLOB_UNKNOWN: fetches the blob from the upstreams. The first request for a
   * digest streams it to its client while it is written to the store; concurrent ones wait for
   * that fetch and are then served from the store. Returns undefined when the repository has no
   * upstream for the image (the caller keeps its BLOB_UNKNOWN).
   */
  async blob(name: string, digest: string, withBody: boolean): Promise<ProxiedBlob | undefined> {
    parseDigest(digest);
    const cands = await this.candidates(name);
    if (!cands.length) return undefined;
    const key = `${cands[0]!.upstream.url}\0${cands[0]!.remote}\0${digest}`;
    const running = this.blobFlights.get(key);
    if (running) {
      // The bytes may be shared, never the authorisation: a request whose upstreams are not
      // exactly those of the fetch in flight (other credentials, another tenant) first asks its
      // own upstreams whether it may have the blob, as it would have without the flight.
      if (running.authority !== authorityOf(cands)) {
        const allowed = await this.first(cands, `blob ${digest}`, async (c) => ((await c.client.hasBlob(c.remote, digest)) ? true : undefined));
        if (!allowed) throw new RegistryError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, { detail: { digest } });
      }
      const size = await running.size;
      if (size >= 0) {
        const img = await this.images.ensure(name);
        await this.meta.saveBlob(img.id, digest, size, { cached: true });
        return { kind: 'stored' };
      }
      return this.fetchBlob(name, digest, cands, withBody); // a non-caching upstream: fetch our own copy
    }
    // The bytes are here already (another repository pulled them): with our own upstream's
    // word (HEAD, our credentials) they are linked without being downloaded again.
    const known = await this.meta.findBlob(digest);
    if (known) {
      const entitled = await this.first(cands, `blob ${digest}`, async (c) => ((await c.client.hasBlob(c.remote, digest)) ? c : undefined));
      if (!entitled) throw new RegistryError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, { detail: { digest } });
      if (entitled.value.upstream.cache) {
        const img = await this.images.ensure(name);
        await this.meta.saveBlob(img.id, digest, known.size, { cached: true });
        return { kind: 'stored' };
      }
    }
    if (this.blobFlights.has(key)) return this.blob(name, digest, withBody); // started while we asked
    // Registered before any await, so every concurrent request finds it.
    let settle!: { resolve: (n: number) => void; reject: (e: unknown) => void };
    const flight = new Promise<number>((resolve, reject) => (settle = { resolve, reject }));
    flight.catch(() => undefined);
    const entry: BlobFlight = { size: flight, authority: authorityOf(cands) };
    this.blobFlights.set(key, entry);
    const done = () => {
      if (this.blobFlights.get(key) === entry) this.blobFlights.delete(key);
    };
    try {
      return await this.fetchBlob(name, digest, cands, withBody, (p) =>
        p.then(
          (n) => {
            done();
            settle.resolve(n);
          },
          (e: unknown) => {
            done();
            settle.reject(e);
          },
        ),
      );
    } catch (e) {
      done();
      settle.reject(e);
      throw e;
    }
  }

  /** One upstream fetch; `track` gets the promise of the stored size (-1: not cached). */
  private async fetchBlob(name: string, digest: string, cands: Candidate[], withBody: boolean, track?: (p: Promise<number>) => void): Promise<ProxiedBlob> {
    const opened = await this.first(cands, `blob ${digest}`, (c) => c.client.openBlob(c.remote, digest));
    if (!opened) throw new RegistryError('BLOB_UNKNOWN', `blob unknown to registry: ${digest}`, { detail: { digest } });
    const res = opened.value as Readable & { headers?: Record<string, string | string[] | undefined> };
    const lenHeader = res.headers?.['content-length'];
    const size = typeof lenHeader === 'string' && /^\d+$/.test(lenHeader) ? Number(lenHeader) : undefined;
    // No hang: a stalled body fails the fetch after the timeout.
    (res as unknown as { setTimeout?: (ms: number, cb: () => void) => void }).setTimeout?.(this.opts.timeoutMs, () =>
      res.destroy(new Error(`upstream ${opened.cand.upstream.url} stalled for ${this.opts.timeoutMs} ms`)),
    );
    const cache = opened.cand.upstream.cache;
    if (!cache && !withBody) {
      res.destroy();
      track?.(Promise.resolve(-1));
      return { kind: 'head', size };
    }
    const out = withBody ? new PassThrough({ highWaterMark: 1024 * 1024 }) : undefined;
    const held: { last?: Buffer } = {};
    const body = teeHoldingLast(res as AsyncIterable<Buffer>, out, held);
    const work = (async (): Promise<number> => {
      if (cache) {
        let n = 0;
        const counted = (async function* () {
          for await (const c of body) {
            n += c.length;
            yield c;
          }
        })();
        await this.uploads.putMonolithic(name, digest, counted, size, { cached: true });
        return n;
      }
      const d = parseDigest(digest);
      const hash = newHash(d.algorithm);
      let n = 0;
      for await (const c of body) {
        hash.update(c);
        n += c.length;
      }
      const actual = `${d.algorithm}:${hash.digest('hex')}`;
      if (actual !== digest) throw new RegistryError('DIGEST_INVALID', `upstream sent content hashing to ${actual} for ${digest}`);
      if (size !== undefined && n !== size) throw new RegistryError('SIZE_INVALID', `upstream sent ${n} of ${size} bytes`);
      return -1;
    })();
    const settled = work.then(
      (n) => {
        // Verified (and, when caching, committed): only now does the client get the last bytes.
        if (out && !out.destroyed) out.end(held.last);
        return n;
      },
      (e: unknown) => {
        // Bad bytes or a broken transfer are the upstream's fault: say so (502), cache nothing.
        const err = new RegistryError('UPSTREAM_UNAVAILABLE', `fetching ${digest} from ${opened.cand.upstream.url} failed: ${(e as Error).message}`.slice(0, 1000));
        res.destroy();
        out?.destroy(err);
        throw err;
      },
    );
    settled.catch(() => undefined);
    track?.(settled);
    if (!out) {
      await settled;
      return { kind: 'stored' };
    }
    return { kind: 'stream', size, stream: out };
  }

  /** Local tags merged with those of every upstream that answers. */
  async listTags(name: string, limit: number, last?: string): Promise<Page<string>> {
    const cands = await this.candidates(name);
    if (!cands.length) return this.manifests.listTags(name, limit, last);
    const all = new Set<string>();
    let known = false;
    try {
      const local = await this.manifests.listTags(name, 100_000);
      local.items.forEach((t) => all.add(t));
      known = true;
    } catch (e) {
      if (!(e instanceof RegistryError && e.code === 'NAME_UNKNOWN')) throw e;
    }
    for (const c of cands) {
      try {
        const found = await this.first([c], `tags of ${name}`, async (x) => {
          const tags = await x.client.listTags(x.remote);
          return tags.length ? tags : undefined;
        });
        if (found) {
          found.value.forEach((t) => all.add(t));
          known = true;
        }
      } catch {
        /* unreachable upstream: local answer only */
      }
    }
    if (!known) throw new RegistryError('NAME_UNKNOWN', `repository name not known to registry: ${name}`);
    const sorted = [...all].sort().filter((t) => last === undefined || t > last);
    if (limit === 0) return { items: [] };
    if (sorted.length > limit) {
      const items = sorted.slice(0, limit);
      return { items, next: items[items.length - 1] };
    }
    return { items: sorted };
  }

  /**
   * Local referrers merged with those of every upstream that answers (by digest; local first).
   * An unreachable upstream leaves the local answer.
   */
  async referrers(name: string, digest: string, artifactType?: string): Promise<ReferrersIndex> {
    const cands = await this.candidates(name);
    let local: ReferrersIndex | undefined;
    try {
      local = await this.manifests.referrers(name, digest, artifactType);
    } catch (e) {
      if (!(cands.length && e instanceof RegistryError && e.code === 'NAME_UNKNOWN')) throw e;
    }
    const merged: ReferrersIndex = local ?? { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
    const seen = new Set(merged.manifests.map((m) => m.digest));
    for (const c of cands) {
      try {
        const found = await this.first([c], `referrers of ${name}@${digest}`, async (x) => {
          const list = await x.client.listReferrers(x.remote, digest, artifactType);
          return list.length ? list : undefined;
        });
        for (const d of found?.value ?? []) {
          if (seen.has(d.digest)) continue;
          seen.add(d.digest);
          merged.manifests.push({
            mediaType: d.mediaType,
            digest: d.digest,
            size: d.size,
            ...(d.artifactType ? { artifactType: d.artifactType } : {}),
            ...(d.annotations ? { annotations: d.annotations } : {}),
          });
        }
      } catch {
        /* unreachable upstream: local answer only */
      }
    }
    return merged;
  }

  close(): void {
    for (const c of this.clients.values()) c.client.close();
    this.clients.clear();
  }
}
