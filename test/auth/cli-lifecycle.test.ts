/**
 * The real CLI against a real server, for the lifecycle verbs: --version, --help with a
 * description and an example on every verb, --password-stdin, passwd, user passwd / revoke-keys
 * / rm, org list (organisations only) / leave / rm, repo rm, image list / rm, tag list / rm,
 * audit (table and CSV), analytics, logout (the key is revoked on the server).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { ADMIN_PASSWORD, ROOT, basic, berthCli, spawnBerth, tempDir, type RunResult, type ServerProcess } from './helpers.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes a one-layer image over /v2 with Basic credentials. */
async function push(url: string, auth: string, name: string, tag: string): Promise<string> {
  const layer = randomBytes(32);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(4).toString('hex') }));
  for (const blob of [layer, config]) {
    const r = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/octet-stream' }, body: blob });
    assert.equal(r.status, 201, await r.text());
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
    }),
  );
  const r = await fetch(`${url}/v2/${name}/manifests/${tag}`, { method: 'PUT', headers: { authorization: auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
  assert.equal(r.status, 201, await r.text());
  return sha(manifest);
}

function allCommands(cmd: Command, prefix = ''): { path: string; cmd: Command }[] {
  const out: { path: string; cmd: Command }[] = [];
  for (const c of cmd.commands) {
    const p = `${prefix}${c.name()}`;
    out.push({ path: p, cmd: c }, ...allCommands(c, `${p} `));
  }
  return out;
}

describe('[cli] help and version', () => {
  it('every verb and sub-verb has a description and an example in --help', () => {
    const program = buildProgram();
    const cmds = allCommands(program);
    assert.ok(cmds.length > 50, `${cmds.length} commands`);
    const missing: string[] = [];
    for (const { path: p, cmd } of cmds) {
      let help = '';
      cmd.configureOutput({ writeOut: (s) => (help += s), writeErr: (s) => (help += s) });
      cmd.outputHelp();
      if (!cmd.description()) missing.push(`${p}: no description`);
      if (!/\nExamples?:\n {2}\$ berth /.test(help) && !/\nExamples?:\n {2}\$ .*berth /.test(help)) missing.push(`${p}: no example`);
    }
    assert.deepEqual(missing, []);
  });

  it('berth --version prints the package version', async () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await berthCli(['--version'], {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
  });
});

describe('[cli] lifecycle verbs against a running server', () => {
  let srv: ServerProcess;
  let cfg: { dir: string; remove: () => Promise<void> };
  let env: Record<string, string>;
  const cli = (args: string[], input?: string) => berthCli(args, env, input);
  const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const fails = (r: RunResult, re: RegExp, what: string) => {
    assert.equal(r.code, 1, `${what} should fail:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, re, what);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  };
  const loginFile = () => path.join(cfg.dir, 'berth', 'login.json');

  before(async () => {
    srv = await spawnBerth();
    cfg = await tempDir('berth-cli-life-');
    env = { XDG_CONFIG_HOME: cfg.dir, HOME: cfg.dir };
  });
  after(async () => {
    await srv?.stop();
    await cfg?.remove();
  });

  it('login --password-stdin; the password never shows', async () => {
    const r = await cli(['--server', srv.url, 'login', '-u', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    ok(r, 'login');
    assert.ok(!r.stdout.includes(ADMIN_PASSWORD) && !r.stderr.includes(ADMIN_PASSWORD));
    const login = JSON.parse(readFileSync(loginFile(), 'utf8')) as { keyId: number };
    assert.ok(Number.isInteger(login.keyId), 'the key id is kept for logout');
  });

  it('user create --password-stdin, user passwd --password-stdin, passwd (own) with two lines on stdin', async () => {
    ok(await cli(['user', 'create', 'bob', '--password-stdin'], 'bob-password-1\n'), 'user create');
    assert.equal((await fetch(`${srv.url}/api/v1/whoami`, { headers: { authorization: basic('bob', 'bob-password-1') } })).status, 200);
    ok(await cli(['user', 'passwd', 'bob', '--password-stdin'], 'bob-password-2\n'), 'user passwd');
    assert.equal((await fetch(`${srv.url}/api/v1/whoami`, { headers: { authorization: basic('bob', 'bob-password-2') } })).status, 200);
    fails(await cli(['user', 'passwd', 'bob', '--password-stdin'], 'short\n'), /400 .*at least 8/, 'short password');

    const bobCfg = await tempDir('berth-cli-bob-');
    try {
      const bobEnv = { XDG_CONFIG_HOME: bobCfg.dir, HOME: bobCfg.dir };
      ok(await berthCli(['--server', srv.url, 'login', '-u', 'bob', '--password-stdin'], bobEnv, 'bob-password-2'), 'bob login');
      fails(await berthCli(['passwd', '--password-stdin'], bobEnv, 'wrong-password\nbob-password-3\n'), /403 .*current password is wrong/, 'wrong current');
      fails(await berthCli(['passwd', '--password-stdin'], bobEnv, 'only-one-line\n'), /two lines/, 'one line');
      const r = await berthCli(['passwd', '--password-stdin'], bobEnv, 'bob-password-2\nbob-password-3\n');
      ok(r, 'passwd');
      assert.match(r.stdout, /Password changed/);
      assert.equal((await fetch(`${srv.url}/api/v1/whoami`, { headers: { authorization: basic('bob', 'bob-password-3') } })).status, 200);
      assert.equal((await fetch(`${srv.url}/api/v1/whoami`, { headers: { authorization: basic('bob', 'bob-password-2') } })).status, 401);

      // revoke-keys: bob's login key stops working
      const rk = await cli(['--json', 'user', 'revoke-keys', 'bob']);
      ok(rk, 'revoke-keys');
      assert.deepEqual(JSON.parse(rk.stdout), { revoked: 1 });
      fails(await berthCli(['whoami'], bobEnv), /401/, 'revoked key');
    } finally {
      await bobCfg.remove();
    }
  });

  it('org list lists organisations only; org leave; org rm asks for --yes', async () => {
    ok(await cli(['org', 'create', 'acme']), 'org create');
    ok(await cli(['org', 'create', 'umbrella']), 'org create');
    ok(await cli(['org', 'member', 'add', 'acme', 'bob', '-r', 'write']), 'member add');
    const list = JSON.parse((await cli(['--json', 'org', 'list'])).stdout) as { name: string; kind: string }[];
    assert.deepEqual(list.map((o) => o.name), ['acme', 'umbrella'], 'no user namespaces (admin, bob)');
    const table = await cli(['org', 'list']);
    assert.match(table.stdout, /^NAME\s+CREATED/m);
    assert.doesNotMatch(table.stdout, /^bob\b/m);

    fails(await cli(['org', 'leave', 'acme']), /409 .*last owner of acme/, 'last owner');
    const bobLeaves = await berthCli(['--server', srv.url, 'org', 'leave', 'acme'], { ...env, BERTH_API_KEY: await bobKey() });
    ok(bobLeaves, 'bob leaves');
    assert.match(bobLeaves.stdout, /Left acme/);

    const refused = await cli(['org', 'rm', 'umbrella']);
    fails(refused, /pass --yes to confirm/, 'no --yes without a terminal');
    assert.equal((await fetch(`${srv.url}/api/v1/orgs`, { headers: { authorization: basic('admin', ADMIN_PASSWORD) } }).then((r) => r.json()) as unknown[]).length, 2, 'nothing deleted');
    ok(await cli(['org', 'rm', 'umbrella', '--yes']), 'org rm --yes');
    const after = JSON.parse((await cli(['--json', 'org', 'list'])).stdout) as { name: string }[];
    assert.deepEqual(after.map((o) => o.name), ['acme']);
  });

  async function bobKey(): Promise<string> {
    const r = await fetch(`${srv.url}/api/v1/user/api-keys`, {
      method: 'POST',
      headers: { authorization: basic('bob', 'bob-password-3'), 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'test' }),
    });
    assert.equal(r.status, 201);
    return ((await r.json()) as { secret: string }).secret;
  }

  it('image list, tag list, tag rm, image rm, repo rm', async () => {
    const admin = basic('admin', ADMIN_PASSWORD);
    ok(await cli(['repo', 'create', 'acme/prod']), 'repo create');
    const d1 = await push(srv.url, admin, 'acme/prod/app', '1.0');
    await push(srv.url, admin, 'acme/prod/app', '1.1');
    await push(srv.url, admin, 'acme/prod/tools/lint', 'v1');

    const images = JSON.parse((await cli(['--json', 'image', 'list', 'acme/prod'])).stdout) as { name: string; tagCount: number; latestTag: string }[];
    assert.deepEqual(images.map((i) => [i.name, i.tagCount, i.latestTag]), [['acme/prod/app', 2, '1.1'], ['acme/prod/tools/lint', 1, 'v1']]);
    const imageTable = await cli(['image', 'list', 'acme/prod']);
    assert.match(imageTable.stdout, /^NAME\s+TAGCOUNT\s+KIND\s+SIZE\s+LASTPUSHEDAT\s+LATESTTAG$/m);
    assert.match(imageTable.stdout, /^acme\/prod\/app\s+2\s+Container image\s+\d+ B\s+20\d\d-\S+\s+1\.1$/m);
    const tags = await cli(['tag', 'list', 'acme/prod/app']);
    ok(tags, 'tag list');
    assert.match(tags.stdout, /^NAME\s+DIGEST\s+PUSHEDAT/m);
    assert.match(tags.stdout, new RegExp(`^1\\.0\\s+${d1}\\s+20\\d\\d-`, 'm'));
    const filtered = JSON.parse((await cli(['--json', 'tag', 'list', 'acme/prod/app', '-q', '1.1'])).stdout) as { name: string }[];
    assert.deepEqual(filtered.map((t) => t.name), ['1.1']);
    const newest = JSON.parse((await cli(['--json', 'tag', 'list', 'acme/prod/app', '--sort', 'time'])).stdout) as { name: string }[];
    assert.deepEqual(newest.map((t) => t.name), ['1.1', '1.0']);
    const bySemver = JSON.parse((await cli(['--json', 'tag', 'list', 'acme/prod/app', '--sort', 'semver'])).stdout) as { name: string }[];
    assert.deepEqual(bySemver.map((t) => t.name), ['1.1', '1.0']);
    fails(await cli(['tag', 'list', 'acme/prod/app', '--sort', 'size']), /Allowed choices are name, semver, time/, 'bad sort');

    ok(await cli(['tag', 'rm', 'acme/prod/app:1.0']), 'tag rm');
    const left = JSON.parse((await cli(['--json', 'tag', 'list', 'acme/prod/app'])).stdout) as { name: string }[];
    assert.deepEqual(left.map((t) => t.name), ['1.1']);
    fails(await cli(['tag', 'rm', 'acme/prod/app:1.0']), /404/, 'tag gone');
    fails(await cli(['tag', 'rm', 'acme/prod/app']), /expected OWNER\/REPOSITORY\/IMAGE:TAG/, 'no tag');

    fails(await cli(['image', 'rm', 'acme/prod/tools/lint']), /pass --yes/, 'image rm without --yes');
    ok(await cli(['image', 'rm', 'acme/prod/tools/lint', '--yes']), 'image rm');
    const after = JSON.parse((await cli(['--json', 'image', 'list', 'acme/prod'])).stdout) as { name: string }[];
    assert.deepEqual(after.map((i) => i.name), ['acme/prod/app']);

    fails(await cli(['repo', 'rm', 'acme/prod']), /pass --yes/, 'repo rm without --yes');
    ok(await cli(['repo', 'rm', 'acme/prod', '--yes']), 'repo rm');
    fails(await cli(['repo', 'show', 'acme/prod']), /404/, 'repo gone');
  });

  it('audit (table, filters, CSV) and analytics', async () => {
    ok(await cli(['repo', 'create', 'acme/web', '--public']), 'repo create');
    await push(srv.url, basic('admin', ADMIN_PASSWORD), 'acme/web/site', 'v1');
    for (let i = 0; i < 2; i++) assert.equal((await fetch(`${srv.url}/v2/acme/web/site/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).status, 200);
    await new Promise((r) => setTimeout(r, 1500)); // events are written in batches off the request path

    const audit = await cli(['audit', '--repository', 'acme/web', '--action', 'push']);
    ok(audit, 'audit');
    assert.match(audit.stdout, /^TIME\s+ACTION\s+ACTOR\s+REPOSITORY/m);
    assert.match(audit.stdout, /^\S+\s+push\s+admin\b.*acme\/web\/site/m);
    assert.doesNotMatch(audit.stdout, /\bpull\b/);
    const deletes = JSON.parse((await cli(['--json', 'audit', '--action', 'admin', '-n', '200'])).stdout) as { detail: { method: string; route: string } }[];
    assert.ok(deletes.some((e) => e.detail.method === 'DELETE' && e.detail.route === '/api/v1/repos/:owner/:repo'), 'repo rm is in the audit log');
    const csv = await cli(['audit', '--repository', 'acme/web', '--csv']);
    ok(csv, 'audit --csv');
    const lines = csv.stdout.trim().split(/\r?\n/);
    assert.match(lines[0]!, /^id,time,action,/);
    assert.ok(lines.some((l) => l.includes(',pull,')) && lines.some((l) => l.includes(',push,')), csv.stdout);

    const an = await cli(['--json', 'analytics', 'acme/web']);
    ok(an, 'analytics');
    const a = JSON.parse(an.stdout) as { pulls: number; perTag: { tag: string; pulls: number }[] };
    assert.equal(a.pulls, 2);
    assert.deepEqual(a.perTag.map((t) => [t.tag, t.pulls]), [['v1', 2]]);
    const table = await cli(['analytics', 'acme/web']);
    ok(table, 'analytics table');
    assert.match(table.stdout, /^pulls\s+2$/m);
    assert.match(table.stdout, /Per tag\nIMAGE\s+TAG\s+PULLS\nacme\/web\/site\s+v1\s+2/);
  });

  it('user rm --yes deletes a user; logout revokes the key on the server and removes the login file', async () => {
    ok(await cli(['user', 'create', 'carol', '-p', 'carol-password-1']), 'user create');
    fails(await cli(['user', 'rm', 'carol']), /pass --yes/, 'no --yes');
    ok(await cli(['user', 'rm', 'carol', '--yes']), 'user rm');
    const users = JSON.parse((await cli(['--json', 'user', 'list'])).stdout) as { username: string }[];
    assert.deepEqual(users.map((u) => u.username), ['admin', 'bob']);

    const key = (JSON.parse(readFileSync(loginFile(), 'utf8')) as { apiKey: string }).apiKey;
    const out = await cli(['logout']);
    ok(out, 'logout');
    assert.match(out.stdout, /Signed out of/);
    assert.throws(() => statSync(loginFile()), /ENOENT/);
    assert.equal((await fetch(`${srv.url}/api/v1/whoami`, { headers: { authorization: `Bearer ${key}` } })).status, 401, 'the key is revoked');
    const again = await cli(['logout']);
    ok(again, 'logout twice');
    assert.match(again.stderr, /not signed in/);
  });
});
