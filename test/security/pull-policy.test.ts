/**
 * Pull policies against a caller who may only pull (docs/security.md, "Pull policies"): an
 * image that names a `subject` is still an image (no referrer exemption), and a manifest read
 * through /blobs/<digest> meets the same policies as on /manifests. Referrers stay exempt.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import {
  ADMIN,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  type EventsBerth,
  type PushedImage,
  type Tenancy,
  api,
  apiOk,
  eventually,
  openBerth,
  pull,
  pushImage,
  setupTenancy,
  sha256,
} from '../events/helpers.ts';

/** Pushes a manifest with the given config and layer media types and a `subject`. */
async function pushWithSubject(app: FastifyInstance, name: string, tag: string, subject: PushedImage, types: { config: string; layer: string }) {
  const layer = randomBytes(48);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: randomBytes(4).toString('hex') }));
  for (const blob of [layer, config]) {
    const res = await app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: blob });
    assert.equal(res.statusCode, 201, res.body);
  }
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: types.config, digest: sha256(config), size: config.length },
      layers: [{ mediaType: types.layer, digest: sha256(layer), size: layer.length }],
      subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.bytes.length },
    }),
  );
  const res = await app.inject({ method: 'PUT', url: `/v2/${name}/manifests/${tag}`, headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, payload: bytes });
  assert.equal(res.statusCode, 201, res.body);
  return { digest: sha256(bytes), bytes };
}

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`pull policies against pull-only callers (${driver})`, () => {
    let b: EventsBerth;
    let t: Tenancy;
    let plain: PushedImage;
    let disguised: PushedImage;
    let signature: PushedImage;
    before(async () => {
      b = await openBerth({ postgres: driver === 'postgres' });
      t = await setupTenancy(b.app);
      plain = await pushImage(b.app, 'acme/prod/app', 'v1');
      // A runnable image that also names a subject: docker and containerd run it all the same.
      disguised = await pushWithSubject(b.app, 'acme/prod/app', 'v2', plain, { config: OCI_CONFIG, layer: OCI_LAYER });
      // A real referrer (a signature-like artifact): no filesystem layer.
      signature = await pushWithSubject(b.app, 'acme/prod/app', 'sig', plain, { config: OCI_CONFIG, layer: 'application/vnd.dev.cosign.simplesigning.v1+json' });
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/signing', ADMIN, { requireSignature: true }, 200);
    });
    after(async () => {
      await b?.close();
    });

    it('an unsigned image is refused, also when it names a subject; a referrer is not', async () => {
      for (const who of [t.carol, t.token]) {
        assert.equal((await pull(b.app, 'acme/prod/app', 'v1', who)).statusCode, 403);
        const res = await pull(b.app, 'acme/prod/app', 'v2', who);
        assert.equal(res.statusCode, 403, `an image with a subject escaped the policy: ${res.body}`);
        assert.equal(JSON.parse(res.body).errors[0].code, 'DENIED');
        assert.equal((await pull(b.app, 'acme/prod/app', `${signature.digest}`, who)).statusCode, 200, 'referrers stay exempt');
      }
      assert.equal((await pull(b.app, 'acme/prod/app', 'v2', t.bob)).statusCode, 200, 'who may push is exempt');
    });

    it('a manifest read as a blob meets the same policies; HEAD stays free', async () => {
      for (const d of [plain.digest, disguised.digest]) {
        const res = await api(b.app, 'GET', `/v2/acme/prod/app/blobs/${d}`, t.carol);
        assert.equal(res.status, 403, `/blobs/ served a refused manifest: ${res.res.body}`);
        assert.equal(res.json.errors[0].code, 'DENIED');
        const head = await b.app.inject({ method: 'HEAD', url: `/v2/acme/prod/app/blobs/${d}`, headers: { authorization: t.carol } });
        assert.equal(head.statusCode, 200);
      }
      assert.equal((await api(b.app, 'GET', `/v2/acme/prod/app/blobs/${signature.digest}`, t.carol)).status, 200);
      assert.equal((await api(b.app, 'GET', `/v2/acme/prod/app/blobs/${plain.digest}`, t.bob)).status, 200);
    });

    it('signing on push signs an image that names a subject, as any image', async () => {
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/signing', ADMIN, { signOnPush: true }, 200);
      await pushWithSubject(b.app, 'acme/prod/app', 'v3', plain, { config: OCI_CONFIG, layer: OCI_LAYER });
      await eventually(async () => ((await pull(b.app, 'acme/prod/app', 'v3', t.carol)).statusCode === 200 ? true : undefined), 15_000, 'v3 signed');
    });
  });
}
