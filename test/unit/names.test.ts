import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryError } from '../../src/core/errors.ts';
import { MAX_NAME_LENGTH, isValidComponent, isValidOwner, isValidTag, parseImageName } from '../../src/core/content/names.ts';

function nameError(fn: () => unknown): RegistryError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RegistryError, `expected a RegistryError, got ${String(e)}`);
    assert.equal(e.code, 'NAME_INVALID');
    assert.equal(e.status, 400);
    return e;
  }
  assert.fail('expected NAME_INVALID');
}

describe('parseImageName', () => {
  const valid: [string, { owner: string; repository: string; image: string }][] = [
    ['acme/prod/app', { owner: 'acme', repository: 'prod', image: 'app' }],
    ['a/b/c', { owner: 'a', repository: 'b', image: 'c' }],
    ['0/1/2', { owner: '0', repository: '1', image: '2' }],
    ['acme-corp/prod/app', { owner: 'acme-corp', repository: 'prod', image: 'app' }],
    ['acme/prod/team/app', { owner: 'acme', repository: 'prod', image: 'team/app' }],
    ['acme/prod/a/b/c/d/e', { owner: 'acme', repository: 'prod', image: 'a/b/c/d/e' }],
    ['acme/my.repo/my_app', { owner: 'acme', repository: 'my.repo', image: 'my_app' }],
    ['acme/my__repo/my---app', { owner: 'acme', repository: 'my__repo', image: 'my---app' }],
    ['acme/v1.2.3/app-2', { owner: 'acme', repository: 'v1.2.3', image: 'app-2' }],
    [`${'o'.repeat(39)}/r/i`, { owner: 'o'.repeat(39), repository: 'r', image: 'i' }],
  ];
  for (const [full, want] of valid) {
    it(`accepts ${JSON.stringify(full)}`, () => {
      const n = parseImageName(full);
      assert.deepEqual(n, { full, ...want });
    });
  }

  it(`accepts a name of exactly ${MAX_NAME_LENGTH} characters`, () => {
    const image = 'x'.repeat(MAX_NAME_LENGTH - 'acme/prod/'.length);
    const full = `acme/prod/${image}`;
    assert.equal(full.length, 255);
    assert.equal(parseImageName(full).image, image);
  });

  const invalid: [string, string, RegExp?][] = [
    ['empty', '', /empty/],
    ['one segment', 'app', /OWNER\/REPOSITORY\/IMAGE/],
    ['two segments', 'acme/app', /OWNER\/REPOSITORY\/IMAGE/],
    ['too long (256)', `acme/prod/${'x'.repeat(256 - 10)}`, /at most 255/],
    ['very long', `acme/prod/${'x'.repeat(10_000)}`, /at most 255/],
    ['uppercase owner', 'Acme/prod/app', /owner/],
    ['owner with underscore', 'ac_me/prod/app', /owner/],
    ['owner with dot', 'ac.me/prod/app', /owner/],
    ['owner starting with -', '-acme/prod/app', /owner/],
    ['owner of 40 chars', `${'o'.repeat(40)}/prod/app`, /owner/],
    ['empty owner', '/prod/app', /owner/],
    ['uppercase component', 'acme/A/app', /component "A"/],
    ['uppercase image', 'acme/prod/App', /component "App"/],
    ['double dot', 'acme/a..b/app', /component "a..b"/],
    ['leading -', 'acme/-a/app', /component "-a"/],
    ['trailing -', 'acme/a-/app', /component "a-"/],
    ['leading .', 'acme/.a/app', /component/],
    ['trailing .', 'acme/prod/a.', /component/],
    ['triple underscore', 'acme/a___b/app', /component/],
    ['dot-dash', 'acme/a.-b/app', /component/],
    ['empty component', 'acme//app', /component ""/],
    ['trailing slash', 'acme/prod/app/', /component ""/],
    ['leading slash', '/acme/prod/app', /owner/],
    ['dot-dot segment', 'acme/prod/../app', /component "\.\."/],
    ['dot segment', 'acme/./app', /component "\."/],
    ['space', 'acme/prod/my app', /component/],
    ['colon', 'acme/prod/app:latest', /component/],
    ['at sign', 'acme/prod/app@sha256', /component/],
    ['percent', 'acme/prod/a%2Fb', /component/],
    ['backslash', 'acme/prod\\x/app', /component/],
    ['unicode', 'acme/prod/äpp', /component/],
    ['NUL byte', 'acme/prod/a\u0000b', /component/],
  ];
  for (const [what, full, msg] of invalid) {
    it(`rejects ${what}: ${JSON.stringify(full.length > 40 ? `${full.slice(0, 40)}…` : full)}`, () => {
      const e = nameError(() => parseImageName(full));
      if (msg) assert.match(e.message, msg);
    });
  }
});

describe('isValidOwner / isValidComponent', () => {
  const owners: [string, boolean][] = [
    ['a', true],
    ['acme', true],
    ['a-b', true],
    ['a--b', true],
    ['acme-', true], // OWNER_RE allows a trailing '-'
    ['1', true],
    ['', false],
    ['-a', false],
    ['A', false],
    ['a_b', false],
    ['a.b', false],
    ['o'.repeat(39), true],
    ['o'.repeat(40), false],
  ];
  for (const [s, ok] of owners) it(`owner ${JSON.stringify(s)} → ${ok}`, () => assert.equal(isValidOwner(s), ok));

  const components: [string, boolean][] = [
    ['a', true],
    ['a.b', true],
    ['a_b', true],
    ['a__b', true],
    ['a-b', true],
    ['a---b', true],
    ['a.b.c-d_e', true],
    ['', false],
    ['A', false],
    ['a..b', false],
    ['a___b', false],
    ['-a', false],
    ['a-', false],
    ['_a', false],
    ['a_', false],
    ['.a', false],
    ['a/b', false],
  ];
  for (const [s, ok] of components) it(`component ${JSON.stringify(s)} → ${ok}`, () => assert.equal(isValidComponent(s), ok));
});

describe('isValidTag', () => {
  const cases: [string, string, boolean][] = [
    ['simple', 'latest', true],
    ['version', 'v1.2.3', true],
    ['mixed case', 'Release-Candidate_1', true],
    ['single char', 'a', true],
    ['single digit', '1', true],
    ['leading underscore', '_tag', true],
    ['128 chars', 'a'.repeat(128), true],
    ['129 chars', 'a'.repeat(129), false],
    ['empty', '', false],
    ['leading .', '.tag', false],
    ['leading -', '-tag', false],
    ['colon', 'a:b', false],
    ['slash', 'a/b', false],
    ['plus', 'a+b', false],
    ['space', 'a b', false],
    ['at', 'a@b', false],
    ['unicode', 'tä', false],
    ['newline', 'tag\n', false],
  ];
  for (const [what, tag, ok] of cases) it(`${what} → ${ok}`, () => assert.equal(isValidTag(tag), ok));
});
