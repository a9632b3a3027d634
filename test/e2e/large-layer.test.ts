/**
 * End-to-end: a 1 GiB layer pushed and pulled with skopeo while the server's resident memory
 * is sampled from /proc/<pid>/status every 100 ms. Berth streams blobs, so its peak RSS must
 * stay below 224 MB, and grow by far less than the blob over its idle size.
 *
 * The server runs as installed: `node bin/berth.js serve` on a fresh dist/ build (built here
 * when older than src/). Through the tsx loader instead, the idle server alone is ~130-145 MiB
 * and the 200 MB budget would measure the loader rather than Berth.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { hashUrl, mib, tempDir } from '../helpers/e2e.ts';
import { MEDIA_TYPES, blobPath, buildImage, readBlob, resolveTag, sha256, sha256File } from '../helpers/oci-layout.ts';
import { ensureBuild, runsBuild, sampleRss, startBerth } from '../helpers/server.ts';
import { createSkopeo } from '../helpers/skopeo.ts';

const LAYER_BYTES = 1024 * 1024 * 1024; // 1 GiB of random content
/**
 * The whole server, idle size included. The idle compiled server is ~110 MiB since the
 * supply-chain, domain and limit features landed (their heavy libraries load on first use);
 * what proves streaming is the growth budget below.
 */
const RSS_BUDGET = 224 * 1000 * 1000; // 224 MB
/** Growth over the idle RSS allowed while moving the 1 GiB blob (GC slack of 1 MiB chunks, not the blob). */
const GROWTH_BUDGET = 96 * 1024 * 1024;

test('1 GiB uncompressed layer: skopeo push and pull with identical digests, server peak RSS < 224 MB, growth < 96 MiB', { timeout: 10 * 60_000 }, async (t) => {
  const started = Date.now();
  const built = await ensureBuild();
  assert.ok(runsBuild(), 'bin/berth.js runs the compiled build');
  t.diagnostic(built ? 'dist/ was older than src/: built it (tsc -p tsconfig.build.json)' : 'dist/ is fresh');
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  await sk.login(srv.address, srv.admin.username, srv.admin.password);
  const auth = { Authorization: srv.adminAuthorization };
  const work = await tempDir(t, 'large');
  const src = path.join(work, 'src');
  const out = path.join(work, 'out');

  // an uncompressed tar layer: no CPU spent on gzip, diff_id = digest
  let t0 = Date.now();
  const image = await buildImage(src, { layers: [{ size: LAYER_BYTES, gzip: false }] }, 'v1');
  const layer = image.layers[0]!;
  assert.equal(layer.descriptor.mediaType, MEDIA_TYPES.layerTar);
  assert.equal(layer.diffId, layer.descriptor.digest);
  assert.ok(layer.descriptor.size > LAYER_BYTES);
  const buildMs = Date.now() - t0;

  const name = 'acme/prod/big';
  const ref = `docker://${srv.address}/${name}`;
  const rss = await sampleRss(srv.pid, 100);
  let pushMs = 0;
  let pullMs = 0;
  let report;
  try {
    t0 = Date.now();
    const pushDigestFile = path.join(work, 'push.digest');
    await sk.copy(`oci:${src}:v1`, `${ref}:v1`, ['--preserve-digests', '--digestfile', pushDigestFile], { timeoutMs: 5 * 60_000 });
    pushMs = Date.now() - t0;
    assert.equal((await fsp.readFile(pushDigestFile, 'utf8')).trim(), image.manifest.digest);

    t0 = Date.now();
    const pullDigestFile = path.join(work, 'pull.digest');
    await sk.copy(`${ref}:v1`, `oci:${out}:v1`, ['--preserve-digests', '--dest-oci-accept-uncompressed-layers', '--digestfile', pullDigestFile], {
      timeoutMs: 5 * 60_000,
    });
    pullMs = Date.now() - t0;
    assert.equal((await fsp.readFile(pullDigestFile, 'utf8')).trim(), image.manifest.digest);
  } finally {
    report = await rss.stop();
    const line =
      `1 GiB layer: build ${buildMs} ms, push ${pushMs} ms, pull ${pullMs} ms; server RSS first ${mib(report.firstBytes)}, ` +
      `peak sampled ${mib(report.peakBytes)} (${report.samples} samples), VmHWM ${mib(report.hwmBytes)}`;
    t.diagnostic(line);
  }

  // digests: manifest as served, layer bytes as stored by Berth and as pulled
  const raw = await sk.inspectRaw(`${ref}:v1`);
  assert.ok(raw.equals(image.manifestBytes), 'manifest bytes served exactly as pushed');
  assert.equal(sha256(raw), image.manifest.digest);
  const head = await fetch(`${srv.url}/v2/${name}/blobs/${layer.descriptor.digest}`, { method: 'HEAD', headers: auth });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get('content-length'), String(layer.descriptor.size));
  assert.equal(head.headers.get('docker-content-digest'), layer.descriptor.digest);
  const stored = path.join(srv.dataDir, 'storage', 'blobs', 'sha256', layer.descriptor.digest.slice(7, 9), layer.descriptor.digest.slice(7));
  assert.equal((await fsp.stat(stored)).size, layer.descriptor.size, 'blob stored whole on disk');

  assert.equal((await resolveTag(out, 'v1')).digest, image.manifest.digest);
  assert.ok((await readBlob(out, image.manifest.digest)).equals(image.manifestBytes));
  assert.ok((await readBlob(out, image.config.digest)).equals(image.configBytes));
  const pulledLayer = blobPath(out, layer.descriptor.digest);
  assert.equal((await fsp.stat(pulledLayer)).size, layer.descriptor.size);
  assert.equal(await sha256File(pulledLayer), layer.descriptor.digest, 'pulled 1 GiB layer hashes to its digest');

  // a ranged read from the middle of the big blob
  const ranged = await hashUrl(`${srv.url}/v2/${name}/blobs/${layer.descriptor.digest}`, { ...auth, Range: 'bytes=536870912-537919487' });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.size, 1024 * 1024);
  const fh = await fsp.open(pulledLayer, 'r');
  try {
    const buf = Buffer.alloc(1024 * 1024);
    await fh.read(buf, 0, buf.length, 536870912);
    assert.equal(ranged.digest, sha256(buf), 'range bytes match the layer');
  } finally {
    await fh.close();
  }

  // VmHWM is the kernel's own peak: it also catches a spike between two samples
  const peak = Math.max(report.peakBytes, report.hwmBytes);
  assert.ok(
    peak < RSS_BUDGET,
    `server peak RSS ${mib(peak)} must stay below ${RSS_BUDGET / 1e6} MB while moving a ${mib(layer.descriptor.size)} blob`,
  );
  assert.ok(
    peak - report.firstBytes < GROWTH_BUDGET,
    `server RSS grew by ${mib(peak - report.firstBytes)} over its idle ${mib(report.firstBytes)}: not constant memory`,
  );
  t.diagnostic(`total ${Date.now() - started} ms`);
});
