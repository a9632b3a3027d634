/**
 * The SBOM rows (metadata/sbom-store.ts) on SQLite and PostgreSQL: layer inventories by layer
 * digest, image inventories by manifest digest (read back through core's InventoryReader,
 * listed in pages), and the per-repository switch that is on by default and cascades away with
 * its repository.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';
import { openPostgres } from '../../src/metadata/sql/postgres.ts';
import { StoredInventories } from '../../src/core/supply-chain/sbom/inventories.ts';
import type { ImageInventory } from '../../src/core/supply-chain/inventory.ts';
import { createSchema, dropSchema, POSTGRES_URL } from '../events/helpers.ts';
import { parseImageName } from '../../src/core/content/names.ts';

type Opened = Awaited<ReturnType<typeof openSqlite>>;

const dialects: [string, () => Promise<{ s: Opened; done(): Promise<void> }>][] = [
  [
    'sqlite',
    async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'berth-sbom-store-'));
      const s = await openSqlite(path.join(dir, 'berth.db'));
      return { s, done: async () => (await s.meta.close(), await rm(dir, { recursive: true, force: true })) };
    },
  ],
  [
    'postgres',
    async () => {
      const schema = await createSchema();
      const s = await openPostgres({ url: POSTGRES_URL, schema, poolSize: 2 });
      return { s, done: async () => (await s.meta.close(), await dropSchema(schema)) };
    },
  ],
];

const d = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

for (const [name, open] of dialects) {
  describe(`SBOM store (${name})`, () => {
    test('layer and image inventories round-trip; listing pages by digest; the switch is on by default and goes with its repository; the jobs of a manifest come with it', async () => {
      const { s, done } = await open();
      try {
        const { sbom } = s;
        assert.equal(await sbom.findLayerInventory(d(1)), undefined);
        await sbom.saveLayerInventory(d(1), '{"v":1}');
        await sbom.saveLayerInventory(d(1), '{"v":2}'); // replaced, not duplicated
        assert.equal(await sbom.findLayerInventory(d(1)), '{"v":2}');

        const inventories = new StoredInventories(sbom);
        const inv: ImageInventory = {
          digest: d(10),
          os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
          packages: [{ type: 'deb', name: 'libc6', version: '2.36-9+deb12u4', source: { name: 'glibc', version: '2.36-9+deb12u4' }, purl: 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12' }],
          generatedAt: 1_700_000_000_000,
        };
        await inventories.save(inv);
        await inventories.save({ ...inv, generatedAt: 1_700_000_000_001 });
        assert.deepEqual(await inventories.inventoryOf(d(10)), { ...inv, generatedAt: 1_700_000_000_001 });
        assert.equal((await sbom.findImageInventory(d(10)))?.packageCount, 1);
        assert.equal(await inventories.inventoryOf(d(11)), undefined);
        for (const n of [12, 14, 13]) await inventories.save({ ...inv, digest: d(n) });
        assert.deepEqual(await inventories.listInventoried(undefined, 2), [d(10), d(12)]);
        assert.deepEqual(await inventories.listInventoried(d(12), 10), [d(13), d(14)]);
        assert.deepEqual(await inventories.listInventoried(d(14), 10), []);

        const owner = await s.access.createOwner('acme', 'org');
        const repo = await s.access.createRepository(owner.id, 'prod', 'private', '');
        assert.equal(await sbom.findSbomEnabled(repo.id), true);
        await sbom.saveSbomEnabled(repo.id, false);
        assert.equal(await sbom.findSbomEnabled(repo.id), false);
        await sbom.saveSbomEnabled(repo.id, true);
        assert.equal(await sbom.findSbomEnabled(repo.id), true);
        await sbom.saveSbomEnabled(repo.id, false);
        await s.access.removeRepository(repo.id);
        assert.equal(await sbom.findSbomEnabled(repo.id), true);

        // A manifest's jobs are enqueued in its transaction, and only when it is written.
        const img = (await s.meta.ensureImage(parseImageName('acme/other/app')))!;
        const job = { kind: 'sbom.generate', subject: `acme/other/app@${d(20)}`, runAfter: 0 };
        const base = { imageId: img.id, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: null, subjectDigest: null, configDigest: null, annotations: null, refs: [], requireManifests: [], tag: null, jobs: [job] };
        const refused = await s.meta.saveManifest({ ...base, digest: d(21), payload: Buffer.from('{}'), requireBlobs: [{ digest: d(22), size: 1 }] });
        assert.equal(refused.ok, false);
        assert.equal(await s.jobs.findJob('sbom.generate', job.subject), undefined);
        assert.equal((await s.meta.saveManifest({ ...base, digest: d(20), payload: Buffer.from('{ }'), requireBlobs: [] })).ok, true);
        assert.equal((await s.jobs.findJob('sbom.generate', job.subject))?.state, 'queued');
      } finally {
        await done();
      }
    });
  });
}
