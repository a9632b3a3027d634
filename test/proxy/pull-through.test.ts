/**
 * The pull-through cache against a real upstream: Debian's docker-registry (no auth) started
 * on loopback, pulled through an in-process Berth with skopeo and plain HTTP.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { tempDir } from '../helpers/e2e.ts';
import { buildImage, reachableBlobs, resolveTag } from '../helpers/oci-layout.ts';
import { createSkopeo } from '../helpers/skopeo.ts';
import { startDockerRegistry, startProxyBerth, startTestProxy } from './helpers.ts';

test('docker-registry upstream: cold pull equals a direct pull, warm pull with the upstream down, tag moves after the TTL, tags merged', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const up = await startDockerRegistry();
  t.after(() => up.stop());
  const pb = await startProxyBerth({ tagTtlSeconds: 1 });
  t.after(() => pb.close());
  await sk.login(pb.address, 'admin', 'proxy-test-admin-pw');

  const src = await tempDir(t, 'proxy-src');
  const v1 = await buildImage(src, { layers: [{ size: 300_000 }, { size: 40_000, gzip: false }] }, 'v1');
  await sk.copy(`oci:${src}:v1`, `docker://${up.address}/library/alpine:3`, ['--preserve-digests']);
  await sk.copy(`oci:${src}:v1`, `docker://${up.address}/library/alpine:other`, ['--preserve-digests']);

  const created = await pb.addUpstream('mirror', { url: up.url, prefix: 'hub/' });
  assert.equal(created.cache, true);
  assert.equal(created.prefix, 'hub/');

  // cold pull through Berth = direct pull from the upstream
  const direct = await tempDir(t, 'proxy-direct');
  const viaBerth = await tempDir(t, 'proxy-via');
  await sk.copy(`docker://${up.address}/library/alpine:3`, `oci:${direct}:x`, ['--preserve-digests']);
  await sk.copy(`docker://${pb.address}/acme/mirror/hub/library/alpine:3`, `oci:${viaBerth}:x`, ['--preserve-digests']);
  assert.deepEqual((await resolveTag(viaBerth, 'x')).digest, (await resolveTag(direct, 'x')).digest, 'same manifest digest');
  assert.deepEqual(await reachableBlobs(viaBerth, await resolveTag(viaBerth, 'x')), await reachableBlobs(direct, await resolveTag(direct, 'x')));

  // cached and marked so in the API
  const cached = await pb.api('GET', '/api/v1/repos/acme/mirror/cached');
  assert.equal(cached.status, 200);
  assert.equal(cached.json.length, 1);
  assert.equal(cached.json[0].image, 'acme/mirror/hub/library/alpine');
  assert.deepEqual(cached.json[0].tags, ['3']);
  assert.equal(cached.json[0].cached, true);
  const img = await pb.berth.meta.findImage('acme/mirror/hub/library/alpine');
  const manifestDigest = v1.manifest.digest;
  assert.equal((await resolveTag(direct, 'x')).digest, manifestDigest);
  const m = await pb.berth.meta.findManifest(img!.id, manifestDigest);
  assert.equal(m?.cached, true);

  // tags: local ∪ upstream
  assert.deepEqual(await sk.listTags(`docker://${pb.address}/acme/mirror/hub/library/alpine`), ['3', 'other']);
  // a name outside the prefix is not proxied
  const miss = await fetch(`${pb.url}/v2/acme/mirror/library/alpine/manifests/3`, { headers: { authorization: pb.auth } });
  assert.equal(miss.status, 404);

  // the tag moves upstream: seen only after the TTL
  const src2 = await tempDir(t, 'proxy-src2');
  const v2 = await buildImage(src2, { layers: [{ size: 10_000, gzip: false }] }, 'v2');
  await sk.copy(`oci:${src2}:v2`, `docker://${up.address}/library/alpine:3`, ['--preserve-digests']);
  const head = async () =>
    (await fetch(`${pb.url}/v2/acme/mirror/hub/library/alpine/manifests/3`, { method: 'HEAD', headers: { authorization: pb.auth, accept: 'application/vnd.oci.image.manifest.v1+json' } })).headers.get(
      'docker-content-digest',
    );
  assert.equal(await head(), manifestDigest, 'within the TTL: the cached digest');
  await new Promise((r) => setTimeout(r, 1200));
  assert.equal(await head(), v2.manifest.digest, 'after the TTL: the upstream moved the tag');
  const moved = await tempDir(t, 'proxy-moved');
  await sk.copy(`docker://${pb.address}/acme/mirror/hub/library/alpine:3`, `oci:${moved}:x`, ['--preserve-digests']);
  assert.equal((await resolveTag(moved, 'x')).digest, v2.manifest.digest);

  // warm pull with the upstream stopped (and the TTL passed: revalidation fails, cache serves)
  await up.stop();
  await new Promise((r) => setTimeout(r, 1100));
  const warm = await tempDir(t, 'proxy-warm');
  const started = Date.now();
  await sk.copy(`docker://${pb.address}/acme/mirror/hub/library/alpine:3`, `oci:${warm}:x`, ['--preserve-digests']);
  assert.equal((await resolveTag(warm, 'x')).digest, v2.manifest.digest);
  assert.ok(Date.now() - started < 15_000, 'no hang on a dead upstream');
  // an uncached one gives a clear error, not a hang
  const gone = await fetch(`${pb.url}/v2/acme/mirror/hub/library/nothere/manifests/1`, { headers: { authorization: pb.auth } });
  assert.equal(gone.status, 502);
  const body = (await gone.json()) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0]!.code, 'UPSTREAM_UNAVAILABLE');
  // tags list still answers from local content
  assert.deepEqual(await sk.listTags(`docker://${pb.address}/acme/mirror/hub/library/alpine`), ['3']);
});

test('20 concurrent cold pulls of one 50 MB layer: one upstream fetch, all get the right bytes', async (t) => {
  // 50 MB (not 200) keeps CI fast; the single-flight path is the same at any size.
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const up = await startDockerRegistry();
  t.after(() => up.stop());
  const counter = await startTestProxy(up.url);
  t.after(() => counter.close());
  const pb = await startProxyBerth();
  t.after(() => pb.close());

  const src = await tempDir(t, 'proxy-big');
  const img = await buildImage(src, { layers: [{ size: 50 * 1024 * 1024, gzip: false }] }, 'big');
  await sk.copy(`oci:${src}:big`, `docker://${up.address}/big/layer:1`, ['--preserve-digests']);
  await pb.addUpstream('mirror', { url: counter.url });

  const layer = img.layers[0]!.descriptor;
  const url = `${pb.url}/v2/acme/mirror/big/layer/blobs/${layer.digest}`;
  const results = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const res = await fetch(url, { headers: { authorization: pb.auth } });
      const hash = createHash('sha256');
      let n = 0;
      for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(c);
        n += c.length;
      }
      return { status: res.status, digest: `sha256:${hash.digest('hex')}`, n };
    }),
  );
  for (const r of results) assert.deepEqual(r, { status: 200, digest: layer.digest, n: layer.size });
  assert.equal(counter.blobGets(layer.digest), 1, 'exactly one upstream fetch');
  assert.equal(await pb.berth.store.stat(layer.digest).then((s) => !!s), true, 'stored');

  // the full image through skopeo, now from the cache for the layer
  const out = await tempDir(t, 'proxy-big-out');
  await sk.login(pb.address, 'admin', 'proxy-test-admin-pw');
  await sk.copy(`docker://${pb.address}/acme/mirror/big/layer:1`, `oci:${out}:x`, ['--preserve-digests']);
  assert.equal((await resolveTag(out, 'x')).digest, img.manifest.digest);
  assert.equal(counter.blobGets(layer.digest), 1, 'still one');
});

test('a corrupting upstream is detected: the pull fails and nothing is cached', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const up = await startDockerRegistry();
  t.after(() => up.stop());
  const bad = await startTestProxy(up.url, { corrupt: true });
  t.after(() => bad.close());
  const pb = await startProxyBerth();
  t.after(() => pb.close());

  const src = await tempDir(t, 'proxy-bad');
  const img = await buildImage(src, { layers: [{ size: 3 * 1024 * 1024, gzip: false }] }, 'v1');
  await sk.copy(`oci:${src}:v1`, `docker://${up.address}/app:1`, ['--preserve-digests']);
  await pb.addUpstream('bad', { url: bad.url });
  const layer = img.layers[0]!.descriptor;

  // the client's stream is aborted: reading the body fails
  const res = await fetch(`${pb.url}/v2/acme/bad/app/blobs/${layer.digest}`, { headers: { authorization: pb.auth } });
  await assert.rejects(async () => {
    for await (const _ of res.body as unknown as AsyncIterable<Uint8Array>) void _;
  });
  // a skopeo pull fails
  await sk.login(pb.address, 'admin', 'proxy-test-admin-pw');
  const out = await tempDir(t, 'proxy-bad-out');
  await assert.rejects(sk.copy(`docker://${pb.address}/acme/bad/app:1`, `oci:${out}:x`));
  // nothing cached: not stored, not linked, and the next pull goes upstream again
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(await pb.berth.store.stat(layer.digest), undefined);
  const image = await pb.berth.meta.findImage('acme/bad/app');
  assert.ok(image, 'the (valid) manifest was cached');
  assert.equal(await pb.berth.meta.findImageBlob(image.id, layer.digest), undefined);
  const before = bad.blobGets(layer.digest);
  const again = await fetch(`${pb.url}/v2/acme/bad/app/blobs/${layer.digest}`, { headers: { authorization: pb.auth } });
  await assert.rejects(async () => {
    for await (const _ of again.body as unknown as AsyncIterable<Uint8Array>) void _;
  });
  assert.equal(bad.blobGets(layer.digest), before + 1);
  // a HEAD (fetch and verify first) answers a clear 502
  const head = await fetch(`${pb.url}/v2/acme/bad/app/blobs/${layer.digest}`, { method: 'HEAD', headers: { authorization: pb.auth } });
  assert.equal(head.status, 502);
  assert.equal(await pb.berth.store.stat(layer.digest), undefined);
});
