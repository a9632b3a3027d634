/**
 * What an image holds, as the SBOM generator finds it in its layers and the vulnerability
 * matcher reads it (issue 16). The SBOM generator (core/supply-chain/sbom/) produces an
 * `ImageInventory` per image manifest and stores it; the matcher (core/supply-chain/vulns/)
 * never reads a blob, only these.
 */

/** Package ecosystems the inventory knows, named as in package URLs. */
export type PackageType = 'deb' | 'apk' | 'npm' | 'pypi' | 'golang';

export interface InventoryPackage {
  type: PackageType;
  /** The binary package's name (deb, apk), the package name (npm, PyPI), the module path (Go). */
  name: string;
  version: string;
  /** Debian: the source package and its version; Alpine: the origin. OSV records name these. */
  source?: { name: string; version: string };
  /** The package URL (`pkg:deb/debian/openssl@3.0.11-1?arch=amd64&distro=debian-12`). */
  purl: string;
  /** Where it was found, for the report (`var/lib/dpkg/status`, `app/node_modules/x/package.json`). */
  location?: string;
}

/** The operating system from `etc/os-release`. */
export interface InventoryOs {
  /** `ID`: debian, ubuntu, alpine … */
  id: string;
  /** `VERSION_ID`: 12, 22.04, 3.19.1 … */
  versionId?: string;
  prettyName?: string;
}

export interface ImageInventory {
  /** The image manifest's digest (each platform of an index has its own). */
  digest: string;
  os?: InventoryOs;
  packages: InventoryPackage[];
  /** When the inventory was made (ms since the epoch). */
  generatedAt: number;
}

/** Stored inventories, shared by every node (the metadata store). */
export interface InventoryReader {
  /** The inventory of an image manifest, once its SBOM job has run. */
  inventoryOf(manifestDigest: string): Promise<ImageInventory | undefined>;
  /** Every stored inventory's manifest digest, in pages (re-matching after a database refresh). */
  listInventoried(after: string | undefined, limit: number): Promise<string[]>;
}
