/**
 * The admin pages in a real browser (chromium via playwright-core) against a real Berth child
 * process: users (create, set a password), organisation members (add, change a role, delete an
 * organisation with typed confirmation), search from the header, a repository's upstreams and webhooks (add, send a test,
 * read the delivery log), the audit log (filter, CSV export), "Set me up" snippets (copy), the
 * repository's signing key and the signature verdict per tag, the
 * account page (change password) and deleting a repository. Screenshots go to a temporary folder,
 * or to $BERTH_SCREENSHOTS_DIR (e.g. docs/screenshots) when set.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { mkdirSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { startBerth } from '../helpers/server.ts';
import { ARGS, CHROMIUM, ensureWebBuild } from './helpers.ts';

test('[ui] admin pages: users, org members, upstreams, webhooks, audit log, setup snippets, account, deletes', { timeout: 300_000 }, async (t) => {
  await ensureWebBuild();
  const shots = process.env.BERTH_SCREENSHOTS_DIR ?? (await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-ui-shots-')));
  mkdirSync(shots, { recursive: true });
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  // a webhook receiver on loopback
  const received: { headers: IncomingMessage['headers']; body: string }[] = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.after(() => hook.close());
  const hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`;

  // after the egress policy (main), loopback receivers must be allowed explicitly; ignored before it
  const srv = await startBerth({ orgs: ['acme', 'doomed'], env: { BERTH_EGRESS_ALLOW: '127.0.0.1' } });
  t.after(() => srv.stop());
  const admin = { Authorization: srv.adminAuthorization, 'Content-Type': 'application/json' };
  const call = (method: string, url: string, body?: unknown, headers: Record<string, string> = admin) =>
    fetch(`${srv.url}${url}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  assert.equal((await call('POST', '/api/v1/owners/acme/repos', { name: 'prod' })).status, 201);
  assert.equal((await call('POST', '/api/v1/owners/acme/repos', { name: 'old' })).status, 201);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const status = () => page.locator('#status');

  // sign in
  await page.goto(`${srv.url}/#/login`);
  await page.getByLabel('Username').fill(srv.admin.username);
  await page.getByLabel('Password').fill(srv.admin.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();

  // Users: create bob, set his password (prompt), see him listed
  await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Users' }).click();
  await page.getByRole('heading', { name: 'Users' }).waitFor();
  const create = page.getByRole('form', { name: 'Create user' });
  await create.getByLabel('Username').fill('bob');
  await create.getByLabel('Password').fill('bob-password-1');
  await create.getByRole('button', { name: 'Create user' }).click();
  const bobRow = page.getByRole('table', { name: 'Users' }).getByRole('row').filter({ hasText: 'bob' });
  await bobRow.waitFor();
  page.once('dialog', (d) => void d.accept('bob-password-2'));
  await bobRow.getByRole('button', { name: 'Set password' }).click();
  await status().filter({ hasText: 'Password of bob set' }).waitFor();
  assert.equal((await call('GET', '/api/v1/whoami', undefined, { Authorization: `Basic ${Buffer.from('bob:bob-password-2').toString('base64')}` })).status, 200);
  await shot(page, 'users');

  // Organisation members: from the owner page, add bob, make him admin
  await page.goto(`${srv.url}/#/o/acme`);
  await page.getByRole('link', { name: 'Organisation members and settings' }).click();
  await page.getByRole('heading', { name: 'acme: members' }).waitFor();
  const addMember = page.getByRole('form', { name: 'Add organisation member' });
  await addMember.getByLabel('Username').fill('bob');
  await addMember.getByRole('button', { name: 'Add member' }).click();
  await page.getByLabel('Role of bob').waitFor();
  await page.getByLabel('Role of bob').selectOption('admin');
  await status().filter({ hasText: 'bob is now admin' }).waitFor();
  const members = (await (await call('GET', '/api/v1/orgs/acme/members')).json()) as { username: string; role: string }[];
  assert.deepEqual(members.map((m) => [m.username, m.role]), [['admin', 'owner'], ['bob', 'admin']]);
  await shot(page, 'org-members');

  // Delete an organisation: the button stays disabled until the name is typed
  await page.goto(`${srv.url}/#/org/doomed`);
  const del = page.getByRole('form', { name: 'Delete organisation' });
  const delButton = del.getByRole('button', { name: 'Delete organisation' });
  assert.equal(await delButton.isDisabled(), true);
  await del.getByLabel('Type doomed to confirm').fill('doome');
  assert.equal(await delButton.isDisabled(), true);
  await del.getByLabel('Type doomed to confirm').fill('doomed');
  await delButton.click();
  await page.getByRole('heading', { name: 'Owners' }).waitFor();
  assert.equal((await call('GET', '/api/v1/orgs/doomed/members')).status, 404);

  // Manage acme/prod: add an upstream and a webhook, send a test, read the delivery log
  await page.goto(`${srv.url}/#/r/acme/prod/manage`);
  const up = page.getByRole('form', { name: 'Add upstream' });
  await up.getByLabel('URL').fill('https://registry.example.com');
  await up.getByLabel('Prefix', { exact: true }).fill('hub/');
  await up.getByRole('button', { name: 'Add upstream' }).click();
  await page.getByRole('table', { name: 'Upstreams' }).getByText('https://registry.example.com').waitFor();
  const ups = (await (await call('GET', '/api/v1/repos/acme/prod/upstreams')).json()) as { url: string; prefix: string }[];
  assert.deepEqual(ups.map((u) => [u.url, u.prefix]), [['https://registry.example.com', 'hub/']]);

  const wh = page.getByRole('form', { name: 'Add webhook' });
  await wh.getByLabel('URL').fill(hookUrl);
  await wh.getByRole('button', { name: 'Add webhook' }).click();
  await page.getByTestId('webhook-secret').waitFor();
  const card = page.locator('[data-webhook]').filter({ hasText: hookUrl });
  await card.getByRole('button', { name: 'Send test' }).click();
  await status().filter({ hasText: 'Test delivery: delivered' }).waitFor();
  await card.getByRole('table').getByText('delivered').first().waitFor();
  assert.ok(received.some((r) => typeof r.headers['x-berth-signature'] === 'string' && r.headers['x-berth-signature'].startsWith('sha256=')), 'the receiver got a signed request');
  await shot(page, 'manage-admin');

  // Audit log: filter by action, export CSV
  await page.goto(`${srv.url}/#/audit`);
  await page.getByRole('heading', { name: 'Audit log' }).waitFor();
  await page.getByLabel('Action').selectOption('admin');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(/#\/audit\?action=admin/);
  const auditTable = page.getByRole('table', { name: 'Audit events' });
  for (let i = 0; i < 20 && (await auditTable.count()) === 0; i++) {
    await page.waitForTimeout(500); // events are written in batches
    await page.reload();
  }
  await auditTable.getByRole('cell', { name: 'admin', exact: true }).first().waitFor();
  const actions = await auditTable.locator('tbody tr td:nth-child(2)').allTextContents();
  assert.ok(actions.length > 0 && actions.every((a) => a === 'admin'), actions.join(','));
  await shot(page, 'audit');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  const csv = await fsp.readFile((await download.path())!, 'utf8');
  assert.match(csv, /^id,time,action,/);
  assert.ok(csv.split(/\r?\n/).slice(1).filter(Boolean).every((l) => l.includes(',admin,')), csv);

  // Set me up: snippets with this host and namespace, copied to the clipboard
  await page.goto(`${srv.url}/#/r/acme/prod`);
  await page.getByRole('heading', { name: 'Set me up' }).waitFor();
  await page.getByText('Kubernetes', { exact: true }).click();
  const k8s = page.locator('details', { hasText: 'Kubernetes' });
  await k8s.getByText(`--docker-server=${srv.address}`).waitFor();
  await page.getByText('Docker', { exact: true }).click();
  await page.getByRole('button', { name: 'Copy Docker command' }).first().click();
  await status().filter({ hasText: 'Copied to clipboard' }).waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert.equal(clip, `echo "$BERTH_TOKEN" | docker login ${srv.address} -u admin --password-stdin`);
  assert.ok(!(await page.locator('.setup').innerText()).includes(srv.admin.password), 'no secret in the snippets');
  await shot(page, 'setup');
  await shot(page, 'setup');

  // Signing (docs/signing.md): the repository's public key beside the snippets; a verdict per tag.
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const pushTag = async (tag: string) => {
    const layer = Buffer.from(`layer of ${tag}`);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] } }));
    for (const b of [layer, config]) {
      const r = await fetch(`${srv.url}/v2/acme/prod/app/blobs/uploads/?digest=${sha(b)}`, { method: 'POST', headers: { Authorization: srv.adminAuthorization, 'Content-Type': 'application/octet-stream' }, body: b });
      assert.equal(r.status, 201);
    }
    const m = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }] });
    const r = await fetch(`${srv.url}/v2/acme/prod/app/manifests/${tag}`, { method: 'PUT', headers: { Authorization: srv.adminAuthorization, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: m });
    assert.equal(r.status, 201);
  };
  assert.equal((await call('PUT', '/api/v1/repos/acme/prod/signing', { signOnPush: true })).status, 200);
  await pushTag('signed');
  const pem = await (await call('GET', '/api/v1/repos/acme/prod/signing-key.pub')).text();
  await page.reload();
  await page.getByRole('heading', { name: 'Signing key' }).waitFor();
  assert.equal((await page.getByLabel('Repository public key').innerText()).trim(), pem.trim());
  await page.getByText('cosign', { exact: true }).click();
  await page.locator('details', { hasText: 'cosign verify' }).getByText(`cosign verify --key berth.pub --insecure-ignore-tlog ${srv.address}/acme/prod/IMAGE:TAG`).waitFor();
  for (let i = 0; ; i++) {
    const v = (await (await call('GET', '/api/v1/repos/acme/prod/signatures?image=app&tags=signed')).json()) as { tags: { state: string }[] };
    if (v.tags[0]?.state === 'signed') break;
    assert.ok(i < 200, 'the pushed tag is signed within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await call('PUT', '/api/v1/repos/acme/prod/signing', { signOnPush: false })).status, 200);
  await pushTag('unsigned');
  await page.goto(`${srv.url}/#/r/acme/prod/i/app`);
  const row = (tag: string) => page.getByRole('table', { name: 'Tags' }).getByRole('row').filter({ has: page.getByRole('link', { name: tag, exact: true }) });
  await row('signed').locator('.badge.sig-signed').filter({ hasText: 'signed' }).waitFor();
  assert.match((await row('signed').locator('.badge').getAttribute('title')) ?? '', /^signed by repository key [0-9a-f]{16} since /);
  await row('unsigned').locator('.badge.sig-unsigned').waitFor();
  await shot(page, 'signatures');
  // …and managed from the manage page: settings, rotation, trusted keys.
  await page.goto(`${srv.url}/#/r/acme/prod/manage`);
  await page.getByRole('heading', { name: 'Signing', exact: true }).waitFor();
  assert.equal(await page.getByLabel('Sign every pushed image').isChecked(), false);
  await page.getByLabel('Sign every pushed image').check();
  await page.getByLabel('Serve only images with a valid signature').check();
  await page.getByRole('button', { name: 'Save signing settings' }).click();
  await status().filter({ hasText: 'Signing settings saved' }).waitFor();
  const saved = (await (await call('GET', '/api/v1/repos/acme/prod/signing')).json()) as { signOnPush: boolean; requireSignature: boolean };
  assert.deepEqual([saved.signOnPush, saved.requireSignature], [true, true]);
  await page.getByRole('button', { name: 'Rotate repository key' }).click();
  await status().filter({ hasText: 'Repository key rotated' }).waitFor();
  const keysTable = page.getByRole('table', { name: 'Signing keys' });
  await keysTable.getByRole('cell', { name: /^retired / }).waitFor();
  await keysTable.getByRole('cell', { name: 'current', exact: true }).waitFor();
  await page.getByLabel('Public key (PEM').fill(generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString());
  await page.getByRole('form', { name: 'Trust a public key' }).getByLabel('Name').fill('ci');
  await page.getByRole('button', { name: 'Trust key' }).click();
  await keysTable.getByRole('cell', { name: 'ci', exact: true }).waitFor();
  await shot(page, 'manage-signing');
  await page.getByRole('button', { name: 'Stop trusting ci' }).click();
  await keysTable.getByRole('cell', { name: 'ci', exact: true }).waitFor({ state: 'detached' });
  assert.equal((await (await call('PUT', '/api/v1/repos/acme/prod/signing', { requireSignature: false })).json()).requireSignature, false);

  // Search from the header: repositories (and owners, images, tags) the viewer may see
  await page.getByRole('searchbox', { name: 'Search everything' }).fill('acme/pr');
  await page.getByRole('searchbox', { name: 'Search everything' }).press('Enter');
  await page.getByRole('heading', { name: 'Search: acme/pr' }).waitFor();
  await page.getByRole('region', { name: 'Repositories' }).getByRole('link', { name: 'acme/prod' }).click();
  await page.getByRole('heading', { name: 'acme/prod' }).waitFor();

  // Delete a repository from its manage page
  await page.goto(`${srv.url}/#/r/acme/old/manage`);
  const delRepo = page.getByRole('form', { name: 'Delete repository' });
  await delRepo.getByLabel('Type acme/old to confirm').fill('acme/old');
  await delRepo.getByRole('button', { name: 'Delete repository' }).click();
  await page.getByRole('heading', { name: 'acme', exact: true }).waitFor();
  assert.equal((await call('GET', '/api/v1/repos/acme/old')).status, 404);

  // Account: a wrong current password is refused, the right one changes it
  await page.getByRole('navigation', { name: 'Account' }).getByRole('link', { name: 'Account' }).click();
  const pw = page.getByRole('form', { name: 'Change password' });
  await pw.getByLabel('Current password').fill('not-my-password');
  await pw.getByLabel('New password').fill('admin-new-password-1');
  await pw.getByRole('button', { name: 'Change password' }).click();
  await pw.getByText('the current password is wrong').waitFor();
  await pw.getByLabel('Current password').fill(srv.admin.password);
  await pw.getByLabel('New password').fill('admin-new-password-1');
  await pw.getByRole('button', { name: 'Change password' }).click();
  await status().filter({ hasText: 'Password changed' }).waitFor();
  await shot(page, 'account');
  const basicNew = `Basic ${Buffer.from('admin:admin-new-password-1').toString('base64')}`;
  assert.equal((await call('GET', '/api/v1/whoami', undefined, { Authorization: basicNew })).status, 200);
  assert.equal((await call('GET', '/api/v1/whoami')).status, 401, 'the old password no longer works');

  assert.deepEqual(errors, [], 'no script errors');
});
