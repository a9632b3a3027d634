/**
 * SBOM for pull-through-cached images (docs/supply-chain.md): an image manifest the cache
 * stores enqueues its SBOM job in the same transaction, as a push does; the job fetches the
 * layers the cache does not hold yet, so the image gets an inventory and its SBOM referrer,
 * and the pull policies that need a report decide cached images too.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { eventually } from '../events/helpers.ts';
import { alpineBase, gzip, tarOf } from '../supply-chain/layers.ts';
import { pushUpstreamImage, startDockerRegistry, startProxyBerth } from './helpers.ts';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('a pull-through-cached image gets its inventory and SBOM, its layers fetched by the job', async (t) => {
  const up = await startDockerRegistry();
  t.after(() => up.stop());
  const pb = await startProxyBerth({}, { sbom: true });
  t.after(() => pb.close());

  const layer = gzip(await tarOf(alpineBase()));
  const { digest } = await pushUpstreamImage(up.url, 'library/alpine', '3', layer, 'application/vnd.oci.image.layer.v1.tar+gzip');
  await pb.addUpstream('mirror', { url: up.url, prefix: 'hub/' });

  // Only the manifest is pulled: the layer is never asked for by a client.
  const res = await fetch(`${pb.url}/v2/acme/mirror/hub/library/alpine/manifests/3`, { headers: { authorization: pb.auth } });
  assert.equal(res.status, 200);
  await res.arrayBuffer();

  const registry = pb.berth.registry;
  const inv = await eventually(() => registry.inventories.inventoryOf(digest), 20_000, `inventory of the cached ${digest}`);
  assert.equal(inv.os?.id, 'alpine');
  assert.ok(inv.packages.length > 0);
  assert.equal(registry.sbom.stats.layersRead, 1);
  // The layer is now in the cache, and the SBOM is a referrer of the cached image.
  const img = await pb.berth.meta.findImage('acme/mirror/hub/library/alpine');
  assert.ok(await pb.berth.meta.findImageBlob(img!.id, sha256(layer)), 'the job cached the layer');
  // (the inventory is stored just before the SBOM is pushed)
  const status = await eventually(async () => {
    const s = await pb.api('GET', '/api/v1/repos/acme/mirror/sbom/status?image=hub/library/alpine&ref=3');
    assert.equal(s.status, 200, JSON.stringify(s.json));
    return s.json.state === 'generated' ? s.json : undefined;
  }, 10_000, 'the SBOM of the cached image');
  assert.ok(status.sbom);
});
