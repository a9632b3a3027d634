import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  DOCKER_CONFIG,
  DOCKER_LAYER,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_SCHEMA1,
  DOCKER_SCHEMA1_SIGNED,
  EMPTY_DIGEST,
  EMPTY_JSON,
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_LAYER,
  OCI_MANIFEST,
  assertOciError,
  descriptor,
  pushBlob,
  pushImage,
  putManifest,
  sha256,
  startBerth,
  type PushedImage,
  type TestBerth,
} from './helpers.ts';

let t: TestBerth;
const NAME = 'acme/prod/app';
const OTHER = 'acme/prod/other';
let base: PushedImage;

before(async () => {
  t = await startBerth();
  base = await pushImage(t.app, NAME, 'base');
  await pushImage(t.app, OTHER, 'v1');
});
after(async () => {
  await t.close();
});

const murl = (name: string, ref: string) => `/v2/${name}/manifests/${ref}`;
const get = (name: string, ref: string, headers: Record<string, string> = {}) => t.app.inject({ method: 'GET', url: murl(name, ref), headers });
const head = (name: string, ref: string) => t.app.inject({ method: 'HEAD', url: murl(name, ref) });
const del = (name: string, ref: string) => t.app.inject({ method: 'DELETE', url: murl(name, ref) });

/** Uploads config + layer blobs to `name` and returns an OCI manifest object over them. */
async function ociManifestFor(name: string, seed: string, extra: Record<string, unknown> = {}) {
  const cfg = Buffer.from(JSON.stringify({ seed }));
  const layer = Buffer.from(`layer of ${seed}`);
  await pushBlob(t.app, name, cfg);
  await pushBlob(t.app, name, layer);
  return { schemaVersion: 2, mediaType: OCI_MANIFEST, config: descriptor(OCI_CONFIG, cfg), layers: [descriptor(OCI_LAYER, layer)], ...extra };
}

function assertCreated(res: Awaited<ReturnType<typeof get>>, name: string, digest: string): void {
  assert.equal(res.statusCode, 201, res.body);
  assert.equal(res.headers['docker-content-digest'], digest);
  assert.equal(res.headers.location, `/v2/${name}/manifests/${digest}`);
  assert.equal(res.body, '');
}

describe('[PUT /v2/<name>/manifests/<ref>]', () => {
  it('OCI manifest by tag → 201 with Location and Docker-Content-Digest', async () => {
    const m = await ociManifestFor(NAME, 'by-tag');
    const bytes = Buffer.from(JSON.stringify(m));
    assertCreated(await putManifest(t.app, NAME, 'by-tag', bytes, OCI_MANIFEST), NAME, sha256(bytes));
    const res = await get(NAME, 'by-tag');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, bytes);
  });

  it('OCI manifest by digest → 201, not tagged', async () => {
    const m = await ociManifestFor(NAME, 'by-digest');
    const bytes = Buffer.from(JSON.stringify(m));
    const digest = sha256(bytes);
    assertCreated(await putManifest(t.app, NAME, digest, bytes, OCI_MANIFEST), NAME, digest);
    assert.equal((await get(NAME, digest)).statusCode, 200);
    const tags = (await t.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list` })).json() as { tags: string[] };
    assert.ok(!tags.tags.includes(digest));
  });

  it('OCI image index (children pushed by digest) by tag and by digest', async () => {
    const a = await pushImage(t.app, NAME, undefined);
    const b = await pushImage(t.app, NAME, undefined);
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: a.digest, size: a.bytes.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: OCI_MANIFEST, digest: b.digest, size: b.bytes.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
      annotations: { 'org.opencontainers.image.ref.name': 'multi' },
    };
    const bytes = Buffer.from(JSON.stringify(index));
    assertCreated(await putManifest(t.app, NAME, 'multi', bytes, OCI_INDEX), NAME, sha256(bytes));
    assertCreated(await putManifest(t.app, NAME, sha256(bytes), bytes, OCI_INDEX), NAME, sha256(bytes));
    const res = await get(NAME, 'multi');
    assert.equal(res.headers['content-type'], OCI_INDEX);
    assert.deepEqual(res.rawPayload, bytes);
  });

  it('an index of indexes', async () => {
    const child = await pushImage(t.app, NAME, undefined);
    const inner = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: child.digest, size: child.bytes.length }] }));
    assert.equal((await putManifest(t.app, NAME, sha256(inner), inner, OCI_INDEX)).statusCode, 201);
    const outer = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: sha256(inner), size: inner.length }] }));
    assert.equal((await putManifest(t.app, NAME, 'nested', outer, OCI_INDEX)).statusCode, 201);
  });

  it('Docker schema2 manifest by tag and by digest', async () => {
    const img = await pushImage(t.app, NAME, 'docker', { mediaType: DOCKER_MANIFEST });
    const res = await get(NAME, 'docker');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], DOCKER_MANIFEST);
    assert.deepEqual(res.rawPayload, img.bytes);
    assertCreated(await putManifest(t.app, NAME, img.digest, img.bytes, DOCKER_MANIFEST), NAME, img.digest);
    assert.equal(img.config.mediaType, DOCKER_CONFIG);
    assert.equal(img.layers[0]!.mediaType, DOCKER_LAYER);
  });

  it('Docker manifest list', async () => {
    const a = await pushImage(t.app, NAME, undefined, { mediaType: DOCKER_MANIFEST });
    const list = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST_LIST,
      manifests: [{ mediaType: DOCKER_MANIFEST, digest: a.digest, size: a.bytes.length, platform: { architecture: 'amd64', os: 'linux' } }],
    };
    const bytes = Buffer.from(JSON.stringify(list));
    assertCreated(await putManifest(t.app, NAME, 'docker-list', bytes, DOCKER_MANIFEST_LIST), NAME, sha256(bytes));
    assertCreated(await putManifest(t.app, NAME, sha256(bytes), bytes, DOCKER_MANIFEST_LIST), NAME, sha256(bytes));
    const res = await get(NAME, 'docker-list');
    assert.equal(res.headers['content-type'], DOCKER_MANIFEST_LIST);
    assert.deepEqual(res.rawPayload, bytes);
  });

  it('artifact with artifactType and the empty config', async () => {
    assert.equal(await pushBlob(t.app, NAME, EMPTY_JSON), EMPTY_DIGEST);
    const payload = Buffer.from('{"sbom":true}');
    await pushBlob(t.app, NAME, payload);
    const m = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom.v1+json',
      config: { mediaType: OCI_EMPTY, digest: EMPTY_DIGEST, size: 2 },
      layers: [descriptor('application/vnd.example.sbom.v1+json', payload)],
    };
    const bytes = Buffer.from(JSON.stringify(m));
    assertCreated(await putManifest(t.app, NAME, 'sbom', bytes, OCI_MANIFEST), NAME, sha256(bytes));
    assertCreated(await putManifest(t.app, NAME, sha256(bytes), bytes, OCI_MANIFEST), NAME, sha256(bytes));
    const blob = await t.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${EMPTY_DIGEST}` });
    assert.equal(blob.body, '{}');
  });

  it('artifact with the empty config and no layers', async () => {
    await pushBlob(t.app, NAME, EMPTY_JSON);
    const m = { schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/x.empty', config: { mediaType: OCI_EMPTY, digest: EMPTY_DIGEST, size: 2 }, layers: [] };
    assert.equal((await putManifest(t.app, NAME, 'empty-artifact', m)).statusCode, 201);
  });

  it('the digest is over the exact bytes sent (odd formatting preserved)', async () => {
    const m = await ociManifestFor(NAME, 'odd');
    const odd = `\n  {  "schemaVersion" :2,\n\t"mediaType":   "${OCI_MANIFEST}",\r\n "config":${JSON.stringify(m.config, null, 7)},  "layers" : ${JSON.stringify(m.layers, null, 1)}   }\n\n`;
    const bytes = Buffer.from(odd);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    assert.notEqual(digest, sha256(JSON.stringify(JSON.parse(odd))));
    const res = await putManifest(t.app, NAME, 'odd', bytes, OCI_MANIFEST);
    assertCreated(res, NAME, digest);
    const back = await get(NAME, 'odd');
    assert.deepEqual(back.rawPayload, bytes, 'stored byte for byte');
    assert.equal(back.headers['docker-content-digest'], digest);
    assert.equal(back.headers['content-length'], String(bytes.length));
  });

  it('non-ASCII content (UTF-8 annotations) keeps exact bytes', async () => {
    const m = await ociManifestFor(NAME, 'utf8', { annotations: { 'org.opencontainers.image.description': 'Größe 🚢 テスト' } });
    const bytes = Buffer.from(JSON.stringify(m));
    assertCreated(await putManifest(t.app, NAME, 'utf8', bytes, OCI_MANIFEST), NAME, sha256(bytes));
    assert.deepEqual((await get(NAME, 'utf8')).rawPayload, bytes);
  });

  it('re-putting the same manifest is idempotent', async () => {
    assertCreated(await putManifest(t.app, NAME, 'base', base.bytes, OCI_MANIFEST), NAME, base.digest);
    assertCreated(await putManifest(t.app, NAME, base.digest, base.bytes, OCI_MANIFEST), NAME, base.digest);
    assert.equal((await get(NAME, 'base')).headers['docker-content-digest'], base.digest);
  });

  it('re-tagging moves the tag to the new manifest', async () => {
    const one = await pushImage(t.app, NAME, 'moving');
    const two = await pushImage(t.app, NAME, 'moving');
    assert.equal((await get(NAME, 'moving')).headers['docker-content-digest'], two.digest);
    assert.equal((await get(NAME, one.digest)).statusCode, 200, 'the old manifest stays, untagged');
  });

  it('a sha512 digest reference stores the manifest under sha512', async () => {
    const m = await ociManifestFor(NAME, 'sha512');
    const bytes = Buffer.from(JSON.stringify(m));
    const digest = `sha512:${createHash('sha512').update(bytes).digest('hex')}`;
    assertCreated(await putManifest(t.app, NAME, digest, bytes, OCI_MANIFEST), NAME, digest);
    const res = await get(NAME, digest);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['docker-content-digest'], digest);
  });

  it('a generic Content-Type is accepted when the document has mediaType', async () => {
    const m = await ociManifestFor(NAME, 'generic');
    const res = await putManifest(t.app, NAME, 'generic', Buffer.from(JSON.stringify(m)), 'application/json');
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((await get(NAME, 'generic')).headers['content-type'], OCI_MANIFEST);
  });

  it('with a subject → OCI-Subject header; the subject need not exist', async () => {
    const subject = { mediaType: OCI_MANIFEST, digest: sha256('no such manifest'), size: 123 };
    const m = await ociManifestFor(NAME, 'with-subject', { subject });
    const res = await putManifest(t.app, NAME, 'with-subject', m);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['oci-subject'], subject.digest);
    const without = await putManifest(t.app, NAME, 'without-subject', await ociManifestFor(NAME, 'no-subject'));
    assert.equal(without.headers['oci-subject'], undefined);
  });

  it('creates the image on first manifest push', async () => {
    const name = 'fresh/repo/img';
    const m = await ociManifestFor(name, 'fresh');
    assert.equal((await putManifest(t.app, name, 'v1', m)).statusCode, 201);
  });

  it('a tag of 128 characters is accepted', async () => {
    const tag = `T${'x'.repeat(127)}`;
    assert.equal((await putManifest(t.app, NAME, tag, base.bytes, OCI_MANIFEST)).statusCode, 201);
    assert.equal((await get(NAME, tag)).statusCode, 200);
  });
});

describe('[PUT /v2/<name>/manifests/<ref>] rejected', () => {
  it('missing layer → 404 MANIFEST_BLOB_UNKNOWN naming it', async () => {
    const m = await ociManifestFor(NAME, 'missing-layer');
    const missing = descriptor(OCI_LAYER, 'never uploaded');
    m.layers.push(missing);
    const res = await putManifest(t.app, NAME, 'missing-layer', m);
    const err = assertOciError(res, 404, 'MANIFEST_BLOB_UNKNOWN');
    assert.deepEqual(err.detail, { missing: [missing.digest] });
    assertOciError(await get(NAME, 'missing-layer'), 404, 'MANIFEST_UNKNOWN');
  });

  it('missing config → 404 MANIFEST_BLOB_UNKNOWN', async () => {
    const m = await ociManifestFor(NAME, 'missing-config');
    m.config = descriptor(OCI_CONFIG, 'config never uploaded');
    assertOciError(await putManifest(t.app, NAME, 'missing-config', m), 404, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('a layer only present in another image → 404 MANIFEST_BLOB_UNKNOWN', async () => {
    const foreignLayer = Buffer.from('only in OTHER');
    await pushBlob(t.app, OTHER, foreignLayer);
    const m = await ociManifestFor(NAME, 'foreign-layer');
    m.layers.push(descriptor(OCI_LAYER, foreignLayer));
    assertOciError(await putManifest(t.app, NAME, 'foreign-layer', m), 404, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('a layer deleted from the image → 404 MANIFEST_BLOB_UNKNOWN', async () => {
    const m = await ociManifestFor(NAME, 'deleted-layer');
    assert.equal((await t.app.inject({ method: 'DELETE', url: `/v2/${NAME}/blobs/${m.layers[0]!.digest}` })).statusCode, 202);
    assertOciError(await putManifest(t.app, NAME, 'deleted-layer', m), 404, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('a descriptor size that does not match the blob → 400 MANIFEST_INVALID', async () => {
    const m = await ociManifestFor(NAME, 'size-mismatch');
    m.layers[0]!.size += 1;
    const err = assertOciError(await putManifest(t.app, NAME, 'size-mismatch', m), 400, 'MANIFEST_INVALID');
    assert.match(err.message, /size/);
  });

  it('missing index child → 404 MANIFEST_BLOB_UNKNOWN', async () => {
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: base.digest, size: base.bytes.length },
        { mediaType: OCI_MANIFEST, digest: sha256('no such child'), size: 10 },
      ],
    };
    const err = assertOciError(await putManifest(t.app, NAME, 'bad-index', index), 404, 'MANIFEST_BLOB_UNKNOWN');
    assert.deepEqual(err.detail, { missing: [sha256('no such child')] });
  });

  it('index child only present in another image → 404 MANIFEST_BLOB_UNKNOWN', async () => {
    const other = await pushImage(t.app, OTHER, undefined);
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: other.digest, size: other.bytes.length }] };
    assertOciError(await putManifest(t.app, NAME, 'cross-index', index), 404, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('index child that is a blob, not a manifest → 404 MANIFEST_BLOB_UNKNOWN', async () => {
    const d = await pushBlob(t.app, NAME, 'a plain blob');
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: d, size: 12 }] };
    assertOciError(await putManifest(t.app, NAME, 'blob-index', index), 404, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('index child size mismatch → 400 MANIFEST_INVALID', async () => {
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: base.digest, size: base.bytes.length + 5 }] };
    assertOciError(await putManifest(t.app, NAME, 'size-index', index), 400, 'MANIFEST_INVALID');
  });

  const invalidBodies: [string, string | Buffer, string | undefined][] = [
    ['invalid JSON', '{"schemaVersion": 2, "mediaType": ', OCI_MANIFEST],
    ['a JSON array', '[]', OCI_MANIFEST],
    ['empty body', '', OCI_MANIFEST],
    ['binary garbage', Buffer.from([0xff, 0xfe, 0x00, 0x01]), OCI_MANIFEST],
    ['schemaVersion 3', JSON.stringify({ schemaVersion: 3, mediaType: OCI_MANIFEST }), OCI_MANIFEST],
    ['missing config', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }), OCI_MANIFEST],
    ['bad layer digest', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: 'sha256:zz', size: 1 }, layers: [] }), OCI_MANIFEST],
    ['negative size', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: EMPTY_DIGEST, size: -2 }, layers: [] }), OCI_MANIFEST],
    ['Content-Type mismatch', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: EMPTY_DIGEST, size: 2 }, layers: [] }), OCI_INDEX],
    ['unsupported Content-Type', JSON.stringify({ schemaVersion: 2, config: { mediaType: OCI_CONFIG, digest: EMPTY_DIGEST, size: 2 }, layers: [] }), 'text/plain'],
    ['annotation not a string', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: EMPTY_DIGEST, size: 2 }, layers: [], annotations: { a: 1 } }), OCI_MANIFEST],
  ];
  for (const [what, body, ct] of invalidBodies) {
    it(`${what} → 400 MANIFEST_INVALID`, async () => {
      assertOciError(await putManifest(t.app, NAME, 'invalid', Buffer.isBuffer(body) ? body : Buffer.from(body), ct), 400, 'MANIFEST_INVALID');
    });
  }

  it('more than 4 MiB → rejected with MANIFEST_INVALID (413 or 400)', async () => {
    const m = await ociManifestFor(NAME, 'huge', { annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } });
    const res = await putManifest(t.app, NAME, 'huge', m);
    assert.ok(res.statusCode === 413 || res.statusCode === 400, `status ${res.statusCode}`);
    assertOciError(res, res.statusCode, 'MANIFEST_INVALID');
    assertOciError(await get(NAME, 'huge'), 404, 'MANIFEST_UNKNOWN');
  });

  it('more than 4 MiB streamed without Content-Length → rejected', async () => {
    const { Readable } = await import('node:stream');
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const res = await t.app.inject({
      method: 'PUT',
      url: murl(NAME, 'huge-chunked'),
      headers: { 'content-type': OCI_MANIFEST, 'transfer-encoding': 'chunked' },
      payload: Readable.from([chunk, chunk, chunk, chunk, chunk]),
    });
    assert.ok(res.statusCode === 413 || res.statusCode === 400, `status ${res.statusCode}`);
    assertOciError(res, res.statusCode, 'MANIFEST_INVALID');
  });

  for (const [what, ct, doc] of [
    ['schemaVersion 1 document', 'application/json', { schemaVersion: 1, name: NAME, tag: 'old', architecture: 'amd64', fsLayers: [], history: [] }],
    ['schema1 Content-Type', DOCKER_SCHEMA1, { schemaVersion: 1, name: NAME, tag: 'old', fsLayers: [], history: [] }],
    ['signed schema1 Content-Type', DOCKER_SCHEMA1_SIGNED, { schemaVersion: 1, name: NAME, tag: 'old', fsLayers: [], history: [], signatures: [] }],
  ] as const) {
    it(`${what} → 400 with a clear schema1 message`, async () => {
      const err = assertOciError(await putManifest(t.app, NAME, 'old', doc, ct), 400, 'MANIFEST_INVALID');
      assert.match(err.message, /schema1/);
      assert.match(err.message, /not supported/);
    });
  }

  it('digest reference mismatch → 400 DIGEST_INVALID', async () => {
    const wrong = sha256('something else');
    const err = assertOciError(await putManifest(t.app, NAME, wrong, base.bytes, OCI_MANIFEST), 400, 'DIGEST_INVALID');
    assert.deepEqual(err.detail, { expected: wrong, actual: base.digest });
    assertOciError(await get(NAME, wrong), 404, 'MANIFEST_UNKNOWN');
  });

  it('same bytes, reformatted, under the original digest → 400 DIGEST_INVALID', async () => {
    const pretty = Buffer.from(JSON.stringify(JSON.parse(base.bytes.toString()), null, 2));
    assertOciError(await putManifest(t.app, NAME, base.digest, pretty, OCI_MANIFEST), 400, 'DIGEST_INVALID');
  });

  it('malformed digest reference → 400 DIGEST_INVALID', async () => {
    assertOciError(await putManifest(t.app, NAME, 'sha256:abc', base.bytes, OCI_MANIFEST), 400, 'DIGEST_INVALID');
  });

  for (const tag of ['-leading-dash', '.leading-dot', `${'x'.repeat(129)}`, 'a+b', 'tag%20space']) {
    it(`invalid tag ${JSON.stringify(tag.slice(0, 20))} → 400`, async () => {
      assertOciError(await putManifest(t.app, NAME, tag, base.bytes, OCI_MANIFEST), 400);
    });
  }

  it('invalid name → 400 NAME_INVALID', async () => {
    assertOciError(await putManifest(t.app, 'acme/app', 'v1', base.bytes, OCI_MANIFEST), 400, 'NAME_INVALID');
  });
});

describe('[GET /v2/<name>/manifests/<ref>]', () => {
  for (const by of ['tag', 'digest'] as const) {
    it(`by ${by} → 200 with stored Content-Type, Docker-Content-Digest, Content-Length, ETag`, async () => {
      const res = await get(NAME, by === 'tag' ? 'base' : base.digest);
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], OCI_MANIFEST);
      assert.equal(res.headers['docker-content-digest'], base.digest);
      assert.equal(res.headers['content-length'], String(base.bytes.length));
      assert.equal(res.headers.etag, `"${base.digest}"`);
      assert.deepEqual(res.rawPayload, base.bytes);
    });
  }

  it('ignores the Accept header (returns the stored type)', async () => {
    const res = await get(NAME, 'base', { accept: DOCKER_MANIFEST });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], OCI_MANIFEST);
  });

  it('If-None-Match with the ETag → 304', async () => {
    const res = await get(NAME, 'base', { 'if-none-match': `"${base.digest}"` });
    assert.equal(res.statusCode, 304);
    assert.equal(res.body, '');
  });

  it('unknown tag → 404 MANIFEST_UNKNOWN', async () => {
    assertOciError(await get(NAME, 'nope'), 404, 'MANIFEST_UNKNOWN');
  });
  it('unknown digest → 404 MANIFEST_UNKNOWN', async () => {
    assertOciError(await get(NAME, sha256('nope')), 404, 'MANIFEST_UNKNOWN');
  });
  it('a manifest of another image → 404 MANIFEST_UNKNOWN (isolation)', async () => {
    assertOciError(await get(OTHER, base.digest), 404, 'MANIFEST_UNKNOWN');
    assertOciError(await get(OTHER, 'base'), 404, 'MANIFEST_UNKNOWN');
  });
  it('a blob digest is not a manifest → 404 MANIFEST_UNKNOWN', async () => {
    assertOciError(await get(NAME, base.config.digest), 404, 'MANIFEST_UNKNOWN');
  });
  it('unknown image → 404 NAME_UNKNOWN', async () => {
    assertOciError(await get('acme/prod/nope', 'latest'), 404, 'NAME_UNKNOWN');
  });
  // The spec lists only 404 for a manifest that is not found: one that cannot exist is not found.
  it('a reference that cannot be a tag → 404 MANIFEST_UNKNOWN saying why', async () => {
    for (const ref of ['-bad', '.INVALID_MANIFEST_NAME', 'x'.repeat(129)]) {
      const err = assertOciError(await get(NAME, ref), 404, 'MANIFEST_UNKNOWN');
      assert.match(err.message, /invalid tag/);
    }
  });
  it('a reference that cannot be a digest → 404 MANIFEST_UNKNOWN saying why', async () => {
    const err = assertOciError(await get(NAME, 'sha256:short'), 404, 'MANIFEST_UNKNOWN');
    assert.match(err.message, /sha256 digest/);
    assertOciError(await get(NAME, 'md5:d41d8cd98f00b204e9800998ecf8427e'), 404, 'MANIFEST_UNKNOWN');
  });
  it('invalid name → 400 NAME_INVALID', async () => {
    assertOciError(await get('acme/app', 'latest'), 400, 'NAME_INVALID');
  });
});

describe('[HEAD /v2/<name>/manifests/<ref>]', () => {
  for (const by of ['tag', 'digest'] as const) {
    it(`by ${by} → 200 with headers and no body`, async () => {
      const res = await head(NAME, by === 'tag' ? 'base' : base.digest);
      assert.equal(res.statusCode, 200);
      assert.equal(res.body, '');
      assert.equal(res.headers['content-type'], OCI_MANIFEST);
      assert.equal(res.headers['docker-content-digest'], base.digest);
      assert.equal(res.headers['content-length'], String(base.bytes.length));
      assert.equal(res.headers.etag, `"${base.digest}"`);
    });
  }
  it('unknown → 404 with no body', async () => {
    const res = await head(NAME, 'nope');
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, '');
  });
  it('unknown image → 404 with no body', async () => {
    const res = await head('acme/prod/nope', 'latest');
    assert.equal(res.statusCode, 404);
    assert.equal(res.body, '');
  });
  it('a reference or a name that cannot exist → 404 with no body (GET says why)', async () => {
    for (const [name, ref] of [[NAME, '.INVALID_MANIFEST_NAME'], [NAME, 'sha256:short'], ['acme/app', 'latest'], ['app', 'latest']] as const) {
      const res = await head(name, ref);
      assert.equal(res.statusCode, 404, `${name}:${ref}`);
      assert.equal(res.body, '');
    }
    const err = assertOciError(await get('acme/app', 'latest'), 400, 'NAME_INVALID');
    assert.match(err.message, /OWNER\/REPOSITORY\/IMAGE/);
  });
});

describe('[DELETE /v2/<name>/manifests/<ref>]', () => {
  it('by digest → 202; removes the manifest and all its tags', async () => {
    const img = await pushImage(t.app, NAME, 'del-a');
    assert.equal((await putManifest(t.app, NAME, 'del-b', img.bytes, OCI_MANIFEST)).statusCode, 201);
    const res = await del(NAME, img.digest);
    assert.equal(res.statusCode, 202);
    assert.equal(res.body, '');
    assertOciError(await get(NAME, img.digest), 404, 'MANIFEST_UNKNOWN');
    assertOciError(await get(NAME, 'del-a'), 404, 'MANIFEST_UNKNOWN');
    assertOciError(await get(NAME, 'del-b'), 404, 'MANIFEST_UNKNOWN');
    const tags = (await t.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list` })).json() as { tags: string[] };
    assert.ok(!tags.tags.includes('del-a') && !tags.tags.includes('del-b'));
    assertOciError(await del(NAME, img.digest), 404, 'MANIFEST_UNKNOWN');
  });

  it('by digest, then the same manifest can be pushed again', async () => {
    const img = await pushImage(t.app, NAME, 'again');
    assert.equal((await del(NAME, img.digest)).statusCode, 202);
    assert.equal((await putManifest(t.app, NAME, 'again', img.bytes, OCI_MANIFEST)).statusCode, 201);
    assert.equal((await get(NAME, 'again')).headers['docker-content-digest'], img.digest);
  });

  it('by tag → 202; removes only the tag', async () => {
    const img = await pushImage(t.app, NAME, 'tag-a');
    assert.equal((await putManifest(t.app, NAME, 'tag-b', img.bytes, OCI_MANIFEST)).statusCode, 201);
    assert.equal((await del(NAME, 'tag-a')).statusCode, 202);
    assertOciError(await get(NAME, 'tag-a'), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await get(NAME, 'tag-b')).statusCode, 200);
    assert.equal((await get(NAME, img.digest)).statusCode, 200);
    assertOciError(await del(NAME, 'tag-a'), 404, 'MANIFEST_UNKNOWN');
  });

  it('in one image does not affect the same manifest in another', async () => {
    const img = await pushImage(t.app, NAME, 'shared', { seed: 'shared-seed' });
    const copy = await pushImage(t.app, OTHER, 'shared', { seed: 'shared-seed' });
    assert.equal(img.digest, copy.digest);
    assert.equal((await del(NAME, img.digest)).statusCode, 202);
    assert.equal((await get(OTHER, 'shared')).statusCode, 200);
  });

  it('unknown tag → 404 MANIFEST_UNKNOWN', async () => {
    assertOciError(await del(NAME, 'never-tagged'), 404, 'MANIFEST_UNKNOWN');
  });
  it('unknown image → 404 NAME_UNKNOWN', async () => {
    assertOciError(await del('acme/prod/nope', 'latest'), 404, 'NAME_UNKNOWN');
  });
  it('a reference that cannot exist → 404 MANIFEST_UNKNOWN', async () => {
    assertOciError(await del(NAME, 'sha256:nothex'), 404, 'MANIFEST_UNKNOWN');
    assertOciError(await del(NAME, '.bad'), 404, 'MANIFEST_UNKNOWN');
  });
});
