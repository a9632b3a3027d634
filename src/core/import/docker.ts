/**
 * Reads the legacy `docker save` format: `manifest.json` lists, per image, its config file,
 * `RepoTags` and layer tars in order. That format has no registry manifest, so one is built:
 * a Docker schema2 manifest whose config is the archive's config, byte for byte (its digest is
 * the image ID), and whose layers are the layer tars as they are — uncompressed, media type
 * `application/vnd.docker.image.rootfs.diff.tar` — so that every layer digest equals its
 * diffID in the config's `rootfs.diff_ids`. A layer that is gzip'd in the archive is pushed
 * gzip'd (its digest is then the gzip's; its diffID is still checked, by decompressing once).
 */
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { digestOf, isValidDigest, parseDigest } from '../content/digest.ts';
import { RegistryError } from '../errors.ts';
import { parseDescriptor } from '../content/manifest.ts';
import { DOCKER_MANIFEST, NON_DISTRIBUTABLE_TYPES } from '../content/media-types.ts';
import type { ArchiveContent, PlannedBlob } from './content.ts';
import { ImportError } from './errors.ts';
import { parseArchiveName } from './names.ts';
import { type ImportSource, boundUnpacked } from './source.ts';

export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

const MAX_MANIFEST_JSON = 16 * 1024 * 1024;
const MAX_CONFIG = 32 * 1024 * 1024;

interface LegacyEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
  LayerSources?: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** sha256 of the gzip'd bytes and of their decompression, in one pass. */
async function hashGzip(src: ImportSource, member: string): Promise<{ digest: string; diffId: string }> {
  const outer = createHash('sha256');
  const inner = createHash('sha256');
  const stream = await src.open(member);
  const tee = async function* (s: AsyncIterable<Buffer>) {
    for await (const chunk of s) {
      outer.update(chunk);
      yield chunk;
    }
  };
  const bounded = boundUnpacked(src.unpack, () => `${src.label}: layer "${member}" decompresses to more than this archive may (a gzip bomb?)`);
  try {
    await pipeline(
      stream,
      tee,
      createGunzip(),
      bounded,
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          inner.update(chunk);
          cb();
        },
      }),
    );
  } catch (e) {
    if (e instanceof ImportError) throw e;
    throw new ImportError('BAD_ARCHIVE', `${src.label}: layer "${member}" looks gzip'd but does not decompress: ${(e as Error).message}`);
  }
  return { digest: `sha256:${outer.digest('hex')}`, diffId: `sha256:${inner.digest('hex')}` };
}

export async function readDockerArchive(src: ImportSource): Promise<ArchiveContent> {
  const content: ArchiveContent = { format: 'docker-archive', blobs: new Map(), manifests: new Map(), images: [], warnings: [] };
  let doc: unknown;
  try {
    doc = JSON.parse((await src.read('manifest.json', MAX_MANIFEST_JSON)).toString('utf8'));
  } catch (e) {
    if (e instanceof ImportError) throw e;
    throw new ImportError('BAD_ARCHIVE', `${src.label}: manifest.json is not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(doc)) throw new ImportError('BAD_ARCHIVE', `${src.label}: manifest.json must be a JSON array of images`);
  if (doc.length === 0) throw new ImportError('MISSING_FILE', `${src.label}: manifest.json lists no image`);

  for (const [i, raw] of doc.entries()) {
    const where = `manifest.json[${i}]`;
    if (!isObject(raw)) throw new ImportError('BAD_ARCHIVE', `${src.label}: ${where} is not an object`);
    const e = raw as LegacyEntry;
    if (typeof e.Config !== 'string') throw new ImportError('BAD_ARCHIVE', `${src.label}: ${where} has no "Config" file name`);
    if (!Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw new ImportError('BAD_ARCHIVE', `${src.label}: ${where}.Layers must be an array of file names`);
    }
    if (e.RepoTags !== undefined && e.RepoTags !== null && (!Array.isArray(e.RepoTags) || !e.RepoTags.every((t) => typeof t === 'string'))) {
      throw new ImportError('BAD_ARCHIVE', `${src.label}: ${where}.RepoTags must be an array of strings`);
    }
    const repoTags = (e.RepoTags as string[] | null | undefined) ?? [];
    const layers = e.Layers as string[];
    const title = repoTags[0] ?? where;

    if ((await src.size(e.Config)) === undefined) {
      throw new ImportError('MISSING_FILE', `${src.label}: ${where} names the config "${e.Config}", which is not in the archive`);
    }
    const configBytes = await src.read(e.Config, MAX_CONFIG);
    const configDigest = digestOf(configBytes);
    // The config's file name is the image ID (its sha256) in every docker save format.
    const named = /(?:^|\/)(?:sha256\/)?([a-f0-9]{64})(?:\.json)?$/.exec(e.Config);
    if (named && `sha256:${named[1]}` !== configDigest) {
      throw new ImportError('DIGEST_MISMATCH', `${src.label}: the config "${e.Config}" of ${title} hashes to ${configDigest}, not the image ID its name claims`);
    }
    let config: unknown;
    try {
      config = JSON.parse(configBytes.toString('utf8'));
    } catch (err) {
      throw new ImportError('BAD_ARCHIVE', `${src.label}: the config "${e.Config}" of ${title} is not valid JSON: ${(err as Error).message}`);
    }
    const rootfs = isObject(config) ? config.rootfs : undefined;
    const diffIds = isObject(rootfs) ? rootfs.diff_ids : undefined;
    if (!Array.isArray(diffIds) || !diffIds.every((d) => typeof d === 'string' && isValidDigest(d))) {
      throw new ImportError('BAD_ARCHIVE', `${src.label}: the config "${e.Config}" of ${title} has no valid rootfs.diff_ids`);
    }
    if (diffIds.length !== layers.length) {
      throw new ImportError('BAD_ARCHIVE', `${src.label}: ${where} lists ${layers.length} layers but its config has ${diffIds.length} rootfs.diff_ids`);
    }
    content.blobs.set(configDigest, {
      digest: configDigest,
      size: configBytes.length,
      mediaType: DOCKER_CONFIG,
      data: configBytes,
      member: e.Config,
      label: `config of ${title}`,
    });

    const sources = isObject(e.LayerSources) ? e.LayerSources : {};
    const layerDescs: Record<string, unknown>[] = [];
    const blobs: string[] = [configDigest];
    for (const [n, member] of layers.entries()) {
      const diffId = diffIds[n] as string;
      const label = `layer ${n} of ${title}`;
      const foreign = sources[diffId];
      if (foreign !== undefined) {
        let d;
        try {
          d = parseDescriptor(foreign, `${where}.LayerSources["${diffId}"]`);
        } catch (err) {
          if (err instanceof RegistryError) throw new ImportError('BAD_ARCHIVE', `${src.label}: ${err.message}`);
          throw err;
        }
        if (NON_DISTRIBUTABLE_TYPES.has(d.mediaType) && d.urls?.length) {
          layerDescs.push({ mediaType: d.mediaType, size: d.size, digest: d.digest, urls: d.urls });
          continue;
        }
      }
      const size = await src.size(member);
      if (size === undefined) {
        throw new ImportError('MISSING_FILE', `${src.label}: ${where} names the layer "${member}", which is not in the archive`);
      }
      const head = await src.head(member, 4);
      let blob: PlannedBlob;
      if (head[0] === 0x1f && head[1] === 0x8b) {
        const h = await hashGzip(src, member);
        if (h.diffId !== diffId) {
          throw new ImportError(
            'DIGEST_MISMATCH',
            `${src.label}: ${label} ("${member}") decompresses to ${h.diffId}, not ${diffId} (rootfs.diff_ids[${n}] of the image config)`,
          );
        }
        blob = { digest: h.digest, size, mediaType: DOCKER_LAYER_GZIP, member, label };
        content.warnings.push(`${label} is gzip'd in the archive: pushed as it is, so its digest is the gzip's, not its diffID`);
      } else if (head.length === 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
        throw new ImportError('UNSUPPORTED', `${src.label}: ${label} ("${member}") is zstd-compressed, which Docker schema2 manifests cannot describe`);
      } else {
        if (parseDigest(diffId).algorithm !== 'sha256') {
          throw new ImportError('UNSUPPORTED', `${src.label}: rootfs.diff_ids[${n}] of ${title} is ${diffId}: only sha256 diffIDs are supported`);
        }
        blob = { digest: diffId, size, mediaType: DOCKER_LAYER, member, label, claim: `rootfs.diff_ids[${n}] of the image config` };
      }
      const known = content.blobs.get(blob.digest);
      if (known && known.size !== blob.size) {
        throw new ImportError('SIZE_MISMATCH', `${src.label}: ${label} has ${blob.size} bytes but another layer with the same digest ${blob.digest} has ${known.size}`);
      }
      if (!known) content.blobs.set(blob.digest, blob);
      layerDescs.push({ mediaType: blob.mediaType, size: blob.size, digest: blob.digest });
      if (!blobs.includes(blob.digest)) blobs.push(blob.digest);
    }

    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: { mediaType: DOCKER_CONFIG, size: configBytes.length, digest: configDigest },
        layers: layerDescs,
      }),
    );
    const digest = digestOf(manifest);
    content.manifests.set(digest, { digest, mediaType: DOCKER_MANIFEST, bytes: manifest, blobs, children: [] });
    content.images.push({
      digest,
      mediaType: DOCKER_MANIFEST,
      names: repoTags.map((t) => parseArchiveName(t, { bareIsTag: false })),
      where,
    });
  }
  return content;
}
