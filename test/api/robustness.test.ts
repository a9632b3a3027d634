/**
 * Odd, malformed and hostile requests: every one must get a 4xx with OCI error JSON (or, where
 * the request is merely unusual, a non-error answer) — never a 500, never fastify's own body.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import {
  ADMIN_AUTH,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  assertOciError,
  pushBlob,
  pushImage,
  sha256,
  startBerth,
  startUpload,
  type PushedImage,
  type TestBerth,
} from './helpers.ts';

let t: TestBerth;
const NAME = 'acme/prod/app';
const D = sha256('robust');
let blob: string;
let image: PushedImage;
let upload: string;

before(async () => {
  t = await startBerth();
  blob = await pushBlob(t.app, NAME, 'robust');
  image = await pushImage(t.app, NAME, 'latest');
  upload = (await startUpload(t.app, NAME)).location;
});
after(async () => {
  await t.close();
});

type Req = Omit<InjectOptions, 'url'> & { url: string };

function assert4xxOci(res: LightMyRequestResponse, req: Req): void {
  const what = `${req.method} ${req.url.slice(0, 120)}`;
  assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${what}: expected 4xx, got ${res.statusCode}: ${res.body.slice(0, 300)}`);
  if (req.method === 'HEAD') {
    assert.equal(res.body, '', `${what}: HEAD has no body`);
    return;
  }
  const err = assertOciError(res, res.statusCode);
  assert.ok(err.code.length > 0 && err.message.length > 0, what);
  if (req.url.startsWith('/v2')) assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0', `${what}: API version header`);
}

const big = (n: number, c = 'a') => c.repeat(n);

/** Requests that must be refused with a 4xx OCI error. Functions run after setup. */
const refused: [string, () => Req][] = [
  // bad percent-encoding
  ['bad %-escape in a digest', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/%ZZ` })],
  ['truncated UTF-8 escape in a name', () => ({ method: 'GET', url: '/v2/acme/prod/%E0%A4%A/tags/list' })],
  ['lone % in a name', () => ({ method: 'GET', url: '/v2/acme/%/app/tags/list' })],
  ['lone % in a reference', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/%` })],
  ['bad escape on PUT manifest', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/%G0`, payload: image.bytes, headers: { 'content-type': OCI_MANIFEST } })],
  ['bad escape on HEAD', () => ({ method: 'HEAD', url: `/v2/${NAME}/blobs/%ZZ` })],
  // huge or bad n
  ['n = 1e999', () => ({ method: 'GET', url: `/v2/${NAME}/tags/list?n=1e999` })],
  ['n negative', () => ({ method: 'GET', url: '/v2/_catalog?n=-5' })],
  ['n twice', () => ({ method: 'GET', url: '/v2/_catalog?n=1&n=2' })],
  ['n with a bad escape', () => ({ method: 'GET', url: '/v2/_catalog?n=%ZZ' })],
  ['n = Infinity', () => ({ method: 'GET', url: '/v2/_catalog?n=Infinity' })],
  // control characters and broken escapes in a query: refused at the edge (docs/security.md)
  ['last with a bad escape', () => ({ method: 'GET', url: '/v2/_catalog?last=%ZZ' })],
  ['last with NUL', () => ({ method: 'GET', url: `/v2/${NAME}/tags/list?last=%00` })],
  // weird methods
  ['OPTIONS /v2/', () => ({ method: 'OPTIONS', url: '/v2/' })],
  ['TRACE /v2/', () => ({ method: 'TRACE', url: '/v2/' })],
  ['PROPFIND on a manifest', () => ({ method: 'PROPFIND', url: `/v2/${NAME}/manifests/latest` })],
  ['SEARCH on a blob', () => ({ method: 'SEARCH', url: `/v2/${NAME}/blobs/${blob}` })],
  ['MKCOL on uploads', () => ({ method: 'MKCOL', url: `/v2/${NAME}/blobs/uploads/` })],
  ['POST on a manifest', () => ({ method: 'POST', url: `/v2/${NAME}/manifests/latest`, payload: image.bytes })],
  ['PATCH on a blob', () => ({ method: 'PATCH', url: `/v2/${NAME}/blobs/${blob}`, payload: 'x' })],
  ['GET on the uploads endpoint', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/uploads/` })],
  ['PUT on tags/list', () => ({ method: 'PUT', url: `/v2/${NAME}/tags/list`, payload: '{}' })],
  // Content-Range and Range garbage
  ['Content-Range garbage on PATCH', () => ({ method: 'PATCH', url: upload, headers: { 'content-range': 'garbage' }, payload: 'abc' })],
  ['Content-Range with letters', () => ({ method: 'PATCH', url: upload, headers: { 'content-range': 'bytes=a-z' }, payload: 'abc' })],
  ['Content-Range overflowing', () => ({ method: 'PATCH', url: upload, headers: { 'content-range': `0-${big(30, '9')}` }, payload: 'abc' })],
  ['Content-Range multi-range', () => ({ method: 'PATCH', url: upload, headers: { 'content-range': '0-1,2-3' }, payload: 'abcd' })],
  ['Content-Range far ahead', () => ({ method: 'PATCH', url: upload, headers: { 'content-range': '1000000-1000002' }, payload: 'abc' })],
  ['Content-Range larger than the body', () => ({ method: 'PATCH', url: upload, headers: { 'content-range': '0-999999' }, payload: 'abc' })],
  ['Content-Range garbage on PUT', () => ({ method: 'PUT', url: `${upload}?digest=${sha256('abc')}`, headers: { 'content-range': '--' }, payload: 'abc' })],
  ['Range unsatisfiable on a blob', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/${blob}`, headers: { range: `bytes=${big(25, '9')}-` } })],
  // manifest bodies
  ['empty body PUT manifest', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/empty`, headers: { 'content-type': OCI_MANIFEST } })],
  ['empty body PUT manifest, no Content-Type', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/empty` })],
  ['whitespace-only manifest', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/ws`, headers: { 'content-type': OCI_MANIFEST }, payload: '   \n\t ' })],
  ['manifest "null"', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/n`, headers: { 'content-type': OCI_MANIFEST }, payload: 'null' })],
  ['manifest with a BOM', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/bom`, headers: { 'content-type': OCI_MANIFEST }, payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), image.bytes]) })],
  ['manifest with invalid UTF-8', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/utf`, headers: { 'content-type': OCI_MANIFEST }, payload: Buffer.from([0x7b, 0xc3, 0x28, 0x7d]) })],
  ['deeply nested JSON array', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/deep`, headers: { 'content-type': OCI_MANIFEST }, payload: `${big(500_000, '[')}${big(500_000, ']')}` })],
  [
    'deeply nested annotation',
    () => ({
      method: 'PUT',
      url: `/v2/${NAME}/manifests/deep2`,
      headers: { 'content-type': OCI_MANIFEST },
      payload: `{"schemaVersion":2,"config":{"mediaType":"${OCI_CONFIG}","digest":"${D}","size":1},"layers":[],"annotations":{"a":${big(100_000, '{"a":')}1${big(100_000, '}')}}}`,
    }),
  ],
  ['unclosed deep JSON', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/deep3`, headers: { 'content-type': OCI_MANIFEST }, payload: big(1_000_000, '{"a":') })],
  ['malformed Content-Type', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/ct`, headers: { 'content-type': ';;;/' }, payload: image.bytes })],
  ['Content-Type text/html', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/ct2`, headers: { 'content-type': 'text/html' }, payload: image.bytes })],
  ['manifest layers with 20k missing blobs', () => {
    const layers = Array.from({ length: 20_000 }, (_, i) => ({ mediaType: OCI_LAYER, digest: sha256(`missing ${i}`), size: i }));
    return { method: 'PUT', url: `/v2/${NAME}/manifests/many`, headers: { 'content-type': OCI_MANIFEST }, payload: JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: image.config, layers }) };
  }],
  ['manifest PUT streamed without length, over 4 MiB', () => ({
    method: 'PUT',
    url: `/v2/${NAME}/manifests/stream`,
    headers: { 'content-type': OCI_MANIFEST, 'transfer-encoding': 'chunked' },
    payload: Readable.from(Array.from({ length: 5 }, () => Buffer.alloc(1024 * 1024, 0x20))),
  })],
  // names, references, traversal
  ['path traversal in the name', () => ({ method: 'GET', url: `/v2/acme/prod/..%2F..%2Fother/blobs/${blob}` })],
  ['dot segment in the name (encoded)', () => ({ method: 'GET', url: `/v2/acme/%2E%2E/app/tags/list` })],
  ['traversal in the digest', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/sha256:..%2F..%2F..%2Fberth.db` })],
  ['traversal in the digest hex', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/sha256%3A..%5C..%5Cberth.db` })],
  ['traversal in the upload id', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/uploads/..%2F..%2Fberth.db` })],
  ['traversal in the upload id (backslash)', () => ({ method: 'PATCH', url: `/v2/${NAME}/blobs/uploads/..%5C..%5Cberth.db`, payload: 'x' })],
  ['traversal in the tag', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/..%2F..%2Fetc%2Fpasswd` })],
  ['%2F collapsing a name to 2 segments', () => ({ method: 'GET', url: '/v2/acme%2Fapp/tags/list' })],
  ['%2F in a name of an unknown image', () => ({ method: 'GET', url: '/v2/acme%2Fprod%2Fnope/tags/list' })],
  ['%2F in a tag', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/v1%2Fv2` })],
  ['%2F in a digest', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/sha256%2F${'a'.repeat(64)}` })],
  ['empty name segments', () => ({ method: 'GET', url: '/v2//prod/app/tags/list' })],
  ['double slash inside', () => ({ method: 'GET', url: '/v2/acme//app/tags/list' })],
  ['NUL in a name', () => ({ method: 'GET', url: '/v2/acme/prod/app%00/tags/list' })],
  ['NUL in a tag', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/latest%00` })],
  ['NUL in a digest', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/sha256:${'a'.repeat(63)}%00` })],
  ['newline in a tag', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/v1%0Aevil`, payload: image.bytes, headers: { 'content-type': OCI_MANIFEST } })],
  ['CRLF in a name', () => ({ method: 'GET', url: '/v2/acme/prod/app%0D%0ASet-Cookie:x/tags/list' })],
  ['unicode name', () => ({ method: 'GET', url: '/v2/acme/prod/%E2%98%83/tags/list' })],
  ['uppercase name', () => ({ method: 'GET', url: '/v2/ACME/prod/app/tags/list' })],
  ['name of 10k chars', () => ({ method: 'GET', url: `/v2/acme/prod/${big(10_000)}/tags/list` })],
  ['name with 1000 segments', () => ({ method: 'GET', url: `/v2/acme/prod/${Array(1000).fill('a').join('/')}/tags/list` })],
  ['tag of 10k chars', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/${big(10_000)}` })],
  ['digest of 10k chars', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/sha256:${big(10_000)}` })],
  ['upload id of 10k chars', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/uploads/${big(10_000)}` })],
  ['unicode upload id', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/uploads/%E2%98%83` })],
  ['digest with an unknown algorithm', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/sha1:${'a'.repeat(40)}` })],
  ['referrers of a tag', () => ({ method: 'GET', url: `/v2/${NAME}/referrers/latest` })],
  ['referrers of garbage', () => ({ method: 'GET', url: `/v2/${NAME}/referrers/%ZZ` })],
  // upload queries
  ['monolithic POST with an empty digest', () => ({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=`, payload: 'x' })],
  ['monolithic POST with a garbage digest', () => ({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=%00`, payload: 'x' })],
  ['mount with an empty digest', () => ({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?mount=&from=${NAME}` })],
  ['PUT upload with a bad digest', () => ({ method: 'PUT', url: `${upload}?digest=sha256:${big(64, 'Z')}` })],
  ['PUT upload with two digests, first bad', () => ({ method: 'PUT', url: `${upload}?digest=bad&digest=${sha256('')}` })],
  ['PUT upload of another image', () => ({ method: 'PUT', url: `${upload.replace(NAME, 'acme/prod/other')}?digest=${sha256('')}` })],
  ['DELETE of a digest-looking tag', () => ({ method: 'DELETE', url: `/v2/${NAME}/manifests/sha256:latest` })],
  ['DELETE with a bad escape', () => ({ method: 'DELETE', url: `/v2/${NAME}/manifests/%` })],
  // outside /v2
  ['unknown top-level path', () => ({ method: 'GET', url: '/admin' })],
  ['bad escape outside /v2', () => ({ method: 'GET', url: '/%ZZ' })],
  ['/v1 API', () => ({ method: 'GET', url: '/v1/_ping' })],
];

describe('robustness: odd requests get a 4xx OCI error, never a 500', () => {
  for (const [what, make] of refused) {
    it(what, async () => {
      const req = make();
      const res = await t.app.inject(req as InjectOptions);
      assert4xxOci(res, req);
    });
  }
});

/** Unusual but acceptable requests: any answer but a 5xx. */
const tolerated: [string, () => Req, number][] = [
  ['huge n on the catalog is capped', () => ({ method: 'GET', url: `/v2/_catalog?n=${big(40, '9')}` }), 200],
  ['huge n on tags is capped', () => ({ method: 'GET', url: `/v2/${NAME}/tags/list?n=${big(40, '9')}` }), 200],
  ['last of 10k chars', () => ({ method: 'GET', url: `/v2/_catalog?last=${big(10_000, 'z')}` }), 200],
  ['unknown query parameters', () => ({ method: 'GET', url: `/v2/${NAME}/tags/list?foo=bar&n[]=1` }), 200],
  ['Range with an inverted huge start is ignored', () => ({ method: 'GET', url: `/v2/${NAME}/blobs/${blob}`, headers: { range: `bytes=${big(25, '9')}-1` } }), 200],
  ['Range on a manifest GET is ignored', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/latest`, headers: { range: 'bytes=0-0' } }), 200],
  ['If-None-Match: * on a manifest', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/latest`, headers: { 'if-none-match': '*' } }), 200],
  ['garbage Accept on a manifest', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/latest`, headers: { accept: ';;;,,,*/*;q=abc' } }), 200],
  ['a body on GET is ignored', () => ({ method: 'GET', url: `/v2/${NAME}/manifests/latest`, payload: 'ignored', headers: { 'content-type': 'text/plain' } }), 200],
  ['mount from a traversal-looking name falls back to an upload', () => ({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?mount=${sha256('stored nowhere')}&from=..%2F..%2Fetc` }), 202],
  ['mount from an unknown image falls back to an upload', () => ({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?mount=${sha256('stored nowhere')}&from=x/y/z` }), 202],
  ['Content-Range garbage on a monolithic POST is ignored', () => ({ method: 'POST', url: `/v2/${NAME}/blobs/uploads/?digest=${sha256('mono')}`, headers: { 'content-range': 'garbage' }, payload: 'mono' }), 201],
  ['Content-Type with parameters on a manifest', () => ({ method: 'PUT', url: `/v2/${NAME}/manifests/params`, headers: { 'content-type': `${OCI_MANIFEST}; charset=utf-8; foo=bar` }, payload: image.bytes }), 201],
  ['annotation named __proto__', () => ({
    method: 'PUT',
    url: `/v2/${NAME}/manifests/proto`,
    headers: { 'content-type': OCI_MANIFEST },
    // JSON.parse makes "__proto__" an own property, which JSON.stringify then writes out
    payload: JSON.stringify({ ...image.manifest, annotations: JSON.parse('{"__proto__":"x","constructor":"y"}') as Record<string, string> }),
  }), 201],
];

describe('robustness: unusual requests are answered, never with a 500', () => {
  for (const [what, make, status] of tolerated) {
    it(`${what} → ${status}`, async () => {
      const req = make();
      const res = await t.app.inject(req as InjectOptions);
      assert.equal(res.statusCode, status, res.body.slice(0, 300));
    });
  }

  it('the open upload session survived every odd request', async () => {
    const res = await t.app.inject({ method: 'GET', url: upload });
    assert.equal(res.statusCode, 204);
    assert.equal(res.headers.range, '0-0', 'no garbage was appended');
  });

  it('the stored image is intact', async () => {
    const res = await t.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/latest` });
    assert.deepEqual(res.rawPayload, image.bytes);
    const b = await t.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${blob}` });
    assert.equal(b.body, 'robust');
  });

  it('referrers with an annotation named __proto__ round-trip', async () => {
    const subject = { mediaType: OCI_MANIFEST, digest: image.digest, size: image.bytes.length };
    const body = `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify(image.config)},"layers":${JSON.stringify(image.layers)},"subject":${JSON.stringify(subject)},"annotations":{"__proto__":"x"}}`;
    const put = await t.app.inject({ method: 'PUT', url: `/v2/${NAME}/manifests/${sha256(body)}`, headers: { 'content-type': OCI_MANIFEST }, payload: body });
    assert.equal(put.statusCode, 201, put.body);
    const res = await t.app.inject({ method: 'GET', url: `/v2/${NAME}/referrers/${image.digest}` });
    assert.equal(res.statusCode, 200);
    const entry = (JSON.parse(res.body) as { manifests: { digest: string; annotations?: Record<string, string> }[] }).manifests.find((m) => m.digest === sha256(body));
    assert.ok(entry);
    assert.ok(Object.prototype.hasOwnProperty.call(entry.annotations, '__proto__'));
  });
});

/** A raw HTTP/1.1 exchange over a socket: inject() normalizes paths, a real client may not. */
async function raw(port: number, request: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
    sock.write(request);
  });
}

describe('robustness over a real socket (no client-side path normalization)', () => {
  let port: number;
  let b: TestBerth;
  before(async () => {
    b = await startBerth();
    await pushImage(b.app, NAME, 'latest');
    await pushImage(b.app, 'acme/prod/other', 'latest');
    await b.app.listen({ host: '127.0.0.1', port: 0 });
    port = (b.app.server.address() as AddressInfo).port;
  });
  after(async () => {
    await b.close();
  });

  const paths: [string, number][] = [
    ['/v2/acme/prod/../other/tags/list', 400],
    ['/v2/acme/prod/app/../../other/tags/list', 400],
    ['/v2/acme/prod/./app/tags/list', 400],
    ['/v2/acme/prod/app/blobs/../../../../../etc/passwd', 404],
    [`/v2/acme/prod/app/blobs/uploads/../../../berth.db`, 404],
    ['/v2/acme/prod/app/manifests/..', 404],
    ['/v2/acme/prod/app/manifests/.', 404],
    ['/v2/acme/prod/app/blobs/%ZZ', 400],
    ['/v2/acme/prod/%E0%A4%A/tags/list', 400],
    ['/v2/acme/prod/app/tags/list/../../../other/tags/list', 400],
  ];
  for (const [p, status] of paths) {
    it(`GET ${p} → ${status} OCI error`, async () => {
      const res = await raw(port, `GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: ${ADMIN_AUTH}\r\nConnection: close\r\n\r\n`);
      assert.equal(res.status, status, res.body);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      const body = JSON.parse(res.body) as { errors: { code: string }[] };
      assert.ok(body.errors[0]?.code);
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    });
  }

  it('a PATCH whose client disconnects mid-body leaves the upload unchanged', async () => {
    const { location } = await startUpload(b.app, NAME);
    assert.equal((await b.app.inject({ method: 'PATCH', url: location, payload: 'abc', headers: { 'content-type': 'application/octet-stream' } })).statusCode, 202);
    await new Promise<void>((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => {
        sock.write(`PATCH ${location} HTTP/1.1\r\nHost: x\r\nAuthorization: ${ADMIN_AUTH}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
        sock.write(Buffer.alloc(5000, 0x61), () => setTimeout(() => sock.destroy(), 50));
      });
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
    });
    // the server notices the abort asynchronously
    let range = '';
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const st = await b.app.inject({ method: 'GET', url: location });
      assert.equal(st.statusCode, 204);
      range = String(st.headers.range);
      if (range === '0-2') break;
    }
    assert.equal(range, '0-2', 'the partial chunk was rolled back');
    const digest = sha256('abcdef');
    assert.equal((await b.app.inject({ method: 'PATCH', url: location, payload: 'def', headers: { 'content-type': 'application/octet-stream' } })).headers.range, '0-5');
    const put = await b.app.inject({ method: 'PUT', url: `${location}?digest=${digest}` });
    assert.equal(put.statusCode, 201, put.body);
  });
});
