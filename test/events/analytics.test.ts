/**
 * Download analytics with the real skopeo client (/usr/bin/skopeo; missing skopeo fails the
 * test, it never skips): an image pushed once, pulled with three different credentials — the
 * administrator's password once, a user's API key twice, an entitlement token three times —
 * then GET /api/v1/repos/:owner/:repo/analytics answers the right counts per token, actor, tag,
 * day and client, with the bytes of manifests and blobs; and who may ask.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildImage, type BuiltImage } from '../helpers/oci-layout.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';
import { tempDir } from '../helpers/e2e.ts';
import { ADMIN, ADMIN_PASSWORD, api, apiOk, type EventsBerth, metricValue, openBerth, setupTenancy, type Tenancy } from './helpers.ts';

describe('download analytics (skopeo)', () => {
  let b: EventsBerth;
  let t: Tenancy;
  let sk: Skopeo;
  let image: BuiltImage;
  let keySecret: string;
  let tokenSecret: string;
  let manifestGets = 0;

  before(async () => {
    b = await openBerth({ listen: true });
    t = await setupTenancy(b.app);
    sk = await createSkopeo();
    keySecret = Buffer.from(t.carolKey.slice('Basic '.length), 'base64').toString().split(':')[1]!;
    tokenSecret = Buffer.from(t.token.slice('Basic '.length), 'base64').toString().split(':')[1]!;
  });
  after(async () => {
    await sk?.cleanup();
    await b?.close();
  });

  it('counts pulls per token, actor, tag, day and client after skopeo pulls with three credentials', async (tc) => {
    const work = await tempDir(tc, 'analytics');
    image = await buildImage(path.join(work, 'src'), { layers: [{ size: 4096 }] }, 'v1');
    const ref = `docker://${b.url.slice('http://'.length)}/acme/prod/app:v1`;
    await sk.copy(`oci:${path.join(work, 'src')}:v1`, ref, ['--dest-creds', `admin:${ADMIN_PASSWORD}`]);

    const pulls: [string, number][] = [
      [`admin:${ADMIN_PASSWORD}`, 1],
      [`carol:${keySecret}`, 2],
      [`token:${tokenSecret}`, 3],
    ];
    let n = 0;
    for (const [creds, times] of pulls) {
      for (let i = 0; i < times; i++) await sk.copy(ref, `oci:${path.join(work, `out-${n++}`)}:v1`, ['--src-creds', creds]);
    }
    await b.flush();

    // Every successful manifest GET is one pull; the metrics count the same GETs independently.
    const metrics = (await b.app.inject({ url: '/metrics' })).body;
    manifestGets = metricValue(metrics, 'berth_http_requests_total{route="/v2/{name}/manifests/{reference}",method="GET",status="200"}') ?? 0;
    const perCopy = manifestGets / 6;
    tc.diagnostic(`skopeo copy GETs the manifest ${perCopy} time(s)`);
    assert.ok(Number.isInteger(perCopy) && perCopy >= 1, `each skopeo copy GETs the manifest the same number of times (${manifestGets} for 6 copies)`);

    // Every blob GET answered 200 is one `download` event with the blob's size: as many as the
    // metrics count (skopeo need not fetch every blob on every copy). A download is recorded
    // when its answer has ended on the server, which may be just after skopeo read the last byte.
    const blobGets = metricValue(metrics, 'berth_http_requests_total{route="/v2/{name}/blobs/{digest}",method="GET",status="200"}') ?? 0;
    assert.ok(blobGets >= 6, `each copy downloads at least the layer: ${blobGets} blob GETs for 6 copies`);
    let downloads: { digest: string; bytes: number; status: number }[] = [];
    for (let i = 0; i < 50; i++) {
      await b.flush();
      downloads = (await apiOk(b.app, 'GET', '/api/v1/events?repository=acme/prod&action=download&limit=1000', ADMIN, undefined, 200)).events;
      if (downloads.length >= blobGets) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(downloads.length, blobGets, 'one download event per blob GET served');
    const layer = image.layers[0]!.descriptor;
    const sizes = new Map([[layer.digest, layer.size], [image.config.digest, image.config.size]]);
    for (const e of downloads) assert.equal(e.bytes, sizes.get(e.digest), `a download of ${e.digest} counts its size`);
    assert.ok(downloads.some((e) => e.digest === layer.digest && e.status === 200), 'the layer download, with its size');
    const blobBytes = downloads.reduce((sum, e) => sum + e.bytes, 0);
    const a = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/analytics', t.bob, undefined, 200);
    assert.equal(a.repository, 'acme/prod');
    assert.equal(a.pulls, 6 * perCopy);
    // bytes: the manifest of each pull, and the blobs each copy downloaded (`download` events)
    assert.equal(a.bytes, 6 * perCopy * image.manifest.size + blobBytes, 'bytes served: manifests and blobs');
    const tokenRow = a.perToken.find((x: any) => x.credentialId === t.tokenId);
    assert.ok(tokenRow.bytes >= 3 * (perCopy * image.manifest.size + layer.size), 'per token: its manifests and blobs');
    assert.ok(a.perClient[0].bytes === a.bytes && a.perActor.reduce((s: number, x: any) => s + x.bytes, 0) === a.bytes);
    // the audit log leaves blob downloads out unless asked for
    const all = (await apiOk(b.app, 'GET', '/api/v1/events?repository=acme/prod&limit=1000', ADMIN, undefined, 200)).events;
    assert.ok(all.length > 0 && all.every((e: { action: string }) => e.action !== 'download'));
    assert.equal(a.uniqueClients, 1, 'all from 127.0.0.1');
    assert.equal(a.uniqueActors, 3);

    // per token: the API key and the entitlement token, by credential id, with their names
    assert.deepEqual(
      a.perToken.map((x: any) => [x.credentialId, x.kind, x.name, x.actor, x.pulls]),
      [
        [t.tokenId, 'entitlement', 'customer-a', `token:${t.tokenId}`, 3 * perCopy],
        [t.carolKeyId, 'api_key', 'ci', 'carol', 2 * perCopy],
      ],
    );
    assert.deepEqual(
      a.perActor.map((x: any) => [x.actorKind, x.actor, x.pulls]),
      [
        ['entitlement', `token:${t.tokenId}`, 3 * perCopy],
        ['api_key', 'carol', 2 * perCopy],
        ['user', 'admin', 1 * perCopy],
      ],
    );
    const tagged = a.perTag.find((x: any) => x.tag === 'v1');
    assert.deepEqual([tagged.image, tagged.pulls >= 6], ['acme/prod/app', true], 'pulls by tag');
    assert.deepEqual(a.topImages.map((x: any) => [x.image, x.pulls]), [['acme/prod/app', 6 * perCopy]]);
    assert.deepEqual(a.perClient.map((x: any) => [x.clientIp, x.pulls]), [['127.0.0.1', 6 * perCopy]]);
    assert.equal(a.perDay.length, 1);
    assert.equal(a.perDay[0].day, new Date().toISOString().slice(0, 10));
    assert.equal(a.perDay[0].pulls, 6 * perCopy);

    // the pull events carry skopeo's user agent and the token's credential
    const ev = (await apiOk(b.app, 'GET', `/api/v1/events?repository=acme/prod&action=pull&actor=token:${t.tokenId}`, ADMIN, undefined, 200)).events;
    assert.equal(ev.length, 3 * perCopy);
    assert.match(ev[0].userAgent, /skopeo|containers/i);
    assert.equal(ev[0].digest, image.manifest.digest);
  });

  it('answers for a time range: nothing before the pulls, everything in a range around them', async () => {
    const empty = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/analytics?until=2000-01-01&since=1999-01-01', t.bob, undefined, 200);
    assert.deepEqual([empty.pulls, empty.perDay, empty.perToken], [0, [], []]);
    const around = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/analytics?since=1h', t.bob, undefined, 200);
    assert.equal(around.pulls, manifestGets);
    assert.equal((await api(b.app, 'GET', '/api/v1/repos/acme/prod/analytics?since=2030-01-01&until=2029-01-01', t.bob)).status, 400);
    assert.equal((await api(b.app, 'GET', '/api/v1/repos/acme/prod/analytics?since=soon', t.bob)).status, 400);
  });

  it('only repository admins (and site admins) may see analytics', async () => {
    assert.equal((await api(b.app, 'GET', '/api/v1/repos/acme/prod/analytics', ADMIN)).status, 200);
    const cases: [string, string | undefined, number][] = [
      ['/api/v1/repos/acme/prod/analytics', t.carol, 403],
      ['/api/v1/repos/acme/prod/analytics', t.carolKey, 403],
      ['/api/v1/repos/acme/prod/analytics', t.token, 403],
      ['/api/v1/repos/acme/prod/analytics', t.dave, 404],
      ['/api/v1/repos/acme/dev/analytics', t.bob, 404],
      ['/api/v1/repos/acme/nope/analytics', ADMIN, 404],
      ['/api/v1/repos/acme/prod/analytics', undefined, 401],
    ];
    for (const [url, auth, status] of cases) {
      const r = await api(b.app, 'GET', url, auth);
      assert.equal(r.status, status, `${url} as ${auth ?? 'anonymous'}: ${r.res.body}`);
    }
  });
});
