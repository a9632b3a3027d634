import semver from 'semver';
import { compareApk } from './apk.ts';
import { compareDpkg, InvalidVersion } from './dpkg.ts';
import { comparePep440 } from './pep440.ts';

export { compareApk, compareDpkg, comparePep440, InvalidVersion };

/** A total order over one ecosystem's versions; throws `InvalidVersion` for a version it cannot read. */
export type Compare = (a: string, b: string) => number;

/** SemVer 2.0 precedence (`semver`), a leading `v` allowed (Go module versions carry one). */
export function compareSemver(a: string, b: string): number {
  const x = semver.parse(a.replace(/^v/, ''));
  const y = semver.parse(b.replace(/^v/, ''));
  if (!x) throw new InvalidVersion('semantic', a);
  if (!y) throw new InvalidVersion('semantic', b);
  return x.compare(y);
}

/**
 * The order of an OSV ecosystem (`Debian:12` → dpkg): range type `SEMVER` is always SemVer;
 * `ECOSYSTEM` ranges use the ecosystem's own order. undefined for an ecosystem Berth cannot order.
 */
export function comparatorFor(ecosystem: string, rangeType: 'ECOSYSTEM' | 'SEMVER' = 'ECOSYSTEM'): Compare | undefined {
  if (rangeType === 'SEMVER') return compareSemver;
  const base = ecosystem.split(':')[0];
  switch (base) {
    case 'Debian':
    case 'Ubuntu':
      return compareDpkg;
    case 'Alpine':
      return compareApk;
    case 'npm':
    case 'Go':
      return compareSemver;
    case 'PyPI':
      return comparePep440;
    default:
      return undefined;
  }
}
