/**
 * End-to-end credentials with the real skopeo client (Debian package, /usr/bin/skopeo; the
 * tests fail when it is missing, they never skip) against Berth as a child process: admin
 * password, a user's API key, a read-only entitlement token, anonymous pulls of public and
 * private repositories, and the generated first-start admin password.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildImage, readIndexJson, reachableBlobs, resolveTag, type BuiltImage } from '../helpers/oci-layout.ts';
import { ADMIN_PASSWORD, USER_PASSWORD, basic, spawnBerth, tempDir, type ServerProcess } from './helpers.ts';

const SKOPEO = '/usr/bin/skopeo';

interface Sk {
  dir: string;
  authFile: string;
  /** Runs skopeo; resolves with the exit code and output (never rejects on a non-zero exit). */
  run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  copy(src: string, dest: string, creds: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** skopeo isolated from the machine's configuration: own HOME, auth file `{"auths":{}}`, policy. */
async function isolatedSkopeo(root: string): Promise<Sk> {
  const p = (...s: string[]) => path.join(root, ...s);
  for (const d of ['home', 'run', 'config', 'tmp', 'registries.d']) await fsp.mkdir(p(d), { recursive: true });
  const authFile = p('auth.json');
  await fsp.writeFile(authFile, JSON.stringify({ auths: {} }));
  await fsp.writeFile(p('policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await fsp.writeFile(p('registries.conf'), 'unqualified-search-registries = []\n');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: p('home'),
    XDG_RUNTIME_DIR: p('run'),
    XDG_CONFIG_HOME: p('config'),
    DOCKER_CONFIG: p('config'),
    REGISTRY_AUTH_FILE: authFile,
    CONTAINERS_REGISTRIES_CONF: p('registries.conf'),
    TMPDIR: p('tmp'),
  };
  const global = ['--policy', p('policy.json'), '--registries.d', p('registries.d'), '--tmpdir', p('tmp')];
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(SKOPEO, [...global, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), 120_000);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${SKOPEO} (apt-get install -y skopeo): ${e.message}`));
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  return {
    dir: root,
    authFile,
    run,
    copy: (src, dest, creds) =>
      run(['copy', '--authfile', authFile, '--src-tls-verify=false', '--dest-tls-verify=false', ...creds, src, dest]),
  };
}

async function json(url: string, init: { method?: string; authz?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { ...(init.authz ? { authorization: init.authz } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) },
    ...(init.body ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function ok(r: { code: number | null; stderr: string }, what: string): void {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stderr}`);
}

function failed(r: { code: number | null; stderr: string }, what: string, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `${what} should have failed`);
  assert.match(r.stderr, pattern, `${what}: ${r.stderr}`);
}

it('skopeo is installed at /usr/bin/skopeo (required: these tests never skip)', async () => {
  assert.ok(existsSync(SKOPEO), `${SKOPEO} is missing: apt-get install -y skopeo`);
});

describe('skopeo with Berth credentials', () => {
  let srv: ServerProcess;
  let tmp: { dir: string; remove: () => Promise<void> };
  let sk: Sk;
  let layout: string;
  let image: BuiltImage;
  let apiKey: string;
  let entSecret: string;
  const ADMIN = basic('admin', ADMIN_PASSWORD);
  const ref = (name: string) => `docker://${srv.address}/${name}`;

  before(async () => {
    assert.ok(existsSync(SKOPEO), `${SKOPEO} is missing: apt-get install -y skopeo`);
    srv = await spawnBerth();
    tmp = await tempDir('berth-auth-e2e-');
    sk = await isolatedSkopeo(path.join(tmp.dir, 'skopeo'));
    layout = path.join(tmp.dir, 'layout');
    image = await buildImage(layout, { layers: [{ size: 64 * 1024 }, { size: 1000 }] }, 'v1');
    const api = (p: string, body: unknown, authz = ADMIN) => json(`${srv.url}/api/v1${p}`, { method: 'POST', authz, body });
    assert.equal((await api('/users', { username: 'carol', password: USER_PASSWORD })).status, 201);
    assert.equal((await api('/orgs', { name: 'acme' })).status, 201);
    assert.equal((await api('/owners/acme/repos', { name: 'prod' })).status, 201);
    assert.equal((await api('/owners/acme/repos', { name: 'oss', visibility: 'public' })).status, 201);
    const m = await json(`${srv.url}/api/v1/repos/acme/prod/members/carol`, { method: 'PUT', authz: ADMIN, body: { role: 'write' } });
    assert.equal(m.status, 200);
    const key = await api('/user/api-keys', { name: 'skopeo' }, basic('carol', USER_PASSWORD));
    assert.equal(key.status, 201);
    apiKey = key.body.secret;
    const ent = await api('/repos/acme/prod/tokens', { name: 'customer' });
    assert.equal(ent.status, 201);
    entSecret = ent.body.secret;
  });
  after(async () => {
    await srv?.stop();
    await tmp?.remove();
  });

  const src = () => `oci:${layout}:v1`;

  it('auth file starts empty and stays so (credentials only on the command line)', async () => {
    assert.deepEqual(JSON.parse(await fsp.readFile(sk.authFile, 'utf8')), { auths: {} });
  });

  it('push with --dest-creds admin:<password>', async () => {
    ok(await sk.copy(src(), ref('acme/prod/app:v1'), ['--dest-creds', `admin:${ADMIN_PASSWORD}`]), 'push as admin');
    const r = await fetch(`${srv.url}/v2/acme/prod/app/manifests/v1`, { headers: { authorization: ADMIN, accept: image.manifest.mediaType } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('docker-content-digest'), image.manifest.digest);
    assert.deepEqual(JSON.parse(await fsp.readFile(sk.authFile, 'utf8')), { auths: {} });
  });

  it('push with a user API key as password (--dest-creds carol:<apikey>)', async () => {
    ok(await sk.copy(src(), ref('acme/prod/app:by-carol'), ['--dest-creds', `carol:${apiKey}`]), 'push with API key');
    const tags = await json(`${srv.url}/v2/acme/prod/app/tags/list`, { authz: ADMIN });
    assert.deepEqual(tags.body.tags.sort(), ['by-carol', 'v1']);
    // carol may not push to the public repository she only reads
    failed(await sk.copy(src(), ref('acme/oss/app:nope'), ['--dest-creds', `carol:${apiKey}`]), 'push to acme/oss', /denied|403|unauthorized/i);
    // a wrong API key is refused
    failed(await sk.copy(src(), ref('acme/prod/app:bad'), ['--dest-creds', `carol:${apiKey}x`]), 'push with a bad key', /unauthorized|401|authentication/i);
  });

  it('pull with an entitlement token (--src-creds token:<secret>) works; pushing with it is denied', async () => {
    const out = path.join(tmp.dir, 'pulled-ent');
    ok(await sk.copy(ref('acme/prod/app:v1'), `oci:${out}:v1`, ['--src-creds', `token:${entSecret}`]), 'pull with entitlement token');
    const pulled = await resolveTag(out, 'v1');
    assert.equal(pulled.digest, image.manifest.digest);
    const blobs = await reachableBlobs(out, pulled);
    assert.deepEqual(blobs.map((x) => x.digest).sort(), [image.manifest.digest, image.config.digest, ...image.layers.map((l) => l.descriptor.digest)].sort());
    // the OWNER/REPOSITORY username works as well
    ok(await sk.copy(ref('acme/prod/app:v1'), `oci:${path.join(tmp.dir, 'pulled-ent2')}:v1`, ['--src-creds', `acme/prod:${entSecret}`]), 'pull as acme/prod');
    failed(await sk.copy(src(), ref('acme/prod/app:from-token'), ['--dest-creds', `token:${entSecret}`]), 'push with entitlement token', /denied|403/i);
    const tags = await json(`${srv.url}/v2/acme/prod/app/tags/list`, { authz: ADMIN });
    assert.ok(!tags.body.tags.includes('from-token'), 'nothing was tagged');
    // it is good for its own repository only
    ok(await sk.copy(src(), ref('acme/oss/app:v1'), ['--dest-creds', `admin:${ADMIN_PASSWORD}`]), 'push public image as admin');
    failed(await sk.copy(src(), ref('admin/other/app:v1'), ['--dest-creds', `token:${entSecret}`]), 'push elsewhere with token', /denied|403|unknown|404/i);
  });

  it('anonymous pull of a public repository works, of a private one fails', async () => {
    const out = path.join(tmp.dir, 'pulled-anon');
    ok(await sk.copy(ref('acme/oss/app:v1'), `oci:${out}:v1`, ['--src-no-creds']), 'anonymous pull of acme/oss');
    assert.equal((await resolveTag(out, 'v1')).digest, image.manifest.digest);
    const priv = await sk.copy(ref('acme/prod/app:v1'), `oci:${path.join(tmp.dir, 'pulled-anon-priv')}:v1`, ['--src-no-creds']);
    failed(priv, 'anonymous pull of acme/prod', /unauthorized|authentication required|401/i);
    // an anonymous push fails too
    failed(await sk.copy(src(), ref('acme/oss/app:anon'), ['--dest-no-creds']), 'anonymous push', /unauthorized|authentication required|401/i);
    const idx = await readIndexJson(out);
    assert.equal(idx.manifests.length, 1);
  });
});

describe('first start without BERTH_ADMIN_PASSWORD', () => {
  let srv: ServerProcess | undefined;
  let tmp: { dir: string; remove: () => Promise<void> };

  before(async () => {
    tmp = await tempDir('berth-auth-first-');
  });
  after(async () => {
    await srv?.stop();
    await tmp?.remove();
  });

  it('prints the generated admin password once; it works with skopeo right away (repository auto-created private)', async () => {
    const dataDir = path.join(tmp.dir, 'data');
    await fsp.mkdir(dataDir);
    srv = await spawnBerth({ adminPassword: null, dataDir, keepData: true });
    // the banner is written right after listening: give it a moment
    for (let i = 0; i < 50 && !/password: /.test(srv.stdout()); i++) await new Promise((r) => setTimeout(r, 100));
    const out = srv.stdout();
    const m = /^\s*password: (\S+)$/m.exec(out);
    assert.ok(m, `no generated password on stdout:\n${out}`);
    const password = m[1]!;
    assert.ok(password.length >= 16, 'a long random password');
    assert.match(out, /username: admin/);
    assert.equal(out.split(password).length - 1, 1, 'printed exactly once');
    assert.ok(!srv.stderr().includes(password), 'not in the logs (stderr)');

    const sk = await isolatedSkopeo(path.join(tmp.dir, 'skopeo'));
    const layout = path.join(tmp.dir, 'layout');
    const image = await buildImage(layout, { layers: [{ size: 2048 }] }, '1');
    ok(await sk.copy(`oci:${layout}:1`, `docker://${srv.address}/admin/scratch/app:1`, ['--dest-creds', `admin:${password}`]), 'push with generated password');
    const repo = await json(`${srv.url}/api/v1/repos/admin/scratch`, { authz: basic('admin', password) });
    assert.equal(repo.status, 200);
    assert.equal(repo.body.visibility, 'private', 'auto-created private');
    const m2 = await fetch(`${srv.url}/v2/admin/scratch/app/manifests/1`, { headers: { authorization: basic('admin', password), accept: image.manifest.mediaType } });
    assert.equal(m2.headers.get('docker-content-digest'), image.manifest.digest);
    assert.equal((await fetch(`${srv.url}/v2/admin/scratch/app/manifests/1`)).status, 401, 'anonymous may not pull it');
    failed(
      await sk.copy(`docker://${srv.address}/admin/scratch/app:1`, `oci:${path.join(tmp.dir, 'anon')}:1`, ['--src-no-creds']),
      'anonymous pull of the auto-created repository',
      /unauthorized|authentication required|401/i,
    );
    // a wrong password is refused
    failed(await sk.copy(`oci:${layout}:1`, `docker://${srv.address}/admin/scratch/app:2`, ['--dest-creds', 'admin:wrong-password']), 'wrong password', /unauthorized|401|authentication/i);

    // restart on the same data: no new password is generated or printed, the old one still works
    await srv.stop();
    srv = await spawnBerth({ adminPassword: null, dataDir, keepData: true });
    await new Promise((r) => setTimeout(r, 500));
    assert.doesNotMatch(srv.stdout(), /password:/);
    assert.equal((await fetch(`${srv.url}/v2/`, { headers: { authorization: basic('admin', password) } })).status, 200);
  });
});
