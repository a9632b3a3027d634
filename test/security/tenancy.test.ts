/**
 * Access and tenancy (docs/security.md): entitlement-token downloads counted on every path that
 * yields a manifest's bytes, with messages that say why a token stopped working (also as skopeo
 * prints them); only owners change owners and an organisation keeps one; anonymous callers
 * cannot tell an existing owner from a missing one on any /api/v1 route; the token realm never
 * comes from the Host header.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/schema.ts';
import { createBerth } from '../../src/main.ts';
import { createSkopeo, SkopeoError } from '../helpers/skopeo.ts';
import {
  ADMIN,
  USER_PASSWORD,
  type EventsBerth,
  type PushedImage,
  type Tenancy,
  api,
  apiOk,
  basic,
  openBerth,
  pushImage,
  setupTenancy,
  sha256,
} from '../events/helpers.ts';

const err = (r: { json: any }) => r.json?.errors?.[0] as { code: string; message: string } | undefined;

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`entitlement tokens (${driver})`, () => {
    let b: EventsBerth;
    let img: PushedImage;
    before(async () => {
      b = await openBerth({ postgres: driver === 'postgres', listen: true });
      await setupTenancy(b.app);
      img = await pushImage(b.app, 'acme/prod/app', 'v1');
    });
    after(async () => {
      await b?.close();
    });
    const token = (body: object) => apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/tokens', ADMIN, body, 201);
    const get = (url: string, authz: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') =>
      api(b.app, method as 'GET', url, authz, undefined, headers);

    it('one download = one GET that yields a manifest (tags, digests, the blobs endpoint); HEAD, 304 and layers are free', async () => {
      const t = await token({ name: 'two', downloadLimit: 2 });
      const auth = basic('token', t.secret);
      const count = async () => (await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/tokens', ADMIN, undefined, 200)).find((x: any) => x.id === t.id).downloadCount;
      const m = JSON.parse(img.bytes.toString()) as { layers: { digest: string }[] };
      assert.equal((await get(`/v2/acme/prod/app/blobs/${m.layers[0]!.digest}`, auth)).status, 200);
      assert.equal((await get('/v2/acme/prod/app/manifests/v1', auth, {}, 'HEAD')).status, 200);
      assert.equal((await get(`/v2/acme/prod/app/manifests/${img.digest}`, auth, { 'if-none-match': `"${img.digest}"` })).status, 304);
      assert.equal(await count(), 0, 'layers, HEAD and 304 are free');
      const bearer = `Bearer ${(await get('/v2/token?service=berth&scope=repository:acme/prod/app:pull', auth)).json.token}`;
      assert.equal((await get('/v2/acme/prod/app/manifests/v1', auth)).status, 200);
      assert.equal(await count(), 1);
      assert.equal((await get(`/v2/acme/prod/app/blobs/${img.digest}`, auth, {}, 'HEAD')).status, 200);
      const viaBlobs = await get(`/v2/acme/prod/app/blobs/${img.digest}`, auth);
      assert.equal(viaBlobs.status, 200);
      assert.equal(sha256(viaBlobs.res.rawPayload), img.digest);
      assert.equal(await count(), 2, 'the manifest through /blobs counts');
      // a bearer token issued before the limit was reached: every manifest path says so
      for (const url of ['/v2/acme/prod/app/manifests/v1', `/v2/acme/prod/app/manifests/${img.digest}`, `/v2/acme/prod/app/blobs/${img.digest}`]) {
        const r = await get(url, bearer);
        assert.equal(r.status, 403, url);
        assert.equal(err(r)?.code, 'DENIED');
        assert.match(err(r)!.message, /download limit reached/);
      }
      // an exhausted token no longer logs in: 403 with Basic; a 401 from the token endpoint
      // (podman prints a token endpoint's message only for a 401)
      const login = await get('/v2/', auth);
      assert.equal(login.status, 403);
      assert.match(err(login)!.message, /download limit reached: this entitlement token allowed 2 downloads/);
      const viaToken = await get('/v2/token?service=berth&scope=repository:acme/prod/app:pull', auth);
      assert.equal(viaToken.status, 401);
      assert.match(err(viaToken)!.message, /download limit reached/);
      assert.equal(await count(), 2);
    });

    it('an expired token says "entitlement token expired on DATE" on /v2, the token endpoint and with a bearer token issued before', async () => {
      const t = await token({ name: 'short', expiresIn: '2s' });
      const auth = basic('token', t.secret);
      const tokenRes = await get('/v2/token?service=berth&scope=repository:acme/prod/app:pull', auth);
      assert.equal(tokenRes.status, 200);
      const jwt = `Bearer ${tokenRes.json.token}`;
      await new Promise((r) => setTimeout(r, 2100));
      const expected = new RegExp(`entitlement token expired on ${t.expiresAt.slice(0, 19)}`);
      for (const [url, authz] of [
        ['/v2/', auth],
        ['/v2/token?service=berth&scope=repository:acme/prod/app:pull', auth],
        ['/v2/acme/prod/app/manifests/v1', auth],
        ['/v2/acme/prod/app/manifests/v1', jwt],
      ] as const) {
        const r = await get(url, authz);
        assert.equal(r.status, 401, `${url}: ${r.res.body}`);
        assert.equal(err(r)?.code, 'UNAUTHORIZED');
        assert.match(err(r)!.message, expected, url);
      }
      // revoked: says so too
      const rv = await token({ name: 'revoked' });
      await apiOk(b.app, 'DELETE', `/api/v1/repos/acme/prod/tokens/${rv.id}`, ADMIN, undefined, 204);
      assert.match(err(await get('/v2/', basic('token', rv.secret)))!.message, /entitlement token revoked/);
      // an unknown secret is still the plain answer
      assert.match(err(await get('/v2/', basic('token', 'berth_t_nonsense')))!.message, /invalid username or password/);
    });

    if (driver === 'sqlite') {
      it('skopeo prints the reason', async () => {
        const skopeo = await createSkopeo();
        try {
          const host = b.url.replace('http://', '');
          const done = await token({ name: 'one', downloadLimit: 1 });
          await skopeo.run(['inspect', '--raw', '--tls-verify=false', '--creds', `token:${done.secret}`, `docker://${host}/acme/prod/app:v1`]);
          const limited = await skopeo.run(['inspect', '--raw', '--tls-verify=false', '--creds', `token:${done.secret}`, `docker://${host}/acme/prod/app:v1`]).then(
            () => assert.fail('the second pull should be refused'),
            (e: SkopeoError) => e.stderr,
          );
          assert.match(limited, /download limit reached/);
          const short = await token({ name: 'short2', expiresIn: '1s' });
          await new Promise((r) => setTimeout(r, 1100));
          const expired = await skopeo.run(['inspect', '--raw', '--tls-verify=false', '--creds', `token:${short.secret}`, `docker://${host}/acme/prod/app:v1`]).then(
            () => assert.fail('an expired token should be refused'),
            (e: SkopeoError) => e.stderr,
          );
          assert.match(expired, /entitlement token expired on/);
        } finally {
          await skopeo.cleanup();
        }
      });
    }
  });
}

describe('owners and existence', () => {
  let b: EventsBerth;
  let ten: Tenancy;
  before(async () => {
    b = await openBerth();
    ten = await setupTenancy(b.app);
  });
  after(async () => {
    await b?.close();
  });

  it('an org admin cannot demote, remove or create an owner; only an owner may; the last owner stays', async () => {
    // dave creates org beta (its owner) and makes bob an admin
    await apiOk(b.app, 'POST', '/api/v1/orgs', ten.dave, { name: 'beta' }, 201);
    await apiOk(b.app, 'PUT', '/api/v1/orgs/beta/members/bob', ten.dave, { role: 'admin' }, 200);
    await apiOk(b.app, 'PUT', '/api/v1/orgs/beta/members/carol', ten.bob, { role: 'write' }, 200); // admins manage members
    for (const [method, url, body] of [
      ['PUT', '/api/v1/orgs/beta/members/dave', { role: 'read' }],
      ['PUT', '/api/v1/orgs/beta/members/dave', { role: 'admin' }],
      ['DELETE', '/api/v1/orgs/beta/members/dave', undefined],
      ['PUT', '/api/v1/orgs/beta/members/carol', { role: 'owner' }],
      ['PUT', '/api/v1/orgs/beta/members/bob', { role: 'owner' }],
    ] as const) {
      const r = await api(b.app, method, url, ten.bob, body);
      assert.equal(r.status, 403, `${method} ${url} ${JSON.stringify(body)}: ${r.res.body}`);
      assert.match(err(r)!.message, /only an owner/);
    }
    const roles = async () => Object.fromEntries(((await apiOk(b.app, 'GET', '/api/v1/orgs/beta/members', ten.dave, undefined, 200)) as any[]).map((m) => [m.username, m.role]));
    assert.deepEqual(await roles(), { dave: 'owner', bob: 'admin', carol: 'write' });
    // the last owner cannot leave or step down
    assert.equal((await api(b.app, 'PUT', '/api/v1/orgs/beta/members/dave', ten.dave, { role: 'admin' })).status, 409);
    assert.equal((await api(b.app, 'DELETE', '/api/v1/orgs/beta/members/dave', ten.dave)).status, 409);
    // an owner hands over
    await apiOk(b.app, 'PUT', '/api/v1/orgs/beta/members/carol', ten.dave, { role: 'owner' }, 200);
    await apiOk(b.app, 'PUT', '/api/v1/orgs/beta/members/dave', ten.dave, { role: 'admin' }, 200);
    assert.equal((await api(b.app, 'DELETE', '/api/v1/orgs/beta/members/carol', ten.carol)).status, 409, 'carol is the last owner now');
    await apiOk(b.app, 'DELETE', '/api/v1/orgs/beta/members/dave', ten.carol, undefined, 204);
    assert.deepEqual(await roles().catch(() => undefined), undefined, 'dave is no longer a member');
    // repository level: a repository admin cannot grant the owner role either
    const r = await api(b.app, 'PUT', '/api/v1/repos/acme/prod/members/dave', ten.bob, { role: 'owner' });
    assert.equal(r.status, 403);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/dave', ten.bob, { role: 'write' }, 200);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/members/dave', ADMIN, { role: 'owner' }, 200);
    assert.equal((await api(b.app, 'DELETE', '/api/v1/repos/acme/prod/members/dave', ten.bob)).status, 403);
  });

  it('anonymous callers get the same answer for an existing and a missing owner on every /api/v1 route', async () => {
    // acme exists with private repositories only; nosuchowner does not exist
    const doc = JSON.parse((await api(b.app, 'GET', '/api/v1/openapi.json')).res.body) as { paths: Record<string, Record<string, unknown>> };
    let compared = 0;
    for (const [path, methods] of Object.entries(doc.paths)) {
      if (!/\{(owner|org)\}/.test(path)) continue;
      for (const method of Object.keys(methods)) {
        const url = (owner: string) => path.replace(/\{(owner|org)\}/g, owner).replace('{repo}', 'prod').replace('{id}', '1').replace('{username}', 'carol');
        const send = (owner: string) => api(b.app, method.toUpperCase() as 'GET', url(owner) + '?image=app&ref=v1', undefined, ['post', 'put', 'patch'].includes(method) ? { name: 'x', role: 'read' } : undefined);
        const [a, m] = [await send('acme'), await send('nosuchowner')];
        assert.equal(a.status, m.status, `${method.toUpperCase()} ${path}: ${a.status} for an existing owner, ${m.status} for a missing one`);
        assert.equal(err(a)?.code, err(m)?.code, `${method.toUpperCase()} ${path}: error codes`);
        compared++;
      }
    }
    assert.ok(compared >= 20, `compared ${compared} routes`);
    assert.equal((await api(b.app, 'GET', '/api/v1/owners/acme/repos')).status, 404);
    // once acme has a public repository, it shows (and only that)
    await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'oss', visibility: 'public' }, 201);
    assert.deepEqual((await apiOk(b.app, 'GET', '/api/v1/owners/acme/repos', undefined, undefined, 200)).map((r: any) => r.name), ['acme/oss']);
    assert.equal((await api(b.app, 'GET', '/api/v1/owners/acme/repos', basic('carol', USER_PASSWORD))).status, 200);
  });
});

describe('the token realm', () => {
  it('comes from a trusted proxy only, else the address the client connected to; never the Host header', async () => {
    const b = await openBerth({ events: { trustedProxies: ['127.0.0.1'] }, listen: true });
    try {
      const realm = (h: Record<string, string>, remoteAddress: string) =>
        b.app.inject({ url: '/v2/', headers: h, remoteAddress }).then((r) => /realm="([^"]+)"/.exec(String(r.headers['www-authenticate']))?.[1]);
      const forwarded = { 'x-forwarded-host': 'registry.example.test', 'x-forwarded-proto': 'https', host: 'internal:5000' };
      assert.equal(await realm(forwarded, '127.0.0.1'), 'https://registry.example.test/v2/token');
      assert.equal(await realm(forwarded, '10.0.0.5'), 'http://localhost:5000/v2/token', 'an untrusted peer: headers ignored');
      assert.equal(await realm({ 'x-forwarded-host': 'bad host"x', host: 'h' }, '127.0.0.1'), 'http://localhost:5000/v2/token', 'a malformed forwarded host is ignored');
      // over a real socket: the address the client connected to, whatever Host it sends
      const port = new URL(b.url).port;
      const res = await new Promise<string>((resolve, reject) => {
        import('node:http').then(({ request }) => {
          const req = request({ host: '127.0.0.1', port, path: '/v2/', headers: { host: 'evil.example:1234' } }, (r) => {
            r.resume();
            resolve(String(r.headers['www-authenticate']));
          });
          req.on('error', reject);
          req.end();
        }, reject);
      });
      assert.match(res, new RegExp(`realm="http://127\\.0\\.0\\.1:${port}/v2/token"`));
    } finally {
      await b.close();
    }
  });

  it('a warning is logged at start-up when auth.publicUrl is unset', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(`${tmpdir()}/berth-realm-`);
    let out = '';
    const logger = pino({ level: 'warn' }, new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) }));
    const berth = await createBerth(loadConfig({ env: {}, overrides: { data: dir } }), logger);
    await berth.close();
    await rm(dir, { recursive: true, force: true });
    assert.match(out, /auth\.publicUrl is not set/);
  });
});
