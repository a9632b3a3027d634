/**
 * The real CLI (`node bin/berth.js …`) as a child process against a real Berth child process:
 * login (the login file is mode 0600), org / repo / member / key / token verbs, --json output,
 * and errors (exit code 1 with a message).
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PASSWORD, basic, berthCli, spawnBerth, tempDir, type RunResult, type ServerProcess } from './helpers.ts';

describe('berth CLI against a running server', () => {
  let srv: ServerProcess;
  let cfg: { dir: string; remove: () => Promise<void> };
  let env: Record<string, string>;
  const cli = (...args: string[]) => berthCli(args, env);
  const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const loginFile = () => path.join(cfg.dir, 'berth', 'login.json');

  before(async () => {
    srv = await spawnBerth();
    cfg = await tempDir('berth-auth-cli-');
    env = { XDG_CONFIG_HOME: cfg.dir, HOME: cfg.dir };
  });
  after(async () => {
    await srv?.stop();
    await cfg?.remove();
  });

  it('login with a wrong password fails with exit code 1 and writes nothing', async () => {
    const r = await cli('--server', srv.url, 'login', '-u', 'admin', '-p', 'not-the-password');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^berth: .*401/m);
    assert.throws(() => statSync(loginFile()), /ENOENT/);
  });

  it('berth login -u admin -p … keeps an API key in a 0600 login file', async () => {
    const r = await cli('--server', srv.url, 'login', '-u', 'admin', '-p', ADMIN_PASSWORD);
    ok(r, 'login');
    assert.match(r.stdout, new RegExp(`Signed in to ${srv.url.replace(/[.]/g, '\\.')} as admin`));
    assert.ok(!r.stdout.includes(ADMIN_PASSWORD) && !r.stderr.includes(ADMIN_PASSWORD), 'the password is not echoed');
    const st = statSync(loginFile());
    assert.equal(st.mode & 0o777, 0o600, `login file mode ${(st.mode & 0o777).toString(8)}`);
    const login = JSON.parse(readFileSync(loginFile(), 'utf8')) as { server: string; apiKey: string; username: string };
    assert.equal(login.server, srv.url);
    assert.equal(login.username, 'admin');
    assert.match(login.apiKey, /^berth_k_/);
    assert.ok(!readFileSync(loginFile(), 'utf8').includes(ADMIN_PASSWORD), 'the password is not kept');
    // the key works against the server
    const res = await fetch(`${srv.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${login.apiKey}` } });
    assert.equal(((await res.json()) as { username: string }).username, 'admin');
  });

  it('berth --json whoami', async () => {
    const r = await cli('--json', 'whoami');
    ok(r, 'whoami');
    const me = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(me.kind, 'user');
    assert.equal(me.username, 'admin');
    assert.equal(me.siteAdmin, true);
    const plain = await cli('whoami');
    ok(plain, 'whoami (table)');
    assert.match(plain.stdout, /^username\s+admin$/m);
  });

  it('berth org create acme; berth repo create acme/prod --private; berth repo list acme', async () => {
    const org = await cli('--json', 'org', 'create', 'acme');
    ok(org, 'org create');
    assert.deepEqual(
      (({ name, kind }) => ({ name, kind }))(JSON.parse(org.stdout) as { name: string; kind: string }),
      { name: 'acme', kind: 'org' },
    );
    const repo = await cli('repo', 'create', 'acme/prod', '--private', '-d', 'production');
    ok(repo, 'repo create');
    assert.match(repo.stdout, /^name\s+acme\/prod$/m);
    assert.match(repo.stdout, /^visibility\s+private$/m);
    ok(await cli('repo', 'create', 'acme/oss', '--public'), 'repo create --public');
    const list = await cli('repo', 'list', 'acme');
    ok(list, 'repo list');
    const lines = list.stdout.trim().split('\n');
    assert.match(lines[0]!, /^NAME\s+VISIBILITY\s+DESCRIPTION\s+CREATED/);
    assert.ok(lines.some((l) => /^acme\/prod\s+private\s+production\s/.test(l)), list.stdout);
    assert.ok(lines.some((l) => /^acme\/oss\s+public\s/.test(l)), list.stdout);
    const json = JSON.parse((await cli('--json', 'repo', 'list', 'acme')).stdout) as { name: string; visibility: string }[];
    assert.deepEqual(json.map((r) => [r.name, r.visibility]).sort(), [['acme/oss', 'public'], ['acme/prod', 'private']]);
    // the server agrees: anonymous may not pull from acme/prod
    const anon = await fetch(`${srv.url}/v2/acme/prod/app/tags/list`);
    assert.equal(anon.status, 401);
  });

  it('berth token create acme/prod --expires 30d --json gives a working read-only secret', async () => {
    const r = await cli('token', 'create', 'acme/prod', '--expires', '30d', '--name', 'customer-a', '--json');
    ok(r, 'token create');
    const t = JSON.parse(r.stdout) as { id: number; secret: string; username: string; expiresAt: string; name: string };
    assert.match(t.secret, /^berth_t_/);
    assert.equal(t.username, 'acme/prod');
    assert.equal(t.name, 'customer-a');
    const days = (Date.parse(t.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, `expires in ${days} days`);
    assert.equal(r.stderr, '', 'with --json nothing else is printed');
    const tok = await fetch(`${srv.url}/v2/token?service=berth&scope=repository:acme/prod/app:pull,push`, {
      headers: { authorization: basic('token', t.secret) },
    });
    assert.equal(tok.status, 200);
    const jwt = ((await tok.json()) as { token: string }).token;
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { access: unknown };
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'acme/prod/app', actions: ['pull'] }]);
    // listed without the secret; revocable by id
    const list = await cli('--json', 'token', 'list', 'acme/prod');
    ok(list, 'token list');
    assert.ok(!list.stdout.includes(t.secret));
    assert.ok((JSON.parse(list.stdout) as { id: number }[]).some((x) => x.id === t.id));
    ok(await cli('token', 'revoke', 'acme/prod', String(t.id)), 'token revoke');
    const after = await fetch(`${srv.url}/v2/token?service=berth`, { headers: { authorization: basic('token', t.secret) } });
    assert.equal(after.status, 401);
  });

  it('user, member and key verbs', async () => {
    ok(await cli('user', 'create', 'bob', '-p', 'bob-password-1'), 'user create');
    const users = JSON.parse((await cli('--json', 'user', 'list')).stdout) as { username: string }[];
    assert.deepEqual(users.map((u) => u.username), ['admin', 'bob']);
    ok(await cli('member', 'add', 'acme/prod', 'bob', '-r', 'read'), 'member add');
    const members = JSON.parse((await cli('--json', 'member', 'list', 'acme/prod')).stdout) as { username: string; role: string }[];
    assert.deepEqual(members.map((m) => [m.username, m.role]), [['bob', 'read']]);
    // bob logs in on his own login file and sees acme/prod
    const bobCfg = await tempDir('berth-auth-cli-bob-');
    try {
      const bobEnv = { XDG_CONFIG_HOME: bobCfg.dir, HOME: bobCfg.dir };
      ok(await berthCli(['--server', srv.url, 'login', '-u', 'bob', '-p', 'bob-password-1'], bobEnv), 'bob login');
      const seen = JSON.parse((await berthCli(['--json', 'repo', 'list', 'acme'], bobEnv)).stdout) as { name: string }[];
      assert.deepEqual(seen.map((r) => r.name).sort(), ['acme/oss', 'acme/prod']);
      const denied = await berthCli(['repo', 'set', 'acme/prod', '--public'], bobEnv);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /403/);
      const k = await berthCli(['--json', 'key', 'create', '-n', 'ci'], bobEnv);
      ok(k, 'key create');
      const key = JSON.parse(k.stdout) as { secret: string; id: number };
      assert.match(key.secret, /^berth_k_/);
      const keys = await berthCli(['--json', 'key', 'list'], bobEnv);
      assert.ok(!keys.stdout.includes(key.secret));
      assert.equal((JSON.parse(keys.stdout) as unknown[]).length, 2, 'the login key and the new one');
      // BERTH_API_KEY overrides the login file
      const who = await berthCli(['--json', 'whoami'], { ...env, BERTH_API_KEY: key.secret });
      assert.equal((JSON.parse(who.stdout) as { username: string }).username, 'bob');
      ok(await berthCli(['key', 'revoke', String(key.id)], bobEnv), 'key revoke');
      const gone = await berthCli(['whoami'], { ...env, BERTH_API_KEY: key.secret });
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /401/);
    } finally {
      await bobCfg.remove();
    }
  });

  it('errors: exit code 1 and a message', async () => {
    const dup = await cli('repo', 'create', 'acme/prod');
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /^berth: POST \/api\/v1\/owners\/acme\/repos: 409 .*acme\/prod exists.*\(CONFLICT\)/m);
    assert.equal(dup.stdout, '');
    const bad = await cli('repo', 'create', 'no-slash');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /expected OWNER\/REPOSITORY, got "no-slash"/);
    const role = await cli('member', 'add', 'acme/prod', 'bob', '-r', 'emperor');
    assert.equal(role.code, 1);
    assert.match(role.stderr, /400.*role/);
    const unreachable = await berthCli(['whoami'], { ...env, BERTH_URL: 'http://127.0.0.1:1' });
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach http:\/\/127\.0\.0\.1:1/);
    // no stack traces for these expected errors
    for (const r of [dup, bad, role, unreachable]) assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('the server is still healthy and stops by its pid', async () => {
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    await srv.stop();
    await assert.rejects(fetch(`${srv.url}/healthz`));
  });
});
