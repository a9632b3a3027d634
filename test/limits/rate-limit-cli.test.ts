/** `berth limit set|list|rm` against a real server (docs/limits.md). */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN_PASSWORD, basic, berthCli, spawnBerth, tempDir, type RunResult, type ServerProcess } from '../auth/helpers.ts';

let srv: ServerProcess;
let cfg: { dir: string; remove: () => Promise<void> };
let env: Record<string, string>;
const cli = (args: string[], input?: string) => berthCli(args, env, input);
const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);

before(async () => {
  srv = await spawnBerth();
  cfg = await tempDir('berth-cli-limits-');
  env = { XDG_CONFIG_HOME: cfg.dir, HOME: cfg.dir };
  const admin = { authorization: basic('admin', ADMIN_PASSWORD), 'content-type': 'application/json' };
  assert.equal((await fetch(`${srv.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'acme' }) })).status, 201);
  assert.equal((await fetch(`${srv.url}/api/v1/owners/acme/repos`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'prod', visibility: 'public' }) })).status, 201);
});
after(async () => {
  await srv?.stop();
  await cfg?.remove();
});

test('berth limit set, list and rm; a refused pull says why', async () => {
  ok(await cli(['--server', srv.url, 'login', '-u', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`), 'login');
  ok(await cli(['limit', 'set', 'anonymous', '--requests-per-minute', '1']), 'limit set anonymous');
  ok(await cli(['limit', 'set', 'repo', 'acme/prod', '--bytes-per-day', '1GiB', '--requests-per-minute', '100']), 'limit set repo');
  const list = await cli(['--json', 'limit', 'list']);
  ok(list, 'limit list');
  const rows = JSON.parse(list.stdout) as { kind: string; subject: string; requestsPerMinute: number | null; bytesPerDay: number | null }[];
  assert.deepEqual(
    rows.map((r) => [r.kind, r.subject, r.requestsPerMinute, r.bytesPerDay]),
    [
      ['anonymous', '(default)', 1, null],
      ['repository', 'acme/prod', 100, 1024 ** 3],
    ],
  );
  assert.equal((await fetch(`${srv.url}/v2/acme/prod/app/tags/list`)).headers.get('ratelimit-remaining'), '0;w=60');
  const refused = await fetch(`${srv.url}/v2/acme/prod/app/tags/list`);
  assert.equal(refused.status, 429);
  assert.match(await refused.text(), /TOOMANYREQUESTS.*1 requests per minute/);
  ok(await cli(['limit', 'rm', 'anonymous']), 'limit rm');
  const bad = await cli(['limit', 'set', 'galaxy', '--requests-per-minute', '1']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown kind "galaxy"/);
  const missing = await cli(['limit', 'rm', 'user', 'nobody']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /404|not found/);
});
