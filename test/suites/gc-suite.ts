/**
 * Online garbage collection through core (Registry over real stores and a real filesystem
 * BlobStore), run once per dialect: runGcSuite('sqlite', openDatabase). Includes the races:
 * a manifest PUT while GC decides, a re-upload of a digest being swept, two nodes collecting.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Keyring } from '../../src/core/keys/keyring.ts';
import { Registry } from '../../src/core/registry.ts';
import { TokenService } from '../../src/core/access/tokens.ts';
import { RegistryError } from '../../src/core/errors.ts';
import type { AccessStore } from '../../src/metadata/access-store.ts';
import type { GcStore } from '../../src/metadata/gc-store.ts';
import type { JobStore } from '../../src/metadata/job-store.ts';
import type { RateLimitStore } from '../../src/metadata/rate-limit-store.ts';
import type { LifecycleStore } from '../../src/metadata/lifecycle-store.ts';
import type { SigningStore } from '../../src/metadata/signing-store.ts';
import type { MetadataStore } from '../../src/metadata/metadata-store.ts';
import type { VulnStore } from '../../src/metadata/vuln-store.ts';
import type { SbomStore } from '../../src/metadata/sbom-store.ts';
import { FsBlobStore } from '../../src/storage/fs.ts';

/** One connection set to the test database; `open` may be called again for a second node. */
export interface GcDatabase {
  open(): Promise<{ meta: MetadataStore; access: AccessStore; jobs: JobStore; gc: GcStore; lifecycle: LifecycleStore; signing: SigningStore; sbom: SbomStore; vulns: VulnStore; limits: RateLimitStore }>;
  cleanup(): Promise<void>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

interface Node {
  r: Registry;
  access: AccessStore;
  lifecycle: LifecycleStore;
  store: FsBlobStore;
  meta: MetadataStore;
  close(): Promise<void>;
}

/** Every node of a test shares the key-encryption key, as nodes sharing a database must. */
const keyring = Keyring.ephemeral();

async function node(db: GcDatabase, storageDir: string, graceMs = 0): Promise<Node> {
  const { meta, access, jobs, gc, lifecycle, signing, sbom, vulns, limits } = await db.open();
  const store = new FsBlobStore(storageDir);
  await store.init();
  const tokens = await TokenService.open(access, keyring, 'test', 300);
  const r = new Registry(meta, store, access, tokens, {
    keyring,
    jobs: { store: jobs, options: { concurrency: 2, pollIntervalMs: 60_000, leaseMs: 30_000, maxAttempts: 5, backoffBaseMs: 10, backoffMaxMs: 100 } },
    gc: { store: gc, options: { graceMs, collectUntagged: true, tombstoneMs: 1000 } },
    lifecycle,
    signing: { store: signing, options: { identity: 'localhost:5000', cacheMs: 1000 } },
    sbom,
    vulns: { store: vulns },
    limits: { store: limits, counters: { kind: 'memory' }, refreshMs: 60_000 },
  });
  r.jobs.start(r);
  await r.jobs.stop(); // no polling: the tests drive reviews with gc.run()
  return { r, access, lifecycle, store, meta, close: () => meta.close() };
}

async function blob(r: Registry, name: string, data: Buffer | string): Promise<{ mediaType: string; digest: string; size: number; data: Buffer }> {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
  await r.uploads.putMonolithic(name, sha(b), once(b), b.length);
  return { mediaType: 'application/octet-stream', digest: sha(b), size: b.length, data: b };
}

function manifestOf(config: { digest: string; size: number }, layers: { digest: string; size: number }[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
      ...extra,
    }),
  );
}

async function image(r: Registry, name: string, ref: string, layers: { digest: string; size: number }[] = [], seed = randomBytes(8).toString('hex')) {
  const config = await blob(r, name, `{"seed":"${seed}"}`);
  const bytes = manifestOf(config, layers);
  await r.manifests.put(name, ref, bytes, OCI_MANIFEST);
  return { digest: sha(bytes), size: bytes.length, config, bytes };
}

/**
 * `multiNode`: the database may be shared by several processes (PostgreSQL). SQLite serves one
 * process: two better-sqlite3 connections in one event loop would only wait on each other.
 */
export function runGcSuite(dialect: string, openDatabase: () => Promise<GcDatabase>, opts: { multiNode: boolean }): void {
  describe(`garbage collection: ${dialect}`, () => {
    const withNode = (name: string, fn: (n: Node, extra: { db: GcDatabase; dir: string }) => Promise<void>, graceMs = 0) =>
      test(name, async () => {
        const db = await openDatabase();
        const dir = await mkdtemp(path.join(tmpdir(), 'berth-gc-'));
        const n = await node(db, dir, graceMs);
        try {
          await n.access.createOwner('acme', 'org');
          await fn(n, { db, dir });
        } finally {
          await n.close();
          await db.cleanup();
          await rm(dir, { recursive: true, force: true });
        }
      });

    withNode('untag, gc run: the manifest goes, then its blobs; a layer another image names stays; bytes gone from storage', async ({ r, store }) => {
      const shared = await blob(r, 'acme/prod/a', 'shared layer');
      const own = await blob(r, 'acme/prod/a', 'own layer');
      const a = await image(r, 'acme/prod/a', 'v1', [shared, own]);
      await blob(r, 'acme/prod/b', 'shared layer');
      const b = await image(r, 'acme/prod/b', 'v1', [shared]);

      let report = await r.gc.run();
      assert.equal(report.deleted.blobs + report.deleted.manifests, 0, 'everything is referenced');

      await r.manifests.delete('acme/prod/a', 'v1');
      report = await r.gc.run();
      assert.deepEqual([report.deleted.manifests, report.deleted.blobs], [1, 2], JSON.stringify(report.outcomes));
      assert.equal(report.deleted.bytes, own.size + a.config.size);
      assert.equal(await store.stat(own.digest), undefined, 'own layer bytes deleted');
      assert.equal(await store.stat(a.config.digest), undefined, 'config bytes deleted');
      assert.deepEqual(await store.stat(shared.digest), { size: shared.size }, 'shared layer intact');
      await assert.rejects(r.manifests.get('acme/prod/a', a.digest), { code: 'MANIFEST_UNKNOWN' });
      assert.equal((await r.manifests.get('acme/prod/b', 'v1')).digest, b.digest);
      const e = await r.gc.explain(shared.digest);
      assert.match(e.verdict, /kept — named by 1 manifest/);
      assert.deepEqual(e.facts.referencedBy, [{ image: 'acme/prod/b', manifest: b.digest, kind: 'layer' }]);
      const gone = await r.gc.explain(own.digest);
      assert.match(gone.verdict, /deleted/);
      assert.equal(r.gc.stats.bytesReclaimed, own.size + a.config.size);
    });

    withNode('within the grace period nothing goes; a dry run changes nothing', async ({ r, store }) => {
      const l = await blob(r, 'acme/prod/a', 'layer');
      await image(r, 'acme/prod/a', 'v1', [l]);
      await r.manifests.delete('acme/prod/a', 'v1');
      const dry = await r.gc.run({ dryRun: true });
      assert.equal(dry.dryRun, true);
      assert.ok(dry.outcomes.some((o) => o.kind === 'manifest' && o.action === 'postponed'), JSON.stringify(dry.outcomes));
      const report = await r.gc.run();
      assert.equal(report.deleted.manifests + report.deleted.blobs, 0);
      assert.ok(report.outcomes.every((o) => o.action !== 'deleted'));
      assert.ok(await store.stat(l.digest));
      const job = (await r.jobs.store.list({ kind: 'gc.manifest', limit: 5 }))[0]!;
      assert.ok(job.runAfter > Date.now() + 3_500_000, 'postponed to the end of the grace period');
      assert.equal(job.attempts, 0, 'a postponement is not a failed attempt');
    }, 3_600_000);

    withNode('a dry run with grace 0 lists what would go and deletes nothing', async ({ r, store }) => {
      const l = await blob(r, 'acme/prod/a', 'orphan layer');
      const dry = await r.gc.run({ dryRun: true });
      assert.ok(dry.outcomes.some((o) => o.digest === l.digest && o.action === 'would-delete'), JSON.stringify(dry.outcomes));
      assert.ok(await store.stat(l.digest));
      assert.ok(await r.blobs.stat('acme/prod/a', l.digest));
      const real = await r.gc.run();
      assert.ok(real.outcomes.some((o) => o.digest === l.digest && o.action === 'deleted'));
    });

    withNode('index children stay while the index lives; referrers stay with their subject and go with it', async ({ r, store }) => {
      const name = 'acme/prod/multi';
      const c1 = await image(r, name, 'tmp1');
      const c2 = await image(r, name, 'tmp2');
      await r.manifests.delete(name, 'tmp1'); // untagged now: only the index keeps them
      await r.manifests.delete(name, 'tmp2');
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [c1, c2].map((c) => ({ mediaType: OCI_MANIFEST, digest: c.digest, size: c.size })) }));
      await r.manifests.put(name, 'latest', index, OCI_INDEX);
      // A signature on the index and an SBOM on a child: untagged referrers.
      const empty = await blob(r, name, '{}');
      const sigLayer = await blob(r, name, 'signature bytes');
      const sig = manifestOf(empty, [sigLayer], { artifactType: 'application/vnd.dev.cosign.simplesigning.v1+json', subject: { mediaType: OCI_INDEX, digest: sha(index), size: index.length } });
      await r.manifests.put(name, sha(sig), sig, OCI_MANIFEST);
      const sbomLayer = await blob(r, name, 'sbom bytes');
      const sbom = manifestOf(empty, [sbomLayer], { artifactType: 'application/spdx+json', subject: { mediaType: OCI_MANIFEST, digest: c1.digest, size: c1.size } });
      await r.manifests.put(name, sha(sbom), sbom, OCI_MANIFEST);

      let report = await r.gc.run();
      assert.equal(report.deleted.manifests + report.deleted.blobs, 0, JSON.stringify(report.outcomes.filter((o) => o.action === 'deleted')));
      assert.match((await r.gc.explain(c1.digest)).verdict, /child of index/);
      assert.match((await r.gc.explain(sha(sig))).verdict, /referrer of/);

      await r.manifests.delete(name, 'latest');
      report = await r.gc.run();
      assert.equal(report.deleted.manifests, 5, JSON.stringify(report.outcomes)); // index, 2 children, 2 referrers
      for (const d of [c1.config.digest, c2.config.digest, sigLayer.digest, sbomLayer.digest, empty.digest]) {
        assert.equal(await store.stat(d), undefined, `blob ${d} deleted`);
      }
      assert.deepEqual((await r.manifests.referrers(name, c1.digest)).manifests, []);
    });

    withNode('HEAD → GC → manifest PUT: MANIFEST_BLOB_UNKNOWN, then a re-upload works', async ({ r, store }) => {
      const name = 'acme/prod/app';
      const l = await blob(r, name, 'layer pushed, manifest late');
      const config = await blob(r, name, '{"late":true}');
      assert.ok(await r.blobs.stat(name, l.digest)); // the client's HEAD
      await r.gc.run();
      assert.equal(await store.stat(l.digest), undefined, 'collected with grace 0');
      const bytes = manifestOf(config, [l]);
      await assert.rejects(r.manifests.put(name, 'v1', bytes, OCI_MANIFEST), (e: unknown) => e instanceof RegistryError && e.code === 'MANIFEST_BLOB_UNKNOWN');
      await blob(r, name, l.data);
      await blob(r, name, config.data);
      await r.manifests.put(name, 'v1', bytes, OCI_MANIFEST);
      const got = await r.blobs.stat(name, l.digest);
      const back: Buffer[] = [];
      for await (const c of await r.blobs.open(l.digest, undefined, got.generation)) back.push(c as Buffer);
      assert.deepEqual(Buffer.concat(back), l.data);
      assert.equal(got.generation, 1, 'stored again as the next generation after the tombstone');
    });

    withNode('a re-upload of a digest being swept keeps its new bytes', async ({ r, store, meta }, { db }) => {
      const name = 'acme/prod/app';
      const l = await blob(r, name, 'about to be swept');
      const job = (await r.jobs.store.findJob('gc.blob', l.digest))!;
      // GC decided (row `deleting`), but has not deleted the bytes yet…
      const { gc } = await db.open();
      const d = await gc.decideBlob(l.digest, { now: Date.now(), graceMs: 0, enqueuedAt: job.enqueuedAt, dryRun: false });
      assert.deepEqual(d, { action: 'sweep', generation: 0, size: l.size });
      // …when the client uploads the same digest again.
      await blob(r, name, l.data);
      assert.deepEqual(await meta.findBlobState(l.digest), { state: 'live', generation: 1, size: l.size });
      // The sweep goes on: it deletes exactly generation 0 and leaves the live row alone.
      await store.delete(l.digest, 0);
      assert.equal(await gc.finishBlob(l.digest, 0), false);
      const back: Buffer[] = [];
      for await (const c of await r.blobs.open(l.digest)) back.push(c as Buffer);
      assert.deepEqual(Buffer.concat(back), l.data, 'the re-uploaded bytes are intact');
      const cfg = await blob(r, name, '{}');
      await r.manifests.put(name, 'v1', manifestOf(cfg, [l]), OCI_MANIFEST);
      assert.equal((await r.gc.run()).deleted.blobs, 0);
    });

    withNode('race: manifest PUTs while GC decides never leave a manifest naming missing bytes', async ({ r, store }) => {
      const name = 'acme/prod/race';
      for (let i = 0; i < 12; i++) {
        const l = await blob(r, name, `race layer ${i} ${Math.random()}`);
        const config = await blob(r, name, `{"i":${i},"r":${Math.random()}}`);
        const bytes = manifestOf(config, [l]);
        const [put] = await Promise.allSettled([r.manifests.put(name, `t${i}`, bytes, OCI_MANIFEST), r.gc.run()]);
        if (put.status === 'fulfilled') {
          for (const d of [l.digest, config.digest]) {
            const b = await r.blobs.stat(name, d);
            assert.ok(await store.stat(d, b.generation), `manifest t${i} names ${d}: its bytes must be there`);
          }
        } else {
          assert.ok(put.reason instanceof RegistryError && put.reason.code === 'MANIFEST_BLOB_UNKNOWN', String(put.reason));
          await assert.rejects(r.manifests.get(name, `t${i}`), { code: 'MANIFEST_UNKNOWN' });
        }
      }
      await r.gc.run();
      // Everything still tagged pulls with all its blobs.
      for (const tag of (await r.manifests.listTags(name, 100)).items) {
        const m = JSON.parse((await r.manifests.get(name, tag)).payload.toString()) as { config: { digest: string }; layers: { digest: string }[] };
        for (const d of [m.config.digest, ...m.layers.map((x) => x.digest)]) {
          const b = await r.blobs.stat(name, d);
          assert.ok(await store.stat(d, b.generation), `${tag}: ${d}`);
        }
      }
    });

    withNode('immutable tags: moving or deleting a matching tag is DENIED, creating one is not; exceptions apply', async ({ r, access, lifecycle }) => {
      await image(r, 'acme/prod/app', 'seed');
      const repo = (await access.findRepository('acme', 'prod'))!;
      await lifecycle.saveRepositoryLifecycle(repo.id, { immutableTags: 'v*,!*-dev' });
      const a = await image(r, 'acme/prod/app', 'v1');
      await image(r, 'acme/prod/app', 'v1'.concat('.1'));
      const denied = (e: unknown) => e instanceof RegistryError && e.code === 'DENIED' && /immutable/.test(e.message);
      const b = await image(r, 'acme/prod/app', 'scratch');
      await assert.rejects(r.manifests.put('acme/prod/app', 'v1', b.bytes, OCI_MANIFEST), denied);
      assert.equal((await r.manifests.get('acme/prod/app', 'v1')).digest, a.digest, 'tag not moved');
      await r.manifests.put('acme/prod/app', 'v1', a.bytes, OCI_MANIFEST); // same manifest again: no move
      await image(r, 'acme/prod/app', 'v2-dev');
      await image(r, 'acme/prod/app', 'v2-dev'); // an exception moves freely
      await assert.rejects(r.manifests.delete('acme/prod/app', 'v1'), denied);
      await assert.rejects(r.manifests.delete('acme/prod/app', a.digest), denied, 'deleting the manifest would delete the tag');
      await r.manifests.delete('acme/prod/app', 'v2-dev');
      await r.manifests.delete('acme/prod/app', 'scratch');
    });

    withNode('quotas: charged at manifest PUT for blobs new to the repository, DENIED past the limit, released by delete and GC', async ({ r, access, lifecycle }) => {
      const name = 'acme/q/app';
      const big = await blob(r, name, Buffer.alloc(6000, 1));
      await image(r, name, 'first', [big]);
      const repo = (await access.findRepository('acme', 'q'))!;
      const used = await lifecycle.usage({ repositoryId: repo.id });
      assert.ok(used >= 6000 && used < 6100, `usage ${used}`);
      await lifecycle.saveRepositoryLifecycle(repo.id, { quotaBytes: 10_000 });
      // Re-using a blob already charged costs nothing (only the new config counts); uploads alone are never charged.
      const again = await image(r, name, 'again', [big]);
      assert.equal(await lifecycle.usage({ repositoryId: repo.id }), used + again.config.size);
      const charged = used + again.config.size;
      const more = await blob(r, name, Buffer.alloc(5000, 2));
      assert.equal(await lifecycle.usage({ repositoryId: repo.id }), charged, 'an upload alone is not charged');
      await assert.rejects(image(r, name, 'second', [more]), (e: unknown) => e instanceof RegistryError && e.code === 'DENIED' && /quota of acme\/q exceeded/.test(e.message));
      await r.manifests.delete(name, 'first');
      await r.manifests.delete(name, 'again');
      await r.gc.run();
      assert.equal(await lifecycle.usage({ repositoryId: repo.id }), 0, 'released by delete and GC');
      await blob(r, name, more.data);
      await image(r, name, 'second', [more]);
      await lifecycle.saveOwnerQuota(repo.ownerId, 1000);
      const tooBig = await blob(r, 'acme/other/app', Buffer.alloc(2000, 3));
      await assert.rejects(image(r, 'acme/other/app', 'x', [tooBig]), (e: unknown) => e instanceof RegistryError && e.code === 'DENIED' && /quota of acme exceeded/.test(e.message));
    });

    withNode('retention: keep the N most recently pushed of the selected tags; immutable and unselected tags stay; a moved tag is not deleted', async ({ r, access, lifecycle, meta }) => {
      const name = 'acme/ret/app';
      const admin = { kind: 'user', userId: 0, username: 'admin', siteAdmin: true } as const;
      const pushed: Record<string, string> = {};
      for (const tag of ['v1', 't1', 't2', 't3', 't4', 't5', 'latest']) {
        pushed[tag] = (await image(r, name, tag)).digest;
        await new Promise((res) => setTimeout(res, 5)); // distinct push times
      }
      const repo = (await access.findRepository('acme', 'ret'))!;
      await lifecycle.saveRepositoryLifecycle(repo.id, { immutableTags: 'v*' });
      await r.retention.set(admin, 'acme', 'ret', { rules: [{ tags: '*', keep: { mostRecentlyPushed: 3 } }, { tags: 't*', keep: { pushedWithin: '1d' } }] });
      await assert.rejects(r.retention.set(admin, 'acme', 'ret', { rules: [{ keep: { pushedWithin: 'soon' } }] }), /pushedWithin/);
      // Rule 2 keeps every t* (pushed within a day): only rule 1 deletes, and only what no rule keeps.
      let plan = await r.retention.plan(admin, 'acme', 'ret');
      assert.deepEqual(plan.entries.filter((e) => e.action === 'delete').map((e) => e.tag), []);
      await r.retention.set(admin, 'acme', 'ret', { rules: [{ tags: '*', keep: { mostRecentlyPushed: 3 } }] });
      plan = await r.retention.plan(admin, 'acme', 'ret');
      const by = Object.fromEntries(plan.entries.map((e) => [e.tag, `${e.action}: ${e.reason}`]));
      assert.match(by.v1!, /^keep: immutable tag/);
      assert.match(by.latest!, /^keep: rule 1: one of the 3 most recently pushed/);
      assert.match(by.t5!, /^keep/);
      assert.match(by.t4!, /^keep/);
      for (const t of ['t1', 't2', 't3']) assert.match(by[t]!, /^delete: selected by rule 1/);
      // The race: a tag moved after the plan is not deleted by it.
      const img = (await meta.findImage(name))!;
      assert.equal(await meta.removeTag(img.id, 't1', 'sha256:' + '0'.repeat(64)), false);
      const run = await r.retention.run(admin, 'acme', 'ret');
      assert.equal(run.deleted, 3);
      assert.deepEqual((await r.manifests.listTags(name, 100)).items, ['latest', 't4', 't5', 'v1']);
      const gc = await r.gc.run();
      assert.equal(gc.deleted.manifests, 3, 'the untagged manifests go through GC');
      // A push queues a run of the repository's rules (batched a minute later).
      await image(r, name, 't6');
      const job = await r.jobs.store.findJob('retention.run', String(repo.id));
      assert.ok(job && job.runAfter > Date.now() + 30_000);
    });

    if (opts.multiNode) withNode('two nodes collecting at once delete each blob once', async (a, { db, dir }) => {
      const b = await node(db, dir);
      try {
        const digests: string[] = [];
        for (let i = 0; i < 30; i++) digests.push((await blob(a.r, 'acme/prod/app', `orphan ${i}`)).digest);
        const [ra, rb] = await Promise.all([a.r.gc.run(), b.r.gc.run()]);
        assert.equal(ra.deleted.blobs + rb.deleted.blobs, 30, `${ra.deleted.blobs} + ${rb.deleted.blobs}`);
        for (const d of digests) assert.equal(await a.store.stat(d), undefined);
        assert.deepEqual(await a.r.jobs.store.list({ limit: 10 }), [], 'every review done');
      } finally {
        await b.close();
      }
    });
  });
}
