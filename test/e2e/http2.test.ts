/**
 * HTTP/2 on the TLS port (`tls.http2`, `--http2`): curl negotiates h2 or HTTP/1.1 as asked;
 * skopeo still pushes and pulls with TLS verified (containers/image keeps to HTTP/1.1); a
 * 24 MiB blob goes up and down over h2; an early 401 on a large body arrives over h2; the web
 * UI is served over h2; a stalled h2 upload is cut without hurting another stream of the same
 * connection.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, constants } from 'node:http2';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ADMIN_PASSWORD, spawnBerth, tempDir, type ServerProcess } from '../auth/helpers.ts';
import { buildImage } from '../helpers/oci-layout.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { makeCerts } from '../helpers/tls.ts';

const run = promisify(execFile);
const basic = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;

describe('[tls] HTTP/2 next to HTTP/1.1', () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let srv: ServerProcess;
  let sk: Skopeo;
  let certs: { ca: string; cert: string; key: string };
  let base: string;

  before(async () => {
    dir = await tempDir('berth-h2-');
    certs = await makeCerts(dir.dir, 'h2');
    srv = await spawnBerth({
      env: { BERTH_TLS_CERT: certs.cert, BERTH_TLS_KEY: certs.key, BERTH_TLS_HTTP2: 'true', BERTH_BODY_IDLE_TIMEOUT_SECONDS: '2' },
      tlsCa: await readFile(certs.ca),
    });
    base = `https://127.0.0.1:${srv.port}`;
    sk = await createSkopeo();
  });
  after(async () => {
    await srv?.stop();
    await sk?.cleanup();
    await dir?.remove();
  });

  const curl = (...args: string[]) => run('curl', ['-sS', '--cacert', certs.ca, ...args], { maxBuffer: 64 * 1024 * 1024, encoding: 'buffer' });

  it('curl --http2 gets HTTP/2, --http1.1 gets HTTP/1.1, with the same challenge', async () => {
    const h2 = (await curl('-i', '--http2', `${base}/v2/`)).stdout.toString();
    assert.match(h2, /^HTTP\/2 401/m);
    assert.match(h2, new RegExp(`www-authenticate: Bearer realm="${base.replace(/\./g, '\\.')}/v2/token"`, 'i'));
    assert.match(h2, /docker-distribution-api-version: registry\/2\.0/i);
    const h1 = (await curl('-i', '--http1.1', `${base}/v2/`)).stdout.toString();
    assert.match(h1, /^HTTP\/1\.1 401/m);
    const ui = (await curl('-i', '--http2', `${base}/`)).stdout.toString();
    assert.match(ui, /^HTTP\/2 200/m);
    assert.match(ui, /<title>Berth<\/title>/);
  });

  it('skopeo pushes and pulls with h2 offered (containers/image keeps to HTTP/1.1 then); curl --http2 uploads and reads back a 24 MiB blob', async () => {
    const certDir = path.join(dir.dir, 'certs.d');
    await mkdir(certDir);
    await copyFile(certs.ca, path.join(certDir, 'ca.crt'));
    const src = path.join(dir.dir, 'layout');
    const image = await buildImage(src, { layers: [{ size: 24 * 1024 * 1024 }, { size: 1000 }] }, 'v1');
    const dest = `docker://127.0.0.1:${srv.port}/admin/h2/app:v1`;
    await sk.run(['copy', '--dest-tls-verify=true', '--dest-cert-dir', certDir, '--dest-creds', `admin:${ADMIN_PASSWORD}`, `oci:${src}:v1`, dest]);
    const back = path.join(dir.dir, 'back');
    await sk.run(['copy', '--src-tls-verify=true', '--src-cert-dir', certDir, '--src-creds', `admin:${ADMIN_PASSWORD}`, dest, `oci:${back}:v1`]);
    const pulled = image.layers[0]!.descriptor.digest;
    const again = (await curl('--http2', '-H', `Authorization: ${basic}`, `${base}/v2/admin/h2/app/blobs/${pulled}`)).stdout;
    assert.equal(`sha256:${createHash('sha256').update(again).digest('hex')}`, pulled);
    // a monolithic upload and a read back, both over h2
    const file = path.join(dir.dir, 'blob.bin');
    const bytes = randomBytes(24 * 1024 * 1024);
    await writeFile(file, bytes);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const put = (await curl('-i', '--http2', '-X', 'POST', '-H', `Authorization: ${basic}`, '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`, `${base}/v2/admin/h2/app/blobs/uploads/?digest=${digest}`)).stdout.toString();
    assert.match(put, /^HTTP\/2 201/m);
    const blob = (await curl('--http2', '-H', `Authorization: ${basic}`, `${base}/v2/admin/h2/app/blobs/${digest}`)).stdout;
    assert.equal(blob.length, bytes.length);
    assert.equal(`sha256:${createHash('sha256').update(blob).digest('hex')}`, digest);
  });

  it('an early answer (401) to a large upload body arrives over h2', async () => {
    const body = path.join(dir.dir, 'big.bin');
    await writeFile(body, randomBytes(16 * 1024 * 1024));
    const r = await curl('-i', '--http2', '-X', 'POST', '--data-binary', `@${body}`, '-H', 'Content-Type: application/octet-stream', `${base}/v2/admin/h2/app/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`);
    assert.match(r.stdout.toString(), /^HTTP\/2 401/m);
  });

  it('a stalled h2 upload is cut (its stream only): another stream on the same connection still answers', async () => {
    const ca = await readFile(certs.ca);
    const session = connect(base, { ca, servername: 'localhost' });
    try {
      const start = session.request({ ':method': 'POST', ':path': '/v2/admin/h2/app/blobs/uploads/', authorization: basic });
      const location = await new Promise<string>((resolve, reject) => {
        start.on('response', (h) => resolve(String(h.location)));
        start.on('error', reject);
        start.end();
      });
      start.resume();
      const stalled = session.request({ ':method': 'PATCH', ':path': location, authorization: basic, 'content-type': 'application/octet-stream' });
      stalled.write(Buffer.alloc(1024)); // then nothing: under 16 KiB in the 2 s window
      let answered: unknown;
      stalled.on('response', (h) => (answered = h[':status']));
      const t0 = Date.now();
      const cut = await new Promise<number>((resolve) => {
        stalled.on('close', () => resolve(stalled.rstCode));
        stalled.on('error', () => undefined);
        stalled.resume();
      });
      assert.equal(answered, undefined, 'no answer: the stream was cut');
      assert.equal(cut, constants.NGHTTP2_CANCEL, `stream closed with ${cut}`);
      assert.ok(Date.now() - t0 >= 1500, 'after the body window');
      const other = session.request({ ':path': '/v2/', authorization: basic });
      const status = await new Promise<number>((resolve, reject) => {
        other.on('response', (h) => resolve(Number(h[':status'])));
        other.on('error', reject);
        other.end();
      });
      other.resume();
      assert.equal(status, 200, 'the connection lives on');
    } finally {
      session.close();
    }
  });

  it('a chunked upload over h2 (a body without Content-Length, as streaming clients send it) lands whole', async () => {
    const session = connect(base, { ca: await readFile(certs.ca), servername: 'localhost' });
    const send = (headers: Record<string, string>, body?: Buffer[]) =>
      new Promise<{ status: number; location: string }>((resolve, reject) => {
        const s = session.request({ authorization: basic, ...headers });
        s.on('response', (h) => resolve({ status: Number(h[':status']), location: String(h.location ?? '') }));
        s.on('error', reject);
        for (const b of body ?? []) s.write(b);
        s.end();
        s.resume();
      });
    try {
      const parts = [randomBytes(300_000), randomBytes(5_000_000), randomBytes(1)];
      const digest = `sha256:${createHash('sha256').update(Buffer.concat(parts)).digest('hex')}`;
      const start = await send({ ':method': 'POST', ':path': '/v2/admin/h2/chunked/blobs/uploads/' });
      assert.equal(start.status, 202);
      const patch = await send({ ':method': 'PATCH', ':path': start.location, 'content-type': 'application/octet-stream' }, parts);
      assert.equal(patch.status, 202);
      const done = await send({ ':method': 'PUT', ':path': `${patch.location}${patch.location.includes('?') ? '&' : '?'}digest=${digest}` });
      assert.equal(done.status, 201);
    } finally {
      session.close();
    }
  });

  it('a download read slowly over h2 is not mistaken for a stalled upload', async () => {
    const bytes = randomBytes(8 * 1024 * 1024);
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    const file = path.join(dir.dir, 'slow.bin');
    await writeFile(file, bytes);
    const put = await curl('-o', '/dev/null', '-w', '%{http_code}', '--http2', '-X', 'POST', '-H', `Authorization: ${basic}`, '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`, `${base}/v2/admin/h2/slow/blobs/uploads/?digest=${digest}`);
    assert.equal(put.stdout.toString(), '201');
    const session = connect(base, { ca: await readFile(certs.ca), servername: 'localhost' });
    try {
      const get = session.request({ ':path': `/v2/admin/h2/slow/blobs/${digest}`, authorization: basic });
      get.pause();
      await new Promise((r) => setTimeout(r, 3500)); // longer than the 2 s body window
      const chunks: Buffer[] = [];
      await new Promise<void>((resolve, reject) => {
        get.on('data', (c: Buffer) => chunks.push(c));
        get.on('end', resolve);
        get.on('error', reject);
        get.resume();
      });
      assert.equal(Buffer.concat(chunks).length, bytes.length, 'the whole blob arrived');
    } finally {
      session.close();
    }
  });
});
