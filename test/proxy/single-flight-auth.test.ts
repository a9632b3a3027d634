/**
 * Single-flight shares bytes, never authorisation: while repository `a`'s cold pull of a blob is
 * in flight, repository `b` — same upstream URL, same image, but credentials the upstream
 * refuses — asks for the same digest. `b` must get the refusal its own upstream gives, and the
 * blob must not be linked into `b`. Repository `c`, with the same (valid) credentials as `a`,
 * shares the one upstream fetch.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SqlMetadataStore } from '../../src/metadata/sql/store.ts';
import { tempDir } from '../helpers/e2e.ts';
import { buildImage } from '../helpers/oci-layout.ts';
import { createSkopeo } from '../helpers/skopeo.ts';
import { startDockerRegistry, startProxyBerth, startTestProxy } from './helpers.ts';

test('a request joining an in-flight blob fetch is entitled through its own upstream credentials', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const up = await startDockerRegistry({ htpasswd: { username: 'mirror', password: 's3cret-upstream' } });
  t.after(() => up.stop());
  await sk.login(up.address, 'mirror', 's3cret-upstream');
  const src = await tempDir(t, 'sf-auth-src');
  const img = await buildImage(src, { layers: [{ size: 300_000, gzip: false }] }, 'v1');
  await sk.copy(`oci:${src}:v1`, `docker://${up.address}/team/app:1`, ['--preserve-digests']);
  const layer = img.layers[0]!.descriptor;

  // one URL for every repository: the blob GETs are held 1.5 s, so the first fetch is in flight
  const slow = await startTestProxy(up.url, { delayBlobsMs: 1500 });
  t.after(() => slow.close());
  const pb = await startProxyBerth();
  t.after(() => pb.close());
  await pb.addUpstream('a', { url: slow.url, username: 'mirror', password: 's3cret-upstream' });
  await pb.addUpstream('b', { url: slow.url, username: 'mirror', password: 'wrong-password' });
  await pb.addUpstream('c', { url: slow.url, username: 'mirror', password: 's3cret-upstream' });
  const get = (repo: string) => fetch(`${pb.url}/v2/acme/${repo}/team/app/blobs/${layer.digest}`, { headers: { authorization: pb.auth } });

  const first = get('a');
  await new Promise((r) => setTimeout(r, 400)); // a's fetch is now waiting on the upstream
  const [b, c] = await Promise.all([get('b'), get('c')]);
  const a = await first;

  assert.equal(a.status, 200);
  assert.equal(Buffer.from(await a.arrayBuffer()).length, layer.size);
  assert.equal(c.status, 200, 'same credentials: shares the fetch');
  assert.equal(Buffer.from(await c.arrayBuffer()).length, layer.size);
  assert.equal(slow.blobGets(layer.digest), 1, 'one upstream fetch for a and c');

  assert.equal(b.status, 502, "b's own upstream refuses its credentials");
  const err = (await b.json()) as { errors: { code: string; message: string }[] };
  assert.equal(err.errors[0]!.code, 'UPSTREAM_UNAVAILABLE');
  assert.match(err.errors[0]!.message, /401/);

  const db = (pb.berth.meta as SqlMetadataStore).db;
  const linked = async (repo: string) => {
    const image = await pb.berth.meta.findImage(`acme/${repo}/team/app`);
    if (!image) return false;
    const row = await db.selectFrom('image_blobs').select('digest').where('image_id', '=', image.id).where('digest', '=', layer.digest).executeTakeFirst();
    return row !== undefined;
  };
  assert.equal(await linked('a'), true);
  assert.equal(await linked('c'), true);
  assert.equal(await linked('b'), false, 'nothing linked into b');
  // and later, with the bytes stored, b still gets nothing without its own entitlement…
  assert.equal((await get('b')).status, 502);
  assert.equal(await linked('b'), false);
  // …while a repository its upstream entitles gets them linked, without a second download
  await pb.addUpstream('d', { url: slow.url, username: 'mirror', password: 's3cret-upstream' });
  const d = await get('d');
  assert.equal(d.status, 200);
  assert.equal(Buffer.from(await d.arrayBuffer()).length, layer.size);
  assert.equal(await linked('d'), true);
  assert.equal(slow.blobGets(layer.digest), 1, 'the stored bytes were shared');
});
