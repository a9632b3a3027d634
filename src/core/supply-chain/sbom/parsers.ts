/**
 * Parsers of the package databases an image's files hold: `os-release`, dpkg's `status` (and
 * distroless `status.d/*`), Alpine's `lib/apk/db/installed`, npm `package.json`, Python
 * `METADATA` / `PKG-INFO`. Pure and forgiving: malformed input yields fewer packages, never a
 * throw. Each returns at most `limit` packages.
 */
import type { InventoryOs, PackageType } from '../inventory.ts';

/** A package as found in one file, before the image's OS gives it a package URL. */
export interface FoundPackage {
  type: PackageType;
  name: string;
  version: string;
  source?: { name: string; version: string };
  arch?: string;
}

/** `KEY=value` lines, values optionally quoted (os-release(5)). */
export function parseOsRelease(text: string): InventoryOs | undefined {
  const v: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let val = m[2]!.trim();
    if (val.length >= 2 && (val[0] === '"' || val[0] === "'") && val.endsWith(val[0])) val = val.slice(1, -1).replace(/\\(["'\\$`])/g, '$1');
    v[m[1]!] = val;
  }
  if (!v.ID) return undefined;
  return { id: v.ID.toLowerCase(), ...(v.VERSION_ID ? { versionId: v.VERSION_ID } : {}), ...(v.PRETTY_NAME ? { prettyName: v.PRETTY_NAME } : {}) };
}

/** RFC 822-style stanzas separated by blank lines; continuation lines (leading space) folded away. */
function stanzas(text: string, limit: number): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  let cur: Record<string, string> = {};
  let last: string | undefined;
  const flush = () => {
    if (Object.keys(cur).length) out.push(cur);
    cur = {};
    last = undefined;
  };
  for (const line of text.split('\n')) {
    if (out.length >= limit) break;
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (line[0] === ' ' || line[0] === '\t') continue; // continuation: descriptions, conffiles
    const i = line.indexOf(':');
    if (i <= 0) continue;
    last = line.slice(0, i);
    cur[last] = line.slice(i + 1).trim();
  }
  flush();
  return out.slice(0, limit);
}

/**
 * dpkg's status database: installed packages with their source package (`Source: glibc` or
 * `Source: glibc (2.36-9)` when the source version differs; without `Source:` the binary is its
 * own source). Entries of distroless `status.d/` have no `Status:` and count as installed.
 */
export function parseDpkgStatus(text: string, limit: number): FoundPackage[] {
  const out: FoundPackage[] = [];
  for (const s of stanzas(text, limit)) {
    const name = s.Package;
    const version = s.Version;
    if (!name || !version) continue;
    if (s.Status !== undefined && !/\binstalled$/.test(s.Status)) continue; // config-files, half-installed, not-installed
    let source = { name, version };
    if (s.Source) {
      const m = /^(\S+)(?:\s+\((\S+)\))?/.exec(s.Source);
      if (m) source = { name: m[1]!, version: m[2] ?? version };
    }
    out.push({ type: 'deb', name, version, source, ...(s.Architecture ? { arch: s.Architecture } : {}) });
  }
  return out;
}

/** Alpine's installed database: `P:` name, `V:` version, `A:` arch, `o:` origin (the source package). */
export function parseApkInstalled(text: string, limit: number): FoundPackage[] {
  const out: FoundPackage[] = [];
  let cur: Record<string, string> = {};
  const flush = () => {
    if (cur.P && cur.V && out.length < limit) {
      out.push({ type: 'apk', name: cur.P, version: cur.V, source: { name: cur.o ?? cur.P, version: cur.V }, ...(cur.A ? { arch: cur.A } : {}) });
    }
    cur = {};
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      flush();
      continue;
    }
    if (line[1] === ':' && !(line[0]! in cur)) cur[line[0]!] = line.slice(2).trim();
  }
  flush();
  return out;
}

const NPM_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9._~-][a-z0-9._~-]*$/i;

/** An npm `package.json`: the package it describes, when it names itself and a version. */
export function parsePackageJson(text: string): FoundPackage | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const { name, version } = doc as { name?: unknown; version?: unknown };
  if (typeof name !== 'string' || typeof version !== 'string' || !NPM_NAME.test(name) || name.length > 214 || !version || version.length > 256) return undefined;
  return { type: 'npm', name, version };
}

/** Python core metadata (`METADATA`, `PKG-INFO`): `Name:` and `Version:` of the header. */
export function parsePythonMetadata(text: string): FoundPackage | undefined {
  let name: string | undefined;
  let version: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') break; // the body (description) follows the first blank line
    const m = /^(Name|Version):\s*(.+?)\s*$/i.exec(line);
    if (!m) continue;
    if (m[1]!.toLowerCase() === 'name') name ??= m[2];
    else version ??= m[2];
  }
  if (!name || !version || name.length > 256 || version.length > 256) return undefined;
  return { type: 'pypi', name, version };
}
