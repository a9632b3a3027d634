import { z } from 'zod';
import { rate, type Rated } from './severity.ts';

/**
 * OSV records (the schema of `ossf/osv-schema` docs/schema.md), as Berth keeps them: the parts
 * matching and reports need (ids, aliases, summary, dates, affected packages with their ranges
 * and versions, a severity per affected package computed once at import). `details`,
 * `references` and `credits` are not kept: the report links to the record by id.
 */

/** Ecosystems Berth matches (an ecosystem string's part before `:`). */
export const ECOSYSTEMS = ['Debian', 'Ubuntu', 'Alpine', 'npm', 'PyPI', 'Go'] as const;

export type RangeEvent = { introduced: string } | { fixed: string } | { last_affected: string } | { limit: string };

export interface AffectedRange {
  type: 'ECOSYSTEM' | 'SEMVER';
  events: RangeEvent[];
}

export interface Affected extends Rated {
  /** Normalised: `Ubuntu:22.04:LTS` → `Ubuntu:22.04`. */
  ecosystem: string;
  /** Normalised for PyPI (PEP 503). */
  name: string;
  ranges: AffectedRange[];
  versions: string[];
}

export interface VulnRecord {
  id: string;
  aliases: string[];
  summary?: string;
  /** RFC 3339, as in the record. */
  modified: string;
  published?: string;
  affected: Affected[];
}

const MAX_TEXT = 1000;
const Str = z.string().max(MAX_TEXT);
const Event = z.object({ introduced: Str.optional(), fixed: Str.optional(), last_affected: Str.optional(), limit: Str.optional() }).passthrough();
const SeverityItem = z.object({ type: Str, score: Str }).passthrough();
const Specific = z.record(z.string(), z.unknown()).optional().catch(undefined);

const Raw = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, 'an OSV id'),
    modified: Str,
    published: Str.optional(),
    withdrawn: Str.optional(),
    aliases: z.array(Str).max(500).optional(),
    summary: z.string().optional(),
    severity: z.array(SeverityItem).max(20).optional(),
    database_specific: Specific,
    affected: z
      .array(
        z
          .object({
            package: z.object({ ecosystem: Str, name: Str }).passthrough().optional(),
            severity: z.array(SeverityItem).max(20).optional(),
            ranges: z.array(z.object({ type: Str, events: z.array(Event).max(1000) }).passthrough()).max(200).optional(),
            versions: z.array(Str).max(50_000).optional(),
            ecosystem_specific: Specific,
            database_specific: Specific,
          })
          .passthrough(),
      )
      .max(5000)
      .optional(),
  })
  .passthrough();

export class InvalidRecord extends Error {}

/** `Ubuntu:22.04:LTS` → `Ubuntu:22.04`; undefined for an ecosystem Berth does not match. */
export function normaliseEcosystem(ecosystem: string): string | undefined {
  const base = ecosystem.split(':')[0] as (typeof ECOSYSTEMS)[number];
  if (!ECOSYSTEMS.includes(base)) return undefined;
  if (base === 'Ubuntu') {
    const parts = ecosystem.split(':');
    if (parts[1] === 'Pro') return undefined; // fixes for Ubuntu Pro subscribers only
    return parts.slice(0, 2).join(':');
  }
  return ecosystem;
}

/** PyPI names compare normalised (PEP 503): `Foo_Bar.baz` → `foo-bar-baz`. */
export function normaliseName(ecosystem: string, name: string): string {
  return ecosystem === 'PyPI' ? name.toLowerCase().replace(/[-_.]+/g, '-') : name;
}

function severityWord(o: Record<string, unknown> | undefined): unknown {
  return o?.severity;
}

/** The id of a withdrawn record (to remove it if an earlier import stored it), else undefined. */
export function withdrawnId(doc: unknown): string | undefined {
  const d = doc as { id?: unknown; withdrawn?: unknown } | null;
  return d && typeof d === 'object' && typeof d.id === 'string' && typeof d.withdrawn === 'string' && d.id.length <= 200 ? d.id : undefined;
}

/**
 * Reads an OSV record: undefined when it is withdrawn or names no ecosystem Berth matches;
 * throws InvalidRecord when it is not an OSV record.
 */
export function parseRecord(doc: unknown): VulnRecord | undefined {
  const r = Raw.safeParse(doc);
  if (!r.success) throw new InvalidRecord(r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'record'}: ${i.message}`).join('; '));
  const raw = r.data;
  if (raw.withdrawn) return undefined;
  const affected: Affected[] = [];
  for (const a of raw.affected ?? []) {
    if (!a.package) continue;
    const ecosystem = normaliseEcosystem(a.package.ecosystem);
    if (!ecosystem) continue;
    const ranges: AffectedRange[] = [];
    for (const range of a.ranges ?? []) {
      if (range.type !== 'ECOSYSTEM' && range.type !== 'SEMVER') continue; // GIT needs the repository
      const events: RangeEvent[] = [];
      for (const e of range.events) {
        if (e.introduced !== undefined) events.push({ introduced: e.introduced });
        else if (e.fixed !== undefined) events.push({ fixed: e.fixed });
        else if (e.last_affected !== undefined) events.push({ last_affected: e.last_affected });
        else if (e.limit !== undefined) events.push({ limit: e.limit });
      }
      if (events.some((e) => 'introduced' in e)) ranges.push({ type: range.type, events });
    }
    const versions = a.versions ?? [];
    if (!ranges.length && !versions.length) continue;
    const rated = rate(a.severity?.length ? a.severity : raw.severity, [
      severityWord(a.database_specific),
      severityWord(a.ecosystem_specific),
      severityWord(raw.database_specific),
    ]);
    affected.push({ ecosystem, name: normaliseName(ecosystem.split(':')[0]!, a.package.name), ranges, versions, ...rated });
  }
  if (!affected.length) return undefined;
  return {
    id: raw.id,
    aliases: [...new Set(raw.aliases ?? [])],
    ...(raw.summary ? { summary: raw.summary.slice(0, MAX_TEXT) } : {}),
    modified: raw.modified,
    ...(raw.published ? { published: raw.published } : {}),
    affected,
  };
}
