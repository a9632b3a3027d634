import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { assertOciError, startBerth, type TestBerth } from './helpers.ts';

let t: TestBerth;
before(async () => {
  t = await startBerth();
});
after(async () => {
  await t.close();
});

const API_VERSION = 'registry/2.0';

describe('[GET /v2/]', () => {
  it('answers 200 with an empty JSON object and the API version header', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['docker-distribution-api-version'], API_VERSION);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.json(), {});
  });
  it('also answers without the trailing slash', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['docker-distribution-api-version'], API_VERSION);
  });
  it('ignores a query string', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/?foo=bar' });
    assert.equal(res.statusCode, 200);
  });
});

describe('[GET /v2/] anonymous', () => {
  it('→ 401 UNAUTHORIZED with a Bearer challenge, so that clients log in', async () => {
    const res = await t.berth.app.inject({ method: 'GET', url: '/v2/' });
    assertOciError(res, 401, 'UNAUTHORIZED');
    assert.equal(res.headers['docker-distribution-api-version'], API_VERSION);
    assert.match(String(res.headers['www-authenticate']), /^Bearer realm="[^"]+\/v2\/token",service="[^"]+"/);
  });
  it('bad credentials → 401', async () => {
    const res = await t.berth.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` } });
    assertOciError(res, 401, 'UNAUTHORIZED');
  });
  it('HEAD → 401 with no body', async () => {
    const res = await t.berth.app.inject({ method: 'HEAD', url: '/v2/' });
    assert.equal(res.statusCode, 401);
    assert.equal(res.body, '');
  });
});

describe('[HEAD /v2/]', () => {
  it('answers 200 with no body', async () => {
    const res = await t.app.inject({ method: 'HEAD', url: '/v2/' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['docker-distribution-api-version'], API_VERSION);
    assert.equal(res.body, '');
  });
});

describe('Docker-Distribution-API-Version on every /v2 response', () => {
  const requests: [string, string, number][] = [
    ['GET', '/v2/', 200],
    ['GET', '/v2/_catalog', 200],
    ['GET', '/v2/nope', 404],
    ['GET', '/v2/acme/prod/app/tags/list', 404],
    ['GET', '/v2/acme/prod/app/manifests/latest', 404],
    ['HEAD', '/v2/acme/prod/app/manifests/latest', 404],
    ['GET', '/v2/acme/app/manifests/latest', 400],
    ['GET', '/v2/acme/prod/app/blobs/sha256:nope', 400],
    ['HEAD', '/v2/acme/prod/app/blobs/sha256:nope', 400],
    ['DELETE', '/v2/', 405],
    ['PATCH', '/v2/acme/prod/app/blobs/uploads/', 405],
  ];
  for (const [method, url, status] of requests) {
    it(`${method} ${url} → ${status}`, async () => {
      const res = await t.app.inject({ method: method as 'GET', url });
      assert.equal(res.statusCode, status, res.body);
      assert.equal(res.headers['docker-distribution-api-version'], API_VERSION);
    });
  }
});

describe('[GET /v2/<unknown>] unknown routes', () => {
  const urls = ['/v2/nope', '/v2/acme/prod/app', '/v2/acme/prod/app/unknown/thing', '/v2/acme/prod/app/manifests/', '/v2/acme/prod/app/blobs/'];
  for (const url of urls) {
    it(`GET ${url} → 404 OCI error JSON`, async () => {
      const res = await t.app.inject({ method: 'GET', url });
      assertOciError(res, 404, 'NOT_FOUND');
    });
  }
  it('a path outside /v2 → 404 OCI error JSON', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/nope' });
    assertOciError(res, 404, 'NOT_FOUND');
  });
  it('does not treat /v2x as /v2', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2x/' });
    assertOciError(res, 404);
  });
});

describe('unsupported methods → 405 UNSUPPORTED', () => {
  const cases: [string, string, string[]][] = [
    ['DELETE', '/v2/', ['GET', 'HEAD']],
    ['PUT', '/v2/', ['GET', 'HEAD']],
    ['POST', '/v2/_catalog', ['GET']],
    ['DELETE', '/v2/acme/prod/app/tags/list', ['GET']],
    ['POST', '/v2/acme/prod/app/manifests/latest', ['GET', 'HEAD', 'PUT', 'DELETE']],
    ['PATCH', '/v2/acme/prod/app/manifests/latest', ['GET', 'HEAD', 'PUT', 'DELETE']],
    ['PUT', `/v2/acme/prod/app/blobs/sha256:${'a'.repeat(64)}`, ['GET', 'HEAD', 'DELETE']],
    ['POST', `/v2/acme/prod/app/blobs/sha256:${'a'.repeat(64)}`, ['GET', 'HEAD', 'DELETE']],
    ['GET', '/v2/acme/prod/app/blobs/uploads/', ['POST']],
    ['POST', '/v2/acme/prod/app/blobs/uploads/some-id', ['GET', 'PATCH', 'PUT', 'DELETE']],
    ['DELETE', `/v2/acme/prod/app/referrers/sha256:${'a'.repeat(64)}`, ['GET']],
  ];
  for (const [method, url, allow] of cases) {
    it(`${method} ${url.replace(/a{64}/, '…')} → 405 with Allow`, async () => {
      const res = await t.app.inject({ method: method as 'GET', url });
      assertOciError(res, 405, 'UNSUPPORTED');
      const allowed = String(res.headers.allow).split(/,\s*/).sort();
      assert.deepEqual(allowed, [...allow].sort());
    });
  }
  it('HEAD of an unsupported method has no body', async () => {
    const res = await t.app.inject({ method: 'HEAD', url: '/v2/_catalog' });
    assert.equal(res.statusCode, 405);
    assert.equal(res.body, '');
  });
});

describe('[GET /healthz] and [GET /readyz]', () => {
  it('/healthz → 200 ok', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ok' });
  });
  it('/readyz → 200 ready', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { status: 'ready' });
  });
  it('/healthz does not carry the registry API version header', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(res.headers['docker-distribution-api-version'], undefined);
  });
});

describe('[GET /readyz] when a dependency is down', () => {
  it('→ 503 with an error body', async () => {
    const b = await startBerth();
    try {
      await b.berth.meta.close();
      const res = await b.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(res.statusCode, 503);
      const body = res.json() as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
      assert.match(body.errors[0]!.message, /not ready/);
      const health = await b.app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(health.statusCode, 200, 'liveness does not depend on the database');
    } finally {
      await b.close();
    }
  });
});
