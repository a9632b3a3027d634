/**
 * Trusted keys a repository manager adds are bounded in what one check costs (docs/security.md,
 * "Signing"): an RSA key with a 3072-bit public exponent made each check ~6 ms instead of
 * ~0.1 ms, and a verdict checks every key (up to 51) against every signature layer (up to 64).
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ADMIN, USER_PASSWORD, type EventsBerth, api, apiOk, basic, openBerth } from '../events/helpers.ts';

/** An RSA public key of any modulus and exponent (verification needs no private key). */
function rsaPublicKey(modulusBits: number, exponentBits: number): string {
  const n = randomBytes(modulusBits / 8);
  n[0]! |= 0x80;
  n[n.length - 1]! |= 1;
  const e = randomBytes(Math.ceil(exponentBits / 8));
  e[0]! |= 0x80;
  e[e.length - 1]! |= 1;
  return createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
}

describe('trusted signing keys from repository managers', () => {
  let b: EventsBerth;
  const mallory = basic('mallory', USER_PASSWORD);
  before(async () => {
    b = await openBerth({});
    await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'mallory', password: USER_PASSWORD }, 201);
    await apiOk(b.app, 'POST', '/api/v1/orgs', mallory, { name: 'evil' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/evil/repos', mallory, { name: 'r', visibility: 'private' }, 201);
  });
  after(async () => {
    await b?.close();
  });

  it('RSA keys with a huge exponent or modulus are refused (400); ordinary keys are taken', async () => {
    const url = '/api/v1/repos/evil/r/signing-keys';
    for (const [pem, what] of [[rsaPublicKey(3072, 3072), 'a 3072-bit exponent'], [rsaPublicKey(16384, 17), 'a 16384-bit modulus']] as const) {
      const r = await api(b.app, 'POST', url, mallory, { publicKey: pem, name: 'slow' });
      assert.equal(r.status, 400, `${what}: ${r.res.body}`);
      assert.match(r.json.errors[0].message, /RSA of 2048 to 8192 bits with a public exponent below 2\^32/);
    }
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await apiOk(b.app, 'POST', url, mallory, { publicKey: rsa, name: 'cosign rsa' }, 201);
    await apiOk(b.app, 'POST', url, mallory, { publicKey: rsaPublicKey(4096, 17), name: 'e = 65537 class' }, 201);
  });
});
