import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, importJWK, jwtVerify, calculateJwkThumbprint, type JWK } from 'jose';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { Action, Identity } from './access.ts';
import { Keyring } from '../keys/keyring.ts';
import { PURPOSE, TOKEN_KEY_SETTING } from '../keys/sealed.ts';

/** One entry of the Docker token `access` claim. */
export interface AccessGrant {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

/** A requested scope: `repository:acme/prod/app:pull,push`, `registry:catalog:*`. */
export interface Scope {
  type: 'repository' | 'registry';
  name: string;
  actions: string[];
}

/** Parses a Docker scope string; undefined when malformed (ignored, as distribution does). */
export function parseScope(s: string): Scope | undefined {
  const first = s.indexOf(':');
  const last = s.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  let type = s.slice(0, first);
  const name = s.slice(first + 1, last);
  const actions = s.slice(last + 1).split(',').filter(Boolean);
  // `repository(plugin):name:pull` — a resource class; ignore it.
  type = type.replace(/\(.*\)$/, '');
  if (type !== 'repository' && type !== 'registry') return undefined;
  if (!name || actions.length === 0) return undefined;
  return { type, name, actions };
}

/** Docker scope actions → Berth actions (`*` = everything a client can ask for). */
export function scopeActions(actions: string[]): Action[] {
  const out = new Set<Action>();
  for (const a of actions) {
    if (a === '*') ['pull', 'push', 'delete'].forEach((x) => out.add(x as Action));
    else if (a === 'pull' || a === 'push' || a === 'delete') out.add(a);
  }
  return [...out];
}

export interface VerifiedToken {
  identity: Identity;
  /** Image name → actions granted; present even with no actions when the scope was asked. */
  grants: Map<string, Set<Action>>;
  catalog: boolean;
  expiresAt: number;
  /** The service (or custom domain) the token was issued for. */
  audience: string;
}

interface BerthClaim {
  k: 'anonymous' | 'user' | 'entitlement';
  id?: number;
  u?: string;
  a?: boolean;
  r?: number;
  key?: number;
}

/**
 * Issues and verifies the short-lived ES256 JWTs of the Docker bearer-token flow. The signing
 * key is generated once and kept in the metadata store sealed under the key-encryption key
 * (core/keys), so every node with that key signs and verifies with the same signing key, and
 * the database alone cannot mint a token. Verified tokens are cached until they expire.
 */
export class TokenService {
  private readonly cache = new Map<string, VerifiedToken>();

  private constructor(
    private readonly privateKey: CryptoKey | Uint8Array,
    private readonly publicKey: CryptoKey | Uint8Array,
    private readonly kid: string,
    readonly service: string,
    readonly ttlSeconds: number,
  ) {}

  static async open(store: AccessStore, keyring: Keyring, service: string, ttlSeconds: number): Promise<TokenService> {
    let stored = await store.getSetting(TOKEN_KEY_SETTING);
    if (!stored) {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      stored = await store.putSettingIfAbsent(TOKEN_KEY_SETTING, keyring.encrypt(PURPOSE.tokenSigningKey, JSON.stringify(await exportJWK(privateKey))));
    }
    // Plain only in a database from before key management that the start-up sweep has not sealed yet.
    const jwk = JSON.parse(Keyring.isSealed(stored) ? keyring.decryptText(stored, PURPOSE.tokenSigningKey) : stored) as JWK;
    const { d: _d, ...pub } = jwk;
    const kid = await calculateJwkThumbprint(pub);
    return new TokenService(
      await importJWK({ ...jwk, alg: 'ES256' }, 'ES256'),
      await importJWK({ ...pub, alg: 'ES256' }, 'ES256'),
      kid,
      service,
      ttlSeconds,
    );
  }

  /**
   * `audience`: the service the token is for — this registry's `service`, or a custom domain's
   * host name (docs/domains.md); verify() refuses it anywhere else.
   */
  async issue(identity: Identity, access: AccessGrant[], audience: string = this.service): Promise<{ token: string; expiresIn: number; issuedAt: Date }> {
    const now = Math.floor(Date.now() / 1000);
    const claim: BerthClaim =
      identity.kind === 'user'
        ? { k: 'user', id: identity.userId, u: identity.username, a: identity.siteAdmin, ...(identity.apiKeyId ? { key: identity.apiKeyId } : {}) }
        : identity.kind === 'entitlement'
          ? { k: 'entitlement', id: identity.credentialId, r: identity.repositoryId }
          : { k: 'anonymous' };
    const token = await new SignJWT({ access, berth: claim })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.kid })
      .setIssuer(this.service)
      .setAudience(audience)
      .setSubject(identity.kind === 'user' ? identity.username : identity.kind === 'entitlement' ? `token:${identity.credentialId}` : '')
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + this.ttlSeconds)
      .setJti(randomUUID())
      .sign(this.privateKey);
    return { token, expiresIn: this.ttlSeconds, issuedAt: new Date(now * 1000) };
  }

  /**
   * Verifies signature, issuer, audience (this service, or the custom domain the request came
   * in on) and lifetime; undefined if invalid.
   */
  async verify(token: string, audience: string = this.service): Promise<VerifiedToken | undefined> {
    const cached = this.cache.get(token);
    if (cached) {
      if (cached.expiresAt <= Date.now()) this.cache.delete(token);
      else return cached.audience === audience ? cached : undefined;
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, {
        algorithms: ['ES256'],
        issuer: this.service,
        audience,
        clockTolerance: 5,
      }));
    } catch {
      return undefined;
    }
    const claim = payload.berth as BerthClaim | undefined;
    if (!claim || typeof payload.exp !== 'number') return undefined;
    let identity: Identity;
    if (claim.k === 'user' && typeof claim.id === 'number' && typeof claim.u === 'string') {
      identity = { kind: 'user', userId: claim.id, username: claim.u, siteAdmin: claim.a === true, ...(claim.key ? { apiKeyId: claim.key } : {}) };
    } else if (claim.k === 'entitlement' && typeof claim.id === 'number' && typeof claim.r === 'number') {
      identity = { kind: 'entitlement', credentialId: claim.id, repositoryId: claim.r };
    } else if (claim.k === 'anonymous') {
      identity = { kind: 'anonymous' };
    } else {
      return undefined;
    }
    const grants = new Map<string, Set<Action>>();
    let catalog = false;
    for (const g of (payload.access as AccessGrant[] | undefined) ?? []) {
      if (g.type === 'repository') grants.set(g.name, new Set(scopeActions(g.actions)));
      if (g.type === 'registry' && g.name === 'catalog' && g.actions.includes('*')) catalog = true;
    }
    const verified: VerifiedToken = { identity, grants, catalog, expiresAt: payload.exp * 1000, audience };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(token, verified);
    return verified;
  }
}
