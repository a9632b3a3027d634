/**
 * The Docker token flow to the letter, at the HTTP boundary (app.inject):
 * - a bearer token that lacks the action while its holder could be granted it → 401 with
 *   `error="insufficient_scope"` and the scope to fetch; 403 / 404 only when the identity
 *   itself lacks the right (with a token or with Basic credentials alike);
 * - a cross-repository mount's challenge asks pull on `from` too; the mount then answers 201
 *   when the caller may read `from`; without `from`, when any image the caller may read links
 *   the blob (automatic content discovery); 202 otherwise, identical whether the blob exists
 *   in an unreadable repository or nowhere;
 * - a refused push gets one neutral message whether the repository exists or not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_PASSWORD,
  USER_PASSWORD,
  apiOk,
  assertError,
  basic,
  bearer,
  errCode,
  fetchToken,
  jwtPayload,
  openAuthBerth,
  pushImage,
  sha256,
  type AuthBerth,
  type Inject,
  type PushedImage,
} from './helpers.ts';

const ADMIN = basic('admin', ADMIN_PASSWORD);
const pw = (u: string) => basic(u, USER_PASSWORD);
const REALM = 'Bearer realm="http://localhost:5000/v2/token",service="berth"';

/** The scope and error of a challenge. */
function challenge(res: Inject): { scope?: string; error?: string } {
  const h = String(res.headers['www-authenticate'] ?? '');
  assert.ok(h.startsWith(REALM), `challenge: ${h}`);
  const scope = /,scope="([^"]*)"/.exec(h)?.[1];
  const error = /,error="([^"]*)"/.exec(h)?.[1];
  return { ...(scope !== undefined ? { scope } : {}), ...(error !== undefined ? { error } : {}) };
}

describe('re-challenges, mounts and refusals', () => {
  let b: AuthBerth;
  let priv: PushedImage;
  let pub: PushedImage;
  let n = 0;
  const uniq = () => ++n;

  before(async () => {
    b = await openAuthBerth();
    for (const u of ['bob', 'carol', 'dana', 'eve']) await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: u, password: USER_PASSWORD }, 201);
    await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'priv' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'pub', visibility: 'public' }, 201);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/priv/members/bob', ADMIN, { role: 'read' }, 200);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/priv/members/carol', ADMIN, { role: 'write' }, 200);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/priv/members/dana', ADMIN, { role: 'admin' }, 200);
    priv = await pushImage(b.app, 'acme/priv/app', 'v1', ADMIN);
    pub = await pushImage(b.app, 'acme/pub/app', 'v1', ADMIN);
    await pushImage(b.app, 'acme/pub/other', 'v1', ADMIN);
  });
  after(() => b?.close());

  const req = (method: string, url: string, authz?: string) =>
    b.app.inject({ method: method as 'GET', url, headers: authz ? { authorization: authz } : {} });
  const token = async (authz: string | undefined, ...scopes: string[]) => bearer(await fetchToken(b.app, authz, scopes));

  describe('insufficient scope → 401 re-challenge when the holder could be granted the action', () => {
    it('DELETE with a pull,push token, by a repository admin → 401 for scope delete; the wider token deletes', async () => {
      const img = await pushImage(b.app, 'acme/priv/app', 'del-me', ADMIN);
      const t = await token(pw('dana'), 'repository:acme/priv/app:pull,push');
      const res = await req('DELETE', `/v2/acme/priv/app/manifests/${img.manifestDigest}`, t);
      assertError(res, 401, 'UNAUTHORIZED');
      assert.deepEqual(challenge(res), { scope: 'repository:acme/priv/app:delete', error: 'insufficient_scope' });
      assert.match(res.body, /does not grant delete on acme\/priv\/app/);
      const wider = await token(pw('dana'), challenge(res).scope!);
      assert.equal((await req('DELETE', `/v2/acme/priv/app/manifests/${img.manifestDigest}`, wider)).statusCode, 202);
    });

    it('upload status (needs push) with a pull token, by a writer → 401 for pull,push', async () => {
      const start = await req('POST', '/v2/acme/priv/app/blobs/uploads/', pw('carol'));
      assert.equal(start.statusCode, 202);
      const location = String(start.headers.location);
      const res = await req('GET', location, await token(pw('carol'), 'repository:acme/priv/app:pull'));
      assertError(res, 401, 'UNAUTHORIZED');
      assert.deepEqual(challenge(res), { scope: 'repository:acme/priv/app:pull,push', error: 'insufficient_scope' });
      assert.equal((await req('GET', location, await token(pw('carol'), challenge(res).scope!))).statusCode, 204);
    });

    it('a token for another name, whose holder may read this one → 401 for this name', async () => {
      const res = await req('GET', '/v2/acme/priv/app/manifests/v1', await token(pw('bob'), 'repository:acme/pub/app:pull'));
      assert.deepEqual(challenge(res), { scope: 'repository:acme/priv/app:pull', error: 'insufficient_scope' });
    });

    it('an anonymous token on a public image it was not issued for → 401 insufficient_scope; a push → 401 to log in', async () => {
      const anon = await token(undefined, 'repository:acme/pub/app:pull');
      assert.equal(jwtPayload(anon.slice(7)).sub, '');
      const res = await req('GET', '/v2/acme/pub/other/manifests/v1', anon);
      assert.deepEqual(challenge(res), { scope: 'repository:acme/pub/other:pull', error: 'insufficient_scope' });
      assert.equal((await req('GET', '/v2/acme/pub/other/manifests/v1', await token(undefined, challenge(res).scope!))).statusCode, 200);
      const push = await req('POST', '/v2/acme/pub/app/blobs/uploads/', anon);
      assertError(push, 401, 'UNAUTHORIZED');
      assert.deepEqual(challenge(push), { scope: 'repository:acme/pub/app:pull,push' });
    });
  });

  describe('403 / 404 when the identity itself lacks the right, with a token or Basic alike', () => {
    const cases: [string, string, string, number, string][] = [
      ['a reader pushes', 'bob', 'POST /v2/acme/priv/app/blobs/uploads/', 403, 'DENIED'],
      ['a reader deletes', 'bob', `DELETE /v2/acme/priv/app/manifests/v1`, 403, 'DENIED'],
      ['a writer deletes', 'carol', `DELETE /v2/acme/priv/app/manifests/v1`, 403, 'DENIED'],
      ['an outsider reads', 'eve', 'GET /v2/acme/priv/app/manifests/v1', 404, 'NAME_UNKNOWN'],
      ['an outsider pushes', 'eve', 'POST /v2/acme/priv/app/blobs/uploads/', 404, 'NAME_UNKNOWN'],
      ['an outsider deletes', 'eve', 'DELETE /v2/acme/priv/app/manifests/v1', 404, 'NAME_UNKNOWN'],
      ['a reader of the public repository pushes there', 'eve', 'POST /v2/acme/pub/app/blobs/uploads/', 403, 'DENIED'],
    ];
    for (const [what, user, line, status, code] of cases) {
      it(`${what} → ${status} ${code} (Basic, and a token asked for the same scope)`, async () => {
        const [method, url] = line.split(' ') as [string, string];
        const name = /^\/v2\/(.+?)\/(manifests|blobs)\//.exec(url)![1]!;
        assertError(await req(method, url, pw(user)), status, code, `${user} Basic`);
        const action = method === 'DELETE' ? 'delete' : method === 'POST' ? 'pull,push' : 'pull';
        const t = await token(pw(user), `repository:${name}:${action}`);
        const res = await req(method, url, t);
        assertError(res, status, code, `${user} bearer`);
        assert.equal(res.headers['www-authenticate'], undefined, 'no challenge: a wider token would not help');
      });
    }
  });

  describe('cross-repository mounts', () => {
    const mountUrl = (to: string, digest: string, from?: string) => `/v2/${to}/blobs/uploads/?mount=${digest}${from === undefined ? '' : `&from=${encodeURIComponent(from)}`}`;

    it('the challenge asks pull on `from` too (and only for a valid name given with mount)', async () => {
      const to = `carol/m-${uniq()}/app`;
      const res = await req('POST', mountUrl(to, priv.layerDigest, 'acme/priv/app'));
      assertError(res, 401, 'UNAUTHORIZED');
      assert.deepEqual(challenge(res), { scope: `repository:${to}:pull,push repository:acme/priv/app:pull` });
      for (const from of ['../x', 'acme/priv/app",error="x', 'x']) {
        assert.deepEqual(challenge(await req('POST', mountUrl(to, priv.layerDigest, from))), { scope: `repository:${to}:pull,push` }, from);
      }
      assert.deepEqual(challenge(await req('POST', `/v2/${to}/blobs/uploads/?from=acme/priv/app`)), { scope: `repository:${to}:pull,push` });
    });

    it('a token fetched for the challenge’s scopes mounts (201) when its holder may read `from`', async () => {
      const to = `carol/m-${uniq()}/app`;
      const scope = challenge(await req('POST', mountUrl(to, priv.layerDigest, 'acme/priv/app'))).scope!;
      const t = await token(pw('carol'), ...scope.split(' '));
      const res = await req('POST', mountUrl(to, priv.layerDigest, 'acme/priv/app'), t);
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['docker-content-digest'], priv.layerDigest);
      assert.equal(sha256((await req('GET', `/v2/${to}/blobs/${priv.layerDigest}`, t)).rawPayload), priv.layerDigest);
    });

    it('automatic content discovery (no `from`): 201 from any image the caller may read', async () => {
      const to = `carol/m-${uniq()}/app`;
      const res = await req('POST', mountUrl(to, priv.layerDigest), pw('carol'));
      assert.equal(res.statusCode, 201, res.body);
      assert.equal((await req('GET', `/v2/${to}/blobs/${priv.layerDigest}`, pw('carol'))).statusCode, 200);
      // a public image's blob, for a user with no membership anywhere
      const eveTo = `eve/m-${uniq()}/app`;
      assert.equal((await req('POST', mountUrl(eveTo, pub.layerDigest), pw('eve'))).statusCode, 201);
      // a `from` that lacks the blob does not stop the search
      const other = `carol/m-${uniq()}/app`;
      assert.equal((await req('POST', mountUrl(other, priv.layerDigest, 'acme/pub/app'), pw('carol'))).statusCode, 201);
    });

    it('with a bearer token, discovery looks only where the token grants pull', async () => {
      const to = `carol/m-${uniq()}/app`;
      const narrow = await token(pw('carol'), `repository:${to}:pull,push`);
      assert.equal((await req('POST', mountUrl(to, priv.layerDigest), narrow)).statusCode, 202);
      const wide = await token(pw('carol'), `repository:${to}:pull,push`, 'repository:acme/priv/app:pull');
      assert.equal((await req('POST', mountUrl(to, priv.layerDigest), wide)).statusCode, 201);
    });

    it('nothing reveals a blob of an unreadable repository: the same 202 as for a digest stored nowhere', async () => {
      const answers: Inject[] = [];
      for (const [digest, from] of [
        [priv.layerDigest, 'acme/priv/app'],
        [sha256('stored nowhere'), 'acme/priv/app'],
        [priv.layerDigest, undefined],
        [sha256('stored nowhere'), undefined],
        [priv.layerDigest, 'acme/nope/app'],
      ] as const) {
        const to = `eve/m-${uniq()}/app`;
        for (const authz of [pw('eve'), await token(pw('eve'), `repository:${to}:pull,push`, 'repository:acme/priv/app:pull')]) {
          const res = await req('POST', mountUrl(to, digest, from), authz);
          assert.equal(res.statusCode, 202, `${digest} from ${from}: ${res.body}`);
          answers.push(res);
          assertError(await req('GET', `/v2/${to}/blobs/${digest}`, ADMIN), 404, 'BLOB_UNKNOWN', 'nothing linked');
        }
      }
      const shape = (r: Inject) => Object.keys(r.headers).filter((k) => k !== 'date').sort().join(',') + `|${r.body}`;
      for (const r of answers) assert.equal(shape(r), shape(answers[0]!));
    });
  });

  describe('a refused push says the same whether the repository exists or not', () => {
    it('outsider, Basic and token: one neutral message naming what to do', async () => {
      const bodies = new Set<string>();
      for (const [repo, rest] of [['acme/priv', 'app'], ['acme/nope', 'app'], ['nobody/nope', 'app']] as const) {
        const name = `${repo}/${rest}`;
        for (const authz of [pw('eve'), await token(pw('eve'), `repository:${name}:pull,push`)]) {
          for (const [method, url] of [['POST', `/v2/${name}/blobs/uploads/`], ['PUT', `/v2/${name}/manifests/v1`]] as const) {
            const res = await req(method, url, authz);
            assertError(res, 404, 'NAME_UNKNOWN', `${method} ${name}`);
            const msg = (JSON.parse(res.body) as { errors: { message: string }[] }).errors[0]!.message;
            assert.match(msg, /repository does not exist or you may not push to it: create it with `berth repo create OWNER\/REPOSITORY` or ask its owner/);
            bodies.add(msg.replace(name, 'NAME'));
          }
        }
      }
      assert.equal(bodies.size, 1, [...bodies].join('\n'));
      // the read path keeps the registry's usual answer
      assert.equal(errCode(await req('GET', '/v2/acme/priv/app/manifests/v1', pw('eve'))), 'NAME_UNKNOWN');
    });
  });
});
