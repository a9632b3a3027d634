/**
 * Two pushes of one tag at once (the race the soak found): exactly one wins, the manifest it
 * displaced is queued for GC review, and an immutable tag is never moved — on SQLite and
 * PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ADMIN, OCI_CONFIG, OCI_MANIFEST, apiOk, openBerth, sha256, type EventsBerth } from '../events/helpers.ts';

async function manifestBytes(b: EventsBerth, image: string): Promise<Buffer> {
  const config = Buffer.from(JSON.stringify({ n: randomBytes(6).toString('hex') }));
  const res = await b.app.inject({ method: 'POST', url: `/v2/${image}/blobs/uploads/?digest=${sha256(config)}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: config });
  assert.equal(res.statusCode, 201);
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length }, layers: [] }));
}

const put = (b: EventsBerth, image: string, tag: string, bytes: Buffer) =>
  b.app.inject({ method: 'PUT', url: `/v2/${image}/manifests/${tag}`, headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, payload: bytes });

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`concurrent pushes of one tag (${dialect})`, () => {
    let b: EventsBerth;
    before(async () => {
      b = await openBerth({ postgres: dialect === 'postgres' });
      await b.berth.registry.jobs.stop(); // reviews stay queued for the test to see
      await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    });
    after(() => b.close());

    test('the manifest a concurrent push displaced is queued for review', async () => {
      const image = 'acme/race/app';
      for (let i = 0; i < 8; i++) {
        const [x, y] = [await manifestBytes(b, image), await manifestBytes(b, image)];
        const [rx, ry] = await Promise.all([put(b, image, `t${i}`, x), put(b, image, `t${i}`, y)]);
        assert.deepEqual([rx.statusCode, ry.statusCode], [201, 201], rx.body + ry.body);
        const tagged = (await b.app.inject({ method: 'HEAD', url: `/v2/${image}/manifests/t${i}`, headers: { authorization: ADMIN } })).headers['docker-content-digest'];
        const loser = tagged === sha256(x) ? sha256(y) : sha256(x);
        const img = (await b.berth.meta.findImage(image))!;
        const review = await b.berth.registry.gc.explain(loser);
        assert.ok(review.reviews.some((r) => r.kind === 'gc.manifest' && r.subject === `${img.id}@${loser}`), `no review of ${loser} (round ${i})`);
      }
    });

    test('an immutable tag pushed twice at once is created by one and refused to the other', async () => {
      const image = 'acme/lock/app';
      await put(b, image, 'seed', await manifestBytes(b, image));
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/lock/lifecycle', ADMIN, { immutableTags: 'v*' }, 200);
      for (let i = 0; i < 8; i++) {
        const [x, y] = [await manifestBytes(b, image), await manifestBytes(b, image)];
        const codes = (await Promise.all([put(b, image, `v${i}`, x), put(b, image, `v${i}`, y)])).map((r) => r.statusCode).sort();
        assert.deepEqual(codes, [201, 403], `round ${i}`);
      }
    });
  });
}
