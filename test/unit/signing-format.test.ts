/**
 * The cosign / containers/image signature format as pure functions (src/core/supply-chain/
 * signing/format.ts) and the identity prefix signatures carry (docs/signing.md#identity).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { loadConfig, parseListen } from '../../src/config/schema.ts';
import { isAttachmentTag, keyFingerprint, parsePayload, parsePublicKey, referenceNames, signPayload, signatureTag, simpleSigningPayload, verifyPayload } from '../../src/core/supply-chain/signing/format.ts';
import { signingIdentity } from '../../src/core/supply-chain/signing/signing.ts';

const D = `sha256:${'a'.repeat(64)}`;

test('payloads parse as strictly as containers/image: exact fields, cosign type, optional null or an object', () => {
  const ok = { critical: { identity: { 'docker-reference': 'r.test/a/b/c' }, image: { 'docker-manifest-digest': D }, type: 'cosign container image signature' }, optional: null };
  assert.deepEqual(parsePayload(Buffer.from(JSON.stringify(ok))), { dockerReference: 'r.test/a/b/c', digest: D });
  assert.equal(parsePayload(simpleSigningPayload('r.test/a/b/c', D, Date.now())).digest, D);
  const bad: [unknown, RegExp][] = [
    [{ ...ok, extra: 1 }, /exactly the fields critical, optional/],
    [{ critical: ok.critical }, /exactly the fields/],
    [{ ...ok, critical: { ...ok.critical, type: 'atomic container signature' } }, /unrecognized signature type/],
    [{ ...ok, critical: { ...ok.critical, image: { 'Docker-manifest-digest': D } } }, /critical.image must have exactly/],
    [{ ...ok, critical: { ...ok.critical, image: { 'docker-manifest-digest': 'nope' } } }, /invalid docker-manifest-digest/],
    [{ ...ok, optional: [] }, /optional is not an object/],
  ];
  for (const [doc, re] of bad) assert.throws(() => parsePayload(Buffer.from(JSON.stringify(doc))), re);
  assert.throws(() => parsePayload(Buffer.from('{')), /not JSON/);
});

test('identities name the image with or without a tag, under any host; tags and fingerprints', () => {
  for (const ref of ['acme/prod/app', 'r.test/acme/prod/app', 'r.test:5000/acme/prod/app:v1', 'r.test/mirror/acme/prod/app@' + D]) assert.ok(referenceNames(ref, 'acme/prod/app'), ref);
  for (const ref of ['r.test/acme/prod/app2', 'r.test/xacme/prod/app', 'r.test/acme/prod/app/sub', 'r.test:5000']) assert.ok(!referenceNames(ref, 'acme/prod/app'), ref);
  assert.equal(signatureTag(D), `sha256-${'a'.repeat(64)}.sig`);
  assert.ok(isAttachmentTag(signatureTag(D)) && isAttachmentTag(`sha256-${'a'.repeat(64)}.att`) && !isAttachmentTag('v1.sig'));
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  assert.match(keyFingerprint(parsePublicKey(pem)), /^[0-9a-f]{16}$/);
  const p = Buffer.from('payload');
  const s = signPayload(privateKey, p);
  assert.ok(verifyPayload(publicKey, p, s));
  assert.ok(!verifyPayload(publicKey, Buffer.from('payloaD'), s));
  assert.ok(!verifyPayload(publicKey, p, 'not base64!'));
  assert.throws(() => parsePublicKey(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString()), /unsupported key type ed25519/);
  assert.throws(() => parsePublicKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'), /not a PEM public key/);
});

test('[config] signing.identity, else auth.publicUrl host and path, else the listen address', () => {
  const id = (env: Record<string, string>) => {
    const c = loadConfig({ env });
    return signingIdentity({ signingIdentity: c.signing.identity, publicUrl: c.auth.publicUrl, listen: parseListen(c.listen) });
  };
  assert.equal(id({}), 'localhost:5000');
  assert.equal(id({ BERTH_LISTEN: '10.0.0.5:8080' }), '10.0.0.5:8080');
  assert.equal(id({ BERTH_LISTEN: '[::1]:5000' }), '[::1]:5000');
  assert.equal(id({ BERTH_PUBLIC_URL: 'https://registry.example.com/' }), 'registry.example.com');
  assert.equal(id({ BERTH_PUBLIC_URL: 'https://example.com:8443/registry/' }), 'example.com:8443/registry');
  assert.equal(id({ BERTH_PUBLIC_URL: 'https://example.com', BERTH_SIGNING_IDENTITY: 'images.example.com/' }), 'images.example.com');
  assert.equal(loadConfig({ env: { BERTH_SIGNING_CACHE_SECONDS: '0.5' } }).signing.cacheSeconds, 0.5);
  assert.throws(() => loadConfig({ env: { BERTH_SIGNING_IDENTITY: 'https://x.test' } }), /signing.identity must be HOST/);
});
