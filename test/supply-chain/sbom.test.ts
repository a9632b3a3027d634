/**
 * SBOM on push, in-process (app.inject), on SQLite and PostgreSQL: images the test writes are
 * pushed through /v2; the job inventories them (a base layer shared by two images is read
 * once), stores the inventory (registry.inventories), calls registry.sbom.onInventory, and
 * pushes a CycloneDX referrer found through the referrers API. Re-running stacks nothing; the
 * SBOM itself gets none; a repository switched off gets none. Then a real Debian root filesystem
 * (mmdebstrap), whose SBOM lists libc6 from source glibc.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { ADMIN, api, apiOk, eventually, openBerth, sha256, type EventsBerth } from '../events/helpers.ts';
import { SBOM_GENERATE } from '../../src/core/supply-chain/sbom/sbom.ts';
import { alpineBase, gzip, npmTree, pyMetadata, pythonTree, tarOf, zstd } from './layers.ts';
import { debianRootfs } from './debian-rootfs.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const CDX = 'application/vnd.cyclonedx+json';
const LAYER = { gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', tar: 'application/vnd.oci.image.layer.v1.tar' };

interface Layer {
  mediaType: string;
  bytes: Buffer;
}

async function putBlob(app: FastifyInstance, name: string, blob: Buffer): Promise<void> {
  const res = await app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: blob });
  assert.equal(res.statusCode, 201, res.body);
}

function manifestOf(config: Buffer, layers: { mediaType: string; digest: string; size: number }[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers }));
}

async function putManifest(app: FastifyInstance, name: string, tag: string, bytes: Buffer): Promise<string> {
  const res = await app.inject({ method: 'PUT', url: `/v2/${name}/manifests/${tag}`, headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, payload: bytes });
  assert.equal(res.statusCode, 201, res.body);
  return sha256(bytes);
}

/** Pushes an image of `layers` through /v2; returns its manifest digest. */
async function pushImage(app: FastifyInstance, name: string, tag: string, layers: Layer[]): Promise<string> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, tag }));
  for (const b of [config, ...layers.map((l) => l.bytes)]) await putBlob(app, name, b);
  return putManifest(app, name, tag, manifestOf(config, layers.map((l) => ({ mediaType: l.mediaType, digest: sha256(l.bytes), size: l.bytes.length }))));
}

async function referrers(app: FastifyInstance, name: string, digest: string) {
  const res = await app.inject({ method: 'GET', url: `/v2/${name}/referrers/${digest}`, headers: { authorization: ADMIN } });
  assert.equal(res.statusCode, 200, res.body);
  return JSON.parse(res.body) as { mediaType: string; manifests: { digest: string; artifactType?: string; mediaType: string; annotations?: Record<string, string> }[] };
}

const waitInventory = (b: EventsBerth, digest: string, ms = 30_000) => eventually(() => b.berth.registry.inventories.inventoryOf(digest), ms, `inventory of ${digest}`);

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`SBOM on push (${dialect})`, () => {
    test('push → inventory and CycloneDX referrer; shared layers read once; whiteouts, zstd, no end-of-archive; idempotent; SBOMs get none; the switch', async () => {
      const b = await openBerth({ postgres: dialect === 'postgres' });
      try {
        const { app } = b;
        const registry = b.berth.registry;
        const told: string[] = [];
        registry.sbom.onInventory = async (digest, repositoryId) => void told.push(`${digest} ${repositoryId}`);
        await apiOk(app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);

        const base: Layer = { mediaType: LAYER.gzip, bytes: gzip(await tarOf(alpineBase())) };
        const npm: Layer = { mediaType: LAYER.tar, bytes: await tarOf(npmTree(), { eoa: false }) };
        const py: Layer = { mediaType: LAYER.zstd, bytes: zstd(await tarOf(pythonTree())) };
        const wh: Layer = {
          mediaType: LAYER.gzip,
          bytes: gzip(
            await tarOf([
              { name: 'app/node_modules/.wh.left-pad', data: '' },
              { name: 'usr/lib/python3.11/site-packages/.wh..wh..opq', data: '' },
              { name: 'usr/lib/python3.11/site-packages/urllib3-2.1.0.dist-info/METADATA', data: pyMetadata('urllib3', '2.1.0') },
            ]),
          ),
        };
        const a = await pushImage(app, 'acme/prod/a', 'v1', [base, npm]);
        const invA = await waitInventory(b, a);
        const c = await pushImage(app, 'acme/prod/c', 'v1', [base, npm, py, wh]);
        const invC = await waitInventory(b, c);
        assert.deepEqual(registry.sbom.stats.layersRead, 4, 'alpine, npm, python and the whiteout layer each read once');
        assert.ok(registry.sbom.stats.layersCached >= 2, 'the second image found the shared layers inventoried');

        assert.deepEqual(invA.os, { id: 'alpine', versionId: '3.19.1', prettyName: 'Alpine Linux v3.19' });
        assert.deepEqual(invA.packages.map((p) => p.name), ['busybox', 'libcrypto3', 'musl', '@types/node', 'debug', 'express', 'left-pad']);
        assert.deepEqual(invC.packages.map((p) => p.name), ['busybox', 'libcrypto3', 'musl', '@types/node', 'debug', 'express', 'urllib3'], 'left-pad and the old Python tree are whited out');
        assert.equal(invC.packages.find((p) => p.name === 'libcrypto3')?.source?.name, 'openssl');

        // The referrer, in the shape `oras discover` reads.
        const refs = await eventually(async () => {
          const r = await referrers(app, 'acme/prod/a', a);
          return r.manifests.length ? r : undefined;
        });
        assert.equal(refs.manifests.length, 1);
        const ref = refs.manifests[0]!;
        assert.equal(ref.artifactType, CDX);
        assert.equal(ref.mediaType, OCI_MANIFEST);
        const m = JSON.parse((await app.inject({ method: 'GET', url: `/v2/acme/prod/a/manifests/${ref.digest}`, headers: { authorization: ADMIN, accept: OCI_MANIFEST } })).body);
        assert.equal(m.subject.digest, a);
        assert.equal(m.layers.length, 1);
        assert.equal(m.layers[0].mediaType, CDX);
        const doc = JSON.parse((await app.inject({ method: 'GET', url: `/v2/acme/prod/a/blobs/${m.layers[0].digest}`, headers: { authorization: ADMIN } })).body);
        assert.equal(doc.specVersion, '1.6');
        assert.ok(doc.components.some((x: { purl?: string }) => x.purl === 'pkg:npm/%40types/node@20.11.5'));
        await eventually(async () => (told.some((t) => t.startsWith(`${a} `)) && told.some((t) => t.startsWith(`${c} `)) ? true : undefined), 15_000, 'onInventory of both images');

        // The SBOM itself gets no SBOM job, and no inventory.
        assert.equal(await registry.jobs.store.findJob(SBOM_GENERATE, `acme/prod/a@${ref.digest}`), undefined);
        assert.equal(await registry.inventories.inventoryOf(ref.digest), undefined);

        // Again: the same SBOM, nothing stacked; the layers come from the cache.
        const read = registry.sbom.stats.layersRead;
        const generated = registry.sbom.stats.inventoried;
        await registry.jobs.enqueue([{ kind: SBOM_GENERATE, subject: `acme/prod/a@${a}`, runAfter: Date.now() }]);
        await eventually(async () => (registry.sbom.stats.inventoried > generated ? true : undefined));
        assert.deepEqual((await referrers(app, 'acme/prod/a', a)).manifests.map((r) => r.digest), [ref.digest]);
        assert.equal(registry.sbom.stats.layersRead, read);

        // A tag pushed again to the inventoried manifest (`latest` beside `v1`) queues no job;
        // the same digest in another image does (its SBOM is a referrer there).
        const job = `acme/prod/a@${a}`;
        const settled = await eventually(async () => {
          const j = await registry.jobs.store.findJob(SBOM_GENERATE, job);
          return j === undefined || (j.state !== 'queued' && j.state !== 'running') ? (j ?? null) : undefined;
        });
        const bytesA = (await app.inject({ method: 'GET', url: `/v2/acme/prod/a/manifests/v1`, headers: { authorization: ADMIN, accept: OCI_MANIFEST } })).rawPayload;
        assert.equal(await putManifest(app, 'acme/prod/a', 'latest', bytesA), a);
        const after = await registry.jobs.store.findJob(SBOM_GENERATE, job);
        assert.deepEqual([after?.state, after?.enqueuedAt], [settled?.state, settled?.enqueuedAt], 're-tagging queued no SBOM job');
        assert.equal(await pushImage(app, 'acme/prod/a2', 'v1', [base, npm]), a, 'the same manifest');
        assert.ok(await registry.jobs.store.findJob(SBOM_GENERATE, `acme/prod/a2@${a}`), 'another image gets its own job');

        // The management API's view, and the listing the matcher pages through.
        const status = await apiOk(app, 'GET', '/api/v1/repos/acme/prod/sbom/status?image=a&ref=v1', ADMIN, undefined, 200);
        assert.equal(status.state, 'generated');
        assert.equal(status.packageCount, 7);
        assert.equal(status.sbom, ref.digest);
        assert.deepEqual((await registry.inventories.listInventoried(undefined, 10)).sort(), [a, c].sort());
        assert.equal((await api(app, 'GET', '/api/v1/repos/acme/prod/sbom/status?image=a', ADMIN)).status, 400);

        // Switched off: a push enqueues nothing.
        assert.deepEqual(await apiOk(app, 'PUT', '/api/v1/repos/acme/prod/sbom', ADMIN, { enabled: false }, 200), { repository: 'acme/prod', enabled: false });
        const off = await pushImage(app, 'acme/prod/off', 'v1', [base]);
        assert.equal(await registry.jobs.store.findJob(SBOM_GENERATE, `acme/prod/off@${off}`), undefined);
        assert.equal((await apiOk(app, 'GET', '/api/v1/repos/acme/prod/sbom/status?image=off&ref=v1', ADMIN, undefined, 200)).state, 'off');
        assert.deepEqual(await apiOk(app, 'GET', '/api/v1/repos/acme/prod/sbom', ADMIN, undefined, 200), { repository: 'acme/prod', enabled: false });
      } finally {
        await b.close();
      }
    });
  });
}

describe('SBOM of a real Debian root filesystem', () => {
  test('mmdebstrap bookworm pushed as one layer: libc6 from source glibc, purls with arch and distro', { timeout: 600_000 }, async () => {
    const rootfs = await debianRootfs('bookworm');
    const b = await openBerth();
    try {
      const registry = b.berth.registry;
      await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
      const h = createHash('sha256');
      for await (const chunk of createReadStream(rootfs)) h.update(chunk as Buffer);
      const digest = `sha256:${h.digest('hex')}`;
      const size = (await stat(rootfs)).size;
      await registry.uploads.putMonolithic('acme/prod/debian', digest, createReadStream(rootfs, { highWaterMark: 1024 * 1024 }), size);
      const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      await putBlob(b.app, 'acme/prod/debian', config);
      const d = await putManifest(b.app, 'acme/prod/debian', '12', manifestOf(config, [{ mediaType: LAYER.tar, digest, size }]));
      const inv = await waitInventory(b, d, 120_000);
      assert.equal(inv.os?.id, 'debian');
      assert.equal(inv.os?.versionId, '12');
      const libc = inv.packages.find((p) => p.name === 'libc6');
      assert.ok(libc, 'libc6 listed');
      assert.equal(libc.source?.name, 'glibc');
      assert.match(libc.purl, /^pkg:deb\/debian\/libc6@[^?]+\?arch=amd64&distro=debian-12$/);
      assert.ok(inv.packages.some((p) => p.name === 'base-files') && inv.packages.some((p) => p.name === 'dpkg'));
      assert.ok(inv.packages.every((p) => p.type === 'deb'));
      assert.ok(inv.packages.length > 10, `${inv.packages.length} packages`);
    } finally {
      await b.close();
    }
  });
});
