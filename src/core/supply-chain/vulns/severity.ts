import cvss from 'ae-cvss-calculator';

/** Severity levels, worst first. `unknown`: the record gives none Berth can read. */
export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'unknown'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Policy thresholds: deny at or above a level, or never. */
export const THRESHOLDS = ['critical', 'high', 'medium', 'low', 'none'] as const;
export type Threshold = (typeof THRESHOLDS)[number];

/** 0 for critical … 4 for unknown: lower is worse. */
export function rank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/** Whether `s` is at or above `threshold` (`unknown` is below every threshold; `none` denies nothing). */
export function atOrAbove(s: Severity, threshold: Threshold): boolean {
  if (threshold === 'none' || s === 'unknown') return false;
  return rank(s) <= rank(threshold);
}

export interface Rated {
  severity: Severity;
  /** The CVSS base score, when a vector gave the level. */
  score?: number;
  /** The vector scored (`CVSS:3.1/AV:N/…`). */
  vector?: string;
}

interface CvssVector {
  calculateScores(): { base?: number };
}

const lib = cvss as unknown as { fromVector(v: string): CvssVector | undefined };

/** A CVSS base score from a v2, v3.x or v4.0 vector, or undefined for one the library cannot score. */
export function cvssScore(vector: string): number | undefined {
  if (vector.length > 300) return undefined;
  try {
    const base = lib.fromVector(vector)?.calculateScores().base;
    return typeof base === 'number' && Number.isFinite(base) && base >= 0 && base <= 10 ? base : undefined;
  } catch {
    return undefined;
  }
}

/** The qualitative rating of a score (CVSS v3/v4: 9.0 critical, 7.0 high, 4.0 medium; v2 has no critical). */
export function levelOf(score: number, v2: boolean): Severity {
  if (score >= 9 && !v2) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  return score > 0 ? 'low' : 'unknown';
}

const WORDS: Record<string, Severity> = {
  critical: 'critical',
  high: 'high',
  important: 'high',
  moderate: 'medium',
  medium: 'medium',
  low: 'low',
  negligible: 'low',
  minor: 'low',
  unimportant: 'low',
};

/** A database's word for severity (`HIGH`, `moderate`, Ubuntu's priorities), or undefined. */
export function levelOfWord(word: unknown): Severity | undefined {
  return typeof word === 'string' ? WORDS[word.trim().toLowerCase()] : undefined;
}

type OsvSeverity = { type?: unknown; score?: unknown };

/**
 * The severity of a record for one affected package: its CVSS vectors first (v4, then v3.x,
 * then v2: the newest the library scores), else a database's word (`database_specific` or
 * `ecosystem_specific` `.severity`, an `Ubuntu` priority), else unknown.
 */
export function rate(severity: OsvSeverity[] | undefined, words: unknown[]): Rated {
  const list = Array.isArray(severity) ? severity : [];
  for (const type of ['CVSS_V4', 'CVSS_V3', 'CVSS_V2']) {
    for (const s of list) {
      if (s?.type !== type || typeof s.score !== 'string') continue;
      const score = cvssScore(s.score);
      if (score !== undefined) return { severity: levelOf(score, type === 'CVSS_V2'), score, vector: s.score };
    }
  }
  for (const s of list) {
    const w = levelOfWord(s?.score);
    if (w && s?.type === 'Ubuntu') return { severity: w };
  }
  for (const w of words) {
    const level = levelOfWord(w);
    if (level) return { severity: level };
  }
  return { severity: 'unknown' };
}
