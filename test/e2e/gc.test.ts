/**
 * End-to-end garbage collection with the real skopeo and the real `berth` CLI against Berth as
 * a child process (grace 0): push two images sharing layers, delete one, `berth gc run`, and
 * the deleted image's own bytes are gone from disk while the other image pulls intact.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { berthCli } from '../auth/helpers.ts';
import { tempDir } from '../helpers/e2e.ts';
import { buildImage, reachableBlobs, resolveTag } from '../helpers/oci-layout.ts';
import { startBerth } from '../helpers/server.ts';
import { createSkopeo } from '../helpers/skopeo.ts';

const onDisk = (dataDir: string, digest: string) => path.join(dataDir, 'storage', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
const exists = (p: string) => fsp.access(p).then(() => true, () => false);

test('skopeo push, skopeo delete, berth gc run: bytes gone from disk, the image sharing layers intact', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  // Reviews only when `berth gc run` asks (the background poll is an hour away).
  const srv = await startBerth({ orgs: ['acme'], env: { BERTH_GC_GRACE_SECONDS: '0', BERTH_JOBS_POLL_INTERVAL_MS: '3600000' } });
  t.after(() => srv.stop());
  await sk.login(srv.address, srv.admin.username, srv.admin.password);
  const work = await tempDir(t, 'gc');
  const src = path.join(work, 'src');
  const shared = await buildImage(src, { layers: [{ size: 200_000 }, { size: 3000 }] }, 'shared');
  const own = await buildImage(src, { layers: [{ size: 100_000 }] }, 'own');
  const ref = `docker://${srv.address}/acme/prod/app`;
  await sk.copy(`oci:${src}:shared`, `${ref}:keep`, ['--preserve-digests']);
  await sk.copy(`oci:${src}:shared`, `docker://${srv.address}/acme/prod/other:v1`, ['--preserve-digests']);
  await sk.copy(`oci:${src}:own`, `${ref}:drop`, ['--preserve-digests']);
  const ownBlobs = [own.config.digest, ...own.layers.map((l) => l.descriptor.digest)];
  const sharedBlobs = [shared.config.digest, ...shared.layers.map((l) => l.descriptor.digest)];
  for (const d of [...ownBlobs, ...sharedBlobs]) assert.ok(await exists(onDisk(srv.dataDir, d)), `${d} stored`);

  const key = await fetch(`${srv.url}/api/v1/user/api-keys`, {
    method: 'POST',
    headers: { Authorization: srv.adminAuthorization, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'gc test' }),
  });
  const env = { BERTH_URL: srv.url, BERTH_API_KEY: String(((await key.json()) as { secret: string }).secret), HOME: work, XDG_CONFIG_HOME: work };

  await sk.delete(`${ref}:drop`);
  // `shared` is tagged in two images: deleting its tag in one leaves it named by the other.
  await sk.delete(`${ref}:keep`);

  const explainBefore = await berthCli(['gc', 'explain', own.layers[0]!.descriptor.digest], env);
  assert.equal(explainBefore.code, 0, explainBefore.stderr);
  assert.match(explainBefore.stdout, /collectable/);

  const dry = await berthCli(['gc', 'run', '--dry-run'], env);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /would free/);
  for (const d of ownBlobs) assert.ok(await exists(onDisk(srv.dataDir, d)), `dry run left ${d}`);

  const run = await berthCli(['--json', 'gc', 'run'], env);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as { deleted: { blobs: number; manifests: number; bytes: number } };
  assert.equal(report.deleted.manifests, 0, 'skopeo delete removed the manifests by digest already');
  assert.equal(report.deleted.blobs, ownBlobs.length, run.stdout);
  for (const d of ownBlobs) assert.equal(await exists(onDisk(srv.dataDir, d)), false, `${d} deleted from disk`);
  for (const d of sharedBlobs) assert.ok(await exists(onDisk(srv.dataDir, d)), `${d} (named by acme/prod/other) kept`);

  const explain = await berthCli(['gc', 'explain', shared.layers[0]!.descriptor.digest], env);
  assert.equal(explain.code, 0, explain.stderr);
  assert.match(explain.stdout, /kept — named by 1 manifest/);
  assert.match(explain.stdout, /acme\/prod\/other/);

  const status = await berthCli(['--json', 'gc', 'status'], env);
  assert.equal(status.code, 0, status.stderr);
  assert.ok((JSON.parse(status.stdout) as { blobs: { state: string }[] }).blobs.some((b) => b.state === 'gone'));

  const out = path.join(work, 'out');
  await sk.copy(`docker://${srv.address}/acme/prod/other:v1`, `oci:${out}:v1`, ['--preserve-digests']);
  assert.equal((await resolveTag(out, 'v1')).digest, shared.manifest.digest);
  assert.deepEqual(await reachableBlobs(out, await resolveTag(out, 'v1')), await reachableBlobs(src, await resolveTag(src, 'shared')));

  const jobs = await berthCli(['jobs', 'counts'], env);
  assert.equal(jobs.code, 0, jobs.stderr);
});
