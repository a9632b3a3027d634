/**
 * Rows of repository signing (docs/signing.md): signing keys (the repository's own, private key
 * sealed by core/keys, and public keys an owner trusts), per-repository settings with the change
 * counter the signature pull policy versions its verdicts by, and which key signed what.
 */

export type SigningKeyKind = 'repository' | 'trusted';

export interface SigningKeyRecord {
  /** A short fingerprint of the public key (core/supply-chain/signing/format.ts `keyFingerprint`). */
  keyId: string;
  kind: SigningKeyKind;
  name: string;
  /** SPKI PEM. */
  publicKey: string;
  /** Sealed PKCS#8 PEM (repository keys only); never leaves core. */
  privateKey: string | null;
  /** The repository key that signs now. */
  current: boolean;
  createdAt: number;
  /** When a rotation replaced it (it still verifies). */
  retiredAt: number | null;
}

export interface SigningSettingsRecord {
  signOnPush: boolean;
  requireSignature: boolean;
  /** Bumped on every change of keys, settings or signatures in the repository. */
  version: number;
}

export interface SigningRecord {
  digest: string;
  keyId: string;
  signatureDigest: string;
  referrerDigest: string;
  signedAt: number;
}

export interface SigningStore {
  findSettings(repositoryId: number): Promise<SigningSettingsRecord>;
  /** The settings of OWNER/REPOSITORY in one query (the policy's version lookup); undefined when it does not exist. */
  findSettingsByName(owner: string, repository: string): Promise<(SigningSettingsRecord & { repositoryId: number }) | undefined>;
  /** Changes settings and bumps the version. */
  saveSettings(repositoryId: number, changes: Partial<Omit<SigningSettingsRecord, 'version'>>): Promise<SigningSettingsRecord>;
  /** Bumps the version (a signature was pushed or a manifest deleted); no row is created. */
  bumpVersion(repositoryId: number): Promise<void>;
  listKeys(repositoryId: number): Promise<SigningKeyRecord[]>;
  /**
   * Stores a repository key as the current one. Without `rotate`, when another current key
   * exists (e.g. created meanwhile by another node) that one is returned and nothing is stored;
   * with `rotate`, the current key is retired in the same transaction. Bumps the version.
   */
  saveRepositoryKey(repositoryId: number, key: { keyId: string; publicKey: string; privateKey: string }, rotate: boolean): Promise<SigningKeyRecord>;
  /** Adds a trusted public key; false when the repository already has a key with that id. Bumps the version. */
  addTrustedKey(repositoryId: number, key: { keyId: string; name: string; publicKey: string }): Promise<boolean>;
  /** Removes a trusted (never a repository) key; false when there was none. Bumps the version. */
  removeTrustedKey(repositoryId: number, keyId: string): Promise<boolean>;
  findRecord(imageId: number, digest: string, keyId: string): Promise<SigningRecord | undefined>;
  saveRecord(imageId: number, record: SigningRecord): Promise<void>;
  /** Berth's signing records of these digests in the image (at most 500 digests). */
  listRecords(imageId: number, digests: string[]): Promise<SigningRecord[]>;
  /** Digests of the image's manifests (indexes) that list `digest` as a child, at most `limit`. */
  listParents(imageId: number, digest: string, limit: number): Promise<string[]>;
  /** Sealed private keys, for the keyring's re-seal sweep. */
  listSealedKeys(): Promise<{ id: number; value: string }[]>;
  replaceSealedKey(id: number, from: string, to: string): Promise<boolean>;
}
