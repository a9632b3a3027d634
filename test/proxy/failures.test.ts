/**
 * Upstream trouble never hangs a pull: 5xx and 429 are retried with backoff, then the next
 * upstream is asked, then the client gets a clear 502; a silent upstream times out; a body that
 * stalls half way is aborted and nothing is cached. The upstream is docker-registry behind a
 * misbehaving test proxy.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from '../helpers/e2e.ts';
import { buildImage } from '../helpers/oci-layout.ts';
import { createSkopeo } from '../helpers/skopeo.ts';
import { startDockerRegistry, startProxyBerth, startTestProxy } from './helpers.ts';

test('503s are retried, 429 moves on to the next upstream, silence times out, a stalled body is aborted', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const up = await startDockerRegistry();
  t.after(() => up.stop());
  const src = await tempDir(t, 'proxy-fail-src');
  const img = await buildImage(src, { layers: [{ size: 2 * 1024 * 1024, gzip: false }] }, 'v1');
  await sk.copy(`oci:${src}:v1`, `docker://${up.address}/app:1`, ['--preserve-digests']);
  const layer = img.layers[0]!.descriptor;

  const pb = await startProxyBerth({ retries: 2, backoffMs: 20, timeoutMs: 700 });
  t.after(() => pb.close());
  const get = (path: string) => fetch(`${pb.url}/v2/${path}`, { headers: { authorization: pb.auth, accept: 'application/vnd.oci.image.manifest.v1+json' } });

  // two 503s, then the answer: within the retry budget
  const flaky = await startTestProxy(up.url, { failFirst: 2 });
  t.after(() => flaky.close());
  await pb.addUpstream('flaky', { url: flaky.url });
  const ok = await get('acme/flaky/app/manifests/1');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('docker-content-digest'), img.manifest.digest);

  // always 429 at priority 0: retried, then the next upstream serves
  const limited = await startTestProxy(up.url, { failFirst: 1_000, failStatus: 429 });
  t.after(() => limited.close());
  await pb.addUpstream('limited', { url: limited.url, priority: 0 });
  await pb.addUpstream('limited', { url: up.url, priority: 1 });
  assert.equal((await get('acme/limited/app/manifests/1')).status, 200);

  // only failing upstreams: a clear 502 naming the problem
  const down = await startTestProxy(up.url, { failFirst: 1_000, failStatus: 500 });
  t.after(() => down.close());
  await pb.addUpstream('down', { url: down.url });
  const bad = await get('acme/down/app/manifests/1');
  assert.equal(bad.status, 502);
  const err = (await bad.json()) as { errors: { code: string; message: string }[] };
  assert.equal(err.errors[0]!.code, 'UPSTREAM_UNAVAILABLE');
  assert.match(err.errors[0]!.message, /500/);

  // an upstream that never answers: 502 after the timeout and retries, not a hang
  const silent = await startTestProxy(up.url, { hang: true });
  t.after(() => silent.close());
  await pb.addUpstream('silent', { url: silent.url });
  let started = Date.now();
  assert.equal((await get('acme/silent/app/manifests/1')).status, 502);
  const took = Date.now() - started;
  assert.ok(took >= 700 && took < 10_000, `timed out in ${took} ms`);

  // a blob body that stalls half way: the client's stream is aborted, nothing is stored
  const stall = await startTestProxy(up.url, { stallBlobs: true });
  t.after(() => stall.close());
  await pb.addUpstream('stall', { url: stall.url });
  started = Date.now();
  const res = await get(`acme/stall/app/blobs/${layer.digest}`);
  assert.equal(res.status, 200);
  await assert.rejects(async () => {
    for await (const _ of res.body as unknown as AsyncIterable<Uint8Array>) void _;
  });
  assert.ok(Date.now() - started < 10_000);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await pb.berth.store.stat(layer.digest), undefined, 'nothing cached');
});
