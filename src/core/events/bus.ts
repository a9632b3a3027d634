import type { Identity } from '../access/access.ts';
import { type ActorKind, type EventBatchItem, EventRowsRejected, type EventStore, type NewDelivery, type NewEvent } from '../../metadata/event-store.ts';
import { isCleanText, sanitiseText } from '../content/text.ts';

/**
 * What an event records (docs/events.md):
 * - `push` a manifest PUT; `pull` a manifest GET by a client (not blobs, not HEAD);
 * - `delete` a manifest, a tag or a blob (`detail.target`);
 * - `tag_move` a push that moved an existing tag (`detail.from` = the previous digest);
 * - `login` a password checked (token endpoint or Basic): success, or failure (401/429);
 * - `token_use` an API key or entitlement token checked, likewise;
 * - `admin` a management API change (POST, PUT, PATCH, DELETE on /api/v1);
 * - `gc` garbage collection deleted a blob or a manifest (`detail.target`; actor `gc`);
 * - `vulnerability` a scan found critical vulnerabilities an image's previous report did not
 *   have (`detail.new`: their ids; actor `scanner`; docs/vulnerabilities.md).
 */
export const EVENT_ACTIONS = ['push', 'pull', 'delete', 'tag_move', 'login', 'token_use', 'admin', 'gc', 'vulnerability', 'download'] as const;
/**
 * A blob GET served (200/206) with its bytes: feeds the download analytics' bytes; too many
 * to read, so the audit log leaves them out unless asked for by name (`action=download`).
 */
export const QUIET_ACTIONS: ReadonlySet<string> = new Set(['download']);
export type EventAction = (typeof EVENT_ACTIONS)[number];

export interface Actor {
  kind: ActorKind;
  name: string;
  credentialId: number | null;
}

export const ANONYMOUS_ACTOR: Actor = { kind: 'anonymous', name: 'anonymous', credentialId: null };

/** The actor of an identity: a user, a user's API key, an entitlement token, or anonymous. */
export function actorOf(identity: Identity | undefined): Actor {
  if (!identity || identity.kind === 'anonymous') return ANONYMOUS_ACTOR;
  if (identity.kind === 'entitlement') return { kind: 'entitlement', name: `token:${identity.credentialId}`, credentialId: identity.credentialId };
  if (identity.apiKeyId !== undefined) return { kind: 'api_key', name: identity.username, credentialId: identity.apiKeyId };
  return { kind: 'user', name: identity.username, credentialId: null };
}

/** `OWNER/REPOSITORY` of `OWNER/REPOSITORY/IMAGE…`, or null for anything shorter. */
export function repositoryOf(image: string | null): string | null {
  if (!image) return null;
  const a = image.indexOf('/');
  if (a <= 0) return null;
  const b = image.indexOf('/', a + 1);
  if (b <= a + 1) return null;
  return image.slice(0, b);
}

export interface EventBusOptions {
  enabled: boolean;
  /** Events waiting to be written; beyond this, new ones are dropped (and counted). */
  queueSize: number;
  /** Events per transaction, at most. */
  batchSize: number;
  /** A partial batch is written after at most this long. */
  flushIntervalMs: number;
  /** Deliveries to create with a batch's events (the webhooks' say), before it is written. */
  deliveriesFor?: (events: NewEvent[]) => Promise<Map<number, (eventId: number) => NewDelivery[]>>;
  /** Called after a batch that created deliveries was committed. */
  onDeliveries?: () => void;
  onError?: (e: unknown, lost: number) => void;
}

export interface EventBusStats {
  /** Accepted into the queue. */
  emitted: number;
  /** Committed to the store. */
  recorded: number;
  /** Dropped because the queue was full. */
  droppedQueueFull: number;
  /** Dropped because writing failed (after retries). */
  droppedWriteFailed: number;
  /** Dropped alone because the store refused the row even sanitised; the rest of its batch was written. */
  droppedRejected: number;
  /** Recorded with control characters (or a value the store refused) replaced. */
  sanitised: number;
  batches: number;
  /** Longest batch write so far, in ms. */
  maxBatchMs: number;
}

const WRITE_TRIES = 3;
const RETRY_DELAY_MS = 1000;

interface Queued {
  event: NewEvent;
  tries: number;
}

/**
 * The one event stream. `emit` only appends to a bounded in-memory queue and returns: it never
 * waits, never throws, never fails a request. A background writer takes up to `batchSize`
 * events at a time (at once when a batch is full, else after `flushIntervalMs`) and writes each
 * batch in one transaction, with the webhook deliveries it starts. When the queue is full, new
 * events are dropped and counted (`stats.droppedQueueFull`): memory stays bounded under any load.
 * A failed write is retried twice, then its events are dropped and counted.
 *
 * Nothing a client sends can make the writer lose other events: text with control characters
 * is sanitised when queued (U+FFFD), and a batch the store refuses for its data
 * (`EventRowsRejected`) is bisected until the refused row stands alone; every other row is
 * written with its webhook deliveries, and the refused one is written sanitised, else without
 * its deliveries, else dropped alone (`stats.droppedRejected`).
 */
export class EventBus {
  readonly stats: EventBusStats = { emitted: 0, recorded: 0, droppedQueueFull: 0, droppedWriteFailed: 0, droppedRejected: 0, sanitised: 0, batches: 0, maxBatchMs: 0 };
  private queue: Queued[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly store: EventStore | undefined,
    private readonly opts: EventBusOptions,
  ) {}

  get enabled(): boolean {
    return this.opts.enabled && this.store !== undefined && !this.closed;
  }

  get queueLength(): number {
    return this.queue.length;
  }

  /** Queues an event; false when it was dropped (disabled, closed, or the queue is full). */
  emit(event: NewEvent): boolean {
    if (!this.enabled) return false;
    if (this.queue.length >= this.opts.queueSize) {
      this.stats.droppedQueueFull++;
      return false;
    }
    this.queue.push({ event: this.clean(event), tries: 0 });
    this.stats.emitted++;
    this.schedule(this.queue.length >= this.opts.batchSize ? 0 : this.opts.flushIntervalMs);
    return true;
  }

  /** Writes everything queued so far (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.writing) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      this.clearTimer();
      await this.drain(true);
    }
  }

  /** Stops accepting events and writes what is queued. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
    this.clearTimer();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    if (this.writing) return; // the writer looks at the queue again when it is done
    if (this.timer) {
      if (delayMs > 0) return;
      this.clearTimer();
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.drain(false);
    }, delayMs);
    this.timer.unref();
  }

  /** Writes batches while a full one is queued (everything with `all`); one writer at a time. */
  private drain(all: boolean): Promise<void> {
    if (this.writing) return this.writing;
    const run = async (): Promise<boolean> => {
      while (this.queue.length > 0) {
        if (!(await this.write(this.queue.splice(0, this.opts.batchSize)))) return false;
        if (!all && this.queue.length < this.opts.batchSize) break;
      }
      return true;
    };
    this.writing = run().then(
      (ok) => {
        this.writing = undefined;
        if (this.queue.length > 0 && !this.closed) {
          this.schedule(!ok ? RETRY_DELAY_MS : this.queue.length >= this.opts.batchSize ? 0 : this.opts.flushIntervalMs);
        }
      },
      () => {
        this.writing = undefined;
      },
    );
    return this.writing;
  }

  /** The event with every text field free of control characters (counted when one was changed). */
  private clean(e: NewEvent): NewEvent {
    const fields = ['action', 'actor', 'repository', 'image', 'reference', 'digest', 'clientIp', 'userAgent'] as const;
    const dirty = fields.filter((f) => typeof e[f] === 'string' && !isCleanText(e[f]!));
    const detail = e.detail === null || e.detail === undefined ? e.detail : cleanDetail(e.detail);
    if (dirty.length === 0 && detail === e.detail) return e;
    this.stats.sanitised++;
    const out: NewEvent = { ...e, detail: detail ?? null };
    for (const f of dirty) (out as unknown as Record<string, string>)[f] = sanitiseText(e[f]!);
    return out;
  }

  /** One transaction; true when written. Failed events go back to the front of the queue until their last try. */
  private async write(batch: Queued[]): Promise<boolean> {
    const started = performance.now();
    const events = batch.map((q) => q.event);
    let pending: Queued[] = batch;
    try {
      const deliveries = this.opts.deliveriesFor ? await this.opts.deliveriesFor(events) : new Map();
      const items: EventBatchItem[] = events.map((event, i) => {
        const d = deliveries.get(i);
        return d ? { event, deliveries: d } : { event };
      });
      try {
        await this.store!.recordEvents(items);
        this.stats.recorded += batch.length;
      } catch (e) {
        if (!(e instanceof EventRowsRejected)) throw e;
        this.opts.onError?.(e, 0);
        pending = await this.isolate(batch.map((q, i) => ({ q, item: items[i]! })));
        if (pending.length > 0) throw new Error('the store failed while isolating a refused event row');
      }
      this.stats.batches++;
      this.stats.maxBatchMs = Math.max(this.stats.maxBatchMs, performance.now() - started);
      if (deliveries.size > 0) this.opts.onDeliveries?.();
      return true;
    } catch (e) {
      const retry = pending.filter((q) => ++q.tries < WRITE_TRIES);
      const room = Math.max(0, this.opts.queueSize - this.queue.length);
      const kept = retry.slice(0, room);
      const lost = pending.length - kept.length;
      this.queue.unshift(...kept);
      this.stats.droppedWriteFailed += lost;
      this.opts.onError?.(e, lost);
      return false;
    }
  }

  /**
   * Writes a refused batch in halves, recursively, until each refused row stands alone; that
   * row is written sanitised (with its deliveries, else without), else dropped and counted.
   * Returns the rows not written because the store failed (not refused) meanwhile.
   */
  private async isolate(rows: { q: Queued; item: EventBatchItem }[]): Promise<Queued[]> {
    const stack = [rows];
    while (stack.length > 0) {
      const part = stack.pop()!;
      try {
        await this.store!.recordEvents(part.map((r) => r.item));
        this.stats.recorded += part.length;
        continue;
      } catch (e) {
        if (!(e instanceof EventRowsRejected)) return [...part, ...stack.reverse().flat()].map((r) => r.q);
      }
      if (part.length > 1) {
        const mid = Math.ceil(part.length / 2);
        stack.push(part.slice(mid), part.slice(0, mid));
        continue;
      }
      const { item } = part[0]!;
      const event = scrub(item.event);
      const attempts: EventBatchItem[] = [{ event }];
      if (item.deliveries && this.opts.deliveriesFor) {
        // Deliveries of the sanitised event (their payload may be what the store refused).
        const d = await this.opts.deliveriesFor([event]).then((m) => m.get(0), () => undefined);
        if (d) attempts.unshift({ event, deliveries: d });
      }
      let written = false;
      for (const attempt of attempts) {
        try {
          await this.store!.recordEvents([attempt]);
          written = true;
          break;
        } catch (e) {
          if (!(e instanceof EventRowsRejected)) return [part[0]!.q, ...stack.reverse().flat().map((r) => r.q)];
        }
      }
      if (written) {
        this.stats.recorded++;
        this.stats.sanitised++;
      } else {
        this.stats.droppedRejected++;
      }
    }
    return [];
  }
}

const MAX_SCRUBBED_TEXT = 1000;

/** `detail` with control characters replaced in every string (keys too); the same object when clean. */
function cleanDetail(detail: Record<string, unknown>): Record<string, unknown> {
  let changed = false;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      if (isCleanText(v)) return v;
      changed = true;
      return sanitiseText(v);
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) o[isCleanText(k) ? k : ((changed = true), sanitiseText(k))] = walk(x);
      return o;
    }
    return v;
  };
  const out = walk(detail) as Record<string, unknown>;
  return changed ? out : detail;
}

/** An event the store refused, reduced to values any store holds: short clean text, finite numbers, plain JSON. */
function scrub(e: NewEvent): NewEvent {
  const text = (v: unknown): string | null => (typeof v === 'string' ? sanitiseText(v).slice(0, MAX_SCRUBBED_TEXT) : null);
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);
  let detail: Record<string, unknown>;
  try {
    const json = JSON.stringify(e.detail ?? {});
    detail = json.length <= 4 * MAX_SCRUBBED_TEXT ? (JSON.parse(json) as Record<string, unknown>) : { truncated: true };
  } catch {
    detail = { unserialisable: true };
  }
  return {
    time: num(e.time) ?? Date.now(),
    action: text(e.action) ?? 'unknown',
    actorKind: (['anonymous', 'user', 'api_key', 'entitlement'] as ActorKind[]).includes(e.actorKind) ? e.actorKind : 'anonymous',
    actor: text(e.actor) ?? 'anonymous',
    credentialId: num(e.credentialId),
    repository: text(e.repository),
    image: text(e.image),
    reference: text(e.reference),
    digest: text(e.digest),
    clientIp: text(e.clientIp),
    userAgent: text(e.userAgent),
    bytes: num(e.bytes),
    status: num(e.status) ?? 0,
    detail: { ...cleanDetail(detail), sanitised: true },
  };
}
