/** Repository signing on PostgreSQL (test/suites/signing-suite.ts), and two nodes sharing one database. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIN, apiOk, createSchema, dropSchema, eventually, openBerth, pull, pushImage, setupTenancy } from '../events/helpers.ts';
import { runSigningSuite } from '../suites/signing-suite.ts';

runSigningSuite('postgres');

test('two nodes: a setting changed on one takes effect on the other within signing.cacheSeconds; the repository key is shared', async (t) => {
  const schema = await createSchema();
  t.after(() => dropSchema(schema));
  const a = await openBerth({ postgres: schema });
  t.after(() => a.close());
  const b = await openBerth({ postgres: schema, dir: a.dir }); // one blob folder, as nodes share one blob store
  t.after(() => b.close());
  const tenancy = await setupTenancy(a.app);
  const img = await pushImage(a.app, 'acme/prod/app', 'v1');
  assert.equal((await pull(b.app, 'acme/prod/app', 'v1', tenancy.carol)).statusCode, 200); // B caches "no policy"
  await apiOk(a.app, 'PUT', '/api/v1/repos/acme/prod/signing', ADMIN, { requireSignature: true }, 200);
  assert.equal((await pull(a.app, 'acme/prod/app', 'v1', tenancy.carol)).statusCode, 403); // at once on A
  const started = Date.now();
  await eventually(async () => ((await pull(b.app, 'acme/prod/app', 'v1', tenancy.carol)).statusCode === 403 ? true : undefined), 5000, 'node B refusing');
  assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  // Either node signs with the one repository key (sealed under the shared key-encryption key):
  // switching signing on (on B) signs what is there already, and both nodes then serve it.
  await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/signing', ADMIN, { signOnPush: true }, 200);
  const pem = (await a.app.inject({ url: '/api/v1/repos/acme/prod/signing-key.pub', headers: { authorization: ADMIN } })).body;
  assert.equal((await b.app.inject({ url: '/api/v1/repos/acme/prod/signing-key.pub', headers: { authorization: ADMIN } })).body, pem);
  for (const node of [a, b]) await eventually(async () => ((await pull(node.app, 'acme/prod/app', img.digest, tenancy.carol)).statusCode === 200 ? true : undefined), 20_000, 'the signed image served');
});
