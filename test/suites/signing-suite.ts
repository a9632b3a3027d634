/**
 * Repository signing (docs/signing.md), run once per metadata dialect: Berth's signatures
 * checked against cosign's SIGNATURE_SPEC and containers/image's simple-signing format with
 * `openssl dgst -sha256 -verify`; client signatures made here the way cosign and skopeo make
 * them (simple-signing payload, ECDSA P-256 over SHA-256, DER in base64 in the layer
 * annotation, identity with or without `:tag`), pushed as a `.sig` tag or as a referrer;
 * verdicts per tag; rotation; the "require signature" pull policy (index children, owners
 * exempt, referrers always served, on and off).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { ADMIN, api, apiOk, basic, eventually, openBerth, pull, pushImage, setupTenancy, type EventsBerth, type Tenancy } from '../events/helpers.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
const SIG_ANNOTATION = 'dev.cosignproject.cosign/signature';
const PUBLIC_HOST = 'registry.example.test/mirror';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sigTag = (digest: string) => `${digest.replace(':', '-')}.sig`;

async function blob(app: FastifyInstance, name: string, bytes: Buffer, auth = ADMIN): Promise<void> {
  const r = await app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/?digest=${sha256(bytes)}`, headers: { authorization: auth, 'content-type': 'application/octet-stream' }, payload: bytes });
  assert.equal(r.statusCode, 201, r.body);
}

async function putManifest(app: FastifyInstance, name: string, ref: string, doc: unknown, mediaType = OCI_MANIFEST, auth = ADMIN): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(doc));
  const r = await app.inject({ method: 'PUT', url: `/v2/${name}/manifests/${ref}`, headers: { authorization: auth, 'content-type': mediaType }, payload: bytes });
  assert.equal(r.statusCode, 201, r.body);
  return sha256(bytes);
}

async function getJson(app: FastifyInstance, url: string, auth = ADMIN): Promise<any> {
  const r = await app.inject({ url, headers: { authorization: auth } });
  assert.equal(r.statusCode, 200, `${url}: ${r.body}`);
  return JSON.parse(r.body);
}

/** A client key pair, as `cosign generate-key-pair` makes (ECDSA P-256). */
function clientKey(): { privateKey: KeyObject; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** A simple-signing payload as cosign writes it (`optional: null`) or skopeo (`creator`, `timestamp`). */
function payloadFor(reference: string, digest: string, style: 'cosign' | 'skopeo'): Buffer {
  const critical = { identity: { 'docker-reference': reference }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' };
  return Buffer.from(JSON.stringify({ critical, optional: style === 'cosign' ? null : { creator: 'containers/image test', timestamp: 1767225600 } }));
}

interface ClientSig {
  payload: Buffer;
  layer: { mediaType: string; digest: string; size: number; annotations: Record<string, string> };
}

function clientSign(key: KeyObject, payload: Buffer, opts: { tamper?: boolean } = {}): ClientSig {
  const signature = sign('sha256', payload, key).toString('base64'); // ECDSA over SHA-256, ASN.1 DER
  const stored = opts.tamper ? Buffer.from(payload.toString().replace('cosign container image signature', 'cosign container image signaturE')) : payload;
  return { payload: stored, layer: { mediaType: SIMPLE_SIGNING, digest: sha256(stored), size: stored.length, annotations: { [SIG_ANNOTATION]: signature } } };
}

/** Pushes signatures the way cosign does with tag-based discovery: add layers to `sha256-<hex>.sig`. */
async function pushSigTag(app: FastifyInstance, name: string, digest: string, sigs: ClientSig[]): Promise<string> {
  const existing = await app.inject({ url: `/v2/${name}/manifests/${sigTag(digest)}`, headers: { authorization: ADMIN, accept: OCI_MANIFEST } });
  const layers = existing.statusCode === 200 ? (JSON.parse(existing.body).layers as unknown[]) : [];
  for (const s of sigs) {
    await blob(app, name, s.payload);
    layers.push(s.layer);
  }
  const config = Buffer.from(JSON.stringify({ architecture: '', created: '0001-01-01T00:00:00Z', history: [{ created: '0001-01-01T00:00:00Z' }], os: '', rootfs: { type: 'layers', diff_ids: layers.map((l: any) => l.digest) }, config: {} }));
  await blob(app, name, config);
  return putManifest(app, name, sigTag(digest), { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: sha256(config) }, layers });
}

/** Pushes a signature as an OCI 1.1 referrer (cosign's referrers mode). */
async function pushSigReferrer(app: FastifyInstance, name: string, subject: { digest: string; size: number }, s: ClientSig): Promise<string> {
  const empty = Buffer.from('{}');
  await blob(app, name, empty);
  await blob(app, name, s.payload);
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
    config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2, digest: sha256(empty) },
    layers: [s.layer],
    subject: { mediaType: OCI_MANIFEST, ...subject },
  };
  return putManifest(app, name, sha256(JSON.stringify(doc)), doc);
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => execFile(file, args, { timeout: 10_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${file}: ${err.message} ${stdout} ${stderr}`)) : resolve(stdout))));
}

export function runSigningSuite(dialect: 'sqlite' | 'postgres'): void {
  describe(`repository signing on ${dialect}`, () => {
    let b: EventsBerth;
    let app: FastifyInstance;
    let t: Tenancy;
    let work: string;
    const base = '/api/v1/repos/acme/prod';
    const verdicts = async (image: string, tags: string[], auth = ADMIN) =>
      new Map(((await getJson(app, `${base}/signatures?image=${image}&tags=${tags.join(',')}`, auth)).tags as any[]).map((v) => [v.tag, v]));
    const signedTag = (image: string, tag: string, keyId: string) =>
      eventually(async () => {
        const v = (await verdicts(image, [tag])).get(tag);
        return v?.signedBy?.some((s: any) => s.keyId === keyId) ? v : undefined;
      }, 20_000, `${image}:${tag} signed by ${keyId}`);

    /** Waits until the signing job of NAME@DIGEST is done (its row goes); fails on a failed attempt. */
    const signed = (name: string, digest: string) =>
      eventually(async () => {
        const job = await b.berth.registry.jobs.store.findJob('signing.sign', `${name}@${digest}`);
        if (job?.lastError) throw new Error(`signing job failed: ${job.lastError}`);
        return job ? undefined : true;
      }, 20_000, `signing job of ${name}@${digest}`);

    before(async () => {
      b = await openBerth({ postgres: dialect === 'postgres', auth: { publicUrl: `https://${PUBLIC_HOST}` } as never });
      app = b.app;
      t = await setupTenancy(app);
      work = await mkdtemp(path.join(tmpdir(), 'berth-signing-'));
    });
    after(async () => {
      await b?.close();
      if (work) await rm(work, { recursive: true, force: true });
    });

    test('[GET signing-key.pub] one P-256 key per repository, created on first use, for whoever may pull; private half sealed, never served', async () => {
      const first = await app.inject({ url: `${base}/signing-key.pub`, headers: { authorization: t.carol } });
      assert.equal(first.statusCode, 200, first.body);
      assert.match(first.headers['content-type'] as string, /application\/x-pem-file/);
      assert.match(first.body, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/);
      const again = await app.inject({ url: `${base}/signing-key.pub`, headers: { authorization: t.token } });
      assert.equal(again.body, first.body);
      assert.equal((await app.inject({ url: `${base}/signing-key.pub`, headers: { authorization: t.dave } })).statusCode, 404);
      assert.equal((await app.inject({ url: `${base}/signing-key.pub` })).statusCode, 404); // anonymous, private repository
      const keys = await getJson(app, `${base}/signing-keys`, t.carol);
      assert.equal(keys.length, 1);
      assert.equal(keys[0].kind, 'repository');
      assert.equal(keys[0].current, true);
      assert.equal(keys[0].publicKey, first.body);
      assert.ok(!JSON.stringify(keys).includes('PRIVATE'));
      const sealed = await b.berth.registry.signing['store'].listSealedKeys();
      assert.equal(sealed.length, 1);
      assert.match(sealed[0]!.value, /^sealed:v1:repository-signing-key:/);
    });

    test('[PUT signing] managers only; sign on push writes a .sig manifest and a referrer that openssl verifies against the public key', async () => {
      assert.equal((await api(app, 'PUT', `${base}/signing`, t.carol, { signOnPush: true })).status, 403);
      assert.equal((await api(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: 'yes' })).status, 400);
      const s = await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: true }, 200);
      assert.equal(s.signOnPush, true);
      assert.equal(s.identity, `${PUBLIC_HOST}/acme/prod`);
      const pem = (await app.inject({ url: `${base}/signing-key.pub`, headers: { authorization: ADMIN } })).body;
      const [key] = await getJson(app, `${base}/signing-keys`);
      const img = await pushImage(app, 'acme/prod/app', 'v1');
      const v = await signedTag('app', 'v1', key.keyId);
      assert.equal(v.state, 'signed');
      assert.match(v.summary, new RegExp(`^signed by repository key ${key.keyId} since \\d{4}-`));

      // The .sig manifest, as cosign's tag-based discovery finds it.
      const sig = await getJson(app, `/v2/acme/prod/app/manifests/${sigTag(img.digest)}`);
      assert.equal(sig.mediaType, OCI_MANIFEST);
      assert.equal(sig.config.mediaType, 'application/vnd.oci.image.config.v1+json');
      assert.equal(sig.layers.length, 1);
      const layer = sig.layers[0];
      assert.equal(layer.mediaType, SIMPLE_SIGNING);
      const config = JSON.parse((await app.inject({ url: `/v2/acme/prod/app/blobs/${sig.config.digest}`, headers: { authorization: ADMIN } })).body);
      assert.deepEqual(config.rootfs, { type: 'layers', diff_ids: [layer.digest] });
      const payload = (await app.inject({ url: `/v2/acme/prod/app/blobs/${layer.digest}`, headers: { authorization: ADMIN } })).rawPayload;
      assert.equal(sha256(payload), layer.digest);
      assert.equal(payload.length, layer.size);
      const doc = JSON.parse(payload.toString());
      assert.deepEqual(Object.keys(doc).sort(), ['critical', 'optional']);
      assert.deepEqual(doc.critical, { identity: { 'docker-reference': `${PUBLIC_HOST}/acme/prod/app` }, image: { 'docker-manifest-digest': img.digest }, type: 'cosign container image signature' });
      assert.equal(typeof doc.optional.timestamp, 'number');

      // openssl: the annotation is base64 of a DER ECDSA signature over the payload's SHA-256.
      await writeFile(path.join(work, 'pub.pem'), pem);
      await writeFile(path.join(work, 'payload'), payload);
      await writeFile(path.join(work, 'sig.der'), Buffer.from(layer.annotations[SIG_ANNOTATION], 'base64'));
      const ok = await run('openssl', ['dgst', '-sha256', '-verify', path.join(work, 'pub.pem'), '-signature', path.join(work, 'sig.der'), path.join(work, 'payload')]);
      assert.match(ok, /Verified OK/);
      await writeFile(path.join(work, 'payload'), Buffer.concat([payload, Buffer.from(' ')]));
      await assert.rejects(run('openssl', ['dgst', '-sha256', '-verify', path.join(work, 'pub.pem'), '-signature', path.join(work, 'sig.der'), path.join(work, 'payload')]), /Verification failure/);

      // And as an OCI 1.1 referrer with the same layer.
      const refs = await getJson(app, `/v2/acme/prod/app/referrers/${img.digest}`);
      const sigRefs = refs.manifests.filter((m: any) => m.artifactType === 'application/vnd.dev.cosign.artifact.sig.v1+json');
      assert.equal(sigRefs.length, 1);
      const referrer = await getJson(app, `/v2/acme/prod/app/manifests/${sigRefs[0].digest}`);
      assert.deepEqual(referrer.layers, [layer]);
      assert.equal(referrer.subject.digest, img.digest);

      // Idempotent: pushing the same manifest again signs nothing new.
      await app.inject({ method: 'PUT', url: '/v2/acme/prod/app/manifests/v1', headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, payload: img.bytes });
      await signed('acme/prod/app', img.digest);
      const again = await getJson(app, `/v2/acme/prod/app/manifests/${sigTag(img.digest)}`);
      assert.deepEqual(again, sig);
      assert.equal((await getJson(app, `/v2/acme/prod/app/referrers/${img.digest}`)).manifests.length, refs.manifests.length);
    });
  });
}
