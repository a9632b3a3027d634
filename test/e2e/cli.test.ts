/**
 * End-to-end: the ways of starting Berth a user sees in the docs — `npx berth serve` with flags,
 * and `berth serve` configured only by BERTH_LISTEN / BERTH_DATA.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/e2e.ts';
import { buildImage } from '../helpers/oci-layout.ts';
import { freePort, startBerth, type BerthServer } from '../helpers/server.ts';
import { createSkopeo } from '../helpers/skopeo.ts';

/** GET /v2/: anonymous → 401 Bearer challenge; as the administrator → 200; both registry/2.0. */
async function assertV2(srv: BerthServer): Promise<void> {
  const anon = await fetch(`${srv.url}/v2/`);
  await anon.arrayBuffer();
  assert.equal(anon.status, 401);
  assert.equal(anon.headers.get('docker-distribution-api-version'), 'registry/2.0');
  assert.match(anon.headers.get('www-authenticate') ?? '', /^Bearer realm="[^"]+\/v2\/token"/);
  const res = await fetch(`${srv.url}/v2/`, { headers: { Authorization: srv.adminAuthorization } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  assert.deepEqual(await res.json(), {});
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  );
}

async function refused(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return false;
  } catch {
    return true;
  }
}

test('`npx berth serve --listen 127.0.0.1:PORT --data DIR` serves GET /v2/ (200 registry/2.0 with credentials)', { timeout: 120_000 }, async (t) => {
  const srv = await startBerth({ launcher: 'npx', startTimeoutMs: 60_000 });
  t.after(() => srv.stop());
  await assertV2(srv);
  assert.ok(await exists(path.join(srv.dataDir, 'berth.db')), '--data DIR holds the database');
  assert.ok(await exists(path.join(srv.dataDir, 'storage')), '--data DIR holds the blob store');

  await srv.stop();
  assert.ok(await refused(`${srv.url}/v2/`), 'nothing listens after stop (npx and its node child are gone)');
});

test('`berth serve` configured only by BERTH_LISTEN and BERTH_DATA', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const srv = await startBerth({ configVia: 'env', orgs: ['acme'] });
  t.after(() => srv.stop());
  await assertV2(srv);
  await sk.login(srv.address, srv.admin.username, srv.admin.password);

  // a push lands in BERTH_DATA
  const work = await tempDir(t, 'env');
  const image = await buildImage(path.join(work, 'src'), { layers: [{ size: 10_000 }] }, 'v1');
  await sk.copy(`oci:${path.join(work, 'src')}:v1`, `docker://${srv.address}/acme/prod/env:v1`, ['--preserve-digests']);
  const hex = image.layers[0]!.descriptor.digest.slice('sha256:'.length);
  assert.ok(await exists(path.join(srv.dataDir, 'berth.db')));
  assert.ok(await exists(path.join(srv.dataDir, 'storage', 'blobs', 'sha256', hex.slice(0, 2), hex)), 'layer stored under BERTH_DATA');
  assert.deepEqual(await sk.listTags(`docker://${srv.address}/acme/prod/env`), ['v1']);
});

test('--listen and --data flags win over BERTH_LISTEN and BERTH_DATA', async (t) => {
  const otherPort = await freePort();
  const otherData = await tempDir(t, 'other-data');
  const srv = await startBerth({ env: { BERTH_LISTEN: `127.0.0.1:${otherPort}`, BERTH_DATA: otherData } });
  t.after(() => srv.stop());
  await assertV2(srv);
  assert.ok(await refused(`http://127.0.0.1:${otherPort}/v2/`), 'BERTH_LISTEN ignored when --listen is given');
  assert.deepEqual(await fsp.readdir(otherData), [], 'BERTH_DATA ignored when --data is given');
  assert.ok(await exists(path.join(srv.dataDir, 'berth.db')));
});
