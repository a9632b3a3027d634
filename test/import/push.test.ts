/**
 * `berth push` end to end: archives written by the real skopeo (docker-archive, oci-archive) or
 * built like Docker 25+ writes them, pushed by the real CLI to a real Berth child process, then
 * read back with skopeo and compared digest by digest.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  buildImage,
  buildMultiArchImage,
  reachableBlobs,
  readBlob,
  readIndexJson,
  resolveTag,
  setTag,
  sha256,
  sha256File,
  blobPath,
  type BuiltImage,
} from '../helpers/oci-layout.ts';
import { ROOT, sampleRss, startBerth, type BerthServer } from '../helpers/server.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { cli, cliEnv, spawnCli, dockerArchive, events, manifestStatus, ociArchive, pullArgs, pushArgs, run, tagsOf, tarDir, untar } from './helpers.ts';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';

describe('berth push / berth pull against a running Berth, checked with skopeo', () => {
  let srv: BerthServer;
  let sk: Skopeo;
  let work: string;
  let env: Record<string, string>;
  let n = 0;
  const dir = (name: string) => path.join(work, `${name}-${++n}`);
  const ok = (r: { code: number | null; stdout: string; stderr: string }, what: string) =>
    assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  const ref = (name: string) => `docker://${srv.address}/${name}`;

  before(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-import-push-'));
    sk = await createSkopeo();
    srv = await startBerth({ orgs: ['acme'] });
    await sk.login(srv.address, srv.admin.username, srv.admin.password);
    env = cliEnv(path.join(work, 'home'));
  });
  after(async () => {
    await srv?.stop();
    await sk?.cleanup();
    await fsp.rm(work, { recursive: true, force: true });
  });

  /** The config and layer diffIDs of `image` as a registry serves it. */
  async function served(name: string, tag: string): Promise<{ raw: Buffer; manifest: any }> {
    const raw = await sk.inspectRaw(`${ref(name)}:${tag}`);
    return { raw, manifest: JSON.parse(raw.toString('utf8')) };
  }

  it('legacy docker-archive (docker save): config digest and diffIDs unchanged, layers pushed uncompressed, every RepoTags entry a tag', async () => {
    const layout = dir('legacy-src');
    const image = await buildImage(layout, { layers: [{ size: 100 }, { size: 300 * 1024, gzip: false }, { size: 2 * 1024 * 1024 }, { size: 0 }] }, 'v1');
    const archive = path.join(work, 'legacy.tar');
    await dockerArchive(sk, layout, 'v1', archive, 'docker.io/library/web:1.0', ['--additional-tag', 'docker.io/library/web:latest']);

    const r = await cli([...pushArgs(srv, 'acme/prod', archive)], env);
    ok(r, 'push');
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    const digest = lines[0]!.split(' ')[1]!;
    assert.deepEqual(lines, [`acme/prod/web:1.0 ${digest}`, `acme/prod/web:latest ${digest}`]);
    assert.match(r.stderr, /read legacy\.tar: docker-archive/);
    assert.deepEqual((await tagsOf(srv, 'acme/prod/web')).sort(), ['1.0', 'latest']);

    const { raw, manifest } = await served('acme/prod/web', '1.0');
    assert.equal(sha256(raw), digest, 'the manifest digest printed is the one served');
    assert.equal(manifest.mediaType, DOCKER_MANIFEST);
    assert.equal(manifest.config.digest, image.config.digest, 'config digest (the image ID) unchanged');
    assert.equal(manifest.config.size, image.config.size);
    assert.deepEqual(
      manifest.layers.map((l: { digest: string }) => l.digest),
      image.layers.map((l) => l.diffId),
      'each layer digest is its diffID',
    );
    assert.ok(manifest.layers.every((l: { mediaType: string }) => l.mediaType === DOCKER_LAYER), 'layers are uncompressed tars');

    // skopeo pulls it and runs the same config: bytes identical, diffIDs = the layers it got
    const out = dir('legacy-out');
    await sk.copy(`${ref('acme/prod/web')}:1.0`, `oci:${out}:back`, ['--preserve-digests', '--dest-oci-accept-uncompressed-layers']);
    const back = await resolveTag(out, 'back');
    const backManifest = JSON.parse((await readBlob(out, back.digest)).toString('utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(backManifest.config.digest, image.config.digest);
    assert.ok((await readBlob(out, image.config.digest)).equals(image.configBytes), 'config bytes identical');
    for (const [i, l] of backManifest.layers.entries()) {
      assert.equal(await sha256File(blobPath(out, l.digest)), image.layers[i]!.diffId, `layer ${i} content hashes to its diffID`);
    }

    // pushing the same archive again: the same manifest digest (deterministic), every blob skipped
    const again = await cli(['--json', ...pushArgs(srv, 'acme/prod', archive)], env);
    ok(again, 'push again');
    const ev = events(again.stdout);
    const blobs = ev.filter((e) => e.type === 'blob');
    assert.ok(blobs.length >= 5 && blobs.every((e) => e.state === 'exists'), `all blobs exist: ${JSON.stringify(blobs.map((b) => b.state))}`);
    assert.deepEqual(
      ev.filter((e) => e.type === 'tag').map((e) => [e.name, e.tag, e.digest]),
      [
        ['acme/prod/web', '1.0', digest],
        ['acme/prod/web', 'latest', digest],
      ],
    );
  });

  it('oci-archive: pushed byte for byte, manifest digest unchanged; IMAGE:TAG given explicitly', async () => {
    const layout = dir('ocia-src');
    const image = await buildImage(layout, { layers: [{ size: 1234 }, { size: 512 * 1024 }] }, 'v1');
    const archive = path.join(work, 'single.oci.tar');
    await ociArchive(sk, layout, 'v1', archive);
    const r = await cli(pushArgs(srv, 'acme/prod/app:stable', archive), env);
    ok(r, 'push');
    assert.equal(r.stdout.trim(), `acme/prod/app:stable ${image.manifest.digest}`);
    const { raw } = await served('acme/prod/app', 'stable');
    assert.ok(raw.equals(image.manifestBytes), 'manifest bytes identical');
    const out = dir('ocia-out');
    await sk.copy(`${ref('acme/prod/app')}:stable`, `oci:${out}:v1`, ['--preserve-digests']);
    await assertSameBlobs(layout, out, 'v1');
  });

  it('OCI layout folder with a multi-arch index and shared layers: index and child digests unchanged', async () => {
    const layout = dir('multi-src');
    const built = await buildMultiArchImage(
      layout,
      {
        platforms: [
          { architecture: 'amd64', os: 'linux' },
          { architecture: 'arm64', os: 'linux', variant: 'v8' },
        ],
        sharedLayers: [{ size: 200 * 1024 }],
        layers: [{ size: 64 * 1024 }],
      },
      'v2',
    );
    // ref.name "v2" is a tag only: without IMAGE the image has no name
    const nameless = await cli(pushArgs(srv, 'acme/prod', layout), env);
    assert.equal(nameless.code, 1);
    assert.match(nameless.stderr, /cannot tell the image name .*push to acme\/prod\/IMAGE/);

    const r = await cli(['--json', ...pushArgs(srv, 'acme/prod/multi', layout)], env);
    ok(r, 'push');
    const ev = events(r.stdout);
    assert.equal(ev.at(-1)!.type, 'done');
    const plan = ev.find((e) => e.type === 'plan')!;
    assert.equal(plan.format, 'oci-layout');
    assert.deepEqual(plan.images, [{ name: 'acme/prod/multi', digest: built.index.digest, mediaType: built.index.mediaType, tags: ['v2'] }]);
    // order: every blob before any manifest, children before the index, the tag last
    const kinds = ev.filter((e) => ['blob', 'manifest', 'tag'].includes(e.type)).map((e) => e.type);
    assert.deepEqual(kinds, [...kinds].sort((a, b) => ['blob', 'manifest', 'tag'].indexOf(a) - ['blob', 'manifest', 'tag'].indexOf(b)));
    const manifests = ev.filter((e) => e.type === 'manifest').map((e) => e.digest);
    assert.deepEqual(manifests, [...built.images.map((i) => i.manifest.digest), built.index.digest]);

    const raw = await sk.inspectRaw(`${ref('acme/prod/multi')}:v2`);
    assert.ok(raw.equals(built.indexBytes), 'index bytes identical');
    const out = dir('multi-out');
    await sk.copy(`${ref('acme/prod/multi')}:v2`, `oci:${out}:v2`, ['--all', '--preserve-digests']);
    await assertSameBlobs(layout, out, 'v2');

    // a multi-arch oci-archive too
    const archive = path.join(work, 'multi.oci.tar');
    await ociArchive(sk, layout, 'v2', archive, 'v2', true);
    const r2 = await cli(pushArgs(srv, 'acme/prod/multi2', archive), env);
    ok(r2, 'push oci-archive --all');
    assert.equal(r2.stdout.trim(), `acme/prod/multi2:v2 ${built.index.digest}`);
  });

  it('Docker 25+ docker save (OCI layout in a tar with index.json and manifest.json), two images: names from io.containerd.image.name', async () => {
    const layout = dir('d25');
    const api = await buildImage(layout, { layers: [{ size: 4096, gzip: false }, { size: 10_000, gzip: false }] }, 'api');
    const worker = await buildImage(layout, { layers: [{ size: 8192, gzip: false }] }, 'worker');
    // what docker save writes: containerd name + bare tag in index.json, plus a legacy manifest.json
    const index = await readIndexJson(layout);
    const named: Record<string, string> = { api: 'docker.io/library/api:2.0', worker: 'docker.io/acme/worker:2.0' };
    for (const d of index.manifests) {
      const ref = d.annotations!['org.opencontainers.image.ref.name']!;
      d.annotations = { 'io.containerd.image.name': named[ref]!, 'org.opencontainers.image.ref.name': '2.0' };
    }
    await fsp.writeFile(path.join(layout, 'index.json'), JSON.stringify(index));
    const legacy = (img: BuiltImage, tag: string) => ({
      Config: `blobs/sha256/${img.config.digest.slice(7)}`,
      RepoTags: [tag],
      Layers: img.layers.map((l) => `blobs/sha256/${l.descriptor.digest.slice(7)}`),
    });
    await fsp.writeFile(path.join(layout, 'manifest.json'), JSON.stringify([legacy(api, named.api!), legacy(worker, named.worker!)]));
    await fsp.writeFile(path.join(layout, 'repositories'), '{}');
    const archive = path.join(work, 'docker25.tar');
    await tarDir(layout, archive);

    const r = await cli(pushArgs(srv, 'acme/prod', archive), env);
    ok(r, 'push');
    assert.match(r.stderr, /docker-oci-archive/);
    assert.deepEqual(r.stdout.trim().split('\n').sort(), [`acme/prod/api:2.0 ${api.manifest.digest}`, `acme/prod/worker:2.0 ${worker.manifest.digest}`]);
    assert.ok((await sk.inspectRaw(`${ref('acme/prod/api')}:2.0`)).equals(api.manifestBytes), 'the OCI manifest is pushed byte for byte');
    assert.ok((await sk.inspectRaw(`${ref('acme/prod/worker')}:2.0`)).equals(worker.manifestBytes));
  });

  it('Docker 25+ save of a multi-platform image holding one platform: that platform manifest is imported, with a warning', async () => {
    const layout = dir('d25-partial');
    const built = await buildMultiArchImage(
      layout,
      { platforms: [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }], layers: [{ size: 5000, gzip: false }] },
      'x',
    );
    // drop the arm64 manifest and its blobs, as the containerd image store's docker save does
    const arm = built.images[1]!;
    for (const d of [arm.manifest.digest, arm.config.digest, ...arm.layers.map((l) => l.descriptor.digest)]) await fsp.rm(blobPath(layout, d));
    const index = await readIndexJson(layout);
    index.manifests[0]!.annotations = { 'io.containerd.image.name': 'docker.io/library/tool:3', 'org.opencontainers.image.ref.name': '3' };
    await fsp.writeFile(path.join(layout, 'index.json'), JSON.stringify(index));
    await fsp.writeFile(path.join(layout, 'manifest.json'), '[]');
    const archive = path.join(work, 'partial.tar');
    await tarDir(layout, archive);
    const r = await cli(pushArgs(srv, 'acme/prod', archive), env);
    ok(r, 'push');
    assert.match(r.stderr, /warning: .*lists 2 manifests but the archive holds only linux\/amd64/);
    assert.equal(r.stdout.trim(), `acme/prod/tool:3 ${built.images[0]!.manifest.digest}`);
  });

  it('multi-image legacy archive: every image and every RepoTags entry; shared layers mounted; gzip\'d archive; IMAGE collects all; IMAGE:TAG refused', async () => {
    const layout = dir('mi-src');
    const built = await buildMultiArchImage(
      layout,
      { platforms: [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }], sharedLayers: [{ size: 100 * 1024 }], layers: [{ size: 3000 }] },
    );
    await setTag(layout, 'a', built.images[0]!.manifest);
    await setTag(layout, 'b', built.images[1]!.manifest);
    const a = path.join(work, 'a.tar');
    const b = path.join(work, 'b.tar');
    await dockerArchive(sk, layout, 'a', a, 'docker.io/library/alpha:1');
    await dockerArchive(sk, layout, 'b', b, 'docker.io/library/beta:2', ['--additional-tag', 'docker.io/library/beta:two']);
    const merged = dir('mi-merged');
    await untar(a, merged);
    const ma = JSON.parse(await fsp.readFile(path.join(merged, 'manifest.json'), 'utf8')) as unknown[];
    await untar(b, merged);
    const mb = JSON.parse(await fsp.readFile(path.join(merged, 'manifest.json'), 'utf8')) as unknown[];
    await fsp.writeFile(path.join(merged, 'manifest.json'), JSON.stringify([...ma, ...mb]));
    const archive = path.join(work, 'multi-image.tar');
    await tarDir(merged, archive);

    const r = await cli(['--json', ...pushArgs(srv, 'acme/prod', archive)], env);
    ok(r, 'push');
    const ev = events(r.stdout);
    assert.deepEqual(
      ev.filter((e) => e.type === 'tag').map((e) => `${e.name}:${e.tag}`),
      ['acme/prod/alpha:1', 'acme/prod/beta:2', 'acme/prod/beta:two'],
    );
    const shared = built.images[0]!.layers[0]!.diffId;
    const states = ev.filter((e) => e.type === 'blob' && e.digest === shared).map((e) => `${e.name} ${e.state}`);
    assert.deepEqual(states.filter((s) => !s.endsWith(' start')), ['acme/prod/alpha done', 'acme/prod/beta mounted'], 'the shared layer is uploaded once, then mounted');
    for (const [name, tag, img] of [['acme/prod/alpha', '1', built.images[0]!], ['acme/prod/beta', 'two', built.images[1]!]] as const) {
      const { manifest } = await served(name, tag);
      assert.equal(manifest.config.digest, img.config.digest, `${name}: config unchanged`);
    }

    // one IMAGE for all: each keeps its tags
    const one = await cli(pushArgs(srv, 'acme/prod/bundle', archive), env);
    ok(one, 'push to one image');
    assert.deepEqual((await tagsOf(srv, 'acme/prod/bundle')).sort(), ['1', '2', 'two']);
    // IMAGE:TAG names one image only
    const refused = await cli(pushArgs(srv, 'acme/prod/bundle:x', archive), env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /holds 2 images .*a TAG can name only one/);
    assert.equal(await manifestStatus(srv, 'acme/prod/bundle', 'x'), 404);

    // docker save | gzip: decompressed to a temporary file, then the same
    await run('gzip', ['-k', archive]);
    const gz = await cli(pushArgs(srv, 'acme/prod/zipped', `${archive}.gz`), env);
    ok(gz, 'push .tar.gz');
    assert.match(gz.stderr, /gzip'd: decompressing/);
    assert.deepEqual((await tagsOf(srv, 'acme/prod/zipped')).sort(), ['1', '2', 'two']);
  });

  it('credentials: the login file (username + API key), BERTH_API_KEY alone, none at all', async () => {
    const layout = dir('cred-src');
    const image = await buildImage(layout, { layers: [{ size: 2000 }] }, 'c1');
    const home = dir('cred-home');
    const henv = cliEnv(home);
    const login = await cli(['--server', srv.url, 'login', '-u', srv.admin.username, '-p', srv.admin.password], henv);
    ok(login, 'login');
    const viaLogin = await cli(['push', 'acme/prod/cred', layout], henv);
    ok(viaLogin, 'push with the login file');
    assert.equal(viaLogin.stdout.trim(), `acme/prod/cred:c1 ${image.manifest.digest}`);

    const key = (JSON.parse(await fsp.readFile(path.join(home, '.config', 'berth', 'login.json'), 'utf8')) as { apiKey: string }).apiKey;
    const keyEnv = cliEnv(dir('key-home'), { BERTH_API_KEY: key, BERTH_URL: srv.url });
    const viaKey = await cli(['push', '-q', 'acme/prod/cred2:k', layout], keyEnv);
    ok(viaKey, 'push with BERTH_API_KEY');
    assert.equal(viaKey.stdout.trim(), `acme/prod/cred2:k ${image.manifest.digest}`);
    assert.equal(viaKey.stderr, '', '--quiet prints no progress');

    const anonymous = await cli(['--server', srv.url, 'push', 'acme/prod/cred3', layout], cliEnv(dir('anon-home')));
    assert.equal(anonymous.code, 1);
    assert.match(anonymous.stderr, /requires credentials|authentication required/);
    const wrong = await cli(['--server', srv.url, 'push', '-u', 'admin', '-p', 'wrong-password', 'acme/prod/cred3', layout], cliEnv(dir('wrong-home')));
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /refused the credentials of "admin"/);
    const remote = await cli(['--server', 'http://registry.example.com', 'push', '-u', 'a', '-p', 'b', 'acme/prod/x', layout], cliEnv(dir('remote-home')));
    assert.equal(remote.code, 1);
    assert.match(remote.stderr, /refusing plain http to registry\.example\.com/);
  });

  it('an interrupted push (CLI killed mid-upload) is re-run: landed blobs are skipped, and no tag existed in between', async () => {
    const layout = dir('int-src');
    const layers = Array.from({ length: 5 }, () => ({ size: 24 * 1024 * 1024, gzip: false }));
    const image = await buildImage(layout, { layers }, 'big');
    const archive = path.join(work, 'big.tar');
    await dockerArchive(sk, layout, 'big', archive, 'docker.io/library/big:1');
    await fsp.rm(layout, { recursive: true, force: true });

    const child = spawnCli(['--json', ...pushArgs(srv, 'acme/prod', archive), '-j', '1'], env);
    let out = '';
    const landed = await new Promise<string>((resolve, reject) => {
      child.stdout!.on('data', (b: Buffer) => {
        out += b.toString('utf8');
        for (const line of out.split('\n').slice(0, -1)) {
          const e = JSON.parse(line) as { type: string; state?: string; digest?: string; size?: number };
          if (e.type === 'blob' && e.state === 'done' && e.size! > 1024 * 1024) {
            process.kill(-child.pid!, 'SIGKILL');
            resolve(e.digest!);
            return;
          }
        }
      });
      child.once('exit', () => reject(new Error(`the push ended before a layer landed:\n${out}`)));
    });
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    assert.equal(await manifestStatus(srv, 'acme/prod/big', '1'), 404, 'the killed push tagged nothing');
    const firstRun = events(out.split('\n').slice(0, -1).join('\n'));
    assert.ok(!firstRun.some((e) => e.type === 'manifest' || e.type === 'tag'), 'killed before any manifest');

    const r = await cli(['--json', ...pushArgs(srv, 'acme/prod', archive)], env);
    ok(r, 're-run');
    const ev = events(r.stdout);
    const existing = ev.filter((e) => e.type === 'blob' && e.state === 'exists').map((e) => e.digest);
    assert.ok(existing.includes(landed), `the layer that landed (${landed}) is skipped on the re-run`);
    const uploaded = ev.filter((e) => e.type === 'blob' && e.state === 'done').map((e) => e.digest);
    assert.ok(!uploaded.includes(landed));
    assert.ok(uploaded.length >= 1, 'the rest is uploaded');
    const done = ev.at(-1)!;
    assert.equal(done.type, 'done');
    assert.ok(done.skipped.bytes >= 24 * 1024 * 1024);
    const { manifest } = await served('acme/prod/big', '1');
    assert.equal(manifest.config.digest, image.config.digest);
    assert.deepEqual(
      manifest.layers.map((l: { digest: string }) => l.digest),
      image.layers.map((l) => l.diffId),
    );
  });

  it('a 384 MiB layer streams from the file: the CLI\'s memory stays far below the layer size', async () => {
    const layout = dir('big-src');
    await buildImage(layout, { layers: [{ size: 384 * 1024 * 1024, gzip: false }] }, 'big');
    const child = spawnCli(pushArgs(srv, 'acme/prod/huge', layout), env);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    const sampler = await sampleRss(child.pid!, 50);
    const code = await new Promise<number | null>((r) => child.once('close', r));
    const rss = await sampler.stop().catch(() => undefined);
    await fsp.rm(layout, { recursive: true, force: true });
    assert.equal(code, 0, stderr);
    if (rss) {
      assert.ok(rss.peakBytes < 300 * 1024 * 1024, `peak RSS ${(rss.peakBytes / 1024 / 1024).toFixed(0)} MiB for a 384 MiB layer`);
    }
    assert.match(stderr, /pushed 384\.0 MiB in [\d.]+s, [\d.]+ MiB\/s/);
  });

  it('on a TTY: live bars per layer and overall, with bytes, rate and ETA', async () => {
    const layout = dir('tty-src');
    await buildImage(layout, { layers: [{ size: 96 * 1024 * 1024, gzip: false }, { size: 48 * 1024 * 1024, gzip: false }] }, 't');
    const command = [process.execPath, path.join(ROOT, 'bin', 'berth.js'), ...pushArgs(srv, 'acme/prod/tty', layout)].map((a) => `'${a}'`).join(' ');
    const out = await new Promise<string>((resolve, reject) => {
      execFile('script', ['-qfec', command, '/dev/null'], { env: { ...env, COLUMNS: '160' }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      );
    });
    await fsp.rm(layout, { recursive: true, force: true });
    assert.match(out, /total \[[#.]{24}\] [\d.]+ (MiB|KiB|B)\/144\.0 MiB  [\d.]+ (MiB|KiB|B)\/s  ETA/, 'an overall line');
    assert.match(out, /[a-f0-9]{12}  \[[#.]{24}\] [\d.]+ (MiB|KiB|B)\/96\.0 MiB  [\d.]+ (MiB|KiB|B)\/s  ETA \S+  layer 0/, 'a bar for the layer in flight');
    assert.match(out, /\x1b\[\d+A\x1b\[J/, 'redrawn in place');
    assert.match(out, /acme\/prod\/tty:t sha256:/);
  });

  it('berth pull --output oci-dir | oci-archive | docker-archive: skopeo reads each; a pulled docker-archive pushes back to the same config', async () => {
    const layout = dir('pull-src');
    const built = await buildMultiArchImage(
      layout,
      { platforms: [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }], layers: [{ size: 300 * 1024 }, { size: 1000, gzip: false }] },
      'p1',
    );
    ok(await cli(pushArgs(srv, 'acme/prod/pulled', layout), env), 'push');

    const ociDir = dir('pull-oci-dir');
    const r1 = await cli(pullArgs(srv, 'acme/prod/pulled:p1', '--output', 'oci-dir', ociDir), env);
    ok(r1, 'pull oci-dir');
    assert.equal(r1.stdout.trim(), `${ociDir} ${built.index.digest}`);
    await assertSameBlobs(layout, ociDir, 'p1');

    const ociTar = path.join(work, 'pulled.oci.tar');
    ok(await cli(pullArgs(srv, 'acme/prod/pulled:p1', '-o', 'oci-archive', ociTar), env), 'pull oci-archive');
    assert.equal(sha256(await sk.run(['inspect', '--raw', `oci-archive:${ociTar}:p1`]).then((x) => x.stdout)), built.index.digest, 'skopeo reads the oci-archive: same index');
    const ociTarOut = dir('pull-oci-tar-out');
    await untar(ociTar, ociTarOut);
    await assertSameBlobs(layout, ociTarOut, 'p1');

    const dockerTar = path.join(work, 'pulled.docker.tar');
    const r3 = await cli(pullArgs(srv, 'acme/prod/pulled:p1', '-o', 'docker-archive', '--platform', 'linux/arm64', dockerTar), env);
    ok(r3, 'pull docker-archive');
    const arm = built.images[1]!;
    const inspected = JSON.parse((await sk.run(['inspect', `docker-archive:${dockerTar}`])).stdout.toString('utf8')) as { Architecture: string; Layers: string[] };
    assert.equal(inspected.Architecture, 'arm64');
    assert.deepEqual(inspected.Layers, arm.layers.map((l) => l.diffId), 'docker-archive layers are the uncompressed tars (digest = diffID)');
    const config = await sk.run(['inspect', '--config', '--raw', `docker-archive:${dockerTar}`]);
    assert.equal(sha256(config.stdout), arm.config.digest, 'config bytes unchanged');
    const manifestJson = JSON.parse((await run('tar', ['-xOf', dockerTar, 'manifest.json'])).toString()) as { RepoTags: string[] }[];
    assert.deepEqual(manifestJson[0]!.RepoTags, [`${srv.address}/acme/prod/pulled:p1`]);

    // and back again: the same config and diffIDs
    const back = await cli(pushArgs(srv, 'acme/prod/again', dockerTar), env);
    ok(back, 'push the pulled docker-archive');
    const { manifest } = await served('acme/prod/again', 'p1');
    assert.equal(manifest.config.digest, arm.config.digest);
    assert.deepEqual(manifest.layers.map((l: { digest: string }) => l.digest), arm.layers.map((l) => l.diffId));

    const missing = await cli(pullArgs(srv, 'acme/prod/pulled:nope', '-o', 'oci-dir', dir('nope')), env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /MANIFEST_UNKNOWN/);
  });
});

/** Every blob reachable from `tag` in `out` is byte-identical to the one in `src`. */
async function assertSameBlobs(src: string, out: string, tag: string): Promise<void> {
  const a = await reachableBlobs(src, await resolveTag(src, tag));
  const b = await reachableBlobs(out, await resolveTag(out, tag));
  assert.deepEqual(b, a, 'the same blobs (digest, size, media type)');
  for (const blob of a) assert.equal(await sha256File(blobPath(out, blob.digest)), blob.digest);
}
