/**
 * The signature format cosign and containers/image read (docs/signing.md), as pure functions:
 *
 * - the "simple signing" payload (containers/image `signature/internal/sigstore_payload.go`):
 *   `{"critical":{"identity":{"docker-reference":REF},"image":{"docker-manifest-digest":DIGEST},
 *   "type":"cosign container image signature"},"optional":{…}}`;
 * - signed with ECDSA over SHA-256, the ASN.1 DER signature base64-encoded in the layer
 *   annotation `dev.cosignproject.cosign/signature` (cosign `specs/SIGNATURE_SPEC.md`);
 * - stored as a layer of media type `application/vnd.dev.cosign.simplesigning.v1+json` of an OCI
 *   image manifest tagged `sha256-<hex>.sig` (tag-based discovery), several signatures being
 *   several layers of that one manifest; and as an OCI 1.1 referrer of the image.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const SIGNATURE_TYPE = 'cosign container image signature';
/** The artifact type cosign gives signatures stored as OCI 1.1 referrers. */
export const SIGNATURE_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
export const EMPTY_JSON = Buffer.from('{}');
/** Bounds: a payload is a few hundred bytes; a `.sig` manifest holds a few signatures. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
export const MAX_SIGNATURE_LAYERS = 64;

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The tag cosign looks a signature up by: `sha256:abc…` → `sha256-abc….sig`. */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/** Whether a tag is one of cosign's attachment tags (`sha256-<hex>.sig|.att|.sbom`). */
export function isAttachmentTag(tag: string): boolean {
  return /^sha256-[0-9a-f]{64}\.(sig|att|sbom)$/.test(tag);
}

/** The simple-signing payload Berth signs; `optional` carries the creator and a timestamp, as containers/image writes. */
export function simpleSigningPayload(dockerReference: string, digest: string, timestamp: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: SIGNATURE_TYPE },
      optional: { creator: 'Berth', timestamp: Math.floor(timestamp / 1000) },
    }),
  );
}

export interface ParsedPayload {
  dockerReference: string;
  digest: string;
}

/**
 * Parses a payload as strictly as containers/image does: exactly `critical` and `optional` at
 * the top; `critical` exactly `type`, `image`, `identity`; the type cosign's. Throws with the
 * reason otherwise.
 */
export function parsePayload(payload: Buffer): ParsedPayload {
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Error('payload is not JSON');
  }
  const exact = (o: unknown, keys: string[], what: string): Record<string, unknown> => {
    if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${what} is not an object`);
    const have = Object.keys(o).sort();
    if (have.join(',') !== [...keys].sort().join(',')) throw new Error(`${what} must have exactly the fields ${keys.join(', ')}`);
    return o as Record<string, unknown>;
  };
  const top = exact(doc, ['critical', 'optional'], 'payload');
  if (top.optional !== null && (typeof top.optional !== 'object' || Array.isArray(top.optional))) throw new Error('optional is not an object');
  const critical = exact(top.critical, ['type', 'image', 'identity'], 'critical');
  if (critical.type !== SIGNATURE_TYPE) throw new Error(`unrecognized signature type ${JSON.stringify(critical.type)}`);
  const digest = exact(critical.image, ['docker-manifest-digest'], 'critical.image')['docker-manifest-digest'];
  const ref = exact(critical.identity, ['docker-reference'], 'critical.identity')['docker-reference'];
  if (typeof digest !== 'string' || !/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest)) throw new Error('invalid docker-manifest-digest');
  if (typeof ref !== 'string' || !ref) throw new Error('invalid docker-reference');
  return { dockerReference: ref, digest };
}

/**
 * Whether a payload's docker-reference names `image` (OWNER/REPOSITORY/IMAGE): its path, with or
 * without a `:tag` (skopeo writes the tag it pushed to; cosign only the repository) and
 * whatever host (the one the client used: behind a proxy or by another name it differs).
 */
export function referenceNames(ref: string, image: string): boolean {
  const r = referenceRepository(ref);
  return r === image || r.endsWith(`/${image}`);
}

/** A docker-reference without its `@digest` and `:tag`: `HOST[:PORT]/PATH`. */
function referenceRepository(ref: string): string {
  const r = ref.split('@')[0]!;
  const slash = r.lastIndexOf('/');
  const colon = r.lastIndexOf(':');
  return colon > slash ? r.slice(0, colon) : r;
}

/**
 * A docker-reference's first component (its host, port included) and the path after it,
 * without `:tag` or `@digest` — how a custom domain's short name is found in it. Undefined
 * for a reference of one component.
 */
export function referenceHostPath(ref: string): { host: string; path: string } | undefined {
  const r = referenceRepository(ref);
  const slash = r.indexOf('/');
  return slash > 0 ? { host: r.slice(0, slash), path: r.slice(slash + 1) } : undefined;
}

/** A short, stable id of a public key: 16 hex characters of the SHA-256 of its SPKI DER. */
export function keyFingerprint(key: KeyObject): string {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

/**
 * Reads a PEM public key an owner uploads: ECDSA (P-256, P-384, P-521) or RSA of 2048 to 8192
 * bits, exponent below 2^32 — what cosign verifies with SHA-256. Throws a message for the owner otherwise.
 */
export function parsePublicKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error('not a PEM public key (expected -----BEGIN PUBLIC KEY-----, e.g. cosign.pub)');
  }
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && ['prime256v1', 'secp384r1', 'secp521r1'].includes(d.namedCurve ?? '')) return key;
  // RSA within what cosign makes (2048–4096 bits, e = 65537), with room: a huge modulus or
  // exponent makes each check milliseconds, and verdicts check every key against every layer.
  const rsaSize = d.modulusLength ?? 0;
  if (key.asymmetricKeyType === 'rsa' && rsaSize >= 2048 && rsaSize <= 8192 && (d.publicExponent ?? 0n) <= 0xffffffffn) return key;
  throw new Error(
    `unsupported key type ${key.asymmetricKeyType}${d.namedCurve ? ` (${d.namedCurve})` : ''}${key.asymmetricKeyType === 'rsa' ? ` (${rsaSize} bits)` : ''}: use ECDSA P-256/P-384/P-521 or RSA of 2048 to 8192 bits with a public exponent below 2^32`,
  );
}

/** Signs a payload: ECDSA over SHA-256, DER, base64 — the annotation's value. */
export function signPayload(privateKey: KeyObject, payload: Buffer): string {
  return sign('sha256', payload, privateKey).toString('base64');
}

/** Verifies an annotation's base64 signature over a payload with a public key. */
export function verifyPayload(publicKey: KeyObject, payload: Buffer, signatureBase64: string): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signatureBase64) || signatureBase64.length > 2048) return false;
  try {
    return verify('sha256', payload, publicKey, Buffer.from(signatureBase64, 'base64'));
  } catch {
    return false;
  }
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A signature layer: the payload blob's descriptor with the signature annotation. */
export function signatureLayer(payload: Buffer, signature: string): Descriptor {
  return { mediaType: SIMPLE_SIGNING, digest: sha256(payload), size: payload.length, annotations: { [SIGNATURE_ANNOTATION]: signature } };
}

/** The config blob cosign writes for a `.sig` manifest: an image config whose diff_ids are the layers. */
export function signatureConfig(layers: Descriptor[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      architecture: '',
      created: '0001-01-01T00:00:00Z',
      history: [{ created: '0001-01-01T00:00:00Z' }],
      os: '',
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      config: {},
    }),
  );
}

/** The `.sig` manifest: an OCI image manifest whose layers are the signatures. */
export function signatureManifest(config: Buffer, layers: Descriptor[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, size: config.length, digest: sha256(config) }, layers }));
}

/** The same signature as an OCI 1.1 referrer of the image (the referrers API lists it). */
export function referrerManifest(layer: Descriptor, subject: { mediaType: string; digest: string; size: number }, created: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: SIGNATURE_ARTIFACT_TYPE,
      config: { mediaType: OCI_EMPTY, size: EMPTY_JSON.length, digest: sha256(EMPTY_JSON) },
      layers: [layer],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      annotations: { 'org.opencontainers.image.created': new Date(created).toISOString() },
    }),
  );
}

/** The signature layers of a manifest (simple-signing media type with a signature annotation), at most MAX_SIGNATURE_LAYERS. */
export function signatureLayers(manifest: Buffer): Descriptor[] {
  let doc: { layers?: unknown };
  try {
    doc = JSON.parse(manifest.toString('utf8')) as { layers?: unknown };
  } catch {
    return [];
  }
  if (!Array.isArray(doc.layers)) return [];
  const out: Descriptor[] = [];
  for (const l of doc.layers.slice(0, MAX_SIGNATURE_LAYERS) as Record<string, unknown>[]) {
    if (!l || l.mediaType !== SIMPLE_SIGNING || typeof l.digest !== 'string' || typeof l.size !== 'number') continue;
    const ann = l.annotations as Record<string, unknown> | undefined;
    if (typeof ann?.[SIGNATURE_ANNOTATION] !== 'string') continue;
    out.push({ mediaType: SIMPLE_SIGNING, digest: l.digest, size: l.size, annotations: ann as Record<string, string> });
  }
  return out;
}

/** Every layer descriptor of a manifest as written (to keep other signatures when adding one). */
export function manifestLayers(manifest: Buffer): Descriptor[] {
  try {
    const doc = JSON.parse(manifest.toString('utf8')) as { layers?: unknown };
    return Array.isArray(doc.layers) ? (doc.layers as Descriptor[]) : [];
  } catch {
    return [];
  }
}
