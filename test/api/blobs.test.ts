import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { assertOciError, pushBlob, pushImage, sha256, startBerth, type TestBerth } from './helpers.ts';

let t: TestBerth;
const NAME = 'acme/prod/app';
const OTHER = 'acme/prod/other';
const DATA = Buffer.from('0123456789abcdefghij'); // 20 bytes
const digest = sha256(DATA);
const UNKNOWN = sha256('never pushed');

before(async () => {
  t = await startBerth();
  assert.equal(await pushBlob(t.app, NAME, DATA), digest);
  await pushBlob(t.app, OTHER, 'something else');
});
after(async () => {
  await t.close();
});

const url = (name: string, d: string) => `/v2/${name}/blobs/${d}`;

describe('[GET /v2/<name>/blobs/<digest>]', () => {
  it('returns the bytes with Content-Length, Docker-Content-Digest and Accept-Ranges', async () => {
    const res = await t.app.inject({ method: 'GET', url: url(NAME, digest) });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, DATA);
    assert.equal(res.headers['content-length'], String(DATA.length));
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    assert.equal(res.headers.etag, `"${digest}"`);
  });

  it('streams a multi-megabyte blob intact', async () => {
    const big = randomBytes(3 * 1024 * 1024 + 17);
    const d = await pushBlob(t.app, NAME, big);
    const res = await t.app.inject({ method: 'GET', url: url(NAME, d) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(big.length));
    assert.equal(sha256(res.rawPayload), d);
    const part = await t.app.inject({ method: 'GET', url: url(NAME, d), headers: { range: 'bytes=1048570-2097160' } });
    assert.equal(part.statusCode, 206);
    assert.deepEqual(part.rawPayload, big.subarray(1048570, 2097161));
  });

  it('serves a zero-byte blob', async () => {
    const d = await pushBlob(t.app, NAME, Buffer.alloc(0));
    const res = await t.app.inject({ method: 'GET', url: url(NAME, d) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], '0');
    assert.equal(res.rawPayload.length, 0);
    assert.equal(res.headers['docker-content-digest'], d);
  });

  it('serves a manifest of the image by its digest, with its media type', async () => {
    const img = await pushImage(t.app, NAME, 'as-blob');
    const res = await t.app.inject({ method: 'GET', url: url(NAME, img.digest) });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.rawPayload, img.bytes);
    assert.equal(res.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
  });

  it('unknown blob → 404 BLOB_UNKNOWN', async () => {
    const res = await t.app.inject({ method: 'GET', url: url(NAME, UNKNOWN) });
    const err = assertOciError(res, 404, 'BLOB_UNKNOWN');
    assert.deepEqual(err.detail, { digest: UNKNOWN });
  });

  it('a blob of image A is not readable via image B (isolation)', async () => {
    const res = await t.app.inject({ method: 'GET', url: url(OTHER, digest) });
    assertOciError(res, 404, 'BLOB_UNKNOWN');
    const head = await t.app.inject({ method: 'HEAD', url: url(OTHER, digest) });
    assert.equal(head.statusCode, 404);
  });

  it('a blob of image A is not readable via another owner', async () => {
    const res = await t.app.inject({ method: 'GET', url: url('evil/prod/app', digest) });
    assertOciError(res, 404, 'NAME_UNKNOWN');
  });

  it('unknown image → 404 NAME_UNKNOWN', async () => {
    const res = await t.app.inject({ method: 'GET', url: url('acme/prod/nope', digest) });
    assertOciError(res, 404, 'NAME_UNKNOWN');
  });

  it('a name with 2 segments → 400 NAME_INVALID', async () => {
    const res = await t.app.inject({ method: 'GET', url: url('acme/app', digest) });
    assertOciError(res, 400, 'NAME_INVALID');
  });

  it('an invalid name component → 400 NAME_INVALID', async () => {
    const res = await t.app.inject({ method: 'GET', url: url('acme/Prod/app', digest) });
    assertOciError(res, 400, 'NAME_INVALID');
  });

  const badDigests = ['sha256:abc', `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'latest', 'sha256:', `sha512:${'a'.repeat(64)}`];
  for (const bad of badDigests) {
    it(`invalid digest ${JSON.stringify(bad.slice(0, 20))} → 400 DIGEST_INVALID`, async () => {
      const res = await t.app.inject({ method: 'GET', url: url(NAME, bad) });
      assertOciError(res, 400, 'DIGEST_INVALID');
    });
  }
});

describe('[GET /v2/<name>/blobs/<digest>] with Range', () => {
  const cases: [string, number, number][] = [
    ['bytes=0-0', 0, 0],
    ['bytes=5-9', 5, 9],
    ['bytes=15-', 15, 19],
    ['bytes=-4', 16, 19],
    ['bytes=10-1000', 10, 19],
    ['bytes=-100', 0, 19],
  ];
  for (const [range, start, end] of cases) {
    it(`${range} → 206 bytes ${start}-${end}/20`, async () => {
      const res = await t.app.inject({ method: 'GET', url: url(NAME, digest), headers: { range } });
      assert.equal(res.statusCode, 206);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${DATA.length}`);
      assert.equal(res.headers['content-length'], String(end - start + 1));
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.deepEqual(res.rawPayload, DATA.subarray(start, end + 1));
    });
  }

  for (const range of ['bytes=20-', 'bytes=20-30', 'bytes=100-', 'bytes=-0']) {
    it(`${range} → 416 with Content-Range bytes */20`, async () => {
      const res = await t.app.inject({ method: 'GET', url: url(NAME, digest), headers: { range } });
      assertOciError(res, 416, 'RANGE_INVALID');
      assert.equal(res.headers['content-range'], `bytes */${DATA.length}`);
    });
  }

  it('any range of a zero-byte blob → 416', async () => {
    const d = await pushBlob(t.app, NAME, Buffer.alloc(0));
    const res = await t.app.inject({ method: 'GET', url: url(NAME, d), headers: { range: 'bytes=0-' } });
    assertOciError(res, 416, 'RANGE_INVALID');
    assert.equal(res.headers['content-range'], 'bytes */0');
  });

  for (const range of ['bytes=0-1,5-6', 'items=0-1', 'bytes=9-2', 'garbage']) {
    it(`ignored range ${JSON.stringify(range)} → 200 whole blob`, async () => {
      const res = await t.app.inject({ method: 'GET', url: url(NAME, digest), headers: { range } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-range'], undefined);
      assert.deepEqual(res.rawPayload, DATA);
    });
  }

  it('a range of a manifest served as a blob', async () => {
    const img = await pushImage(t.app, NAME, 'ranged');
    const res = await t.app.inject({ method: 'GET', url: url(NAME, img.digest), headers: { range: 'bytes=0-9' } });
    assert.equal(res.statusCode, 206);
    assert.deepEqual(res.rawPayload, img.bytes.subarray(0, 10));
  });
});

describe('[HEAD /v2/<name>/blobs/<digest>]', () => {
  it('→ 200 with headers and an empty body', async () => {
    const res = await t.app.inject({ method: 'HEAD', url: url(NAME, digest) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, '');
    assert.equal(res.headers['content-length'], String(DATA.length));
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal(res.headers['accept-ranges'], 'bytes');
  });
  it('with Range → 206 with Content-Range and an empty body', async () => {
    const res = await t.app.inject({ method: 'HEAD', url: url(NAME, digest), headers: { range: 'bytes=2-3' } });
    assert.equal(res.statusCode, 206);
    assert.equal(res.body, '');
    assert.equal(res.headers['content-range'], `bytes 2-3/${DATA.length}`);
    assert.equal(res.headers['content-length'], '2');
  });
  const notFound: [string, string, number][] = [
    ['unknown blob', url(NAME, UNKNOWN), 404],
    ['unknown image', url('acme/prod/nope', digest), 404],
    ['other image', url(OTHER, digest), 404],
    ['invalid digest', url(NAME, 'sha256:zz'), 400],
    // HEAD cannot explain a bad name: 404 lets a client go on to the GET or POST that does
    ['invalid name', url('acme/app', digest), 404],
  ];
  for (const [what, u, status] of notFound) {
    it(`${what} → ${status} with an empty body`, async () => {
      const res = await t.app.inject({ method: 'HEAD', url: u });
      assert.equal(res.statusCode, status);
      assert.equal(res.body, '');
      assert.equal(res.rawPayload.length, 0);
    });
  }
  it('unsatisfiable range → 416 with an empty body', async () => {
    const res = await t.app.inject({ method: 'HEAD', url: url(NAME, digest), headers: { range: 'bytes=50-' } });
    assert.equal(res.statusCode, 416);
    assert.equal(res.body, '');
  });
});

describe('[DELETE /v2/<name>/blobs/<digest>]', () => {
  it('→ 202, then GET → 404 BLOB_UNKNOWN, then DELETE → 404', async () => {
    const d = await pushBlob(t.app, NAME, 'to be deleted');
    const del = await t.app.inject({ method: 'DELETE', url: url(NAME, d) });
    assert.equal(del.statusCode, 202);
    assert.equal(del.body, '');
    assertOciError(await t.app.inject({ method: 'GET', url: url(NAME, d) }), 404, 'BLOB_UNKNOWN');
    assert.equal((await t.app.inject({ method: 'HEAD', url: url(NAME, d) })).statusCode, 404);
    assertOciError(await t.app.inject({ method: 'DELETE', url: url(NAME, d) }), 404, 'BLOB_UNKNOWN');
  });
  it('deleting from one image leaves the blob in another', async () => {
    const shared = 'shared between images';
    const d = await pushBlob(t.app, NAME, shared);
    await pushBlob(t.app, OTHER, shared);
    assert.equal((await t.app.inject({ method: 'DELETE', url: url(NAME, d) })).statusCode, 202);
    const res = await t.app.inject({ method: 'GET', url: url(OTHER, d) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.body, shared);
  });
  it('a blob can be pushed again after deletion', async () => {
    const d = await pushBlob(t.app, NAME, 'again');
    assert.equal((await t.app.inject({ method: 'DELETE', url: url(NAME, d) })).statusCode, 202);
    await pushBlob(t.app, NAME, 'again');
    assert.equal((await t.app.inject({ method: 'GET', url: url(NAME, d) })).body, 'again');
  });
  it('a blob of another image → 404 BLOB_UNKNOWN, and it survives', async () => {
    assertOciError(await t.app.inject({ method: 'DELETE', url: url(OTHER, digest) }), 404, 'BLOB_UNKNOWN');
    assert.equal((await t.app.inject({ method: 'GET', url: url(NAME, digest) })).statusCode, 200);
  });
  it('unknown image → 404 NAME_UNKNOWN', async () => {
    assertOciError(await t.app.inject({ method: 'DELETE', url: url('acme/prod/nope', digest) }), 404, 'NAME_UNKNOWN');
  });
  it('invalid digest → 400 DIGEST_INVALID', async () => {
    assertOciError(await t.app.inject({ method: 'DELETE', url: url(NAME, 'sha256:1') }), 400, 'DIGEST_INVALID');
  });
  it('invalid name → 400 NAME_INVALID', async () => {
    assertOciError(await t.app.inject({ method: 'DELETE', url: url('acme', digest) }), 400, 'NAME_INVALID');
  });
});
