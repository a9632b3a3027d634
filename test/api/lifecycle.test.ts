/**
 * Cross-cutting behaviour: restart (state lives in the data folder, upload hashes are
 * recomputed), upload expiry, concurrent requests, and deep image names end to end.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  assertOciError,
  nextLink,
  openBerth,
  pushArtifact,
  pushBlob,
  pushImage,
  putManifest,
  sha256,
  sha512,
  startBerth,
  startUpload,
  withQuery,
} from './helpers.ts';

const NAME = 'acme/prod/app';

describe('[restart] state survives in the data folder', () => {
  it('blobs, manifests and tags are served after a restart', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-restart-'));
    try {
      let b = await openBerth(dir);
      const img = await pushImage(b.app, NAME, 'v1');
      await b.close();
      b = await openBerth(dir);
      const m = await b.app.inject({ method: 'GET', url: `/v2/${NAME}/manifests/v1` });
      assert.equal(m.statusCode, 200);
      assert.deepEqual(m.rawPayload, img.bytes);
      const blob = await b.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${img.layers[0]!.digest}` });
      assert.equal(blob.statusCode, 200);
      await b.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const alg of ['sha256', 'sha512'] as const) {
    it(`an upload session continues after a restart (${alg}; hash recomputed from stored bytes)`, async () => {
      const dir = await mkdtemp(path.join(tmpdir(), 'berth-restart-'));
      try {
        let b = await openBerth(dir);
        const { location } = await startUpload(b.app, NAME);
        const first = randomBytes(100_000);
        const second = randomBytes(50_000);
        assert.equal((await b.app.inject({ method: 'PATCH', url: location, payload: first, headers: { 'content-type': 'application/octet-stream' } })).statusCode, 202);
        await b.close();
        b = await openBerth(dir);
        const st = await b.app.inject({ method: 'GET', url: location });
        assert.equal(st.statusCode, 204);
        assert.equal(st.headers.range, `0-${first.length - 1}`);
        const p = await b.app.inject({
          method: 'PATCH',
          url: location,
          payload: second,
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${first.length}-${first.length + second.length - 1}` },
        });
        assert.equal(p.statusCode, 202, p.body);
        const all = Buffer.concat([first, second]);
        const digest = alg === 'sha256' ? sha256(all) : sha512(all);
        const put = await b.app.inject({ method: 'PUT', url: withQuery(location, `digest=${digest}`) });
        assert.equal(put.statusCode, 201, put.body);
        const got = await b.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${digest}` });
        assert.deepEqual(got.rawPayload, all);
        await b.close();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('[upload expiry] registry.uploads.expire', () => {
  it('removes sessions started before the cutoff, with their data', async () => {
    const t = await startBerth();
    try {
      const old = await startUpload(t.app, NAME);
      await t.app.inject({ method: 'PATCH', url: old.location, payload: 'stale', headers: { 'content-type': 'application/octet-stream' } });
      const cutoff = Date.now() + 1;
      await new Promise((r) => setTimeout(r, 5));
      const fresh = await startUpload(t.app, NAME);
      assert.equal(await t.berth.registry.uploads.expire(cutoff), 1);
      assertOciError(await t.app.inject({ method: 'GET', url: old.location }), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.equal((await t.app.inject({ method: 'GET', url: fresh.location })).statusCode, 204);
      const files = await readdir(path.join(t.dir, 'storage', 'uploads'));
      assert.ok(!files.includes(old.id));
      assert.ok(files.includes(fresh.id));
    } finally {
      await t.close();
    }
  });
});

describe('[concurrency]', () => {
  it('parallel streamed PATCHes to one session are serialized, none lost', async () => {
    const t = await startBerth();
    try {
      const { location } = await startUpload(t.app, NAME);
      const parts = Array.from({ length: 8 }, (_, i) => Buffer.alloc(10_000, 0x41 + i));
      const results = await Promise.all(
        parts.map((p) => t.app.inject({ method: 'PATCH', url: location, payload: p, headers: { 'content-type': 'application/octet-stream' } })),
      );
      for (const r of results) assert.equal(r.statusCode, 202, r.body);
      const st = await t.app.inject({ method: 'GET', url: location });
      assert.equal(st.headers.range, `0-${8 * 10_000 - 1}`);
      // whatever the order, the digest is over the stored bytes: read them back via complete
      const stored = await t.berth.store.readUpload(String(st.headers['docker-upload-uuid']));
      const chunks: Buffer[] = [];
      for await (const c of stored) chunks.push(c as Buffer);
      const all = Buffer.concat(chunks);
      for (const p of parts) assert.ok(all.includes(p), 'every chunk is present whole');
      const put = await t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${sha256(all)}`) });
      assert.equal(put.statusCode, 201, put.body);
    } finally {
      await t.close();
    }
  });

  it('parallel chunks claiming the same offset: one wins, the others get 416', async () => {
    const t = await startBerth();
    try {
      const { location } = await startUpload(t.app, NAME);
      const results = await Promise.all(
        ['aaaa', 'bbbb', 'cccc'].map((p) =>
          t.app.inject({ method: 'PATCH', url: location, payload: p, headers: { 'content-type': 'application/octet-stream', 'content-range': '0-3' } }),
        ),
      );
      const codes = results.map((r) => r.statusCode).sort();
      assert.deepEqual(codes, [202, 416, 416]);
      assert.equal((await t.app.inject({ method: 'GET', url: location })).headers.range, '0-3');
    } finally {
      await t.close();
    }
  });

  it('parallel completes of one session: exactly one 201, the rest 404', async () => {
    const t = await startBerth();
    try {
      const { location } = await startUpload(t.app, NAME);
      await t.app.inject({ method: 'PATCH', url: location, payload: 'race', headers: { 'content-type': 'application/octet-stream' } });
      const results = await Promise.all(
        Array.from({ length: 4 }, () => t.app.inject({ method: 'PUT', url: withQuery(location, `digest=${sha256('race')}`) })),
      );
      const codes = results.map((r) => r.statusCode).sort();
      assert.deepEqual(codes, [201, 404, 404, 404]);
      assert.equal((await t.app.inject({ method: 'GET', url: `/v2/${NAME}/blobs/${sha256('race')}` })).body, 'race');
    } finally {
      await t.close();
    }
  });

  it('the same blob pushed in parallel to many new images', async () => {
    const t = await startBerth();
    try {
      const data = randomBytes(50_000);
      const names = Array.from({ length: 10 }, (_, i) => `owner${i}/repo/img`);
      const digests = await Promise.all(names.map((n) => pushBlob(t.app, n, data)));
      assert.ok(digests.every((d) => d === sha256(data)));
      for (const n of names) assert.equal(sha256((await t.app.inject({ method: 'GET', url: `/v2/${n}/blobs/${sha256(data)}` })).rawPayload), sha256(data));
    } finally {
      await t.close();
    }
  });

  it('the same manifest PUT in parallel under many tags', async () => {
    const t = await startBerth();
    try {
      const img = await pushImage(t.app, NAME, undefined);
      const tags = Array.from({ length: 20 }, (_, i) => `t${String(i).padStart(2, '0')}`);
      const results = await Promise.all(tags.map((tag) => putManifest(t.app, NAME, tag, img.bytes, OCI_MANIFEST)));
      for (const r of results) assert.equal(r.statusCode, 201, r.body);
      const list = (await t.app.inject({ method: 'GET', url: `/v2/${NAME}/tags/list` })).json() as { tags: string[] };
      assert.deepEqual(list.tags, tags);
    } finally {
      await t.close();
    }
  });
});

describe('[deep names] an OWNER/REPOSITORY/a/b/c image end to end', () => {
  it('uploads, manifests, tags, referrers, catalog and mount all work', async () => {
    const t = await startBerth();
    const deep = 'acme/prod/team/sub/app';
    try {
      const img = await pushImage(t.app, deep, 'v1');
      const res = await t.app.inject({ method: 'GET', url: `/v2/${deep}/manifests/v1` });
      assert.equal(res.statusCode, 200);
      assert.equal((await t.app.inject({ method: 'HEAD', url: `/v2/${deep}/blobs/${img.config.digest}` })).statusCode, 200);
      const tags = await t.app.inject({ method: 'GET', url: `/v2/${deep}/tags/list?n=1` });
      assert.deepEqual(tags.json(), { name: deep, tags: ['v1'] });
      assert.equal(nextLink(tags), undefined);
      const subject = { mediaType: OCI_MANIFEST, digest: img.digest, size: img.bytes.length };
      const art = await pushArtifact(t.app, deep, subject, 'application/x.test');
      const refs = await t.app.inject({ method: 'GET', url: `/v2/${deep}/referrers/${img.digest}` });
      assert.equal(refs.headers['content-type'], OCI_INDEX);
      assert.equal((refs.json() as { manifests: { digest: string }[] }).manifests[0]!.digest, art.digest);
      const mount = await t.app.inject({ method: 'POST', url: `/v2/acme/prod/app/blobs/uploads/?mount=${img.layers[0]!.digest}&from=${deep}` });
      assert.equal(mount.statusCode, 201);
      const cat = (await t.app.inject({ method: 'GET', url: '/v2/_catalog' })).json() as { repositories: string[] };
      assert.deepEqual(cat.repositories, ['acme/prod/app', deep]);
      // the shorter name 'acme/prod/team' is a different, unknown image
      assertOciError(await t.app.inject({ method: 'GET', url: '/v2/acme/prod/team/manifests/v1' }), 404, 'NAME_UNKNOWN');
    } finally {
      await t.close();
    }
  });

  it('images whose names look like route keywords', async () => {
    const t = await startBerth();
    try {
      for (const name of ['acme/blobs/uploads', 'acme/manifests/tags', 'acme/prod/blobs', 'acme/tags/list']) {
        const img = await pushImage(t.app, name, 'latest');
        const m = await t.app.inject({ method: 'GET', url: `/v2/${name}/manifests/latest` });
        assert.equal(m.statusCode, 200, `${name}: ${m.body}`);
        assert.deepEqual(m.rawPayload, img.bytes);
        const tl = await t.app.inject({ method: 'GET', url: `/v2/${name}/tags/list` });
        assert.deepEqual(tl.json(), { name, tags: ['latest'] });
        const b = await t.app.inject({ method: 'GET', url: `/v2/${name}/blobs/${img.config.digest}` });
        assert.equal(b.statusCode, 200, `${name} blob`);
      }
    } finally {
      await t.close();
    }
  });
});
