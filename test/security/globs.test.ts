/**
 * Tag and image globs that repository managers choose (immutable tags, retention rules) are
 * matched in linear time (docs/security.md, "Lifecycle globs"): as a RegExp, `*a*a*a*a*a*a*b`
 * against a tag of 80 `a` took ~20 s of the one event loop, for every tenant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { globMatcher } from '../../src/core/lifecycle/policy.ts';
import { ADMIN, USER_PASSWORD, type EventsBerth, apiOk, basic, openBerth, pushImage } from '../events/helpers.ts';

const EVIL = '*a'.repeat(6) + '*b';
const TAG = 'a'.repeat(80);

describe('globs chosen by repository managers', () => {
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

  it('match as globs do: * any run, ? one character, the rest literal, the whole string', () => {
    const cases: [string, string, boolean][] = [
      ['*', '', true], ['v*', 'v1.2', true], ['v*', 'x1', false], ['v?.?', 'v1.2', true], ['v?.?', 'v1.23', false],
      ['*-rc*', '1.0-rc1', true], ['a*b*c', 'abbbc', true], ['a*b*c', 'acb', false], ['1.0', '1x0', false], ['**a', 'ba', true],
      ['*/app', 'team/app', true], ['*/app', 'app', false], [EVIL, TAG, false], [EVIL, `${TAG}b`, true],
    ];
    for (const [glob, text, want] of cases) assert.equal(globMatcher(glob).test(text), want, `${glob} ~ ${text}`);
  });

  it('an immutable-tag pattern and a retention rule built to backtrack cost nothing', async () => {
    await apiOk(b.app, 'PUT', '/api/v1/repos/evil/r/lifecycle', mallory, { immutableTags: EVIL }, 200);
    await apiOk(b.app, 'PUT', '/api/v1/repos/evil/r/retention', mallory, { rules: [{ tags: EVIL, images: EVIL, keep: { mostRecentlyPushed: 1 } }] }, 200);
    const started = Date.now();
    await pushImage(b.app, 'evil/r/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', TAG, mallory);
    await apiOk(b.app, 'GET', '/api/v1/repos/evil/r/retention/plan', mallory, undefined, 200);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });
});
