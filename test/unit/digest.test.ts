import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { RegistryError } from '../../src/core/errors.ts';
import { digestOf, isValidDigest, looksLikeDigest, newHash, parseDigest } from '../../src/core/content/digest.ts';

const HEX64 = 'a'.repeat(64);
const HEX128 = '0123456789abcdef'.repeat(8);
const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('parseDigest', () => {
  const valid: [string, string, string][] = [
    ['sha256', `sha256:${HEX64}`, HEX64],
    ['sha256 real', EMPTY_SHA256, EMPTY_SHA256.slice(7)],
    ['sha512', `sha512:${HEX128}`, HEX128],
  ];
  for (const [what, s, hex] of valid) {
    it(`accepts ${what}`, () => {
      const d = parseDigest(s);
      assert.equal(d.algorithm, s.split(':')[0]);
      assert.equal(d.hex, hex);
      assert.equal(d.value, s);
      assert.equal(isValidDigest(s), true);
    });
  }

  const invalid: [string, string, RegExp][] = [
    ['empty', '', /invalid digest/],
    ['garbage', 'not-a-digest', /invalid digest/],
    ['only algorithm', 'sha256:', /invalid digest/],
    ['only hex', `:${HEX64}`, /invalid digest/],
    ['no colon', `sha256${HEX64}`, /invalid digest/],
    ['two colons', `sha256:${HEX64}:x`, /invalid digest/],
    ['uppercase hex', `sha256:${'A'.repeat(64)}`, /lowercase hex/],
    ['mixed case hex', `sha256:${'aB'.repeat(32)}`, /lowercase hex/],
    ['uppercase algorithm', `SHA256:${HEX64}`, /invalid digest/],
    ['sha256 too short', `sha256:${'a'.repeat(63)}`, /64 lowercase hex/],
    ['sha256 too long', `sha256:${'a'.repeat(65)}`, /64 lowercase hex/],
    ['sha256 with sha512 length', `sha256:${HEX128}`, /64 lowercase hex/],
    ['sha512 too short', `sha512:${HEX64}`, /128 lowercase hex/],
    ['non-hex letters', `sha256:${'g'.repeat(64)}`, /lowercase hex/],
    ['base64-ish encoding', `sha256:${'a'.repeat(62)}==`, /lowercase hex/],
    ['unknown algorithm md5', `md5:${'a'.repeat(32)}`, /unsupported digest algorithm "md5"/],
    ['unknown algorithm sha384', `sha384:${'a'.repeat(96)}`, /unsupported digest algorithm/],
    ['blake3', `blake3:${HEX64}`, /unsupported digest algorithm/],
    ['algorithm with separator', `sha256+b64u:${HEX64}`, /unsupported digest algorithm/],
    ['leading space', ` sha256:${HEX64}`, /invalid digest/],
    ['trailing space', `sha256:${HEX64} `, /invalid digest/],
    ['trailing newline', `sha256:${HEX64}\n`, /invalid digest/],
    ['path traversal', 'sha256:../../etc/passwd', /invalid digest/],
    ['unicode', `sha256:${'ä'.repeat(64)}`, /invalid digest/],
  ];
  for (const [what, s, msg] of invalid) {
    it(`rejects ${what}`, () => {
      assert.throws(
        () => parseDigest(s),
        (e: unknown) => e instanceof RegistryError && e.code === 'DIGEST_INVALID' && e.status === 400 && msg.test(e.message),
      );
      assert.equal(isValidDigest(s), false);
    });
  }

  it('truncates huge inputs in the error message', () => {
    const s = `sha256:${'z'.repeat(10_000)}`;
    assert.throws(
      () => parseDigest(s),
      (e: unknown) => e instanceof RegistryError && e.message.length < 300,
    );
  });
});

describe('looksLikeDigest', () => {
  const cases: [string, boolean][] = [
    ['latest', false],
    [`sha256:${HEX64}`, true],
    ['a:b', true],
    ['v1.0', false],
  ];
  for (const [s, want] of cases) it(`${JSON.stringify(s)} → ${want}`, () => assert.equal(looksLikeDigest(s), want));
});

describe('digestOf / newHash', () => {
  it('sha256 of empty input', () => assert.equal(digestOf(new Uint8Array()), EMPTY_SHA256));
  it('sha256 of {} is the OCI empty descriptor digest', () =>
    assert.equal(digestOf(Buffer.from('{}')), 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'));
  it('defaults to sha256 and matches node:crypto', () => {
    const data = Buffer.from('hello berth');
    assert.equal(digestOf(data), `sha256:${createHash('sha256').update(data).digest('hex')}`);
  });
  it('sha512', () => {
    const data = Buffer.from('hello berth');
    const d = digestOf(data, 'sha512');
    assert.equal(d, `sha512:${createHash('sha512').update(data).digest('hex')}`);
    assert.equal(parseDigest(d).algorithm, 'sha512');
  });
  it('hashes a subarray view by its own bytes only', () => {
    const whole = Buffer.from('xxhelloyy');
    assert.equal(digestOf(whole.subarray(2, 7)), digestOf(Buffer.from('hello')));
  });
  it('digestOf output always parses', () => {
    for (const s of ['', 'a', 'x'.repeat(1000)]) {
      assert.equal(isValidDigest(digestOf(Buffer.from(s))), true);
      assert.equal(isValidDigest(digestOf(Buffer.from(s), 'sha512')), true);
    }
  });
  it('newHash streams to the same digest', () => {
    const h = newHash();
    h.update('hello ');
    h.update('berth');
    assert.equal(`sha256:${h.digest('hex')}`, digestOf(Buffer.from('hello berth')));
  });
});
