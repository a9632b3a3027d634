import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { assertOciError, pushBlob, sha256, sha512, startBerth, startUpload, withQuery, type TestBerth } from './helpers.ts';

let t: TestBerth;
const NAME = 'acme/prod/app';
const OTHER = 'acme/prod/other';
const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

before(async () => {
  t = await startBerth();
  await pushBlob(t.app, OTHER, 'exists so that OTHER is a known image');
});
after(async () => {
  await t.close();
});

async function getBlob(name: string, digest: string) {
  return t.app.inject({ method: 'GET', url: `/v2/${name}/blobs/${digest}` });
}

async function patch(location: string, body: Buffer | string, contentRange?: string) {
  return t.app.inject({
    method: 'PATCH',
    url: location,
    headers: { 'content-type': 'application/octet-stream', ...(contentRange === undefined ? {} : { 'content-range': contentRange }) },
    payload: body,
  });
}

async function status(location: string) {
  return t.app.inject({ method: 'GET', url: location });
}

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

describe('[POST /v2/<name>/blobs/uploads/?digest=] monolithic upload', () => {
  it('→ 201 with Location and Docker-Content-Digest; the blob is readable', async () => {
    const data = Buffer.from('monolithic blob');
    const digest = sha256(data);
    const res = await t.app.inject({
      method: 'POST',
      url: `/v2/${NAME}/blobs/uploads/?digest=${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers.location, `/v2/${NAME}/blobs/${digest}`);
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal(res.body, '');
    const get = await getBlob(NAME, digest);
    assert.equal(get.statusCode, 200);
    assert.deepEqual(get.rawPayload, data);
  });

  it('creates the image on first push', async () => {
    const name = 'newowner/newrepo/newimage';
    await pushBlob(t.app, name, 'first');
    const cat = await t.app.inject({ method: 'GET', url: '/v2/_catalog' });
    assert.ok((cat.json() as { repositories: string[] }).repositories.includes(name));
  });

  it('also works without the trailing slash', async () => {
    const data = Buffer.from('no trailing slash');
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads?digest=${sha256(data)}`, payload: data, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.statusCode, 201, res.body);
  });

  it('wrong digest → 400 DIGEST_INVALID and nothing is stored', async () => {
    const data = Buffer.from('some bytes');
    const wrong = sha256('other bytes');
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=${wrong}`, payload: data, headers: { 'content-type': 'application/octet-stream' } });
    const err = assertOciError(res, 400, 'DIGEST_INVALID');
    assert.deepEqual(err.detail, { expected: wrong, actual: sha256(data) });
    assertOciError(await getBlob(NAME, wrong), 404, 'BLOB_UNKNOWN');
    assertOciError(await getBlob(NAME, sha256(data)), 404, 'BLOB_UNKNOWN');
    assert.deepEqual(await readdir(path.join(t.dir, 'storage', 'uploads')), [], 'no temporary data left behind');
  });

  it('malformed digest → 400 DIGEST_INVALID', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=sha256:xyz`, payload: 'x', headers: { 'content-type': 'application/octet-stream' } });
    assertOciError(res, 400, 'DIGEST_INVALID');
  });

  it('sha512 digest works', async () => {
    const data = randomBytes(5000);
    const digest = sha512(data);
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=${digest}`, payload: data, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['docker-content-digest'], digest);
    const get = await getBlob(NAME, digest);
    assert.equal(get.statusCode, 200);
    assert.deepEqual(get.rawPayload, data);
    assert.equal(get.headers['docker-content-digest'], digest);
  });

  it('zero-byte blob with no body', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=${EMPTY_SHA256}` });
    assert.equal(res.statusCode, 201, res.body);
    const get = await getBlob(NAME, EMPTY_SHA256);
    assert.equal(get.statusCode, 200);
    assert.equal(get.headers['content-length'], '0');
  });

  it('zero-byte body with the wrong digest → 400 DIGEST_INVALID', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=${sha256('x')}` });
    assertOciError(res, 400, 'DIGEST_INVALID');
  });

  it('invalid name → 400 NAME_INVALID', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/v2/acme/app/blobs/uploads/?digest=${EMPTY_SHA256}` });
    assertOciError(res, 400, 'NAME_INVALID');
  });
});

describe('[POST /v2/<name>/blobs/uploads/] start a session', () => {
  it('→ 202 with Location, Docker-Upload-UUID and Range 0-0', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/` });
    assert.equal(res.statusCode, 202);
    const id = String(res.headers['docker-upload-uuid']);
    assert.match(id, /^[A-Za-z0-9-]+$/);
    assert.equal(res.headers.location, `/v2/${NAME}/blobs/uploads/${id}`);
    assert.equal(res.headers.range, '0-0');
    assert.equal(res.headers['content-length'], '0');
  });
  it('each session has its own id', async () => {
    const a = await startUpload(t.app, NAME);
    const b = await startUpload(t.app, NAME);
    assert.notEqual(a.id, b.id);
  });
  it('invalid name → 400 NAME_INVALID', async () => {
    assertOciError(await t.app.inject({ method: 'POST', url: '/v2/acme/blobs/uploads/' }), 400, 'NAME_INVALID');
    assertOciError(await t.app.inject({ method: 'POST', url: '/v2/acme/prod/UPPER/blobs/uploads/' }), 400, 'NAME_INVALID');
  });
});

describe('[PATCH /v2/<name>/blobs/uploads/<reference>] chunks', () => {
  it('streamed chunks without Content-Range → 202 Range 0-<last>', async () => {
    const { location, id } = await startUpload(t.app, NAME);
    const r1 = await patch(location, 'hello ');
    assert.equal(r1.statusCode, 202, r1.body);
    assert.equal(r1.headers.range, '0-5');
    assert.equal(r1.headers['docker-upload-uuid'], id);
    assert.equal(r1.headers.location, location);
    const r2 = await patch(location, 'world');
    assert.equal(r2.statusCode, 202);
    assert.equal(r2.headers.range, '0-10');
    const digest = sha256('hello world');
    const put = await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`) });
    assert.equal(put.statusCode, 201, put.body);
    assert.equal((await getBlob(NAME, digest)).body, 'hello world');
  });

  it('chunks with Content-Range → 202 Range 0-<last>', async () => {
    const { location } = await startUpload(t.app, NAME);
    const r1 = await patch(location, 'abcde', '0-4');
    assert.equal(r1.statusCode, 202, r1.body);
    assert.equal(r1.headers.range, '0-4');
    const r2 = await patch(location, 'fghij', '5-9');
    assert.equal(r2.statusCode, 202, r2.body);
    assert.equal(r2.headers.range, '0-9');
    const r3 = await patch(location, 'k', 'bytes=10-10');
    assert.equal(r3.statusCode, 202, r3.body);
    assert.equal(r3.headers.range, '0-10');
    const digest = sha256('abcdefghijk');
    assert.equal((await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`) })).statusCode, 201);
    assert.equal((await getBlob(NAME, digest)).body, 'abcdefghijk');
  });

  it('a chunk sent with Transfer-Encoding: chunked (no Content-Length)', async () => {
    const { location } = await startUpload(t.app, NAME);
    const res = await t.app.inject({
      method: 'PATCH',
      url: location,
      headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
      payload: Readable.from([Buffer.from('stre'), Buffer.from('amed')]),
    });
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.headers.range, '0-7');
  });

  it('a multi-megabyte upload in several chunks', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 3);
    const { location } = await startUpload(t.app, NAME);
    const size = 2 * 1024 * 1024;
    for (let off = 0; off < data.length; off += size) {
      const chunk = data.subarray(off, Math.min(off + size, data.length));
      const r = await patch(location, chunk, `${off}-${off + chunk.length - 1}`);
      assert.equal(r.statusCode, 202, r.body);
      assert.equal(r.headers.range, `0-${off + chunk.length - 1}`);
    }
    const digest = sha256(data);
    assert.equal((await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`) })).statusCode, 201);
    const get = await getBlob(NAME, digest);
    assert.equal(sha256(get.rawPayload), digest);
  });

  it('out-of-order chunk → 416 with the current Range', async () => {
    const { location, id } = await startUpload(t.app, NAME);
    assert.equal((await patch(location, 'abcde', '0-4')).statusCode, 202);
    const skip = await patch(location, 'xyz', '10-12');
    assertOciError(skip, 416, 'RANGE_INVALID');
    assert.equal(skip.headers.range, '0-4');
    assert.equal(skip.headers['docker-upload-uuid'], id);
    const again = await patch(location, 'abc', '0-2');
    assertOciError(again, 416);
    assert.equal(again.headers.range, '0-4');
    // the session continues where it was
    const ok = await patch(location, 'fg', '5-6');
    assert.equal(ok.statusCode, 202);
    assert.equal(ok.headers.range, '0-6');
  });

  it('first chunk not starting at 0 → 416 with Range 0-0', async () => {
    const { location } = await startUpload(t.app, NAME);
    const res = await patch(location, 'abc', '1-3');
    assertOciError(res, 416);
    assert.equal(res.headers.range, '0-0');
  });

  for (const [what, body, range] of [
    ['shorter than its Content-Range', 'abc', '4-9'],
    ['longer than its Content-Range', 'abcdefghij', '4-6'],
  ] as const) {
    it(`a chunk ${what} → 400 SIZE_INVALID and the upload is left unchanged`, async () => {
      const { location } = await startUpload(t.app, NAME);
      assert.equal((await patch(location, 'abcd', '0-3')).statusCode, 202);
      const res = await patch(location, body, range);
      assertOciError(res, 400, 'SIZE_INVALID');
      const st = await status(location);
      assert.equal(st.statusCode, 204);
      assert.equal(st.headers.range, '0-3', 'the bad chunk was discarded');
      // the upload still completes with the right bytes
      assert.equal((await patch(location, 'efgh', '4-7')).headers.range, '0-7');
      const digest = sha256('abcdefgh');
      const put = await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`) });
      assert.equal(put.statusCode, 201, put.body);
      assert.equal((await getBlob(NAME, digest)).body, 'abcdefgh');
    });
  }

  for (const range of ['garbage', '5', 'bytes=a-b', '-3']) {
    it(`malformed Content-Range ${JSON.stringify(range)} → 400 BLOB_UPLOAD_INVALID`, async () => {
      const { location } = await startUpload(t.app, NAME);
      assertOciError(await patch(location, 'abc', range), 400, 'BLOB_UPLOAD_INVALID');
      assert.equal((await status(location)).headers.range, '0-0');
    });
  }

  it('inverted Content-Range → 416', async () => {
    const { location } = await startUpload(t.app, NAME);
    assertOciError(await patch(location, 'abc', '3-1'), 416);
  });

  it('an empty PATCH leaves the upload unchanged', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, 'abc');
    const res = await t.app.inject({ method: 'PATCH', url: location });
    assert.equal(res.statusCode, 202);
    assert.equal(res.headers.range, '0-2');
  });

  it('unknown upload id → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const res = await patch(`/v2/${NAME}/blobs/uploads/00000000-0000-0000-0000-000000000000`, 'abc');
    assertOciError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('upload id of image A used via image B → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const { id, location } = await startUpload(t.app, NAME);
    assertOciError(await patch(`/v2/${OTHER}/blobs/uploads/${id}`, 'abc'), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertOciError(await patch(`/v2/acme/prod/never-pushed/blobs/uploads/${id}`, 'abc'), 404, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await status(location)).headers.range, '0-0', 'untouched');
  });
});

describe('[PUT /v2/<name>/blobs/uploads/<reference>?digest=] complete', () => {
  it('without a final chunk → 201', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, 'all data in patch');
    const digest = sha256('all data in patch');
    const res = await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`) });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers.location, `/v2/${NAME}/blobs/${digest}`);
    assert.equal(res.headers['docker-content-digest'], digest);
  });

  it('with a final chunk → 201', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, 'first ');
    const digest = sha256('first last');
    const res = await t.app.inject({
      method: 'PUT',
      url: withQuery(location, `digest=${digest}`),
      headers: { 'content-type': 'application/octet-stream' },
      payload: 'last',
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((await getBlob(NAME, digest)).body, 'first last');
  });

  it('with a final chunk and Content-Range → 201', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, '0123', '0-3');
    const digest = sha256('012345');
    const res = await t.app.inject({
      method: 'PUT',
      url: withQuery(location, `digest=${digest}`),
      headers: { 'content-type': 'application/octet-stream', 'content-range': '4-5' },
      payload: '45',
    });
    assert.equal(res.statusCode, 201, res.body);
  });

  it('with an out-of-order final chunk → 416', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, '0123', '0-3');
    const res = await t.app.inject({
      method: 'PUT',
      url: withQuery(location, `digest=${sha256('0123xx')}`),
      headers: { 'content-type': 'application/octet-stream', 'content-range': '6-7' },
      payload: 'xx',
    });
    assertOciError(res, 416);
    assert.equal(res.headers.range, '0-3');
  });

  it('the whole blob in the PUT of a session (POST then PUT)', async () => {
    const { location } = await startUpload(t.app, NAME);
    const data = randomBytes(1000);
    const res = await t.app.inject({
      method: 'PUT',
      url: withQuery(location, `digest=${sha256(data)}`),
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual((await getBlob(NAME, sha256(data))).rawPayload, data);
  });

  it('zero-byte blob through a session', async () => {
    const { location } = await startUpload(t.app, NAME);
    const res = await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${EMPTY_SHA256}`) });
    assert.equal(res.statusCode, 201, res.body);
    const get = await getBlob(NAME, EMPTY_SHA256);
    assert.equal(get.statusCode, 200);
    assert.equal(get.rawPayload.length, 0);
  });

  it('sha512 digest through a session', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, 'five hundred and twelve ');
    const digest = sha512('five hundred and twelve bits');
    const res = await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`), payload: 'bits', headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['docker-content-digest'], digest);
    assert.equal((await getBlob(NAME, digest)).body, 'five hundred and twelve bits');
  });

  it('the session is gone once completed', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, 'done');
    assert.equal((await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${sha256('done')}`) })).statusCode, 201);
    assertOciError(await status(location), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertOciError(await patch(location, 'more'), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('wrong digest → 400 DIGEST_INVALID, and the blob is not stored', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, 'actual content');
    const wrong = sha256('claimed content');
    const res = await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${wrong}`) });
    assertOciError(res, 400, 'DIGEST_INVALID');
    assertOciError(await getBlob(NAME, wrong), 404, 'BLOB_UNKNOWN');
    assertOciError(await getBlob(NAME, sha256('actual content')), 404, 'BLOB_UNKNOWN');
  });

  it('malformed digest → 400 DIGEST_INVALID', async () => {
    const { location } = await startUpload(t.app, NAME);
    assertOciError(await t.app.inject({ method: 'PUT', url: withQuery(location, 'digest=sha256:nothex') }), 400, 'DIGEST_INVALID');
    assertOciError(await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=md5:${'a'.repeat(32)}`) }), 400, 'DIGEST_INVALID');
  });

  it('without digest → 400', async () => {
    const { location } = await startUpload(t.app, NAME);
    await patch(location, 'abc');
    const res = await t.app.inject({ method: 'PUT', url: location });
    assertOciError(res, 400, 'DIGEST_INVALID');
    assert.equal((await status(location)).headers.range, '0-2', 'the session survives');
  });

  it('with an empty digest → 400', async () => {
    const { location } = await startUpload(t.app, NAME);
    assertOciError(await t.app.inject({ method: 'PUT', url: withQuery(location, 'digest=') }), 400);
  });

  it('unknown upload id → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const res = await t.app.inject({ method: 'PUT', url: `/v2/${NAME}/blobs/uploads/nope?digest=${EMPTY_SHA256}` });
    assertOciError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('upload id of image A via image B → 404, and A can still complete', async () => {
    const { id, location } = await startUpload(t.app, NAME);
    await patch(location, 'mine');
    const res = await t.app.inject({ method: 'PUT', url: `/v2/${OTHER}/blobs/uploads/${id}?digest=${sha256('mine')}` });
    assertOciError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
    assertOciError(await getBlob(OTHER, sha256('mine')), 404, 'BLOB_UNKNOWN');
    assert.equal((await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${sha256('mine')}`) })).statusCode, 201);
  });
});

describe('[GET /v2/<name>/blobs/uploads/<reference>] status', () => {
  it('→ 204 with Range, Location and Docker-Upload-UUID', async () => {
    const { location, id } = await startUpload(t.app, NAME);
    let res = await status(location);
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers.range, '0-0');
    assert.equal(res.headers['docker-upload-uuid'], id);
    assert.equal(res.headers.location, location);
    assert.equal(res.body, '');
    await patch(location, '12345');
    res = await status(location);
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers.range, '0-4');
  });
  it('unknown id → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    assertOciError(await status(`/v2/${NAME}/blobs/uploads/11111111-2222-3333-4444-555555555555`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
  it('ids that are not upload ids → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    for (const id of ['a.b', 'a..b', 'x'.repeat(65), '%00', 'a%20b']) {
      assertOciError(await status(`/v2/${NAME}/blobs/uploads/${id}`), 404, 'BLOB_UPLOAD_UNKNOWN');
    }
  });
  it('upload id of image A via image B → 404', async () => {
    const { id } = await startUpload(t.app, NAME);
    assertOciError(await status(`/v2/${OTHER}/blobs/uploads/${id}`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
});

describe('[DELETE /v2/<name>/blobs/uploads/<reference>] cancel', () => {
  it('→ 204, then GET → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const { location, id } = await startUpload(t.app, NAME);
    await patch(location, 'abandoned');
    const res = await t.app.inject({ method: 'DELETE', url: location });
    assert.equal(res.statusCode, 204);
    assert.equal(res.body, '');
    assertOciError(await status(location), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertOciError(await patch(location, 'more'), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertOciError(await t.app.inject({ method: 'DELETE', url: location }), 404, 'BLOB_UPLOAD_UNKNOWN');
    const uploads = await readdir(path.join(t.dir, 'storage', 'uploads'));
    assert.ok(!uploads.includes(id), 'the data is removed');
  });
  it('upload id of image A via image B → 404 and A keeps it', async () => {
    const { location, id } = await startUpload(t.app, NAME);
    assertOciError(await t.app.inject({ method: 'DELETE', url: `/v2/${OTHER}/blobs/uploads/${id}` }), 404, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal((await status(location)).statusCode, 204);
  });
  it('unknown id → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    assertOciError(await t.app.inject({ method: 'DELETE', url: `/v2/${NAME}/blobs/uploads/nope` }), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
});

describe('[POST /v2/<name>/blobs/uploads/?mount=&from=] cross-repository mount', () => {
  it('→ 201 when the blob is in `from`; readable in the target', async () => {
    const data = Buffer.from('mount me');
    const digest = await pushBlob(t.app, OTHER, data);
    const target = 'acme/prod/mount-target';
    const res = await t.app.inject({ method: 'POST', url: `/v2/${target}/blobs/uploads/?mount=${digest}&from=${OTHER}` });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers.location, `/v2/${target}/blobs/${digest}`);
    assert.equal(res.headers['docker-content-digest'], digest);
    const get = await getBlob(target, digest);
    assert.equal(get.statusCode, 200);
    assert.deepEqual(get.rawPayload, data);
  });

  it('across owners', async () => {
    const digest = await pushBlob(t.app, OTHER, 'cross owner');
    const res = await t.app.inject({ method: 'POST', url: `/v2/someone/else/img/blobs/uploads/?mount=${digest}&from=${OTHER}` });
    assert.equal(res.statusCode, 201);
    assert.equal((await getBlob('someone/else/img', digest)).body, 'cross owner');
  });

  // The administrator may read everything: a digest stored in any image is found without `from`.
  const fallbacks: [string, () => Promise<string>][] = [
    ['blob not in `from` nor anywhere', async () => `mount=${sha256('not there')}&from=${OTHER}`],
    ['`from` unknown, blob nowhere', async () => `mount=${sha256('not there 2')}&from=acme/prod/unknown-image`],
    ['`from` invalid, blob nowhere', async () => `mount=${sha256('not there 3')}&from=not-a-name`],
    ['mount without from, blob nowhere', async () => `mount=${sha256('not there 4')}`],
  ];
  for (const [what, query] of fallbacks) {
    it(`${what} → 202 and an ordinary upload session`, async () => {
      const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?${await query()}` });
      assert.equal(res.statusCode, 202, res.body);
      const location = String(res.headers.location);
      assert.match(location, new RegExp(`^/v2/${NAME}/blobs/uploads/[A-Za-z0-9-]+$`));
      assert.equal(res.headers.range, '0-0');
      assert.equal((await status(location)).statusCode, 204);
      await patch(location, 'uploaded instead');
      assert.equal((await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${sha256('uploaded instead')}`) })).statusCode, 201);
    });
  }

  const discovered: [string, (digest: string) => string][] = [
    ['mount without from', (digest) => `mount=${digest}`],
    ['`from` unknown', (digest) => `mount=${digest}&from=acme/prod/unknown-image`],
    ['`from` invalid', (digest) => `mount=${digest}&from=not-a-name`],
    ['`from` lacks the blob', (digest) => `mount=${digest}&from=${NAME}`],
  ];
  for (const [what, query] of discovered) {
    it(`${what}, blob in another readable image → 201 (automatic content discovery)`, async () => {
      const digest = await pushBlob(t.app, OTHER, `discover ${what}`);
      const target = `acme/prod/discovered-${discovered.findIndex(([w]) => w === what)}`;
      const res = await t.app.inject({ method: 'POST', url: `/v2/${target}/blobs/uploads/?${query(digest)}` });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.headers['docker-content-digest'], digest);
      assert.equal((await getBlob(target, digest)).body, `discover ${what}`);
    });
  }

  it('invalid mount digest → 400 DIGEST_INVALID', async () => {
    const res = await t.app.inject({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?mount=sha256:bad&from=${OTHER}` });
    assertOciError(res, 400, 'DIGEST_INVALID');
  });
});

describe('deduplication', () => {
  it('the same blob pushed to two images is stored once', async () => {
    const data = randomBytes(4096);
    const digest = sha256(data);
    await pushBlob(t.app, 'dedupe/one/img', data);
    // second image: through a chunked session, to exercise that path too
    const { location } = await startUpload(t.app, 'dedupe/two/img');
    await patch(location, data);
    assert.equal((await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`) })).statusCode, 201);
    await pushBlob(t.app, 'dedupe/one/img', data); // and again to the first

    const hex = digest.slice('sha256:'.length);
    const matches = (await filesUnder(path.join(t.dir, 'storage', 'blobs'))).filter((f) => f.includes(hex));
    assert.equal(matches.length, 1, `one copy: ${matches.join(', ')}`);
    assert.equal((await stat(matches[0]!)).size, data.length);
    for (const name of ['dedupe/one/img', 'dedupe/two/img']) {
      assert.deepEqual((await getBlob(name, digest)).rawPayload, data);
    }
  });

  it('no upload data is left behind by completed uploads', async () => {
    const leftover = await readdir(path.join(t.dir, 'storage', 'uploads'));
    const open = new Set<string>();
    // sessions left open by tests above are fine; check every leftover is a known session row
    for (const id of leftover) {
      const row = await t.berth.meta.findUpload(id);
      if (row) open.add(id);
    }
    assert.deepEqual(leftover.filter((id) => !open.has(id)), []);
  });
});
