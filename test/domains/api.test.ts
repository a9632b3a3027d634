/**
 * Custom domains through app.inject(), on SQLite and PostgreSQL: managing them (who may, what
 * is refused), the short names every /v2 answer speaks on a mapped host, token audiences, and
 * the key sealed at rest. Real clients are in test/domains/e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type Kysely, sql } from 'kysely';
import { Keyring, addKeyToFile } from '../../src/core/keys/keyring.ts';
import { sealedSites, sweepSealed } from '../../src/core/keys/sealed.ts';
import { SqlDomainStore } from '../../src/metadata/sql/domain-store.ts';
import type { Database } from '../../src/metadata/sql/schema.ts';
import { ADMIN, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, USER_PASSWORD, basic, createSchema, dropSchema, openBerth, sha256, type EventsBerth } from '../events/helpers.ts';

const run = promisify(execFile);
const REPO_HOST = 'images.acme.test';
const OWNER_HOST = 'registry.acme.test';
const OTHER_HOST = 'registry.other.test';

async function call(app: FastifyInstance, method: string, url: string, opts: { host?: string; auth?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const raw = opts.body === undefined || Buffer.isBuffer(opts.body) ? (opts.body as Buffer | undefined) : JSON.stringify(opts.body);
  const res = await app.inject({
    method: method as 'GET',
    url,
    headers: {
      ...(opts.host ? { host: opts.host } : {}),
      ...(opts.auth ? { authorization: opts.auth } : {}),
      ...(opts.body !== undefined && !Buffer.isBuffer(opts.body) ? { 'content-type': 'application/json' } : {}),
      ...(opts.headers ?? {}),
    },
    ...(raw !== undefined ? { payload: raw } : {}),
  });
  let json: any;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, body: res.body, json };
}

/** Pushes a one-layer image by `name` on `host`; returns the Location headers seen. */
async function push(app: FastifyInstance, host: string | undefined, name: string, tag: string, auth: string): Promise<{ locations: string[]; digest: string }> {
  const layer = randomBytes(64);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(4).toString('hex') }));
  const locations: string[] = [];
  // a session (POST then PUT) for the layer, monolithic for the config
  const start = await call(app, 'POST', `/v2/${name}/blobs/uploads/`, { ...(host ? { host } : {}), auth });
  assert.equal(start.status, 202, start.body);
  locations.push(String(start.headers.location));
  const done = await call(app, 'PUT', `${start.headers.location}?digest=${sha256(layer)}`, { ...(host ? { host } : {}), auth, body: layer, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(done.status, 201, done.body);
  locations.push(String(done.headers.location));
  const mono = await call(app, 'POST', `/v2/${name}/blobs/uploads/?digest=${sha256(config)}`, { ...(host ? { host } : {}), auth, body: config, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(mono.status, 201, mono.body);
  locations.push(String(mono.headers.location));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
    }),
  );
  const put = await call(app, 'PUT', `/v2/${name}/manifests/${tag}`, { ...(host ? { host } : {}), auth, body: manifest, headers: { 'content-type': OCI_MANIFEST } });
  assert.equal(put.status, 201, put.body);
  locations.push(String(put.headers.location));
  return { locations, digest: sha256(manifest) };
}

async function token(app: FastifyInstance, host: string | undefined, auth: string | undefined, scope: string, service: string): Promise<string> {
  const r = await call(app, 'GET', `/v2/token?service=${encodeURIComponent(service)}&scope=${encodeURIComponent(scope)}`, { ...(host ? { host } : {}), ...(auth ? { auth } : {}) });
  assert.equal(r.status, 200, r.body);
  return r.json.token as string;
}

async function makeCert(dir: string, host: string): Promise<{ cert: string; key: string }> {
  const key = path.join(dir, `${host}.key`);
  const crt = path.join(dir, `${host}.crt`);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${host}`, '-addext', `subjectAltName=DNS:${host}`, '-keyout', key, '-out', crt]);
  return { cert: await readFile(crt, 'utf8'), key: await readFile(key, 'utf8') };
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`[domains] custom domains through the API and /v2 (${dialect})`, () => {
    let b: EventsBerth;
    let app: FastifyInstance;
    const alice = basic('alice', USER_PASSWORD);
    const bob = basic('bob', USER_PASSWORD);

    before(async () => {
      b = await openBerth({ postgres: dialect === 'postgres' });
      app = b.app;
      for (const u of ['alice', 'bob']) assert.equal((await call(app, 'POST', '/api/v1/users', { auth: ADMIN, body: { username: u, password: USER_PASSWORD } })).status, 201);
      for (const o of ['acme', 'other']) assert.equal((await call(app, 'POST', '/api/v1/orgs', { auth: ADMIN, body: { name: o } })).status, 201);
      assert.equal((await call(app, 'PUT', '/api/v1/orgs/acme/members/alice', { auth: ADMIN, body: { role: 'admin' } })).status, 200);
      for (const r of ['acme/prod', 'acme/base', 'other/prod']) {
        const [o, n] = r.split('/');
        assert.equal((await call(app, 'POST', `/api/v1/owners/${o}/repos`, { auth: ADMIN, body: { name: n } })).status, 201);
      }
    });
    after(async () => b?.close());

    it('site administrators add domains; bad hosts, targets and duplicates are refused', async () => {
      const add = (body: unknown, auth = ADMIN) => call(app, 'POST', '/api/v1/domains', { auth, body });
      assert.equal((await add({ host: OWNER_HOST, target: 'acme' })).status, 201);
      const r = await add({ host: 'Images.Acme.Test', target: 'acme/prod' });
      assert.equal(r.status, 201, r.body);
      assert.deepEqual({ host: r.json.host, target: r.json.target, mirror: r.json.mirror, certificate: r.json.certificate }, { host: REPO_HOST, target: 'acme/prod', mirror: false, certificate: false });
      assert.equal((await add({ host: OTHER_HOST, target: 'other' })).status, 201);
      assert.equal((await add({ host: 'x.acme.test', target: 'acme' }, alice)).status, 403, 'owners do not add (a host name is claimed by the site)');
      assert.equal((await add({ host: OWNER_HOST, target: 'other' })).status, 409);
      assert.equal((await add({ host: 'berth', target: 'acme' })).status, 409, "the main service's own name");
      for (const host of ['acme.test:5000', 'https://acme.test', '*.acme.test', 'a..b', '[::1]', 'acme.test/x', 'a b'])
        assert.equal((await add({ host, target: 'acme' })).status, 400, host);
      assert.equal((await add({ host: 'm.acme.test', target: 'acme', mirror: true })).status, 400, 'a mirror serves one repository');
      assert.equal((await add({ host: 'n.acme.test', target: 'nobody' })).status, 404);
      assert.equal((await add({ host: 'n.acme.test', target: 'acme/nope' })).status, 404);
      assert.equal((await add({ host: 'n.acme.test', target: 'acme', cert: 'x' })).status, 400, 'cert and key go together');
    });

    it('owners list theirs; others see none and may not remove them', async () => {
      const mine = await call(app, 'GET', '/api/v1/domains', { auth: alice });
      assert.deepEqual(mine.json.map((d: { host: string }) => d.host), [REPO_HOST, OWNER_HOST]);
      assert.deepEqual((await call(app, 'GET', '/api/v1/domains?owner=acme', { auth: alice })).json.length, 2);
      assert.deepEqual((await call(app, 'GET', '/api/v1/domains', { auth: bob })).json, []);
      assert.equal((await call(app, 'GET', '/api/v1/domains?owner=acme', { auth: bob })).status, 404);
      assert.equal((await call(app, 'DELETE', `/api/v1/domains/${OWNER_HOST}`, { auth: bob })).status, 404);
      assert.equal((await call(app, 'GET', '/api/v1/domains', { auth: ADMIN })).json.length, 3);
      assert.equal((await call(app, 'GET', '/api/v1/domains')).status, 401);
    });

    it('a mapped host speaks short names: Locations, tags list, Link, catalog, errors', async () => {
      const pushed = await push(app, REPO_HOST, 'app', 'v1', ADMIN);
      assert.ok(pushed.locations[0]!.startsWith('/v2/app/blobs/uploads/'), pushed.locations[0]);
      assert.ok(pushed.locations[1]!.startsWith('/v2/app/blobs/sha256:'), pushed.locations[1]);
      assert.equal(pushed.locations[3], `/v2/app/manifests/${pushed.digest}`);
      await push(app, OWNER_HOST, 'prod/app', 'v2', ADMIN);
      await push(app, undefined, 'acme/base/tool', 'v1', ADMIN);
      await push(app, undefined, 'other/prod/app', 'v1', ADMIN);
      // the same image under its three names
      for (const [host, name] of [[REPO_HOST, 'app'], [OWNER_HOST, 'prod/app'], [undefined, 'acme/prod/app']] as const) {
        const tags = await call(app, 'GET', `/v2/${name}/tags/list?n=1`, { ...(host ? { host } : {}), auth: ADMIN });
        assert.equal(tags.status, 200, tags.body);
        assert.deepEqual(tags.json, { name, tags: ['v1'] });
        assert.equal(tags.headers.link, `</v2/${name}/tags/list?n=1&last=v1>; rel="next"`);
        const m = await call(app, 'GET', `/v2/${name}/manifests/v1`, { ...(host ? { host } : {}), auth: ADMIN, headers: { accept: OCI_MANIFEST } });
        assert.equal(m.status, 200);
        assert.equal(m.headers['docker-content-digest'], pushed.digest);
      }
      const cat = await call(app, 'GET', '/v2/_catalog', { host: OWNER_HOST, auth: ADMIN });
      assert.deepEqual(cat.json, { repositories: ['base/tool', 'prod/app'] });
      const page = await call(app, 'GET', '/v2/_catalog?n=1', { host: OWNER_HOST, auth: ADMIN });
      assert.deepEqual(page.json, { repositories: ['base/tool'] });
      assert.equal(page.headers.link, '</v2/_catalog?n=1&last=base%2Ftool>; rel="next"');
      assert.deepEqual((await call(app, 'GET', '/v2/_catalog?n=1&last=base%2Ftool', { host: OWNER_HOST, auth: ADMIN })).json, { repositories: ['prod/app'] });
      assert.deepEqual((await call(app, 'GET', '/v2/_catalog', { host: REPO_HOST, auth: ADMIN })).json, { repositories: ['app'] });
      // errors name the short name, never the long one
      const missing = await call(app, 'GET', '/v2/nothing/manifests/v1', { host: REPO_HOST, auth: alice });
      assert.equal(missing.status, 404);
      assert.doesNotMatch(missing.body, /acme\//);
      const unknownTag = await call(app, 'GET', '/v2/app/manifests/nope', { host: REPO_HOST, auth: ADMIN });
      assert.equal(unknownTag.status, 404);
      assert.doesNotMatch(unknownTag.body, /acme\/prod/);
    });

    it('names outside the mapping are NAME_UNKNOWN: no escape with .. or long names', async () => {
      for (const [host, path] of [
        [REPO_HOST, '/v2/../other/prod/app/manifests/v1'],
        [REPO_HOST, '/v2/..%2F..%2Fother%2Fprod%2Fapp/manifests/v1'],
        [OWNER_HOST, '/v2/app/manifests/v1'],
        [OWNER_HOST, '/v2/other/prod/app/manifests/v1'],
        [OWNER_HOST, '/v2/acme/prod/app/manifests/v1'],
        [OTHER_HOST, '/v2/acme/prod/app/manifests/v1'],
      ] as const) {
        const r = await call(app, 'GET', path, { host, auth: ADMIN });
        assert.equal(r.status, 404, `${host}${path}: ${r.body}`);
        assert.doesNotMatch(r.body, /"code":"MANIFEST_UNKNOWN"/, `${host}${path} reached an image`);
      }
      // a mount from outside the mapping falls back to an upload (202), from inside it mounts (201)
      const foreign = (await call(app, 'GET', '/v2/other/prod/app/manifests/v1', { auth: ADMIN, headers: { accept: OCI_MANIFEST } })).json.layers[0].digest as string;
      const outside = await call(app, 'POST', `/v2/app/blobs/uploads/?mount=${foreign}&from=../../other/prod/app`, { host: REPO_HOST, auth: alice });
      assert.equal(outside.status, 202, outside.body);
      assert.match(String(outside.headers.location), /^\/v2\/app\/blobs\/uploads\//);
      const layer = (await call(app, 'GET', '/v2/acme/base/tool/manifests/v1', { auth: ADMIN, headers: { accept: OCI_MANIFEST } })).json.layers[0].digest as string;
      const inside = await call(app, 'POST', `/v2/prod/app/blobs/uploads/?mount=${layer}&from=base/tool`, { host: OWNER_HOST, auth: ADMIN });
      assert.equal(inside.status, 201, inside.body);
      assert.equal(inside.headers.location, `/v2/prod/app/blobs/${layer}`);
    });

    it('the challenge names the host; tokens are good only on the host that issued them', async () => {
      const chal = await call(app, 'GET', '/v2/app/tags/list', { host: `${REPO_HOST.toUpperCase()}:8443` });
      assert.equal(chal.status, 401);
      assert.match(String(chal.headers['www-authenticate']), new RegExp(`^Bearer realm="http://${REPO_HOST}(:\\d+)?/v2/token",service="${REPO_HOST}",scope="repository:app:pull"$`));
      const main = await call(app, 'GET', '/v2/acme/prod/app/tags/list');
      assert.match(String(main.headers['www-authenticate']), /service="berth",scope="repository:acme\/prod\/app:pull"/);

      const onRepoHost = await token(app, REPO_HOST, alice, 'repository:app:pull', REPO_HOST);
      const claims = JSON.parse(Buffer.from(onRepoHost.split('.')[1]!, 'base64url').toString());
      assert.equal(claims.aud, REPO_HOST);
      assert.deepEqual(claims.access, [{ type: 'repository', name: 'app', actions: ['pull'] }], 'the token speaks short names too');
      const bearer = `Bearer ${onRepoHost}`;
      assert.equal((await call(app, 'GET', '/v2/app/tags/list', { host: REPO_HOST, auth: bearer })).status, 200);
      // replayed elsewhere: invalid token
      for (const [host, p] of [[OWNER_HOST, '/v2/prod/app/tags/list'], [undefined, '/v2/acme/prod/app/tags/list'], [OTHER_HOST, '/v2/prod/app/tags/list']] as const) {
        const r = await call(app, 'GET', p, { ...(host ? { host } : {}), auth: bearer });
        assert.equal(r.status, 401, `${host} ${p}`);
        assert.match(String(r.headers['www-authenticate']), /error="invalid_token"/);
      }
      // and a main-host token is no good on a domain
      const mainToken = await token(app, undefined, alice, 'repository:acme/prod/app:pull', 'berth');
      assert.equal((await call(app, 'GET', '/v2/acme/prod/app/tags/list', { auth: `Bearer ${mainToken}` })).status, 200);
      assert.equal((await call(app, 'GET', '/v2/app/tags/list', { host: REPO_HOST, auth: `Bearer ${mainToken}` })).status, 401);
      // the token endpoint of a domain issues for that domain only
      assert.equal((await call(app, 'GET', '/v2/token?service=berth&scope=repository:app:pull', { host: REPO_HOST, auth: alice })).status, 400);
      // a scope outside the mapping grants nothing
      const outside = await token(app, OWNER_HOST, ADMIN, 'repository:../other/prod/app:pull', OWNER_HOST);
      assert.deepEqual(JSON.parse(Buffer.from(outside.split('.')[1]!, 'base64url').toString()).access, []);
    });

    it('entitlement tokens log in on the domain (-u token)', async () => {
      const t = await call(app, 'POST', '/api/v1/repos/acme/prod/tokens', { auth: ADMIN, body: { name: 'customer' } });
      assert.equal(t.status, 201, t.body);
      const creds = basic('token', t.json.secret);
      assert.equal((await call(app, 'GET', '/v2/', { host: REPO_HOST, auth: creds })).status, 200);
      const bearer = await token(app, REPO_HOST, creds, 'repository:app:pull', REPO_HOST);
      assert.equal((await call(app, 'GET', '/v2/app/manifests/v1', { host: REPO_HOST, auth: `Bearer ${bearer}`, headers: { accept: OCI_MANIFEST } })).status, 200);
      assert.equal((await call(app, 'GET', '/v2/base/tool/manifests/v1', { host: OWNER_HOST, auth: creds, headers: { accept: OCI_MANIFEST } })).status, 404);
    });

    it('GET /api/v1/host tells the UI which prefix the host drops', async () => {
      assert.deepEqual((await call(app, 'GET', '/api/v1/host', { host: REPO_HOST, auth: ADMIN })).json, { domain: REPO_HOST, prefix: 'acme/prod/', mirror: false });
      // acme/prod is private: its name is not told to whoever knows its domain
      assert.deepEqual((await call(app, 'GET', '/api/v1/host', { host: REPO_HOST })).json, { domain: REPO_HOST, prefix: '', mirror: false });
      assert.deepEqual((await call(app, 'GET', '/api/v1/host', { host: OWNER_HOST })).json, { domain: OWNER_HOST, prefix: '', mirror: false });
      assert.deepEqual((await call(app, 'GET', '/api/v1/host', { host: OWNER_HOST, auth: ADMIN })).json, { domain: OWNER_HOST, prefix: 'acme/', mirror: false });
      assert.deepEqual((await call(app, 'GET', '/api/v1/host')).json, { domain: null, prefix: '', mirror: false });
    });

    it('certificates are checked, their keys stored sealed; owners replace and remove them', async () => {
      const pair = await makeCert(b.dir, 'tls.acme.test');
      const wrong = await makeCert(b.dir, 'else.acme.test');
      const add = (body: unknown) => call(app, 'POST', '/api/v1/domains', { auth: ADMIN, body });
      assert.match((await add({ host: 'tls.acme.test', target: 'acme', cert: wrong.cert, key: wrong.key })).body, /does not name tls\.acme\.test/);
      assert.match((await add({ host: 'tls.acme.test', target: 'acme', cert: pair.cert, key: wrong.key })).body, /does not belong/);
      assert.match((await add({ host: 'tls.acme.test', target: 'acme', cert: 'junk', key: pair.key })).body, /not a PEM X.509/);
      const ok = await add({ host: 'tls.acme.test', target: 'acme', cert: pair.cert, key: pair.key });
      assert.equal(ok.status, 201, ok.body);
      assert.equal(ok.json.certificate, true);
      assert.ok(!ok.body.includes('PRIVATE KEY'));
      const row = await sql<{ key_sealed: string; cert_pem: string }>`select key_sealed, cert_pem from domains where host = 'tls.acme.test'`.execute((b.berth.registry.meta as unknown as { db: Kysely<unknown> }).db);
      assert.ok(!row.rows[0]!.key_sealed.includes('PRIVATE KEY'), 'the key is sealed');
      assert.equal(row.rows[0]!.cert_pem, pair.cert);
      assert.deepEqual(await b.berth.registry.domains.certificate('tls.acme.test'), pair);
      // berth keys rotate re-seals it under the new key-encryption key
      const db = (b.berth.registry.meta as unknown as { db: Kysely<Database> }).db;
      await addKeyToFile(path.join(b.dir, 'berth.kek'));
      const rotated = await Keyring.open({ dataDir: b.dir });
      const swept = await sweepSealed(rotated, await sealedSites(b.berth.accessStore, undefined, undefined, undefined, new SqlDomainStore(db)), { rotate: true });
      assert.equal(swept['domain certificate keys']!.resealed, 1);
      const resealed = (await new SqlDomainStore(db).listDomainKeys()).find((k) => k.id === 'tls.acme.test')!.value;
      assert.equal(Keyring.keyIdOf(resealed), rotated.currentId);
      assert.equal(rotated.decryptText(resealed, 'domain-tls-key'), pair.key);
      const removed = await call(app, 'DELETE', '/api/v1/domains/tls.acme.test/certificate', { auth: alice });
      assert.equal(removed.status, 204);
      assert.equal(await b.berth.registry.domains.certificate('tls.acme.test'), undefined);
      const again = await call(app, 'PUT', '/api/v1/domains/tls.acme.test/certificate', { auth: alice, body: pair });
      assert.equal(again.status, 200, again.body);
      assert.equal((await call(app, 'DELETE', '/api/v1/domains/tls.acme.test', { auth: alice })).status, 204);
      const gone = await call(app, 'GET', '/v2/prod/app/tags/list', { host: 'tls.acme.test', auth: ADMIN });
      assert.equal(gone.json?.errors?.[0]?.code, 'NAME_INVALID', 'removed: the main host view again (two parts are no name there)');
    });
  });
}

describe('[domains] behind a TLS-terminating proxy: X-Forwarded-Host only from trusted proxies', () => {
  let b: EventsBerth;
  before(async () => {
    b = await openBerth({ events: { trustedProxies: ['10.9.0.1'] } });
    assert.equal((await call(b.app, 'POST', '/api/v1/orgs', { auth: ADMIN, body: { name: 'acme' } })).status, 201);
    assert.equal((await call(b.app, 'POST', '/api/v1/owners/acme/repos', { auth: ADMIN, body: { name: 'prod' } })).status, 201);
    assert.equal((await call(b.app, 'POST', '/api/v1/domains', { auth: ADMIN, body: { host: REPO_HOST, target: 'acme/prod' } })).status, 201);
  });
  after(async () => b?.close());

  const challenge = async (remoteAddress: string, headers: Record<string, string>) => {
    const res = await b.app.inject({ method: 'GET', url: '/v2/app/tags/list', remoteAddress, headers: { host: 'berth.internal:5000', ...headers } });
    return { status: res.statusCode, challenge: String(res.headers['www-authenticate']), body: res.body };
  };

  it('a trusted proxy names the domain and the scheme; the realm is the public https URL', async () => {
    const r = await challenge('10.9.0.1', { 'x-forwarded-host': `${REPO_HOST}`, 'x-forwarded-proto': 'https' });
    assert.equal(r.status, 401, r.body);
    assert.equal(r.challenge, `Bearer realm="https://${REPO_HOST}/v2/token",service="${REPO_HOST}",scope="repository:app:pull"`);
  });

  it('from anyone else X-Forwarded-Host is ignored: the Host header decides', async () => {
    const r = await challenge('10.9.0.2', { 'x-forwarded-host': REPO_HOST, 'x-forwarded-proto': 'https' });
    // the main host, where `app/tags/list` is no three-part name
    assert.equal(r.status, 400, r.body);
    assert.match(r.body, /NAME_INVALID/);
    const direct = await challenge('10.9.0.2', { host: REPO_HOST });
    assert.match(direct.challenge, new RegExp(`^Bearer realm="http://${REPO_HOST}(:\\d+)?/v2/token",service="${REPO_HOST}"`));
  });

  it('hostile Host values are the main host, never an error or a realm', async () => {
    for (const host of [`${REPO_HOST}, evil.test`, `evil@${REPO_HOST}`, `${REPO_HOST}:99999`, `[${REPO_HOST}]`, `${'a.'.repeat(200)}test`]) {
      const res = await b.app.inject({ method: 'GET', url: '/v2/', remoteAddress: '10.9.0.2', headers: { host } });
      assert.equal(res.statusCode, 401, host);
      assert.match(String(res.headers['www-authenticate']), /service="berth"/, host);
      assert.doesNotMatch(String(res.headers['www-authenticate']), /evil/, host);
    }
  });
});

describe('[domains] two nodes on one PostgreSQL', () => {
  let schema: string;
  let a: EventsBerth;
  let b: EventsBerth;
  before(async () => {
    schema = await createSchema();
    a = await openBerth({ postgres: schema });
    b = await openBerth({ postgres: schema });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    if (schema) await dropSchema(schema);
  });

  it('a domain and its certificate added on one node are served by the other; its tokens work on both', async () => {
    assert.equal((await call(a.app, 'POST', '/api/v1/orgs', { auth: ADMIN, body: { name: 'acme' } })).status, 201);
    assert.equal((await call(a.app, 'POST', '/api/v1/owners/acme/repos', { auth: ADMIN, body: { name: 'prod' } })).status, 201);
    const pair = await makeCert(a.dir, OWNER_HOST);
    assert.equal((await call(a.app, 'POST', '/api/v1/domains', { auth: ADMIN, body: { host: OWNER_HOST, target: 'acme', ...pair } })).status, 201);
    assert.match(String((await call(b.app, 'GET', '/v2/', { host: OWNER_HOST })).headers['www-authenticate']), new RegExp(`service="${OWNER_HOST}"`));
    assert.deepEqual(await b.berth.registry.domains.certificate(OWNER_HOST), pair);
    await push(a.app, OWNER_HOST, 'prod/app', 'v1', ADMIN);
    const t = await token(a.app, OWNER_HOST, ADMIN, 'repository:prod/app:pull', OWNER_HOST);
    const tags = await call(b.app, 'GET', '/v2/prod/app/tags/list', { host: OWNER_HOST, auth: `Bearer ${t}` });
    assert.deepEqual(tags.json, { name: 'prod/app', tags: ['v1'] });
    assert.equal((await call(b.app, 'GET', '/v2/acme/prod/app/tags/list', { auth: `Bearer ${t}` })).status, 401);
  });
});
