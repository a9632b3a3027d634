/** Tells the input's format and reads it: an OCI layout (index.json) or a legacy docker save (manifest.json). */
import type { ArchiveContent } from './content.ts';
import { readDockerArchive } from './docker.ts';
import { ImportError } from './errors.ts';
import { readOciLayout } from './oci.ts';
import type { ImportSource } from './source.ts';

/**
 * - index.json present: an OCI layout — a folder (`oci-layout`), an oci-archive tar, or the
 *   tar Docker 25+ writes with `docker save` (which also has a manifest.json, ignored then:
 *   the OCI form keeps every digest);
 * - else manifest.json: the legacy docker save form;
 * - else: neither, an error naming both.
 */
export async function readArchive(src: ImportSource): Promise<ArchiveContent> {
  const hasIndex = (await src.size('index.json')) !== undefined;
  const hasManifest = (await src.size('manifest.json')) !== undefined;
  if (hasIndex) {
    const format = src.kind === 'dir' ? 'oci-layout' : hasManifest ? 'docker-oci-archive' : 'oci-archive';
    return readOciLayout(src, format);
  }
  if (hasManifest) return readDockerArchive(src);
  throw new ImportError(
    'MISSING_FILE',
    `${src.label} has neither index.json (an OCI layout or oci-archive, or Docker 25+ docker save) nor manifest.json (docker save): it is not a docker save or OCI archive`,
  );
}
