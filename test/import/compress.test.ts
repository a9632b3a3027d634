/**
 * `berth push --compress gzip|zstd` and the import API's `?compress=`: a legacy `docker save`
 * (uncompressed layers) written by the real skopeo, pushed by the real CLI to a real Berth;
 * the served manifest lists compressed layers whose decompression hashes to the config's
 * diffIDs, the config (image ID) is unchanged, skopeo copies the image, and a second push
 * finds every blob already there (compression is deterministic).
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { decompress as unzstd } from 'fzstd';
import { buildImage, sha256, type BuiltImage } from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { cli, cliEnv, dockerArchive, events, pushArgs } from './helpers.ts';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

describe('berth push --compress and ?compress= on the import API; archives that are none', () => {
  let srv: BerthServer;
  let sk: Skopeo;
  let work: string;
  let env: Record<string, string>;
  let image: BuiltImage;
  let archive: string;

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-compress-'));
    sk = await createSkopeo();
    srv = await startBerth({ orgs: ['acme'] });
    await sk.login(srv.address, srv.admin.username, srv.admin.password);
    env = cliEnv(path.join(work, 'home'));
    const layout = path.join(work, 'src');
    // uncompressed layers of random bytes (tar padding still shrinks); one empty
    image = await buildImage(layout, { layers: [{ size: 512 * 1024, gzip: false }, { size: 2000 }, { size: 0 }] }, 'v1');
    archive = path.join(work, 'legacy.tar');
    await dockerArchive(sk, layout, 'v1', archive, 'docker.io/library/web:1.0');
  });
  after(async () => {
    await srv?.stop();
    await sk?.cleanup();
    await fsp.rm(work, { recursive: true, force: true });
  });

  const get = async (url: string, accept = ACCEPT) => {
    const res = await fetch(`${srv.url}${url}`, { headers: { Authorization: srv.adminAuthorization, Accept: accept } });
    assert.equal(res.status, 200, `${url}: ${res.status}`);
    return Buffer.from(await res.arrayBuffer());
  };

  /** The served manifest; each layer fetched, decompressed, hashed: the config's diffIDs. */
  async function check(name: string, tag: string, mediaType: string, layerType: string, inflate: (b: Buffer) => Buffer) {
    const raw = await get(`/v2/${name}/manifests/${tag}`);
    const m = JSON.parse(raw.toString('utf8')) as { mediaType: string; config: { digest: string; mediaType: string }; layers: { mediaType: string; digest: string; size: number }[] };
    assert.equal(m.mediaType, mediaType);
    assert.equal(m.config.digest, image.config.digest, 'the config, and so the image ID, is unchanged');
    assert.deepEqual(
      m.layers.map((l) => l.mediaType),
      image.layers.map(() => layerType),
    );
    const diffIds: string[] = [];
    for (const l of m.layers) {
      const blob = await get(`/v2/${name}/blobs/${l.digest}`, '*/*');
      assert.equal(sha256(blob), l.digest);
      assert.equal(blob.length, l.size);
      diffIds.push(sha256(inflate(blob)));
    }
    assert.deepEqual(diffIds, image.layers.map((l) => l.diffId), 'layers decompress to the diffIDs');
    await sk.copy(`docker://${srv.address}/${name}:${tag}`, `oci:${path.join(work, `out-${name.replace(/\//g, '-')}`)}:x`);
    return sha256(raw);
  }

  it('--compress gzip: Docker manifest with tar.gzip layers; a second push skips every blob and gives the same digest', async () => {
    const r = await cli([...pushArgs(srv, '--compress', 'gzip', 'acme/prod/gz:1', archive)], env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /compressed \(gzip\) [\d.]+ KiB → [\d.]+ KiB  layer 0 of /);
    assert.match(r.stderr, /warning: 3 uncompressed layers compressed with gzip: layer and manifest digests differ/);
    const digest = await check('acme/prod/gz', '1', 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.image.rootfs.diff.tar.gzip', gunzipSync);
    assert.equal(r.stdout.trim(), `acme/prod/gz:1 ${digest}`);

    const again = await cli(['--json', ...pushArgs(srv, '--compress', 'gzip', 'acme/prod/gz:1', archive)], env);
    assert.equal(again.code, 0, again.stderr);
    const blobs = events(again.stdout).filter((e) => e.type === 'blob');
    assert.ok(blobs.length === 4 && blobs.every((e) => e.state === 'exists'), JSON.stringify(blobs));
    assert.equal(events(again.stdout).find((e) => e.type === 'tag')!.digest, digest, 'deterministic: the same manifest digest');
  });

  it('--compress zstd: an OCI manifest with tar+zstd layers (Docker schema2 has no zstd type)', async () => {
    const r = await cli([...pushArgs(srv, '--compress', 'zstd', 'acme/prod/zst:1', archive)], env);
    assert.equal(r.code, 0, r.stderr);
    await check('acme/prod/zst', '1', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.layer.v1.tar+zstd', (b) => Buffer.from(unzstd(b)));
    const m = JSON.parse((await get('/v2/acme/prod/zst/manifests/1')).toString('utf8')) as { config: { mediaType: string } };
    assert.equal(m.config.mediaType, 'application/vnd.oci.image.config.v1+json');
  });

  it('without --compress the digests stay the archive\'s; --compress lz4 is refused by the CLI', async () => {
    const r = await cli([...pushArgs(srv, 'acme/prod/plain:1', archive)], env);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse((await get('/v2/acme/prod/plain/manifests/1')).toString('utf8')) as { layers: { digest: string }[] };
    assert.deepEqual(m.layers.map((l) => l.digest), image.layers.map((l) => l.diffId));
    const bad = await cli([...pushArgs(srv, '--compress', 'lz4', 'acme/prod/plain:1', archive)], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Allowed choices are gzip, zstd/);
  });

  it('the import API: ?compress=gzip compresses on the server; ?compress=lz4 is 400', async () => {
    const upload = (q: string) =>
      fetch(`${srv.url}/api/v1/repos/acme/prod/import${q}`, {
        method: 'POST',
        headers: { authorization: srv.adminAuthorization, 'content-type': 'application/x-tar' },
        body: Readable.toWeb(createReadStream(archive)) as unknown as BodyInit,
        duplex: 'half',
      } as RequestInit);
    const bad = await upload('?compress=lz4');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { errors: { message: string }[] }).errors[0]!.message, /"compress" must be one of gzip, zstd/);
    const res = await upload('?image=api&tag=1&compress=gzip');
    assert.equal(res.status, 202);
    let job = (await res.json()) as { id: string; state: string; compress: string; warnings: string[]; error: unknown };
    assert.equal(job.compress, 'gzip');
    for (let i = 0; i < 600 && job.state !== 'done' && job.state !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      job = JSON.parse((await get(`/api/v1/imports/${job.id}`, 'application/json')).toString('utf8'));
    }
    assert.equal(job.state, 'done', JSON.stringify(job.error));
    assert.ok(job.warnings.some((w) => /compressed with gzip/.test(w)), JSON.stringify(job.warnings));
    await check('acme/prod/api', '1', 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.image.rootfs.diff.tar.gzip', gunzipSync);
  });

  it('the import API: a file that is no archive fails as "not a docker save or OCI archive", never naming the spool file', async () => {
    for (const [body, why] of [
      ['just some notes\n'.repeat(100), 'it does not start with a tar header'],
      ['hi\n', 'it is too short to be a tar file'],
    ] as const) {
      const res = await fetch(`${srv.url}/api/v1/repos/acme/prod/import?compress=gzip`, { method: 'POST', headers: { authorization: srv.adminAuthorization }, body });
      assert.equal(res.status, 202);
      let job = (await res.json()) as { id: string; state: string; error: { code: string; message: string } | null };
      for (let i = 0; i < 200 && job.state !== 'done' && job.state !== 'failed'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        job = JSON.parse((await get(`/api/v1/imports/${job.id}`, 'application/json')).toString('utf8'));
      }
      assert.equal(job.state, 'failed');
      assert.deepEqual(job.error, { code: 'BAD_ARCHIVE', message: `the uploaded archive is not a docker save or OCI archive: ${why}` });
    }
  });
});
