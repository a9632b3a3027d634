/** Repository signing on SQLite (test/suites/signing-suite.ts), and the CLI verbs over it. */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { berthCli } from '../auth/helpers.ts';
import { ADMIN, apiOk, openBerth } from '../events/helpers.ts';
import { runSigningSuite } from '../suites/signing-suite.ts';

runSigningSuite('sqlite');

test('[cli] berth repo set --sign-on-push/--require-signature; berth signing-key show|add|list|rotate', async (t) => {
  const b = await openBerth({ listen: true });
  t.after(() => b.close());
  await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
  await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'prod' }, 201);
  const key = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', ADMIN, { name: 'cli' }, 201);
  const env = { BERTH_URL: b.url, BERTH_API_KEY: key.secret, HOME: b.dir };
  const cli = async (...args: string[]) => {
    const r = await berthCli(args, env);
    assert.equal(r.code, 0, `berth ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  const set = JSON.parse(await cli('--json', 'repo', 'set', 'acme/prod', '--sign-on-push', '--require-signature'));
  assert.deepEqual([set.signOnPush, set.requireSignature], [true, true]);
  const off = JSON.parse(await cli('--json', 'repo', 'set', 'acme/prod', '--no-require-signature'));
  assert.deepEqual([off.signOnPush, off.requireSignature], [true, false]);
  const pem = await cli('signing-key', 'show', 'acme/prod');
  assert.match(pem, /^-----BEGIN PUBLIC KEY-----/);
  const file = path.join(b.dir, 'cosign.pub');
  await writeFile(file, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString());
  assert.equal(JSON.parse(await cli('--json', 'signing-key', 'add', 'acme/prod', file, '--name', 'ci')).kind, 'trusted');
  const rotated = JSON.parse(await cli('--json', 'signing-key', 'rotate', 'acme/prod'));
  const list = JSON.parse(await cli('--json', 'signing-key', 'list', 'acme/prod')) as { keyId: string; kind: string; current: boolean }[];
  assert.deepEqual(list.map((k) => [k.kind, k.current]).sort(), [['repository', false], ['repository', true], ['trusted', false]]);
  assert.equal(list.find((k) => k.current)!.keyId, rotated.keyId);
});
