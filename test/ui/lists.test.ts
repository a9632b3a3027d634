/**
 * Lists and the edges of the web UI in chromium against a real Berth child process: the image
 * list's kind, size and last push; tag sorting by name, version and push time (kept in the URL
 * with paging); the UI's 404 page for paths that are not the app's (and JSON 404s for scripts
 * and registry clients); an archive upload with the bytes' own progress and gzip compression.
 * Screenshots go to a temporary folder, or to $BERTH_SCREENSHOTS_DIR.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { buildImage } from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { createSkopeo } from '../helpers/skopeo.ts';
import { ARGS, CHROMIUM, ensureWebBuild } from './helpers.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A one-layer image pushed over /v2 as the administrator. */
async function push(srv: BerthServer, name: string, tag: string, layerBytes = 64): Promise<void> {
  const auth = { Authorization: srv.adminAuthorization };
  const layer = randomBytes(layerBytes);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(4).toString('hex') }));
  for (const blob of [layer, config]) {
    const r = await fetch(`${srv.url}/v2/${name}/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: blob });
    assert.equal(r.status, 201, await r.text());
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
  });
  const r = await fetch(`${srv.url}/v2/${name}/manifests/${tag}`, { method: 'PUT', headers: { ...auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  assert.equal(r.status, 201, await r.text());
}

test('[ui] image list columns, tag sorting, the 404 page for other paths, upload progress with compression', { timeout: 300_000 }, async (t) => {
  await ensureWebBuild();
  const shots = process.env.BERTH_SCREENSHOTS_DIR ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-ui-shots-')));
  mkdirSync(shots, { recursive: true });
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-ui-lists-'));
  t.after(() => fsp.rm(work, { recursive: true, force: true }));
  const created = await fetch(`${srv.url}/api/v1/owners/acme/repos`, { method: 'POST', headers: { Authorization: srv.adminAuthorization, 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'prod' }) });
  assert.equal(created.status, 201);
  const order = ['1.9.0', 'latest', '1.10.0', '2.0.0-rc.1', '2.0.0'];
  for (const tag of order) {
    await push(srv, 'acme/prod/app', tag, 1500);
    await new Promise((r) => setTimeout(r, 5));
  }
  await push(srv, 'acme/prod/tools/lint', 'v1');
  // a legacy docker save (uncompressed layers) for the upload
  const layout = path.join(work, 'src');
  const image = await buildImage(layout, { layers: [{ size: 3 * 1024 * 1024, gzip: false }] }, 'v1');
  const archive = path.join(work, 'legacy.tar');
  await sk.copy(`oci:${layout}:v1`, `docker-archive:${archive}:example/thing:v1`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  t.after(() => browser.close());
  const page = await (await browser.newContext({ viewport: { width: 1100, height: 800 } })).newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  // Paths that are not the app's: a browser gets the UI's 404 page (status 404), with its own
  // breadcrumb whose Home leads into the app; scripts and registry clients get JSON.
  for (const p of ['/nope', '/v2x', '/favicon.ico', '/some/page.html', '/api/v1/nope']) {
    const res = await page.goto(`${srv.url}${p}`);
    assert.equal(res?.status(), 404, p);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    await page.getByText(`There is no page at ${p}.`).waitFor();
  }
  await shot(page, 'not-found');
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Home' }).click();
  await page.getByRole('heading', { name: 'Owners' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/');
  for (const p of ['/nope', '/favicon.ico', '/api/v1/nope', '/v2/nope']) {
    const res = await fetch(`${srv.url}${p}`, { headers: { Accept: '*/*' } });
    assert.equal(res.status, 404, p);
    assert.match(res.headers.get('content-type') ?? '', /json/, p);
  }
  const v2 = await fetch(`${srv.url}/v2/nope`, { headers: { Accept: 'text/html' } });
  assert.equal(v2.status, 404);
  assert.match(v2.headers.get('content-type') ?? '', /json/, '/v2 is for registry clients: always JSON');

  // sign in
  await page.goto(`${srv.url}/#/login`);
  await page.getByLabel('Username').fill(srv.admin.username);
  await page.getByLabel('Password').fill(srv.admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();

  // The image list: kind, tags, size and the last push with its tag
  await page.goto(`${srv.url}/#/r/acme/prod`);
  const images = page.getByRole('table', { name: 'Images' });
  const app = images.getByRole('row').filter({ has: page.getByRole('link', { name: 'app', exact: true }) });
  await app.waitFor();
  const cells = await app.getByRole('cell').allInnerTexts();
  assert.equal(cells[1], 'Container image');
  assert.equal(cells[2], '5');
  assert.match(cells[3]!, /^\d+(\.\d+)? (B|KB)$/);
  assert.match(cells[4]!, /\(2\.0\.0\)$/, 'the last push names its tag');
  await images.getByRole('row').filter({ has: page.getByRole('link', { name: 'tools/lint' }) }).waitFor();
  await shot(page, 'images');

  // Tags: by name, then by version (highest first), then by push time (newest first)
  await app.getByRole('link', { name: 'app', exact: true }).click();
  const tagNames = async () => (await page.getByRole('table', { name: 'Tags' }).locator('tbody tr td:first-child').allInnerTexts()).map((s) => s.trim());
  /** Waits (up to 5 s) for the table to show `expected`: the page re-renders after the URL changes. */
  const expectTags = async (expected: string[]) => {
    let names: string[] = [];
    for (let i = 0; i < 50; i++) {
      names = await tagNames();
      if (JSON.stringify(names) === JSON.stringify(expected)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(names, expected);
  };
  await page.getByRole('table', { name: 'Tags' }).waitFor();
  await expectTags(['1.10.0', '1.9.0', '2.0.0', '2.0.0-rc.1', 'latest']);
  await page.getByLabel('Sort by').selectOption('semver');
  await page.waitForURL(/sort=semver/);
  await expectTags(['2.0.0', '2.0.0-rc.1', '1.10.0', '1.9.0', 'latest']);
  await shot(page, 'tags-semver');
  await page.getByLabel('Sort by').selectOption('time');
  await page.waitForURL(/sort=time/);
  await expectTags([...order].reverse());
  // search keeps the sort
  await page.getByLabel('Search tags').fill('2.0');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/q=2\.0/);
  assert.match(page.url(), /sort=time/);

  // Upload: the bytes' own progress, then the import's; gzip-compressed layers
  await page.goto(`${srv.url}/#/r/acme/prod/upload`);
  // The page renders again once its API calls answer: fill the form that stays.
  await page.waitForLoadState('networkidle');
  await page.locator('input[type=file]').setInputFiles(archive);
  await page.getByLabel('Image name (optional)').fill('thing');
  await page.getByLabel('Tag (optional)').fill('gz');
  await page.getByLabel('Layers').selectOption('gzip');
  // every text the upload's byte counter shows, as it changes
  await page.evaluate(() => {
    const seen: string[] = ((window as unknown as { seen: string[] }).seen = []);
    new MutationObserver(() => {
      const t = document.querySelector('[data-testid="upload-bytes"]')?.textContent;
      if (t && seen[seen.length - 1] !== t) seen.push(t);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByText('Import done.').waitFor({ timeout: 60_000 });
  const seen = await page.evaluate(() => (window as unknown as { seen: string[] }).seen);
  assert.ok(seen.some((s) => /^Uploading legacy\.tar: [\d.]+ [kKM]?B of 3\.\d+ MB sent$/.test(s)), JSON.stringify(seen));
  assert.ok(seen.some((s) => /^Uploaded legacy\.tar \(3\.\d+ MB\)\.$/.test(s)), JSON.stringify(seen));
  await page.getByText(/compressed with gzip/).waitFor();
  await shot(page, 'upload-compressed');
  const m = (await (
    await fetch(`${srv.url}/v2/acme/prod/thing/manifests/gz`, { headers: { Authorization: srv.adminAuthorization, Accept: 'application/vnd.docker.distribution.manifest.v2+json' } })
  ).json()) as { config: { digest: string }; layers: { mediaType: string }[] };
  assert.equal(m.config.digest, image.config.digest);
  assert.deepEqual(m.layers.map((l) => l.mediaType), ['application/vnd.docker.image.rootfs.diff.tar.gzip']);

  assert.deepEqual(errors, [], 'no uncaught errors in the page');
});
