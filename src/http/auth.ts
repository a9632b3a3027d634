import type { FastifyRequest } from 'fastify';
import type { Action, Identity } from '../core/access/access.ts';
import { RegistryError } from '../core/errors.ts';
import { type ImageName, parseImageName } from '../core/content/names.ts';
import { FailureLimiter } from '../core/access/rate-limit.ts';
import type { Registry } from '../core/registry.ts';
import type { VerifiedToken } from '../core/access/tokens.ts';
import { noteLogin } from './events.ts';

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
  loginFailureWindowSeconds: number;
}

const ANONYMOUS: RequestAuth = { identity: { kind: 'anonymous' } };

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

/** Parses `Authorization: Basic …`; undefined when it is not Basic. */
export function parseBasic(header: string): { username: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return { username: text, password: '' };
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

/**
 * Authentication (who is asking) and authorization (may they do this to that repository) for
 * the HTTP layer, over core's Authenticator, TokenService and Access. One decision per request.
 */
export class HttpAuth {
  private readonly limiter: FailureLimiter;

  constructor(
    private readonly registry: Registry,
    private readonly opts: AuthOptions,
  ) {
    this.limiter = new FailureLimiter(opts.maxLoginFailures, opts.loginFailureWindowSeconds * 1000);
  }

  get service(): string {
    return this.opts.service;
  }

  realm(req: FastifyRequest): string {
    const base = this.opts.publicUrl ?? `${req.protocol}://${req.host}`;
    return `${base.replace(/\/$/, '')}/v2/token`;
  }

  /** The `WWW-Authenticate` value sending clients to the token endpoint. */
  challenge(req: FastifyRequest, scope?: string, error?: string): string {
    let v = `Bearer realm="${this.realm(req)}",service="${this.opts.service}"`;
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
          const verified = await this.registry.tokens.verify(token);
          if (!verified) throw this.unauthorized(req, 'invalid or expired token', undefined, 'invalid_token');
          auth = { identity: verified.identity, token: verified };
        }
      }
    }
    req.berthAuth = auth;
    return auth;
  }

  /** Checks Basic credentials under the failed-login limits. */
  async checkBasic(req: FastifyRequest, username: string, password: string): Promise<Identity> {
    const token = username === 'token' || username.includes('/') || password.startsWith('berth_');
    return this.guard(req, username, () => this.registry.authenticator.basic(username, password), token);
  }

  /** Checks credentials under the failed-login limits; the attempt is noted for the event stream. */
  private async guard(req: FastifyRequest, username: string | undefined, check: () => Promise<Identity>, token: boolean): Promise<Identity> {
    const keys = [`ip:${req.ip}`, ...(username ? [`user:${username}`] : [])];
    const wait = Math.max(...keys.map((k) => this.limiter.retryAfter(k)));
    const via = req.url.startsWith('/v2/token') ? 'token_endpoint' : username === undefined ? 'bearer' : 'basic';
    noteLogin(req, { ok: false, token, via, ...(username ? { username } : {}) });
    if (wait > 0) {
      throw new RegistryError('TOOMANYREQUESTS', `too many failed logins: try again in ${wait} s`, {
        headers: { 'Retry-After': String(wait) },
      });
    }
    try {
      const identity = await check();
      noteLogin(req, { ok: true, identity, token, via });
      return identity;
    } catch (e) {
      if (e instanceof RegistryError && e.code === 'UNAUTHORIZED') {
        for (const k of keys) this.limiter.fail(k);
        req.log.info({ username }, 'failed login');
        throw this.unauthorized(req, e.message);
      }
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

  /** Counts a pull by an entitlement token against its download limit. */
  async countDownload(req: FastifyRequest): Promise<void> {
    const identity = req.berthAuth?.identity;
    if (identity?.kind !== 'entitlement') return;
    if (!(await this.registry.accessStore.countDownload(identity.credentialId))) {
      throw new RegistryError('DENIED', 'this token has reached its download limit');
    }
  }
}
