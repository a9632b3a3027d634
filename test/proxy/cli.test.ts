/** `berth upstream add|list|rm` against an in-process Berth, authenticated by an API key. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/e2e.ts';
import { ROOT } from '../helpers/server.ts';
import { startProxyBerth } from './helpers.ts';

test('berth upstream add | list | rm', async (t) => {
  const pb = await startProxyBerth();
  t.after(() => pb.close());
  const acme = (await pb.berth.accessStore.findOwner('acme'))!;
  await pb.berth.accessStore.createRepository(acme.id, 'mirror', 'private', '');
  const key = await pb.api('POST', '/api/v1/user/api-keys', { name: 'cli' });
  assert.equal(key.status, 201);
  const home = await tempDir(t, 'proxy-cli-home');
  const berth = (args: string[], input?: string) =>
    new Promise<string>((resolve, reject) => {
      const child = execFile(
        process.execPath,
        [path.join(ROOT, 'bin', 'berth.js'), '--server', pb.url, ...args],
        { env: { PATH: process.env.PATH ?? '', HOME: home, XDG_CONFIG_HOME: home, BERTH_API_KEY: key.json.secret as string }, timeout: 60_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`berth ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)),
      );
      child.stdin!.end(input ?? '');
    });

  const added = JSON.parse(
    await berth(['--json', 'upstream', 'add', 'acme/mirror', 'https://registry.example.com', '--username', 'bot', '--password-stdin', '--prefix', 'hub/', '--remote-prefix', 'library/', '--priority', '3'], 'pw-from-stdin\n'),
  ) as Record<string, unknown>;
  assert.deepEqual(
    { url: added.url, username: added.username, hasPassword: added.hasPassword, prefix: added.prefix, remotePrefix: added.remotePrefix, priority: added.priority, cache: added.cache },
    { url: 'https://registry.example.com', username: 'bot', hasPassword: true, prefix: 'hub/', remotePrefix: 'library/', priority: 3, cache: true },
  );
  // the password is what stdin gave, sealed at rest under the key-encryption key
  const repo = (await pb.berth.accessStore.findRepository('acme', 'mirror'))!;
  const row = (await pb.berth.accessStore.listUpstreams(repo.id))[0]!;
  assert.equal(pb.berth.registry.keyring.decryptText(row.passwordEnc!, 'upstream-password'), 'pw-from-stdin');
  await berth(['upstream', 'add', 'acme/mirror', 'http://second.example', '--no-cache']);
  const listed = JSON.parse(await berth(['--json', 'upstream', 'list', 'acme/mirror'])) as { id: number; url: string; cache: boolean }[];
  assert.deepEqual(listed.map((u) => [u.url, u.cache]), [['http://second.example', false], ['https://registry.example.com', true]]);
  const table = await berth(['upstream', 'list', 'acme/mirror']);
  assert.match(table, /registry\.example\.com/);
  await berth(['upstream', 'rm', 'acme/mirror', String(added.id)]);
  const after = JSON.parse(await berth(['--json', 'upstream', 'list', 'acme/mirror'])) as { url: string }[];
  assert.deepEqual(after.map((u) => u.url), ['http://second.example']);
});
