/**
 * Debian package version ordering, as `dpkg --compare-versions` (deb-version(7)): an optional
 * numeric `epoch:`, the upstream version, an optional `-revision` after the last hyphen. Upstream
 * and revision compare by alternating runs: non-digits character by character (`~` before
 * anything, even the end; then the end; then letters; then everything else by code), and digit
 * runs as numbers. A missing revision equals `0`.
 */

export class InvalidVersion extends Error {
  constructor(kind: string, version: string) {
    super(`invalid ${kind} version "${version.slice(0, 80)}"`);
    this.name = 'InvalidVersion';
  }
}

interface DpkgVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

const EPOCH = /^\d+$/;

export function parseDpkg(v: string): DpkgVersion {
  const s = v.trim();
  if (!s || /\s/.test(s)) throw new InvalidVersion('Debian', v);
  let epoch = 0;
  let rest = s;
  const colon = s.indexOf(':');
  if (colon >= 0) {
    const e = s.slice(0, colon);
    if (!EPOCH.test(e)) throw new InvalidVersion('Debian', v);
    epoch = Number(e);
    if (!Number.isSafeInteger(epoch)) throw new InvalidVersion('Debian', v);
    rest = s.slice(colon + 1);
  }
  const hyphen = rest.lastIndexOf('-');
  const upstream = hyphen >= 0 ? rest.slice(0, hyphen) : rest;
  const revision = hyphen >= 0 ? rest.slice(hyphen + 1) : '';
  if (!upstream || (hyphen >= 0 && !revision)) throw new InvalidVersion('Debian', v);
  return { epoch, upstream, revision };
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isAlpha(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** dpkg's `order()`: digits and the end 0, `~` -1, letters their code, anything else code + 256. */
function order(c: number): number {
  if (Number.isNaN(c) || isDigit(c)) return 0;
  if (isAlpha(c)) return c;
  if (c === 126) return -1;
  return c + 256;
}

/** dpkg's `verrevcmp`: compares an upstream version or a revision. */
function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      const ac = order(a.charCodeAt(i));
      const bc = order(b.charCodeAt(j));
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a.charCodeAt(i) === 48) i++;
    while (b.charCodeAt(j) === 48) j++;
    while (isDigit(a.charCodeAt(i)) && isDigit(b.charCodeAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a.charCodeAt(i))) return 1;
    if (isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/** Negative, zero or positive as `a` sorts before, equal to or after `b`. */
export function compareDpkg(a: string, b: string): number {
  const x = parseDpkg(a);
  const y = parseDpkg(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return Math.sign(verrevcmp(x.upstream, y.upstream)) || Math.sign(verrevcmp(x.revision, y.revision));
}
