/**
 * Storage usage per owner ([GET /api/v1/owners/:owner/usage]) and its recomputation from the
 * manifests themselves ([POST /api/v1/quota/recompute], `berth quota recompute`), on SQLite
 * and PostgreSQL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Kysely } from 'kysely';
import { ADMIN, apiOk, openBerth, pushImage, setupTenancy, type EventsBerth, type Tenancy } from '../events/helpers.ts';

type Check = { scope: string; usageBytes: number; recomputedBytes: number; drift: number; problems?: string[] };

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`storage usage (${dialect})`, () => {
    let b: EventsBerth;
    let ten: Tenancy;
    before(async () => {
      b = await openBerth({ postgres: dialect === 'postgres' });
      ten = await setupTenancy(b.app);
    });
    after(() => b.close());

    test('per repository and owner; the owner total only for those who manage it', async () => {
      const one = await pushImage(b.app, 'acme/prod/app', 'v1');
      await pushImage(b.app, 'acme/dev/app', 'v1');
      // The same image in a second repository: counted once in each, once in the owner.
      const res = await b.app.inject({ method: 'PUT', url: '/v2/acme/dev/copy/manifests/v1', headers: { authorization: ADMIN, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: one.bytes });
      assert.equal(res.statusCode, 404, 'blobs must be in the image first');
      const admin = await apiOk(b.app, 'GET', '/api/v1/owners/acme/usage', ADMIN, undefined, 200);
      const prod = admin.repositories.find((r: { repository: string }) => r.repository === 'prod').usageBytes;
      const dev = admin.repositories.find((r: { repository: string }) => r.repository === 'dev').usageBytes;
      assert.ok(prod > 0 && dev > 0);
      assert.equal(admin.usageBytes, prod + dev);
      const carol = await apiOk(b.app, 'GET', '/api/v1/owners/acme/usage', ten.carol, undefined, 200);
      assert.deepEqual(carol, { owner: 'acme', quotaBytes: null, usageBytes: null, repositories: [{ repository: 'prod', usageBytes: prod }] });
    });

    test('recompute agrees with usage, and reports the drift of a lost reference', async () => {
      const ok = await apiOk(b.app, 'POST', '/api/v1/quota/recompute', ADMIN, {}, 200);
      assert.equal(ok.drifted, 0, JSON.stringify(ok));
      assert.deepEqual(ok.scopes.map((s: Check) => s.scope).filter((s: string) => s.startsWith('acme')).sort(), ['acme', 'acme/dev', 'acme/prod']);
      const forbidden = await b.app.inject({ method: 'POST', url: '/api/v1/quota/recompute', headers: { authorization: ten.bob, 'content-type': 'application/json' }, payload: {} });
      assert.equal(forbidden.statusCode, 403);
      const missing = await b.app.inject({ method: 'POST', url: '/api/v1/quota/recompute', headers: { authorization: ADMIN, 'content-type': 'application/json' }, payload: { target: 'acme/nope' } });
      assert.equal(missing.statusCode, 404);
      // A reference lost from the stored refs (what usage is computed from).
      const db = (b.berth.meta as unknown as { db: Kysely<any> }).db;
      const ref = await db.selectFrom('manifest_refs').innerJoin('manifests', 'manifests.id', 'manifest_refs.manifest_id').innerJoin('images', 'images.id', 'manifests.image_id').select(['manifest_refs.manifest_id', 'manifest_refs.child_digest']).where('images.name', '=', 'acme/prod/app').where('manifest_refs.kind', '=', 'layer').executeTakeFirstOrThrow();
      await db.deleteFrom('manifest_refs').where('manifest_id', '=', ref.manifest_id).where('child_digest', '=', ref.child_digest).execute();
      const r = await apiOk(b.app, 'POST', '/api/v1/quota/recompute', ADMIN, { target: 'acme/prod' }, 200);
      assert.equal(r.drifted, 1);
      const prod = r.scopes[0] as Check;
      assert.equal(prod.scope, 'acme/prod');
      assert.equal(prod.drift, 64, 'the lost layer is 64 bytes');
      assert.match(prod.problems![0]!, /stored references give \d+ bytes, the manifests themselves \d+/);
    });
  });
}
