import type { ImageInventory, InventoryPackage } from '../inventory.ts';
import type { Affected, AffectedRange, VulnRecord } from './osv.ts';
import { normaliseName } from './osv.ts';
import { rank, type Severity } from './severity.ts';
import { type Compare, comparatorFor } from './versions/index.ts';

/**
 * Matching an image's inventory against OSV records, exactly as the OSV schema's evaluation
 * (docs/schema.md "Evaluation"): a version is affected when `affected[].versions` lists it or
 * it lies in a range (ECOSYSTEM or SEMVER; events sorted in the ecosystem's order,
 * `introduced: "0"` first; `limit` bounds the range). Debian, Ubuntu and Alpine records name
 * source packages, so OS packages are looked up by their source (origin) and its version.
 */

/** One package looked up in one ecosystem. */
export interface Lookup {
  ecosystem: string;
  /** The name records use (the source package for OS packages, PEP 503 for PyPI). */
  name: string;
  /** The version compared (the source version for OS packages). */
  version: string;
  pkg: InventoryPackage;
}

export interface Finding {
  id: string;
  aliases: string[];
  summary?: string;
  severity: Severity;
  score?: number;
  vector?: string;
  ecosystem: string;
  package: { name: string; type: string; version: string; purl: string; source?: { name: string; version: string }; location?: string };
  /** The installed version (the binary package's). */
  installed: string;
  /** The first fixed version after the installed one, when the record names one. */
  fixed?: string;
}

/** The OSV ecosystem of an image's OS (`debian` 12 → `Debian:12`, alpine 3.19.1 → `Alpine:v3.19`). */
export function osEcosystem(inv: Pick<ImageInventory, 'os'>): string | undefined {
  const id = inv.os?.id?.toLowerCase();
  const v = inv.os?.versionId;
  if (!id || !v) return undefined;
  if (id === 'debian' && /^\d+/.test(v)) return `Debian:${/^\d+/.exec(v)![0]}`;
  if (id === 'ubuntu' && /^\d+\.\d+/.test(v)) return `Ubuntu:${/^\d+\.\d+/.exec(v)![0]}`;
  if (id === 'alpine' && /^\d+\.\d+/.test(v)) return `Alpine:v${/^\d+\.\d+/.exec(v)![0]}`;
  return undefined;
}

/** What to look up for each package of an inventory. */
export function lookups(inv: Pick<ImageInventory, 'os' | 'packages'>): Lookup[] {
  const os = osEcosystem(inv);
  const out: Lookup[] = [];
  for (const pkg of inv.packages) {
    switch (pkg.type) {
      case 'deb':
      case 'apk': {
        const wanted = pkg.type === 'deb' ? /^(Debian|Ubuntu):/ : /^Alpine:/;
        if (!os || !wanted.test(os)) continue; // an OS package of an OS Berth cannot place
        out.push({ ecosystem: os, name: pkg.source?.name || pkg.name, version: pkg.source?.version || pkg.version, pkg });
        break;
      }
      case 'npm':
        out.push({ ecosystem: 'npm', name: pkg.name, version: pkg.version, pkg });
        break;
      case 'pypi':
        out.push({ ecosystem: 'PyPI', name: normaliseName('PyPI', pkg.name), version: pkg.version, pkg });
        break;
      case 'golang':
        out.push({ ecosystem: 'Go', name: pkg.name, version: pkg.version.replace(/^v/, ''), pkg });
        break;
    }
  }
  return out;
}

type Point = { kind: 'introduced' | 'fixed' | 'last_affected' | 'limit'; version: string };

function points(range: AffectedRange): Point[] {
  return range.events.map((e) => {
    const kind = Object.keys(e)[0] as Point['kind'];
    return { kind, version: (e as Record<string, string>)[kind]! };
  });
}

/** `a` vs `b` with the OSV special values: introduced `0` before all, a limit containing `*` after all. */
function order(compare: Compare, a: Point, b: Point): number {
  const low = (p: Point) => p.kind === 'introduced' && p.version === '0';
  const high = (p: Point) => p.kind === 'limit' && p.version.includes('*');
  if (low(a) || high(b)) return low(b) || high(a) ? 0 : -1;
  if (low(b) || high(a)) return 1;
  return compare(a.version, b.version);
}

/** Whether `version` lies in the range, and the fix that ends its stretch. Throws InvalidVersion. */
export function inRange(range: AffectedRange, version: string, compare: Compare): { affected: boolean; fixed?: string } {
  const v: Point = { kind: 'fixed', version };
  const pts = points(range);
  const limits = pts.filter((p) => p.kind === 'limit');
  if (limits.length && !limits.some((l) => order(compare, v, l) < 0)) return { affected: false };
  const sorted = pts.filter((p) => p.kind !== 'limit').sort((a, b) => order(compare, a, b));
  let affected = false;
  for (const e of sorted) {
    if (e.kind === 'introduced' && order(compare, v, e) >= 0) affected = true;
    else if (e.kind === 'fixed' && order(compare, v, e) >= 0) affected = false;
    else if (e.kind === 'last_affected' && order(compare, v, e) > 0) affected = false;
  }
  if (!affected) return { affected };
  const fix = sorted.find((e) => e.kind === 'fixed' && order(compare, v, e) < 0);
  return fix ? { affected, fixed: fix.version } : { affected };
}

/** Whether one affected entry covers `version` (listed, or in a range), with the fix of the range it is in. */
export function affects(entry: Affected, version: string): { affected: boolean; fixed?: string } {
  let fixed: string | undefined;
  let hit = entry.versions.includes(version);
  for (const range of entry.ranges) {
    const compare = comparatorFor(entry.ecosystem, range.type);
    if (!compare) continue;
    try {
      const r = inRange(range, version, compare);
      if (r.affected) {
        hit = true;
        if (r.fixed && (fixed === undefined || compareSafe(compare, r.fixed, fixed) < 0)) fixed = r.fixed;
      }
    } catch {
      // A version the ecosystem's order cannot read (ours or the record's): this range says nothing.
    }
  }
  return fixed !== undefined ? { affected: hit, fixed } : { affected: hit };
}

function compareSafe(compare: Compare, a: string, b: string): number {
  try {
    return compare(a, b);
  } catch {
    return 0;
  }
}

const MAX_FINDINGS = 10_000;

/**
 * The findings of an inventory against the records indexed under its lookups (`recordsFor`
 * gives the records of an (ecosystem, name) pair). One finding per (record, package), worst
 * first; at most 10,000.
 */
export function match(items: Lookup[], recordsFor: (ecosystem: string, name: string) => VulnRecord[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    for (const record of recordsFor(item.ecosystem, item.name)) {
      for (const entry of record.affected) {
        if (entry.name !== item.name || (entry.ecosystem !== item.ecosystem && entry.ecosystem !== item.ecosystem.split(':')[0])) continue;
        const r = affects(entry, item.version);
        if (!r.affected) continue;
        const key = `${record.id}\0${item.pkg.purl || item.pkg.name}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const p = item.pkg;
        out.push({
          id: record.id,
          aliases: record.aliases,
          ...(record.summary ? { summary: record.summary } : {}),
          severity: entry.severity,
          ...(entry.score !== undefined ? { score: entry.score, vector: entry.vector } : {}),
          ecosystem: entry.ecosystem,
          package: { name: p.name, type: p.type, version: p.version, purl: p.purl, ...(p.source ? { source: p.source } : {}), ...(p.location ? { location: p.location } : {}) },
          installed: p.version,
          ...(r.fixed !== undefined ? { fixed: r.fixed } : {}),
        });
        break;
      }
      if (out.length >= MAX_FINDINGS) break;
    }
  }
  return out.sort((a, b) => rank(a.severity) - rank(b.severity) || (b.score ?? 0) - (a.score ?? 0) || a.id.localeCompare(b.id) || a.package.name.localeCompare(b.package.name));
}

export type Summary = Record<Severity, number>;

export function summarise(findings: Finding[]): Summary {
  const s: Summary = { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 };
  for (const f of findings) s[f.severity]++;
  return s;
}
