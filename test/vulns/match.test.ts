/**
 * Matching as the OSV schema evaluates it (docs/schema.md "Evaluation"), severities from CVSS
 * vectors and database words, and record parsing: pure functions over written records.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { affects, inRange, lookups, match, osEcosystem } from '../../src/core/supply-chain/vulns/match.ts';
import { normaliseEcosystem, parseRecord, InvalidRecord } from '../../src/core/supply-chain/vulns/osv.ts';
import { atOrAbove, cvssScore, levelOf, rate } from '../../src/core/supply-chain/vulns/severity.ts';
import { compareDpkg, compareSemver } from '../../src/core/supply-chain/vulns/versions/index.ts';
import { alpineInventory, CRITICAL_V3, debianInventory, records } from './helpers.ts';

test('ranges: introduced/fixed stretches, last_affected, limit, "0", several stretches', () => {
  const r = (events: Record<string, string>[]) => ({ type: 'SEMVER' as const, events: events as never });
  const two = r([{ introduced: '1.0.0' }, { fixed: '1.0.2' }, { introduced: '3.0.0' }, { fixed: '3.2.5' }]);
  assert.deepEqual(inRange(two, '0.9.0', compareSemver), { affected: false });
  assert.deepEqual(inRange(two, '1.0.1', compareSemver), { affected: true, fixed: '1.0.2' });
  assert.deepEqual(inRange(two, '1.0.2', compareSemver), { affected: false });
  assert.deepEqual(inRange(two, '3.1.0', compareSemver), { affected: true, fixed: '3.2.5' });
  assert.deepEqual(inRange(two, '4.0.0', compareSemver), { affected: false });
  // Events out of order are sorted in the ecosystem's order first.
  assert.deepEqual(inRange(r([{ fixed: '3.2.5' }, { introduced: '3.0.0' }, { fixed: '1.0.2' }, { introduced: '1.0.0' }]), '3.0.0', compareSemver), { affected: true, fixed: '3.2.5' });
  const last = r([{ introduced: '0' }, { last_affected: '2.0.0' }]);
  assert.deepEqual(inRange(last, '0.0.1', compareSemver), { affected: true });
  assert.deepEqual(inRange(last, '2.0.0', compareSemver), { affected: true });
  assert.deepEqual(inRange(last, '2.0.1', compareSemver), { affected: false });
  const limited = r([{ introduced: '1.0.0' }, { limit: '2.0.0' }]);
  assert.equal(inRange(limited, '1.9.9', compareSemver).affected, true);
  assert.equal(inRange(limited, '2.0.0', compareSemver).affected, false);
  assert.equal(inRange(r([{ introduced: '0' }, { limit: '*' }]), '99.0.0', compareSemver).affected, true);
  // dpkg order inside an ECOSYSTEM range: ~ sorts before the release.
  const deb = { type: 'ECOSYSTEM' as const, events: [{ introduced: '0' }, { fixed: '3.0.11-1~deb12u2' }] as never };
  assert.equal(inRange(deb, '3.0.11-1~deb12u1', compareDpkg).affected, true);
  assert.equal(inRange(deb, '3.0.11-1', compareDpkg).affected, false);
});

test('affected versions[] match exactly; an unreadable version leaves its range silent', () => {
  const entry = { ecosystem: 'npm', name: 'x', versions: ['1.2.3'], ranges: [{ type: 'SEMVER' as const, events: [{ introduced: '2.0.0' }, { fixed: '2.1.0' }] as never }], severity: 'low' as const };
  assert.deepEqual(affects(entry, '1.2.3'), { affected: true });
  assert.deepEqual(affects(entry, '2.0.5'), { affected: true, fixed: '2.1.0' });
  assert.deepEqual(affects(entry, 'not-a-version'), { affected: false });
});

test('records: ecosystems normalised, withdrawn and foreign ones skipped, invalid ones refused', () => {
  assert.equal(normaliseEcosystem('Ubuntu:22.04:LTS'), 'Ubuntu:22.04');
  assert.equal(normaliseEcosystem('Ubuntu:Pro:18.04:LTS'), undefined);
  assert.equal(normaliseEcosystem('Maven'), undefined);
  const all = records().map((r) => parseRecord(r));
  assert.equal(all.filter(Boolean).length, 6);
  const pysec = all.find((r) => r?.id === 'PYSEC-2023-74')!;
  assert.equal(pysec.affected[0]!.name, 'requests', 'PyPI names are PEP 503-normalised');
  assert.throws(() => parseRecord({ modified: 'x' }), InvalidRecord);
  assert.throws(() => parseRecord({ id: 'A/../B', modified: 'x' }), InvalidRecord);
});

test('severity: CVSS v3 and v4 vectors scored by the library, else the database word', () => {
  assert.equal(cvssScore(CRITICAL_V3), 9.8);
  assert.equal(levelOf(9.8, false), 'critical');
  assert.equal(levelOf(9.8, true), 'high', 'CVSS v2 has no critical');
  assert.equal(cvssScore('garbage'), undefined);
  const v4 = rate([{ type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' }], []);
  assert.deepEqual([v4.severity, v4.score], ['critical', 9.3]);
  assert.equal(rate([], ['MODERATE']).severity, 'medium');
  assert.equal(rate([{ type: 'Ubuntu', score: 'negligible' }], []).severity, 'low');
  assert.equal(rate(undefined, [undefined]).severity, 'unknown');
  assert.equal(atOrAbove('critical', 'high'), true);
  assert.equal(atOrAbove('medium', 'high'), false);
  assert.equal(atOrAbove('unknown', 'low'), false);
  assert.equal(atOrAbove('critical', 'none'), false);
});

test('an inventory is looked up by source package in its OS ecosystem; findings carry the fix', () => {
  assert.equal(osEcosystem({ os: { id: 'debian', versionId: '12' } }), 'Debian:12');
  assert.equal(osEcosystem({ os: { id: 'alpine', versionId: '3.19.1' } }), 'Alpine:v3.19');
  assert.equal(osEcosystem({ os: { id: 'ubuntu', versionId: '22.04' } }), 'Ubuntu:22.04');
  assert.equal(osEcosystem({ os: { id: 'fedora', versionId: '40' } }), undefined);
  const recs = records().map((r) => parseRecord(r)).filter((r) => r !== undefined);
  const index = (eco: string, name: string) => recs.filter((r) => r.affected.some((a) => (a.ecosystem === eco || a.ecosystem === eco.split(':')[0]) && a.name === name));
  const found = match(lookups(debianInventory('sha256:x', false)), index);
  const byPkg = new Map(found.map((f) => [`${f.id} ${f.package.name}`, f]));
  assert.deepEqual([...byPkg.keys()].sort(), ['DEBIAN-CVE-2024-9002 zlib1g', 'DSA-9001-1 libssl3', 'DSA-9001-1 openssl', 'GHSA-xvch-5gv4-984h minimist', 'PYSEC-2023-74 requests']);
  assert.equal(byPkg.get('DSA-9001-1 libssl3')!.fixed, '3.0.11-1~deb12u2');
  assert.equal(byPkg.get('DSA-9001-1 libssl3')!.severity, 'critical');
  assert.equal(byPkg.get('DEBIAN-CVE-2024-9002 zlib1g')!.fixed, undefined);
  assert.equal(found[0]!.severity, 'critical', 'worst first');
  assert.deepEqual(match(lookups(debianInventory('sha256:y', true)), index), []);
  const alpine = match(lookups(alpineInventory('sha256:z')), index);
  assert.deepEqual(alpine.map((f) => [f.id, f.package.name, f.fixed, f.severity]), [['ALPINE-CVE-2024-9003', 'ssl_client', '1.36.1-r16', 'low']]);
});
