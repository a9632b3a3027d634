/**
 * Rows of custom domains (docs/domains.md): a host name mapped to an owner or to one
 * repository, optionally a read-only mirror, with an optional certificate served by SNI.
 * Contract checked by test/domains/store.test.ts against every dialect.
 */

export interface DomainRecord {
  /** Lowercase host name, no port (validated by core/domains/names.ts). */
  host: string;
  ownerId: number;
  owner: string;
  /** Set when the host stands for one repository. */
  repositoryId: number | null;
  repository: string | null;
  mirror: boolean;
  /** PEM certificate chain, or null (the server's own certificate is served). */
  certPem: string | null;
  /** The private key, sealed with the keyring (core/keys); never plain. */
  keySealed: string | null;
  /** The certificate's notAfter (ms), for listings. */
  certExpiresAt: number | null;
  createdAt: number;
}

export type NewDomain = Pick<DomainRecord, 'host' | 'ownerId' | 'repositoryId' | 'mirror' | 'certPem' | 'keySealed' | 'certExpiresAt'>;

export interface DomainStore {
  /** Inserts a domain; false when the host is already mapped. */
  saveDomain(d: NewDomain): Promise<boolean>;
  findDomain(host: string): Promise<DomainRecord | undefined>;
  /** Every domain, or those of one owner, by host name. At most `limit`. */
  listDomains(ownerId: number | undefined, limit: number): Promise<DomainRecord[]>;
  /** Removes a domain; false when there was none. */
  removeDomain(host: string): Promise<boolean>;
  /** Every sealed private key, by host (for key rotation, core/keys/sealed.ts). */
  listDomainKeys(): Promise<{ id: string; value: string }[]>;
  /** Replaces a sealed key if it is still `from` (compare-and-set). */
  replaceDomainKey(host: string, from: string, to: string): Promise<boolean>;
  /** Replaces (or with undefined, clears) a domain's certificate; false when there is no such domain. */
  saveCertificate(host: string, cert: Pick<DomainRecord, 'certPem' | 'keySealed' | 'certExpiresAt'> | undefined): Promise<boolean>;
}
