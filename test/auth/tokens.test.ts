/**
 * Authentication on the wire: the /v2/ version check, the Docker token endpoint, bearer-token
 * verification (forged, tampered, expired, foreign tokens), API key and entitlement token
 * revocation, expiry and download limits, the failed-login limiter, and that no secret reaches
 * the logs.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { SignJWT, base64url, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { pino } from 'pino';
import {
  ADMIN_PASSWORD,
  USER_PASSWORD,
  api,
  apiOk,
  assertError,
  basic,
  bearer,
  fetchToken,
  jwtPayload,
  openAuthBerth,
  pushImage,
  type AuthBerth,
  type PushedImage,
} from './helpers.ts';

const ADMIN = basic('admin', ADMIN_PASSWORD);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** users bob (read on acme/priv), carol (write on acme/priv), eve (nothing); acme/pub public. */
async function populate(b: AuthBerth): Promise<{ priv: PushedImage; pub: PushedImage }> {
  for (const u of ['bob', 'carol', 'eve']) await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: u, password: USER_PASSWORD }, 201);
  await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
  await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'priv' }, 201);
  await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'pub', visibility: 'public' }, 201);
  await apiOk(b.app, 'PUT', '/api/v1/repos/acme/priv/members/bob', ADMIN, { role: 'read' }, 200);
  await apiOk(b.app, 'PUT', '/api/v1/repos/acme/priv/members/carol', ADMIN, { role: 'write' }, 200);
  return { priv: await pushImage(b.app, 'acme/priv/app', 'v1', ADMIN), pub: await pushImage(b.app, 'acme/pub/app', 'v1', ADMIN) };
}

describe('tokens and credentials', () => {
  let b: AuthBerth;
  let imgs: { priv: PushedImage; pub: PushedImage };
  const BOB = basic('bob', USER_PASSWORD);
  const EVE = basic('eve', USER_PASSWORD);

  before(async () => {
    // many deliberate failures below: keep the failed-login limiter out of the way here
    b = await openAuthBerth({ auth: { maxLoginFailures: 1000, maxUserLoginFailures: 1000, loginMaxDelaySeconds: 0 } });
    imgs = await populate(b);
  });
  after(() => b?.close());

  const get = (url: string, authz?: string, method: 'GET' | 'HEAD' = 'GET') =>
    b.app.inject({ method, url, headers: authz ? { authorization: authz } : {} });

  describe('GET /v2/', () => {
    it('anonymous → 401 with a challenge pointing at the token endpoint', async () => {
      const res = await get('/v2/');
      assertError(res, 401, 'UNAUTHORIZED');
      // inject() has no socket address: the configured listen address (:5000) stands in
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="http:\/\/localhost:5000\/v2\/token",service="berth"$/);
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    });

    it('200 with Basic credentials, with an API key, and with a bearer token', async () => {
      assert.equal((await get('/v2/', BOB)).statusCode, 200);
      const key = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', BOB, {}, 201);
      assert.equal((await get('/v2/', basic('bob', key.secret))).statusCode, 200);
      const token = await fetchToken(b.app, BOB, []);
      const res = await get('/v2/', bearer(token));
      assert.equal(res.statusCode, 200);
      assert.equal(res.body, '{}');
    });

    it('wrong password, unknown user, and an unknown scheme → 401', async () => {
      assertError(await get('/v2/', basic('bob', 'wrong-password')), 401, 'UNAUTHORIZED');
      assertError(await get('/v2/', basic('nobody', 'wrong-password')), 401, 'UNAUTHORIZED');
      assertError(await get('/v2/', 'Digest username="bob"'), 401, 'UNAUTHORIZED');
      assertError(await get('/v2/', basic('bob', '')), 401, 'UNAUTHORIZED');
    });

    it('the realm never follows the request Host; auth.publicUrl when set', async () => {
      const res = await b.app.inject({ url: '/v2/', headers: { host: 'registry.example.test:5443' } });
      assert.match(String(res.headers['www-authenticate']), /realm="http:\/\/localhost:5000\/v2\/token"/);
      const spoofed = await b.app.inject({ url: '/v2/', headers: { host: 'evil.test', 'x-forwarded-host': 'evil.test', 'x-forwarded-proto': 'https' } });
      assert.doesNotMatch(String(spoofed.headers['www-authenticate']), /evil/);
      const other = await openAuthBerth({ auth: { publicUrl: 'https://reg.example.com/' } });
      try {
        const r = await other.app.inject({ url: '/v2/acme/x/app/tags/list' });
        assert.equal(
          r.headers['www-authenticate'],
          'Bearer realm="https://reg.example.com/v2/token",service="berth",scope="repository:acme/x/app:pull"',
        );
      } finally {
        await other.close();
      }
    });
  });

  describe('GET /v2/token', () => {
    it('wrong password → 401 (and the same answer for an unknown user)', async () => {
      const a = await get('/v2/token?service=berth&scope=repository:acme/priv/app:pull', basic('bob', 'not-the-password'));
      const z = await get('/v2/token?service=berth&scope=repository:acme/priv/app:pull', basic('zed', 'not-the-password'));
      assertError(a, 401, 'UNAUTHORIZED');
      assert.equal(a.body, z.body);
      assert.ok(a.headers['www-authenticate']);
    });

    it('returns token, access_token, expires_in and issued_at; the JWT says who and what', async () => {
      const t0 = Date.now();
      const res = await get('/v2/token?service=berth&scope=repository:acme/priv/app:pull', BOB);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['cache-control'], 'no-store');
      const body = JSON.parse(res.body) as { token: string; access_token: string; expires_in: number; issued_at: string };
      assert.equal(typeof body.token, 'string');
      assert.equal(body.access_token, body.token);
      assert.equal(body.expires_in, 300);
      const issued = Date.parse(body.issued_at);
      assert.ok(Math.abs(issued - t0) < 5000, `issued_at ${body.issued_at} is now`);
      const header = JSON.parse(Buffer.from(body.token.split('.')[0]!, 'base64url').toString()) as { alg: string; kid: string };
      assert.equal(header.alg, 'ES256');
      assert.ok(header.kid);
      const p = jwtPayload(body.token);
      assert.equal(p.iss, 'berth');
      assert.equal(p.aud, 'berth');
      assert.equal(p.sub, 'bob');
      assert.equal(p.exp - p.iat, 300);
      assert.deepEqual(p.access, [{ type: 'repository', name: 'acme/priv/app', actions: ['pull'] }]);
    });

    it('grants only the requested actions the identity holds', async () => {
      const t = await fetchToken(b.app, BOB, ['repository:acme/priv/app:pull,push,delete']);
      assert.deepEqual(jwtPayload(t).access, [{ type: 'repository', name: 'acme/priv/app', actions: ['pull'] }]);
      const c = await fetchToken(b.app, basic('carol', USER_PASSWORD), ['repository:acme/priv/app:*']);
      assert.deepEqual(jwtPayload(c).access[0].actions.sort(), ['pull', 'push']);
      const a = await fetchToken(b.app, ADMIN, ['repository:acme/priv/app:*']);
      assert.deepEqual(jwtPayload(a).access[0].actions.sort(), ['delete', 'pull', 'push']);
      const anon = await fetchToken(b.app, undefined, ['repository:acme/pub/app:pull,push']);
      assert.deepEqual(jwtPayload(anon).access, [{ type: 'repository', name: 'acme/pub/app', actions: ['pull'] }]);
      assert.equal(jwtPayload(anon).sub, '');
    });

    it('several scope parameters (and space-separated scopes); malformed ones are ignored', async () => {
      const q =
        'service=berth&scope=repository:acme/priv/app:pull&scope=' +
        encodeURIComponent('repository:acme/pub/app:pull,push repository:acme/priv/app:push') +
        '&scope=registry:catalog:*&scope=garbage&scope=repository:acme/priv/app&scope=user:foo:pull';
      const res = await get(`/v2/token?${q}`, basic('carol', USER_PASSWORD));
      assert.equal(res.statusCode, 200, res.body);
      const p = jwtPayload(JSON.parse(res.body).token);
      assert.deepEqual(p.access, [
        { type: 'repository', name: 'acme/priv/app', actions: ['pull', 'push'] },
        { type: 'repository', name: 'acme/pub/app', actions: ['pull'] },
        { type: 'registry', name: 'catalog', actions: ['*'] },
      ]);
      // the token works for both names, with exactly those actions
      const tok = bearer(JSON.parse(res.body).token);
      assert.equal((await get('/v2/acme/priv/app/manifests/v1', tok)).statusCode, 200);
      assert.equal((await get('/v2/acme/pub/app/manifests/v1', tok)).statusCode, 200);
      assertError(await b.app.inject({ method: 'POST', url: '/v2/acme/pub/app/blobs/uploads/', headers: { authorization: tok } }), 403, 'DENIED');
      assert.equal((await b.app.inject({ method: 'POST', url: '/v2/acme/priv/app/blobs/uploads/', headers: { authorization: tok } })).statusCode, 202);
    });

    it('a scope on a repository the identity cannot access → empty actions; the token then gets 404 (user) or 401 (anonymous)', async () => {
      const t = await fetchToken(b.app, EVE, ['repository:acme/priv/app:pull']);
      assert.deepEqual(jwtPayload(t).access, [{ type: 'repository', name: 'acme/priv/app', actions: [] }]);
      assertError(await get('/v2/acme/priv/app/manifests/v1', bearer(t)), 404, 'NAME_UNKNOWN');
      const anon = await fetchToken(b.app, undefined, ['repository:acme/priv/app:pull']);
      assert.deepEqual(jwtPayload(anon).access, [{ type: 'repository', name: 'acme/priv/app', actions: [] }]);
      const res = await get('/v2/acme/priv/app/manifests/v1', bearer(anon));
      assertError(res, 401, 'UNAUTHORIZED');
      assert.match(String(res.headers['www-authenticate']), /scope="repository:acme\/priv\/app:pull"/);
      // an invalid name in a scope is granted nothing
      const bad = await fetchToken(b.app, ADMIN, ['repository:ACME/../x:pull']);
      assert.deepEqual(jwtPayload(bad).access, [{ type: 'repository', name: 'ACME/../x', actions: [] }]);
    });

    it('a token for another service is refused: ?service=other → 400', async () => {
      const res = await get('/v2/token?service=other&scope=repository:acme/priv/app:pull', BOB);
      assert.equal(res.statusCode, 400, res.body);
      assert.match(res.body, /service/);
    });

    it('POST /v2/token: OAuth2 password grant', async () => {
      const post = (form: Record<string, string>) =>
        b.app.inject({
          method: 'POST',
          url: '/v2/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams(form).toString(),
        });
      const ok = await post({ grant_type: 'password', username: 'bob', password: USER_PASSWORD, service: 'berth', scope: 'repository:acme/priv/app:pull', client_id: 'test' });
      assert.equal(ok.statusCode, 200, ok.body);
      const body = JSON.parse(ok.body);
      assert.deepEqual(jwtPayload(body.access_token).access, [{ type: 'repository', name: 'acme/priv/app', actions: ['pull'] }]);
      assertError(await post({ grant_type: 'password', username: 'bob', password: 'wrong-one!', service: 'berth' }), 401, 'UNAUTHORIZED');
      const rt = await post({ grant_type: 'refresh_token', refresh_token: 'x', service: 'berth' });
      assert.equal(rt.statusCode, 400, rt.body);
    });
  });

  describe('bearer token verification', () => {
    let signingKey: JWK;
    let kid: string;

    before(async () => {
      signingKey = JSON.parse(b.berth.registry.keyring.decryptText((await b.berth.accessStore.getSetting('token_signing_key'))!, 'token-signing-key')) as JWK;
      const t = await fetchToken(b.app, BOB, []);
      kid = JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()).kid as string;
    });

    async function craft(opts: { iss?: string; aud?: string; exp?: number; nbf?: number; berth?: unknown; key?: JWK } = {}): Promise<string> {
      const now = Math.floor(Date.now() / 1000);
      const key = await importJWK({ ...(opts.key ?? signingKey), alg: 'ES256' }, 'ES256');
      const user = await b.berth.accessStore.findUserByName('bob');
      return new SignJWT({
        access: [{ type: 'repository', name: 'acme/priv/app', actions: ['pull', 'push', 'delete'] }],
        berth: opts.berth ?? { k: 'user', id: user!.id, u: 'bob', a: false },
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid })
        .setIssuer(opts.iss ?? 'berth')
        .setAudience(opts.aud ?? 'berth')
        .setSubject('bob')
        .setIssuedAt(now - 10)
        .setNotBefore(opts.nbf ?? now - 10)
        .setExpirationTime(opts.exp ?? now + 300)
        .sign(key);
    }

    const DELETE_URL = () => `/v2/acme/priv/app/manifests/${imgs.priv.manifestDigest}`;
    const probe = (token: string) => get('/v2/acme/priv/app/tags/list', bearer(token));
    function assertRefused(res: Awaited<ReturnType<typeof probe>>, what: string): void {
      assertError(res, 401, 'UNAUTHORIZED', what);
      assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/, what);
    }

    it('a token crafted with the server key and valid claims is accepted (so the refusals below are meaningful)', async () => {
      const t = await craft();
      assert.equal((await probe(t)).statusCode, 200);
    });

    it('an expired token is refused', async () => {
      const now = Math.floor(Date.now() / 1000);
      assertRefused(await probe(await craft({ exp: now - 60 })), 'expired');
    });

    it('a token not yet valid is refused', async () => {
      const now = Math.floor(Date.now() / 1000);
      assertRefused(await probe(await craft({ nbf: now + 120 })), 'nbf in the future');
    });

    it('a token for another audience or from another issuer is refused, even with the right key', async () => {
      assertRefused(await probe(await craft({ aud: 'other' })), 'aud other');
      assertRefused(await probe(await craft({ iss: 'other' })), 'iss other');
    });

    it('a token without the berth claim, or with a malformed one, is refused', async () => {
      assertRefused(await probe(await craft({ berth: { k: 'user' } })), 'claim without id');
      assertRefused(await probe(await craft({ berth: { k: 'root', id: 1 } })), 'unknown kind');
    });

    it('a token signed by another key is refused', async () => {
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      assertRefused(await probe(await craft({ key: await exportJWK(privateKey) })), 'other key');
    });

    it('alg none and HS256 (key confusion) are refused', async () => {
      const good = await craft();
      const [, payload] = good.split('.');
      const none = `${base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${payload}.`;
      assertRefused(await probe(none), 'alg none');
      const { d: _d, ...pub } = signingKey;
      const hs = await new SignJWT(jwtPayload(good))
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .sign(new TextEncoder().encode(JSON.stringify(pub)));
      assertRefused(await probe(hs), 'HS256');
    });

    it('a tampered payload or signature is refused', async () => {
      const t = await fetchToken(b.app, BOB, ['repository:acme/priv/app:pull']);
      assert.equal((await probe(t)).statusCode, 200);
      const [h, p, s] = t.split('.') as [string, string, string];
      const claims = jwtPayload(t);
      claims.access = [{ type: 'repository', name: 'acme/priv/app', actions: ['pull', 'push', 'delete'] }];
      const forged = `${h}.${base64url.encode(JSON.stringify(claims))}.${s}`;
      assertRefused(await b.app.inject({ method: 'DELETE', url: DELETE_URL(), headers: { authorization: bearer(forged) } }), 'tampered payload');
      const claims2 = jwtPayload(t);
      claims2.berth.a = true; // promote to site admin
      assertRefused(await probe(`${h}.${base64url.encode(JSON.stringify(claims2))}.${s}`), 'tampered admin flag');
      const sig = Buffer.from(s, 'base64url');
      sig[10] = sig[10]! ^ 0xff;
      assertRefused(await probe(`${h}.${p}.${sig.toString('base64url')}`), 'tampered signature');
      assertRefused(await probe(`${h}.${p}`), 'truncated');
      assertRefused(await probe('not-a-jwt'), 'garbage');
      // the manifest is still there
      assert.equal((await get(DELETE_URL(), ADMIN)).statusCode, 200);
    });

    it('a token issued by another Berth (own key, service "other") is refused', async () => {
      const other = await openAuthBerth({ auth: { service: 'other' } });
      try {
        const res = await other.app.inject({ url: '/v2/token?service=other&scope=repository:acme/priv/app:pull', headers: { authorization: ADMIN } });
        assert.equal(res.statusCode, 200, res.body);
        const foreign = JSON.parse(res.body).token as string;
        assert.equal(jwtPayload(foreign).aud, 'other');
        // the other instance accepts its own token …
        assert.notEqual((await other.app.inject({ url: '/v2/', headers: { authorization: bearer(foreign) } })).statusCode, 401);
        // … this one does not, even though both say "admin"
        assertRefused(await get('/v2/', bearer(foreign)), 'foreign token on /v2/');
        assertRefused(await get('/v2/acme/priv/app/tags/list', bearer(foreign)), 'foreign token');
        // and a same-service token from an instance with another key is refused too
        const twin = await openAuthBerth();
        try {
          const tt = JSON.parse((await twin.app.inject({ url: '/v2/token?service=berth', headers: { authorization: ADMIN } })).body).token as string;
          assert.equal(jwtPayload(tt).aud, 'berth');
          assertRefused(await get('/v2/_catalog', bearer(tt)), 'same service, other key');
        } finally {
          await twin.close();
        }
      } finally {
        await other.close();
      }
    });
  });

  describe('API keys', () => {
    it('a revoked API key is refused on Basic, on /v2/token and on /api/v1', async () => {
      const carol = basic('carol', USER_PASSWORD);
      const key = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', carol, { name: 'to-revoke' }, 201);
      const viaKey = basic('carol', key.secret);
      // works before
      assert.equal((await get('/v2/acme/priv/app/manifests/v1', viaKey)).statusCode, 200);
      assert.equal((await get('/v2/token?service=berth', viaKey)).statusCode, 200);
      assert.equal((await apiOk(b.app, 'GET', '/api/v1/whoami', bearer(key.secret), undefined, 200)).username, 'carol');
      assert.equal((await apiOk(b.app, 'GET', '/api/v1/whoami', viaKey, undefined, 200)).username, 'carol');
      // the key is only good with its own user's name
      assertError(await get('/v2/acme/priv/app/manifests/v1', basic('bob', key.secret)), 401, 'UNAUTHORIZED');
      // another user cannot revoke it
      assert.equal((await api(b.app, 'DELETE', `/api/v1/user/api-keys/${key.id}`, BOB)).status, 404);
      await apiOk(b.app, 'DELETE', `/api/v1/user/api-keys/${key.id}`, carol, undefined, 204);
      assertError(await get('/v2/acme/priv/app/manifests/v1', viaKey), 401, 'UNAUTHORIZED');
      assertError(await get('/v2/token?service=berth&scope=repository:acme/priv/app:pull', viaKey), 401, 'UNAUTHORIZED');
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', bearer(key.secret))).status, 401);
      assert.equal((await api(b.app, 'GET', '/api/v1/whoami', viaKey)).status, 401);
      assert.equal((await api(b.app, 'POST', '/api/v1/user/api-keys', bearer(key.secret), {})).status, 401);
      const listed = (await apiOk(b.app, 'GET', '/api/v1/user/api-keys', carol, undefined, 200)) as { id: number; revokedAt: string | null }[];
      assert.ok(listed.find((k) => k.id === key.id)!.revokedAt, 'listed as revoked');
    });

    it('an expired API key is refused', async () => {
      const key = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', BOB, { name: 'short', expiresIn: '1s' }, 201);
      assert.equal((await get('/v2/', basic('bob', key.secret))).statusCode, 200);
      await sleep(1300);
      assertError(await get('/v2/', basic('bob', key.secret)), 401, 'UNAUTHORIZED');
    });
  });

  describe('entitlement tokens', () => {
    const create = (body: Record<string, unknown>) => apiOk(b.app, 'POST', '/api/v1/repos/acme/priv/tokens', ADMIN, body, 201);

    it('pull only: push, delete and the management API are refused', async () => {
      const t = await create({ name: 'ro' });
      const a = basic('token', t.secret);
      assert.equal((await get('/v2/acme/priv/app/manifests/v1', a)).statusCode, 200);
      assert.equal((await get(`/v2/acme/priv/app/blobs/${imgs.priv.layerDigest}`, a)).statusCode, 200);
      assertError(await b.app.inject({ method: 'POST', url: '/v2/acme/priv/app/blobs/uploads/', headers: { authorization: a } }), 403, 'DENIED');
      assertError(await b.app.inject({ method: 'DELETE', url: `/v2/acme/priv/app/manifests/${imgs.priv.manifestDigest}`, headers: { authorization: a } }), 403, 'DENIED');
      assert.deepEqual(await apiOk(b.app, 'GET', '/api/v1/whoami', a, undefined, 200), { kind: 'entitlement' });
      assert.equal((await api(b.app, 'POST', '/api/v1/user/api-keys', a, {})).status, 401);
      assert.equal((await api(b.app, 'GET', '/api/v1/repos/acme/priv/tokens', a)).status, 403);
      // the wrong OWNER/REPOSITORY as username is refused
      assertError(await get('/v2/acme/priv/app/manifests/v1', basic('acme/pub', t.secret)), 401, 'UNAUTHORIZED');
      // an entitlement secret is not an API key and vice versa
      assertError(await get('/v2/', basic('admin', t.secret)), 401, 'UNAUTHORIZED');
    });

    it('a revoked entitlement token is refused (Basic and /v2/token)', async () => {
      const t = await create({ name: 'revoke-me' });
      const a = basic('token', t.secret);
      assert.equal((await get('/v2/acme/priv/app/manifests/v1', a)).statusCode, 200);
      await apiOk(b.app, 'DELETE', `/api/v1/repos/acme/priv/tokens/${t.id}`, ADMIN, undefined, 204);
      assertError(await get('/v2/acme/priv/app/manifests/v1', a), 401, 'UNAUTHORIZED');
      assertError(await get('/v2/token?service=berth&scope=repository:acme/priv/app:pull', a), 401, 'UNAUTHORIZED');
      assertError(await get('/v2/acme/priv/app/manifests/v1', basic('acme/priv', t.secret)), 401, 'UNAUTHORIZED');
      // revoking again, or through another repository, is not found
      assert.equal((await api(b.app, 'DELETE', `/api/v1/repos/acme/pub/tokens/${t.id}`, ADMIN)).status, 404);
    });

    it('an expired entitlement token is refused', async () => {
      const t = await create({ name: 'short', expiresIn: '1s' });
      const a = basic('token', t.secret);
      assert.equal((await get('/v2/acme/priv/app/manifests/v1', a)).statusCode, 200);
      await sleep(1500);
      assertError(await get('/v2/acme/priv/app/manifests/v1', a), 401, 'UNAUTHORIZED');
      assertError(await get('/v2/token?service=berth&scope=repository:acme/priv/app:pull', a), 401, 'UNAUTHORIZED');
    });

    it('download limit: two manifest GETs, then 403 DENIED (HEAD and blobs do not count)', async () => {
      const t = await create({ name: 'limited', downloadLimit: 2 });
      const a = basic('token', t.secret);
      const m = '/v2/acme/priv/app/manifests/v1';
      assert.equal((await get(m, a, 'HEAD')).statusCode, 200);
      assert.equal((await get(`/v2/acme/priv/app/blobs/${imgs.priv.layerDigest}`, a)).statusCode, 200);
      assert.equal((await get(m, a)).statusCode, 200);
      assert.equal((await get(m, a)).statusCode, 200);
      const third = await get(m, a);
      assertError(third, 403, 'DENIED');
      assert.match(third.body, /download limit/);
      const listed = (await apiOk(b.app, 'GET', '/api/v1/repos/acme/priv/tokens', ADMIN, undefined, 200)) as { id: number; downloadCount: number; downloadLimit: number }[];
      const row = listed.find((x) => x.id === t.id)!;
      assert.equal(row.downloadCount, 2);
      assert.equal(row.downloadLimit, 2);
      // no fresh bearer token either: a 401 that says why (podman prints a token endpoint's message only for a 401)
      const refused = await get('/v2/token?service=berth&scope=repository:acme/priv/app:pull', a);
      assertError(refused, 401, 'UNAUTHORIZED');
      assert.match(refused.body, /download limit reached/);
    });

    it('download limit also holds for a bearer token issued before it was reached', async () => {
      const t = await create({ name: 'limited-bearer', downloadLimit: 1 });
      const tok = bearer(await fetchToken(b.app, basic('token', t.secret), ['repository:acme/priv/app:pull']));
      assert.equal((await get('/v2/acme/priv/app/manifests/v1', tok)).statusCode, 200);
      assertError(await get('/v2/acme/priv/app/manifests/v1', tok), 403, 'DENIED');
    });
  });
});

describe('failed-login limits', () => {
  it('10 failures (the default) of one username from one address → 429 with Retry-After for that pair only', async (t) => {
    const b = await openAuthBerth({ auth: { loginMaxDelaySeconds: 0 } });
    t.after(() => b.close());
    const ip = { remoteAddress: '10.1.1.1' };
    for (let i = 0; i < 10; i++) {
      const r = await b.app.inject({ url: '/v2/', headers: { authorization: basic('admin', `wrong-${i}`) }, ...ip });
      assertError(r, 401, 'UNAUTHORIZED', `failure ${i + 1}`);
    }
    for (const authz of [basic('admin', 'wrong-again'), basic('admin', ADMIN_PASSWORD)]) {
      const r = await b.app.inject({ url: '/v2/', headers: { authorization: authz }, ...ip });
      assertError(r, 429, 'TOOMANYREQUESTS');
      const after = Number(r.headers['retry-after']);
      assert.ok(Number.isInteger(after) && after > 0 && after <= 300, `Retry-After ${r.headers['retry-after']}`);
    }
    // the token endpoint and the management API are limited too
    assertError(await b.app.inject({ url: '/v2/token?service=berth', headers: { authorization: basic('admin', ADMIN_PASSWORD) }, ...ip }), 429, 'TOOMANYREQUESTS');
    assert.equal((await b.app.inject({ url: '/api/v1/whoami', headers: { authorization: basic('admin', ADMIN_PASSWORD) }, ...ip })).statusCode, 429);
    // … but the right password from an address that has not failed works
    assert.equal((await b.app.inject({ url: '/v2/', headers: { authorization: basic('admin', ADMIN_PASSWORD) }, remoteAddress: '10.2.2.2' })).statusCode, 200);
  });

  it('the numbers come from the config; other users at the same address are never held back; API keys are never limited', async (t) => {
    const b = await openAuthBerth({ auth: { maxLoginFailures: 3, maxUserLoginFailures: 5, loginMaxDelaySeconds: 0 } });
    t.after(() => b.close());
    await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'bob', password: USER_PASSWORD }, 201);
    await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'carol', password: USER_PASSWORD }, 201);
    const key = await apiOk(b.app, 'POST', '/api/v1/user/api-keys', basic('bob', USER_PASSWORD), {}, 201);
    const at = (addr: string, authz: string) => b.app.inject({ url: '/v2/', headers: { authorization: authz }, remoteAddress: addr });
    for (let i = 0; i < 3; i++) assertError(await at('10.0.0.1', basic('bob', 'bad-password')), 401, 'UNAUTHORIZED');
    assertError(await at('10.0.0.1', basic('bob', 'bad-password')), 429, 'TOOMANYREQUESTS');
    assert.equal((await at('10.0.0.1', basic('carol', USER_PASSWORD))).statusCode, 200);
    assert.equal((await at('10.0.0.1', basic('bob', key.secret))).statusCode, 200);
    // failures with different usernames from one address hold back none of them beyond their own pair
    for (const u of ['x1', 'x2', 'x3', 'x4']) assertError(await at('10.9.9.9', basic(u, 'bad-password')), 401, 'UNAUTHORIZED');
    assert.equal((await at('10.9.9.9', basic('carol', USER_PASSWORD))).statusCode, 200);
    // bad API keys are not counted: a 256-bit secret is not guessed
    const apiKeyAt = (addr: string, k: string) => b.app.inject({ url: '/api/v1/whoami', headers: { authorization: bearer(k) }, remoteAddress: addr });
    for (let i = 0; i < 5; i++) assert.equal((await apiKeyAt('10.7.7.7', `berth_k_bogus${i}`)).statusCode, 401);
    assert.equal((await apiKeyAt('10.7.7.7', key.secret)).statusCode, 200);
  });
});

describe('secrets never reach the logs', () => {
  it('passwords, API keys, entitlement secrets, bearer tokens and Authorization headers are not logged', async (t) => {
    let out = '';
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out += chunk.toString('utf8');
        cb();
      },
    });
    const logger = pino({ level: 'trace' }, stream);
    const b = await openAuthBerth({ logger });
    t.after(() => b.close());
    const app = b.app;
    await apiOk(app, 'POST', '/api/v1/users', ADMIN, { username: 'bob', password: USER_PASSWORD }, 201);
    await apiOk(app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    await apiOk(app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'priv' }, 201);
    const key = await apiOk(app, 'POST', '/api/v1/user/api-keys', basic('bob', USER_PASSWORD), { name: 'k' }, 201);
    const ent = await apiOk(app, 'POST', '/api/v1/repos/acme/priv/tokens', ADMIN, {}, 201);
    await pushImage(app, 'acme/priv/app', 'v1', ADMIN);
    const jwt = await fetchToken(app, basic('bob', key.secret), ['repository:acme/priv/app:pull']);
    const entJwt = await fetchToken(app, basic('token', ent.secret), ['repository:acme/priv/app:pull']);
    await app.inject({ url: '/v2/acme/priv/app/manifests/v1', headers: { authorization: bearer(jwt) } });
    await app.inject({ url: '/v2/acme/priv/app/manifests/v1', headers: { authorization: bearer(entJwt) } });
    await app.inject({ url: '/v2/acme/priv/app/manifests/v1', headers: { authorization: basic('token', ent.secret) } });
    await app.inject({ url: '/api/v1/whoami', headers: { authorization: bearer(key.secret) } });
    await app.inject({ url: '/v2/', headers: { authorization: basic('bob', 'a-wrong-password-123') } });
    await app.inject({ url: '/v2/', headers: { authorization: bearer(jwt + 'x') } });
    await app.inject({
      method: 'POST',
      url: '/v2/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'password', username: 'bob', password: USER_PASSWORD, service: 'berth' }).toString(),
    });
    await apiOk(app, 'DELETE', `/api/v1/user/api-keys/${key.id}`, basic('bob', USER_PASSWORD), undefined, 204);
    await app.inject({ url: '/v2/', headers: { authorization: basic('bob', key.secret) } }); // revoked key: a failed login

    assert.ok(out.length > 0, 'the logger captured something');
    assert.match(out, /failed login/, 'failed logins are logged');
    assert.match(out, /"url":"\/v2\/acme\/priv\/app\/manifests\/v1"/, 'requests are logged');
    const secrets: Record<string, string> = {
      'admin password': ADMIN_PASSWORD,
      'user password': USER_PASSWORD,
      'wrong password': 'a-wrong-password-123',
      'API key': key.secret,
      'API key (without prefix)': key.secret.slice('berth_k_'.length),
      'entitlement secret': ent.secret,
      'entitlement secret (without prefix)': ent.secret.slice('berth_t_'.length),
      'bearer JWT signature': jwt.split('.')[2]!,
      'entitlement JWT signature': entJwt.split('.')[2]!,
      'Basic header (user password)': Buffer.from(`bob:${USER_PASSWORD}`).toString('base64'),
      'Basic header (admin)': Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64'),
      'Basic header (API key)': Buffer.from(`bob:${key.secret}`).toString('base64'),
    };
    for (const [what, s] of Object.entries(secrets)) assert.ok(!out.includes(s), `the ${what} appears in the logs`);
    assert.doesNotMatch(out, /authorization/i, 'no Authorization header is logged');
  });
});
