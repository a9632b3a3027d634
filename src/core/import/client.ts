/**
 * A small OCI Distribution client, enough to push an import and pull an image back, against
 * Berth or any OCI registry:
 *
 * - auth as registries negotiate it: a first request without credentials; a 401 with
 *   `WWW-Authenticate: Bearer realm=…,service=…,scope=…` → `GET realm?service=&scope=` with
 *   Basic credentials (or none, anonymous) → `{token}` used as `Authorization: Bearer`, kept per
 *   repository until it expires; a 401 with a `Basic` challenge → Basic credentials;
 * - blobs: HEAD to skip what the registry has; `POST …/blobs/uploads/` then one `PUT
 *   <location>?digest=` whose body streams from the file with an exact Content-Length (no
 *   chunking, nothing held in memory); cross-repository mounts;
 * - manifests: PUT by digest or tag with their exact bytes; GET with every manifest type in Accept.
 */
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { digestOf, looksLikeDigest, parseDigest } from '../content/digest.ts';
import { baseMediaType, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST } from '../content/media-types.ts';
import { ImportError } from './errors.ts';
import { CONNECT_FAILED, type Egress, portOf } from '../egress/egress.ts';
import type { TargetRegistry } from './importer.ts';

export interface RegistryClientOptions {
  /** Base URL: `https://registry.example.com` or `http://localhost:5000`. */
  url: string;
  username?: string;
  password?: string;
  /** Skip TLS certificate verification. */
  insecure?: boolean;
  /** `push` (default) asks tokens for `pull,push`; `pull` for `pull`. */
  mode?: 'push' | 'pull';
  userAgent?: string;
  /** Socket idle timeout in ms (default 5 minutes); with `egress` also the bound on waiting for headers and on bodies read into memory. */
  timeoutMs?: number;
  /**
   * The server's outbound policy (the pull-through cache): every connection, redirect and token
   * realm is checked and pinned by it, failures before an answer read CONNECT_FAILED, error
   * messages carry a status and a registered code but never the remote body, and a token realm
   * on another host gets the credentials only over https (or when the operator named that host).
   * Without it (the CLI) the client connects anywhere and quotes the registry's messages.
   */
  egress?: Egress;
}

export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** What an export reads from: a registry's manifests and blobs. */
export interface SourceRegistry {
  readonly location: string;
  getManifest(name: string, reference: string, signal?: AbortSignal): Promise<FetchedManifest>;
  openBlob(name: string, digest: string, signal?: AbortSignal): Promise<Readable>;
}

interface Challenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  res: http.IncomingMessage;
}

type Body = Buffer | (() => Promise<AsyncIterable<Buffer>>);

interface RequestOptions {
  headers?: Record<string, string>;
  body?: Body;
  /** Image name the request is about: selects the token scope. */
  name?: string;
  /** More images the request reads (a mount's `from`): asked `pull` on in the same token. */
  alsoPull?: string[];
  signal?: AbortSignal;
  /** Follow redirects (GET of blobs from registries that redirect to object storage). */
  redirects?: boolean;
}

export const MANIFEST_ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(', ');

/** Parses `Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`). */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!)) !== null) {
    if (p[0] === '') break;
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme, params };
}

/** Reads a body into memory: at most `limit` bytes, within `deadlineMs` when given. */
async function readBody(res: http.IncomingMessage, limit: number, deadlineMs?: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  const timer =
    deadlineMs === undefined ? undefined : setTimeout(() => res.destroy(new ImportError('REGISTRY', `response body not complete within ${deadlineMs} ms`)), deadlineMs);
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > limit) {
        res.destroy();
        throw new ImportError('REGISTRY', `response body over ${limit} bytes`);
      }
      parts.push(chunk);
    }
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(parts, n);
}

/** The OCI Distribution spec's error codes: the only remote text quoted under an egress policy. */
const OCI_CODES = new Set([
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS',
]);

/** `401 Unauthorized (UNAUTHORIZED)`: the status, its standard reason and a registered code; nothing else of the body. */
function statusText(status: number, body: Buffer): string {
  let code: string | undefined;
  try {
    const c = (JSON.parse(body.toString('utf8')) as { errors?: { code?: unknown }[] }).errors?.[0]?.code;
    if (typeof c === 'string' && OCI_CODES.has(c)) code = c;
  } catch {
    /* not JSON */
  }
  return `${status} ${http.STATUS_CODES[status] ?? ''}${code ? ` (${code})` : ''}`.replace(/\s+/g, ' ').trim();
}

/** `401 UNAUTHORIZED: authentication required` from an OCI error body, else the status text. */
function errorText(status: number, body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const doc = JSON.parse(text) as { errors?: { code?: string; message?: string }[]; error?: string; message?: string };
    const e = doc.errors?.[0];
    if (e) return `${status} ${e.code ?? ''}${e.message ? `: ${e.message}` : ''}`.trim();
    if (doc.error || doc.message) return `${status} ${doc.error ?? doc.message}`;
  } catch {
    /* not JSON */
  }
  const plain = text.trim().slice(0, 200);
  return `${status} ${http.STATUS_CODES[status] ?? ''}${plain ? `: ${plain}` : ''}`.trim();
}

export class RegistryClient implements TargetRegistry, SourceRegistry {
  readonly location: string;
  private readonly base: URL;
  private readonly agents: { 'http:'?: http.Agent; 'https:'?: http.Agent } = {};
  private readonly basic: string | undefined;
  private readonly actions: string;
  private challenge: Challenge | undefined;
  private pinged: Promise<void> | undefined;
  private readonly tokens = new Map<string, { token: string; until: number }>();
  /** Upload sessions a failed mount opened, used by the next putBlob of that blob. */
  private readonly sessions = new Map<string, string>();

  constructor(private readonly opts: RegistryClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw new ImportError('BAD_NAME', `invalid registry URL "${opts.url}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ImportError('BAD_NAME', `registry URL must be http:// or https://, got "${opts.url}"`);
    }
    this.base = new URL(url.origin + url.pathname.replace(/\/+$/, ''));
    this.location = this.base.toString().replace(/\/$/, '');
    this.basic =
      opts.username !== undefined && opts.password !== undefined
        ? `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`
        : undefined;
    this.actions = (opts.mode ?? 'push') === 'push' ? 'pull,push' : 'pull';
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    for (const a of Object.values(this.agents)) a.destroy();
  }

  /** The keep-alive agent for a protocol (checked and pinned under an egress policy). */
  private agentFor(protocol: string): http.Agent {
    if (protocol !== 'http:' && protocol !== 'https:') throw new ImportError('REGISTRY', `unsupported protocol ${protocol}`);
    let a = this.agents[protocol];
    if (!a) {
      const o = { keepAlive: true, maxSockets: 32 };
      const tlsVerify = !this.opts.insecure;
      a = this.opts.egress
        ? this.opts.egress.agent(protocol, { ...o, rejectUnauthorized: tlsVerify, connectTimeoutMs: Math.min(this.opts.egress.connectTimeoutMs, this.opts.timeoutMs ?? 300_000) })
        : protocol === 'https:'
          ? new https.Agent({ ...o, rejectUnauthorized: tlsVerify })
          : new http.Agent(o);
      this.agents[protocol] = a;
    }
    return a;
  }

  /** The text of a failed answer: the registry's own message for the CLI; status and code only under an egress policy. */
  private errorText(status: number, body: Buffer): string {
    return this.opts.egress ? statusText(status, body) : errorText(status, body);
  }

  /** The bound on reading a body into memory: under an egress policy, the timeout. */
  private bodyDeadline(): number | undefined {
    return this.opts.egress ? (this.opts.timeoutMs ?? 300_000) : undefined;
  }

  private url(p: string): URL {
    return new URL(`${this.base.pathname.replace(/\/$/, '')}${p}`, this.base);
  }

  /** One HTTP exchange, no auth logic. The body may stream; `res` is unread. */
  private exchange(method: string, url: URL, headers: Record<string, string>, body: Body | undefined, signal?: AbortSignal): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new ImportError('ABORTED', 'import aborted'));
        return;
      }
      const mod = url.protocol === 'https:' ? https : http;
      const h: Record<string, string> = { 'user-agent': this.opts.userAgent ?? 'berth-import', ...headers };
      if (Buffer.isBuffer(body)) h['content-length'] = String(body.length);
      else if (!body && method !== 'GET' && method !== 'HEAD') h['content-length'] ??= '0';
      let agent: http.Agent;
      try {
        agent = this.agentFor(url.protocol);
      } catch (e) {
        reject(e);
        return;
      }
      const timeoutMs = this.opts.timeoutMs ?? 300_000;
      const req = mod.request(url, { method, headers: h, agent, timeout: timeoutMs });
      let settled = false;
      const egress = this.opts.egress;
      // Under an egress policy the answer's headers must arrive in time, however slowly they trickle.
      const headersTimer = egress
        ? setTimeout(() => fail(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs)
        : undefined;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(headersTimer);
        signal?.removeEventListener('abort', onAbort);
        req.destroy();
        // One text for refused, closed, unreachable and timed out: no oracle for scanning.
        if (egress && !(e instanceof ImportError)) {
          reject(Object.assign(new ImportError('REGISTRY', `${url.origin}: ${CONNECT_FAILED}`), { cause: e }));
          return;
        }
        reject(e);
      };
      const onAbort = () => fail(new ImportError('ABORTED', 'import aborted'));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('timeout', () => fail(Object.assign(new Error(`no answer from ${this.location} for ${(this.opts.timeoutMs ?? 300_000) / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => fail(e));
      req.on('response', (res) => {
        if (settled) {
          res.resume();
          return;
        }
        settled = true;
        clearTimeout(headersTimer);
        signal?.removeEventListener('abort', onAbort);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, res });
      });
      if (body === undefined) {
        req.end();
      } else if (Buffer.isBuffer(body)) {
        req.end(body);
      } else {
        body().then(
          (iterable) =>
            pipeline(Readable.from(iterable, { objectMode: false }), req).catch((e: unknown) => {
              // our own check (digest, size) failed: that is the error, whatever the socket says
              if (e instanceof ImportError) fail(e);
              else if (!settled) fail(e);
            }),
          fail,
        );
      }
    });
  }

  /** Learns how the registry authenticates (GET /v2/), once. */
  private ping(signal?: AbortSignal): Promise<void> {
    this.pinged ??= (async () => {
      let r: RawResponse;
      try {
        r = await this.exchange('GET', this.url('/v2/'), {}, undefined, signal);
      } catch (e) {
        this.pinged = undefined;
        if (e instanceof ImportError) throw e;
        const err = e as NodeJS.ErrnoException;
        throw new ImportError('REGISTRY', `cannot reach ${this.location}: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '));
      }
      const body = await readBody(r.res, 1024 * 1024, this.bodyDeadline()).catch(() => Buffer.alloc(0));
      if (r.status === 401) {
        this.challenge = parseChallenge(headerOf(r.headers['www-authenticate']));
        if (!this.challenge) throw new ImportError('AUTH', `${this.location} answers 401 without a Bearer or Basic challenge`);
      } else if (r.status === 404) {
        this.pinged = undefined;
        throw new ImportError('REGISTRY', `${this.location} is not an OCI registry (GET /v2/ → 404)`, 404);
      } else if (r.status >= 500) {
        this.pinged = undefined;
        throw new ImportError('REGISTRY', `${this.location}: GET /v2/ → ${this.errorText(r.status, body)}`, r.status);
      }
    })();
    return this.pinged;
  }

  private scopesFor(name: string | undefined, alsoPull: string[], challenge: Challenge): string[] {
    if (!name) return challenge.params.scope ? [challenge.params.scope] : [];
    return [`repository:${name}:${this.actions}`, ...alsoPull.filter((n) => n !== name).map((n) => `repository:${n}:pull`)];
  }

  private async token(challenge: Challenge, name: string | undefined, alsoPull: string[], fresh: boolean, signal?: AbortSignal): Promise<string> {
    const scopes = this.scopesFor(name, alsoPull, challenge);
    const scope = scopes.join(' ');
    const cached = this.tokens.get(scope);
    if (!fresh && cached && cached.until > Date.now()) return cached.token;
    const realm = challenge.params.realm;
    if (!realm) throw new ImportError('AUTH', `${this.location}: the Bearer challenge has no realm`);
    let url: URL;
    try {
      url = new URL(realm, this.base);
    } catch {
      throw new ImportError('AUTH', `${this.location}: the Bearer challenge's realm "${realm}" is not a URL`);
    }
    const egress = this.opts.egress;
    if (egress && url.origin !== this.base.origin && url.protocol !== 'https:' && this.basic && !egress.policy.namesHost(url.hostname, portOf(url))) {
      // Credentials cross to another host only under TLS (docker.io → auth.docker.io), or to a host the operator named.
      throw new ImportError('AUTH', `${this.location}: the token realm ${url.origin} is another host over plain http: credentials withheld`);
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const sc of scopes) url.searchParams.append('scope', sc);
    const headers: Record<string, string> = {};
    if (this.basic) headers.authorization = this.basic;
    let r: RawResponse;
    try {
      r = await this.exchange('GET', url, headers, undefined, signal);
    } catch (e) {
      if (e instanceof ImportError) throw e;
      throw new ImportError('AUTH', `cannot get a token from ${url.origin}${url.pathname}: ${(e as Error).message}`);
    }
    const body = await readBody(r.res, 1024 * 1024, this.bodyDeadline());
    if (r.status === 401 || r.status === 403) {
      throw new ImportError(
        'AUTH',
        this.basic
          ? `${this.location} refused the credentials of "${this.opts.username}": ${this.errorText(r.status, body)}`
          : `${this.location} requires credentials: give --username and --password, set BERTH_API_KEY, or run berth login`,
        r.status,
      );
    }
    if (r.status !== 200) throw new ImportError('AUTH', `token request to ${url.origin}${url.pathname} failed: ${this.errorText(r.status, body)}`, r.status);
    let doc: { token?: string; access_token?: string; expires_in?: number };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      throw new ImportError('AUTH', `token response from ${url.origin}${url.pathname} is not JSON`);
    }
    const token = doc.token ?? doc.access_token;
    if (!token) throw new ImportError('AUTH', `token response from ${url.origin}${url.pathname} has no token`);
    const ttl = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    this.tokens.set(scope, { token, until: Date.now() + Math.max(ttl - 15, ttl / 2) * 1000 });
    return token;
  }

  private async authorization(name: string | undefined, alsoPull: string[], fresh: boolean, signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      if (!this.basic) throw new ImportError('AUTH', `${this.location} requires credentials: give --username and --password, set BERTH_API_KEY, or run berth login`);
      return this.basic;
    }
    return `Bearer ${await this.token(ch, name, alsoPull, fresh, signal)}`;
  }

  /** A request with the auth dance: a 401 fetches a (fresh) token or switches to Basic, once. */
  private async request(method: string, url: URL, opts: RequestOptions = {}): Promise<RawResponse> {
    await this.ping(opts.signal);
    let fresh = false;
    for (let round = 0; ; round++) {
      const headers = { ...(opts.headers ?? {}) };
      const auth = await this.authorization(opts.name, opts.alsoPull ?? [], fresh, opts.signal);
      if (auth) headers.authorization = auth;
      let r = await this.exchange(method, url, headers, opts.body, opts.signal);
      let at = url;
      for (let hops = 0; opts.redirects && [301, 302, 303, 307, 308].includes(r.status); hops++) {
        const loc = headerOf(r.headers.location);
        r.res.resume();
        if (!loc) break;
        if (hops >= 5) throw new ImportError('REGISTRY', `${method} ${url.pathname}: more than 5 redirects`);
        let next: URL;
        try {
          next = new URL(loc, at);
        } catch {
          throw new ImportError('REGISTRY', `${method} ${url.pathname}: a redirect to an invalid URL`);
        }
        const h = { ...(opts.headers ?? {}) };
        // credentials go only to the registry itself, never to the storage it redirects to;
        // every hop connects through the same egress check as the first URL
        if (next.origin === this.base.origin && auth) h.authorization = auth;
        r = await this.exchange('GET', next, h, undefined, opts.signal);
        at = next;
      }
      // A challenge counts only from the registry itself: another host must not name a realm.
      if (r.status === 401 && at.origin !== this.base.origin) return r;
      if (r.status !== 401 || round >= 2) return r;
      const body = await readBody(r.res, 1024 * 1024, this.bodyDeadline()).catch(() => Buffer.alloc(0));
      const ch = parseChallenge(headerOf(r.headers['www-authenticate']));
      if (!ch) throw new ImportError('AUTH', `${method} ${url.pathname}: ${this.errorText(401, body)}`, 401);
      const wasBasic = this.challenge?.scheme === 'basic';
      if (ch.scheme === 'basic' && wasBasic) {
        throw new ImportError('AUTH', `${this.location} refused the credentials${this.opts.username ? ` of "${this.opts.username}"` : ''}: ${this.errorText(401, body)}`, 401);
      }
      if (ch.scheme === 'bearer' && fresh) {
        if (!this.basic) {
          throw new ImportError('AUTH', `${this.location} requires credentials for ${opts.name ?? url.pathname}: give --username and --password, set BERTH_API_KEY, or run berth login`, 401);
        }
        throw new ImportError(
          'AUTH',
          `${this.location} did not grant "${this.opts.username}" ${this.actions} on ${opts.name ?? url.pathname} (${method} ${url.pathname}: ${this.errorText(401, body)})`,
          401,
        );
      }
      this.challenge = ch;
      fresh = ch.scheme === 'bearer';
    }
  }

  private async fail(r: RawResponse, doing: string): Promise<never> {
    const body = await readBody(r.res, 1024 * 1024, this.bodyDeadline()).catch(() => Buffer.alloc(0));
    const code = r.status === 401 ? 'AUTH' : 'REGISTRY';
    throw new ImportError(code, `${doing}: ${this.errorText(r.status, body)}`, r.status);
  }

  async hasBlob(name: string, digest: string, signal?: AbortSignal): Promise<boolean> {
    const r = await this.request('HEAD', this.url(`/v2/${name}/blobs/${digest}`), { name, signal });
    r.res.resume();
    // Registries that keep blobs in object storage (Docker Hub among them) answer a blob HEAD with a redirect to it.
    if (r.status === 200 || [301, 302, 303, 307, 308].includes(r.status)) return true;
    if (r.status === 404) return false;
    return this.fail(r, `HEAD ${name} blob ${digest}`);
  }

  async mountBlob(name: string, digest: string, from: string, signal?: AbortSignal): Promise<boolean> {
    const url = this.url(`/v2/${name}/blobs/uploads/`);
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', from);
    const r = await this.request('POST', url, { name, alsoPull: [from], signal });
    r.res.resume();
    if (r.status === 201) return true;
    if (r.status === 202) {
      const loc = headerOf(r.headers.location);
      if (loc) this.sessions.set(`${name}\0${digest}`, loc);
      return false;
    }
    return this.fail(r, `mounting ${digest} into ${name} from ${from}`);
  }

  async putBlob(name: string, digest: string, size: number, open: () => Promise<AsyncIterable<Buffer>>, signal?: AbortSignal): Promise<void> {
    let loc = this.sessions.get(`${name}\0${digest}`);
    this.sessions.delete(`${name}\0${digest}`);
    if (!loc) {
      const r = await this.request('POST', this.url(`/v2/${name}/blobs/uploads/`), { name, signal });
      if (r.status !== 202) return this.fail(r, `starting the upload of ${digest} to ${name}`);
      r.res.resume();
      loc = headerOf(r.headers.location);
      if (!loc) throw new ImportError('REGISTRY', `starting the upload of ${digest} to ${name}: 202 without a Location`);
    }
    const url = new URL(loc, this.base);
    url.searchParams.set('digest', digest);
    const r = await this.request('PUT', url, {
      name,
      signal,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: open,
    });
    if (r.status !== 201 && r.status !== 204) return this.fail(r, `uploading ${digest} (${size} bytes) to ${name}`);
    r.res.resume();
  }

  async putManifest(name: string, reference: string, bytes: Buffer, mediaType: string, signal?: AbortSignal): Promise<string> {
    const r = await this.request('PUT', this.url(`/v2/${name}/manifests/${reference}`), {
      name,
      signal,
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    if (r.status !== 201 && r.status !== 200 && r.status !== 204) return this.fail(r, `PUT ${name}:${reference}`);
    r.res.resume();
    return headerOf(r.headers['docker-content-digest']) ?? digestOf(bytes);
  }

  async getManifest(name: string, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const r = await this.request('GET', this.url(`/v2/${name}/manifests/${reference}`), { name, signal, headers: { accept: MANIFEST_ACCEPT } });
    if (r.status !== 200) return this.fail(r, `GET ${name}${looksLikeDigest(reference) ? '@' : ':'}${reference}`);
    const bytes = await readBody(r.res, 4 * 1024 * 1024 + 1, this.bodyDeadline());
    let mediaType = baseMediaType(headerOf(r.headers['content-type']));
    if (!mediaType || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
      try {
        mediaType = String((JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? OCI_MANIFEST);
      } catch {
        throw new ImportError('REGISTRY', `${name}:${reference}: the manifest is not JSON`);
      }
    }
    let digest: string;
    if (looksLikeDigest(reference)) {
      digest = digestOf(bytes, parseDigest(reference).algorithm);
      if (digest !== reference) throw new ImportError('DIGEST_MISMATCH', `${name}@${reference}: the registry sent a manifest that hashes to ${digest}`);
    } else {
      const header = headerOf(r.headers['docker-content-digest']);
      digest = header && header.includes(':') ? digestOf(bytes, parseDigest(header).algorithm) : digestOf(bytes);
      if (header && header !== digest) {
        throw new ImportError('DIGEST_MISMATCH', `${name}:${reference}: the manifest hashes to ${digest} but the registry says ${header}`);
      }
    }
    return { bytes, mediaType, digest };
  }

  /** HEAD of a manifest: its digest (Docker-Content-Digest), or undefined when the registry has none. */
  async headManifest(name: string, reference: string, signal?: AbortSignal): Promise<string | undefined> {
    const r = await this.request('HEAD', this.url(`/v2/${name}/manifests/${reference}`), { name, signal, headers: { accept: MANIFEST_ACCEPT } });
    r.res.resume();
    if (r.status === 404) return undefined;
    if (r.status !== 200) return this.fail(r, `HEAD ${name}:${reference}`);
    const d = headerOf(r.headers['docker-content-digest']);
    if (!d || !looksLikeDigest(d)) throw new ImportError('REGISTRY', `HEAD ${name}:${reference}: no Docker-Content-Digest in the answer`);
    return d;
  }

  /** All tags of an image (follows `Link` pages); empty when the image is unknown. */
  async listTags(name: string, signal?: AbortSignal): Promise<string[]> {
    const tags: string[] = [];
    let url: URL | undefined = this.url(`/v2/${name}/tags/list`);
    for (let pages = 0; url && pages < 100; pages++) {
      const r = await this.request('GET', url, { name, signal });
      if (r.status === 404) {
        r.res.resume();
        return tags;
      }
      if (r.status !== 200) return this.fail(r, `GET ${name} tags`);
      const doc = parseJson<{ tags?: unknown }>(await readBody(r.res, 16 * 1024 * 1024, this.bodyDeadline()), `${name} tags`);
      if (Array.isArray(doc.tags)) tags.push(...doc.tags.filter((t): t is string => typeof t === 'string'));
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(headerOf(r.headers.link) ?? '');
      url = link ? new URL(link[1]!, this.base) : undefined;
      // the next page comes from the registry itself, or not at all (our token goes with it)
      if (url && url.origin !== this.base.origin) url = undefined;
    }
    return tags;
  }

  /**
   * The referrers of `digest` (OCI referrers API), filtered by `artifactType` here too (a
   * registry may not filter). Empty when the registry has none or no referrers API (404).
   */
  async listReferrers(name: string, digest: string, artifactType?: string, signal?: AbortSignal): Promise<ReferrerDescriptor[]> {
    const url = this.url(`/v2/${name}/referrers/${digest}`);
    if (artifactType !== undefined) url.searchParams.set('artifactType', artifactType);
    const r = await this.request('GET', url, { name, signal, headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
    if (r.status === 404) {
      r.res.resume();
      return [];
    }
    if (r.status !== 200) return this.fail(r, `GET ${name} referrers of ${digest}`);
    const doc = parseJson<{ manifests?: ReferrerDescriptor[] }>(await readBody(r.res, 4 * 1024 * 1024, this.bodyDeadline()), `${name} referrers of ${digest}`);
    const all = Array.isArray(doc.manifests) ? doc.manifests : [];
    return all.filter(
      (d) =>
        typeof d?.digest === 'string' &&
        typeof d.mediaType === 'string' &&
        typeof d.size === 'number' &&
        (artifactType === undefined || d.artifactType === artifactType),
    );
  }

  async openBlob(name: string, digest: string, signal?: AbortSignal): Promise<Readable> {
    const r = await this.request('GET', this.url(`/v2/${name}/blobs/${digest}`), { name, signal, redirects: true });
    if (r.status !== 200) return this.fail(r, `GET ${name} blob ${digest}`);
    return r.res;
  }
}

/** One entry of a referrers index. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function parseJson<T>(body: Buffer, what: string): T {
  try {
    const doc: unknown = JSON.parse(body.toString('utf8'));
    if (doc === null || typeof doc !== 'object') throw new Error('not an object');
    return doc as T;
  } catch {
    throw new ImportError('REGISTRY', `${what}: the registry's answer is not a JSON object`);
  }
}

function headerOf(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
