/**
 * The access matrix: every identity kind × repository (public, private, nonexistent) ×
 * action, exercised with Basic credentials on /v2 directly and through the Docker bearer-token
 * flow (GET /v2/token, then `Authorization: Bearer`). The expected outcome is computed from a
 * small model of the roles, independently of the code under test:
 *
 *   allowed → the handler's own status; anonymous and not allowed → 401 + challenge;
 *   may read but not do this → 403 DENIED; may not read (or absent) → 404 NAME_UNKNOWN.
 *
 * Plus: the catalog lists only readable images, cross-repository mounts from an unreadable
 * repository fall back to an upload without linking the blob, and nothing an outsider (or an
 * anonymous client) gets back for a private repository differs from the nonexistent case.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_PASSWORD,
  USER_PASSWORD,
  api,
  apiOk,
  assertError,
  basic,
  bearer,
  errCode,
  jwtPayload,
  openAuthBerth,
  pushImage,
  sha256,
  type AuthBerth,
  type Inject,
  type PushedImage,
} from './helpers.ts';

type Action = 'pull' | 'push' | 'delete' | 'manage';
type Repo = 'pub' | 'priv' | 'ghost';
type Op = 'pull' | 'push-blob' | 'push-manifest' | 'delete' | 'tags' | 'referrers';
type Protocol = 'basic' | 'bearer';
type IdKey = 'anonymous' | 'admin' | 'alice' | 'bob' | 'carol' | 'carol-apikey' | 'dave' | 'eve' | 'ent' | 'ent-repo-user';

const ALL = new Set<Action>(['pull', 'push', 'delete', 'manage']);
const PULL = new Set<Action>(['pull']);
const NONE = new Set<Action>();

/** What each identity holds on each repository — the specification, written out by hand. */
const MODEL: Record<IdKey, Record<Repo, Set<Action>>> = {
  anonymous: { pub: PULL, priv: NONE, ghost: NONE },
  admin: { pub: ALL, priv: ALL, ghost: ALL }, // site admin
  alice: { pub: ALL, priv: ALL, ghost: ALL }, // owner of org acme
  dave: { pub: ALL, priv: ALL, ghost: ALL }, // admin at org level
  bob: { pub: PULL, priv: PULL, ghost: NONE }, // read on acme/priv
  carol: { pub: PULL, priv: new Set(['pull', 'push']), ghost: NONE }, // write on acme/priv
  'carol-apikey': { pub: PULL, priv: new Set(['pull', 'push']), ghost: NONE },
  eve: { pub: PULL, priv: NONE, ghost: NONE }, // outsider
  ent: { pub: PULL, priv: PULL, ghost: NONE }, // entitlement token of acme/priv (username `token`)
  'ent-repo-user': { pub: PULL, priv: PULL, ghost: NONE }, // same token, username `acme/priv`
};
const IDS = Object.keys(MODEL) as IdKey[];
const USERS: Partial<Record<IdKey, string>> = { admin: 'admin', alice: 'alice', bob: 'bob', carol: 'carol', 'carol-apikey': 'carol', dave: 'dave', eve: 'eve' };

const NEED: Record<Op, Action> = { pull: 'pull', 'push-blob': 'push', 'push-manifest': 'push', delete: 'delete', tags: 'pull', referrers: 'pull' };
const OK_STATUS: Record<Op, number> = { pull: 200, 'push-blob': 202, 'push-manifest': 201, delete: 202, tags: 200, referrers: 200 };
/** The scope a Docker client asks for (and the one in Berth's challenge). */
const SCOPE: Record<Op, string> = { pull: 'pull', 'push-blob': 'pull,push', 'push-manifest': 'pull,push', delete: 'delete', tags: 'pull', referrers: 'pull' };

function expected(id: IdKey, repo: Repo, op: Op): { status: number; code?: string } {
  const held = MODEL[id][repo];
  if (!held.has(NEED[op])) {
    if (id === 'anonymous') return { status: 401, code: 'UNAUTHORIZED' };
    if (held.has('pull')) return { status: 403, code: 'DENIED' };
    return { status: 404, code: 'NAME_UNKNOWN' };
  }
  // Allowed on a repository that does not exist: only pushing creates it.
  if (repo === 'ghost' && op !== 'push-blob') return { status: 404, code: 'NAME_UNKNOWN' };
  return { status: OK_STATUS[op] };
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('access matrix', () => {
  let b: AuthBerth;
  const ADMIN = basic('admin', ADMIN_PASSWORD);
  const auth: Partial<Record<IdKey, string>> = {};
  const images: Partial<Record<'pub' | 'priv', PushedImage>> = {};
  let entSecret = '';
  let counter = 0;
  const uniq = () => ++counter;

  before(async () => {
    b = await openAuthBerth();
    const app = b.app;
    for (const u of ['alice', 'bob', 'carol', 'dave', 'eve']) {
      await apiOk(app, 'POST', '/api/v1/users', ADMIN, { username: u, password: USER_PASSWORD }, 201);
    }
    const pw = (u: string) => basic(u, USER_PASSWORD);
    // alice creates the organisation and so becomes its owner
    await apiOk(app, 'POST', '/api/v1/orgs', pw('alice'), { name: 'acme' }, 201);
    await apiOk(app, 'POST', '/api/v1/owners/acme/repos', pw('alice'), { name: 'pub', visibility: 'public', description: 'public one' }, 201);
    await apiOk(app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'priv', visibility: 'private' }, 201);
    await apiOk(app, 'PUT', '/api/v1/repos/acme/priv/members/bob', pw('alice'), { role: 'read' }, 200);
    await apiOk(app, 'PUT', '/api/v1/repos/acme/priv/members/carol', ADMIN, { role: 'write' }, 200);
    await apiOk(app, 'PUT', '/api/v1/orgs/acme/members/dave', pw('alice'), { role: 'admin' }, 200);
    const key = await apiOk(app, 'POST', '/api/v1/user/api-keys', pw('carol'), { name: 'ci' }, 201);
    assert.match(key.secret, /^berth_k_/);
    const ent = await apiOk(app, 'POST', '/api/v1/repos/acme/priv/tokens', ADMIN, { name: 'customer' }, 201);
    assert.match(ent.secret, /^berth_t_/);
    assert.equal(ent.username, 'acme/priv');
    entSecret = ent.secret;

    auth.admin = ADMIN;
    for (const u of ['alice', 'bob', 'carol', 'dave', 'eve'] as const) auth[u] = pw(u);
    auth['carol-apikey'] = basic('carol', key.secret);
    auth.ent = basic('token', entSecret);
    auth['ent-repo-user'] = basic('acme/priv', entSecret);

    images.pub = await pushImage(app, 'acme/pub/app', 'v1', ADMIN);
    images.priv = await pushImage(app, 'acme/priv/app', 'v1', ADMIN);
  });
  after(() => b?.close());

  function nameOf(repo: Repo, mutating: boolean): string {
    if (repo !== 'ghost') return `acme/${repo}/app`;
    // a mutating action by someone allowed to would create it: use a fresh name each time
    return mutating ? `acme/ghost-${uniq()}/app` : 'acme/ghost/app';
  }

  /** The Authorization header for a request by `id`, via Basic or a bearer token for `scopes`. */
  async function authorization(id: IdKey, protocol: Protocol, scopes: string[]): Promise<string | undefined> {
    if (protocol === 'basic') return auth[id];
    const q = new URLSearchParams({ service: 'berth' });
    for (const s of scopes) q.append('scope', s);
    const res = await b.app.inject({ method: 'GET', url: `/v2/token?${q}`, headers: auth[id] ? { authorization: auth[id]! } : {} });
    assert.equal(res.statusCode, 200, `token for ${id}: ${res.body}`);
    const body = JSON.parse(res.body) as { token: string };
    return bearer(body.token);
  }

  function req(method: string, url: string, authz: string | undefined, extra: { headers?: Record<string, string>; payload?: Buffer } = {}): Promise<Inject> {
    return b.app.inject({
      method: method as 'GET',
      url,
      headers: { ...(authz ? { authorization: authz } : {}), ...(extra.headers ?? {}) },
      ...(extra.payload ? { payload: extra.payload } : {}),
    });
  }

  for (const protocol of ['basic', 'bearer'] as const) {
    describe(`${protocol} credentials`, () => {
      for (const id of IDS) {
        for (const repo of ['pub', 'priv', 'ghost'] as const) {
          for (const op of ['pull', 'push-blob', 'push-manifest', 'delete', 'tags', 'referrers'] as const) {
            if (op === 'push-manifest' && repo === 'ghost') continue; // its blobs could not exist there
            const want = expected(id, repo, op);
            it(`${id} ${op} ${repo} → ${want.status}${want.code ? ' ' + want.code : ''}`, async () => {
              const mutating = op === 'push-blob' || op === 'push-manifest' || op === 'delete';
              const name = nameOf(repo, mutating);
              const scope = `repository:${name}:${SCOPE[op]}`;
              const authz = await authorization(id, protocol, [scope]);
              if (protocol === 'bearer') {
                // the token grants exactly the requested actions the identity holds
                const claim = jwtPayload(authz!.slice('Bearer '.length)) as { access: { type: string; name: string; actions: string[] }[] };
                const asked = SCOPE[op].split(',');
                const granted = asked.filter((a) => MODEL[id][repo].has(a as Action));
                assert.deepEqual(claim.access, [{ type: 'repository', name, actions: granted }], 'token access claim');
              }
              const base = repo === 'ghost' ? images.priv! : images[repo]!;
              let res: Inject;
              let deleteTarget: PushedImage | undefined;
              const pushTag = `p${uniq()}`;
              switch (op) {
                case 'pull':
                  res = await req('GET', `/v2/${name}/manifests/v1`, authz, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
                  break;
                case 'push-blob':
                  res = await req('POST', `/v2/${name}/blobs/uploads/`, authz);
                  break;
                case 'push-manifest':
                  res = await req('PUT', `/v2/${name}/manifests/${pushTag}`, authz, {
                    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
                    payload: base.manifestBytes,
                  });
                  break;
                case 'delete':
                  if (repo !== 'ghost') deleteTarget = await pushImage(b.app, name, `d${uniq()}`, ADMIN);
                  res = await req('DELETE', `/v2/${name}/manifests/${deleteTarget?.manifestDigest ?? base.manifestDigest}`, authz);
                  break;
                case 'tags':
                  res = await req('GET', `/v2/${name}/tags/list`, authz);
                  break;
                case 'referrers':
                  res = await req('GET', `/v2/${name}/referrers/${base.manifestDigest}`, authz);
                  break;
              }

              const what = `${protocol} ${id} ${op} ${name}`;
              if (want.code) assertError(res, want.status, want.code, what);
              else assert.equal(res.statusCode, want.status, `${what}: ${res.body}`);

              if (want.status === 401) {
                // anonymous: sent to the token endpoint with the scope it needs
                assert.match(
                  String(res.headers['www-authenticate']),
                  new RegExp(`^Bearer realm="[^"]*/v2/token",service="berth",scope="repository:${esc(name)}:${esc(SCOPE[op])}"$`),
                );
              } else {
                assert.equal(res.headers['www-authenticate'], undefined, `${what}: no challenge unless 401`);
              }

              // The effect (or its absence), checked as the administrator.
              if (op === 'pull' && want.status === 200) {
                assert.ok(res.rawPayload.equals(base.manifestBytes), 'manifest bytes');
                assert.equal(res.headers['docker-content-digest'], base.manifestDigest);
              }
              if (op === 'tags' && want.status === 200) assert.deepEqual(JSON.parse(res.body).tags.includes('v1'), true);
              if (op === 'referrers' && want.status === 200) {
                assert.equal(res.headers['content-type'], 'application/vnd.oci.image.index.v1+json');
                assert.deepEqual(JSON.parse(res.body).manifests, []);
              }
              if (op === 'push-blob') {
                if (want.status === 202) assert.match(String(res.headers.location), new RegExp(`^/v2/${esc(name)}/blobs/uploads/`));
                if (repo === 'ghost') {
                  const [, r] = name.split('/');
                  const shown = await api(b.app, 'GET', `/api/v1/repos/acme/${r}`, ADMIN);
                  if (want.status === 202) {
                    assert.equal(shown.status, 200, 'pushing created the repository');
                    assert.equal(shown.json.visibility, 'private', 'a repository created by pushing is private');
                  } else {
                    assert.equal(shown.status, 404, 'a refused push creates nothing');
                  }
                }
              }
              if (op === 'push-manifest') {
                const tags = await req('GET', `/v2/${name}/tags/list`, ADMIN);
                assert.equal((JSON.parse(tags.body).tags as string[]).includes(pushTag), want.status === 201, 'tag exists iff push allowed');
              }
              if (op === 'delete' && deleteTarget) {
                const after = await req('GET', `/v2/${name}/manifests/${deleteTarget.manifestDigest}`, ADMIN);
                assert.equal(after.statusCode, want.status === 202 ? 404 : 200, 'manifest gone iff delete allowed');
              }
            });
          }
        }

        it(`${id} catalog lists exactly the readable images`, async () => {
          const authz = await authorization(id, protocol, ['registry:catalog:*']);
          const res = await req('GET', '/v2/_catalog?n=1000', authz);
          assert.equal(res.statusCode, 200, res.body);
          const names = JSON.parse(res.body).repositories as string[];
          assert.ok(names.includes('acme/pub/app'), 'public image listed');
          assert.equal(names.includes('acme/priv/app'), MODEL[id].priv.has('pull'), 'private image listed iff readable');
          for (const n of names) {
            const [owner, repo] = n.split('/') as [string, string];
            const readable =
              id === 'admin' ||
              (owner === 'acme' && (repo === 'pub' || (repo === 'priv' && MODEL[id].priv.has('pull')) || MODEL[id].ghost.has('pull'))) ||
              owner === USERS[id];
            assert.ok(readable, `${id} must not see ${n} in the catalog`);
          }
        });

        it(`${id} cross-repository mount from acme/priv`, async () => {
          const user = USERS[id];
          const target = user ? `${user}/mnt-${protocol}-${uniq()}/app` : 'acme/pub/app';
          const from = 'acme/priv/app';
          const digest = images.priv!.layerDigest;
          const authz = await authorization(id, protocol, [`repository:${target}:pull,push`, `repository:${from}:pull`]);
          const res = await req('POST', `/v2/${target}/blobs/uploads/?mount=${digest}&from=${from}`, authz);
          if (!user) {
            // anonymous and entitlement tokens may push nowhere
            if (id === 'anonymous') assertError(res, 401, 'UNAUTHORIZED');
            else assertError(res, 403, 'DENIED');
            return;
          }
          const blobAsSelf = await req('GET', `/v2/${target}/blobs/${digest}`, authz);
          const blobAsAdmin = await req('GET', `/v2/${target}/blobs/${digest}`, ADMIN);
          if (MODEL[id].priv.has('pull')) {
            assert.equal(res.statusCode, 201, `mount by a reader of ${from}: ${res.body}`);
            assert.equal(res.headers['docker-content-digest'], digest);
            assert.equal(blobAsSelf.statusCode, 200, 'mounted blob readable in the target');
            assert.equal(sha256(blobAsSelf.rawPayload), digest);
          } else {
            assert.equal(res.statusCode, 202, `mount from an unreadable repository falls back to an upload: ${res.body}`);
            assert.match(String(res.headers.location), new RegExp(`^/v2/${esc(target)}/blobs/uploads/`));
            assert.equal(res.headers['docker-content-digest'], undefined);
            assertError(blobAsSelf, 404, 'BLOB_UNKNOWN', 'the blob was not linked');
            assertError(blobAsAdmin, 404, 'BLOB_UNKNOWN', 'the blob was not linked (seen by admin)');
          }
        });
      }
    });
  }

  it('a bearer token without the source scope: 401 insufficient_scope for both when its holder may read the source, else an upload', async () => {
    const target = `carol/nosrc-${uniq()}/app`;
    const token = await authorization('carol', 'bearer', [`repository:${target}:pull,push`]);
    const digest = images.priv!.layerDigest;
    const res = await req('POST', `/v2/${target}/blobs/uploads/?mount=${digest}&from=acme/priv/app`, token);
    assertError(res, 401, 'UNAUTHORIZED');
    assert.match(
      String(res.headers['www-authenticate']),
      new RegExp(`,scope="repository:${esc(target)}:pull,push repository:acme/priv/app:pull",error="insufficient_scope"$`),
    );
    assertError(await req('GET', `/v2/${target}/blobs/${digest}`, ADMIN), 404, 'NAME_UNKNOWN', 'nothing created or linked');
    // eve may not read acme/priv: the same request is an ordinary upload, as for a missing source
    const eveTarget = `eve/nosrc-${uniq()}/app`;
    const eveToken = await authorization('eve', 'bearer', [`repository:${eveTarget}:pull,push`]);
    const viaPriv = await req('POST', `/v2/${eveTarget}/blobs/uploads/?mount=${digest}&from=acme/priv/app`, eveToken);
    const viaNone = await req('POST', `/v2/${eveTarget}/blobs/uploads/?mount=${digest}&from=acme/nope/app`, eveToken);
    for (const r of [viaPriv, viaNone]) {
      assert.equal(r.statusCode, 202, r.body);
      assert.equal(r.headers['docker-content-digest'], undefined);
    }
    assertError(await req('GET', `/v2/${eveTarget}/blobs/${digest}`, ADMIN), 404, 'BLOB_UNKNOWN');
  });

  it('a bearer token is only good for the names it was issued for (401 insufficient_scope)', async () => {
    const token = await authorization('carol', 'bearer', ['repository:acme/pub/app:pull']);
    const res = await req('GET', '/v2/acme/priv/app/manifests/v1', token);
    assertError(res, 401, 'UNAUTHORIZED');
    assert.match(String(res.headers['www-authenticate']), /scope="repository:acme\/priv\/app:pull",error="insufficient_scope"$/);
    // and it does not carry actions beyond those granted: no push on the public repository
    const push = await req('POST', '/v2/acme/pub/app/blobs/uploads/', token);
    assertError(push, 403, 'DENIED');
  });

  describe('nothing reveals a private repository to an outsider', () => {
    // `acme/nope` has the same length as `acme/priv`, so even Content-Length must match.
    function requests(name: string): { label: string; method: string; url: string; headers?: Record<string, string>; payload?: Buffer }[] {
      const m = images.priv!.manifestDigest;
      const l = images.priv!.layerDigest;
      const fakeUpload = '7c2f3f8e-4d8e-4a3a-9b7a-000000000000';
      return [
        { label: 'GET manifest by tag', method: 'GET', url: `/v2/${name}/manifests/v1` },
        { label: 'GET manifest by digest', method: 'GET', url: `/v2/${name}/manifests/${m}` },
        { label: 'HEAD manifest', method: 'HEAD', url: `/v2/${name}/manifests/v1` },
        { label: 'GET missing tag', method: 'GET', url: `/v2/${name}/manifests/nosuchtag` },
        {
          label: 'PUT manifest',
          method: 'PUT',
          url: `/v2/${name}/manifests/x`,
          headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
          payload: images.priv!.manifestBytes,
        },
        { label: 'DELETE manifest', method: 'DELETE', url: `/v2/${name}/manifests/${m}` },
        { label: 'GET tags', method: 'GET', url: `/v2/${name}/tags/list?n=1` },
        { label: 'GET referrers', method: 'GET', url: `/v2/${name}/referrers/${m}` },
        { label: 'GET blob', method: 'GET', url: `/v2/${name}/blobs/${l}` },
        { label: 'HEAD blob', method: 'HEAD', url: `/v2/${name}/blobs/${l}` },
        { label: 'GET blob range', method: 'GET', url: `/v2/${name}/blobs/${l}`, headers: { range: 'bytes=0-3' } },
        { label: 'DELETE blob', method: 'DELETE', url: `/v2/${name}/blobs/${l}` },
        { label: 'POST upload', method: 'POST', url: `/v2/${name}/blobs/uploads/` },
        { label: 'POST mount', method: 'POST', url: `/v2/${name}/blobs/uploads/?mount=${l}&from=acme/pub/app` },
        { label: 'GET upload', method: 'GET', url: `/v2/${name}/blobs/uploads/${fakeUpload}` },
        { label: 'PATCH upload', method: 'PATCH', url: `/v2/${name}/blobs/uploads/${fakeUpload}`, payload: Buffer.from('abc') },
        { label: 'PUT upload', method: 'PUT', url: `/v2/${name}/blobs/uploads/${fakeUpload}?digest=${l}` },
        { label: 'DELETE upload', method: 'DELETE', url: `/v2/${name}/blobs/uploads/${fakeUpload}` },
      ];
    }

    function comparable(res: Inject, name: string, as: string) {
      const headers = { ...res.headers } as Record<string, unknown>;
      delete headers.date;
      const swap = (s: string) => s.split(name).join(as);
      return {
        status: res.statusCode,
        body: swap(res.body),
        headers: JSON.parse(swap(JSON.stringify(headers))) as Record<string, unknown>,
      };
    }

    for (const who of ['eve', 'anonymous'] as const) {
      for (const protocol of ['basic', 'bearer'] as const) {
        it(`${who} (${protocol}): private acme/priv looks exactly like nonexistent acme/nope`, async () => {
          const scopes = (n: string) => [`repository:${n}:pull,push,delete`];
          const authPriv = await authorization(who, protocol, scopes('acme/priv/app'));
          const authNope = await authorization(who, protocol, scopes('acme/nope/app'));
          if (protocol === 'bearer') {
            assert.deepEqual(jwtPayload(authPriv!.slice(7)).access, [{ type: 'repository', name: 'acme/priv/app', actions: [] }]);
            assert.deepEqual(jwtPayload(authNope!.slice(7)).access, [{ type: 'repository', name: 'acme/nope/app', actions: [] }]);
          }
          const a = requests('acme/priv/app');
          const z = requests('acme/nope/app');
          for (let i = 0; i < a.length; i++) {
            const rp = await req(a[i]!.method, a[i]!.url, authPriv, a[i]!);
            const rn = await req(z[i]!.method, z[i]!.url, authNope, z[i]!);
            assert.ok(rp.statusCode === 404 || rp.statusCode === 401, `${a[i]!.label}: ${rp.statusCode} ${rp.body}`);
            if (who === 'eve' && a[i]!.method !== 'HEAD') assert.equal(errCode(rp), 'NAME_UNKNOWN', `${a[i]!.label}`);
            if (who === 'anonymous') assert.equal(rp.statusCode, 401, a[i]!.label);
            assert.deepEqual(comparable(rp, 'acme/priv', 'X'), comparable(rn, 'acme/nope', 'X'), `${who} ${protocol} ${a[i]!.label}`);
          }
          // the bodies also match the nonexistent `acme/ghost` once the names are aligned
          const g = await req('GET', '/v2/acme/ghost/app/manifests/v1', await authorization(who, protocol, scopes('acme/ghost/app')));
          const p = await req('GET', '/v2/acme/priv/app/manifests/v1', authPriv);
          assert.equal(g.statusCode, p.statusCode);
          assert.equal(g.body.replace('acme/ghost', 'acme/priv'), p.body);
        });
      }
    }

    it('the management API answers an outsider the same for private and nonexistent', async () => {
      for (const who of [auth.eve, undefined]) {
        const p = await api(b.app, 'GET', '/api/v1/repos/acme/priv', who);
        const n = await api(b.app, 'GET', '/api/v1/repos/acme/nope', who);
        assert.equal(p.status, 404);
        assert.deepEqual(comparable(p.res, 'acme/priv', 'X'), comparable(n.res, 'acme/nope', 'X'));
        const list = await apiOk(b.app, 'GET', '/api/v1/owners/acme/repos', who, undefined, 200);
        assert.deepEqual(
          (list as { name: string }[]).map((r) => r.name),
          ['acme/pub'],
          'only the public repository is listed',
        );
        for (const path of ['members', 'tokens']) {
          const pm = await api(b.app, 'GET', `/api/v1/repos/acme/priv/${path}`, who);
          const nm = await api(b.app, 'GET', `/api/v1/repos/acme/nope/${path}`, who);
          assert.equal(pm.status, 404, `${path}: ${pm.res.body}`);
          assert.deepEqual(comparable(pm.res, 'acme/priv', 'X'), comparable(nm.res, 'acme/nope', 'X'));
        }
      }
    });
  });
});
