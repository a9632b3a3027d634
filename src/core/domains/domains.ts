import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { DomainRecord, DomainStore } from '../../metadata/domain-store.ts';
import type { Identity } from '../access/access.ts';
import { ApiError } from '../access/tenancy.ts';
import type { Keyring } from '../keys/keyring.ts';
import { PURPOSE } from '../keys/sealed.ts';
import { NameMap, isValidHostName, parseTarget } from './names.ts';

export type { DomainRecord } from '../../metadata/domain-store.ts';

/** A certificate and its private key as uploaded (PEM). */
export interface CertificatePair {
  cert: string;
  key: string;
}

export interface DomainOptions {
  /** How long a lookup by host (found or not) is believed before the database is asked again. */
  cacheMs: number;
  /** Host names a domain may never take: the main service's own name. */
  reserved: string[];
}

const MAX_CACHED_HOSTS = 10_000;
const MAX_PEM = 64 * 1024;
const MAX_DOMAINS_LISTED = 10_000;

/**
 * Custom domains (docs/domains.md): site administrators map a host name to an owner or to one
 * repository (optionally a read-only mirror); owners list theirs, remove them and replace
 * their certificates. Lookups by host are cached per process for `cacheMs` (a change made on
 * another node is seen within that time; one made here, at once). Private keys are sealed
 * with the keyring and opened only to build a TLS context.
 */
export class Domains {
  private readonly cache = new Map<string, { at: number; map: NameMap | undefined; record: DomainRecord | undefined }>();

  constructor(
    private readonly domainStore: DomainStore | undefined,
    private readonly access: AccessStore,
    private readonly keyring: Keyring,
    private readonly opts: DomainOptions = { cacheMs: 5000, reserved: [] },
  ) {}

  private get store(): DomainStore {
    if (!this.domainStore) throw new ApiError(503, 'UNAVAILABLE', 'custom domains are not available on this server');
    return this.domainStore;
  }

  /** The name mapping of a (normalized) host, or undefined for the main host and unknown ones. */
  async resolve(host: string | undefined): Promise<NameMap | undefined> {
    return host === undefined || !this.domainStore ? undefined : (await this.lookup(host)).map;
  }

  /**
   * `resolve` without a promise when the answer is at hand (every request asks: most of the time
   * the host was looked up within `cacheMs`); a promise only when the store must be read.
   */
  resolveNow(host: string | undefined): NameMap | undefined | Promise<NameMap | undefined> {
    if (host === undefined || !this.domainStore) return undefined;
    const hit = this.cache.get(host);
    if (hit && Date.now() - hit.at < this.opts.cacheMs) return hit.map;
    return this.resolve(host);
  }

  private async lookup(host: string): Promise<{ map: NameMap | undefined; record: DomainRecord | undefined }> {
    const hit = this.cache.get(host);
    if (hit && Date.now() - hit.at < this.opts.cacheMs) return hit;
    const record = await this.store.findDomain(host);
    const entry = {
      at: Date.now(),
      record,
      map: record ? new NameMap(record.host, { owner: record.owner, ...(record.repository ? { repository: record.repository } : {}), mirror: record.mirror }) : undefined,
    };
    // Host headers are the client's: bound what they can make this process remember.
    if (this.cache.size >= MAX_CACHED_HOSTS) this.cache.clear();
    this.cache.set(host, entry);
    return entry;
  }

  /** Ids of the repositories a mapped host shows (its catalog): its one repository, or all of its owner's. */
  async repositoryIds(map: NameMap): Promise<number[]> {
    const { record } = await this.lookup(map.host);
    if (!record) return [];
    if (record.repositoryId !== null) return [record.repositoryId];
    return (await this.access.listRepositories(record.ownerId)).map((r) => r.id);
  }

  /** The certificate and (opened) key served for `host` by SNI, or undefined. */
  async certificate(host: string): Promise<CertificatePair | undefined> {
    if (!this.domainStore) return undefined;
    const { record } = await this.lookup(host);
    if (!record?.certPem || !record.keySealed) return undefined;
    return { cert: record.certPem, key: this.keyring.decryptText(record.keySealed, PURPOSE.domainKey) };
  }

  /** Maps `host` to `target` (`OWNER` or `OWNER/REPOSITORY`). Site administrators only. */
  async add(actor: Identity, input: { host: string; target: string; mirror?: boolean; certificate?: CertificatePair }): Promise<DomainRecord> {
    if (actor.kind !== 'user' || !actor.siteAdmin) throw new ApiError(403, 'FORBIDDEN', 'only a site administrator may add a domain');
    const host = input.host.toLowerCase();
    if (!isValidHostName(host)) {
      throw new ApiError(400, 'INVALID', `invalid host name "${input.host.slice(0, 100)}": lowercase DNS labels (letters, digits, inner "-"), or an IPv4 address; no port, scheme or path`);
    }
    if (this.opts.reserved.includes(host)) throw new ApiError(409, 'CONFLICT', `${host} is this registry's own service name`);
    const target = parseTarget(input.target, input.mirror === true);
    const owner = await this.access.findOwner(target.owner);
    if (!owner) throw new ApiError(404, 'NOT_FOUND', `owner ${target.owner} not found`);
    let repositoryId: number | null = null;
    if (target.repository !== undefined) {
      const repo = await this.access.findRepository(target.owner, target.repository);
      if (!repo) throw new ApiError(404, 'NOT_FOUND', `repository ${target.owner}/${target.repository} not found`);
      repositoryId = repo.id;
    }
    const cert = input.certificate ? this.checkCertificate(host, input.certificate) : undefined;
    const added = await this.store.saveDomain({
      host,
      ownerId: owner.id,
      repositoryId,
      mirror: target.mirror,
      certPem: cert?.pem ?? null,
      keySealed: cert ? this.keyring.encrypt(PURPOSE.domainKey, input.certificate!.key) : null,
      certExpiresAt: cert?.expiresAt ?? null,
    });
    if (!added) throw new ApiError(409, 'CONFLICT', `${host} is already mapped`);
    this.cache.delete(host);
    return (await this.store.findDomain(host))!;
  }

  /** Domains the actor may see: all for a site administrator, else those of owners they manage. */
  async list(actor: Identity, owner?: string): Promise<DomainRecord[]> {
    const user = requireUser(actor);
    if (owner !== undefined) {
      const o = await this.manageableOwner(actor, owner);
      return this.store.listDomains(o.id, MAX_DOMAINS_LISTED);
    }
    const all = await this.store.listDomains(undefined, MAX_DOMAINS_LISTED);
    if (user.siteAdmin) return all;
    const mine: DomainRecord[] = [];
    const manages = new Map<number, boolean>();
    for (const d of all) {
      if (!manages.has(d.ownerId)) manages.set(d.ownerId, await this.managesOwner(actor, d.owner));
      if (manages.get(d.ownerId)) mine.push(d);
    }
    return mine;
  }

  /** Removes a domain: a site administrator, or whoever manages its owner. */
  async remove(actor: Identity, host: string): Promise<void> {
    const d = await this.findManageable(actor, host);
    await this.store.removeDomain(d.host);
    this.cache.delete(d.host);
  }

  /** Sets (or with undefined, removes) the certificate served for a domain. */
  async setCertificate(actor: Identity, host: string, pair: CertificatePair | undefined): Promise<DomainRecord> {
    const d = await this.findManageable(actor, host);
    const cert = pair ? this.checkCertificate(d.host, pair) : undefined;
    await this.store.saveCertificate(d.host, cert ? { certPem: cert.pem, keySealed: this.keyring.encrypt(PURPOSE.domainKey, pair!.key), certExpiresAt: cert.expiresAt } : undefined);
    this.cache.delete(d.host);
    return (await this.store.findDomain(d.host))!;
  }

  private async findManageable(actor: Identity, host: string): Promise<DomainRecord> {
    requireUser(actor);
    const d = await this.store.findDomain(host.toLowerCase());
    if (!d || !(await this.managesOwner(actor, d.owner))) throw new ApiError(404, 'NOT_FOUND', `domain ${host.slice(0, 253)} not found`);
    return d;
  }

  private async manageableOwner(actor: Identity, owner: string) {
    const o = await this.access.findOwner(owner);
    if (!o || !(await this.managesOwner(actor, owner))) throw new ApiError(404, 'NOT_FOUND', `owner ${owner.slice(0, 40)} not found`);
    return o;
  }

  /** Site administrators, the user whose namespace it is, an organisation's owners and admins. */
  private async managesOwner(actor: Identity, owner: string): Promise<boolean> {
    if (actor.kind !== 'user') return false;
    if (actor.siteAdmin) return true;
    const o = await this.access.findOwner(owner);
    if (!o) return false;
    if (o.kind === 'user') return o.name === actor.username;
    const roles = await this.access.findRoles(actor.userId, o.id, null);
    return roles.some((r) => r === 'owner' || r === 'admin');
  }

  /**
   * Checks an uploaded pair: PEM of bounded size, the key matches the certificate, the
   * certificate names the host (SAN) and has not expired. Returns the chain as given.
   */
  private checkCertificate(host: string, pair: CertificatePair): { pem: string; expiresAt: number } {
    if (pair.cert.length > MAX_PEM || pair.key.length > MAX_PEM) throw new ApiError(400, 'INVALID', `certificate and key must each be at most ${MAX_PEM} bytes of PEM`);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pair.cert);
    } catch {
      throw new ApiError(400, 'INVALID', 'the certificate is not a PEM X.509 certificate');
    }
    let key;
    try {
      key = createPrivateKey(pair.key);
    } catch {
      throw new ApiError(400, 'INVALID', 'the key is not an unencrypted PEM private key');
    }
    if (!cert.checkPrivateKey(key)) throw new ApiError(400, 'INVALID', 'the key does not belong to the certificate');
    const names = /^\d+\.\d+\.\d+\.\d+$/.test(host) ? cert.checkIP(host) : cert.checkHost(host);
    if (!names) throw new ApiError(400, 'INVALID', `the certificate does not name ${host}`);
    const expiresAt = Date.parse(cert.validTo);
    if (!(expiresAt > Date.now())) throw new ApiError(400, 'INVALID', `the certificate expired on ${cert.validTo}`);
    return { pem: pair.cert, expiresAt };
  }
}

function requireUser(actor: Identity): Extract<Identity, { kind: 'user' }> {
  if (actor.kind !== 'user') throw new ApiError(401, 'UNAUTHORIZED', 'log in to manage domains');
  return actor;
}
