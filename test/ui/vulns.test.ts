/**
 * The tag page's vulnerability section in chromium against a real Berth child process: an OSV
 * record imported through the API, a Debian-shaped image pushed through /v2, the SBOM and
 * matching jobs run by the server; the page shows the severity summary, the finding with its
 * fixed version, and "scanned / database as of". Screenshot to a temporary folder or
 * $BERTH_SCREENSHOTS_DIR.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { test } from 'node:test';
import { startBerth } from '../helpers/server.ts';
import { tarOf } from '../supply-chain/layers.ts';
import { ensureWebBuild, signedInPage } from './helpers.ts';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('[ui] tag page: vulnerability summary, findings with fixed versions, scanned at and database as of', { timeout: 300_000 }, async (t) => {
  await ensureWebBuild();
  const shots = process.env.BERTH_SCREENSHOTS_DIR ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-ui-shots-')));
  mkdirSync(shots, { recursive: true });
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  const auth = { Authorization: srv.adminAuthorization };
  const call = (method: string, url: string, body?: BodyInit, type = 'application/json') => fetch(`${srv.url}${url}`, { method, headers: { ...auth, 'Content-Type': type }, ...(body === undefined ? {} : { body }) });
  assert.equal((await call('POST', '/api/v1/owners/acme/repos', JSON.stringify({ name: 'prod' }))).status, 201);

  const record = {
    id: 'DSA-9201-1',
    modified: '2024-08-01T00:00:00Z',
    aliases: ['CVE-2024-9201'],
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
    affected: [{ package: { ecosystem: 'Debian:12', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.13-1~deb12u1' }] }] }],
  };
  const imported = await call('POST', '/api/v1/vulndb/import', JSON.stringify(record) + '\n', 'application/x-ndjson');
  assert.equal(imported.status, 200, await imported.text());

  const tar = await tarOf([
    { name: 'etc/os-release', data: 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' },
    { name: 'var/lib/dpkg/status', data: 'Package: libssl3\nStatus: install ok installed\nSource: openssl\nVersion: 3.0.11-1~deb12u2\n' },
  ]);
  const layer = gzipSync(tar);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  for (const blob of [layer, config]) assert.equal((await call('POST', `/v2/acme/prod/app/blobs/uploads/?digest=${sha256(blob)}`, blob, 'application/octet-stream')).status, 201);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  });
  assert.equal((await call('PUT', '/v2/acme/prod/app/manifests/v1', manifest, 'application/vnd.oci.image.manifest.v1+json')).status, 201);
  for (let i = 0; ; i++) {
    const v = (await (await call('GET', '/api/v1/repos/acme/prod/vulnerabilities?image=app&ref=v1')).json()) as { status: string };
    if (v.status === 'scanned') break;
    assert.ok(i < 300, 'the report did not appear within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }

  const { page, errors } = await signedInPage(t, srv, { height: 900 });

  await page.goto(`${srv.url}/#/r/acme/prod/i/app/t/v1`);
  const section = page.getByTestId('vulnerabilities');
  await section.getByTestId('vuln-summary').waitFor();
  assert.match(await section.getByTestId('vuln-summary').innerText(), /1 critical\s+0 high\s+0 medium\s+0 low/);
  assert.match(await section.getByTestId('vuln-when').innerText(), /^Scanned .+ · database as of .+ · Debian GNU\/Linux 12 \(bookworm\) · 1 packages$/);
  const row = section.getByRole('table', { name: 'Vulnerabilities' }).getByRole('row').filter({ hasText: 'DSA-9201-1' });
  const cells = await row.getByRole('cell').allInnerTexts();
  assert.deepEqual(cells.map((c) => c.trim()), ['DSA-9201-1 CVE-2024-9201', 'critical 9.8', 'libssl3 (openssl)', '3.0.11-1~deb12u2', '3.0.13-1~deb12u1']);
  await page.screenshot({ path: path.join(shots, 'vulnerabilities.png'), fullPage: true });
  assert.deepEqual(errors, []);
});
