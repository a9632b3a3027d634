/**
 * The version orders the matcher uses. dpkg's is checked differentially against
 * `dpkg --compare-versions` over thousands of generated pairs (one shell for all of them);
 * apk, PEP 440 and SemVer against known orderings.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { compareApk, compareDpkg, comparePep440, compareSemver, comparatorFor, InvalidVersion } from '../../src/core/supply-chain/vulns/versions/index.ts';

/** A small seeded generator, so a failure can be reproduced. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['0', '00', '1', '01', '2', '9', '10', '010', '123', 'a', 'b', 'z', 'A', 'Z', '.', '+', '~', '~~', '~rc1', 'dfsg', 'ubuntu', 'deb12u', '+b1', '.0', '-'];

function dpkgVersion(r: () => number): string {
  const pick = (xs: string[]) => xs[Math.floor(r() * xs.length)]!;
  const part = (first: boolean, hyphen: boolean) => {
    let s = first ? String(Math.floor(r() * 20)) : pick(['0', '1', '2', '10', 'a', '~']);
    const n = Math.floor(r() * 5);
    for (let i = 0; i < n; i++) s += pick(hyphen ? PIECES : PIECES.filter((p) => p !== '-'));
    return s;
  };
  let v = '';
  if (r() < 0.2) v += `${Math.floor(r() * 3)}:`;
  const hasRevision = r() < 0.6;
  v += part(true, hasRevision);
  if (hasRevision) v += `-${part(false, false).replace(/^~/, '0~')}`;
  return v;
}

/** A near neighbour of `v`: the pairs that find bugs are the ones that are almost equal. */
function mutate(v: string, r: () => number): string {
  const ops = [
    () => v + '0',
    () => v + '~',
    () => v + '.0',
    () => v + 'a',
    () => v.replace(/(\d+)/, (d) => '0' + d),
    () => v.replace(/\d(?!.*\d)/, (d) => String((Number(d) + 1) % 10)),
    () => (v.includes(':') ? v.replace(/^\d+:/, '') : `0:${v}`),
    () => (v.includes('-') ? v.slice(0, v.lastIndexOf('-')) : `${v}-0`),
    () => v.replace('~', ''),
    () => v.replace('.', '+'),
  ];
  return ops[Math.floor(r() * ops.length)]!();
}

test('dpkg order agrees with dpkg --compare-versions on every generated pair', () => {
  const r = rng(20261130);
  const pairs: [string, string][] = [];
  while (pairs.length < 2000) {
    const a = dpkgVersion(r);
    const b = r() < 0.5 ? mutate(a, r) : dpkgVersion(r);
    try {
      compareDpkg(a, b);
    } catch {
      continue; // a mutation may make a version dpkg's syntax refuses too (e.g. an empty revision)
    }
    pairs.push([a, b]);
  }
  // One shell runs every comparison: -1, 0 or 1 per line (a second dpkg only when not "lt").
  const script =
    'while IFS=" " read -r a b; do if dpkg --compare-versions "$a" lt "$b"; then echo -1; elif dpkg --compare-versions "$a" eq "$b"; then echo 0; else echo 1; fi; done';
  const started = Date.now();
  const out = execFileSync('sh', ['-c', script], { input: pairs.map(([a, b]) => `${a} ${b}`).join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 24 });
  const lines = out.trim().split('\n');
  assert.equal(lines.length, pairs.length);
  const mismatches: string[] = [];
  let equal = 0;
  for (const [i, [a, b]] of pairs.entries()) {
    const expected = Number(lines[i]);
    if (expected === 0) equal++;
    const got = compareDpkg(a, b);
    if (got !== expected) mismatches.push(`${a} vs ${b}: dpkg ${expected}, ours ${got}`);
  }
  assert.deepEqual(mismatches.slice(0, 20), []);
  assert.ok(equal > 50, `the generated pairs include equal versions (${equal})`);
  assert.ok(Date.now() - started < 30_000);
});

test('dpkg order: epochs, tildes, revisions', () => {
  const ordered = ['1.0~rc1', '1.0', '1.0-0.1', '1.0-1', '1.0-1+b1', '1.0-1+deb12u1', '1.0a', '1.0+dfsg-1', '1.0.1', '1:0.1', '2:0'];
  for (let i = 0; i + 1 < ordered.length; i++) assert.equal(compareDpkg(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
  assert.equal(compareDpkg('1.0', '1.0-0'), 0);
  assert.equal(compareDpkg('0:1.0', '1.0'), 0);
  assert.equal(compareDpkg('1.01', '1.1'), 0);
  assert.throws(() => compareDpkg('a:1', '1'), InvalidVersion);
});

test('apk order: suffixes, letters, revisions, leading zeros', () => {
  const less: [string, string][] = [
    ['1.0_alpha', '1.0_alpha2'],
    ['1.0_alpha2', '1.0_beta'],
    ['1.0_beta1', '1.0_pre1'],
    ['1.0_pre1', '1.0_rc1'],
    ['1.1_rc9', '1.1'],
    ['2.4_beta2-r3', '2.4'],
    ['1.0', '1.0-r1'],
    ['1.0-r1', '1.0-r10'],
    ['1.0-r10', '1.0_p1'],
    ['1.0_cvs', '1.0_p1'],
    ['1.0_p1', '1.0_p10-r0'],
    ['1.0', '1.0a'],
    ['1.0a', '1.0b'],
    ['1.0b', '1.0.1'],
    ['1.0_p9', '1.0.1'],
    ['1.01', '1.1'],
    ['1.2', '1.10'],
    ['1.2.9', '1.2.10'],
    ['3.0.11-r0', '3.1.4-r5'],
    ['1.0_alpha_pre2', '1.0_alpha'],
    ['2.9.11_pre20051101', '2.9.11_pre20061021-r1'],
  ];
  for (const [a, b] of less) {
    assert.equal(compareApk(a, b), -1, `${a} < ${b}`);
    assert.equal(compareApk(b, a), 1, `${b} > ${a}`);
  }
  assert.equal(compareApk('1.0-r0', '1.0-r0'), 0);
  // apk-tools 2 quirk kept on purpose: after a zero component the suffix no longer counts as a pre-release.
  assert.equal(compareApk('1.0_rc1', '1.0'), 1);
  assert.equal(compareApk('006', '6'), 0);
  assert.throws(() => compareApk('1.0bc', '1.0'), InvalidVersion);
  assert.throws(() => compareApk('1.0_foo', '1.0'), InvalidVersion);
});

test('PEP 440 order: epochs, pre/post/dev releases, local versions', () => {
  const ordered = [
    '1.0.dev0',
    '1.0a1.dev1',
    '1.0a1',
    '1.0b1',
    '1.0rc1',
    '1.0',
    '1.0+abc',
    '1.0+abc.5',
    '1.0+5',
    '1.0.post1.dev1',
    '1.0.post1',
    '1.0.1',
    '1.1.dev1',
    '2.0',
    '1!0.1',
  ];
  for (let i = 0; i + 1 < ordered.length; i++) assert.equal(comparePep440(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
  for (const [a, b] of [
    ['1.0', '1.0.0'],
    ['1.0alpha1', '1.0a1'],
    ['1.0-1', '1.0.post1'],
    ['1.0c1', '1.0rc1'],
    ['v1.0', '1.0'],
    ['1.0.RC1', '1.0rc1'],
    ['1.0-r', '1.0.post0'],
  ]) assert.equal(comparePep440(a!, b!), 0, `${a} = ${b}`);
  assert.throws(() => comparePep440('not a version', '1'), InvalidVersion);
});

test('SemVer order and the comparator of each ecosystem', () => {
  assert.equal(compareSemver('1.0.0-rc.1', '1.0.0'), -1);
  assert.equal(compareSemver('v1.2.3', '1.2.3'), 0);
  assert.equal(compareSemver('1.0.0-alpha.10', '1.0.0-alpha.9'), 1);
  assert.equal(compareSemver('0.0.0-20230101000000-abcdefabcdef', '0.1.0'), -1);
  assert.throws(() => compareSemver('1.0', '1.0.0'), InvalidVersion);
  assert.equal(comparatorFor('Debian:12'), compareDpkg);
  assert.equal(comparatorFor('Ubuntu:22.04'), compareDpkg);
  assert.equal(comparatorFor('Alpine:v3.19'), compareApk);
  assert.equal(comparatorFor('PyPI'), comparePep440);
  assert.equal(comparatorFor('npm'), compareSemver);
  assert.equal(comparatorFor('PyPI', 'SEMVER'), compareSemver);
  assert.equal(comparatorFor('Maven'), undefined);
});
