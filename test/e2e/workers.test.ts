/**
 * End-to-end: `berth serve --workers 2` on the embedded default (SQLite + a folder). Every
 * request goes on a new connection, so the supervisor spreads them over both workers: an
 * upload's chunks land on either, concurrent manifest pushes write the one SQLite database
 * from both processes, /metrics counts both, a killed worker is replaced, and SIGTERM stops
 * them all.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { test } from 'node:test';
import { startBerth } from '../helpers/server.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on its own connection (no keep-alive), given up after 30 s without a byte. */
function request(url: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // A hung connection fails the test in seconds instead of holding the test process open.
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${url}: no answer within 30 s`)));
    req.end(body);
  });
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function workersOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('berth serve --workers 2: uploads, pushes and pulls across both workers; restart and shutdown', { timeout: 120_000 }, async () => {
  const srv = await startBerth({ extraArgs: ['--workers', '2'], orgs: ['acme'], startTimeoutMs: 60_000 });
  try {
    const workers = workersOf(srv.pid);
    assert.equal(workers.length, 2, `two worker processes under the supervisor, got ${workers.join(',')}`);
    const auth = { Authorization: srv.adminAuthorization };
    const name = 'acme/app/web';

    // A chunked upload whose requests are spread over the workers.
    const blob = randomBytes(4 * 256 * 1024);
    let r = await request(`${srv.url}/v2/${name}/blobs/uploads/`, 'POST', auth);
    assert.equal(r.status, 202);
    let loc = r.headers.location!;
    for (let off = 0; off < blob.length; off += 256 * 1024) {
      const part = blob.subarray(off, off + 256 * 1024);
      r = await request(new URL(loc, srv.url).href, 'PATCH', {
        ...auth,
        'Content-Type': 'application/octet-stream',
        'Content-Range': `${off}-${off + part.length - 1}`,
        'Content-Length': String(part.length),
      }, part);
      assert.equal(r.status, 202, r.body.toString());
      loc = r.headers.location!;
    }
    const digest = sha256(blob);
    r = await request(`${new URL(loc, srv.url).href}${loc.includes('?') ? '&' : '?'}digest=${digest}`, 'PUT', auth);
    assert.equal(r.status, 201, r.body.toString());
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    r = await request(`${srv.url}/v2/${name}/blobs/uploads/?digest=${sha256(config)}`, 'POST', { ...auth, 'Content-Length': String(config.length) }, config);
    assert.equal(r.status, 201, r.body.toString());

    // Concurrent tag pushes: both processes write the one SQLite database.
    const tags = Array.from({ length: 40 }, (_, i) => `t${i}`);
    const results = await Promise.all(
      tags.map((t) => {
        const m = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
            layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: blob.length }],
            annotations: { tag: t },
          }),
        );
        return request(`${srv.url}/v2/${name}/manifests/${t}`, 'PUT', { ...auth, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, m);
      }),
    );
    for (const res of results) assert.equal(res.status, 201, res.body.toString());
    r = await request(`${srv.url}/v2/${name}/tags/list`, 'GET', auth);
    assert.deepEqual([...(JSON.parse(r.body.toString()) as { tags: string[] }).tags].sort(), [...tags].sort());

    // Every worker serves what the other wrote.
    for (let i = 0; i < 6; i++) {
      r = await request(`${srv.url}/v2/${name}/blobs/${digest}`, 'GET', auth);
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(blob));
      r = await request(`${srv.url}/v2/${name}/manifests/t${i}`, 'GET', { ...auth, Accept: 'application/vnd.oci.image.manifest.v1+json' });
      assert.equal(r.status, 200);
    }

    // GET /metrics answers for both workers together, whichever worker takes it.
    const headCount = async () => {
      const m = await request(`${srv.url}/metrics`, 'GET', {});
      assert.equal(m.status, 200);
      let sum = 0;
      for (const line of m.body.toString().split('\n')) {
        if (line.startsWith('berth_http_requests_total{') && line.includes('method="HEAD"')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    };
    const before = await headCount();
    for (let i = 0; i < 10; i++) assert.equal((await request(`${srv.url}/v2/${name}/manifests/t1`, 'HEAD', auth)).status, 200);
    assert.equal((await headCount()) - before, 10, 'the HEADs answered by both workers are all counted');

    // A worker that dies is replaced; the registry keeps answering meanwhile.
    process.kill(workers[0]!, 'SIGKILL');
    const deadline = Date.now() + 30_000;
    let now = workersOf(srv.pid);
    while ((now.length !== 2 || now.includes(workers[0]!)) && Date.now() < deadline) {
      r = await request(`${srv.url}/v2/${name}/manifests/t0`, 'HEAD', auth);
      assert.equal(r.status, 200);
      await new Promise((res) => setTimeout(res, 200));
      now = workersOf(srv.pid);
    }
    assert.equal(now.length, 2, 'a new worker replaced the killed one');
    assert.ok(!now.includes(workers[0]!));

    // SIGTERM to the supervisor alone stops every worker, then itself.
    process.kill(srv.pid, 'SIGTERM');
    const stopBy = Date.now() + 30_000;
    while ((alive(srv.pid) || now.some(alive)) && Date.now() < stopBy) await new Promise((res) => setTimeout(res, 100));
    assert.ok(!alive(srv.pid), 'the supervisor exited');
    assert.ok(!now.some(alive), 'every worker exited');
    assert.ok(srv.exited());
  } finally {
    await srv.stop();
  }
});
