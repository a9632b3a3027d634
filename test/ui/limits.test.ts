/**
 * The manage page's rate-limit section in a real browser (chromium via playwright-core) against
 * a real Berth child process: set limits on the repository and on one of its entitlement
 * tokens, see them listed, remove one; pulls then carry the RateLimit headers (docs/limits.md).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startBerth } from '../helpers/server.ts';
import { ensureWebBuild, signedInPage } from './helpers.ts';

test('[ui] manage page: rate limits on the repository and its tokens', { timeout: 180_000 }, async (t) => {
  await ensureWebBuild();
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  const admin = { Authorization: srv.adminAuthorization, 'Content-Type': 'application/json' };
  const call = (method: string, url: string, body?: unknown) => fetch(`${srv.url}${url}`, { method, headers: admin, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  assert.equal((await call('POST', '/api/v1/owners/acme/repos', { name: 'prod', visibility: 'public' })).status, 201);
  const tok = (await (await call('POST', '/api/v1/repos/acme/prod/tokens', { name: 'customer-a' })).json()) as { id: number };

  const { page, errors } = await signedInPage(t, srv);

  await page.goto(`${srv.url}/#/r/acme/prod/manage`);
  await page.getByRole('heading', { name: 'Rate limits' }).waitFor();
  await page.getByText('No limits on this repository or its tokens.').waitFor();
  let form = page.getByRole('form', { name: 'Set rate limit' });
  await form.getByLabel('Requests per minute').fill('30');
  await form.getByLabel('Bytes per day').fill('1GiB');
  await form.getByRole('button', { name: 'Set limit' }).click();
  const limits = page.getByRole('table', { name: 'Rate limits' });
  await limits.getByText('This repository (every caller)').waitFor();
  form = page.getByRole('form', { name: 'Set rate limit' });
  await form.getByLabel('On').selectOption({ label: 'token "customer-a"' });
  await form.getByLabel('Requests per minute').fill('5');
  await form.getByRole('button', { name: 'Set limit' }).click();
  await page.getByRole('table', { name: 'Rate limits' }).getByText('Token "customer-a"').waitFor();
  const rows = (await (await call('GET', '/api/v1/limits')).json()) as { kind: string; subject: string; requestsPerMinute: number; bytesPerDay: number | null }[];
  assert.deepEqual(
    rows.map((r) => [r.kind, r.subject, r.requestsPerMinute, r.bytesPerDay]),
    [
      ['repository', 'acme/prod', 30, 1024 ** 3],
      ['token', String(tok.id), 5, null],
    ],
  );
  // A bad size is refused with the API's message next to the button.
  form = page.getByRole('form', { name: 'Set rate limit' });
  await form.getByLabel('Bytes per day').fill('lots');
  await form.getByRole('button', { name: 'Set limit' }).click();
  await form.getByRole('alert').filter({ hasText: 'invalid size' }).waitFor();

  // Pulls now say where they stand.
  const res = await fetch(`${srv.url}/v2/acme/prod/app/tags/list`);
  assert.equal(res.headers.get('ratelimit-limit'), '30;w=60');
  assert.equal(res.headers.get('docker-ratelimit-source'), 'repository:acme/prod');

  // Remove the token's limit.
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('table', { name: 'Rate limits' }).getByRole('row', { name: /customer-a/ }).getByRole('button', { name: 'Remove' }).click();
  await page.getByRole('table', { name: 'Rate limits' }).getByText('Token "customer-a"').waitFor({ state: 'detached' });
  assert.equal(((await (await call('GET', '/api/v1/limits')).json()) as unknown[]).length, 1);
  assert.deepEqual(errors, []);
});
