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
import { startDockerRegistry, startProxyBerth } from './helpers.ts';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function pushBlob(url: string, repo: string, blob: Buffer): Promise<void> {
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(start.status, 202);
  const loc = new URL(start.headers.get('location')!, url);
  loc.searchParams.set('digest', sha256(blob));
  const put = await fetch(loc, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(blob) });
  assert.equal(put.status, 201, await put.text());
}

test('a pull-through-cached image gets its inventory and SBOM, its layers fetched by the job', async (t) => {
  const up = await startDockerRegistry();
  t.after(() => up.stop());
  const pb = await startProxyBerth();
  t.after(() => pb.close());

  const layer = gzip(await tarOf(alpineBase()));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  await pushBlob(up.url, 'library/alpine', layer);
  await pushBlob(up.url, 'library/alpine', config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  const put = await fetch(`${up.url}/v2/library/alpine/manifests/3`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: new Uint8Array(manifest) });
  assert.equal(put.status, 201, await put.text());
  const digest = sha256(manifest);
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
