import { InvalidVersion } from './dpkg.ts';

/**
 * Alpine package version ordering, as apk-tools' `apk_version_compare`: a version is a token
 * stream `1.2.3a_rc1_p2-r4`: digit runs after dots (a run with leading zeros compares as a
 * fraction: `1.01` < `1.1`), one letter, suffixes (`_alpha` < `_beta` < `_pre` < `_rc` < none
 * < `_cvs` < `_svn` < `_git` < `_hg` < `_p`), each with an optional number, then `-rN`. Two
 * versions are compared token by token while their token types agree; after that the longer
 * one is greater unless what follows is a pre-release suffix. This is apk-tools 2's algorithm
 * (`src/version.c`) step by step, quirks included: after a zero component (`1.0_rc1`) the
 * suffix no longer counts as a pre-release, so `1.0_rc1` > `1.0` there, as `apk version -t` says.
 */

const enum T {
  Invalid = -1,
  DigitOrZero = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  RevisionNo = 5,
  End = 6,
}

const PRE = ['alpha', 'beta', 'pre', 'rc'];
const POST = ['cvs', 'svn', 'git', 'hg', 'p'];

class Cursor {
  pos = 0;
  type: T = T.Digit;
  constructor(readonly s: string) {}

  private code(k = 0): number {
    return this.s.charCodeAt(this.pos + k);
  }

  private get left(): number {
    return this.s.length - this.pos;
  }

  /** apk-tools' `next_token`: the type of what follows the current token (consumes a separator). */
  next(): void {
    let n: T = T.Invalid;
    const c = this.code();
    if (this.left <= 0) n = T.End;
    else if ((this.type === T.Digit || this.type === T.DigitOrZero) && c >= 97 && c <= 122) n = T.Letter;
    else if (this.type === T.Letter && c >= 48 && c <= 57) n = T.Digit;
    else if (this.type === T.Suffix && c >= 48 && c <= 57) n = T.SuffixNo;
    else {
      if (c === 46) n = T.DigitOrZero;
      else if (c === 95) n = T.Suffix;
      else if (c === 45) {
        if (this.left > 1 && this.code(1) === 114) {
          n = T.RevisionNo;
          this.pos++;
        }
      }
      this.pos++;
    }
    if (n < this.type) {
      const allowed = (n === T.DigitOrZero && this.type === T.Digit) || (n === T.Suffix && this.type === T.SuffixNo) || (n === T.Digit && this.type === T.Letter);
      if (!allowed) n = T.Invalid;
    }
    this.type = n;
  }

  /** The value of the suffix token at the cursor, without moving. */
  peekSuffix(): number {
    const saved = [this.pos, this.type] as const;
    const v = this.take();
    [this.pos, this.type] = saved;
    return v;
  }

  /** apk-tools' `get_token`: the current token's value; moves to the next token. */
  take(): number {
    if (this.left <= 0) {
      this.type = T.End;
      return 0;
    }
    let i = 0;
    let v = 0;
    let nt: T = T.Invalid;
    const s = this.s;
    const at = (k: number) => s.charCodeAt(this.pos + k);
    const digit = (k: number) => this.pos + k < s.length && at(k) >= 48 && at(k) <= 57;
    switch (this.type) {
      case T.DigitOrZero:
        if (at(0) === 48) {
          while (this.pos + i < s.length && at(i) === 48) i++;
          nt = T.Digit;
          v = -i;
          break;
        }
      // falls through
      case T.Digit:
      case T.SuffixNo:
      case T.RevisionNo:
        while (digit(i)) {
          v = v * 10 + (at(i) - 48);
          i++;
        }
        break;
      case T.Letter:
        v = at(0);
        i = 1;
        break;
      case T.Suffix: {
        const rest = s.slice(this.pos);
        const pre = PRE.findIndex((p) => rest.startsWith(p));
        if (pre >= 0) {
          i = PRE[pre]!.length;
          v = pre - PRE.length;
          break;
        }
        const post = POST.findIndex((p) => rest.startsWith(p));
        if (post >= 0) {
          i = POST[post]!.length;
          v = post;
          break;
        }
        this.type = T.Invalid;
        return -1;
      }
      default:
        this.type = T.Invalid;
        return -1;
    }
    this.pos += i;
    if (this.left <= 0) this.type = T.End;
    else if (nt !== T.Invalid) this.type = nt;
    else this.next();
    return v;
  }
}

const VALID = /^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(-r[0-9]+)?$/;

/** Whether apk-tools accepts `v` as a version. */
export function isApkVersion(v: string): boolean {
  return VALID.test(v);
}

/** Negative, zero or positive as `a` sorts before, equal to or after `b`. */
export function compareApk(a: string, b: string): number {
  if (!isApkVersion(a)) throw new InvalidVersion('Alpine', a);
  if (!isApkVersion(b)) throw new InvalidVersion('Alpine', b);
  const x = new Cursor(a);
  const y = new Cursor(b);
  let av = 0;
  let bv = 0;
  while (x.type === y.type && x.type !== T.End && x.type !== T.Invalid && av === bv) {
    av = x.take();
    bv = y.take();
  }
  if (av < bv) return -1;
  if (av > bv) return 1;
  if (x.type === y.type) return 0;
  // The longer one is greater unless what follows is a pre-release suffix.
  if (x.type === T.Suffix && x.peekSuffix() < 0) return -1;
  if (y.type === T.Suffix && y.peekSuffix() < 0) return 1;
  if (x.type > y.type) return -1;
  if (y.type > x.type) return 1;
  return 0;
}
