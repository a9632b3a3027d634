import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyManifest } from '../../src/core/content/artifact-kind.ts';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const EMPTY = 'application/vnd.oci.empty.v1+json';

test('container images (OCI and Docker)', () => {
  assert.equal(classifyManifest(OCI, { config: { mediaType: 'application/vnd.oci.image.config.v1+json' }, layers: [] }).kind, 'container-image');
  const d = classifyManifest('application/vnd.docker.distribution.manifest.v2+json', {
    config: { mediaType: 'application/vnd.docker.container.image.v1+json' },
  });
  assert.deepEqual(d, { kind: 'container-image', label: 'Container image' });
});

test('multi-arch index lists platforms, skipping attestation entries', () => {
  const k = classifyManifest(INDEX, {
    manifests: [
      { platform: { os: 'linux', architecture: 'amd64' } },
      { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { platform: { os: 'unknown', architecture: 'unknown' } },
    ],
  });
  assert.equal(k.kind, 'multi-arch-index');
  assert.deepEqual(k.platforms, ['linux/amd64', 'linux/arm64/v8']);
  assert.equal(classifyManifest(INDEX, { manifests: [{}] }).kind, 'index');
});

test('helm chart by config media type', () => {
  const k = classifyManifest(OCI, { config: { mediaType: 'application/vnd.cncf.helm.config.v1+json' }, layers: [{ mediaType: 'application/vnd.cncf.helm.chart.content.v1.tar+gzip' }] });
  assert.deepEqual(k, { kind: 'helm-chart', label: 'Helm chart' });
});

test('signatures: cosign and notation', () => {
  assert.equal(classifyManifest(OCI, { config: { mediaType: EMPTY }, layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json' }] }).kind, 'signature');
  assert.equal(classifyManifest(OCI, { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', config: { mediaType: EMPTY } }).kind, 'signature');
  assert.equal(classifyManifest(OCI, { artifactType: 'application/vnd.cncf.notary.signature', config: { mediaType: EMPTY } }).kind, 'signature');
});

test('SBOMs, attestations, terraform, generic ORAS artifacts', () => {
  assert.equal(classifyManifest(OCI, { artifactType: 'application/spdx+json', config: { mediaType: EMPTY } }).kind, 'sbom');
  assert.equal(classifyManifest(OCI, { artifactType: 'application/vnd.cyclonedx+json' }).kind, 'sbom');
  assert.equal(classifyManifest(OCI, { artifactType: 'application/vnd.in-toto+json' }).kind, 'attestation');
  assert.equal(classifyManifest(OCI, { config: { mediaType: 'application/vnd.opentofu.modulepkg' }, layers: [{ mediaType: 'archive/tar+terraform' }] }).kind, 'terraform-module');
  assert.equal(classifyManifest(OCI, { artifactType: 'application/vnd.example.thing', config: { mediaType: EMPTY } }).kind, 'oras-artifact');
  assert.equal(classifyManifest(OCI, { config: { mediaType: 'application/vnd.unknown.config.v1+json' }, layers: [] }).kind, 'oras-artifact');
  assert.equal(classifyManifest('application/vnd.docker.distribution.manifest.v1+prettyjws', {}).kind, 'docker-schema1');
  assert.equal(classifyManifest(OCI, null).kind, 'unknown');
});
