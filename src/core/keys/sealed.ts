/**
 * Where sealed secrets live, and the one sweep that seals old plain values and re-seals values
 * under an older key. A new kind of secret (e.g. repository signing keys) adds a SealedSite.
 */
import { createDecipheriv, createHash } from 'node:crypto';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { EventStore } from '../../metadata/event-store.ts';
import type { SigningStore } from '../../metadata/signing-store.ts';
import type { DomainStore } from '../../metadata/domain-store.ts';
import { Keyring } from './keyring.ts';

/** Purposes: bound into each sealed value, so one cannot stand in for another. */
export const PURPOSE = {
  tokenSigningKey: 'token-signing-key',
  upstreamPassword: 'upstream-password',
  webhookSecret: 'webhook-secret',
  repositorySigningKey: 'repository-signing-key',
  domainKey: 'domain-tls-key',
} as const;

/** Setting holding the token-signing private key (a JWK), sealed. */
export const TOKEN_KEY_SETTING = 'token_signing_key';

/** A place holding sealed values: list them, and replace one if it has not changed meanwhile. */
export interface SealedSite {
  name: string;
  purpose: string;
  list(): Promise<{ id: number | string; value: string }[]>;
  replace(id: number | string, from: string, to: string): Promise<boolean>;
  /** The plain text of a value stored before key management (not sealed); default: the value itself. */
  legacy?(value: string): string;
  /** Run after a sweep left no legacy value here. */
  afterLegacy?(): Promise<void>;
}

/** Before key management, upstream passwords were `v1:<iv>:<tag>:<ct>` under a key kept in the same database. */
const LEGACY_UPSTREAM_SETTING = 'proxy.secretKey';

function legacyUpstreamKey(configured: string | undefined, stored: string | undefined): Buffer | undefined {
  if (configured) {
    const raw = /^[0-9a-f]{64}$/i.test(configured) ? Buffer.from(configured, 'hex') : Buffer.from(configured, 'base64');
    return raw.length === 32 ? raw : createHash('sha256').update(configured).digest();
  }
  return stored ? Buffer.from(stored, 'base64') : undefined;
}

function legacyUpstreamDecrypt(key: Buffer | undefined, enc: string): string {
  const [v, iv, tag, ct] = enc.split(':');
  if (v !== 'v1' || !iv || !tag || ct === undefined || !key) throw new Error('an upstream password in an unknown format (or its old proxy.secretKey is gone)');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
  d.setAuthTag(Buffer.from(tag, 'base64'));
  return Buffer.concat([d.update(Buffer.from(ct, 'base64')), d.final()]).toString('utf8');
}

/** The sealed secrets of a Berth database. `legacyProxyKey`: the old `proxy.secretKey` config, if one was set. */
export async function sealedSites(access: AccessStore, events: EventStore | undefined, legacyProxyKey?: string, signing?: SigningStore, domains?: DomainStore): Promise<SealedSite[]> {
  const oldUpstreamKey = legacyUpstreamKey(legacyProxyKey, await access.getSetting(LEGACY_UPSTREAM_SETTING));
  const sites: SealedSite[] = [
    {
      name: 'token signing key',
      purpose: PURPOSE.tokenSigningKey,
      list: async () => {
        const v = await access.getSetting(TOKEN_KEY_SETTING);
        return v === undefined ? [] : [{ id: TOKEN_KEY_SETTING, value: v }];
      },
      replace: (_id, from, to) => access.replaceSetting(TOKEN_KEY_SETTING, from, to),
    },
    {
      name: 'upstream passwords',
      purpose: PURPOSE.upstreamPassword,
      list: () => access.listUpstreamSecrets(),
      replace: (id, from, to) => access.replaceUpstreamSecret(Number(id), from, to),
      legacy: (v) => legacyUpstreamDecrypt(oldUpstreamKey, v),
      afterLegacy: () => access.deleteSetting(LEGACY_UPSTREAM_SETTING),
    },
  ];
  if (events) {
    sites.push({
      name: 'webhook secrets',
      purpose: PURPOSE.webhookSecret,
      list: () => events.listWebhookSecrets(),
      replace: (id, from, to) => events.replaceWebhookSecret(Number(id), from, to),
    });
  }
  if (signing) {
    sites.push({
      name: 'repository signing keys',
      purpose: PURPOSE.repositorySigningKey,
      list: () => signing.listSealedKeys(),
      replace: (id, from, to) => signing.replaceSealedKey(Number(id), from, to),
    });
  }
  if (domains) {
    sites.push({
      name: 'domain certificate keys',
      purpose: PURPOSE.domainKey,
      list: () => domains.listDomainKeys(),
      replace: (id, from, to) => domains.replaceDomainKey(String(id), from, to),
    });
  }
  return sites;
}

export interface SweepResult {
  /** Plain (pre-key-management) values now sealed. */
  sealed: number;
  /** Values moved from an older key to the current one. */
  resealed: number;
  /** Values sealed under the current key already. */
  current: number;
}

/**
 * Seals every plain value; with `rotate`, also re-seals values under an older key with the
 * current one. Compare-and-set: a value changed meanwhile (another node) is left to it.
 */
export async function sweepSealed(keyring: Keyring, sites: SealedSite[], opts: { rotate: boolean }): Promise<Record<string, SweepResult>> {
  const out: Record<string, SweepResult> = {};
  for (const site of sites) {
    const r: SweepResult = { sealed: 0, resealed: 0, current: 0 };
    let legacyLeft = false;
    for (const { id, value } of await site.list()) {
      if (!Keyring.isSealed(value)) {
        const sealed = keyring.encrypt(site.purpose, site.legacy ? site.legacy(value) : value);
        if (await site.replace(id, value, sealed)) r.sealed++;
        else legacyLeft = true;
      } else if (Keyring.keyIdOf(value) !== keyring.currentId) {
        if (!opts.rotate) {
          keyring.decrypt(value, site.purpose); // fails early and clearly when the key is missing
          continue;
        }
        if (await site.replace(id, value, keyring.reseal(value))) r.resealed++;
      } else {
        r.current++;
      }
    }
    if (!legacyLeft && site.afterLegacy) await site.afterLegacy();
    out[site.name] = r;
  }
  return out;
}
