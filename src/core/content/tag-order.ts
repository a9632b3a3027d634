/**
 * The sorts of a tag list (docs/ui.md): by name, by semantic version (highest first, here) and
 * by push time (newest first: the metadata store orders by it itself).
 */
import semver from 'semver';
import type { TagEntry } from '../../metadata/metadata-store.ts';

export const TAG_SORTS = ['name', 'semver', 'time'] as const;
export type TagSort = (typeof TAG_SORTS)[number];

/** `1`, `1.2`, `v1.2.3`, `1.2.3-rc.1`, `1.2.3+build`: what people tag releases with. */
const VERSIONISH = /^v?\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

/** The version a tag names, or null (`latest`, `main`, `sha-abc`). `1.2` reads as 1.2.0. */
export function tagVersion(tag: string): semver.SemVer | null {
  if (!VERSIONISH.test(tag)) return null;
  const parsed = semver.parse(tag.replace(/^v/, ''), { loose: true });
  if (parsed) return parsed;
  // a partial version (1, 1.2), possibly with a pre-release: pad it to three numbers
  const m = /^v?(\d+)(?:\.(\d+))?(-[0-9A-Za-z.-]+)?/.exec(tag)!;
  return semver.parse(`${m[1]}.${m[2] ?? 0}.0${m[3] ?? ''}`, { loose: true });
}

/**
 * Tags by version, highest first (1.10.0 before 1.9.0, 2.0.0 before 2.0.0-rc.1); equal versions
 * (`1.2` and `v1.2.0`) by name; tags that are no version after every version, by name.
 */
export function bySemver(tags: TagEntry[]): TagEntry[] {
  const keyed = tags.map((t) => ({ t, v: tagVersion(t.name) }));
  keyed.sort((a, b) => {
    if (a.v && b.v) return semver.rcompare(a.v, b.v) || cmp(a.t.name, b.t.name);
    if (a.v) return -1;
    if (b.v) return 1;
    return cmp(a.t.name, b.t.name);
  });
  return keyed.map((k) => k.t);
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
