import { RegistryError } from '../errors.ts';
import { CONTROL_CHARACTERS_MESSAGE, isCleanText } from './text.ts';
import { isValidDigest } from './digest.ts';
import {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_SCHEMA1,
  DOCKER_SCHEMA1_SIGNED,
  IMAGE_MANIFEST_TYPES,
  INDEX_TYPES,
  MANIFEST_TYPES,
  NON_DISTRIBUTABLE_TYPES,
  OCI_INDEX,
  OCI_MANIFEST,
  baseMediaType,
} from './media-types.ts';

/** Largest manifest Berth accepts, as distribution and most registries do. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
  platform?: Record<string, unknown>;
}

export type ManifestKind = 'image' | 'index';

/** What Berth needs to know of a manifest to store it, validate it and answer referrers. */
export interface ParsedManifest {
  kind: ManifestKind;
  mediaType: string;
  /** `artifactType`, or for an image manifest without one, its config media type. */
  artifactType: string | null;
  config: Descriptor | null;
  /** Every layer descriptor, non-distributable ones included (image manifests only). */
  layers: Descriptor[];
  /** Blobs that must exist in the image: config and distributable layers. */
  blobs: Descriptor[];
  /** Child manifests (index entries) that must exist in the image. */
  manifests: Descriptor[];
  subject: Descriptor | null;
  annotations: Record<string, string> | null;
}

const GENERIC_TYPES = new Set(['', 'application/json', 'application/octet-stream']);

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, { detail });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkAnnotations(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw invalid(`${where}.annotations must be an object of strings`);
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') throw invalid(`${where}.annotations["${k}"] must be a string`);
  }
  return v as Record<string, string>;
}

/** Validates one OCI descriptor (image-spec descriptor.md). */
export function parseDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, artifactType, urls, platform } = v;
  if (typeof mediaType !== 'string' || mediaType.length === 0) throw invalid(`${where}.mediaType must be a non-empty string`);
  // Media and artifact types are stored as columns (and in events): plain text only.
  if (!isCleanText(mediaType)) throw invalid(`${where}.mediaType ${CONTROL_CHARACTERS_MESSAGE}`);
  if (typeof digest !== 'string' || !isValidDigest(digest)) throw invalid(`${where}.digest is not a valid digest`, { digest });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`);
  }
  const d: Descriptor = { mediaType, digest, size };
  if (artifactType !== undefined) {
    if (typeof artifactType !== 'string') throw invalid(`${where}.artifactType must be a string`);
    if (!isCleanText(artifactType)) throw invalid(`${where}.artifactType ${CONTROL_CHARACTERS_MESSAGE}`);
    d.artifactType = artifactType;
  }
  const annotations = checkAnnotations(v.annotations, where);
  if (annotations) d.annotations = annotations;
  if (urls !== undefined) {
    if (!Array.isArray(urls) || !urls.every((u) => typeof u === 'string')) throw invalid(`${where}.urls must be an array of strings`);
    d.urls = urls as string[];
  }
  if (platform !== undefined) {
    if (!isObject(platform) || typeof platform.architecture !== 'string' || typeof platform.os !== 'string') {
      throw invalid(`${where}.platform must have string architecture and os`);
    }
    d.platform = platform;
  }
  return d;
}

function descriptorList(v: unknown, where: string): Descriptor[] {
  if (!Array.isArray(v)) throw invalid(`${where} must be an array of descriptors`);
  return v.map((d, i) => parseDescriptor(d, `${where}[${i}]`));
}

/**
 * Parses and validates manifest bytes as received. `contentType` is the request's Content-Type;
 * where it is generic or missing, the kind comes from the `mediaType` field or the structure.
 * Throws MANIFEST_INVALID naming the first problem found.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw invalid(`manifest is ${bytes.length} bytes; the limit is ${MAX_MANIFEST_BYTES}`);
  }
  const declared = baseMediaType(contentType);
  if (declared === DOCKER_SCHEMA1 || declared === DOCKER_SCHEMA1_SIGNED) {
    throw schema1();
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw invalid(`manifest is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw invalid('manifest must be a JSON object');
  if (doc.schemaVersion === 1) throw schema1();
  if (doc.schemaVersion !== 2) throw invalid('manifest schemaVersion must be 2');

  const field = doc.mediaType;
  if (field !== undefined && typeof field !== 'string') throw invalid('mediaType must be a string');
  if (field === DOCKER_SCHEMA1 || field === DOCKER_SCHEMA1_SIGNED) throw schema1();

  let mediaType: string;
  if (!GENERIC_TYPES.has(declared)) {
    if (!MANIFEST_TYPES.has(declared)) {
      throw invalid(`unsupported manifest media type "${declared}"`, {
        supported: [...MANIFEST_TYPES],
      });
    }
    if (field !== undefined && field !== declared) {
      throw invalid(`manifest mediaType "${field}" does not match Content-Type "${declared}"`);
    }
    mediaType = declared;
  } else if (field !== undefined) {
    if (!MANIFEST_TYPES.has(field)) throw invalid(`unsupported manifest media type "${field}"`);
    mediaType = field;
  } else if ('manifests' in doc) {
    mediaType = OCI_INDEX;
  } else {
    mediaType = OCI_MANIFEST;
  }
  // Docker's types require the mediaType field in the document itself.
  if ((mediaType === DOCKER_MANIFEST || mediaType === DOCKER_MANIFEST_LIST) && field !== mediaType) {
    throw invalid(`a ${mediaType} manifest must carry the same mediaType field`);
  }

  const artifactTypeField = doc.artifactType;
  if (artifactTypeField !== undefined && typeof artifactTypeField !== 'string') throw invalid('artifactType must be a string');
  if (artifactTypeField !== undefined && !isCleanText(artifactTypeField)) throw invalid(`artifactType ${CONTROL_CHARACTERS_MESSAGE}`);
  const subject = doc.subject === undefined ? null : parseDescriptor(doc.subject, 'subject');
  const annotations = checkAnnotations(doc.annotations, 'manifest') ?? null;

  if (IMAGE_MANIFEST_TYPES.has(mediaType)) {
    if ('manifests' in doc) throw invalid('an image manifest must not have "manifests"');
    const config = parseDescriptor(doc.config, 'config');
    const layers = descriptorList(doc.layers, 'layers');
    const blobs = [config, ...layers.filter((l) => !(NON_DISTRIBUTABLE_TYPES.has(l.mediaType) && l.urls?.length))];
    return {
      kind: 'image',
      mediaType,
      artifactType: artifactTypeField ?? config.mediaType,
      config,
      layers,
      blobs,
      manifests: [],
      subject,
      annotations,
    };
  }
  if (INDEX_TYPES.has(mediaType)) {
    if ('layers' in doc || 'config' in doc) throw invalid('an index must not have "config" or "layers"');
    const manifests = descriptorList(doc.manifests, 'manifests');
    return {
      kind: 'index',
      mediaType,
      artifactType: artifactTypeField ?? null,
      config: null,
      layers: [],
      blobs: [],
      manifests,
      subject,
      annotations,
    };
  }
  throw invalid(`unsupported manifest media type "${mediaType}"`);
}

function schema1(): RegistryError {
  return invalid(
    'Docker schema1 manifests are not supported: push with a current client (schema2 or OCI), e.g. skopeo copy --format v2s2',
  );
}
