import { InvalidVersion } from './dpkg.ts';

/**
 * Python version ordering (PEP 440, as the `packaging` library sorts): `N!` epoch, the release
 * (trailing zeros ignored: `1.0` = `1`), pre-releases `aN` < `bN` < `rcN` (spellings `alpha`,
 * `beta`, `c`, `pre`, `preview` normalised), post-releases (`.postN`, `-N`, `rev`, `r`),
 * developmental releases (`.devN`, before everything else of the same release), and `+local`
 * labels (a version with one sorts after the same version without; numeric parts after
 * alphanumeric ones).
 */

const PATTERN =
  /^v?(?:(\d+)!)?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|c|rc|alpha|beta|pre|preview)[-_.]?(\d+)?)?(?:-(\d+)|[-_.]?(post|rev|r)[-_.]?(\d+)?)?(?:[-_.]?(dev)[-_.]?(\d+)?)?(?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?$/i;

type Part = number | string;

interface Pep440 {
  epoch: bigint;
  release: bigint[];
  pre?: [number, bigint];
  post?: bigint;
  dev?: bigint;
  local?: Part[];
}

const PRE_RANK: Record<string, number> = { a: 0, alpha: 0, b: 1, beta: 1, c: 2, rc: 2, pre: 2, preview: 2 };

export function parsePep440(v: string): Pep440 {
  const m = PATTERN.exec(v.trim());
  if (!m) throw new InvalidVersion('Python', v);
  const release = m[2]!.split('.').map((n) => BigInt(n));
  while (release.length > 1 && release[release.length - 1] === 0n) release.pop();
  const out: Pep440 = { epoch: BigInt(m[1] ?? 0), release };
  if (m[3]) out.pre = [PRE_RANK[m[3].toLowerCase()]!, BigInt(m[4] ?? 0)];
  if (m[5] !== undefined) out.post = BigInt(m[5]);
  else if (m[6]) out.post = BigInt(m[7] ?? 0);
  if (m[8]) out.dev = BigInt(m[9] ?? 0);
  if (m[10]) out.local = m[10].toLowerCase().split(/[-_.]/).map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  return out;
}

function cmp(a: bigint | number | string, b: bigint | number | string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The pre-release key: a dev release with no pre/post sorts before every pre-release. */
function preKey(v: Pep440): [number, bigint] {
  if (v.pre) return v.pre;
  if (v.post === undefined && v.dev !== undefined) return [-1, 0n];
  return [3, 0n]; // a final release: after every pre-release
}

function compareLocal(a: Part[] | undefined, b: Part[] | undefined): number {
  if (!a || !b) return a ? 1 : b ? -1 : 0;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (typeof x !== typeof y) return typeof x === 'number' ? 1 : -1;
    const c = cmp(x, y);
    if (c) return c;
  }
  return 0;
}

/** Negative, zero or positive as `a` sorts before, equal to or after `b`. */
export function comparePep440(a: string, b: string): number {
  const x = parsePep440(a);
  const y = parsePep440(b);
  let c = cmp(x.epoch, y.epoch);
  if (c) return c;
  for (let i = 0; i < Math.max(x.release.length, y.release.length); i++) {
    c = cmp(x.release[i] ?? 0n, y.release[i] ?? 0n);
    if (c) return c;
  }
  const [xp, yp] = [preKey(x), preKey(y)];
  c = cmp(xp[0], yp[0]) || cmp(xp[1], yp[1]);
  if (c) return c;
  // No post-release sorts before any post-release; no dev release after any dev release.
  c = x.post === undefined ? (y.post === undefined ? 0 : -1) : y.post === undefined ? 1 : cmp(x.post, y.post);
  if (c) return c;
  c = x.dev === undefined ? (y.dev === undefined ? 0 : 1) : y.dev === undefined ? -1 : cmp(x.dev, y.dev);
  if (c) return c;
  return compareLocal(x.local, y.local);
}
