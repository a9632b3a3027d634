/**
 * The SBOM generator's constants, apart from the scanner and the CycloneDX writer: those load
 * their libraries (tar, zstd, CycloneDX, package URLs) on the first job, not at start-up, where
 * they would cost every idle server some 30 MiB (test/e2e/large-layer.test.ts budgets memory).
 */

/** The media type of a CycloneDX JSON SBOM, and the SBOM referrer's artifactType. */
export const CYCLONEDX_JSON = 'application/vnd.cyclonedx+json';

/** Bumped when what a layer scan records changes: cached layer inventories of another version are read again. */
export const LAYER_FORMAT = 1;

export interface LayerScanLimits {
  /** Decompressed bytes read at most. */
  maxBytes: number;
  /** Tar members looked at, at most. */
  maxEntries: number;
  /** Files of interest recorded, at most (npm trees hold thousands). */
  maxFiles: number;
  /** Packages recorded, at most. */
  maxPackages: number;
  /** A package database (dpkg status, apk installed) read at most this large. */
  maxDatabaseBytes: number;
  /** Any other file of interest (package.json, os-release, the head of METADATA). */
  maxFileBytes: number;
  /** Executables larger than this are not searched for Go build information. */
  maxGoBinaryBytes: number;
}

export const DEFAULT_LAYER_LIMITS: LayerScanLimits = {
  maxBytes: 16 * 1024 ** 3,
  maxEntries: 2_000_000,
  maxFiles: 50_000,
  maxPackages: 100_000,
  maxDatabaseBytes: 32 * 1024 ** 2,
  maxFileBytes: 1024 ** 2,
  maxGoBinaryBytes: 512 * 1024 ** 2,
};
