/**
 * Request and byte limits (docs/limits.md) on SQLite and PostgreSQL: each identity kind, the
 * headers, Retry-After, bytes per day, who may set what, and nothing at all when no limit is
 * set. Two Berths on one PostgreSQL schema share the counters.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import {
  ADMIN,
  api,
  apiOk,
  basic,
  createSchema,
  dropSchema,
  eventually,
  type EventsBerth,
  openBerth,
  POSTGRES_URL,
  pull,
  pushImage,
  type PushedImage,
  setupTenancy,
  type Tenancy,
  USER_PASSWORD,
} from '../events/helpers.ts';

const setLimit = (app: FastifyInstance, auth: string, body: Record<string, unknown>, status = 200) => apiOk(app, 'PUT', '/api/v1/limits', auth, body, status);
const removeLimit = (app: FastifyInstance, query: string, status = 204) => apiOk(app, 'DELETE', `/api/v1/limits?${query}`, ADMIN, undefined, status);

function blobGet(app: FastifyInstance, name: string, digest: string, auth?: string, headers: Record<string, string> = {}, remoteAddress?: string): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url: `/v2/${name}/blobs/${digest}`, headers: { ...(auth ? { authorization: auth } : {}), ...headers }, ...(remoteAddress ? { remoteAddress } : {}) });
}

function assertRefused(res: LightMyRequestResponse, limit: string, source: string): void {
  assert.equal(res.statusCode, 429, res.body);
  assert.equal(JSON.parse(res.body).errors[0].code, 'TOOMANYREQUESTS');
  const retry = Number(res.headers['retry-after']);
  assert.ok(retry >= 1 && retry <= 60, `Retry-After ${res.headers['retry-after']}`);
  assert.equal(res.headers['ratelimit-limit'], limit);
  assert.equal(res.headers['ratelimit-remaining'], `0;w=60`);
  assert.equal(res.headers['docker-ratelimit-source'], source);
}

/** The layer (64 bytes) of an image pushed by pushImage: its manifest's first layer. */
function layerOf(img: PushedImage): { digest: string; size: number } {
  return JSON.parse(img.bytes.toString('utf8')).layers[0];
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`rate limits on ${dialect}`, () => {
    let b: EventsBerth;
    let t: Tenancy;
    let img: PushedImage;
    let pubImg: PushedImage;
    let schema: string | undefined;

    before(async () => {
      if (dialect === 'postgres') schema = await createSchema();
      b = await openBerth(schema ? { postgres: schema } : {});
      t = await setupTenancy(b.app);
      await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'pub', visibility: 'public' }, 201);
      img = await pushImage(b.app, 'acme/prod/app', 'v1');
      pubImg = await pushImage(b.app, 'acme/pub/app', 'v1');
    });
    after(async () => {
      await b?.close();
      if (schema) await dropSchema(schema);
    });

    test('no limit: no headers and no counting', async () => {
      assert.equal(b.berth.registry.rateLimits.active, false);
      for (const auth of [undefined, t.carol, t.token]) {
        const res = await pull(b.app, auth ? 'acme/prod/app' : 'acme/pub/app', 'v1', auth);
        assert.equal(res.statusCode, 200);
        for (const h of ['ratelimit-limit', 'ratelimit-remaining', 'docker-ratelimit-source', 'ratelimit-bytes-limit']) assert.equal(res.headers[h], undefined, h);
      }
      // Nothing was counted: the shared counter table is still empty.
      if (schema) assert.equal(await countRows(schema), 0);
    });

    test('anonymous: per source address, headers, 429 with Retry-After', async () => {
      await setLimit(b.app, ADMIN, { kind: 'anonymous', requestsPerMinute: 3 });
      assert.equal(b.berth.registry.rateLimits.active, true);
      for (let i = 2; i >= 0; i--) {
        const res = await pull(b.app, 'acme/pub/app', 'v1');
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['ratelimit-limit'], '3;w=60');
        assert.equal(res.headers['ratelimit-remaining'], `${i};w=60`);
        assert.equal(res.headers['docker-ratelimit-source'], '127.0.0.1');
      }
      assertRefused(await pull(b.app, 'acme/pub/app', 'v1'), '3;w=60', '127.0.0.1');
      // A HEAD and a refused (404) request count too: the limit is on requests.
      const head = await b.app.inject({ method: 'HEAD', url: '/v2/acme/pub/app/manifests/v1' });
      assert.equal(head.statusCode, 429);
      // Another address has its own count; an IPv6 address counts by its /64.
      const other = await b.app.inject({ method: 'GET', url: '/v2/acme/pub/app/manifests/v1', remoteAddress: '10.1.2.3' });
      assert.equal(other.statusCode, 200);
      assert.equal(other.headers['ratelimit-remaining'], '2;w=60');
      for (const a of ['2001:db8:1:2::1', '2001:db8:1:2:ffff::9', '2001:db8:1:2::2']) {
        const r = await b.app.inject({ method: 'GET', url: '/v2/acme/pub/app/manifests/v1', remoteAddress: a });
        assert.equal(r.statusCode, 200);
        assert.equal(r.headers['docker-ratelimit-source'], '2001:db8:1:2::/64');
      }
      assertRefused(await b.app.inject({ method: 'GET', url: '/v2/acme/pub/app/manifests/v1', remoteAddress: '2001:db8:1:2:3::4' }), '3;w=60', '2001:db8:1:2::/64');
      // Users are not anonymous: carol is not counted (no limit on her).
      const carol = await pull(b.app, 'acme/prod/app', 'v1', t.carol);
      assert.equal(carol.statusCode, 200);
      assert.equal(carol.headers['ratelimit-limit'], undefined);
      await removeLimit(b.app, 'kind=anonymous');
      assert.equal(b.berth.registry.rateLimits.active, false);
      assert.equal((await pull(b.app, 'acme/pub/app', 'v1')).statusCode, 200);
    });

    test('users: one user, the default for all, site administrators exempt from the default', async () => {
      await setLimit(b.app, ADMIN, { kind: 'user', subject: 'carol', requestsPerMinute: 2 });
      for (const i of [1, 0]) assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.carol)).headers['ratelimit-remaining'], `${i};w=60`);
      assertRefused(await pull(b.app, 'acme/prod/app', 'v1', t.carol), '2;w=60', 'user:carol');
      // The user's limit holds whatever the credential: her API key counts against it too.
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.carolKey)).statusCode, 429);
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.bob)).headers['ratelimit-limit'], undefined);
      await setLimit(b.app, ADMIN, { kind: 'user', requestsPerMinute: 1 });
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.bob)).statusCode, 200);
      assertRefused(await pull(b.app, 'acme/prod/app', 'v1', t.bob), '1;w=60', 'user:bob');
      const admin = await pull(b.app, 'acme/prod/app', 'v1', ADMIN);
      assert.equal(admin.statusCode, 200);
      assert.equal(admin.headers['ratelimit-limit'], undefined);
      const list = await apiOk(b.app, 'GET', '/api/v1/limits', ADMIN, undefined, 200);
      assert.deepEqual(
        list.map((l: any) => [l.kind, l.subject, l.requestsPerMinute]),
        [
          ['user', null, 1],
          ['user', 'carol', 2],
        ],
      );
      await removeLimit(b.app, 'kind=user');
      await removeLimit(b.app, 'kind=user&subject=carol');
    });

    test('API keys and entitlement tokens; who may set what', async () => {
      // An API key's limit is the site's.
      assert.equal((await api(b.app, 'PUT', '/api/v1/limits', t.carol, { kind: 'token', subject: String(t.carolKeyId), requestsPerMinute: 100 })).status, 404);
      await setLimit(b.app, ADMIN, { kind: 'token', subject: String(t.carolKeyId), requestsPerMinute: 1 });
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.carolKey)).statusCode, 200);
      assertRefused(await pull(b.app, 'acme/prod/app', 'v1', t.carolKey), '1;w=60', `token:${t.carolKeyId}`);
      // Her password is not the key.
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.carol)).statusCode, 200);

      // A repository admin sets limits on the repository's entitlement tokens...
      const bobSets = await setLimit(b.app, t.bob, { kind: 'token', subject: String(t.tokenId), requestsPerMinute: 2 });
      assert.equal(bobSets.setBySiteAdmin, false);
      assert.equal(bobSets.repository, 'acme/prod');
      for (const i of [1, 0]) assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.token)).headers['ratelimit-remaining'], `${i};w=60`);
      assertRefused(await pull(b.app, 'acme/prod/app', 'v1', t.token), '2;w=60', `token:${t.tokenId}`);
      // ...through the bearer-token flow as well (the JWT names the token).
      const tokRes = await b.app.inject({ method: 'GET', url: '/v2/token?service=berth&scope=repository:acme/prod/app:pull', headers: { authorization: t.token } });
      const jwt = JSON.parse(tokRes.body).token as string;
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', `Bearer ${jwt}`)).statusCode, 429);
      // ...and sees them; carol (a reader) sees nothing; dave may not touch the token.
      const bobList = await apiOk(b.app, 'GET', '/api/v1/limits', t.bob, undefined, 200);
      assert.deepEqual(bobList.map((l: any) => [l.kind, l.subject]), [['token', String(t.tokenId)]]);
      assert.deepEqual(await apiOk(b.app, 'GET', '/api/v1/limits', t.carol, undefined, 200), []);
      assert.equal((await api(b.app, 'PUT', '/api/v1/limits', t.dave, { kind: 'token', subject: String(t.tokenId), requestsPerMinute: 100 })).status, 404);
      // Only site administrators set anonymous, user and default limits.
      for (const body of [{ kind: 'anonymous' }, { kind: 'user', subject: 'dave' }, { kind: 'token' }, { kind: 'repository' }]) {
        assert.equal((await api(b.app, 'PUT', '/api/v1/limits', t.bob, { ...body, requestsPerMinute: 5 })).status, 403, JSON.stringify(body));
      }
      assert.equal((await api(b.app, 'PUT', '/api/v1/limits', undefined, { kind: 'anonymous', requestsPerMinute: 5 })).status, 401);
      // The site's default caps what a repository admin may set; a site administrator's limit is theirs.
      await setLimit(b.app, ADMIN, { kind: 'token', requestsPerMinute: 10 });
      assert.equal((await api(b.app, 'PUT', '/api/v1/limits', t.bob, { kind: 'token', subject: String(t.tokenId), requestsPerMinute: 20 })).status, 403);
      assert.equal((await api(b.app, 'PUT', '/api/v1/limits', t.bob, { kind: 'token', subject: String(t.tokenId), bytesPerDay: 5 })).status, 403);
      await setLimit(b.app, t.bob, { kind: 'token', subject: String(t.tokenId), requestsPerMinute: 5 });
      await setLimit(b.app, ADMIN, { kind: 'token', subject: String(t.tokenId), requestsPerMinute: 7 });
      assert.equal((await api(b.app, 'DELETE', `/api/v1/limits?kind=token&subject=${t.tokenId}`, t.bob)).status, 403);
      // Bad input is a clear 400.
      for (const body of [{ kind: 'nope', requestsPerMinute: 1 }, { kind: 'user', subject: 'dave' }, { kind: 'user', subject: 'dave', requestsPerMinute: -1 }, { kind: 'anonymous', subject: 'x', requestsPerMinute: 1 }]) {
        assert.equal((await api(b.app, 'PUT', '/api/v1/limits', ADMIN, body)).status, 400, JSON.stringify(body));
      }
      assert.equal((await api(b.app, 'DELETE', '/api/v1/limits?kind=nope', ADMIN)).status, 400);
      for (const q of [`kind=token&subject=${t.tokenId}`, `kind=token&subject=${t.carolKeyId}`, 'kind=token']) await removeLimit(b.app, q);
      await removeLimit(b.app, 'kind=token', 404);
    });

    test('repositories: every caller together; refused only after access is settled', async () => {
      await setLimit(b.app, t.bob, { kind: 'repository', subject: 'acme/prod', requestsPerMinute: 3 });
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.carol)).headers['ratelimit-remaining'], '2;w=60');
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.token)).headers['ratelimit-remaining'], '1;w=60');
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.bob)).headers['ratelimit-remaining'], '0;w=60');
      assertRefused(await pull(b.app, 'acme/prod/app', 'v1', t.carol), '3;w=60', 'repository:acme/prod');
      // An outsider learns nothing about the private repository: 404, not 429.
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.dave)).statusCode, 404);
      // Other repositories are not limited.
      assert.equal((await pull(b.app, 'acme/pub/app', 'v1', t.carol)).headers['ratelimit-limit'], undefined);
      // The tightest limit of a request is the one shown.
      await setLimit(b.app, ADMIN, { kind: 'repository', subject: 'acme/pub', requestsPerMinute: 100 });
      await setLimit(b.app, ADMIN, { kind: 'user', subject: 'carol', requestsPerMinute: 50 });
      const tight = await pull(b.app, 'acme/pub/app', 'v1', t.carol);
      assert.equal(tight.headers['ratelimit-limit'], '50;w=60');
      assert.equal(tight.headers['docker-ratelimit-source'], 'user:carol');
      // bob may not change the repository limit a site administrator set.
      assert.equal((await api(b.app, 'PUT', '/api/v1/limits', t.bob, { kind: 'repository', subject: 'acme/pub', requestsPerMinute: 1000 })).status, 403);
      for (const q of ['kind=repository&subject=acme/prod', 'kind=repository&subject=acme/pub', 'kind=user&subject=carol']) await removeLimit(b.app, q);
    });

    test('bytes per day: blob and manifest GETs as served, ranges count what is sent, a pull under way is never cut', async () => {
      const layer = layerOf(pubImg);
      await setLimit(b.app, ADMIN, { kind: 'anonymous', bytesPerDay: 100 });
      const ip = '10.9.9.9';
      const first = await blobGet(b.app, 'acme/pub/app', layer.digest, undefined, {}, ip);
      assert.equal(first.statusCode, 200);
      assert.equal(first.headers['ratelimit-bytes-limit'], '100;w=86400');
      assert.equal(first.headers['ratelimit-bytes-remaining'], '100;w=86400');
      assert.equal(first.headers['ratelimit-limit'], undefined, 'no request limit: no request headers');
      // A range counts the bytes it sends.
      const range = await blobGet(b.app, 'acme/pub/app', layer.digest, undefined, { range: 'bytes=0-9' }, ip);
      assert.equal(range.statusCode, 206);
      const r0 = await b.app.inject({ method: 'HEAD', url: `/v2/acme/pub/app/blobs/${layer.digest}`, remoteAddress: ip });
      assert.equal(r0.statusCode, 200, 'HEAD sends no bytes and is never refused by a byte limit');
      // Counted once each answer ended: 64 + 10 (read here without counting).
      const limits = b.berth.registry.rateLimits;
      const left = async () => (await limits.bytesStanding(limits.identitySubjects({ kind: 'anonymous' }, ip)))?.remaining;
      await eventually(async () => ((await left()) === 26 ? true : undefined), 10_000, 'bytes counted');
      // 26 left: the next 64-byte GET goes over the limit but is sent whole...
      const whole = await blobGet(b.app, 'acme/pub/app', layer.digest, undefined, {}, ip);
      assert.equal(whole.statusCode, 200);
      assert.equal(whole.rawPayload.length, 64);
      // ...then nothing more today: blobs and manifests alike, with Retry-After of about a day.
      const r = await eventually(async () => {
        const res = await b.app.inject({ method: 'GET', url: '/v2/acme/pub/app/manifests/v1', remoteAddress: ip });
        return res.statusCode === 429 ? res : undefined;
      }, 10_000, 'the byte limit to refuse');
      assert.equal(JSON.parse(r.body).errors[0].code, 'TOOMANYREQUESTS');
      const retry = Number(r.headers['retry-after']);
      assert.ok(retry > 86_000 && retry <= 86_400, `Retry-After ${retry}`);
      assert.equal(r.headers['ratelimit-bytes-remaining'], '0;w=86400');
      assert.equal(r.headers['docker-ratelimit-source'], ip);
      // Another address is untouched.
      assert.equal((await blobGet(b.app, 'acme/pub/app', layer.digest, undefined, {}, '10.9.9.10')).statusCode, 200);
      // A manifest GET counts its bytes too (a token's limit).
      await setLimit(b.app, ADMIN, { kind: 'token', subject: String(t.tokenId), bytesPerDay: img.bytes.length });
      assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.token)).statusCode, 200);
      await eventually(async () => ((await pull(b.app, 'acme/prod/app', 'v1', t.token)).statusCode === 429 ? true : undefined), 10_000, 'manifest bytes counted');
      await removeLimit(b.app, 'kind=anonymous');
      await removeLimit(b.app, `kind=token&subject=${t.tokenId}`);
    });

    test('a blob is not mounted out of a repository with a byte limit: the client uploads it', async () => {
      const layer = layerOf(img);
      const mount = async (from?: string) =>
        (await b.app.inject({ method: 'POST', url: `/v2/carol/mine/app/blobs/uploads/?mount=${layer.digest}${from ? `&from=${from}` : ''}`, headers: { authorization: t.carol } })).statusCode;
      await setLimit(b.app, ADMIN, { kind: 'repository', subject: 'acme/prod', bytesPerDay: 1000 });
      // carol may read acme/prod: pulling the layer from her own repository would escape its limit.
      await eventually(async () => ((await mount('acme/prod/app')) === 202 ? true : undefined), 10_000, 'the limited source not mounted from');
      assert.equal(await mount(), 202, 'nor found by automatic discovery');
      await removeLimit(b.app, 'kind=repository&subject=acme/prod');
      await eventually(async () => ((await mount('acme/prod/app')) === 201 ? true : undefined), 10_000, 'mounted once the limit is gone');
    });

    test('a deleted subject takes its limit with it', async () => {
      await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'gone', password: USER_PASSWORD }, 201);
      await setLimit(b.app, ADMIN, { kind: 'user', subject: 'gone', requestsPerMinute: 5 });
      await apiOk(b.app, 'DELETE', '/api/v1/users/gone?confirm=gone', ADMIN, undefined, 204);
      assert.deepEqual(await apiOk(b.app, 'GET', '/api/v1/limits', ADMIN, undefined, 200), []);
    });

    if (dialect === 'postgres') {
      test('counters that cannot be reached: 503 with Retry-After, never an uncounted answer', async () => {
        await setLimit(b.app, ADMIN, { kind: 'anonymous', requestsPerMinute: 100 });
        await sql(`DROP TABLE ${schema}.rate_limit_counters`);
        const res = await pull(b.app, 'acme/pub/app', 'v1');
        assert.equal(res.statusCode, 503, res.body);
        assert.equal(JSON.parse(res.body).errors[0].code, 'UNAVAILABLE');
        assert.equal(res.headers['retry-after'], '1');
        await removeLimit(b.app, 'kind=anonymous');
        assert.equal((await pull(b.app, 'acme/pub/app', 'v1')).statusCode, 200, 'no limit, no counter asked');
      });
    }
  });
}

describe('rate limits across two nodes on one PostgreSQL schema', () => {
  let schema: string;
  let a: EventsBerth;
  let b: EventsBerth;
  let pubImg: PushedImage;

  before(async () => {
    schema = await createSchema();
    a = await openBerth({ postgres: schema });
    b = await openBerth({ postgres: schema });
    await apiOk(a.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    await apiOk(a.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'pub', visibility: 'public' }, 201);
    await apiOk(a.app, 'POST', '/api/v1/users', ADMIN, { username: 'erin', password: USER_PASSWORD }, 201);
    pubImg = await pushImage(a.app, 'acme/pub/app', 'v1');
  });
  after(async () => {
    await a?.close();
    await b?.close();
    if (schema) await dropSchema(schema);
  });

  test('a limit set on one node applies on the other once it re-reads; the counts are shared', async () => {
    await setLimit(a.app, ADMIN, { kind: 'anonymous', requestsPerMinute: 4 });
    await setLimit(a.app, ADMIN, { kind: 'user', subject: 'erin', requestsPerMinute: 2 });
    // Node b learns of it when it next polls the change counter (every rateLimits.refreshSeconds): now.
    await b.berth.registry.rateLimits.refresh();
    assert.equal(b.berth.registry.rateLimits.active, true);
    const seen: string[] = [];
    for (const node of [a, b, a, b]) {
      const res = await pull(node.app, 'acme/pub/app', 'v1');
      assert.equal(res.statusCode, 200);
      seen.push(String(res.headers['ratelimit-remaining']));
    }
    assert.deepEqual(seen, ['3;w=60', '2;w=60', '1;w=60', '0;w=60']);
    assertRefused(await pull(b.app, 'acme/pub/app', 'v1'), '4;w=60', '127.0.0.1');
    assertRefused(await pull(a.app, 'acme/pub/app', 'v1'), '4;w=60', '127.0.0.1');
    const erin = basic('erin', USER_PASSWORD);
    assert.equal((await pull(a.app, 'acme/pub/app', 'v1', erin)).statusCode, 200);
    assert.equal((await pull(b.app, 'acme/pub/app', 'v1', erin)).statusCode, 200);
    assertRefused(await pull(a.app, 'acme/pub/app', 'v1', erin), '2;w=60', 'user:erin');
  });

  test('bytes per day count across nodes', async () => {
    const layer = layerOf(pubImg);
    await setLimit(b.app, ADMIN, { kind: 'user', subject: 'erin', bytesPerDay: 100 });
    await a.berth.registry.rateLimits.refresh();
    const erin = basic('erin', USER_PASSWORD);
    assert.equal((await blobGet(a.app, 'acme/pub/app', layer.digest, erin)).statusCode, 200);
    // Counted once the answer ended, in the shared table.
    await eventually(async () => ((await counterPoints(schema, 'bytes')) === 64 ? true : undefined), 10_000, 'the bytes counted');
    // Blob bytes are in each node's own folder here; manifests are in the shared database.
    const m = await pull(b.app, 'acme/pub/app', 'v1', erin);
    assert.equal(m.statusCode, 200);
    assert.equal(m.headers['ratelimit-bytes-remaining'], '36;w=86400');
    const refused = await eventually(async () => {
      const r = await blobGet(a.app, 'acme/pub/app', layer.digest, erin);
      return r.statusCode === 429 ? r : undefined;
    }, 10_000, 'refused on the first node');
    assert.equal(refused.headers['docker-ratelimit-source'], 'user:erin');
  });
});

async function sql(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** The points of the (one) counter row of `name` in the schema. */
async function counterPoints(schema: string, name: string): Promise<number | undefined> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    const { rows } = await c.query(`SELECT points FROM ${schema}.rate_limit_counters WHERE key LIKE $1`, [`berth-${name}:%`]);
    return rows.length === 1 ? Number(rows[0].points) : undefined;
  } finally {
    await c.end();
  }
}

async function countRows(schema: string): Promise<number> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    return Number((await c.query(`SELECT count(*) AS n FROM ${schema}.rate_limit_counters`)).rows[0].n);
  } finally {
    await c.end();
  }
}
