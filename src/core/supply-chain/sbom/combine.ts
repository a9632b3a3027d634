/**
 * Combines the layer inventories of an image, bottom layer first, into the image's inventory:
 * each layer's whiteouts remove what the layers below put there, then its own files replace
 * any of the same path (OCI image-spec layer.md). Then the image's OS names every deb and apk
 * package's URL.
 */
import { PackageURL } from 'packageurl-js';
import type { ImageInventory, InventoryOs, InventoryPackage } from '../inventory.ts';
import type { FoundPackage } from './parsers.ts';
import type { LayerFile, LayerInventory } from './layer-scan.ts';

/** The files of interest visible in the image's final filesystem, by path. */
export function visibleFiles(layers: LayerInventory[]): Map<string, LayerFile> {
  const files = new Map<string, LayerFile>();
  for (const layer of layers) {
    const gone = [...layer.deleted.map((d) => ({ path: d, self: true })), ...layer.opaque.map((d) => ({ path: d, self: false }))];
    if (gone.length) {
      for (const p of [...files.keys()]) {
        for (const g of gone) {
          const under = g.path === '' ? true : p.startsWith(`${g.path}/`);
          if (under || (g.self && p === g.path)) {
            files.delete(p);
            break;
          }
        }
      }
    }
    for (const f of layer.files) files.set(f.path, f);
  }
  return files;
}

/** The OS of the final filesystem: `etc/os-release`, else (a link, or absent) `usr/lib/os-release`. */
function osOf(files: Map<string, LayerFile>): InventoryOs | undefined {
  return files.get('etc/os-release')?.os ?? files.get('usr/lib/os-release')?.os;
}

/** The package URL of a package found in an image with `os`. */
export function purlOf(p: FoundPackage, os: InventoryOs | undefined): string {
  const q: Record<string, string> = {};
  switch (p.type) {
    case 'deb': {
      const vendor = os && os.id !== 'alpine' ? os.id : 'debian';
      if (p.arch) q.arch = p.arch;
      if (os?.versionId) q.distro = `${vendor}-${os.versionId}`;
      return new PackageURL('deb', vendor, p.name, p.version, q, null).toString();
    }
    case 'apk': {
      if (p.arch) q.arch = p.arch;
      if (os?.versionId) q.distro = os.versionId;
      return new PackageURL('apk', os && os.id !== 'debian' ? os.id : 'alpine', p.name.toLowerCase(), p.version, q, null).toString();
    }
    case 'npm': {
      const slash = p.name.startsWith('@') ? p.name.indexOf('/') : -1;
      return new PackageURL('npm', slash > 0 ? p.name.slice(0, slash) : null, slash > 0 ? p.name.slice(slash + 1) : p.name, p.version, null, null).toString();
    }
    case 'pypi':
      // PEP 503 normalisation, as the purl spec asks for PyPI names.
      return new PackageURL('pypi', null, p.name.toLowerCase().replace(/[-_.]+/g, '-'), p.version, null, null).toString();
    case 'golang': {
      // The module path's last element is the name, the rest the namespace (purl-spec).
      const slash = p.name.lastIndexOf('/');
      return new PackageURL('golang', slash > 0 ? p.name.slice(0, slash) : null, slash > 0 ? p.name.slice(slash + 1) : p.name, p.version, null, null).toString();
    }
  }
}

/** The image's inventory: OS and packages in a stable order (by type, name, version, location). */
export function combineLayers(digest: string, layers: LayerInventory[], generatedAt: number): ImageInventory {
  const files = visibleFiles(layers);
  const os = osOf(files);
  const seen = new Set<string>();
  const packages: InventoryPackage[] = [];
  for (const [path, f] of files) {
    for (const p of f.packages ?? []) {
      const purl = purlOf(p, os);
      const key = `${purl}\0${path}`;
      if (seen.has(key)) continue;
      seen.add(key);
      packages.push({ type: p.type, name: p.name, version: p.version, ...(p.source ? { source: p.source } : {}), purl, location: path });
    }
  }
  packages.sort((a, b) => cmp(a.type, b.type) || cmp(a.name, b.name) || cmp(a.version, b.version) || cmp(a.location ?? '', b.location ?? ''));
  return { digest, ...(os ? { os } : {}), packages, generatedAt };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
