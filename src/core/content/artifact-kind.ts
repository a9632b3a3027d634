/**
 * A human label for what a manifest holds: container image, multi-arch index, Helm chart, SBOM,
 * signature, ORAS artifact… Pure: looks only at the parsed manifest (and its media type).
 */

export type ArtifactKind =
  | 'container-image'
  | 'multi-arch-index'
  | 'index'
  | 'helm-chart'
  | 'sbom'
  | 'signature'
  | 'attestation'
  | 'terraform-module'
  | 'wasm'
  | 'oras-artifact'
  | 'docker-schema1'
  | 'unknown';

export interface KindInfo {
  kind: ArtifactKind;
  label: string;
  /** For indexes: the platforms of children that declare one, e.g. `linux/arm64/v8`. */
  platforms?: string[];
}

const LABELS: Record<ArtifactKind, string> = {
  'container-image': 'Container image',
  'multi-arch-index': 'Multi-arch image index',
  index: 'Image index',
  'helm-chart': 'Helm chart',
  sbom: 'SBOM',
  signature: 'Signature',
  attestation: 'Attestation',
  'terraform-module': 'Terraform module',
  wasm: 'WebAssembly module',
  'oras-artifact': 'ORAS artifact',
  'docker-schema1': 'Docker schema 1 image',
  unknown: 'Unknown',
};

const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);
const INDEXES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

function classifyType(t: string): ArtifactKind | undefined {
  const s = t.toLowerCase();
  if (s === 'application/vnd.cncf.helm.config.v1+json' || s.startsWith('application/vnd.cncf.helm.')) return 'helm-chart';
  if (s.includes('cosign') && (s.includes('sig.') || s.includes('signature') || s.includes('simplesigning'))) return 'signature';
  if (s.includes('notary') || s.includes('notation') || s.endsWith('.signature') || s.includes('.signature.')) return 'signature';
  if (s.includes('spdx') || s.includes('cyclonedx') || s.includes('syft') || s.includes('sbom')) return 'sbom';
  if (s.includes('in-toto') || s.includes('intoto') || s.includes('attestation') || s.includes('dsse')) return 'attestation';
  if (s.includes('terraform')) return 'terraform-module';
  if (s.includes('wasm')) return 'wasm';
  return undefined;
}

function label(kind: ArtifactKind, platforms?: string[]): KindInfo {
  return platforms ? { kind, label: LABELS[kind], platforms } : { kind, label: LABELS[kind] };
}

export function kindLabel(kind: ArtifactKind): string {
  return LABELS[kind];
}

/** Classifies a manifest. `doc` is the parsed JSON; `mediaType` the stored media type. */
export function classifyManifest(mediaType: string, doc: unknown): KindInfo {
  const m = (doc && typeof doc === 'object' ? doc : {}) as {
    artifactType?: unknown;
    config?: { mediaType?: unknown };
    layers?: { mediaType?: unknown }[];
    manifests?: { platform?: { os?: unknown; architecture?: unknown; variant?: unknown } }[];
  };
  const mt = mediaType || '';
  if (mt.startsWith('application/vnd.docker.distribution.manifest.v1')) return label('docker-schema1');
  if (INDEXES.has(mt) || Array.isArray(m.manifests)) {
    const artifactType = typeof m.artifactType === 'string' ? m.artifactType : undefined;
    const byType = artifactType ? classifyType(artifactType) : undefined;
    if (byType) return label(byType);
    const platforms = (m.manifests ?? [])
      .map((c) => c.platform)
      .filter((p): p is NonNullable<typeof p> => !!p && typeof p.os === 'string' && typeof p.architecture === 'string')
      .filter((p) => p.os !== 'unknown')
      .map((p) => [p.os, p.architecture, typeof p.variant === 'string' && p.variant ? p.variant : undefined].filter(Boolean).join('/'));
    return platforms.length ? label('multi-arch-index', platforms) : label('index');
  }
  const artifactType = typeof m.artifactType === 'string' ? m.artifactType : undefined;
  const configType = typeof m.config?.mediaType === 'string' ? m.config.mediaType : undefined;
  for (const t of [artifactType, configType]) {
    const k = t ? classifyType(t) : undefined;
    if (k) return label(k);
  }
  if (configType && IMAGE_CONFIGS.has(configType) && !artifactType) return label('container-image');
  // Empty config (ORAS, cosign ≥ 2, notation): look at the layers.
  for (const l of m.layers ?? []) {
    const k = typeof l.mediaType === 'string' ? classifyType(l.mediaType) : undefined;
    if (k) return label(k);
  }
  if (artifactType || (configType && !IMAGE_CONFIGS.has(configType))) return label('oras-artifact');
  if (configType) return label('container-image');
  return label('unknown');
}
