/**
 * Custom domains in a real browser (chromium, its resolver mapping two made-up host names to
 * the test server): the owner page lists an owner's domains, a site administrator adds and
 * removes one; on each domain the "Set me up" snippets and pull commands speak its short names.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startBerth } from '../helpers/server.ts';
import { ensureWebBuild, signedInPage } from './helpers.ts';

test('[ui] custom domains: the owner page manages them; snippets use short names on a domain', { timeout: 180_000 }, async (t) => {
  await ensureWebBuild();
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  const admin = { Authorization: srv.adminAuthorization, 'Content-Type': 'application/json' };
  const call = (method: string, url: string, body?: unknown) => fetch(`${srv.url}${url}`, { method, headers: admin, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  assert.equal((await call('POST', '/api/v1/owners/acme/repos', { name: 'prod', visibility: 'public' })).status, 201);
  assert.equal((await call('POST', '/api/v1/domains', { host: 'registry.acme.test', target: 'acme' })).status, 201);
  assert.equal((await call('POST', '/api/v1/domains', { host: 'images.acme.test', target: 'acme/prod' })).status, 201);

  const { page, errors } = await signedInPage(t, srv, { args: ['--host-resolver-rules=MAP *.acme.test 127.0.0.1'] });
  await page.goto(`${srv.url}/#/o/acme`);
  const domains = page.getByRole('table', { name: 'Custom domains' });
  await domains.getByRole('row').filter({ hasText: 'images.acme.test' }).filter({ hasText: 'acme/prod' }).waitFor();
  await domains.getByRole('row').filter({ hasText: 'registry.acme.test' }).waitFor();
  const add = page.getByRole('form', { name: 'Add domain' });
  await add.getByLabel('Host name').fill('mirror.acme.test');
  await add.getByLabel('Maps to').fill('acme/prod');
  await add.getByLabel('Read-only mirror').check();
  await add.getByRole('button', { name: 'Add domain' }).click();
  const mirror = domains.getByRole('row').filter({ hasText: 'mirror.acme.test' });
  await mirror.filter({ hasText: 'mirror (read-only)' }).waitFor();
  page.once('dialog', (d) => void d.accept());
  await mirror.getByRole('button', { name: 'Remove' }).click();
  await mirror.waitFor({ state: 'detached' });
  assert.deepEqual((await (await call('GET', '/api/v1/domains')).json()).map((d: { host: string }) => d.host), ['images.acme.test', 'registry.acme.test']);

  // on each domain the snippets name images as its clients do
  for (const [host, ns] of [
    ['images.acme.test', `images.acme.test:${srv.port}`],
    ['registry.acme.test', `registry.acme.test:${srv.port}/prod`],
    ['127.0.0.1', `127.0.0.1:${srv.port}/acme/prod`],
  ] as const) {
    await page.goto(`http://${host}:${srv.port}/#/r/acme/prod`);
    await page.getByRole('heading', { name: 'Set me up' }).waitFor();
    await page.getByText('Docker', { exact: true }).click();
    await page.locator('details', { hasText: 'Docker' }).getByText(`docker push ${ns}/myapp:1.0`).waitFor();
    assert.ok((await page.locator('main').innerText()).includes(`docker push ${ns}/IMAGE:TAG`));
  }
  assert.deepEqual(errors, []);
});
