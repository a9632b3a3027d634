/**
 * The lifecycle soak (issue 15, bounded for CI): concurrent pushers (shared and fresh layers,
 * tags moved back and forth), deleters (untag, delete by digest) and garbage collection with a
 * zero grace period — the background workers and `gc.run` at once — for a few seconds. Then:
 * every still-tagged manifest pulls with every blob byte for byte, and once GC settles the
 * store holds exactly the blobs those manifests name (the reconciler agrees). On fs + SQLite,
 * fs + PostgreSQL and S3 (Ceph) + PostgreSQL. `BERTH_SOAK_MS` makes it longer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { ADMIN, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, apiOk, sha256 } from '../events/helpers.ts';
import { openLifecycleBerth, type LifecycleBerth } from './helpers.ts';

const SOAK_MS = Number(process.env.BERTH_SOAK_MS ?? 4000);
const IMAGES = ['acme/soak/a', 'acme/soak/b'];
const TAGS = ['t0', 't1', 't2', 't3'];
/** Codes a push may meet while GC runs with a zero grace period: the client pushes again. */
const RETRYABLE = new Set(['MANIFEST_BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UNKNOWN']);

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

for (const combo of [
  { name: 'fs + sqlite', postgres: false, s3: false, graceSeconds: 0 },
  // With no grace at all GC takes a blob whenever a collection falls between its upload and its
  // manifest; the slower each request (PostgreSQL round trips, S3's several calls per blob) the
  // likelier, until hardly a push lands. A second or two is the smallest grace these stores
  // let three pushers work under; the races are the same.
  { name: 'fs + postgres', postgres: true, s3: false, graceSeconds: 1 },
  { name: 's3 + postgres', postgres: true, s3: true, graceSeconds: 2 },
]) {
  describe(`lifecycle soak (${combo.name})`, () => {
    let l: LifecycleBerth;
    before(async () => {
      l = await openLifecycleBerth({ postgres: combo.postgres, s3: combo.s3, gc: { graceSeconds: combo.graceSeconds }, jobs: { pollIntervalMs: 200, concurrency: 2 } });
      await apiOk(l.berth.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    });
    after(() => l.close());

    test(`pushes, tag moves, deletes and GC for ${SOAK_MS} ms: tagged images intact, nothing unreferenced left`, async () => {
      const app = l.berth.app;
      const bytesOf = new Map<string, Buffer>(); // every blob ever pushed, by digest
      const shared = Array.from({ length: 3 }, () => randomBytes(2048)); // layers many images share
      const counts = { pushes: 0, retried: 0, untags: 0, deletes: 0, gcRuns: 0 };
      const unexpected: string[] = [];
      const deadline = Date.now() + SOAK_MS;

      const check = (what: string, res: { statusCode: number; body: string }, ok: number[]): boolean => {
        if (ok.includes(res.statusCode)) return true;
        const code = (JSON.parse(res.body || '{}') as { errors?: { code: string }[] }).errors?.[0]?.code ?? '';
        if (res.statusCode < 500 && RETRYABLE.has(code)) {
          counts.retried++;
          return false;
        }
        if (!(what.startsWith('delete') && res.statusCode === 404)) unexpected.push(`${what}: ${res.statusCode} ${res.body.slice(0, 200)}`);
        return false;
      };

      const pusher = async () => {
        while (Date.now() < deadline) {
          const image = pick(IMAGES);
          const layers = [pick(shared), randomBytes(1024 + Math.floor(Math.random() * 4096))];
          const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: randomBytes(4).toString('hex') }));
          const manifest = {
            schemaVersion: 2,
            mediaType: OCI_MANIFEST,
            config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
            layers: layers.map((b) => ({ mediaType: OCI_LAYER, digest: sha256(b), size: b.length })),
          };
          // As a client does: push the blobs, then the manifest; on MANIFEST_BLOB_UNKNOWN (the
          // zero grace period let GC take a blob meanwhile) push what is missing and try again.
          let missing = [config, ...layers];
          for (let attempt = 0; attempt < 5 && missing.length; attempt++) {
            let ok = true;
            for (const blob of missing) {
              bytesOf.set(sha256(blob), blob);
              const res = await app.inject({ method: 'POST', url: `/v2/${image}/blobs/uploads/?digest=${sha256(blob)}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: blob });
              ok &&= check(`blob ${image}`, res, [201]);
            }
            if (!ok) continue;
            const res = await app.inject({ method: 'PUT', url: `/v2/${image}/manifests/${pick(TAGS)}`, headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, payload: JSON.stringify(manifest) });
            if (check(`manifest ${image}`, res, [201])) {
              counts.pushes++;
              missing = [];
            } else {
              const gone = new Set((JSON.parse(res.body) as { errors?: { detail?: { missing?: string[] } }[] }).errors?.[0]?.detail?.missing ?? []);
              missing = [config, ...layers].filter((b) => gone.has(sha256(b)));
            }
          }
        }
      };

      const deleter = async () => {
        while (Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 40));
          const image = pick(IMAGES);
          const list = await app.inject({ url: `/v2/${image}/tags/list`, headers: { authorization: ADMIN } });
          const present = list.statusCode === 200 ? ((JSON.parse(list.body) as { tags: string[] | null }).tags ?? []) : [];
          if (!present.length) continue;
          const tag = pick(present);
          if (Math.random() < 0.5) {
            if (check(`delete tag ${image}:${tag}`, await app.inject({ method: 'DELETE', url: `/v2/${image}/manifests/${tag}`, headers: { authorization: ADMIN } }), [202])) counts.untags++;
            continue;
          }
          const head = await app.inject({ method: 'HEAD', url: `/v2/${image}/manifests/${tag}`, headers: { authorization: ADMIN } });
          const digest = head.headers['docker-content-digest'];
          if (head.statusCode !== 200 || typeof digest !== 'string') continue;
          if (check(`delete manifest ${image}@${digest}`, await app.inject({ method: 'DELETE', url: `/v2/${image}/manifests/${digest}`, headers: { authorization: ADMIN } }), [202])) counts.deletes++;
        }
      };

      const collector = async () => {
        while (Date.now() < deadline) {
          const r = await l.berth.registry.gc.run();
          if (r.failed) unexpected.push(`gc run: ${r.failed} failed`);
          counts.gcRuns++;
          await new Promise((res) => setTimeout(res, 150));
        }
      };

      await Promise.all([pusher(), pusher(), pusher(), deleter(), collector()]);
      assert.deepEqual(unexpected, [], JSON.stringify(counts));
      assert.ok(counts.pushes >= 3 && counts.gcRuns >= 1 && counts.untags + counts.deletes >= 1, JSON.stringify(counts));
      if (process.env.SOAK_DEBUG) console.log(combo.name, JSON.stringify(counts));

      // Every tagged manifest pulls, with every blob byte for byte.
      const named = new Set<string>();
      let tagged = 0;
      for (const image of IMAGES) {
        const list = await app.inject({ url: `/v2/${image}/tags/list`, headers: { authorization: ADMIN } });
        const tags = list.statusCode === 200 ? ((JSON.parse(list.body) as { tags: string[] | null }).tags ?? []) : [];
        for (const tag of tags) {
          const m = await app.inject({ url: `/v2/${image}/manifests/${tag}`, headers: { authorization: ADMIN, accept: OCI_MANIFEST } });
          assert.equal(m.statusCode, 200, `${image}:${tag}: ${m.body}`);
          const parsed = JSON.parse(m.body) as { config: { digest: string }; layers: { digest: string }[] };
          for (const d of [parsed.config.digest, ...parsed.layers.map((x) => x.digest)]) {
            const blob = await app.inject({ url: `/v2/${image}/blobs/${d}`, headers: { authorization: ADMIN } });
            assert.equal(blob.statusCode, 200, `${image}:${tag} blob ${d}: ${blob.body.slice(0, 200)}`);
            assert.ok(blob.rawPayload.equals(bytesOf.get(d)!), `${image}:${tag} blob ${d} differs from what was pushed`);
            named.add(d);
          }
          tagged++;
        }
      }

      // GC settles (the cascade of the last deletes), then storage holds exactly what is named.
      // The background workers stop (finishing what they hold) so that `gc.run` sees every review.
      await l.berth.registry.jobs.stop();
      await new Promise((r) => setTimeout(r, combo.graceSeconds * 1000 + 100));
      for (let i = 0; ; i++) {
        await l.berth.registry.gc.run();
        const queued = ((await l.berth.registry.gc.status()).reviews as { count: number }[]).reduce((n, r) => n + r.count, 0);
        if (!queued) break;
        assert.ok(i < 20, `GC does not settle: ${queued} reviews still queued`);
        await new Promise((r) => setTimeout(r, combo.graceSeconds * 1000 + 100)); // a cascade's next level waits its grace
      }
      const stored: string[] = [];
      for await (const b of l.berth.store.listBlobs()) stored.push(`${b.digest}/${b.generation}`);
      const live = await Promise.all([...named].map(async (d) => `${d}/${(await l.berth.meta.findBlobState(d))!.generation}`));
      const extra = await Promise.all(stored.filter((x) => !live.includes(x)).map(async (x) => `${x} ${JSON.stringify(await l.berth.meta.findBlobState(x.split('/')[0]!))}`));
      assert.deepEqual(stored.sort(), live.sort(), `after GC settled (${tagged} tags, ${JSON.stringify(counts)}); not named: ${extra.join(', ')}`);
      const rec = await l.berth.registry.reconciler.run();
      assert.deepEqual({ orphans: rec.totals.orphans, missing: rec.totals.missing }, { orphans: 0, missing: 0 });
    });
  });
}
