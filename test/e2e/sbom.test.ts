/**
 * End to end: skopeo pushes images built by the test (an Alpine-shaped root with an npm tree,
 * and a two-platform index) to Berth running as a child process; each image manifest — each
 * platform of the index — gets a CycloneDX SBOM referrer (the referrers API, `oras discover`'s
 * shape), which skopeo reads back like any manifest; `berth sbom` and `berth repo set --no-sbom`
 * drive it from the CLI.
 */
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../helpers/e2e.ts';
import { MEDIA_TYPES, blobPath, buildMultiArchImage, initLayout, setTag, sha256, writeBlob, writeImage, writeJsonBlob, type BuiltLayer } from '../helpers/oci-layout.ts';
import { startBerth } from '../helpers/server.ts';
import { createSkopeo } from '../helpers/skopeo.ts';
import { berthCli } from '../auth/helpers.ts';
import { alpineBase, gzip, npmTree, tarOf } from '../supply-chain/layers.ts';

const CDX = 'application/vnd.cyclonedx+json';

interface Referrers {
  schemaVersion: number;
  mediaType: string;
  manifests: { mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }[];
}

/** Copies a built layer's blob from one layout into another. */
async function copyLayer(from: string, to: string, layer: BuiltLayer): Promise<BuiltLayer> {
  await fsp.copyFile(blobPath(from, layer.descriptor.digest), blobPath(to, layer.descriptor.digest));
  return layer;
}

async function until<T>(fn: () => Promise<T | undefined>, what: string, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('skopeo push: each image (and each platform of an index) with packages gets a CycloneDX referrer; berth sbom lists its packages; --no-sbom stops it', { timeout: 240_000 }, async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const srv = await startBerth({ orgs: ['acme'] });
  t.after(() => srv.stop());
  await sk.login(srv.address, srv.admin.username, srv.admin.password);
  const auth = { Authorization: srv.adminAuthorization };
  const work = await tempDir(t, 'sbom');
  const referrers = async (name: string, digest: string): Promise<Referrers> => {
    const r = await fetch(`${srv.url}/v2/${name}/referrers/${digest}`, { headers: auth });
    assert.equal(r.status, 200);
    return (await r.json()) as Referrers;
  };
  const sbomOf = (name: string, digest: string) =>
    until(async () => {
      const r = await referrers(name, digest);
      return r.manifests.length ? r : undefined;
    }, `the SBOM referrer of ${digest}`);

  // An image of real-looking content, built into an OCI layout.
  const src = path.join(work, 'src');
  await initLayout(src);
  const layers = [];
  for (const members of [alpineBase(), npmTree()]) {
    const tar = await tarOf(members);
    layers.push({ descriptor: await writeBlob(src, MEDIA_TYPES.layerGzip, gzip(tar)), diffId: sha256(tar), tarSize: tar.length });
  }
  const image = await writeImage(src, layers, { architecture: 'amd64', os: 'linux' });
  await setTag(src, 'v1', image.manifest);
  const ref = `docker://${srv.address}/acme/prod/app`;
  await sk.copy(`oci:${src}:v1`, `${ref}:v1`, ['--preserve-digests']);

  const found = await sbomOf('acme/prod/app', image.manifest.digest);
  assert.equal(found.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(found.manifests.length, 1);
  const d = found.manifests[0]!;
  assert.equal(d.artifactType, CDX);
  assert.equal(d.mediaType, MEDIA_TYPES.manifest);
  // skopeo reads the referrer as any manifest; its one layer is the CycloneDX JSON.
  const m = JSON.parse((await sk.inspectRaw(`${ref}@${d.digest}`)).toString('utf8'));
  assert.equal(m.artifactType, CDX);
  assert.equal(m.subject.digest, image.manifest.digest);
  assert.deepEqual(m.layers.map((l: { mediaType: string }) => l.mediaType), [CDX]);
  const bom = await (await fetch(`${srv.url}/v2/acme/prod/app/blobs/${m.layers[0].digest}`, { headers: auth })).json();
  assert.equal(bom.specVersion, '1.6');
  assert.ok(bom.components.some((c: { purl?: string }) => c.purl === 'pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=3.19.1'));

  // A two-platform index: each platform image gets its own SBOM, the index none. A platform
  // whose layers hold no known OS or package gets no SBOM (it would list nothing).
  const multi = path.join(work, 'multi');
  const idx = await buildMultiArchImage(multi, { platforms: [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }], layers: [{ size: 64 }] });
  const withPackages = await writeImage(multi, [await copyLayer(src, multi, layers[0]!)], { architecture: 'riscv64', os: 'linux' });
  const index = await writeJsonBlob(multi, MEDIA_TYPES.index, {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.index,
    manifests: [...idx.images.map((i) => i.manifest), { ...withPackages.manifest, platform: { architecture: 'riscv64', os: 'linux' } }],
  });
  await setTag(multi, 'v1', index.descriptor);
  await sk.copy(`oci:${multi}:v1`, `${ref}:multi`, ['--all', '--preserve-digests']);
  assert.equal((await sbomOf('acme/prod/app', withPackages.manifest.digest)).manifests[0]!.artifactType, CDX);
  for (const child of idx.images) assert.equal((await referrers('acme/prod/app', child.manifest.digest)).manifests.length, 0);
  assert.equal((await referrers('acme/prod/app', index.descriptor.digest)).manifests.length, 0);

  // The CLI.
  const cfg = path.join(work, 'cli');
  await fsp.mkdir(cfg);
  const env = { XDG_CONFIG_HOME: cfg, HOME: cfg };
  const login = await berthCli(['--server', srv.url, 'login', '-u', srv.admin.username, '--password-stdin'], env, `${srv.admin.password}\n`);
  assert.equal(login.code, 0, login.stderr);
  const listed = await berthCli(['sbom', 'acme/prod/app:v1'], env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /generated, 7 packages, generated at \d{4}-/);
  assert.match(listed.stdout, /libcrypto3\s+3\.1\.4-r5\s+openssl 3\.1\.4-r5/);
  const asJson = await until(async () => {
    const doc = JSON.parse((await berthCli(['--json', 'sbom', 'acme/prod/app:multi'], env)).stdout);
    return doc.children.some((c: { state: string }) => c.state === 'pending') ? undefined : doc;
  }, 'every platform inventoried');
  assert.deepEqual(asJson.children.map((c: { state: string }) => c.state), ['empty', 'empty', 'generated']);
  const off = await berthCli(['repo', 'set', 'acme/prod', '--no-sbom'], env);
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /enabled\s+false/);
  await sk.copy(`oci:${src}:v1`, `docker://${srv.address}/acme/prod/other:v1`, ['--preserve-digests']);
  const state = await berthCli(['sbom', 'acme/prod/other:v1'], env);
  assert.match(state.stdout, /: off, 7 packages/, 'no SBOM referrer here; the inventory of the same manifest is known');
});
