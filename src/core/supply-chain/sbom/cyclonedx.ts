/**
 * An image inventory as a CycloneDX 1.6 JSON SBOM (@cyclonedx/cyclonedx-library). The output is
 * a function of the inventory's content only — the serial number derives from the image digest,
 * every bom-ref is given, lists are sorted, no timestamp — so generating it again yields the
 * same bytes, hence the same referrer digest (pushing it again stacks nothing).
 */
import { createHash } from 'node:crypto';
import * as CDX from '@cyclonedx/cyclonedx-library';
import type { ImageInventory } from '../inventory.ts';

export const CYCLONEDX_JSON = 'application/vnd.cyclonedx+json';

/** A stable RFC 4122 (version 5 shaped) UUID from the image digest. */
function serialFor(digest: string): string {
  const h = createHash('sha256').update(`berth-sbom:${digest}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The SBOM of `inventory`, for the image `name` (OWNER/REPOSITORY/IMAGE). */
export function cycloneDx(inventory: ImageInventory, name: string): string {
  const bom = new CDX.Models.Bom({ serialNumber: serialFor(inventory.digest) });
  bom.metadata.component = new CDX.Models.Component(CDX.Enums.ComponentType.Container, name, { bomRef: inventory.digest, version: inventory.digest });
  bom.metadata.tools.components.add(new CDX.Models.Component(CDX.Enums.ComponentType.Application, 'berth', { bomRef: 'berth' }));
  if (inventory.os) {
    const os = new CDX.Models.Component(CDX.Enums.ComponentType.OperatingSystem, inventory.os.id, {
      bomRef: `os:${inventory.os.id}`,
      ...(inventory.os.versionId ? { version: inventory.os.versionId } : {}),
      ...(inventory.os.prettyName ? { description: inventory.os.prettyName } : {}),
    });
    bom.components.add(os);
  }
  const refs = new Set<string>();
  for (const p of inventory.packages) {
    // The same package may sit in several places (npm trees): each place is its own component.
    let ref = p.purl;
    for (let n = 2; refs.has(ref); n++) ref = `${p.purl}#${n}`;
    refs.add(ref);
    const c = new CDX.Models.Component(CDX.Enums.ComponentType.Library, p.name, { bomRef: ref, version: p.version, purl: p.purl as never });
    if (p.source) {
      c.properties.add(new CDX.Models.Property('berth:package:source:name', p.source.name));
      c.properties.add(new CDX.Models.Property('berth:package:source:version', p.source.version));
    }
    if (p.location) c.properties.add(new CDX.Models.Property('berth:package:location', p.location));
    bom.components.add(c);
  }
  const serializer = new CDX.Serialize.JsonSerializer(new CDX.Serialize.JSON.Normalize.Factory(CDX.Spec.Spec1dot6));
  return serializer.serialize(bom, { sortLists: true });
}
