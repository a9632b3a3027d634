/**
 * The in-process target of the server's import API: the same core services the /v2 routes
 * call (Uploads.putMonolithic, Blobs.stat/mount, Manifests.put), so an import is checked and
 * stored exactly like a push over the wire — digest verified, durable before acknowledged,
 * manifests validated against the blobs linked to the image.
 */
import { RegistryError } from '../errors.ts';
import type { Registry } from '../registry.ts';
import type { TargetRegistry } from './importer.ts';

export class LocalTarget implements TargetRegistry {
  readonly location = 'this server';

  constructor(private readonly registry: Registry) {}

  async hasBlob(name: string, digest: string): Promise<boolean> {
    try {
      const b = await this.registry.blobs.stat(name, digest);
      return b.manifest === undefined;
    } catch (e) {
      if (e instanceof RegistryError && (e.code === 'BLOB_UNKNOWN' || e.code === 'NAME_UNKNOWN')) return false;
      throw e;
    }
  }

  mountBlob(name: string, digest: string, from: string): Promise<boolean> {
    // Both images are in the repository the caller was authorized to push to.
    return this.registry.blobs.mount(name, digest, from);
  }

  async putBlob(name: string, digest: string, size: number, open: () => Promise<AsyncIterable<Buffer>>): Promise<void> {
    await this.registry.uploads.putMonolithic(name, digest, await open(), size);
  }

  async putManifest(name: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    return (await this.registry.manifests.put(name, reference, bytes, mediaType)).digest;
  }
}
