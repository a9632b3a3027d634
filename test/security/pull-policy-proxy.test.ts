/**
 * Pull policies through the pull-through cache (docs/security.md, "Pull policies"): a manifest
 * that is not here yet, read as /blobs/<manifest digest>, comes from the upstream only through
 * the manifest path and so meets the decision chain; HEAD stays free, layers still stream.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { pushUpstreamBlob, pushUpstreamImage, startDockerRegistry, startProxyBerth } from '../proxy/helpers.ts';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('a manifest from the upstream read as a blob meets the pull policies; HEAD stays free', async (t) => {
  const up = await startDockerRegistry();
  t.after(() => up.stop());
  const pb = await startProxyBerth();
  t.after(() => pb.close());

  const layer = randomBytes(2000);
  const { digest, manifest, config } = await pushUpstreamImage(up.url, 'library/app', 'v1', layer, 'application/vnd.oci.image.layer.v1.tar');
  // Many registries serve a manifest's bytes on /blobs/<digest> too; docker-registry does once
  // they are also pushed as a blob.
  await pushUpstreamBlob(up.url, 'library/app', manifest);
  await pb.addUpstream('mirror', { url: up.url, prefix: 'hub/' });

  // The same bytes only as a blob upstream (its /manifests does not know them), pulled through
  // a caching upstream before the policy existed: now a plain cached blob. And through a
  // non-caching upstream: streamed from the upstream on each GET.
  await pushUpstreamBlob(up.url, 'library/plain', manifest);
  await pb.addUpstream('early', { url: up.url, prefix: 'hub/' });
  await pb.addUpstream('live', { url: up.url, prefix: 'hub/', cache: false });
  const early = await fetch(`${pb.url}/v2/acme/early/hub/library/plain/blobs/${digest}`, { headers: { authorization: pb.auth } });
  assert.equal(early.status, 200, 'no policy yet');
  await early.arrayBuffer();
  // A policy that refuses this one manifest to everybody (not a content policy: no push exemption).
  const decided: string[] = [];
  pb.berth.registry.pullPolicies.register({
    name: 'test-refuse',
    content: false,
    uncached: true,
    version: (owner) => (owner === 'acme' ? '1' : undefined),
    decide: async (pull) => {
      decided.push(pull.digest);
      return pull.digest === digest ? 'test-refuse: this manifest is refused' : undefined;
    },
  });
  const base = `${pb.url}/v2/acme/mirror/hub/library/app`;
  const headers = { authorization: pb.auth };

  const head = await fetch(`${base}/blobs/${digest}`, { method: 'HEAD', headers });
  assert.equal(head.status, 200, 'HEAD reveals no content and stays free');
  assert.deepEqual(decided, []);

  const cold = await fetch(`${base}/blobs/${digest}`, { headers });
  const body = await cold.text();
  assert.equal(cold.status, 403, `the upstream's manifest was served as a blob without the policies: ${body.slice(0, 200)}`);
  assert.equal(JSON.parse(body).errors[0].code, 'DENIED');
  assert.deepEqual(decided, [digest]);
  // Now cached: the local /blobs path refuses it too, as does /manifests.
  assert.equal((await fetch(`${base}/blobs/${digest}`, { headers })).status, 403);
  assert.equal((await fetch(`${base}/manifests/${digest}`, { headers })).status, 403);

  for (const repo of ['early', 'live']) {
    const res = await fetch(`${pb.url}/v2/acme/${repo}/hub/library/plain/blobs/${digest}`, { headers });
    assert.equal(res.status, 403, `${repo}: a manifest stored or streamed as a plain blob escaped the policies`);
    await res.arrayBuffer();
    const h = await fetch(`${pb.url}/v2/acme/${repo}/hub/library/plain/blobs/${digest}`, { method: 'HEAD', headers });
    assert.equal(h.status, 200, `${repo}: HEAD stays free`);
  }

  // Blobs that are no manifest still come through, byte for byte.
  const got = await fetch(`${base}/blobs/${sha256(layer)}`, { headers });
  assert.equal(got.status, 200);
  assert.deepEqual(Buffer.from(await got.arrayBuffer()), layer);
  const cfg = await fetch(`${base}/blobs/${sha256(config)}`, { headers });
  assert.equal(cfg.status, 200);
  assert.deepEqual(Buffer.from(await cfg.arrayBuffer()), config);
});
