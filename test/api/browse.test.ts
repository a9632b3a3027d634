/**
 * The web UI's read-only API (src/http/api/browse.ts): images with tag counts, tags with search
 * and keyset pagination (fast with 10,000 tags), manifest detail with kind, layers, config and
 * referrers — under the same authorization as /v2 (a private repository is 404 to others).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PASSWORD, USER_PASSWORD, api, apiOk, basic, pushImage, sha256, type AuthBerth, openAuthBerth } from '../auth/helpers.ts';

const ADMIN = basic('admin', ADMIN_PASSWORD);

describe('browse API', () => {
  let b: AuthBerth;
  let digest: string;
  before(async () => {
    b = await openAuthBerth();
    await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'bob', password: USER_PASSWORD }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'prod', visibility: 'private' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'pub', visibility: 'public' }, 201);
    digest = (await pushImage(b.app, 'acme/prod/web/api', 'v1', ADMIN)).manifestDigest;
    await pushImage(b.app, 'acme/prod/worker', 'latest', ADMIN);
    await pushImage(b.app, 'acme/pub/tool', '1.0', ADMIN);
  });
  after(() => b?.close());

  it('lists images with tag counts, the kind, size and time of the latest push', async () => {
    const list = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/images', ADMIN, undefined, 200);
    assert.deepEqual(
      list.map((i: { name: string; image: string; tagCount: number; latestTag: string; kind: { kind: string } }) => [i.name, i.image, i.tagCount, i.latestTag, i.kind.kind]),
      [
        ['acme/prod/web/api', 'web/api', 1, 'v1', 'container-image'],
        ['acme/prod/worker', 'worker', 1, 'latest', 'container-image'],
      ],
    );
    const web = list[0];
    const detail = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/manifest?image=web/api&ref=v1`, ADMIN, undefined, 200);
    assert.equal(web.size, detail.size, 'manifest + config + layers');
    assert.ok(Math.abs(Date.parse(web.lastPushedAt) - Date.now()) < 60_000, web.lastPushedAt);
    // the newest push decides: an index pushed later is what the list shows, sized with its children
    const child = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/manifest?image=worker&ref=latest`, ADMIN, undefined, 200);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ mediaType: child.mediaType, digest: child.digest, size: child.manifestSize, platform: { os: 'linux', architecture: 'arm64' } }],
      }),
    );
    await new Promise((r) => setTimeout(r, 5));
    const put = await b.app.inject({ method: 'PUT', url: '/v2/acme/prod/worker/manifests/multi', headers: { authorization: ADMIN, 'content-type': 'application/vnd.oci.image.index.v1+json' }, payload: index });
    assert.equal(put.statusCode, 201, put.body);
    const worker = (await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/images', ADMIN, undefined, 200))[1];
    assert.equal(worker.latestTag, 'multi');
    assert.equal(worker.kind.kind, 'multi-arch-index');
    assert.equal(worker.size, index.length + child.size);
    assert.equal(worker.tagCount, 2);
    const del = await b.app.inject({ method: 'DELETE', url: '/v2/acme/prod/worker/manifests/multi', headers: { authorization: ADMIN } });
    assert.equal(del.statusCode, 202);
  });

  it('tags sort by name, semver (highest first) or push time (newest first), paged with after', async () => {
    const tags = ['1.9.0', 'latest', 'v1.10.0', '2.0.0-rc.1', '2.0.0', '1.2', 'main'];
    for (const t of tags) {
      await pushImage(b.app, 'acme/prod/sorted', t, ADMIN);
      await new Promise((r) => setTimeout(r, 3));
    }
    const names = async (qs: string) => {
      const all: string[] = [];
      let after = '';
      for (let n = 0; n < 10; n++) {
        const p = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/tags?image=sorted&limit=3${qs}${after ? `&after=${encodeURIComponent(after)}` : ''}`, ADMIN, undefined, 200);
        all.push(...p.tags.map((t: { name: string }) => t.name));
        if (!p.next) return all;
        after = p.next;
      }
      throw new Error('no end');
    };
    assert.deepEqual(await names(''), ['1.2', '1.9.0', '2.0.0', '2.0.0-rc.1', 'latest', 'main', 'v1.10.0']);
    assert.deepEqual(await names('&sort=name'), await names(''));
    assert.deepEqual(await names('&sort=semver'), ['2.0.0', '2.0.0-rc.1', 'v1.10.0', '1.9.0', '1.2', 'latest', 'main']);
    assert.deepEqual(await names('&sort=time'), [...tags].reverse());
    assert.deepEqual(await names('&sort=semver&q=2.0'), ['2.0.0', '2.0.0-rc.1']);
    const bad = await api(b.app, 'GET', '/api/v1/repos/acme/prod/tags?image=sorted&sort=size', ADMIN);
    assert.equal(bad.status, 400);
    assert.match(bad.res.body, /sort.*name, semver, time/);
    const gone = await api(b.app, 'GET', '/api/v1/repos/acme/prod/tags?image=sorted&sort=semver&after=nope', ADMIN);
    assert.equal(gone.status, 400);
    assert.match(gone.res.body, /after.{1,3} names no tag/);
  });

  it('a private repository is 404 to anonymous callers and non-members; public is readable', async () => {
    for (const auth of [undefined, basic('bob', USER_PASSWORD)]) {
      for (const url of ['/api/v1/repos/acme/prod/images', '/api/v1/repos/acme/prod/tags?image=worker', '/api/v1/repos/acme/prod/manifest?image=worker&ref=latest', '/api/v1/repos/acme/nope/images']) {
        const r = await api(b.app, 'GET', url, auth);
        assert.equal(r.status, 404, `${url} as ${auth ?? 'anonymous'}: ${r.res.body}`);
      }
    }
    const pub = await apiOk(b.app, 'GET', '/api/v1/repos/acme/pub/tags?image=tool', undefined, undefined, 200);
    assert.deepEqual(pub.tags.map((t: { name: string }) => t.name), ['1.0']);
  });

  it('manifest detail: kind, layers, config, tags; unknown references are 404', async () => {
    const d = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/manifest?image=web/api&ref=v1`, ADMIN, undefined, 200);
    assert.equal(d.digest, digest);
    assert.equal(d.kind.kind, 'container-image');
    assert.equal(d.layers.length, 1);
    assert.equal(d.layers[0].size, 64);
    assert.equal(d.config.content.os, 'linux');
    assert.deepEqual(d.tags, ['v1']);
    assert.deepEqual(d.referrers, []);
    const byDigest = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/manifest?image=web/api&ref=${digest}`, ADMIN, undefined, 200);
    assert.equal(byDigest.digest, digest);
    assert.equal((await api(b.app, 'GET', '/api/v1/repos/acme/prod/manifest?image=web/api&ref=nope', ADMIN)).status, 404);
    assert.equal((await api(b.app, 'GET', '/api/v1/repos/acme/prod/manifest?image=web/api', ADMIN)).status, 400);
  });

  it('referrers tree: an artifact attached to the image is listed with its kind', async () => {
    const config = Buffer.from('{}');
    const sbom = Buffer.from('{"spdxVersion":"SPDX-2.3"}');
    for (const blob of [config, sbom]) {
      const r = await b.app.inject({ method: 'POST', url: `/v2/acme/prod/web/api/blobs/uploads/?digest=${sha256(blob)}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: blob });
      assert.equal(r.statusCode, 201);
    }
    const subject = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/manifest?image=web/api&ref=v1`, ADMIN, undefined, 200);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/spdx+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/spdx+json', digest: sha256(sbom), size: sbom.length }],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.manifestSize },
      }),
    );
    const put = await b.app.inject({ method: 'PUT', url: `/v2/acme/prod/web/api/manifests/${sha256(manifest)}`, headers: { authorization: ADMIN, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: manifest });
    assert.equal(put.statusCode, 201, put.body);
    const d = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/manifest?image=web/api&ref=v1`, ADMIN, undefined, 200);
    assert.equal(d.referrers.length, 1);
    assert.equal(d.referrers[0].digest, sha256(manifest));
    assert.equal(d.referrers[0].kind.kind, 'sbom');
    const r = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/manifest?image=web/api&ref=${sha256(manifest)}`, ADMIN, undefined, 200);
    assert.equal(r.subject.digest, digest);
    assert.equal(r.artifactType, 'application/spdx+json');
  });

  it('10,000 tags: pages by name and searches by substring quickly', async () => {
    const img = await b.berth.registry.images.find('acme/prod/worker');
    const m = (await b.berth.meta.findTaggedManifest(img.id, 'latest'))!;
    const payload = m.payload;
    const many = Array.from({ length: 10_000 }, (_, i) => `v${String(i).padStart(5, '0')}`);
    for (const tag of many) {
      await b.berth.meta.saveManifest({ imageId: img.id, digest: m.digest, mediaType: m.mediaType, artifactType: m.artifactType, subjectDigest: null, configDigest: null, payload, annotations: null, refs: [], requireBlobs: [], requireManifests: [], tag });
    }
    const t0 = performance.now();
    const p1 = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/tags?image=worker&limit=50', ADMIN, undefined, 200);
    const p2 = await apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/tags?image=worker&limit=50&after=${p1.next}`, ADMIN, undefined, 200);
    const found = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/tags?image=worker&q=0999', ADMIN, undefined, 200);
    const bySemver = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/tags?image=worker&limit=50&sort=semver', ADMIN, undefined, 200);
    const ms = performance.now() - t0;
    assert.equal(bySemver.tags[0].name, 'v09999');
    assert.equal(p1.total, 10_001);
    assert.equal(p1.tags.length, 50);
    assert.equal(p1.tags[0].name, 'latest');
    assert.equal(p1.next, 'v00048');
    assert.equal(p2.tags[0].name, 'v00049');
    assert.deepEqual(found.tags.map((t: { name: string }) => t.name), ['v00999', ...Array.from({ length: 10 }, (_, i) => `v0999${i}`)]);
    assert.equal(found.next, undefined);
    assert.ok(ms < 1500, `four tag queries over 10,000 tags took ${ms.toFixed(0)} ms`);
    const images = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/images', ADMIN, undefined, 200);
    assert.equal(images.find((i: { image: string }) => i.image === 'worker').tagCount, 10_001);
  });
});
