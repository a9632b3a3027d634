import { createHmac, randomBytes } from 'node:crypto';
import { RegistryError } from '../errors.ts';
import type { Identity } from './access.ts';
import { API_KEY_PREFIX, ENTITLEMENT_PREFIX, hashSecret, safeEqual, verifyPassword } from './secrets.ts';
import type { AccessStore, CredentialRecord } from '../../metadata/access-store.ts';

/** How long a successful password check is remembered (each use still reads the user's hash). */
const PASSWORD_CACHE_MS = 10 * 60_000;
const TOUCH_INTERVAL_MS = 60_000;

function unauthorized(message = 'invalid username or password'): RegistryError {
  return new RegistryError('UNAUTHORIZED', message);
}

/**
 * Turns credentials into an Identity (DESIGN.md §5):
 * - username `token` or `OWNER/REPOSITORY` + an entitlement token → read-only on that repository;
 * - a username + one of that user's API keys;
 * - a username + password (argon2id). A successful check is remembered for ten minutes under an
 *   HMAC of the pair (keyed with a random per-process key, so the cache holds nothing an
 *   offline guesser could use) together with the password hash it was checked against: a
 *   repeat skips argon2 but still reads the user, and counts only while that user still has
 *   the very same hash — a password change or a removed user takes effect at once, on every
 *   process and node sharing the database. Basic auth on every request costs one indexed read.
 * Revoked or expired credentials are refused. Throws UNAUTHORIZED; never says which part was
 * wrong.
 */
export class Authenticator {
  private readonly passwordCache = new Map<string, { passwordHash: string; until: number }>();
  private readonly cacheKey = randomBytes(32);
  private readonly verifying = new Map<string, Promise<boolean>>();
  private readonly touched = new Map<number, number>();

  constructor(private readonly store: AccessStore) {}

  async basic(username: string, password: string): Promise<Identity> {
    if (!username || !password) throw unauthorized();
    if (username === 'token' || username.includes('/') || password.startsWith(ENTITLEMENT_PREFIX)) {
      return this.entitlement(username, password);
    }
    if (password.startsWith(API_KEY_PREFIX)) return this.apiKey(username, password);
    const cacheKey = this.keyOf(username, password);
    const user = await this.store.findUserByName(username);
    if (!user?.passwordHash) {
      // Same cost as a real check, so timing does not reveal which usernames exist.
      await verifyPassword(DUMMY_HASH, password);
      throw unauthorized();
    }
    const hit = this.passwordCache.get(cacheKey);
    const known = hit !== undefined && hit.until > Date.now() && safeEqual(hit.passwordHash, user.passwordHash);
    if (!known && !(await this.verifyOnce(cacheKey, user.passwordHash, password))) throw unauthorized();
    return { kind: 'user', userId: user.id, username: user.username, siteAdmin: user.siteAdmin };
  }

  /**
   * argon2 for one (credential, hash) pair at a time: a client sending Basic credentials on 64
   * connections when its remembered check expires makes one verification, not 64 (which would
   * stall the process for seconds). A success is remembered.
   */
  private verifyOnce(cacheKey: string, passwordHash: string, password: string): Promise<boolean> {
    const flightKey = `${cacheKey}\0${passwordHash}`;
    let flight = this.verifying.get(flightKey);
    if (!flight) {
      flight = verifyPassword(passwordHash, password)
        .then((ok) => {
          if (ok) {
            if (this.passwordCache.size >= 10_000) this.passwordCache.clear();
            this.passwordCache.set(cacheKey, { passwordHash, until: Date.now() + PASSWORD_CACHE_MS });
          }
          return ok;
        })
        .finally(() => this.verifying.delete(flightKey));
      this.verifying.set(flightKey, flight);
    }
    return flight;
  }

  /**
   * Whether this username + password passed a check recently (no argon2, no store read): such
   * a login is no guess, so the failed-login limits need not be consulted. `basic()` still
   * decides, against the user's current hash.
   */
  recentlyVerified(username: string, password: string): boolean {
    const hit = this.passwordCache.get(this.keyOf(username, password));
    return hit !== undefined && hit.until > Date.now();
  }

  private keyOf(username: string, password: string): string {
    return createHmac('sha256', this.cacheKey).update(`${username}\0${password}`).digest('base64');
  }

  /** An API key alone (e.g. `Authorization: Bearer berth_k_…` on the management API). */
  async apiKeyOnly(secret: string): Promise<Identity> {
    return this.apiKey(undefined, secret);
  }

  /** Forgets cached password checks (after a password change). */
  forgetPasswords(): void {
    this.passwordCache.clear();
  }

  private async apiKey(username: string | undefined, secret: string): Promise<Identity> {
    const cred = await this.store.findCredentialByHash(hashSecret(secret));
    if (!cred || cred.kind !== 'api_key' || cred.userId === null || !live(cred)) throw unauthorized();
    const user = await this.store.findUserById(cred.userId);
    if (!user || (username !== undefined && username !== user.username)) throw unauthorized();
    this.touch(cred);
    return { kind: 'user', userId: user.id, username: user.username, siteAdmin: user.siteAdmin, apiKeyId: cred.id };
  }

  private async entitlement(username: string, secret: string): Promise<Identity> {
    const cred = await this.store.findCredentialByHash(hashSecret(secret));
    if (!cred || cred.kind !== 'entitlement' || cred.repositoryId === null) throw unauthorized();
    if (username !== 'token') {
      const repo = await this.store.findRepositoryById(cred.repositoryId);
      if (!repo || `${repo.owner}/${repo.name}` !== username) throw unauthorized();
    }
    // The holder has the secret: telling them why it no longer works reveals nothing.
    const problem = entitlementProblem(cred);
    if (problem) throw problem;
    this.touch(cred);
    return { kind: 'entitlement', credentialId: cred.id, repositoryId: cred.repositoryId };
  }

  /** Records last use, at most once a minute per credential. */
  private touch(cred: CredentialRecord): void {
    const now = Date.now();
    if ((this.touched.get(cred.id) ?? 0) > now - TOUCH_INTERVAL_MS) return;
    this.touched.set(cred.id, now);
    void this.store.touchCredential(cred.id, now).catch(() => undefined);
  }
}

/**
 * Why an entitlement token may not download now, in words docker and podman print: revoked,
 * "entitlement token expired on DATE" (401), or "download limit reached" (403; the token
 * endpoint answers it as a 401); undefined when it may.
 */
export function entitlementProblem(c: CredentialRecord, now = Date.now()): RegistryError | undefined {
  if (c.revokedAt !== null) return unauthorized(`entitlement token revoked on ${new Date(c.revokedAt).toISOString()}`);
  if (c.expiresAt !== null && c.expiresAt <= now) return unauthorized(`entitlement token expired on ${new Date(c.expiresAt).toISOString()}`);
  if (c.downloadLimit !== null && c.downloadCount >= c.downloadLimit) {
    return new RegistryError('DENIED', `download limit reached: this entitlement token allowed ${c.downloadLimit} download${c.downloadLimit === 1 ? '' : 's'}`);
  }
  return undefined;
}

function live(c: CredentialRecord): boolean {
  return c.revokedAt === null && (c.expiresAt === null || c.expiresAt > Date.now());
}

/** An argon2id hash of a random password, verified against when the user does not exist. */
const DUMMY_HASH = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0mDLZy/eGyuxkyEOQZJBJTZmFQ4dZkwDMTsnS0Lc8o4';
