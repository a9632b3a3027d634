import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import assert from 'node:assert/strict';
import { assertOciError, nextLink, pushBlob, pushImage, startBerth, type TestBerth } from './helpers.ts';

let t: TestBerth;
const NAMES = [
  'zeta/prod/app',
  'acme/prod/app',
  'acme/prod/app/sub',
  'acme/dev/app',
  'acme/prod/api',
  'acme-corp/x/y',
  'b/c/d',
  '0wner/repo/img',
  'acme/prod/app-2',
  'acme/prod/app.v2',
];
const SORTED = [...NAMES].sort();

before(async () => {
  t = await startBerth();
  for (const [i, name] of NAMES.entries()) {
    if (i % 2 === 0) await pushImage(t.app, name, 'latest');
    else await pushBlob(t.app, name, `only a blob in ${name}`);
  }
});
after(async () => {
  await t.close();
});

type Catalog = { repositories: string[] };
const catalog = (query = '') => t.app.inject({ method: 'GET', url: `/v2/_catalog${query}` });

describe('[GET /v2/_catalog]', () => {
  it('lists every image, sorted', async () => {
    const res = await catalog();
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.json(), { repositories: SORTED });
    assert.equal(res.headers.link, undefined);
  });

  it('an empty registry → empty list', async () => {
    const fresh = await startBerth();
    try {
      const res = await fresh.app.inject({ method: 'GET', url: '/v2/_catalog' });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json(), { repositories: [] });
    } finally {
      await fresh.close();
    }
  });

  it('an invalid name is never added to the catalog', async () => {
    const bad = await t.app.inject({ method: 'POST', url: '/v2/acme/app/blobs/uploads/' });
    assertOciError(bad, 400, 'NAME_INVALID');
    assert.deepEqual(((await catalog()).json() as Catalog).repositories, SORTED);
  });
});

describe('[GET /v2/_catalog?n=&last=] pagination', () => {
  for (const n of [1, 3, 4, 9]) {
    it(`n=${n}: follows Link rel="next" to the end`, async () => {
      const seen: string[] = [];
      let url: string | undefined = `/v2/_catalog?n=${n}`;
      let pages = 0;
      while (url !== undefined) {
        const res: LightMyRequestResponse = await t.app.inject({ method: 'GET', url });
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json() as Catalog;
        assert.ok(body.repositories.length <= n);
        seen.push(...body.repositories);
        url = nextLink(res);
        if (url !== undefined) {
          assert.ok(url.startsWith('/v2/_catalog?'), url);
          const q = new URL(url, 'http://x').searchParams;
          assert.equal(q.get('n'), String(n));
          assert.equal(q.get('last'), body.repositories.at(-1));
        }
        assert.ok(++pages <= SORTED.length + 1, 'pagination terminates');
      }
      assert.deepEqual(seen, SORTED);
    });
  }

  it('last → the names after it', async () => {
    const res = await catalog(`?last=${encodeURIComponent(SORTED[4]!)}`);
    assert.deepEqual((res.json() as Catalog).repositories, SORTED.slice(5));
  });

  it('n and last together', async () => {
    const res = await catalog(`?n=2&last=${encodeURIComponent(SORTED[1]!)}`);
    assert.deepEqual((res.json() as Catalog).repositories, SORTED.slice(2, 4));
    assert.ok(nextLink(res));
  });

  it('n=0 → empty list, no Link', async () => {
    const res = await catalog('?n=0');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { repositories: [] });
    assert.equal(res.headers.link, undefined);
  });

  it('n = the number of images → no Link', async () => {
    const res = await catalog(`?n=${SORTED.length}`);
    assert.deepEqual((res.json() as Catalog).repositories, SORTED);
    assert.equal(res.headers.link, undefined);
  });

  for (const bad of ['-1', 'x', '2.5']) {
    it(`bad n=${bad} → 400 PAGINATION_NUMBER_INVALID`, async () => {
      assertOciError(await catalog(`?n=${bad}`), 400, 'PAGINATION_NUMBER_INVALID');
    });
  }
});
