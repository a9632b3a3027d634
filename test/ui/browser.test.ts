/**
 * The web UI in a real browser: Debian's chromium driven by playwright-core against a real
 * Berth child process. Sign in, browse to a tag pushed by skopeo, see its layers and its
 * referrers (an SBOM attached through /v2), create an entitlement token, upload a
 * `docker-archive` made by skopeo and see the new tag, see the downloads chart of skopeo's pulls,
 * create and revoke an API key, sign out (the session's API key is revoked).
 * Saves screenshots of the main pages to a temporary folder, or to $BERTH_SCREENSHOTS_DIR (`npm run
 * screenshots` sets docs/screenshots). Never skips: a missing chromium fails.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildImage } from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { ARGS, CHROMIUM, ensureWebBuild } from './helpers.ts';

const SHOTS = process.env.BERTH_SCREENSHOTS_DIR ?? path.join(os.tmpdir(), 'berth-ui-screenshots');
import { createSkopeo } from '../helpers/skopeo.ts';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes an SBOM artifact whose subject is `subject`, through /v2 (what `oras attach` does). */
async function attachSbom(srv: BerthServer, name: string, subject: { mediaType: string; digest: string; size: number }): Promise<string> {
  const auth = { Authorization: srv.adminAuthorization };
  const config = Buffer.from('{}');
  const sbom = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'berth-ui-test' }));
  for (const blob of [config, sbom]) {
    const r = await fetch(`${srv.url}/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/octet-stream' }, body: blob });
    assert.equal(r.status, 201, `blob upload: ${await r.text()}`);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/spdx+json', digest: sha256(sbom), size: sbom.length, annotations: { 'org.opencontainers.image.title': 'sbom.spdx.json' } }],
      subject,
      annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
    }),
  );
  const digest = sha256(manifest);
  const r = await fetch(`${srv.url}/v2/${name}/manifests/${digest}`, { method: 'PUT', headers: { ...auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  assert.equal(r.status, 201, `manifest PUT: ${await r.text()}`);
  return digest;
}

async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), type: 'png', fullPage: true });
}

test('web UI in chromium: sign in, browse to a skopeo-pushed tag, token, upload, sign out', { timeout: 300_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `chromium not found at ${CHROMIUM}: apt-get install -y chromium (or set CHROMIUM=/path)`);
  await ensureWebBuild();

  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  await sk.login(srv.address, srv.admin.username, srv.admin.password);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-ui-'));
  t.after(() => fsp.rm(work, { recursive: true, force: true }));

  // An image with two layers, pushed by skopeo, and an SBOM attached to it.
  const src = path.join(work, 'src');
  const image = await buildImage(src, { layers: [{ size: 2048 }, { size: 300 * 1024 }], annotations: { 'org.opencontainers.image.title': 'ui test' } }, 'v1');
  await sk.copy(`oci:${src}:v1`, `docker://${srv.address}/acme/prod/app:v1`, ['--preserve-digests']);
  const sbomDigest = await attachSbom(srv, 'acme/prod/app', { mediaType: image.manifest.mediaType, digest: image.manifest.digest, size: image.manifest.size });
  // Two skopeo pulls of the tag (manifest GETs: `pull` events for the downloads chart).
  for (const n of [1, 2]) await sk.copy(`docker://${srv.address}/acme/prod/app:v1`, `oci:${path.join(work, `pulled-${n}`)}:v1`);
  // A docker-archive (docker save format) to upload through the UI.
  const archive = path.join(work, 'image.tar');
  await sk.copy(`oci:${src}:v1`, `docker-archive:${archive}:example/thing:v1`);

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  // Anonymous: the private repository is not listed; the home page offers sign-in.
  await page.goto(`${srv.url}/`);
  await page.getByRole('heading', { name: 'Owners' }).waitFor();
  await page.getByText('You are browsing anonymously').waitFor();
  const anon = await page.request.get(`${srv.url}/api/v1/repos/acme/prod/images`);
  assert.equal(anon.status(), 404, 'a private repository is 404 to anonymous callers');

  // Sign in with username + password: an API key is created and kept in sessionStorage.
  await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Sign in' }).click();
  await page.getByLabel('Username').fill(srv.admin.username);
  await page.getByLabel('Password').fill(srv.admin.password);
  await shot(page, 'sign-in');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').filter({ hasText: srv.admin.username }).waitFor();
  const stored = await page.evaluate(() => sessionStorage.getItem('berth.session'));
  assert.match(stored ?? '', /berth_k_/, 'the session holds an API key, not the password');
  assert.ok(!stored!.includes(srv.admin.password), 'the password is not stored');

  // Owners → acme → prod → app → v1
  await page.goto(`${srv.url}/#/`);
  await page.getByRole('link', { name: 'acme' }).click();
  await page.getByRole('heading', { name: 'acme' }).waitFor();
  await page.getByTestId('owner-storage').filter({ hasText: /Storage used by acme: [\d.]+ (B|KiB|MiB) \(no quota\)/ }).waitFor();
  await page.getByRole('columnheader', { name: 'Storage' }).waitFor();
  await page.getByRole('link', { name: 'prod', exact: true }).click();
  await page.getByRole('heading', { name: 'acme/prod' }).waitFor();
  await page.getByTestId('storage').getByText('Used by this repository').waitFor();
  await page.getByRole('link', { name: 'app', exact: true }).click();
  await page.getByRole('heading', { name: 'acme/prod/app' }).waitFor();
  await page.getByRole('table', { name: 'Tags' }).getByRole('link', { name: 'v1', exact: true }).waitFor();
  await shot(page, 'tags');
  // search that matches nothing, then the tag again
  await page.getByRole('searchbox', { name: 'Search tags' }).fill('nomatch');
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('No tags contain "nomatch".').waitFor();
  assert.match(page.url(), /\?q=nomatch$/, 'the search is in the URL');
  await page.getByRole('link', { name: 'Clear' }).click();
  await page.getByRole('table', { name: 'Tags' }).getByRole('link', { name: 'v1', exact: true }).click();

  // Tag detail: kind, layers with sizes, referrers, pull commands.
  await page.getByTestId('kind').filter({ hasText: 'Container image' }).waitFor();
  await page.getByText(image.manifest.digest).first().waitFor();
  const layerRows = page.getByRole('table', { name: 'Layers' }).locator('tbody tr');
  assert.equal(await layerRows.count(), 2, 'two layers');
  const layerText = await layerRows.allInnerTexts();
  assert.ok(layerText[1]!.includes(image.layers[1]!.descriptor.digest.slice(7, 19)), 'layer digest shown');
  assert.match(layerText[1]!, /\d+(\.\d+)? KB/, 'layer size shown');
  // Berth's own SBOM line: the random layers hold no package, so none is attached.
  await page.getByTestId('sbom').filter({ hasText: /no packages found|being generated/ }).waitFor();
  const referrers = page.getByTestId('referrers');
  await referrers.getByText('SBOM').waitFor();
  await referrers.getByText(sbomDigest.slice(7, 19)).waitFor();
  await page.getByText(`docker pull ${srv.address}/acme/prod/app:v1`).waitFor();
  await page.getByText(`podman pull ${srv.address}/acme/prod/app:v1`).waitFor();
  await page.getByText(`oras pull ${srv.address}/acme/prod/app:v1`).waitFor();
  await page.getByText(`docker pull ${srv.address}/acme/prod/app@${image.manifest.digest}`).waitFor(); // by digest too
  await page.getByRole('button', { name: 'Copy digest', exact: true }).waitFor();
  await shot(page, 'tag-detail');
  // the referrer's own page is reachable by its digest and points back at its subject
  await referrers.getByRole('link', { name: sbomDigest.slice(7, 19) }).click();
  await page.getByTestId('kind').filter({ hasText: 'SBOM' }).waitFor();
  await page.getByRole('link', { name: image.manifest.digest }).waitFor();

  // Manage: create an entitlement token; its secret is shown once and works on /v2.
  await page.goto(`${srv.url}/#/r/acme/prod`);
  await page.getByRole('link', { name: /^Manage/ }).click();
  await page.getByRole('heading', { name: 'Manage acme/prod' }).waitFor();
  await page.getByLabel('Token name').fill('customer-a');
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = (await page.getByTestId('token-secret').innerText()).trim();
  assert.ok(secret.length > 20, 'secret shown');
  await page.getByRole('table', { name: 'Entitlement tokens' }).getByText('customer-a').waitFor();
  await shot(page, 'manage');
  const v2 = await fetch(`${srv.url}/v2/acme/prod/app/tags/list`, { headers: { Authorization: `Basic ${Buffer.from(`acme/prod:${secret}`).toString('base64')}` } });
  assert.equal(v2.status, 200, 'the new token reads the repository');

  // Upload the docker-archive and watch the import finish; the new tag is browsable.
  await page.goto(`${srv.url}/#/r/acme/prod/upload`);
  await page.getByRole('heading', { name: 'Upload to acme/prod' }).waitFor();
  await page.locator('input[type=file]').setInputFiles(archive);
  await page.getByLabel('Image name (optional)').fill('uploaded');
  await page.getByLabel('Tag (optional)').fill('v9');
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.getByText('Import done.').waitFor({ timeout: 60_000 });
  await shot(page, 'upload');
  await page.getByTestId('import-status').getByRole('link', { name: 'v9' }).click();
  await page.getByTestId('kind').filter({ hasText: 'Container image' }).waitFor();
  // Delete the uploaded tag, after confirming.
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Delete tag v9' }).click();
  await page.getByRole('heading', { name: 'acme/prod/uploaded' }).waitFor();
  await page.getByText('No tags.').waitFor();
  const gone = await fetch(`${srv.url}/v2/acme/prod/uploaded/manifests/v9`, { headers: { Authorization: srv.adminAuthorization } });
  assert.equal(gone.status, 404, 'the tag is deleted');
  // The repository page shows the downloads panel: a bar chart of pulls per day with at least
  // one bar (the skopeo pulls above; events are written in batches within ~200 ms), top tags.
  const dayBars = async () => {
    await page.goto(`${srv.url}/#/r/acme/prod`);
    await page.getByRole('link', { name: 'uploaded', exact: true }).waitFor();
    const downloads = page.getByTestId('downloads');
    await downloads.getByRole('heading', { name: 'Downloads' }).waitFor();
    return downloads;
  };
  let downloads = await dayBars();
  for (let i = 0; i < 20 && (await downloads.locator('rect.bar:not([data-pulls="0"])').count()) === 0; i++) {
    await new Promise((r) => setTimeout(r, 250));
    await page.goto(`${srv.url}/#/`);
    downloads = await dayBars();
  }
  const bars = downloads.locator('rect.bar:not([data-pulls="0"])');
  assert.ok((await bars.count()) >= 1, 'at least one bar in the downloads chart');
  assert.equal(await downloads.locator('rect.bar').count(), 30, 'one bar per day for 30 days');
  assert.match((await bars.first().locator('title').textContent()) ?? '', /^\d{4}-\d{2}-\d{2}: [1-9]\d* pulls?$/, 'each bar has a <title>');
  const hiddenRows = downloads.getByRole('table', { name: 'Pulls per day', includeHidden: true }).locator('tbody tr');
  assert.equal(await hiddenRows.count(), 30, 'a table fallback of the chart');
  await downloads.getByRole('table', { name: 'Top tags' }).getByRole('link', { name: 'app:v1' }).waitFor();
  // per user: skopeo pulled as admin
  await downloads.getByRole('table', { name: 'Pulls per user' }).getByRole('cell', { name: /^admin\b/ }).first().waitFor();
  await shot(page, 'repository');

  // API keys: create one (the secret is shown once), see it listed, revoke it (after a
  // confirmation): it no longer authenticates.
  await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'API keys' }).click();
  await page.getByRole('heading', { name: 'API keys', exact: true }).waitFor();
  await page.getByLabel('Key name').fill('ci-key');
  await page.getByLabel('Expires in (optional)').fill('30d');
  await page.getByRole('button', { name: 'Create API key' }).click();
  const keySecret = (await page.getByTestId('api-key-secret').innerText()).trim();
  assert.match(keySecret, /^berth_k_/, 'the API key secret is shown');
  const keysTable = page.getByRole('table', { name: 'API keys' });
  const keyRow = keysTable.locator('tr', { hasText: 'ci-key' });
  await keyRow.waitFor();
  assert.ok((await keysTable.locator('tbody tr', { hasText: 'this session' }).count()) === 1, 'the session key is listed too');
  const before = await fetch(`${srv.url}/api/v1/whoami`, { headers: { Authorization: `Bearer ${keySecret}` } });
  assert.equal(before.status, 200, 'the new API key authenticates');
  await shot(page, 'api-keys');
  page.once('dialog', (d) => void d.accept());
  await keyRow.getByRole('button', { name: 'Revoke API key ci-key' }).click();
  await keyRow.getByText('revoked').waitFor();
  const revoked = await fetch(`${srv.url}/api/v1/whoami`, { headers: { Authorization: `Bearer ${keySecret}` } });
  assert.equal(revoked.status, 401, 'the revoked API key no longer authenticates');

  // Sign out revokes the session's API key.
  const session = JSON.parse(stored!) as { secret: string };
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Sign in' }).waitFor();
  const after = await fetch(`${srv.url}/api/v1/whoami`, { headers: { Authorization: `Bearer ${session.secret}` } });
  assert.equal(after.status, 401, 'the revoked API key no longer works');

  // Narrow screens: the tag page still renders (responsive layout).
  await page.setViewportSize({ width: 390, height: 760 });
  await page.goto(`${srv.url}/#/`);
  await page.getByRole('heading', { name: 'Owners' }).waitFor();

  assert.deepEqual(errors, [], 'no uncaught errors in the page');
});
