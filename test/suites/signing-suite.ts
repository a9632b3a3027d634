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
import { sealedSites, sweepSealed } from '../../src/core/keys/sealed.ts';
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

    /** Waits until no signing job (sign or backfill) is left. */
    const drained = () =>
      eventually(async () => {
        for (const kind of ['signing.sign', 'signing.backfill']) {
          const jobs = await b.berth.registry.jobs.store.list({ kind, limit: 5 });
          const failed = jobs.find((j) => j.lastError);
          if (failed) throw new Error(`${kind} job failed: ${failed.lastError}`);
          if (jobs.length) return undefined;
        }
        return true;
      }, 30_000, 'signing jobs to finish');

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
      // `berth keys rotate` re-seals repository signing keys with every other secret.
      const sites = await sealedSites(b.berth.accessStore, undefined, undefined, b.berth.registry.signing['store']);
      const swept = await sweepSealed(b.berth.registry.keyring, sites, { rotate: true });
      assert.deepEqual(swept['repository signing keys'], { sealed: 0, resealed: 0, current: 1 });
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
      await signed('acme/prod/app', img.digest);
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

    test('[GET signatures] client signatures: cosign and skopeo styles, .sig tag or referrer, with or without :tag; tampered, wrong digest, untrusted, unsigned', async () => {
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: false }, 200);
      const team = clientKey();
      const stranger = clientKey();
      assert.equal((await api(app, 'POST', `${base}/signing-keys`, t.carol, { publicKey: team.pem })).status, 403);
      assert.equal((await api(app, 'POST', `${base}/signing-keys`, t.bob, { publicKey: 'not a key' })).status, 400);
      const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      assert.match((await api(app, 'POST', `${base}/signing-keys`, t.bob, { publicKey: rsa })).json.errors[0].message, /unsupported key type/);
      const added = await apiOk(app, 'POST', `${base}/signing-keys`, t.bob, { publicKey: team.pem, name: 'ci' }, 201);
      assert.equal(added.kind, 'trusted');
      assert.equal((await api(app, 'POST', `${base}/signing-keys`, t.bob, { publicKey: team.pem })).status, 409);

      const ref = `localhost:5000/acme/prod/tool`;
      const cosign = await pushImage(app, 'acme/prod/tool', 'cosign');
      await pushSigTag(app, 'acme/prod/tool', cosign.digest, [clientSign(team.privateKey, payloadFor(ref, cosign.digest, 'cosign'))]);
      const skopeo = await pushImage(app, 'acme/prod/tool', 'skopeo');
      await pushSigTag(app, 'acme/prod/tool', skopeo.digest, [clientSign(team.privateKey, payloadFor(`${ref}:skopeo`, skopeo.digest, 'skopeo'))]);
      const referrer = await pushImage(app, 'acme/prod/tool', 'referrer');
      await pushSigReferrer(app, 'acme/prod/tool', { digest: referrer.digest, size: referrer.bytes.length }, clientSign(team.privateKey, payloadFor(ref, referrer.digest, 'cosign')));
      const tampered = await pushImage(app, 'acme/prod/tool', 'tampered');
      await pushSigTag(app, 'acme/prod/tool', tampered.digest, [clientSign(team.privateKey, payloadFor(ref, tampered.digest, 'cosign'), { tamper: true })]);
      const wrong = await pushImage(app, 'acme/prod/tool', 'wrong-digest');
      await pushSigTag(app, 'acme/prod/tool', wrong.digest, [clientSign(team.privateKey, payloadFor(ref, cosign.digest, 'cosign'))]);
      const otherImage = await pushImage(app, 'acme/prod/tool', 'other-image');
      await pushSigTag(app, 'acme/prod/tool', otherImage.digest, [clientSign(team.privateKey, payloadFor('localhost:5000/acme/prod/elsewhere', otherImage.digest, 'cosign'))]);
      const untrusted = await pushImage(app, 'acme/prod/tool', 'untrusted');
      await pushSigTag(app, 'acme/prod/tool', untrusted.digest, [clientSign(stranger.privateKey, payloadFor(ref, untrusted.digest, 'cosign'))]);
      await pushImage(app, 'acme/prod/tool', 'unsigned');

      const v = await verdicts('tool', ['cosign', 'skopeo', 'referrer', 'tampered', 'wrong-digest', 'other-image', 'untrusted', 'unsigned'], t.carol);
      for (const tag of ['cosign', 'skopeo', 'referrer']) {
        assert.equal(v.get(tag).state, 'signed', `${tag}: ${v.get(tag).summary}`);
        assert.equal(v.get(tag).signedBy[0].keyId, added.keyId);
        assert.match(v.get(tag).summary, /^signed by trusted key "ci" [0-9a-f]{16} since /);
      }
      assert.equal(v.get('tampered').state, 'invalid');
      assert.match(v.get('tampered').summary, /^signature does not verify \(signature does not verify with a trusted key\)/);
      assert.equal(v.get('wrong-digest').state, 'invalid');
      assert.match(v.get('wrong-digest').summary, /names another manifest/);
      assert.match(v.get('other-image').summary, /names another image/);
      assert.equal(v.get('untrusted').state, 'invalid');
      assert.deepEqual([v.get('unsigned').state, v.get('unsigned').summary], ['unsigned', 'unsigned']);
      // The default page: every tag but the .sig attachments.
      const all = (await getJson(app, `${base}/signatures?image=tool`)).tags.map((x: any) => x.tag);
      assert.equal(all.length, 8);
      assert.equal((await api(app, 'GET', `${base}/signatures?image=tool`, t.dave)).status, 404);
      assert.equal((await api(app, 'GET', `${base}/signatures?image=tool&tags=a%0Ab`, t.carol)).status, 400);

      // Berth's signature joins a user's in the same .sig manifest instead of replacing it.
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: true }, 200);
      await app.inject({ method: 'PUT', url: '/v2/acme/prod/tool/manifests/cosign', headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, payload: cosign.bytes });
      await signed('acme/prod/tool', cosign.digest);
      const sig = await getJson(app, `/v2/acme/prod/tool/manifests/${sigTag(cosign.digest)}`);
      assert.equal(sig.layers.length, 2);
      const both = (await verdicts('tool', ['cosign'])).get('cosign');
      assert.deepEqual(both.signedBy.map((x: any) => x.kind).sort(), ['repository', 'trusted']);
      assert.equal(both.signatures, 3); // two .sig layers and Berth's referrer
      // Switching signing on signed what the repository held already.
      await drained();
      const backfilled = await verdicts('tool', ['unsigned', 'untrusted']);
      assert.equal(backfilled.get('unsigned').state, 'signed');
      assert.deepEqual(backfilled.get('untrusted').signedBy.map((x: any) => x.kind), ['repository']);
    });

    test('[GET manifests] require signature: 403 DENIED naming the policy; signed, index children, referrers and pushers pass; off again serves all', async () => {
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: false }, 200);
      const team = clientKey();
      await apiOk(app, 'POST', `${base}/signing-keys`, t.bob, { publicKey: team.pem, name: 'release' }, 201);
      const good = await pushImage(app, 'acme/prod/gate', 'good');
      await pushSigTag(app, 'acme/prod/gate', good.digest, [clientSign(team.privateKey, payloadFor('x.test/acme/prod/gate:good', good.digest, 'skopeo'))]);
      const bad = await pushImage(app, 'acme/prod/gate', 'bad');
      await pushSigTag(app, 'acme/prod/gate', bad.digest, [clientSign(team.privateKey, payloadFor('x.test/acme/prod/gate', good.digest, 'cosign'))]);
      const none = await pushImage(app, 'acme/prod/gate', 'none');
      // An index whose children are unsigned, the index signed by the client; and an unsigned one.
      const children = [await pushImage(app, 'acme/prod/gate', 'amd64'), await pushImage(app, 'acme/prod/gate', 'arm64')];
      const index = (c: typeof children) => ({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: c.map((x) => ({ mediaType: OCI_MANIFEST, digest: x.digest, size: x.bytes.length })) });
      const signedIndex = await putManifest(app, 'acme/prod/gate', 'multi', index(children), OCI_INDEX);
      await pushSigTag(app, 'acme/prod/gate', signedIndex, [clientSign(team.privateKey, payloadFor('x.test/acme/prod/gate', signedIndex, 'cosign'))]);
      const lone = await pushImage(app, 'acme/prod/gate', 'lone');
      await putManifest(app, 'acme/prod/gate', 'multi-unsigned', index([lone]), OCI_INDEX);

      const get = (ref: string, auth: string) => pull(app, 'acme/prod/gate', ref, auth);
      assert.equal((await get('none', t.carol)).statusCode, 200); // policy off
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { requireSignature: true }, 200);
      for (const auth of [t.carol, t.token]) {
        assert.equal((await get('good', auth)).statusCode, 200);
        for (const ref of ['none', 'bad', 'lone', 'multi-unsigned']) {
          const r = await get(ref, auth);
          assert.equal(r.statusCode, 403, `${ref}: ${r.body}`);
          const e = JSON.parse(r.body).errors[0];
          assert.equal(e.code, 'DENIED');
          assert.match(e.message, /signature policy of acme\/prod/);
        }
        assert.match(JSON.parse((await get('bad', auth)).body).errors[0].message, /signature does not verify/);
        assert.equal((await get('multi', auth)).statusCode, 200);
        for (const c of children) assert.equal((await get(c.digest, auth)).statusCode, 200, 'a child of a signed index');
        // Signatures (tag and referrer) are always served.
        assert.equal((await get(sigTag(bad.digest), auth)).statusCode, 200);
        assert.equal((await app.inject({ url: `/v2/acme/prod/gate/referrers/${none.digest}`, headers: { authorization: auth } })).statusCode, 200);
      }
      // One digest in two images of the repository, signed in one only: a verdict per image.
      const layer = Buffer.from('shared layer');
      const cfg = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      const doc = { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }] };
      for (const n of ['acme/prod/gate', 'acme/prod/twin']) for (const x of [layer, cfg]) await blob(app, n, x);
      const shared = await putManifest(app, 'acme/prod/gate', 'shared', doc);
      assert.equal(await putManifest(app, 'acme/prod/twin', 'shared', doc), shared);
      await pushSigTag(app, 'acme/prod/gate', shared, [clientSign(team.privateKey, payloadFor('x.test/acme/prod/gate', shared, 'cosign'))]);
      assert.equal((await get('shared', t.carol)).statusCode, 200);
      assert.equal((await pull(app, 'acme/prod/twin', 'shared', t.carol)).statusCode, 403);
      assert.equal((await pull(app, 'acme/prod/twin', shared, t.carol)).statusCode, 403);
      assert.equal((await get('none', t.bob)).statusCode, 200, 'repository admins are exempt');
      assert.equal((await get('none', ADMIN)).statusCode, 200, 'site administrators are exempt');
      // A signature pushed later counts at once: the repository's version moved.
      await pushSigTag(app, 'acme/prod/gate', none.digest, [clientSign(team.privateKey, payloadFor('x.test/acme/prod/gate', none.digest, 'cosign'))]);
      assert.equal((await get('none', t.carol)).statusCode, 200);
      // Removing an added key: its signatures stop counting.
      const release = (await getJson(app, `${base}/signing-keys`)).find((k: any) => k.kind === 'trusted' && k.name === 'release');
      await apiOk(app, 'DELETE', `${base}/signing-keys/${release.keyId}`, t.bob, undefined, 204);
      assert.equal((await get('good', t.carol)).statusCode, 403);
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { requireSignature: false }, 200);
      assert.equal((await get('bad', t.carol)).statusCode, 200);
      assert.equal((await get('lone', t.carol)).statusCode, 200);
    });

    test('[POST signing-keys/rotate] a new key signs from now on; the old one still verifies what it signed; records say which', async () => {
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: true, requireSignature: true }, 200);
      await drained(); // the backfill switching signing on queued
      const [old] = (await getJson(app, `${base}/signing-keys`)).filter((k: any) => k.current);
      const before = await pushImage(app, 'acme/prod/rot', 'before');
      await signed('acme/prod/rot', before.digest);
      assert.equal((await api(app, 'POST', `${base}/signing-keys/rotate`, t.carol)).status, 403);
      const fresh = await apiOk(app, 'POST', `${base}/signing-keys/rotate`, t.bob, undefined, 201);
      assert.notEqual(fresh.keyId, old.keyId);
      assert.equal((await app.inject({ url: `${base}/signing-key.pub`, headers: { authorization: t.carol } })).body, fresh.publicKey);
      const keys = await getJson(app, `${base}/signing-keys`);
      const oldNow = keys.find((k: any) => k.keyId === old.keyId);
      assert.equal(oldNow.current, false);
      assert.ok(oldNow.retiredAt);
      const afterImg = await pushImage(app, 'acme/prod/rot', 'after');
      await signed('acme/prod/rot', afterImg.digest);
      const v = await verdicts('rot', ['before', 'after']);
      assert.deepEqual(v.get('before').signedBy.map((s: any) => s.keyId), [old.keyId]);
      assert.deepEqual(v.get('after').signedBy.map((s: any) => s.keyId), [fresh.keyId]);
      for (const tag of ['before', 'after']) assert.equal((await pull(app, 'acme/prod/rot', tag, t.carol)).statusCode, 200);
      // A multi-platform push: each child (pushed by digest) and the index are signed.
      const kids = [await pushImage(app, 'acme/prod/rot', 'k1'), await pushImage(app, 'acme/prod/rot', 'k2')];
      const idx = await putManifest(app, 'acme/prod/rot', 'multi', { schemaVersion: 2, mediaType: OCI_INDEX, manifests: kids.map((k) => ({ mediaType: OCI_MANIFEST, digest: k.digest, size: k.bytes.length })) }, OCI_INDEX);
      for (const d of [...kids.map((k) => k.digest), idx]) await signed('acme/prod/rot', d);
      for (const d of [...kids.map((k) => k.digest), idx]) {
        const sig = await getJson(app, `/v2/acme/prod/rot/manifests/${sigTag(d)}`);
        assert.equal(sig.layers.length, 1, d);
      }
      assert.equal((await verdicts('rot', ['multi'])).get('multi').signedBy[0].keyId, fresh.keyId);
      // Repository keys are rotated, never removed.
      assert.equal((await api(app, 'DELETE', `${base}/signing-keys/${fresh.keyId}`, t.bob)).status, 404);
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { requireSignature: false }, 200);
    });

    test('[PUT manifests] the signing job is enqueued in the manifest transaction: a push is never committed without it', async () => {
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: true }, 200);
      await drained();
      const r = b.berth.registry;
      await r.jobs.stop(); // no worker takes the rows we look at
      const job = (digest: string) => r.jobs.store.findJob('signing.sign', `acme/prod/tx@${digest}`);
      const pushed: string[] = [];
      try {
        const img = await pushImage(app, 'acme/prod/tx', 'v1');
        assert.ok(await job(img.digest), 'the job row is there when the push answers');
        pushed.push(img.digest);
        // A crash right after the commit (a listener failing before signing's would run) loses nothing.
        const crash = { put: async () => { throw new Error('crashed after the commit'); } };
        r.manifests.listeners.unshift(crash);
        const doc = { ...JSON.parse(img.bytes.toString()), annotations: { n: '2' } };
        const bytes = Buffer.from(JSON.stringify(doc));
        try {
          await assert.rejects(r.manifests.put('acme/prod/tx', 'v2', bytes, OCI_MANIFEST), /crashed after the commit/);
        } finally {
          r.manifests.listeners.splice(r.manifests.listeners.indexOf(crash), 1);
        }
        assert.ok(await job(sha256(bytes)), 'committed manifest, job row with it');
        pushed.push(sha256(bytes));
        // A refused push enqueues nothing.
        const missing = { ...doc, annotations: { n: '3' }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('nowhere'), size: 7 }] };
        const res = await app.inject({ method: 'PUT', url: '/v2/acme/prod/tx/manifests/v3', headers: { authorization: ADMIN, 'content-type': OCI_MANIFEST }, payload: JSON.stringify(missing) });
        assert.equal(JSON.parse(res.body).errors[0].code, 'MANIFEST_BLOB_UNKNOWN', res.body);
        assert.equal(await job(sha256(JSON.stringify(missing))), undefined);
        // Signatures are not signed: a .sig push enqueues no job of its own.
        const sig = await pushSigTag(app, 'acme/prod/tx', img.digest, [clientSign(clientKey().privateKey, payloadFor('x/acme/prod/tx', img.digest, 'cosign'))]);
        assert.equal(await job(sig), undefined);
      } finally {
        r.jobs.start(r);
      }
      for (const d of pushed) await signed('acme/prod/tx', d);
    });

    test('[GET signatures] a client identity naming a custom domain short name verifies; an unmapped host does not', async () => {
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: false }, 200); // only the client signatures count
      await apiOk(app, 'POST', '/api/v1/domains', ADMIN, { host: 'registry.acme.test', target: 'acme' }, 201);
      await apiOk(app, 'POST', '/api/v1/domains', ADMIN, { host: 'images.acme.test', target: 'acme/prod' }, 201);
      const team = clientKey();
      const added = await apiOk(app, 'POST', `${base}/signing-keys`, t.bob, { publicKey: team.pem, name: 'domains' }, 201);
      const cases: [string, string][] = [
        ['owner-host', 'registry.acme.test/prod/dom:owner-host'],
        ['repo-host', 'images.acme.test:443/dom'],
        ['unmapped', 'registry.nobody.test/prod/dom'],
        ['other-repo', 'images.acme.test/prod/dom'],
      ];
      for (const [tag, ref] of cases) {
        const img = await pushImage(app, 'acme/prod/dom', tag);
        await pushSigTag(app, 'acme/prod/dom', img.digest, [clientSign(team.privateKey, payloadFor(ref, img.digest, 'skopeo'))]);
      }
      const v = await verdicts('dom', cases.map(([tag]) => tag));
      for (const tag of ['owner-host', 'repo-host']) assert.ok(v.get(tag).signedBy.some((s: any) => s.keyId === added.keyId), `${tag}: ${v.get(tag).summary}`);
      for (const tag of ['unmapped', 'other-repo']) {
        assert.ok(!v.get(tag).signedBy.some((s: any) => s.keyId === added.keyId), tag);
        assert.match(v.get(tag).summary, /names another image/, tag);
      }
      await drained();
    });

    test('[sign job] a client .sig pushed while the job rewrites the tag is kept: the rewrite is a compare-and-swap', async () => {
      await apiOk(app, 'PUT', `${base}/signing`, t.bob, { signOnPush: true }, 200);
      await drained();
      const team = clientKey();
      const added = await apiOk(app, 'POST', `${base}/signing-keys`, t.bob, { publicKey: team.pem, name: 'race' }, 201);
      const r = b.berth.registry;
      await r.jobs.stop();
      const img = await pushImage(app, 'acme/prod/race', 'v1');
      // Between the job's read of the .sig tag and its write (it stores its payload blob in
      // between), a client pushes its own .sig, as cosign does: read, append, write.
      const uploads = r.uploads;
      const original = uploads.putMonolithic;
      let raced = false;
      uploads.putMonolithic = async function (this: typeof uploads, ...args: Parameters<typeof original>) {
        if (!raced && args[0] === 'acme/prod/race') {
          raced = true;
          await pushSigTag(app, 'acme/prod/race', img.digest, [clientSign(team.privateKey, payloadFor('registry.acme.test/prod/race', img.digest, 'cosign'))]);
        }
        return original.apply(this, args);
      } as typeof original;
      try {
        r.jobs.start(r);
        await signed('acme/prod/race', img.digest);
      } finally {
        uploads.putMonolithic = original;
      }
      assert.ok(raced, 'the client push ran inside the job');
      const sig = await getJson(app, `/v2/acme/prod/race/manifests/${sigTag(img.digest)}`);
      assert.equal(sig.layers.length, 2, 'both signatures are in the .sig manifest');
      const v = (await verdicts('race', ['v1'])).get('v1');
      const repoKey = (await getJson(app, `${base}/signing-keys`)).find((k: any) => k.kind === 'repository' && k.current);
      assert.deepEqual(new Set(v.signedBy.map((s: any) => s.keyId)), new Set([added.keyId, repoKey.keyId]));
      // The job is idempotent over the merged tag: running it again changes nothing.
      await r.jobs.enqueue([{ kind: 'signing.sign', subject: `acme/prod/race@${img.digest}`, runAfter: Date.now() }]);
      await signed('acme/prod/race', img.digest);
      assert.deepEqual(await getJson(app, `/v2/acme/prod/race/manifests/${sigTag(img.digest)}`), sig);
    });
  });
}
