/**
 * Rows of SBOM generation (docs/supply-chain.md): per layer digest, what the layer adds to and
 * deletes from an image's inventory; per image manifest digest, the combined inventory; per
 * repository, whether SBOMs are generated. Inventories are JSON text whose shape belongs to
 * core (core/supply-chain/inventory.ts, core/supply-chain/sbom/): rows, not meaning.
 * Implemented once in Kysely for SQLite and PostgreSQL (sql/sbom-store.ts); contract checked by
 * test/supply-chain/sbom-store.test.ts against both dialects.
 */

export interface StoredImageInventory {
  /** The image manifest's digest. */
  digest: string;
  /** The inventory as JSON (core's `ImageInventory`). */
  data: string;
  packageCount: number;
  /** ms since the epoch. */
  generatedAt: number;
}

export interface SbomStore {
  /** A layer's inventory as JSON, once made: layers are content-addressed, so it never changes. */
  findLayerInventory(digest: string): Promise<string | undefined>;
  /** Stores (or replaces, when core's format changed) a layer's inventory. */
  saveLayerInventory(digest: string, data: string): Promise<void>;
  findImageInventory(manifestDigest: string): Promise<StoredImageInventory | undefined>;
  /** Stores (or replaces) an image's inventory. */
  saveImageInventory(inventory: StoredImageInventory): Promise<void>;
  /** Image manifest digests with a stored inventory, in lexical order after `after`. */
  listInventoried(after: string | undefined, limit: number): Promise<string[]>;
  /** Whether the repository generates SBOMs (on unless switched off). */
  findSbomEnabled(repositoryId: number): Promise<boolean>;
  saveSbomEnabled(repositoryId: number, enabled: boolean): Promise<void>;
}
