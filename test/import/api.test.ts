/**
 * The server's import API end to end, against a real Berth child process: the archive is the
 * streamed request body (spooled to a file under the data folder), the job is polled to its
 * end, and the result is pulled with skopeo. Access: push on the repository; a job is visible
 * only to whoever started it (and site administrators).
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { buildImage, buildMultiArchImage, sha256 } from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { dockerArchive, ociArchive, rawTar, run, tagsOf } from './helpers.ts';

interface Job {
  id: string;
  state: 'queued' | 'running' | 'done' | 'failed';
  repository: string;
  image: string | null;
  tag: string | null;
  archiveBytes: number;
  format: string | null;
  progress: { blobs: { total: number; uploaded: number; skipped: number }; bytes: { total: number; uploaded: number; skipped: number; done: number }; manifests: number; tags: number };
  images: { name: string; digest: string; tags: string[] }[];
  warnings: string[];
  error: { code: string; message: string } | null;
}

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

describe('POST /api/v1/repos/:owner/:repo/import and GET /api/v1/imports/:id', () => {
  let srv: BerthServer;
  let sk: Skopeo;
  let work: string;
  let admin: string;
  const bob = basic('bob', 'bob-password-1');
  const carol = basic('carol', 'carol-password-1');

  async function api(method: string, url: string, auth: string | undefined, body?: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(`${srv.url}${url}`, {
      method,
      headers: { ...(auth ? { authorization: auth } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined };
  }

  /** Streams `file` as the request body (chunked: no Content-Length). */
  async function upload(file: string, query: string, auth: string | undefined): Promise<{ status: number; json: any; location: string | null }> {
    const res = await fetch(`${srv.url}/api/v1/repos/acme/prod/import${query}`, {
      method: 'POST',
      headers: { ...(auth ? { authorization: auth } : {}), 'content-type': 'application/x-tar' },
      body: Readable.toWeb(createReadStream(file)) as unknown as BodyInit,
      duplex: 'half',
    } as RequestInit);
    const text = await res.text();
    return { status: res.status, json: text ? JSON.parse(text) : undefined, location: res.headers.get('location') };
  }

  async function poll(id: string, auth = admin): Promise<Job> {
    for (let i = 0; i < 600; i++) {
      const r = await api('GET', `/api/v1/imports/${id}`, auth);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      if (r.json.state === 'done' || r.json.state === 'failed') return r.json as Job;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`import ${id} did not finish`);
  }

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-import-api-'));
    sk = await createSkopeo();
    srv = await startBerth({ orgs: ['acme'] });
    admin = srv.adminAuthorization;
    await sk.login(srv.address, srv.admin.username, srv.admin.password);
    for (const [u, p] of [['bob', 'bob-password-1'], ['carol', 'carol-password-1']]) {
      assert.equal((await api('POST', '/api/v1/users', admin, { username: u, password: p })).status, 201);
    }
    assert.equal((await api('POST', '/api/v1/owners/acme/repos', admin, { name: 'prod' })).status, 201);
    assert.equal((await api('PUT', '/api/v1/repos/acme/prod/members/bob', admin, { role: 'write' })).status, 200);
    assert.equal((await api('PUT', '/api/v1/repos/acme/prod/members/carol', admin, { role: 'read' })).status, 200);
  });
  after(async () => {
    await srv?.stop();
    await sk?.cleanup();
    await fsp.rm(work, { recursive: true, force: true });
  });

  it('a docker-archive streamed as the body: 202 {id}, polled to done, pulled with skopeo; config and diffIDs unchanged; spool file removed', async () => {
    const layout = path.join(work, 'legacy');
    const image = await buildImage(layout, { layers: [{ size: 3 * 1024 * 1024, gzip: false }, { size: 1000 }] }, 'v1');
    const file = path.join(work, 'legacy.tar');
    await dockerArchive(sk, layout, 'v1', file, 'docker.io/library/site:1.0');
    const size = (await fsp.stat(file)).size;

    const r = await upload(file, '', bob);
    assert.equal(r.status, 202, JSON.stringify(r.json));
    assert.match(r.json.id, /^[0-9a-f-]{36}$/);
    assert.equal(r.location, `/api/v1/imports/${r.json.id}`);
    assert.equal(r.json.repository, 'acme/prod');
    const job = await poll(r.json.id, bob);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.equal(job.archiveBytes, size);
    assert.equal(job.format, 'docker-archive');
    assert.equal(job.progress.blobs.total, 3);
    assert.equal(job.progress.blobs.uploaded + job.progress.blobs.skipped, 3);
    assert.equal(job.progress.bytes.done, job.progress.bytes.total);
    assert.equal(job.progress.tags, 1);
    assert.deepEqual(job.images.map((i) => [i.name, i.tags]), [['acme/prod/site', ['1.0']]]);
    assert.equal(job.error, null);

    const raw = await sk.inspectRaw(`docker://${srv.address}/acme/prod/site:1.0`);
    assert.equal(sha256(raw), job.images[0]!.digest);
    const m = JSON.parse(raw.toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(m.config.digest, image.config.digest);
    assert.deepEqual(m.layers.map((l) => l.digest), image.layers.map((l) => l.diffId));
    const out = path.join(work, 'legacy-out');
    await sk.copy(`docker://${srv.address}/acme/prod/site:1.0`, `oci:${out}:x`);

    const spool = path.join(srv.dataDir, 'storage', 'imports');
    assert.deepEqual(await fsp.readdir(spool), [], 'the spool folder under the data folder is empty again');
    // the job is listed for its starter
    const list = await api('GET', '/api/v1/imports', bob);
    assert.ok((list.json as Job[]).some((j) => j.id === job.id));
  });

  it('a gzip\'d multi-arch oci-archive with ?image=&tag=: index digest unchanged', async () => {
    const layout = path.join(work, 'multi');
    const built = await buildMultiArchImage(layout, { platforms: [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }], layers: [{ size: 20_000 }] }, 'x');
    const file = path.join(work, 'multi.oci.tar');
    await ociArchive(sk, layout, 'x', file, 'x', true);
    await run('gzip', [file]);
    const r = await upload(`${file}.gz`, '?image=platforms&tag=v3', admin);
    assert.equal(r.status, 202);
    const job = await poll(r.json.id);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.equal(job.format, 'oci-archive');
    assert.deepEqual(job.images, [{ name: 'acme/prod/platforms', digest: built.index.digest, tags: ['v3'] }]);
    const raw = await sk.inspectRaw(`docker://${srv.address}/acme/prod/platforms:v3`);
    assert.ok(raw.equals(built.indexBytes));
    const out = path.join(work, 'multi-out');
    await sk.copy(`docker://${srv.address}/acme/prod/platforms:v3`, `oci:${out}:v3`, ['--all', '--preserve-digests']);
  });

  it('a body with Content-Length (curl --data-binary) and an API key as Bearer', async () => {
    const layout = path.join(work, 'curl');
    const image = await buildImage(layout, { layers: [{ size: 5000 }] }, 'c');
    const file = path.join(work, 'curl.oci.tar');
    await ociArchive(sk, layout, 'c', file);
    const key = await api('POST', '/api/v1/user/api-keys', bob, { name: 'import' });
    assert.equal(key.status, 201);
    const out = await run('curl', ['-sS', '-X', 'POST', '-H', `Authorization: Bearer ${key.json.secret}`, '--data-binary', `@${file}`, `${srv.url}/api/v1/repos/acme/prod/import?image=curled`]);
    const started = JSON.parse(out) as Job;
    const job = await poll(started.id, bob);
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.deepEqual(job.images, [{ name: 'acme/prod/curled', digest: image.manifest.digest, tags: ['c'] }]);
  });

  it('bad archives: the job fails with the error naming the problem, and nothing is tagged', async () => {
    const traversal = path.join(work, 'traversal.tar');
    await fsp.writeFile(traversal, rawTar([{ name: 'index.json', data: Buffer.from('{}') }, { name: '../../escape', data: Buffer.from('x') }]));
    const r = await upload(traversal, '?image=evil&tag=1', admin);
    assert.equal(r.status, 202);
    const job = await poll(r.json.id);
    assert.equal(job.state, 'failed');
    assert.equal(job.error?.code, 'UNSAFE_PATH');
    assert.match(job.error!.message, /member "\.\.\/\.\.\/escape" contains "\.\.": path traversal is not allowed/);
    assert.deepEqual(await tagsOf(srv, 'acme/prod/evil'), []);

    // a layer that does not match its diffID: blobs may land, the tag never does
    const layout = path.join(work, 'mismatch');
    await buildImage(layout, { layers: [{ size: 30_000, gzip: false }, { size: 60_000, gzip: false }] }, 'v1');
    const file = path.join(work, 'mismatch.tar');
    await dockerArchive(sk, layout, 'v1', file, 'docker.io/library/mm:1');
    const bytes = await fsp.readFile(file);
    // flip a byte inside the last layer's data (the layers follow the config and come first in skopeo's archive)
    const i = bytes.indexOf(Buffer.from('random-1.bin')) + 2048;
    bytes[i] = bytes[i]! ^ 0xff;
    await fsp.writeFile(file, bytes);
    const r2 = await upload(file, '', admin);
    const job2 = await poll(r2.json.id);
    assert.equal(job2.state, 'failed');
    assert.equal(job2.error?.code, 'DIGEST_MISMATCH');
    assert.match(job2.error!.message, /layer 1 of docker\.io\/library\/mm:1 .* hashes to sha256:[a-f0-9]{64}, not sha256:[a-f0-9]{64} \(the digest rootfs\.diff_ids\[1\] of the image config claims\)/);
    assert.deepEqual(await tagsOf(srv, 'acme/prod/mm'), []);

    const empty = await fetch(`${srv.url}/api/v1/repos/acme/prod/import`, { method: 'POST', headers: { authorization: admin } });
    assert.equal(empty.status, 400);
    assert.match(((await empty.json()) as { errors: { message: string }[] }).errors[0]!.message, /send the archive as the request body/);
    const badName = await api('POST', '/api/v1/repos/acme/prod/import?tag=1', admin);
    assert.equal(badName.status, 400);
  });

  it('access: anonymous 401, a reader 403, a stranger 404; jobs are visible only to their starter and site admins', async () => {
    const file = path.join(work, 'tiny.tar');
    await fsp.writeFile(file, rawTar([{ name: 'x', data: Buffer.from('x') }]));
    const anon = await upload(file, '', undefined);
    assert.equal(anon.status, 401);
    const reader = await upload(file, '', carol);
    assert.equal(reader.status, 403);
    assert.equal(reader.json.errors[0].code, 'DENIED');
    const other = await fetch(`${srv.url}/api/v1/repos/acme/secret/import`, { method: 'POST', headers: { authorization: carol }, body: 'x' });
    assert.equal(other.status, 404, 'a repository one cannot read does not exist for them');
    await other.arrayBuffer();

    const mine = await upload(file, '?image=t', bob);
    assert.equal(mine.status, 202);
    const job = await poll(mine.json.id, bob);
    assert.equal(job.state, 'failed');
    assert.equal((await api('GET', `/api/v1/imports/${job.id}`, carol)).status, 404, "another user's job is not found");
    assert.equal((await api('GET', `/api/v1/imports/${job.id}`, admin)).status, 200, 'a site admin sees it');
    assert.equal((await api('GET', `/api/v1/imports/${job.id}`, undefined)).status, 401);
    assert.equal((await api('GET', '/api/v1/imports/not-a-job', bob)).status, 404);
  });
});
