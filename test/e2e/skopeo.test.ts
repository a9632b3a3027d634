/**
 * End-to-end: the real skopeo client against Berth running as a child process. Images are
 * built as OCI layouts on disk (test/helpers/oci-layout.ts), pushed, pulled back and compared
 * byte for byte.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { ACCEPT_MANIFESTS, fetchError, hashUrl, tempDir } from '../helpers/e2e.ts';
import {
  MEDIA_TYPES,
  blobPath,
  buildImage,
  buildMultiArchImage,
  reachableBlobs,
  readBlob,
  resolveTag,
  sha256,
  sha256File,
  type BuiltImage,
} from '../helpers/oci-layout.ts';
import { startBerth, type BerthServer } from '../helpers/server.ts';
import { createSkopeo, skopeoVersion, type Skopeo } from '../helpers/skopeo.ts';

/** A server with organisation `acme`, and a skopeo logged in to it as the administrator. */
async function setup(t: TestContext): Promise<{ srv: BerthServer; sk: Skopeo; auth: Record<string, string> }> {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  await sk.login(srv.address, srv.admin.username, srv.admin.password);
  return { srv, sk, auth: { Authorization: srv.adminAuthorization } };
}

/** Every blob reachable from `tag` in `out` is byte-identical to the one in `src`. */
async function assertSameBlobs(src: string, out: string, tag: string): Promise<void> {
  const a = await reachableBlobs(src, await resolveTag(src, tag));
  const b = await reachableBlobs(out, await resolveTag(out, tag));
  assert.deepEqual(b, a, 'pulled layout holds exactly the blobs (digest, size, media type) of the pushed one');
  for (const blob of a) {
    assert.equal(await sha256File(blobPath(out, blob.digest)), blob.digest, `pulled blob ${blob.digest} hashes to its digest`);
    const [x, y] = await Promise.all([fsp.readFile(blobPath(src, blob.digest)), fsp.readFile(blobPath(out, blob.digest))]);
    assert.ok(x.equals(y), `blob ${blob.digest} bytes identical`);
  }
}

/** Every blob of `image` is served by Berth with its digest and size. */
async function assertServedBlobs(srv: BerthServer, name: string, image: BuiltImage): Promise<void> {
  for (const d of [image.config, ...image.layers.map((l) => l.descriptor)]) {
    const r = await hashUrl(`${srv.url}/v2/${name}/blobs/${d.digest}`, { Authorization: srv.adminAuthorization });
    assert.equal(r.status, 200, `GET blob ${d.digest}`);
    assert.equal(r.digest, d.digest, `served bytes of ${d.digest} hash to it`);
    assert.equal(r.size, d.size);
    assert.equal(r.headers.get('docker-content-digest'), d.digest);
  }
}

test('skopeo client is installed (required: these tests never skip)', async () => {
  const v = await skopeoVersion();
  assert.match(v, /^skopeo version \d+\.\d+/);
});

test('push an OCI layout with skopeo copy and pull it back: manifest digest and every blob identical', async (t) => {
  const { srv, sk, auth } = await setup(t);
  const work = await tempDir(t, 'roundtrip');
  const src = path.join(work, 'src');
  const out = path.join(work, 'out');
  const image = await buildImage(
    src,
    {
      layers: [
        { size: 37 },
        { size: 300 * 1024 },
        { size: 5 * 1024 * 1024 }, // ~5 MB, several PATCH-sized pieces on the wire
        { size: 64 * 1024, gzip: false }, // an uncompressed layer must stay uncompressed
        { size: 0 }, // a layer whose tar holds an empty file
      ],
      annotations: { 'org.opencontainers.image.title': 'berth e2e round trip' },
    },
    'v1',
  );
  const name = 'acme/prod/app';
  const ref = `docker://${srv.address}/${name}`;

  // --preserve-digests: skopeo must push the manifest and layers exactly as they are
  const pushDigestFile = path.join(work, 'push.digest');
  await sk.copy(`oci:${src}:v1`, `${ref}:v1`, ['--preserve-digests', '--digestfile', pushDigestFile]);
  assert.equal((await fsp.readFile(pushDigestFile, 'utf8')).trim(), image.manifest.digest, 'digest reported by the push');

  const raw = await sk.inspectRaw(`${ref}:v1`);
  assert.equal(sha256(raw), image.manifest.digest, 'sha256 of `skopeo inspect --raw` equals the manifest digest');
  assert.ok(raw.equals(image.manifestBytes), 'manifest bytes served exactly as pushed');
  assert.ok((await sk.inspectRaw(`${ref}@${image.manifest.digest}`)).equals(image.manifestBytes), 'by digest too');

  const res = await fetch(`${srv.url}/v2/${name}/manifests/v1`, { headers: { ...auth, Accept: ACCEPT_MANIFESTS } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('docker-content-digest'), image.manifest.digest);
  assert.equal(res.headers.get('content-type'), MEDIA_TYPES.manifest);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(image.manifestBytes));
  await assertServedBlobs(srv, name, image);

  const inspected = await sk.inspect(`${ref}:v1`);
  assert.equal(inspected.Digest, image.manifest.digest);
  assert.deepEqual(
    inspected.Layers,
    image.layers.map((l) => l.descriptor.digest),
  );

  // pull back into a fresh layout; keep the uncompressed layer as it is
  const pullDigestFile = path.join(work, 'pull.digest');
  await sk.copy(`${ref}:v1`, `oci:${out}:v1`, ['--preserve-digests', '--dest-oci-accept-uncompressed-layers', '--digestfile', pullDigestFile]);
  assert.equal((await fsp.readFile(pullDigestFile, 'utf8')).trim(), image.manifest.digest, 'digest reported by the pull');
  const pulled = await resolveTag(out, 'v1');
  assert.equal(pulled.digest, image.manifest.digest, 'pulled index.json points at the same manifest digest');
  assert.equal(pulled.mediaType, MEDIA_TYPES.manifest);
  assert.ok((await readBlob(out, pulled.digest)).equals(image.manifestBytes), 'pulled manifest bytes identical');
  await assertSameBlobs(src, out, 'v1');
});

test('multi-arch: skopeo copy --all of an OCI index (3 platforms) round-trips index and child digests', async (t) => {
  const { srv, sk, auth } = await setup(t);
  const work = await tempDir(t, 'multiarch');
  const src = path.join(work, 'src');
  const out = path.join(work, 'out');
  const platforms = [
    { architecture: 'amd64', os: 'linux' },
    { architecture: 'arm64', os: 'linux', variant: 'v8' },
    { architecture: 's390x', os: 'linux' },
  ];
  const built = await buildMultiArchImage(
    src,
    { platforms, sharedLayers: [{ size: 100 * 1024 }], layers: [{ size: 64 * 1024 }, { size: 512 * 1024 }] },
    'v1',
  );
  const name = 'acme/prod/multi';
  const ref = `docker://${srv.address}/${name}`;

  const pushDigestFile = path.join(work, 'push.digest');
  await sk.copy(`oci:${src}:v1`, `${ref}:v1`, ['--all', '--preserve-digests', '--digestfile', pushDigestFile]);
  assert.equal((await fsp.readFile(pushDigestFile, 'utf8')).trim(), built.index.digest, 'digest reported by the push is the index digest');

  const rawIndex = await sk.inspectRaw(`${ref}:v1`);
  assert.equal(sha256(rawIndex), built.index.digest);
  assert.ok(rawIndex.equals(built.indexBytes), 'index bytes served exactly as pushed');
  const res = await fetch(`${srv.url}/v2/${name}/manifests/v1`, { headers: { ...auth, Accept: ACCEPT_MANIFESTS } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), MEDIA_TYPES.index);
  assert.equal(res.headers.get('docker-content-digest'), built.index.digest);
  await res.arrayBuffer();

  for (const image of built.images) {
    const raw = await sk.inspectRaw(`${ref}@${image.manifest.digest}`);
    assert.equal(sha256(raw), image.manifest.digest, `child ${image.manifest.platform?.architecture}`);
    assert.ok(raw.equals(image.manifestBytes));
    await assertServedBlobs(srv, name, image);
  }

  // skopeo resolves the platform entries of the index as Berth serves them
  const arm = built.images[1]!;
  const inspected = await sk.run(['inspect', '--tls-verify=false', '--authfile', sk.authFile, '--override-arch', 'arm64', '--override-variant', 'v8', `${ref}:v1`]);
  const doc = JSON.parse(inspected.stdout.toString('utf8')) as { Architecture: string; Layers: string[] };
  assert.equal(doc.Architecture, 'arm64');
  assert.deepEqual(
    doc.Layers,
    arm.layers.map((l) => l.descriptor.digest),
  );

  const pullDigestFile = path.join(work, 'pull.digest');
  await sk.copy(`${ref}:v1`, `oci:${out}:v1`, ['--all', '--preserve-digests', '--digestfile', pullDigestFile]);
  assert.equal((await fsp.readFile(pullDigestFile, 'utf8')).trim(), built.index.digest, 'digest reported by the pull');
  const pulled = await resolveTag(out, 'v1');
  assert.equal(pulled.digest, built.index.digest, 'pulled index.json points at the same index digest');
  const pulledIndex = await readBlob(out, pulled.digest);
  assert.ok(pulledIndex.equals(built.indexBytes), 'pulled index bytes identical');
  const children = (JSON.parse(pulledIndex.toString('utf8')) as { manifests: { digest: string; platform: unknown }[] }).manifests;
  assert.deepEqual(
    children.map((c) => [c.digest, c.platform]),
    built.images.map((i) => [i.manifest.digest, i.manifest.platform]),
  );
  for (const image of built.images) {
    assert.ok((await readBlob(out, image.manifest.digest)).equals(image.manifestBytes), `pulled child ${image.manifest.digest} identical`);
  }
  await assertSameBlobs(src, out, 'v1');
});

test('skopeo list-tags returns every pushed tag, sorted lexically', async (t) => {
  const { srv, sk, auth } = await setup(t);
  const work = await tempDir(t, 'tags');
  const src = path.join(work, 'src');
  await buildImage(src, { layers: [{ size: 4096 }] }, 'one');
  await buildImage(src, { layers: [{ size: 2048 }] }, 'two');
  const name = 'acme/prod/tagged';
  const ref = `docker://${srv.address}/${name}`;
  // two distinct manifests, several tags each; pushed in no particular order
  const tagsOne = ['v1.9.0', 'latest', 'v1.10.0', '10', 'Z', 'a_b', '1', 'v1.0.0-rc.1'];
  const tagsTwo = ['a.b', '2', '_x', 'a-b', 'a', 'zzz'];
  await sk.copy(`oci:${src}:one`, `${ref}:${tagsOne[0]}`, ['--preserve-digests']);
  await sk.copy(`oci:${src}:two`, `${ref}:${tagsTwo[0]}`, ['--preserve-digests']);
  // the rest registry to registry: blobs already there, only manifests are put
  for (const tag of tagsOne.slice(1)) await sk.copy(`${ref}:${tagsOne[0]}`, `${ref}:${tag}`, ['--preserve-digests']);
  for (const tag of tagsTwo.slice(1)) await sk.copy(`${ref}:${tagsTwo[0]}`, `${ref}:${tag}`, ['--preserve-digests']);

  const all = [...tagsOne, ...tagsTwo];
  const expected = [...all].sort(); // code-unit order: the byte order of these ASCII tags
  assert.deepEqual(expected.slice(0, 6), ['1', '10', '2', 'Z', '_x', 'a'], 'sanity: lexical, not numeric or case-folded');
  assert.deepEqual(await sk.listTags(ref), expected);

  // the API itself, paginated: the same complete list across pages
  const paged: string[] = [];
  let next: string | undefined = `/v2/${name}/tags/list?n=4`;
  let pages = 0;
  while (next) {
    const res: Response = await fetch(`${srv.url}${next}`, { headers: auth });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { name: string; tags: string[] };
    assert.equal(body.name, name);
    paged.push(...body.tags);
    pages++;
    next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  assert.deepEqual(paged, expected);
  assert.equal(pages, Math.ceil(expected.length / 4));

  // a deeper name (OWNER/REPOSITORY/IMAGE/MORE) works the same
  const deep = `docker://${srv.address}/acme/prod/team/app`;
  await sk.copy(`oci:${src}:one`, `${deep}:b`, ['--preserve-digests']);
  await sk.copy(`oci:${src}:two`, `${deep}:a`, ['--preserve-digests']);
  assert.deepEqual(await sk.listTags(deep), ['a', 'b']);
  assert.deepEqual(await sk.listTags(ref), expected, 'other image unaffected');
});

test('skopeo delete removes the manifest (GET by digest → 404 MANIFEST_UNKNOWN) and leaves other tags', async (t) => {
  const { srv, sk, auth } = await setup(t);
  const work = await tempDir(t, 'delete');
  const src = path.join(work, 'src');
  const a = await buildImage(src, { layers: [{ size: 1000 }] }, 'a');
  const b = await buildImage(src, { layers: [{ size: 2000 }] }, 'b');
  const c = await buildImage(src, { layers: [{ size: 3000 }] }, 'c');
  const name = 'acme/prod/del';
  const ref = `docker://${srv.address}/${name}`;
  for (const tag of ['a', 'b', 'c']) await sk.copy(`oci:${src}:${tag}`, `${ref}:${tag}`, ['--preserve-digests']);
  await sk.copy(`${ref}:c`, `${ref}:c-alias`, ['--preserve-digests']);
  assert.deepEqual(await sk.listTags(ref), ['a', 'b', 'c', 'c-alias']);

  const assertManifestGone = async (reference: string) => {
    const url = `${srv.url}/v2/${name}/manifests/${reference}`;
    const e = await fetchError(url, { headers: { ...auth, Accept: ACCEPT_MANIFESTS } });
    assert.equal(e.status, 404, `GET ${reference}`);
    assert.match(e.contentType ?? '', /^application\/json/);
    assert.equal(e.body.errors[0]?.code, 'MANIFEST_UNKNOWN', JSON.stringify(e.body));
    assert.equal(typeof e.body.errors[0]?.message, 'string');
    const head = await fetch(url, { method: 'HEAD', headers: { ...auth, Accept: ACCEPT_MANIFESTS } });
    assert.equal(head.status, 404, `HEAD ${reference}`);
  };

  // by tag: skopeo resolves the tag and DELETEs the manifest by its digest
  await sk.delete(`${ref}:a`);
  await assertManifestGone(a.manifest.digest);
  await assertManifestGone('a');
  await assert.rejects(sk.inspectRaw(`${ref}:a`), /manifest unknown|MANIFEST_UNKNOWN|not found/i);
  assert.deepEqual(await sk.listTags(ref), ['b', 'c', 'c-alias'], 'the other tags remain');
  assert.ok((await sk.inspectRaw(`${ref}:b`)).equals(b.manifestBytes));
  assert.ok((await sk.inspectRaw(`${ref}:c`)).equals(c.manifestBytes));

  // by digest: the manifest goes with every tag pointing at it
  await sk.delete(`${ref}@${c.manifest.digest}`);
  await assertManifestGone(c.manifest.digest);
  await assertManifestGone('c');
  await assertManifestGone('c-alias');
  assert.deepEqual(await sk.listTags(ref), ['b']);
  assert.ok((await sk.inspectRaw(`${ref}:b`)).equals(b.manifestBytes), 'b still served, unchanged');

  // deleting again is an error, not a silent success
  await assert.rejects(sk.delete(`${ref}@${a.manifest.digest}`));

  // the remaining image still pulls completely
  const out = path.join(work, 'out');
  await sk.copy(`${ref}:b`, `oci:${out}:b`, ['--preserve-digests']);
  assert.equal((await resolveTag(out, 'b')).digest, b.manifest.digest);
  await assertSameBlobs(src, out, 'b');
});
