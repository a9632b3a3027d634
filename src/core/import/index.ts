/** Importing image archives and layouts into a registry, and exporting them back. */
export { ImportError, type ImportErrorCode } from './errors.ts';
export { readArchive } from './archive.ts';
export { openSource, type ImportSource } from './source.ts';
export { TarIndex } from './tar.ts';
export { importArchive, pushContent, verified, type ImportEvent, type ImportOptions, type ImportResult, type TargetRegistry } from './importer.ts';
export { parseDestination, resolveTargets, type Destination, type PushTarget } from './names.ts';
export { RegistryClient, parseChallenge, type RegistryClientOptions, type SourceRegistry } from './client.ts';
export { LocalTarget } from './local.ts';
export { COMPRESSIONS, compressLayers, type Compression } from './compress.ts';
export { ImportJobs, type ImportJobView, type ImportJobsOptions } from './jobs.ts';
export { exportImage, EXPORT_FORMATS, type ExportEvent, type ExportFormat } from './export.ts';
