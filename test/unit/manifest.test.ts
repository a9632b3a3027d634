import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { RegistryError } from '../../src/core/errors.ts';
import { MAX_MANIFEST_BYTES, parseDescriptor, parseManifest } from '../../src/core/content/manifest.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const DOCKER_FOREIGN = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip';
const OCI_NONDIST = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';
const SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
const SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
const EMPTY_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

const dg = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
const desc = (mediaType: string, seed: string, size = 10, extra: Record<string, unknown> = {}) => ({
  mediaType,
  digest: dg(seed),
  size,
  ...extra,
});
const bytes = (doc: unknown) => Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));

const config = desc(OCI_CONFIG, 'config', 100);
const layer1 = desc(OCI_LAYER, 'layer1', 1000);
const layer2 = desc(OCI_LAYER, 'layer2', 2000);
const ociManifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [layer1, layer2] };
const ociIndex = {
  schemaVersion: 2,
  mediaType: OCI_INDEX,
  manifests: [
    desc(OCI_MANIFEST, 'm-amd64', 500, { platform: { architecture: 'amd64', os: 'linux' } }),
    desc(OCI_MANIFEST, 'm-arm64', 501, { platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } }),
  ],
};
const dockerManifest = {
  schemaVersion: 2,
  mediaType: DOCKER_MANIFEST,
  config: desc(DOCKER_CONFIG, 'dconfig', 50),
  layers: [desc(DOCKER_LAYER, 'dlayer', 60)],
};
const dockerList = {
  schemaVersion: 2,
  mediaType: DOCKER_LIST,
  manifests: [desc(DOCKER_MANIFEST, 'dm', 70, { platform: { architecture: 'amd64', os: 'linux' } })],
};

function invalid(fn: () => unknown, msg?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RegistryError, `expected RegistryError, got ${String(e)}`);
    assert.equal(e.code, 'MANIFEST_INVALID');
    assert.equal(e.status, 400);
    if (msg) assert.match(e.message, msg);
    return true;
  });
}

describe('parseManifest: accepted documents', () => {
  it('OCI image manifest', () => {
    const p = parseManifest(bytes(ociManifest), OCI_MANIFEST);
    assert.equal(p.kind, 'image');
    assert.equal(p.mediaType, OCI_MANIFEST);
    assert.deepEqual(p.config, config);
    assert.deepEqual(p.blobs, [config, layer1, layer2]);
    assert.deepEqual(p.manifests, []);
    assert.equal(p.subject, null);
    assert.equal(p.annotations, null);
    assert.equal(p.artifactType, OCI_CONFIG, 'artifactType falls back to the config media type');
  });

  it('OCI image manifest without a mediaType field, by Content-Type', () => {
    const { mediaType: _, ...doc } = ociManifest;
    const p = parseManifest(bytes(doc), OCI_MANIFEST);
    assert.equal(p.mediaType, OCI_MANIFEST);
  });

  it('Content-Type parameters and case are ignored', () => {
    const p = parseManifest(bytes(ociManifest), 'Application/VND.OCI.Image.Manifest.v1+JSON; charset=utf-8');
    assert.equal(p.mediaType, OCI_MANIFEST);
  });

  it('OCI image index', () => {
    const p = parseManifest(bytes(ociIndex), OCI_INDEX);
    assert.equal(p.kind, 'index');
    assert.equal(p.mediaType, OCI_INDEX);
    assert.equal(p.config, null);
    assert.deepEqual(p.blobs, []);
    assert.equal(p.manifests.length, 2);
    assert.deepEqual(p.manifests[1]!.platform, { architecture: 'arm64', os: 'linux', variant: 'v8' });
    assert.equal(p.artifactType, null);
  });

  it('an empty OCI index', () => {
    const p = parseManifest(bytes({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), OCI_INDEX);
    assert.deepEqual(p.manifests, []);
  });

  it('Docker schema2 manifest', () => {
    const p = parseManifest(bytes(dockerManifest), DOCKER_MANIFEST);
    assert.equal(p.kind, 'image');
    assert.equal(p.mediaType, DOCKER_MANIFEST);
    assert.equal(p.blobs.length, 2);
    assert.equal(p.artifactType, DOCKER_CONFIG);
  });

  it('Docker manifest list', () => {
    const p = parseManifest(bytes(dockerList), DOCKER_LIST);
    assert.equal(p.kind, 'index');
    assert.equal(p.mediaType, DOCKER_LIST);
    assert.equal(p.manifests.length, 1);
  });

  it('artifact manifest with artifactType and the empty config', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom.v1',
      config: { mediaType: OCI_EMPTY, digest: EMPTY_DIGEST, size: 2 },
      layers: [desc('application/spdx+json', 'sbom', 123)],
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    };
    const p = parseManifest(bytes(doc), OCI_MANIFEST);
    assert.equal(p.artifactType, 'application/vnd.example.sbom.v1');
    assert.deepEqual(p.config, { mediaType: OCI_EMPTY, digest: EMPTY_DIGEST, size: 2 });
    assert.deepEqual(p.annotations, { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' });
    assert.deepEqual(
      p.blobs.map((b) => b.digest),
      [EMPTY_DIGEST, dg('sbom')],
    );
  });

  it('artifact manifest with no layers', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example',
      config: { mediaType: OCI_EMPTY, digest: EMPTY_DIGEST, size: 2 },
      layers: [],
    };
    assert.deepEqual(parseManifest(bytes(doc), OCI_MANIFEST).blobs.length, 1);
  });

  it('manifest with a subject', () => {
    const subject = desc(OCI_MANIFEST, 'subject', 321);
    const p = parseManifest(bytes({ ...ociManifest, subject }), OCI_MANIFEST);
    assert.deepEqual(p.subject, subject);
  });

  it('index with artifactType and subject', () => {
    const subject = desc(OCI_INDEX, 'subj', 10);
    const p = parseManifest(bytes({ ...ociIndex, artifactType: 'application/x.demo', subject }), OCI_INDEX);
    assert.equal(p.artifactType, 'application/x.demo');
    assert.deepEqual(p.subject, subject);
  });

  it('foreign / non-distributable layers with urls are not required blobs', () => {
    const foreign = desc(DOCKER_FOREIGN, 'foreign', 5, { urls: ['https://example.com/layer'] });
    const doc = { ...dockerManifest, layers: [foreign, ...dockerManifest.layers] };
    const p = parseManifest(bytes(doc), DOCKER_MANIFEST);
    assert.deepEqual(
      p.blobs.map((b) => b.digest),
      [dockerManifest.config.digest, dockerManifest.layers[0]!.digest],
    );
    const nondist = desc(OCI_NONDIST, 'nondist', 7, { urls: ['https://example.com/x'] });
    const p2 = parseManifest(bytes({ ...ociManifest, layers: [nondist, layer1] }), OCI_MANIFEST);
    assert.deepEqual(
      p2.blobs.map((b) => b.digest),
      [config.digest, layer1.digest],
    );
  });

  it('a foreign layer without urls is still required', () => {
    const foreign = desc(DOCKER_FOREIGN, 'foreign', 5);
    const p = parseManifest(bytes({ ...dockerManifest, layers: [foreign] }), DOCKER_MANIFEST);
    assert.ok(p.blobs.some((b) => b.digest === foreign.digest));
  });

  const generic: [string, string | undefined, unknown, string][] = [
    ['no Content-Type, mediaType field', undefined, ociManifest, OCI_MANIFEST],
    ['application/json, mediaType field', 'application/json', dockerManifest, DOCKER_MANIFEST],
    ['application/octet-stream, index field', 'application/octet-stream', ociIndex, OCI_INDEX],
    ['no Content-Type, no mediaType, has manifests', undefined, { schemaVersion: 2, manifests: [] }, OCI_INDEX],
    ['no Content-Type, no mediaType, has config', undefined, { schemaVersion: 2, config, layers: [] }, OCI_MANIFEST],
  ];
  for (const [what, ct, doc, want] of generic) {
    it(`generic Content-Type: ${what} → ${want}`, () => assert.equal(parseManifest(bytes(doc), ct).mediaType, want));
  }

  it('a Uint8Array view with an offset is parsed by its own bytes', () => {
    const b = bytes(ociManifest);
    const big = Buffer.concat([Buffer.from('garbage'), b, Buffer.from('trailing')]);
    const view = new Uint8Array(big.buffer, big.byteOffset + 7, b.length);
    assert.equal(parseManifest(view, OCI_MANIFEST).kind, 'image');
  });

  it(`accepts exactly ${MAX_MANIFEST_BYTES} bytes`, () => {
    const b = bytes({ ...ociManifest, annotations: { pad: '' } });
    const pad = MAX_MANIFEST_BYTES - b.length;
    const doc = bytes({ ...ociManifest, annotations: { pad: 'x'.repeat(pad) } });
    assert.equal(doc.length, MAX_MANIFEST_BYTES);
    assert.equal(parseManifest(doc, OCI_MANIFEST).kind, 'image');
  });
});

describe('parseManifest: rejected documents', () => {
  const cases: [string, unknown, string | undefined, RegExp][] = [
    ['not JSON', '{"schemaVersion": 2,', OCI_MANIFEST, /not valid JSON/],
    ['empty body', '', OCI_MANIFEST, /not valid JSON/],
    ['JSON array', '[]', OCI_MANIFEST, /JSON object/],
    ['JSON null', 'null', OCI_MANIFEST, /JSON object/],
    ['JSON string', '"manifest"', OCI_MANIFEST, /JSON object/],
    ['JSON number', '2', OCI_MANIFEST, /JSON object/],
    ['missing schemaVersion', { mediaType: OCI_MANIFEST, config, layers: [] }, OCI_MANIFEST, /schemaVersion must be 2/],
    ['schemaVersion 3', { ...ociManifest, schemaVersion: 3 }, OCI_MANIFEST, /schemaVersion must be 2/],
    ['schemaVersion "2"', { ...ociManifest, schemaVersion: '2' }, OCI_MANIFEST, /schemaVersion must be 2/],
    ['schemaVersion 1', { schemaVersion: 1, name: 'a/b', tag: 'latest', fsLayers: [], history: [] }, 'application/json', /schema1/],
    ['schemaVersion 1 with OCI Content-Type', { schemaVersion: 1, fsLayers: [] }, OCI_MANIFEST, /schema1/],
    ['schema1 Content-Type', { schemaVersion: 1, fsLayers: [] }, SCHEMA1, /schema1/],
    ['schema1 signed Content-Type', { schemaVersion: 1, fsLayers: [] }, SCHEMA1_SIGNED, /schema1/],
    ['schema1 Content-Type with params', 'not even json', `${SCHEMA1_SIGNED}; charset=utf-8`, /schema1/],
    ['schema1 mediaType field', { schemaVersion: 2, mediaType: SCHEMA1 }, undefined, /schema1/],
    ['mediaType not a string', { ...ociManifest, mediaType: 42 }, undefined, /mediaType must be a string/],
    ['Content-Type vs mediaType mismatch', ociManifest, OCI_INDEX, /does not match Content-Type/],
    ['Docker Content-Type, OCI mediaType', ociManifest, DOCKER_MANIFEST, /does not match Content-Type/],
    ['unsupported Content-Type', ociManifest, 'text/plain', /unsupported manifest media type "text\/plain"/],
    ['unsupported mediaType field', { ...ociManifest, mediaType: 'application/vnd.example+json' }, undefined, /unsupported manifest media type/],
    ['Docker manifest without mediaType field', { schemaVersion: 2, config, layers: [] }, DOCKER_MANIFEST, /must carry the same mediaType/],
    ['Docker list without mediaType field', { schemaVersion: 2, manifests: [] }, DOCKER_LIST, /must carry the same mediaType/],
    ['missing config', { schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }, OCI_MANIFEST, /config must be a descriptor/],
    ['config null', { ...ociManifest, config: null }, OCI_MANIFEST, /config must be a descriptor/],
    ['config array', { ...ociManifest, config: [] }, OCI_MANIFEST, /config must be a descriptor/],
    ['missing layers', { schemaVersion: 2, mediaType: OCI_MANIFEST, config }, OCI_MANIFEST, /layers must be an array/],
    ['layers object', { ...ociManifest, layers: {} }, OCI_MANIFEST, /layers must be an array/],
    ['layer not an object', { ...ociManifest, layers: ['sha256:abc'] }, OCI_MANIFEST, /layers\[0\] must be a descriptor/],
    ['image manifest with manifests', { ...ociManifest, manifests: [] }, OCI_MANIFEST, /must not have "manifests"/],
    ['index with layers', { ...ociIndex, layers: [] }, OCI_INDEX, /must not have "config" or "layers"/],
    ['index with config', { ...ociIndex, config }, OCI_INDEX, /must not have "config" or "layers"/],
    ['index without manifests', { schemaVersion: 2, mediaType: OCI_INDEX }, OCI_INDEX, /manifests must be an array/],
    ['artifactType not a string', { ...ociManifest, artifactType: 1 }, OCI_MANIFEST, /artifactType must be a string/],
    ['annotations not an object', { ...ociManifest, annotations: 'x' }, OCI_MANIFEST, /annotations must be an object/],
    ['annotations an array', { ...ociManifest, annotations: ['x'] }, OCI_MANIFEST, /annotations must be an object/],
    ['annotation value a number', { ...ociManifest, annotations: { a: 1 } }, OCI_MANIFEST, /annotations\["a"\] must be a string/],
    ['annotation value null', { ...ociManifest, annotations: { a: null } }, OCI_MANIFEST, /annotations\["a"\] must be a string/],
    ['annotation value an object', { ...ociManifest, annotations: { a: {} } }, OCI_MANIFEST, /must be a string/],
    [
      'descriptor annotation value a bool',
      { ...ociManifest, layers: [{ ...layer1, annotations: { k: true } }] },
      OCI_MANIFEST,
      /layers\[0\]\.annotations\["k"\] must be a string/,
    ],
    ['subject not a descriptor', { ...ociManifest, subject: 'sha256:abc' }, OCI_MANIFEST, /subject must be a descriptor/],
    ['subject null', { ...ociManifest, subject: null }, OCI_MANIFEST, /subject must be a descriptor/],
    ['subject bad digest', { ...ociManifest, subject: { ...layer1, digest: 'sha256:xyz' } }, OCI_MANIFEST, /subject\.digest/],
  ];
  for (const [what, doc, ct, msg] of cases) {
    it(what, () => invalid(() => parseManifest(bytes(doc), ct), msg));
  }

  const badDescriptors: [string, Record<string, unknown>, RegExp][] = [
    ['digest missing', { mediaType: OCI_LAYER, size: 1 }, /digest is not a valid digest/],
    ['digest garbage', { ...layer1, digest: 'garbage' }, /digest is not a valid digest/],
    ['digest uppercase hex', { ...layer1, digest: layer1.digest.toUpperCase().replace('SHA256', 'sha256') }, /digest is not a valid digest/],
    ['digest wrong length', { ...layer1, digest: 'sha256:abcd' }, /digest is not a valid digest/],
    ['digest unknown algorithm', { ...layer1, digest: `md5:${'a'.repeat(32)}` }, /digest is not a valid digest/],
    ['digest a number', { ...layer1, digest: 5 }, /digest is not a valid digest/],
    ['size missing', { mediaType: OCI_LAYER, digest: layer1.digest }, /size must be a non-negative integer/],
    ['size negative', { ...layer1, size: -1 }, /size must be a non-negative integer/],
    ['size float', { ...layer1, size: 1.5 }, /size must be a non-negative integer/],
    ['size string', { ...layer1, size: '1000' }, /size must be a non-negative integer/],
    ['size beyond 2^53', { ...layer1, size: 2 ** 53 }, /size must be a non-negative integer/],
    ['size null', { ...layer1, size: null }, /size must be a non-negative integer/],
    ['mediaType missing', { digest: layer1.digest, size: 1 }, /mediaType must be a non-empty string/],
    ['mediaType empty', { ...layer1, mediaType: '' }, /mediaType must be a non-empty string/],
    ['mediaType a number', { ...layer1, mediaType: 3 }, /mediaType must be a non-empty string/],
    ['artifactType a number', { ...layer1, artifactType: 3 }, /artifactType must be a string/],
    ['urls a string', { ...layer1, urls: 'https://x' }, /urls must be an array of strings/],
    ['urls with a number', { ...layer1, urls: ['https://x', 1] }, /urls must be an array of strings/],
    ['platform without os', { ...layer1, platform: { architecture: 'amd64' } }, /platform must have string architecture and os/],
    ['platform a string', { ...layer1, platform: 'linux/amd64' }, /platform must have/],
  ];
  for (const [what, d, msg] of badDescriptors) {
    it(`layer descriptor: ${what}`, () => invalid(() => parseManifest(bytes({ ...ociManifest, layers: [d] }), OCI_MANIFEST), msg));
  }
  it('config descriptor with a negative size', () =>
    invalid(() => parseManifest(bytes({ ...ociManifest, config: { ...config, size: -5 } }), OCI_MANIFEST), /config\.size/));
  it('index entry with a float size', () =>
    invalid(() => parseManifest(bytes({ ...ociIndex, manifests: [{ ...ociIndex.manifests[0], size: 0.5 }] }), OCI_INDEX), /manifests\[0\]\.size/));
  it('index entry with a bad digest', () =>
    invalid(
      () => parseManifest(bytes({ ...ociIndex, manifests: [{ ...ociIndex.manifests[0], digest: 'sha256:' }] }), OCI_INDEX),
      /manifests\[0\]\.digest/,
    ));

  it(`rejects more than ${MAX_MANIFEST_BYTES} bytes`, () => {
    const doc = bytes({ ...ociManifest, annotations: { pad: 'x'.repeat(MAX_MANIFEST_BYTES) } });
    invalid(() => parseManifest(doc, OCI_MANIFEST), /limit/);
  });

  it('the schema1 error tells the user what to do', () => {
    try {
      parseManifest(bytes({ schemaVersion: 1 }), undefined);
      assert.fail('expected an error');
    } catch (e) {
      assert.ok(e instanceof RegistryError);
      assert.match(e.message, /schema1 manifests are not supported/);
      assert.match(e.message, /schema2|OCI/);
    }
  });
});

describe('parseDescriptor', () => {
  it('keeps the optional fields', () => {
    const d = parseDescriptor(
      {
        ...layer1,
        artifactType: 'application/x',
        annotations: { a: 'b' },
        urls: ['https://example.com'],
        platform: { architecture: 'amd64', os: 'linux' },
        unknownField: 'ignored',
      },
      'x',
    );
    assert.deepEqual(d, {
      ...layer1,
      artifactType: 'application/x',
      annotations: { a: 'b' },
      urls: ['https://example.com'],
      platform: { architecture: 'amd64', os: 'linux' },
    });
  });
  it('a zero size is valid', () => assert.equal(parseDescriptor({ ...layer1, size: 0 }, 'x').size, 0));
  it('a sha512 digest is valid', () => {
    const digest = `sha512:${createHash('sha512').update('x').digest('hex')}`;
    assert.equal(parseDescriptor({ ...layer1, digest }, 'x').digest, digest);
  });
  it('names where the problem is', () => invalid(() => parseDescriptor({}, 'layers[3]'), /^layers\[3\]\.mediaType/));
});
