import type { Access, Identity } from '../access/access.ts';
import { EVENT_ACTIONS, QUIET_ACTIONS } from './bus.ts';
import { ApiError } from '../access/tenancy.ts';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { EventCursor, EventFilter, EventRecord, EventStore, PullStats } from '../../metadata/event-store.ts';

export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;
/** Rows fetched per query while exporting. */
const EXPORT_PAGE = 1000;
const DAY_MS = 86_400_000;

export interface EventQuery {
  repository?: string;
  actor?: string;
  /** One action or several, comma-separated. */
  action?: string;
  since?: string;
  until?: string;
  cursor?: string;
  limit?: string;
}

/** An opaque cursor: base64url of `[time, id]` of the last event of a page. */
export function encodeCursor(c: EventCursor): string {
  return Buffer.from(JSON.stringify([c.time, c.id])).toString('base64url');
}

export function decodeCursor(s: string): EventCursor {
  try {
    const v = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && v.every((x) => Number.isSafeInteger(x))) return { time: v[0] as number, id: v[1] as number };
  } catch {
    /* below */
  }
  throw new ApiError(400, 'INVALID', 'invalid cursor: pass back the nextCursor of a previous page');
}

/**
 * A point in time: an ISO 8601 date or date-time, milliseconds since the epoch, or a duration
 * back from now (`90m`, `12h`, `7d`, `2w`).
 */
export function parseTime(raw: string, name: string, now = Date.now()): number {
  const s = raw.trim();
  const rel = /^(\d+)([smhdw])$/.exec(s);
  if (rel) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS }[rel[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return now - Number(rel[1]) * unit;
  }
  if (/^\d{10,}$/.test(s)) return Number(s);
  if (/^\d{4}-\d{2}-\d{2}/.test(s)) {
    const t = Date.parse(s);
    if (!Number.isNaN(t)) return t;
  }
  throw new ApiError(400, 'INVALID', `${name}: use an ISO 8601 time (2024-05-01T12:00:00Z), milliseconds since the epoch, or a duration back from now (12h, 7d)`);
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_PAGE;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new ApiError(400, 'INVALID', `limit must be a positive integer (at most ${MAX_PAGE})`);
  return Math.min(Number(raw), MAX_PAGE);
}

function splitRepository(s: string): [string, string] {
  const parts = s.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new ApiError(400, 'INVALID', `repository must be OWNER/REPOSITORY, got "${s.slice(0, 200)}"`);
  return [parts[0], parts[1]];
}

export interface EventPage {
  events: EventRecord[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface Analytics extends PullStats {
  repository: string;
  since: number;
  until: number;
}

/**
 * The audit log and download analytics over the event store. Site administrators see every
 * event; anyone else sees only the events of repositories they may manage, and none that
 * concern no repository (logins, user administration). Asking about a repository one may not
 * read answers 404, one may read but not manage 403.
 */
export class AuditLog {
  constructor(
    private readonly store: EventStore | undefined,
    private readonly access: Access,
    private readonly accessStore: AccessStore,
  ) {}

  private requireStore(): EventStore {
    if (!this.store) throw new ApiError(503, 'UNAVAILABLE', 'events are not configured on this server');
    return this.store;
  }

  private async requireManage(actor: Identity, owner: string, name: string): Promise<void> {
    const acc = await this.access.check(actor, owner, name);
    if (!acc.repository || !acc.actions.has('pull')) throw new ApiError(404, 'NOT_FOUND', `repository ${owner}/${name} not found`);
    if (!acc.actions.has('manage')) throw new ApiError(403, 'DENIED', `you may not see the events of ${owner}/${name}`);
  }

  /** Repositories whose events the actor may see: undefined = all. */
  private async visibleRepositories(actor: Identity, repository: string | undefined): Promise<string[] | undefined> {
    if (actor.kind === 'anonymous') throw new ApiError(401, 'UNAUTHORIZED', 'sign in to see events');
    const siteAdmin = actor.kind === 'user' && actor.siteAdmin;
    if (repository !== undefined) {
      const [owner, name] = splitRepository(repository);
      if (!siteAdmin) await this.requireManage(actor, owner, name);
      return [repository];
    }
    if (siteAdmin) return undefined;
    if (actor.kind !== 'user') throw new ApiError(403, 'DENIED', 'only users may see events');
    const readable = await this.access.readableRepositoryIds(actor);
    const names: string[] = [];
    if (readable !== 'all') {
      for (const id of readable) {
        const repo = await this.accessStore.findRepositoryById(id);
        if (!repo) continue;
        if ((await this.access.check(actor, repo.owner, repo.name)).actions.has('manage')) names.push(`${repo.owner}/${repo.name}`);
      }
    }
    if (names.length === 0) throw new ApiError(403, 'DENIED', 'you manage no repository: only site administrators and repository administrators see events');
    return names.sort();
  }

  private async filterOf(actor: Identity, q: EventQuery): Promise<EventFilter> {
    const filter: EventFilter = {};
    const repos = await this.visibleRepositories(actor, q.repository || undefined);
    if (repos !== undefined) filter.repositories = repos;
    if (q.actor) filter.actor = q.actor;
    if (q.action) {
      const actions = q.action.split(',').map((a) => a.trim()).filter(Boolean);
      for (const a of actions) {
        if (!(EVENT_ACTIONS as readonly string[]).includes(a)) throw new ApiError(400, 'INVALID', `unknown action "${a.slice(0, 40)}": use ${EVENT_ACTIONS.join(', ')}`);
      }
      filter.actions = actions;
    } else filter.actions = EVENT_ACTIONS.filter((a) => !QUIET_ACTIONS.has(a));
    if (q.since) filter.since = parseTime(q.since, 'since');
    if (q.until) filter.until = parseTime(q.until, 'until');
    return filter;
  }

  /** One page, newest first. */
  async list(actor: Identity, q: EventQuery): Promise<EventPage> {
    const store = this.requireStore();
    const filter = await this.filterOf(actor, q);
    const limit = parseLimit(q.limit);
    const before = q.cursor ? decodeCursor(q.cursor) : undefined;
    const rows = await store.listEvents(filter, { limit: limit + 1, ...(before ? { before } : {}) });
    const events = rows.slice(0, limit);
    const last = events[events.length - 1];
    return { events, nextCursor: rows.length > limit && last ? encodeCursor({ time: last.time, id: last.id }) : null };
  }

  /**
   * Every matching event, newest first, fetched a page at a time (memory stays flat however
   * many there are). Access is checked before the first row; `limit` caps the total if given.
   */
  async export(actor: Identity, q: EventQuery): Promise<AsyncGenerator<EventRecord>> {
    const store = this.requireStore();
    const filter = await this.filterOf(actor, q);
    const cap = q.limit ? parseLimit(q.limit) : Infinity;
    let before = q.cursor ? decodeCursor(q.cursor) : undefined;
    return (async function* () {
      let sent = 0;
      while (sent < cap) {
        const rows = await store.listEvents(filter, { limit: Math.min(EXPORT_PAGE, cap - sent), ...(before ? { before } : {}) });
        for (const r of rows) yield r;
        sent += rows.length;
        const last = rows[rows.length - 1];
        if (!last || rows.length < EXPORT_PAGE) return;
        before = { time: last.time, id: last.id };
      }
    })();
  }

  /** Pull analytics of OWNER/REPOSITORY over [since, until) (default: the last 30 days). */
  async analytics(actor: Identity, owner: string, name: string, q: { since?: string; until?: string; top?: string }): Promise<Analytics> {
    const store = this.requireStore();
    if (actor.kind === 'anonymous') throw new ApiError(401, 'UNAUTHORIZED', 'sign in to see analytics');
    const siteAdmin = actor.kind === 'user' && actor.siteAdmin;
    if (!siteAdmin) await this.requireManage(actor, owner, name);
    else if (!(await this.accessStore.findRepository(owner, name))) throw new ApiError(404, 'NOT_FOUND', `repository ${owner}/${name} not found`);
    const now = Date.now();
    const until = q.until ? parseTime(q.until, 'until', now) : now + 1;
    const since = q.since ? parseTime(q.since, 'since', now) : until - 30 * DAY_MS;
    if (since >= until) throw new ApiError(400, 'INVALID', 'since must be before until');
    const top = q.top ? Math.min(parseLimit(q.top), MAX_PAGE) : 100;
    const repository = `${owner}/${name}`;
    return { repository, since, until, ...(await store.pullStats(repository, since, until, top)) };
  }
}
