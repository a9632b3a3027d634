import type { SbomStore } from '../../../metadata/sbom-store.ts';
import type { ImageInventory, InventoryReader } from '../inventory.ts';

/**
 * Stored image inventories (`registry.inventories`): the metadata store keeps them as JSON
 * rows, this gives them their shape. Read by the vulnerability matcher, which never reads a blob.
 */
export class StoredInventories implements InventoryReader {
  constructor(private readonly store: Pick<SbomStore, 'findImageInventory' | 'saveImageInventory' | 'listInventoried'>) {}

  async inventoryOf(manifestDigest: string): Promise<ImageInventory | undefined> {
    const row = await this.store.findImageInventory(manifestDigest);
    return row ? (JSON.parse(row.data) as ImageInventory) : undefined;
  }

  listInventoried(after: string | undefined, limit: number): Promise<string[]> {
    return this.store.listInventoried(after, limit);
  }

  /** Stores (or replaces) an image's inventory. */
  save(inventory: ImageInventory): Promise<void> {
    return this.store.saveImageInventory({
      digest: inventory.digest,
      data: JSON.stringify(inventory),
      packageCount: inventory.packages.length,
      generatedAt: inventory.generatedAt,
    });
  }
}
