import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import assert from 'node:assert/strict';
import { OCI_MANIFEST, assertOciError, nextLink, pushImage, putManifest, startBerth, type TestBerth } from './helpers.ts';

let t: TestBerth;
const NAME = 'acme/prod/app';
const EMPTY = 'acme/prod/untagged';
// Deliberately pushed out of order; expected back in lexical (byte) order.
const TAGS = ['v2', 'latest', 'v10', 'V1', '1.0', 'a', 'b_2', 'b-1', 'b.0', '_x', 'zzz', 'v1.0.0-rc1'];
const SORTED = [...TAGS].sort();

before(async () => {
  t = await startBerth();
  const img = await pushImage(t.app, NAME, undefined);
  for (const tag of TAGS) {
    const res = await putManifest(t.app, NAME, tag, img.bytes, OCI_MANIFEST);
    assert.equal(res.statusCode, 201, res.body);
  }
  await pushImage(t.app, EMPTY, undefined); // an image with a manifest but no tags
});
after(async () => {
  await t.close();
});

type TagList = { name: string; tags: string[] };
const list = (query = '', name = NAME) => t.app.inject({ method: 'GET', url: `/v2/${name}/tags/list${query}` });

describe('[GET /v2/<name>/tags/list]', () => {
  it('lists every tag in lexical order', async () => {
    const res = await list();
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.json(), { name: NAME, tags: SORTED });
    assert.equal(res.headers.link, undefined);
  });

  it('an image without tags → empty list', async () => {
    const res = await list('', EMPTY);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { name: EMPTY, tags: [] });
  });

  it('a deleted tag disappears', async () => {
    const img = await pushImage(t.app, 'acme/prod/deltag', 'keep');
    await putManifest(t.app, 'acme/prod/deltag', 'drop', img.bytes, OCI_MANIFEST);
    assert.equal((await t.app.inject({ method: 'DELETE', url: '/v2/acme/prod/deltag/manifests/drop' })).statusCode, 202);
    assert.deepEqual((await list('', 'acme/prod/deltag')).json(), { name: 'acme/prod/deltag', tags: ['keep'] });
  });

  it('unknown image → 404 NAME_UNKNOWN', async () => {
    assertOciError(await list('', 'acme/prod/nope'), 404, 'NAME_UNKNOWN');
  });

  it('invalid name → 400 NAME_INVALID', async () => {
    assertOciError(await list('', 'acme/app'), 400, 'NAME_INVALID');
  });
});

describe('[GET /v2/<name>/tags/list?n=&last=] pagination', () => {
  for (const n of [1, 2, 3, 5, 11]) {
    it(`n=${n}: follows Link rel="next" to the end and sees every tag once, in order`, async () => {
      const seen: string[] = [];
      let url: string | undefined = `/v2/${NAME}/tags/list?n=${n}`;
      let pages = 0;
      while (url !== undefined) {
        const res: LightMyRequestResponse = await t.app.inject({ method: 'GET', url });
        assert.equal(res.statusCode, 200, res.body);
        const body = res.json() as TagList;
        assert.equal(body.name, NAME);
        assert.ok(body.tags.length <= n, `page of ${body.tags.length} > n=${n}`);
        seen.push(...body.tags);
        url = nextLink(res);
        if (url !== undefined) {
          assert.equal(body.tags.length, n, 'only a full page has a next link');
          assert.ok(url.startsWith(`/v2/${NAME}/tags/list?`), url);
          const q = new URL(url, 'http://x').searchParams;
          assert.equal(q.get('n'), String(n));
          assert.equal(q.get('last'), body.tags.at(-1));
        }
        assert.ok(++pages <= SORTED.length + 1, 'pagination terminates');
      }
      assert.deepEqual(seen, SORTED);
    });
  }

  it(`n equal to the number of tags → one page, no Link`, async () => {
    const res = await list(`?n=${SORTED.length}`);
    assert.deepEqual((res.json() as TagList).tags, SORTED);
    assert.equal(res.headers.link, undefined);
  });

  it('n larger than the number of tags → all, no Link', async () => {
    const res = await list('?n=1000');
    assert.deepEqual((res.json() as TagList).tags, SORTED);
    assert.equal(res.headers.link, undefined);
  });

  it('last alone → the tags after it', async () => {
    const res = await list(`?last=${SORTED[3]}`);
    assert.deepEqual((res.json() as TagList).tags, SORTED.slice(4));
  });

  it('last that is not a tag → the tags sorting after it', async () => {
    const res = await list('?last=m');
    assert.deepEqual((res.json() as TagList).tags, SORTED.filter((x) => x > 'm'));
  });

  it('last after every tag → empty list', async () => {
    const res = await list('?last=~');
    assert.deepEqual((res.json() as TagList).tags, []);
  });

  it('n and last together', async () => {
    const res = await list(`?n=2&last=${SORTED[0]}`);
    assert.deepEqual((res.json() as TagList).tags, SORTED.slice(1, 3));
    assert.ok(nextLink(res));
  });

  it('n=0 → 200 with an empty list and no Link', async () => {
    const res = await list('?n=0');
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { name: NAME, tags: [] });
    assert.equal(res.headers.link, undefined);
  });

  it('empty n → the whole list', async () => {
    assert.deepEqual((((await list('?n=')).json()) as TagList).tags, SORTED);
  });

  it('a huge n is capped, not an error', async () => {
    const res = await list('?n=99999999999999999999');
    assert.equal(res.statusCode, 200);
    assert.deepEqual((res.json() as TagList).tags, SORTED);
  });

  for (const bad of ['-1', 'abc', '1.5', '1e3', ' 1', '0x10']) {
    it(`bad n=${JSON.stringify(bad)} → 400 PAGINATION_NUMBER_INVALID`, async () => {
      assertOciError(await list(`?n=${encodeURIComponent(bad)}`), 400, 'PAGINATION_NUMBER_INVALID');
    });
  }
});
