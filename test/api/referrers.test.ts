import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  assertOciError,
  pushArtifact,
  pushImage,
  sha256,
  startBerth,
  type Descriptor,
  type PushedImage,
  type TestBerth,
} from './helpers.ts';

let t: TestBerth;
const NAME = 'acme/prod/app';
const SBOM = 'application/vnd.example.sbom.v1+json';
const SIG = 'application/vnd.example.signature.v1';
let image: PushedImage;
let subject: Descriptor;
let sbom: { digest: string; bytes: Buffer };
let sig: { digest: string; bytes: Buffer };

interface ReferrersIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: { mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }[];
}

before(async () => {
  t = await startBerth();
  image = await pushImage(t.app, NAME, 'v1');
  subject = { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length };
  sbom = await pushArtifact(t.app, NAME, subject, SBOM, { annotations: { 'org.example.kind': 'sbom', 'org.opencontainers.image.created': '2024-05-01T00:00:00Z' } });
  sig = await pushArtifact(t.app, NAME, subject, SIG, { annotations: { 'org.example.kind': 'signature' } });
});
after(async () => {
  await t.close();
});

const referrers = (digest: string, query = '', name = NAME) => t.app.inject({ method: 'GET', url: `/v2/${name}/referrers/${digest}${query}` });

describe('[GET /v2/<name>/referrers/<digest>]', () => {
  it('lists both artifacts with artifactType and annotations as an OCI index', async () => {
    const res = await referrers(image.digest);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], OCI_INDEX);
    assert.equal(res.headers['oci-filters-applied'], undefined);
    const body = res.json() as ReferrersIndex;
    assert.equal(body.schemaVersion, 2);
    assert.equal(body.mediaType, OCI_INDEX);
    const byDigest = new Map(body.manifests.map((m) => [m.digest, m]));
    assert.equal(body.manifests.length, 2);
    assert.deepEqual(byDigest.get(sbom.digest), {
      mediaType: OCI_MANIFEST,
      digest: sbom.digest,
      size: sbom.bytes.length,
      artifactType: SBOM,
      annotations: { 'org.example.kind': 'sbom', 'org.opencontainers.image.created': '2024-05-01T00:00:00Z' },
    });
    assert.deepEqual(byDigest.get(sig.digest), {
      mediaType: OCI_MANIFEST,
      digest: sig.digest,
      size: sig.bytes.length,
      artifactType: SIG,
      annotations: { 'org.example.kind': 'signature' },
    });
  });

  it('Content-Length matches the body', async () => {
    const res = await referrers(image.digest);
    assert.equal(res.headers['content-length'], String(res.rawPayload.length));
  });

  it('?artifactType= filters and sets OCI-Filters-Applied', async () => {
    const res = await referrers(image.digest, `?artifactType=${encodeURIComponent(SBOM)}`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['oci-filters-applied'], 'artifactType');
    const body = res.json() as ReferrersIndex;
    assert.deepEqual(
      body.manifests.map((m) => m.digest),
      [sbom.digest],
    );
  });

  it('?artifactType= with no match → empty index with the filter header', async () => {
    const res = await referrers(image.digest, '?artifactType=application%2Fnone');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual((res.json() as ReferrersIndex).manifests, []);
  });

  it('an image manifest without artifactType is listed with its config media type', async () => {
    const referrer = await pushImage(t.app, NAME, undefined, { extra: { subject } });
    const body = (await referrers(image.digest)).json() as ReferrersIndex;
    const entry = body.manifests.find((m) => m.digest === referrer.digest);
    assert.ok(entry);
    assert.equal(entry.artifactType, 'application/vnd.oci.image.config.v1+json');
    assert.equal(entry.annotations, undefined);
  });

  it('an index can be a referrer', async () => {
    const child = await pushImage(t.app, NAME, undefined);
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      artifactType: 'application/vnd.example.bundle',
      manifests: [{ mediaType: OCI_MANIFEST, digest: child.digest, size: child.bytes.length }],
      subject,
    };
    const bytes = Buffer.from(JSON.stringify(index));
    const put = await t.app.inject({ method: 'PUT', url: `/v2/${NAME}/manifests/${sha256(bytes)}`, headers: { 'content-type': OCI_INDEX }, payload: bytes });
    assert.equal(put.statusCode, 201, put.body);
    assert.equal(put.headers['oci-subject'], image.digest);
    const res = await referrers(image.digest, '?artifactType=application%2Fvnd.example.bundle');
    assert.deepEqual((res.json() as ReferrersIndex).manifests, [
      { mediaType: OCI_INDEX, digest: sha256(bytes), size: bytes.length, artifactType: 'application/vnd.example.bundle' },
    ]);
  });

  it('referrers of a subject that was never pushed are listed', async () => {
    const ghost = { mediaType: OCI_MANIFEST, digest: sha256('ghost subject'), size: 42 };
    const a = await pushArtifact(t.app, NAME, ghost, SIG);
    assert.equal(a.res.headers['oci-subject'], ghost.digest);
    const body = (await referrers(ghost.digest)).json() as ReferrersIndex;
    assert.deepEqual(
      body.manifests.map((m) => m.digest),
      [a.digest],
    );
  });

  it('a deleted referrer disappears', async () => {
    const other = await pushImage(t.app, NAME, 'v2');
    const s = { mediaType: OCI_MANIFEST, digest: other.digest, size: other.bytes.length };
    const a = await pushArtifact(t.app, NAME, s, SIG);
    assert.equal(((await referrers(other.digest)).json() as ReferrersIndex).manifests.length, 1);
    assert.equal((await t.app.inject({ method: 'DELETE', url: `/v2/${NAME}/manifests/${a.digest}` })).statusCode, 202);
    assert.deepEqual(((await referrers(other.digest)).json() as ReferrersIndex).manifests, []);
  });

  it('no referrers → 200 with an empty index, not 404', async () => {
    const lonely = await pushImage(t.app, NAME, 'lonely');
    const res = await referrers(lonely.digest);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], OCI_INDEX);
    assert.deepEqual(res.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
  });

  it('an unknown digest → 200 with an empty index', async () => {
    const res = await referrers(sha256('unknown'));
    assert.equal(res.statusCode, 200);
    assert.deepEqual((res.json() as ReferrersIndex).manifests, []);
  });

  it('referrers are per image (isolation)', async () => {
    await pushImage(t.app, 'acme/prod/other', 'v1');
    const res = await referrers(image.digest, '', 'acme/prod/other');
    assert.equal(res.statusCode, 200);
    assert.deepEqual((res.json() as ReferrersIndex).manifests, []);
  });

  it('invalid digest → 400 DIGEST_INVALID', async () => {
    assertOciError(await referrers('sha256:short'), 400, 'DIGEST_INVALID');
    assertOciError(await referrers('latest'), 400, 'DIGEST_INVALID');
  });

  it('unknown image → 404 NAME_UNKNOWN', async () => {
    assertOciError(await referrers(image.digest, '', 'acme/prod/nope'), 404, 'NAME_UNKNOWN');
  });

  it('invalid name → 400 NAME_INVALID', async () => {
    assertOciError(await referrers(image.digest, '', 'acme/app'), 400, 'NAME_INVALID');
  });
});
