/**
 * The importer's HTTP client against registries other than Berth: a minimal registry that wants
 * Basic auth, puts uploads at a Location outside /v2, and redirects blob downloads to another
 * origin (as object-storage backed registries do). Checks: Basic after a Basic challenge,
 * monolithic PUTs with an exact Content-Length, at most `concurrency` uploads at once,
 * credentials never sent to the redirect target; and Berth's own digest check refusing a blob
 * whose bytes do not match (the second line of defence behind the importer's).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImportError } from '../../src/core/import/errors.ts';
import { exportImage } from '../../src/core/import/export.ts';
import { importArchive, type ImportEvent } from '../../src/core/import/importer.ts';
import { RegistryClient, parseChallenge } from '../../src/core/import/client.ts';
import { buildImage, reachableBlobs, resolveTag } from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Fake {
  url: string;
  blobPuts: { contentLength: string | undefined; chunked: boolean }[];
  maxParallel: number;
  storageAuthHeaders: (string | undefined)[];
  close(): Promise<void>;
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function body(req: http.IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A registry in memory that speaks just enough of the distribution API. */
async function fakeRegistry(user: string, password: string): Promise<Fake> {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { bytes: Buffer; type: string }>();
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const fake: Fake = { url: '', blobPuts: [], maxParallel: 0, storageAuthHeaders: [], close: async () => {} };
  let parallel = 0;

  const storage = http.createServer((req, res) => {
    fake.storageAuthHeaders.push(req.headers.authorization);
    const b = blobs.get(decodeURIComponent(req.url!.slice('/storage/'.length)));
    if (!b) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': b.length }).end(b);
  });
  const storageUrl = await listen(storage);

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (req.headers.authorization !== expected) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"', 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'who are you' }] }));
    }
    let m: RegExpExecArray | null;
    if (url.pathname === '/v2/') return void res.writeHead(200).end('{}');
    if (req.method === 'PUT' && (m = /^\/upload\/(\w+)$/.exec(url.pathname))) {
      parallel++;
      fake.maxParallel = Math.max(fake.maxParallel, parallel);
      fake.blobPuts.push({ contentLength: req.headers['content-length'], chunked: req.headers['transfer-encoding'] === 'chunked' });
      const data = await body(req);
      await new Promise((r) => setTimeout(r, 60)); // let uploads overlap
      parallel--;
      const digest = url.searchParams.get('digest')!;
      if (sha(data) !== digest) return void res.writeHead(400).end(JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'nope' }] }));
      blobs.set(digest, data);
      return void res.writeHead(201, { location: `/v2/x/blobs/${digest}` }).end();
    }
    if ((m = /^\/v2\/(.+)\/blobs\/uploads\/$/.exec(url.pathname)) && req.method === 'POST') {
      return void res.writeHead(202, { location: `/upload/${randomBytes(6).toString('hex')}` }).end();
    }
    if ((m = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname))) {
      const b = blobs.get(m[2]!);
      if (req.method === 'HEAD') return void res.writeHead(b ? 200 : 404, b ? { 'content-length': b.length } : {}).end();
      return void res.writeHead(307, { location: `${storageUrl}/storage/${encodeURIComponent(m[2]!)}` }).end();
    }
    if ((m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname))) {
      const key = `${m[1]}@${m[2]}`;
      if (req.method === 'PUT') {
        const bytes = await body(req);
        const d = sha(bytes);
        manifests.set(key, { bytes, type: req.headers['content-type']! });
        manifests.set(`${m[1]}@${d}`, { bytes, type: req.headers['content-type']! });
        return void res.writeHead(201, { 'docker-content-digest': d }).end();
      }
      const found = manifests.get(key);
      if (!found) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'no' }] }));
      return void res.writeHead(200, { 'content-type': found.type, 'docker-content-digest': sha(found.bytes) }).end(found.bytes);
    }
    res.writeHead(404).end();
  });
  fake.url = await listen(server);
  fake.close = async () => {
    server.closeAllConnections();
    storage.closeAllConnections();
    await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => storage.close(r))]);
  };
  return fake;
}

describe('RegistryClient against a non-Berth registry and against Berth', () => {
  let work: string;
  let fake: Fake;
  let srv: BerthServer;

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-import-client-'));
    fake = await fakeRegistry('ci', 's3cret');
    srv = await startBerth({ orgs: ['acme'] });
  });
  after(async () => {
    await fake?.close();
    await srv?.stop();
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('parses Bearer and Basic challenges', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"'), {
      scheme: 'bearer',
      params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull' },
    });
    assert.deepEqual(parseChallenge('Basic realm="fake"'), { scheme: 'basic', params: { realm: 'fake' } });
    assert.equal(parseChallenge('Negotiate abc'), undefined);
  });

  it('pushes with Basic auth, exact Content-Length, at most 3 uploads at once; pulls through a redirect without leaking credentials', async () => {
    const layout = path.join(work, 'six');
    const image = await buildImage(layout, { layers: Array.from({ length: 6 }, (_, i) => ({ size: 20_000 + i })) }, 'v1');
    const client = new RegistryClient({ url: fake.url, username: 'ci', password: 's3cret' });
    const seen: ImportEvent[] = [];
    try {
      const result = await importArchive(layout, { owner: 'team', repository: 'apps', image: 'six' }, client, { onEvent: (e) => seen.push(e) });
      assert.deepEqual(result.images, [{ name: 'team/apps/six', digest: image.manifest.digest, mediaType: image.manifest.mediaType, tags: ['v1'] }]);
    } finally {
      client.close();
    }
    assert.equal(fake.blobPuts.length, 7, 'config and 6 layers');
    assert.ok(fake.blobPuts.every((p) => !p.chunked && p.contentLength !== undefined), 'every blob PUT has a Content-Length, no chunking');
    assert.equal(fake.maxParallel, 3, 'three uploads in flight at most (and at least)');

    const puller = new RegistryClient({ url: fake.url, username: 'ci', password: 's3cret', mode: 'pull' });
    const out = path.join(work, 'six-out');
    try {
      await exportImage(puller, 'team/apps/six', 'v1', 'oci-dir', out);
    } finally {
      puller.close();
    }
    assert.deepEqual(await reachableBlobs(out, await resolveTag(out, 'v1')), await reachableBlobs(layout, await resolveTag(layout, 'v1')));
    assert.ok(fake.storageAuthHeaders.length >= 7);
    assert.ok(fake.storageAuthHeaders.every((h) => h === undefined), 'no Authorization header sent to the redirect target');
  });

  it('wrong Basic credentials are reported as such', async () => {
    const layout = path.join(work, 'one');
    await buildImage(layout, { layers: [{ size: 10 }] }, 'v1');
    const client = new RegistryClient({ url: fake.url, username: 'ci', password: 'wrong' });
    try {
      await assert.rejects(importArchive(layout, { owner: 'team', repository: 'apps', image: 'one' }, client), (e: unknown) => {
        assert.ok(e instanceof ImportError);
        assert.equal(e.code, 'AUTH');
        assert.match(e.message, /refused the credentials of "ci": 401/);
        return true;
      });
    } finally {
      client.close();
    }
  });

  it('Berth refuses a blob whose bytes do not match the digest (the registry-side check), through the bearer-token flow', async () => {
    const client = new RegistryClient({ url: srv.url, username: srv.admin.username, password: srv.admin.password });
    const data = randomBytes(5000);
    const wrong = sha(Buffer.from('something else'));
    try {
      await assert.rejects(
        client.putBlob('acme/prod/check', wrong, data.length, async () => (async function* () {
          yield data;
        })()),
        (e: unknown) => {
          assert.ok(e instanceof ImportError);
          assert.equal(e.code, 'REGISTRY');
          assert.equal(e.status, 400);
          assert.match(e.message, /uploading sha256:[a-f0-9]{64} \(5000 bytes\) to acme\/prod\/check: 400 DIGEST_INVALID/);
          return true;
        },
      );
      assert.equal(await client.hasBlob('acme/prod/check', wrong), false);
      // and the right digest lands
      await client.putBlob('acme/prod/check', sha(data), data.length, async () => (async function* () {
        yield data;
      })());
      assert.equal(await client.hasBlob('acme/prod/check', sha(data)), true);
    } finally {
      client.close();
    }
  });
});
