import type { FastifyRequest } from 'fastify';
import type { Action, Identity } from '../core/access/access.ts';
import { RegistryError } from '../core/errors.ts';
import { type ImageName, parseImageName } from '../core/content/names.ts';
import { LoginLimiter } from '../core/access/rate-limit.ts';
import type { Registry } from '../core/registry.ts';
import type { VerifiedToken } from '../core/access/tokens.ts';
import { entitlementProblem } from '../core/access/auth.ts';
import { noteLogin } from './events.ts';
import { decodeUtf8, isCleanText } from '../core/content/text.ts';
import { proxyTrust } from './proxies.ts';
import type { NameMap } from '../core/domains/names.ts';

/** What authentication established for one request. */
export interface RequestAuth {
  identity: Identity;
  /** Set when the request carried a bearer token: its grants decide, not the database. */
  token?: VerifiedToken;
}

declare module 'fastify' {
  interface FastifyRequest {
    berthAuth?: RequestAuth;
  }
}

export interface AuthOptions {
  service: string;
  publicUrl?: string;
  maxLoginFailures: number;
  maxUserLoginFailures: number;
  loginDelayAfterFailures: number;
  loginMaxDelaySeconds: number;
  loginFailureWindowSeconds: number;
  /** The configured listen address (`listen`): the realm's last resort without publicUrl. */
  listen?: string;
  /** Proxies whose X-Forwarded-Proto / -Host may set the realm when publicUrl is unset. */
  trustedProxies?: readonly string[];
}

const ANONYMOUS: RequestAuth = { identity: { kind: 'anonymous' } };
/** A host[:port] a proxy may forward: a DNS name, an IPv4 address or a bracketed IPv6 address. */
const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The answer to a push the caller may not make where they may not read either: the same for a
 * repository that does not exist and one they may not see, and it says what to do.
 */
export const PUSH_REFUSED = 'repository does not exist or you may not push to it: create it with `berth repo create OWNER/REPOSITORY` or ask its owner for access';

/** The scope a client asks the token endpoint for, for `action` on `name` (push → pull,push, as distribution). */
export function scopeOf(name: string, action: Action): string {
  return `repository:${name}:${action === 'push' ? 'pull,push' : action}`;
}

/** A mount's `from` when it is a valid image name (it may go into a challenge); else undefined. */
export function parseMountSource(from: string | undefined): ImageName | undefined {
  if (from === undefined) return undefined;
  try {
    return parseImageName(from);
  } catch {
    return undefined;
  }
}

/**
 * Parses `Authorization: Basic …`: undefined when it is not Basic, null when it is garbled
 * (not base64, not UTF-8, or a control character in the username or password).
 */
export function parseBasic(header: string): { username: string; password: string } | null | undefined {
  if (!/^Basic(\s|$)/i.test(header)) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!m) return null;
  const text = decodeUtf8(Buffer.from(m[1]!, 'base64'));
  if (text === undefined) return null;
  const i = text.indexOf(':');
  const creds = i < 0 ? { username: text, password: '' } : { username: text.slice(0, i), password: text.slice(i + 1) };
  return cleanCredentials(creds.username, creds.password) ? creds : null;
}

/** A custom domain's token names images by their short names: its grants as the long names /v2 authorizes. */
function withLongNames(token: VerifiedToken, host: NameMap): VerifiedToken {
  const grants = new Map<string, Set<Action>>();
  for (const [name, actions] of token.grants) {
    const long = host.toLong(name);
    if (long !== undefined) grants.set(long, actions);
  }
  return { ...token, grants };
}

/** Usernames and passwords are plain text: a control character is never part of one. */
export function cleanCredentials(username: string, password: string): boolean {
  return isCleanText(username) && isCleanText(password);
}

/**
 * Authentication (who is asking) and authorization (may they do this to that repository) for
 * the HTTP layer, over core's Authenticator, TokenService and Access. One decision per request.
 */
export class HttpAuth {
  private readonly limiter: LoginLimiter;
  private readonly trusted: (address: string | undefined) => boolean;

  constructor(
    private readonly registry: Registry,
    private readonly opts: AuthOptions,
  ) {
    this.limiter = new LoginLimiter(registry.accessStore, {
      windowSeconds: opts.loginFailureWindowSeconds,
      delayAfterFailures: opts.loginDelayAfterFailures,
      maxDelaySeconds: opts.loginMaxDelaySeconds,
      maxFailures: opts.maxLoginFailures,
      maxUserFailures: opts.maxUserLoginFailures,
    });
    this.trusted = proxyTrust(opts.trustedProxies ?? []);
  }

  /** The bearer-token `service` (and token audience) of a request: its custom domain's host name, or this registry's. */
  service(req: FastifyRequest): string {
    return req.berthHost?.host ?? this.opts.service;
  }

  /**
   * The token endpoint's URL: `auth.publicUrl`; else X-Forwarded-Proto/-Host sent by a trusted
   * proxy; else the address the client connected to (the server's side of the socket); else
   * the configured listen address. Never the Host header: a client must not choose where
   * other clients are sent to log in.
   */
  realm(req: FastifyRequest): string {
    const base = req.berthHost ? (this.forwardedBase(req) ?? this.domainBase(req, req.berthHost.host)) : (this.opts.publicUrl ?? this.forwardedBase(req) ?? this.localBase(req));
    return `${base.replace(/\/$/, '')}/v2/token`;
  }

  private forwardedBase(req: FastifyRequest): string | undefined {
    const socket = req.raw.socket as { remoteAddress?: string; encrypted?: boolean } | null;
    if (!this.trusted(socket?.remoteAddress)) return undefined;
    const last = (v: string | string[] | undefined) => (Array.isArray(v) ? v.at(-1) : v)?.split(',').at(-1)?.trim();
    const host = last(req.headers['x-forwarded-host']);
    if (!host || !HOST_RE.test(host)) return undefined;
    const proto = last(req.headers['x-forwarded-proto'])?.toLowerCase();
    return `${proto === 'https' || proto === 'http' ? proto : socket?.encrypted ? 'https' : 'http'}://${host}`;
  }

  /**
   * A custom domain's base URL on a direct connection: its host name (from the database, never
   * the header's spelling) with the scheme and port the client connected to.
   */
  private domainBase(req: FastifyRequest, host: string): string {
    const socket = req.raw.socket as { localPort?: number; encrypted?: boolean } | null;
    const proto = socket?.encrypted ? 'https' : 'http';
    const port = socket?.localPort;
    const usual = port === undefined || port === (proto === 'https' ? 443 : 80);
    return `${proto}://${host}${usual ? '' : `:${port}`}`;
  }

  private localBase(req: FastifyRequest): string {
    const socket = req.raw.socket as { localAddress?: string; localPort?: number; encrypted?: boolean } | null;
    const proto = socket?.encrypted ? 'https' : 'http';
    let host = socket?.localAddress;
    let port = socket?.localPort;
    if (!host || !port) {
      const listen = this.opts.listen ?? ':5000';
      const i = listen.lastIndexOf(':');
      host = listen.slice(0, i).replace(/^\[|\]$/g, '');
      port = Number(listen.slice(i + 1));
      if (host === '' || host === '0.0.0.0' || host === '::') host = 'localhost';
    }
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
    if (mapped) host = mapped[1]!;
    return `${proto}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** The `WWW-Authenticate` value sending clients to the token endpoint. */
  challenge(req: FastifyRequest, scope?: string, error?: string): string {
    let v = `Bearer realm="${this.realm(req)}",service="${this.service(req)}"`;
    if (scope) v += `,scope="${scope}"`;
    if (error) v += `,error="${error}"`;
    return v;
  }

  unauthorized(req: FastifyRequest, message: string, scope?: string, error?: string): RegistryError {
    return new RegistryError('UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': this.challenge(req, scope, error) } });
  }

  /**
   * Establishes the identity from Basic credentials or a bearer token (JWT or API key).
   * Bad credentials → 401; too many failures from the source or for the username → 429.
   */
  async authenticate(req: FastifyRequest, opts: { apiKeyBearer?: boolean } = {}): Promise<RequestAuth> {
    if (req.berthAuth) return req.berthAuth;
    const header = req.headers.authorization;
    let auth: RequestAuth = ANONYMOUS;
    if (header) {
      const basic = parseBasic(header);
      if (basic === null) {
        noteLogin(req, { ok: false, token: false, via: req.url.startsWith('/v2/token') ? 'token_endpoint' : 'basic' });
        throw this.unauthorized(req, 'malformed Basic credentials: base64 of UTF-8 username:password without control characters');
      }
      if (basic) {
        auth = { identity: await this.checkBasic(req, basic.username, basic.password) };
      } else {
        const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
        if (!m) throw this.unauthorized(req, 'unsupported Authorization scheme: use Basic or Bearer');
        const token = m[1]!;
        if (opts.apiKeyBearer && token.startsWith('berth_')) {
          auth = { identity: await this.guard(req, undefined, () => this.registry.authenticator.apiKeyOnly(token), true) };
        } else if (opts.apiKeyBearer) {
          // A registry token grants only its scopes on /v2: it must not act as its holder's
          // account on the management API (minting API keys, users, …).
          throw this.unauthorized(req, 'use an API key (berth_k_…) or Basic credentials, not a registry token', undefined, 'invalid_token');
        } else {
          // A token is good only on the host it was issued for (docs/security.md#custom-domains).
          const verified = await this.registry.tokens.verify(token, this.service(req));
          if (!verified) throw this.unauthorized(req, 'invalid or expired token', undefined, 'invalid_token');
          auth = { identity: verified.identity, token: req.berthHost ? withLongNames(verified, req.berthHost) : verified };
        }
      }
    }
    req.berthAuth = auth;
    return auth;
  }

  /** Checks Basic credentials under the failed-login limits. */
  async checkBasic(req: FastifyRequest, username: string, password: string): Promise<Identity> {
    const token = username === 'token' || username.includes('/') || password.startsWith('berth_');
    const authn = this.registry.authenticator;
    return this.guard(req, username, () => authn.basic(username, password), token, () => authn.recentlyVerified(username, password));
  }

  /**
   * Checks credentials under the failed-login limits (docs/security.md); the attempt is noted for
   * the event stream. Passwords only: API keys and entitlement tokens are 256-bit random
   * secrets that no one guesses, so they are neither counted nor ever held back. A password
   * verified within the last minute (the authenticator's cache) is not a guess either.
   */
  private async guard(
    req: FastifyRequest,
    username: string | undefined,
    check: () => Promise<Identity>,
    token: boolean,
    recentlyVerified?: () => boolean,
  ): Promise<Identity> {
    const via = req.url.startsWith('/v2/token') ? 'token_endpoint' : username === undefined ? 'bearer' : 'basic';
    noteLogin(req, { ok: false, token, via, ...(username ? { username } : {}) });
    // A password that passed recently is no guess: the limits are not consulted for it.
    const known = !token && username !== undefined && recentlyVerified?.() === true;
    const limited = !token && username !== undefined && !known;
    const state = limited ? await this.limiter.check(req.ip, username) : undefined;
    if (state && state.retryAfter > 0) {
      throw new RegistryError('TOOMANYREQUESTS', `too many failed logins for this username from this address: try again in ${state.retryAfter} s`, {
        headers: { 'Retry-After': String(state.retryAfter) },
      });
    }
    try {
      const identity = await check();
      noteLogin(req, { ok: true, identity, token, via });
      if (state?.pairFailed) await this.limiter.succeeded(req.ip, username!);
      else if (known) await this.limiter.succeeded(req.ip, username!, true);
      return identity;
    } catch (e) {
      if (e instanceof RegistryError && e.code === 'UNAUTHORIZED') {
        if (limited) await this.limiter.failed(req.ip, username);
        req.log.info({ username: username?.slice(0, 100) }, 'failed login');
        throw this.unauthorized(req, e.message);
      }
      // podman and skopeo print a token endpoint's message only for a 401 ("download limit reached").
      if (e instanceof RegistryError && e.code === 'DENIED' && via === 'token_endpoint') throw this.unauthorized(req, e.message);
      throw e;
    }
  }

  /**
   * Authorizes `action` on image `name` (OWNER/REPOSITORY/IMAGE). Outcomes, so that nothing
   * reveals a private repository to someone who may not read it:
   * - allowed (by the bearer token's grants, or else by the identity's rights) → resolves;
   * - a bearer token that lacks the action while its holder could be granted it → 401 with
   *   `error="insufficient_scope"` and the scope to ask for (the Docker token flow: the client
   *   fetches a wider token and retries);
   * - anonymous and not allowed → 401 with a challenge for the scope (the client may log in);
   * - the identity may read but not do this → 403 DENIED;
   * - may not read (or it does not exist) → 404 NAME_UNKNOWN, one message whatever the case.
   * `alsoPull`: an image the request will read too (a mount's `from`), added to challenges.
   */
  async authorize(req: FastifyRequest, name: string, action: Action, opts: { alsoPull?: string } = {}): Promise<void> {
    const parsed = parseImageName(name);
    const auth = await this.authenticate(req);
    if (auth.token?.grants.get(name)?.has(action)) return;
    // The identity's own rights: they decide for Basic callers, and for a token they tell a
    // holder who may fetch a wider one (401) from one who may not (403/404).
    const held = (await this.registry.access.check(auth.identity, parsed.owner, parsed.repository)).actions;
    if (held.has(action) && !auth.token) return;
    const scopes = [scopeOf(name, action), ...(opts.alsoPull ? [scopeOf(opts.alsoPull, 'pull')] : [])].join(' ');
    if (held.has(action)) throw this.unauthorized(req, `this token does not grant ${action} on ${name}: fetch one for scope "${scopes}"`, scopes, 'insufficient_scope');
    if (auth.identity.kind === 'anonymous') throw this.unauthorized(req, 'authentication required', scopes);
    if (held.has('pull')) throw new RegistryError('DENIED', `requested access to ${name} is denied: ${action} not allowed`);
    throw new RegistryError('NAME_UNKNOWN', action === 'push' ? `${name}: ${PUSH_REFUSED}` : `repository name not known to registry: ${name}`);
  }

  /**
   * Whether a cross-repository mount into `to` may take blobs from image `from`: the request
   * must be allowed to pull there. A bearer token without pull on `from` whose holder could be
   * granted it → 401 insufficient_scope for both images, so a client following challenges
   * fetches a token for both and retries (distribution asks pull on `from` the same way).
   * Otherwise false (an ordinary upload follows, revealing nothing about `from`).
   */
  async mayMountFrom(req: FastifyRequest, to: string, from: string): Promise<boolean> {
    const parsed = parseMountSource(from);
    if (!parsed) return false;
    const auth = await this.authenticate(req);
    if (auth.token?.grants.get(from)?.has('pull')) return true;
    const held = (await this.registry.access.check(auth.identity, parsed.owner, parsed.repository)).actions;
    if (!held.has('pull')) return false;
    if (!auth.token) return true;
    const scopes = `${scopeOf(to, 'push')} ${scopeOf(from, 'pull')}`;
    throw this.unauthorized(req, `this token does not grant pull on ${from}, the source of the mount: fetch one for scope "${scopes}"`, scopes, 'insufficient_scope');
  }

  /**
   * Images the request may read that link blob `digest`, for a mount without (or past) `from`.
   * A bearer token: among the names it grants pull on (at most 16); otherwise one indexed query
   * over every repository the identity may read.
   */
  async readableImagesWithBlob(req: FastifyRequest, digest: string): Promise<string[]> {
    const auth = await this.authenticate(req);
    if (auth.token) {
      return [...auth.token.grants].filter(([, actions]) => actions.has('pull')).slice(0, 16).map(([name]) => name);
    }
    const found = await this.registry.access.findReadableImageWithBlob(auth.identity, digest);
    return found === undefined ? [] : [found];
  }

  /** Repository ids the request may read, for the catalog. */
  async readableRepositoryIds(req: FastifyRequest): Promise<number[] | undefined> {
    const auth = await this.authenticate(req);
    const ids = await this.registry.access.readableRepositoryIds(auth.identity);
    return ids === 'all' ? undefined : [...ids];
  }

  /**
   * Counts one download by an entitlement token (docs/security.md: one GET that yields a
   * manifest's bytes — by tag, by digest, or through /blobs/<digest>; HEAD and 304 are free).
   * A token revoked, expired or exhausted since its bearer token was issued says so.
   */
  async countDownload(req: FastifyRequest): Promise<void> {
    const identity = req.berthAuth?.identity;
    if (identity?.kind !== 'entitlement') return;
    const store = this.registry.accessStore;
    const cred = await store.findCredential(identity.credentialId);
    if (!cred) throw this.unauthorized(req, 'entitlement token revoked');
    const problem = entitlementProblem(cred);
    if (!problem && (await store.countDownload(cred.id))) return;
    const e = problem ?? entitlementProblem({ ...cred, downloadCount: Math.max(cred.downloadCount, cred.downloadLimit ?? 0) })!;
    throw e.code === 'UNAUTHORIZED' ? this.unauthorized(req, e.message) : e;
  }
}
