/**
 * Upstreams that want credentials: docker-registry behind htpasswd (Basic), and a second Berth
 * (bearer-token flow). Also: the upstream API needs manage, passwords are encrypted at rest,
 * and pulling through needs only pull on the Berth repository.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SqlMetadataStore } from '../../src/metadata/sql/store.ts';
import { tempDir } from '../helpers/e2e.ts';
import { buildImage, reachableBlobs, resolveTag } from '../helpers/oci-layout.ts';
import { startBerth } from '../helpers/server.ts';
import { createSkopeo } from '../helpers/skopeo.ts';
import { ADMIN_PASSWORD, startDockerRegistry, startProxyBerth } from './helpers.ts';

test('htpasswd docker-registry upstream: Basic credentials encrypted at rest; API needs manage; a reader pulls through', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const up = await startDockerRegistry({ htpasswd: { username: 'mirror', password: 's3cret-upstream' } });
  t.after(() => up.stop());
  const pb = await startProxyBerth();
  t.after(() => pb.close());

  await sk.login(up.address, 'mirror', 's3cret-upstream');
  const src = await tempDir(t, 'proxy-auth-src');
  const img = await buildImage(src, { layers: [{ size: 200_000 }] }, 'v1');
  await sk.copy(`oci:${src}:v1`, `docker://${up.address}/team/app:1.0`, ['--preserve-digests']);

  // without credentials the upstream refuses: a clear error, not a hang
  await pb.addUpstream('nocreds', { url: up.url });
  const refused = await fetch(`${pb.url}/v2/acme/nocreds/team/app/manifests/1.0`, { headers: { authorization: pb.auth } });
  assert.equal(refused.status, 502);
  assert.match(((await refused.json()) as { errors: { message: string }[] }).errors[0]!.message, /credentials|401/);

  const created = await pb.addUpstream('mirror', { url: up.url, username: 'mirror', password: 's3cret-upstream' });
  assert.equal(created.hasPassword, true);
  assert.equal('password' in created, false);
  const db = (pb.berth.meta as SqlMetadataStore).db;
  const row = await db.selectFrom('upstreams').selectAll().where('id', '=', created.id as number).executeTakeFirstOrThrow();
  assert.ok(row.password_enc?.startsWith('sealed:v1:upstream-password:'), 'sealed under the key-encryption key');
  assert.ok(!row.password_enc!.includes('s3cret'), 'encrypted at rest');
  assert.equal(await pb.berth.accessStore.getSetting('proxy.secretKey'), undefined, 'no key in the database');

  // a reader: may pull through, may not see or change upstreams
  assert.equal((await pb.api('POST', '/api/v1/users', { username: 'reader', password: 'reader-password' })).status, 201);
  assert.equal((await pb.api('PUT', '/api/v1/repos/acme/mirror/members/reader', { role: 'read' })).status, 200);
  const readerAuth = `Basic ${Buffer.from('reader:reader-password').toString('base64')}`;
  for (const [method, url] of [
    ['GET', '/api/v1/repos/acme/mirror/upstreams'],
    ['POST', '/api/v1/repos/acme/mirror/upstreams'],
    ['DELETE', `/api/v1/repos/acme/mirror/upstreams/${created.id}`],
  ] as const) {
    const r = await fetch(`${pb.url}${url}`, {
      method,
      headers: { authorization: readerAuth, 'content-type': 'application/json' },
      ...(method === 'POST' ? { body: JSON.stringify({ url: 'http://x.example' }) } : {}),
    });
    assert.equal(r.status, 403, `${method} ${url}`);
  }
  const anon = await fetch(`${pb.url}/v2/acme/mirror/team/app/manifests/1.0`);
  assert.equal(anon.status, 401, 'anonymous: the usual challenge, nothing fetched');

  await sk.login(pb.address, 'reader', 'reader-password');
  const out = await tempDir(t, 'proxy-auth-out');
  await sk.copy(`docker://${pb.address}/acme/mirror/team/app:1.0`, `oci:${out}:x`, ['--preserve-digests']);
  assert.equal((await resolveTag(out, 'x')).digest, img.manifest.digest);
  assert.deepEqual(await reachableBlobs(out, await resolveTag(out, 'x')), await reachableBlobs(src, await resolveTag(src, 'v1')));

  // list and remove through the API
  const listed = await pb.api('GET', '/api/v1/repos/acme/mirror/upstreams');
  assert.deepEqual(
    listed.json.map((u: { url: string; username: string }) => [u.url, u.username]),
    [[up.url, 'mirror']],
  );
  assert.equal((await pb.api('DELETE', `/api/v1/repos/acme/mirror/upstreams/${created.id}`)).status, 204);
  assert.equal((await pb.api('DELETE', `/api/v1/repos/acme/mirror/upstreams/${created.id}`)).status, 404);
  assert.equal((await pb.api('POST', '/api/v1/repos/acme/mirror/upstreams', { url: 'ftp://x' })).status, 400);
  assert.equal((await pb.api('POST', '/api/v1/repos/acme/mirror/upstreams', { url: 'http://x.example', username: 'u' })).status, 400, 'username without password');
});

test('a second Berth as a token-auth upstream, with a remote prefix and priority fall-through', async (t) => {
  const sk = await createSkopeo();
  t.after(() => sk.cleanup());
  const upstream = await startBerth({ orgs: ['up'] });
  t.after(() => upstream.stop());
  const pb = await startProxyBerth();
  t.after(() => pb.close());

  const challenge = await fetch(`${upstream.url}/v2/`);
  assert.match(challenge.headers.get('www-authenticate') ?? '', /^Bearer /, 'the upstream uses the token flow');
  await sk.login(upstream.address, upstream.admin.username, upstream.admin.password);
  const src = await tempDir(t, 'proxy-berth-src');
  const img = await buildImage(src, { layers: [{ size: 150_000 }, { size: 20_000 }] }, 'v1');
  await sk.copy(`oci:${src}:v1`, `docker://${upstream.address}/up/base/app:2`, ['--preserve-digests']);

  // priority 0: an upstream that is down; priority 1: the Berth. The first fails, the second serves.
  await pb.addUpstream('mirror', { url: 'http://127.0.0.1:9', priority: 0 });
  await pb.addUpstream('mirror', {
    url: upstream.url,
    username: upstream.admin.username,
    password: upstream.admin.password,
    remotePrefix: 'up/base/',
    priority: 1,
  });
  await sk.login(pb.address, 'admin', ADMIN_PASSWORD);
  const out = await tempDir(t, 'proxy-berth-out');
  await sk.copy(`docker://${pb.address}/acme/mirror/app:2`, `oci:${out}:x`, ['--preserve-digests']);
  assert.equal((await resolveTag(out, 'x')).digest, img.manifest.digest);
  assert.deepEqual(await reachableBlobs(out, await resolveTag(out, 'x')), await reachableBlobs(src, await resolveTag(src, 'v1')));
  assert.deepEqual(await sk.listTags(`docker://${pb.address}/acme/mirror/app`), ['2']);

  // Referrers: an SBOM attached upstream is listed through the proxy, merged and filtered.
  const upAuth = `Basic ${Buffer.from(`${upstream.admin.username}:${upstream.admin.password}`).toString('base64')}`;
  const empty = Buffer.from('{}');
  const emptyDigest = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
  const put = await fetch(`${upstream.url}/v2/up/base/app/blobs/uploads/?digest=${emptyDigest}`, {
    method: 'POST',
    headers: { authorization: upAuth, 'content-type': 'application/octet-stream' },
    body: empty,
  });
  assert.equal(put.status, 201);
  const sbom = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.example.sbom',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 }],
      subject: { mediaType: img.manifest.mediaType, digest: img.manifest.digest, size: img.manifest.size },
      annotations: { 'org.example': 'upstream' },
    }),
  );
  const sbomPut = await fetch(`${upstream.url}/v2/up/base/app/manifests/sbom`, {
    method: 'PUT',
    headers: { authorization: upAuth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: sbom,
  });
  assert.equal(sbomPut.status, 201, await sbomPut.text());
  const sbomDigest = sbomPut.headers.get('docker-content-digest');
  const refs = await fetch(`${pb.url}/v2/acme/mirror/app/referrers/${img.manifest.digest}`, { headers: { authorization: pb.auth } });
  assert.equal(refs.status, 200);
  const index = (await refs.json()) as { manifests: { digest: string; artifactType?: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.digest === sbomDigest);
  assert.ok(entry, 'the upstream referrer is listed');
  assert.equal(entry.artifactType, 'application/vnd.example.sbom');
  assert.deepEqual(entry.annotations, { 'org.example': 'upstream' });
  const filtered = await fetch(`${pb.url}/v2/acme/mirror/app/referrers/${img.manifest.digest}?artifactType=application/other`, {
    headers: { authorization: pb.auth },
  });
  assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
  assert.deepEqual(((await filtered.json()) as { manifests: unknown[] }).manifests, []);
});
