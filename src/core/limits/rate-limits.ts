import { RegistryError } from '../errors.ts';
import type { Identity } from '../access/access.ts';
import { ApiError, type Tenancy } from '../access/tenancy.ts';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { RateLimitKind, RateLimitRecord, RateLimitStore, RateLimitValues } from '../../metadata/rate-limit-store.ts';
import type { Counter } from './counters.ts';

/** One counter a request counts against: its key, who it names to the client, and its bounds. */
export interface LimitSubject {
  /** The counter's key: `a:<address>`, `u:<user id>`, `k:<API key id>`, `t:<token id>`, `r:<OWNER/REPOSITORY>`. */
  key: string;
  /** `Docker-RateLimit-Source`: the address, `user:NAME`, `token:ID` or `repository:OWNER/REPOSITORY`. */
  source: string;
  limit: RateLimitValues;
}

/** Where a request stands against the tightest of its limits: what the RateLimit headers say. */
export interface LimitStanding {
  subject: LimitSubject;
  limit: number;
  remaining: number;
  /** Seconds until the window that refused the request ends (only when refused). */
  retryAfter?: number;
}

/** What a limit is set on: a kind's default, or one subject named as people name it. */
export interface LimitTarget {
  kind: RateLimitKind;
  /** A username, a credential id, `OWNER/REPOSITORY`; absent: the default of the kind. */
  subject?: string;
}

export const REQUEST_WINDOW_SECONDS = 60;
export const BYTE_WINDOW_SECONDS = 86_400;
const MAX_REQUESTS = 1_000_000_000;
const FULL_RELOAD_MS = 60_000;

/** The limits in force, as the hot path reads them: plain maps, swapped whole on a change. */
interface Snapshot {
  empty: boolean;
  anonymous?: RateLimitValues;
  userDefault?: RateLimitValues;
  users: Map<number, RateLimitValues>;
  tokenDefault?: RateLimitValues;
  credentials: Map<number, RateLimitValues>;
  repositoryDefault?: RateLimitValues;
  repositories: Map<string, RateLimitValues>;
}

const EMPTY: Snapshot = { empty: true, users: new Map(), credentials: new Map(), repositories: new Map() };

function snapshotOf(rows: RateLimitRecord[]): Snapshot {
  const s: Snapshot = { empty: rows.length === 0, users: new Map(), credentials: new Map(), repositories: new Map() };
  for (const r of rows) {
    const v = { requestsPerMinute: r.requestsPerMinute, bytesPerDay: r.bytesPerDay };
    if (r.kind === 'anonymous') s.anonymous = v;
    else if (r.kind === 'user') r.subjectId === null ? (s.userDefault = v) : s.users.set(r.subjectId, v);
    else if (r.kind === 'token') r.subjectId === null ? (s.tokenDefault = v) : s.credentials.set(r.subjectId, v);
    else if (r.subjectId === null) s.repositoryDefault = v;
    else if (r.subjectName !== null) s.repositories.set(r.subjectName, v);
  }
  return s;
}

/**
 * An address as a limit counts it: IPv4 whole, IPv6 by its /64 (one host holds a /64 as easily
 * as one address), an IPv4-mapped IPv6 address as its IPv4 address.
 */
export function sourceAddress(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!ip.includes(':')) return ip;
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}

/**
 * Request and byte limits per identity and per repository (docs/limits.md). The limits are
 * rows of the metadata store, read whole into a snapshot that every request consults without
 * I/O; each node re-reads them when the store's change counter moves (polled every
 * `refreshMs`, and whole every minute). With no limit set, `active` is false and the HTTP
 * layer does nothing else: no counting, no headers. Counters live where `Counter` puts them
 * (PostgreSQL, the supervisor, or this process).
 */
export class RateLimits {
  private snapshot: Snapshot = EMPTY;
  private version: string | undefined;
  private loadedAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: RateLimitStore,
    private readonly accessStore: AccessStore,
    private readonly tenancy: Tenancy,
    private readonly counters: { requests: Counter; bytes: Counter },
    private readonly opts: { refreshMs: number; onError?: (e: unknown) => void },
  ) {}

  /** Whether any limit is set: false keeps the hot path to this one check. */
  get active(): boolean {
    return !this.snapshot.empty;
  }

  /** Reads the limits now, then keeps them fresh every `refreshMs`. */
  async start(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => void this.refresh().catch((e: unknown) => this.opts.onError?.(e)), this.opts.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Re-reads the limits when the change counter moved (or a minute has passed: a cascade deletion moves no counter). */
  async refresh(): Promise<void> {
    const version = await this.store.rateLimitVersion();
    if (version !== this.version || Date.now() - this.loadedAt >= FULL_RELOAD_MS) await this.reload(version);
  }

  private async reload(version?: string): Promise<void> {
    const v = version ?? (await this.store.rateLimitVersion());
    const rows = await this.store.listRateLimits();
    this.snapshot = snapshotOf(rows);
    this.version = v;
    this.loadedAt = Date.now();
  }

  /** The counters an identity's requests count against (from `address` when anonymous). */
  identitySubjects(identity: Identity, address: string): LimitSubject[] {
    const s = this.snapshot;
    const out: LimitSubject[] = [];
    if (identity.kind === 'anonymous') {
      if (s.anonymous) {
        const source = sourceAddress(address);
        out.push({ key: `a:${source}`, source, limit: s.anonymous });
      }
    } else if (identity.kind === 'user') {
      // Site administrators are exempt from the default, not from a limit set on them.
      const own = s.users.get(identity.userId) ?? (identity.siteAdmin ? undefined : s.userDefault);
      if (own) out.push({ key: `u:${identity.userId}`, source: `user:${identity.username}`, limit: own });
      const key = identity.apiKeyId === undefined ? undefined : s.credentials.get(identity.apiKeyId);
      if (key) out.push({ key: `k:${identity.apiKeyId}`, source: `token:${identity.apiKeyId}`, limit: key });
    } else {
      const own = s.credentials.get(identity.credentialId) ?? s.tokenDefault;
      if (own) out.push({ key: `t:${identity.credentialId}`, source: `token:${identity.credentialId}`, limit: own });
    }
    return out;
  }

  /** The counter of repository `OWNER/REPOSITORY`, if it has a limit (its own or the default). */
  repositorySubject(repository: string): LimitSubject | undefined {
    const limit = this.snapshot.repositories.get(repository) ?? this.snapshot.repositoryDefault;
    return limit ? { key: `r:${repository}`, source: `repository:${repository}`, limit } : undefined;
  }

  /**
   * Counts one request against each subject with a request limit. Returns the tightest
   * standing (undefined when none has one); `retryAfter` is set when any is over its limit.
   */
  async countRequest(subjects: LimitSubject[]): Promise<LimitStanding | undefined> {
    const bounded = subjects.filter((s) => s.limit.requestsPerMinute !== null);
    if (!bounded.length) return undefined;
    const states = await Promise.all(bounded.map((s) => this.counters.requests.add(s.key, 1)));
    return tightest(bounded, states, (s) => s.limit.requestsPerMinute!, (limit, consumed) => consumed > limit, REQUEST_WINDOW_SECONDS);
  }

  /**
   * The bytes left today for each subject with a byte limit, without counting: `retryAfter`
   * is set when one has nothing left (a new pull is refused; one under way is never cut).
   */
  async bytesStanding(subjects: LimitSubject[]): Promise<LimitStanding | undefined> {
    const bounded = subjects.filter((s) => s.limit.bytesPerDay !== null);
    if (!bounded.length) return undefined;
    const states = await Promise.all(bounded.map((s) => this.counters.bytes.get(s.key)));
    return tightest(bounded, states, (s) => s.limit.bytesPerDay!, (limit, consumed) => consumed >= limit, BYTE_WINDOW_SECONDS);
  }

  /** Adds the bytes a GET served to each subject with a byte limit. */
  async countBytes(subjects: LimitSubject[], bytes: number): Promise<void> {
    if (bytes <= 0) return;
    await Promise.all(subjects.filter((s) => s.limit.bytesPerDay !== null).map((s) => this.counters.bytes.add(s.key, bytes)));
  }

  // ---- management (docs/api.md#rate-limits) ----

  /** The limits the actor may see: all for site administrators; else those of repositories (and their tokens) they manage. */
  async list(actor: Identity): Promise<RateLimitRecord[]> {
    signedIn(actor);
    const rows = await this.store.listRateLimits();
    if (actor.kind === 'user' && actor.siteAdmin) return rows;
    // One query for what the caller manages, whatever the number of limited repositories.
    const managed = new Set(actor.kind === 'user' ? await this.accessStore.listManagedRepositoryIds(actor.userId) : []);
    return rows.filter((r) => {
      const repositoryId = r.kind === 'repository' ? r.subjectId : r.kind === 'token' && r.credentialKind === 'entitlement' ? r.repositoryId : null;
      return typeof repositoryId === 'number' && managed.has(repositoryId);
    });
  }

  /**
   * Sets a limit. Site administrators set anything. A repository's managers may set their
   * repository's limit and its entitlement tokens' limits, within the kind's default when one
   * is set, and may not change a limit a site administrator set.
   */
  async set(actor: Identity, target: LimitTarget, values: RateLimitValues): Promise<RateLimitRecord> {
    for (const [name, v, max] of [
      ['requestsPerMinute', values.requestsPerMinute, MAX_REQUESTS],
      ['bytesPerDay', values.bytesPerDay, Number.MAX_SAFE_INTEGER],
    ] as const) {
      if (v !== null && (!Number.isSafeInteger(v) || v < 0 || v > max)) throw new ApiError(400, 'INVALID', `${name} must be an integer from 0 to ${max}`);
    }
    if (values.requestsPerMinute === null && values.bytesPerDay === null) {
      throw new ApiError(400, 'INVALID', 'set requestsPerMinute, bytesPerDay or both (to remove a limit, delete it)');
    }
    const { subjectId, admin, rows } = await this.resolve(actor, target);
    if (!admin) {
      // A repository admin tightens the site's default of the kind, never loosens it.
      const def = rows.find((r) => r.kind === target.kind && r.subjectId === null);
      for (const key of ['requestsPerMinute', 'bytesPerDay'] as const) {
        const cap = def?.[key];
        if (cap === undefined || cap === null) continue;
        if (values[key] === null || values[key]! > cap) {
          throw new ApiError(403, 'DENIED', `${key} may not exceed the site's default for every ${target.kind} (${cap}): ask a site administrator`);
        }
      }
    }
    await this.store.saveRateLimit(target.kind, subjectId, values, admin);
    await this.reload();
    return (await this.store.listRateLimits()).find((r) => r.kind === target.kind && r.subjectId === subjectId)!;
  }

  /** Removes a limit (who may: as for `set`). */
  async remove(actor: Identity, target: LimitTarget): Promise<void> {
    const { subjectId } = await this.resolve(actor, target);
    if (!(await this.store.removeRateLimit(target.kind, subjectId))) throw new ApiError(404, 'NOT_FOUND', 'no such limit');
    await this.reload();
  }

  /**
   * The subject's id, whether the actor acts as site administrator, and every limit as it
   * stands; throws when the actor may not set this limit, or when it was set by a site
   * administrator and the actor is not one.
   */
  private async resolve(actor: Identity, target: LimitTarget): Promise<{ subjectId: number | null; admin: boolean; rows: RateLimitRecord[] }> {
    signedIn(actor);
    const admin = actor.kind === 'user' && actor.siteAdmin;
    const onlyAdmin = () => {
      if (!admin) throw new ApiError(403, 'DENIED', `only a site administrator may set ${target.subject === undefined ? `the ${target.kind} default` : `a ${target.kind} limit`}`);
    };
    const subject = target.subject;
    if (target.kind === 'anonymous') {
      if (subject !== undefined) throw new ApiError(400, 'INVALID', 'the anonymous limit has no subject: it applies to each source address');
      onlyAdmin();
      return { subjectId: null, admin, rows: await this.store.listRateLimits() };
    }
    if (subject === undefined) {
      onlyAdmin();
      return { subjectId: null, admin, rows: await this.store.listRateLimits() };
    }
    let subjectId: number;
    if (target.kind === 'user') {
      onlyAdmin();
      const u = await this.accessStore.findUserByName(subject);
      if (!u) throw new ApiError(404, 'NOT_FOUND', `user ${subject.slice(0, 100)} not found`);
      subjectId = u.id;
    } else if (target.kind === 'token') {
      const id = /^\d{1,15}$/.test(subject) ? Number(subject) : NaN;
      const cred = Number.isSafeInteger(id) ? await this.accessStore.findCredential(id) : undefined;
      if (!cred) throw new ApiError(404, 'NOT_FOUND', `token ${subject.slice(0, 40)} not found`);
      if (!admin) {
        const repo = cred.kind === 'entitlement' && cred.repositoryId !== null ? await this.accessStore.findRepositoryById(cred.repositoryId) : undefined;
        // An API key's limit is the site's: its holder must not lift it. Not managing the
        // token's repository reads as "not found", as for the token's own routes.
        if (!repo || !(await this.mayManage(actor, `${repo.owner}/${repo.name}`))) throw new ApiError(404, 'NOT_FOUND', `token ${subject.slice(0, 40)} not found`);
      }
      subjectId = cred.id;
    } else {
      const [owner, name, ...rest] = subject.split('/');
      if (!owner || !name || rest.length) throw new ApiError(400, 'INVALID', 'a repository is named OWNER/REPOSITORY');
      const { repository: repo, canManage } = await this.tenancy.getRepository(actor, owner, name);
      if (!canManage) throw new ApiError(403, 'DENIED', `you may not manage ${owner}/${name}`);
      subjectId = repo.id;
    }
    const rows = await this.store.listRateLimits();
    if (!admin && rows.find((r) => r.kind === target.kind && r.subjectId === subjectId)?.siteAdmin) {
      throw new ApiError(403, 'DENIED', 'this limit was set by a site administrator: only one may change it');
    }
    return { subjectId, admin, rows };
  }

  private async mayManage(actor: Identity, repository: string): Promise<boolean> {
    const [owner, name] = repository.split('/') as [string, string];
    try {
      return (await this.tenancy.getRepository(actor, owner, name)).canManage;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false;
      throw e;
    }
  }
}

/**
 * Of the subjects' states, the one with the least left; when `over` holds for some, the one of
 * those whose window ends last, with `retryAfter`.
 */
function tightest(
  subjects: LimitSubject[],
  states: { consumed: number; msLeft: number }[],
  limitOf: (s: LimitSubject) => number,
  over: (limit: number, consumed: number) => boolean,
  windowSeconds: number,
): LimitStanding {
  let best: LimitStanding | undefined;
  let refused: LimitStanding | undefined;
  subjects.forEach((subject, i) => {
    const limit = limitOf(subject);
    const { consumed, msLeft } = states[i]!;
    const remaining = Math.max(0, limit - consumed);
    if (over(limit, consumed)) {
      // A zero limit refuses with no window open: try again in a whole window.
      const retryAfter = Math.max(1, Math.ceil((consumed === 0 ? windowSeconds * 1000 : msLeft) / 1000));
      if (!refused || retryAfter > refused.retryAfter!) refused = { subject, limit, remaining: 0, retryAfter };
    }
    if (!best || remaining < best.remaining) best = { subject, limit, remaining };
  });
  return refused ?? best!;
}

function signedIn(actor: Identity): void {
  if (actor.kind !== 'user') throw new ApiError(401, 'UNAUTHORIZED', 'sign in as a user');
}

/** The 429 for a refused request or pull, with its headers. */
export function tooManyRequests(message: string, headers: Record<string, string>): RegistryError {
  return new RegistryError('TOOMANYREQUESTS', message, { headers });
}
