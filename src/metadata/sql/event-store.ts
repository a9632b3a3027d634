import { CompiledQuery, type Kysely, type Selectable, type Transaction, sql } from 'kysely';
import {
  EventRowsRejected,
  type ActiveWebhook,
  type ActorKind,
  type AttemptResult,
  type ClaimedDelivery,
  type DeliveryRecord,
  type DeliveryStatus,
  type EventBatchItem,
  type EventCursor,
  type EventFilter,
  type EventRecord,
  type EventStore,
  type NewDelivery,
  type NewEvent,
  type NewWebhook,
  type PullStats,
  type WebhookRecord,
} from '../event-store.ts';
import type { Database } from './schema.ts';

type EventRow = Selectable<Database['events']>;
type WebhookRow = Selectable<Database['webhooks']>;
type DeliveryRow = Selectable<Database['webhook_deliveries']>;

const n = (v: unknown) => Number(v);
const nn = (v: unknown) => (v === null || v === undefined ? null : Number(v));

/**
 * Rows per multi-row INSERT at most: 14 parameters each, 3,584 in all, far below either
 * dialect's limit. A batch goes in chunks whose sizes are powers of two (256, 128, …, 1), so
 * that whatever the batch sizes only nine INSERT texts exist, each compiled and prepared once:
 * with a text per row count, a busy server compiled and prepared a new one for most batches.
 */
const INSERT_CHUNK = 256;
const DAY_MS = 86_400_000;

/** Column values of an event, in the order of eventRow's keys. */
function eventParams(e: NewEvent, out: unknown[]): void {
  out.push(
    e.time,
    e.action,
    e.actorKind,
    e.actor,
    e.credentialId,
    e.repository,
    e.image,
    e.reference,
    e.digest,
    e.clientIp,
    e.userAgent,
    e.bytes,
    e.status,
    e.detail ? JSON.stringify(e.detail) : null,
  );
}

function eventRow(e: NewEvent) {
  return {
    time: e.time,
    action: e.action,
    actor_kind: e.actorKind,
    actor: e.actor,
    credential_id: e.credentialId,
    repository: e.repository,
    image: e.image,
    reference: e.reference,
    digest: e.digest,
    client_ip: e.clientIp,
    user_agent: e.userAgent,
    bytes: e.bytes,
    status: e.status,
    detail: e.detail ? JSON.stringify(e.detail) : null,
  };
}

function toEvent(r: EventRow): EventRecord {
  return {
    id: n(r.id),
    time: n(r.time),
    action: r.action,
    actorKind: r.actor_kind as ActorKind,
    actor: r.actor,
    credentialId: nn(r.credential_id),
    repository: r.repository,
    image: r.image,
    reference: r.reference,
    digest: r.digest,
    clientIp: r.client_ip,
    userAgent: r.user_agent,
    bytes: nn(r.bytes),
    status: n(r.status),
    detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
  };
}

function toWebhook(r: WebhookRow): WebhookRecord {
  return {
    id: n(r.id),
    repositoryId: n(r.repository_id),
    url: r.url,
    secret: r.secret,
    events: r.events.split(',').filter(Boolean),
    active: Boolean(n(r.active)),
    createdBy: r.created_by,
    createdAt: n(r.created_at),
  };
}

function toDelivery(r: DeliveryRow): DeliveryRecord {
  return {
    id: r.id,
    webhookId: n(r.webhook_id),
    eventId: nn(r.event_id),
    event: r.event,
    payload: r.payload,
    status: r.status as DeliveryStatus,
    attempts: n(r.attempts),
    responseStatus: nn(r.response_status),
    error: r.error,
    nextAttemptAt: n(r.next_attempt_at),
    lastAttemptAt: nn(r.last_attempt_at),
    deliveredAt: nn(r.delivered_at),
    createdAt: n(r.created_at),
  };
}

function deliveryRow(d: NewDelivery, eventId: number | null, now: number) {
  return {
    id: d.id,
    webhook_id: d.webhookId,
    event_id: eventId,
    event: d.event,
    payload: d.payload,
    status: 'pending',
    attempts: 0,
    response_status: null,
    error: null,
    next_attempt_at: d.nextAttemptAt,
    locked_until: 0,
    last_attempt_at: null,
    delivered_at: null,
    created_at: now,
  };
}

/**
 * Whether an error says the data was refused (not that the store failed): PostgreSQL's data
 * exceptions (SQLSTATE class 22: e.g. a NUL in text), integrity violations (23) and limits
 * (54); SQLite's constraint, type, size and range errors; and a value that cannot be bound or
 * serialised at all (TypeError, RangeError: e.g. a BigInt in `detail`).
 */
function isRefusedData(e: unknown): boolean {
  if (e instanceof TypeError || e instanceof RangeError) return true;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  if (/^(22|23|54)[0-9A-Z]{3}$/.test(code)) return true;
  return /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(code);
}

/** The Kysely implementation of EventStore, for SQLite and PostgreSQL. */
export class SqlEventStore implements EventStore {
  /** INSERT text per row count, compiled by Kysely once (the dialect's placeholders). */
  private readonly insertSql = new Map<number, string>();

  /**
   * `commitWithoutSync` (SQLite, see GroupCommitSqliteDriver): called while the connection is
   * held, right after a batch of events alone — no webhook deliveries — committed, so the event
   * writer neither waits for nor starts a sync of the write-ahead log. Such a commit survives a
   * process crash like any other; after a power loss it may be missing unless a later sync (the
   * next push, or any other write) or a checkpoint reached the disk behind it — the audit log is
   * best-effort by design (docs/events.md), and batches still in memory are lost on a crash
   * anyway. Batches with deliveries, and every other write, are acknowledged after their sync.
   */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly commitWithoutSync?: () => void,
  ) {}

  /**
   * A multi-row INSERT of events. The event writer's hot path: building Kysely's query tree for
   * thousands of parameters costs more than SQLite's insert, so the SQL text is compiled once per
   * row count and reused with fresh parameters.
   */
  private async insertEvents(trx: Transaction<Database>, events: NewEvent[]): Promise<void> {
    let text = this.insertSql.get(events.length);
    if (text === undefined) {
      text = trx.insertInto('events').values(events.map(eventRow)).compile().sql;
      this.insertSql.set(events.length, text);
    }
    const params: unknown[] = [];
    for (const e of events) eventParams(e, params);
    await trx.executeQuery(CompiledQuery.raw(text, params));
  }

  async recordEvents(batch: EventBatchItem[]): Promise<void> {
    if (batch.length === 0) return;
    try {
      await this.writeEvents(batch);
    } catch (e) {
      throw isRefusedData(e) ? new EventRowsRejected(e) : e;
    }
  }

  private async writeEvents(batch: EventBatchItem[]): Promise<void> {
    const commitWithoutSync = this.commitWithoutSync;
    if (!commitWithoutSync || batch.some((item) => item.deliveries)) {
      await this.db.transaction().execute((trx) => this.writeIn(trx, batch));
      return;
    }
    // Held across the commit and the call, so the call concerns this batch's writes alone.
    await this.db.connection().execute(async (conn) => {
      await conn.transaction().execute((trx) => this.writeIn(trx, batch));
      commitWithoutSync();
    });
  }

  private async writeIn(trx: Transaction<Database>, batch: EventBatchItem[]): Promise<void> {
    const now = Date.now();
    // Events that start deliveries need their id: inserted one by one (neither dialect
    // promises RETURNING in insertion order). The rest go in multi-row INSERTs.
    const plain: NewEvent[] = [];
    for (const item of batch) {
      if (!item.deliveries) {
        plain.push(item.event);
        continue;
      }
      const r = await trx.insertInto('events').values(eventRow(item.event)).returning('id').executeTakeFirstOrThrow();
      const deliveries = item.deliveries(n(r.id));
      if (deliveries.length) {
        await trx
          .insertInto('webhook_deliveries')
          .values(deliveries.map((d) => deliveryRow(d, n(r.id), now)))
          .execute();
      }
    }
    for (let i = 0; i < plain.length; ) {
      let size = INSERT_CHUNK;
      while (size > plain.length - i) size >>= 1;
      await this.insertEvents(trx, plain.slice(i, i + size));
      i += size;
    }
  }

  async listEvents(filter: EventFilter, page: { limit: number; before?: EventCursor }): Promise<EventRecord[]> {
    if (filter.repositories !== undefined && filter.repositories.length === 0) return [];
    if (filter.actions !== undefined && filter.actions.length === 0) return [];
    let q = this.db.selectFrom('events').selectAll().orderBy('time', 'desc').orderBy('id', 'desc').limit(page.limit);
    if (filter.repositories !== undefined) {
      q = filter.repositories.length === 1 ? q.where('repository', '=', filter.repositories[0]!) : q.where('repository', 'in', filter.repositories);
    }
    if (filter.actor !== undefined) q = q.where('actor', '=', filter.actor);
    if (filter.actions !== undefined) q = q.where('action', 'in', filter.actions);
    if (filter.since !== undefined) q = q.where('time', '>=', filter.since);
    if (filter.until !== undefined) q = q.where('time', '<', filter.until);
    const before = page.before;
    if (before) {
      q = q.where((eb) => eb.or([eb('time', '<', before.time), eb.and([eb('time', '=', before.time), eb('id', '<', before.id)])]));
    }
    return (await q.execute()).map(toEvent);
  }

  async deleteEventsBefore(time: number, limit: number): Promise<number> {
    const r = await this.db
      .deleteFrom('events')
      .where('id', 'in', (eb) => eb.selectFrom('events').select('id').where('time', '<', time).orderBy('time').limit(limit))
      .executeTakeFirst();
    await this.db.deleteFrom('webhook_deliveries').where('created_at', '<', time).where('status', '!=', 'pending').execute();
    return n(r.numDeletedRows);
  }

  async pullStats(repository: string, since: number, until: number, top: number): Promise<PullStats> {
    // pulls (manifest GETs) count; their bytes and those of blob downloads add up
    const base = (actions: string[]) =>
      this.db
        .selectFrom('events')
        .where('repository', '=', repository)
        .where('time', '>=', since)
        .where('time', '<', until)
        .where('action', 'in', actions)
        .where('status', '>=', 200)
        .where('status', '<', 400);
    const both = () => base(['pull', 'download']);
    const day = sql<number>`(time / ${sql.lit(DAY_MS)})`;
    const pulls = sql<number>`sum(case when action = 'pull' then 1 else 0 end)`;
    const pullClients = sql<number>`count(distinct case when action = 'pull' then client_ip end)`;
    const lastPull = sql<number>`max(case when action = 'pull' then time end)`;
    const [totals, perDay, perTag, perCredential, perActor, perClient, topImages] = await Promise.all([
      both()
        .select((eb) => [
          pulls.as('pulls'),
          eb.fn.sum<number>('bytes').as('bytes'),
          pullClients.as('clients'),
          sql<number>`count(distinct case when action = 'pull' then actor end)`.as('actors'),
        ])
        .executeTakeFirstOrThrow(),
      both()
        .select((eb) => [day.as('day'), pulls.as('pulls'), eb.fn.sum<number>('bytes').as('bytes'), pullClients.as('clients')])
        .groupBy(day)
        .having(pulls, '>', 0)
        .orderBy(day)
        .execute(),
      base(['pull'])
        .where('reference', 'not like', '%:%')
        .select((eb) => ['image', 'reference', eb.fn.countAll().as('pulls')])
        .groupBy(['image', 'reference'])
        .orderBy('pulls', 'desc')
        .orderBy('image')
        .orderBy('reference')
        .limit(top)
        .execute(),
      both()
        .where('credential_id', 'is not', null)
        .select((eb) => ['credential_id', eb.fn.max('actor').as('actor'), pulls.as('pulls'), eb.fn.sum<number>('bytes').as('bytes'), lastPull.as('last')])
        .groupBy('credential_id')
        .having(pulls, '>', 0)
        .orderBy(pulls, 'desc')
        .orderBy('credential_id')
        .limit(top)
        .execute(),
      both()
        .select((eb) => ['actor_kind', 'actor', pulls.as('pulls'), eb.fn.sum<number>('bytes').as('bytes')])
        .groupBy(['actor_kind', 'actor'])
        .having(pulls, '>', 0)
        .orderBy(pulls, 'desc')
        .orderBy('actor')
        .limit(top)
        .execute(),
      both()
        .where('client_ip', 'is not', null)
        .select((eb) => ['client_ip', pulls.as('pulls'), eb.fn.sum<number>('bytes').as('bytes'), lastPull.as('last')])
        .groupBy('client_ip')
        .having(pulls, '>', 0)
        .orderBy(pulls, 'desc')
        .orderBy('client_ip')
        .limit(top)
        .execute(),
      both()
        .where('image', 'is not', null)
        .select((eb) => ['image', pulls.as('pulls'), eb.fn.sum<number>('bytes').as('bytes')])
        .groupBy('image')
        .having(pulls, '>', 0)
        .orderBy(pulls, 'desc')
        .orderBy('image')
        .limit(top)
        .execute(),
    ]);
    const ids = perCredential.map((r) => n(r.credential_id));
    const creds = new Map<number, { kind: string; name: string }>();
    if (ids.length) {
      const rows = await this.db.selectFrom('credentials').select(['id', 'kind', 'name']).where('id', 'in', ids).execute();
      for (const r of rows) creds.set(n(r.id), { kind: r.kind, name: r.name });
    }
    return {
      pulls: n(totals.pulls ?? 0),
      bytes: n(totals.bytes ?? 0),
      uniqueClients: n(totals.clients),
      uniqueActors: n(totals.actors),
      perDay: perDay.map((r) => ({ day: n(r.day) * DAY_MS, pulls: n(r.pulls), bytes: n(r.bytes ?? 0), uniqueClients: n(r.clients) })),
      perTag: perTag.map((r) => ({ image: r.image ?? '', tag: r.reference ?? '', pulls: n(r.pulls) })),
      perCredential: perCredential.map((r) => {
        const id = n(r.credential_id);
        const c = creds.get(id);
        return { credentialId: id, kind: c?.kind ?? null, name: c?.name ?? null, actor: String(r.actor), pulls: n(r.pulls), bytes: n(r.bytes ?? 0), lastPullAt: n(r.last) };
      }),
      perActor: perActor.map((r) => ({ actorKind: r.actor_kind as ActorKind, actor: r.actor, pulls: n(r.pulls), bytes: n(r.bytes ?? 0) })),
      perClient: perClient.map((r) => ({ clientIp: r.client_ip ?? '', pulls: n(r.pulls), bytes: n(r.bytes ?? 0), lastPullAt: n(r.last) })),
      topImages: topImages.map((r) => ({ image: r.image ?? '', pulls: n(r.pulls), bytes: n(r.bytes ?? 0) })),
    };
  }

  async createWebhook(w: NewWebhook): Promise<WebhookRecord> {
    const r = await this.db
      .insertInto('webhooks')
      .values({
        repository_id: w.repositoryId,
        url: w.url,
        secret: w.secret,
        events: w.events.join(','),
        active: w.active ? 1 : 0,
        created_by: w.createdBy,
        created_at: Date.now(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toWebhook(r);
  }

  async findWebhook(id: number): Promise<WebhookRecord | undefined> {
    const r = await this.db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toWebhook(r);
  }

  async listWebhooks(repositoryId: number): Promise<WebhookRecord[]> {
    const rows = await this.db.selectFrom('webhooks').selectAll().where('repository_id', '=', repositoryId).orderBy('id').execute();
    return rows.map(toWebhook);
  }

  async listActiveWebhooks(): Promise<ActiveWebhook[]> {
    const rows = await this.db
      .selectFrom('webhooks')
      .innerJoin('repositories', 'repositories.id', 'webhooks.repository_id')
      .innerJoin('owners', 'owners.id', 'repositories.owner_id')
      .selectAll('webhooks')
      .select(['owners.name as owner_name', 'repositories.name as repository_name'])
      .where('webhooks.active', '=', 1)
      .orderBy('webhooks.id')
      .execute();
    return rows.map((r) => ({ ...toWebhook(r), repository: `${r.owner_name}/${r.repository_name}` }));
  }

  async updateWebhook(id: number, changes: { url?: string; events?: string[]; active?: boolean }): Promise<void> {
    const set: { url?: string; events?: string; active?: number } = {};
    if (changes.url !== undefined) set.url = changes.url;
    if (changes.events !== undefined) set.events = changes.events.join(',');
    if (changes.active !== undefined) set.active = changes.active ? 1 : 0;
    if (Object.keys(set).length === 0) return;
    await this.db.updateTable('webhooks').set(set).where('id', '=', id).execute();
  }

  async listWebhookSecrets(): Promise<{ id: number; value: string }[]> {
    const rows = await this.db.selectFrom('webhooks').select(['id', 'secret']).orderBy('id').execute();
    return rows.map((r) => ({ id: n(r.id), value: r.secret }));
  }

  async replaceWebhookSecret(id: number, from: string, to: string): Promise<boolean> {
    const r = await this.db.updateTable('webhooks').set({ secret: to }).where('id', '=', id).where('secret', '=', from).executeTakeFirst();
    return n(r.numUpdatedRows) > 0;
  }

  async deleteWebhook(id: number): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('webhook_deliveries').where('webhook_id', '=', id).execute();
      const r = await trx.deleteFrom('webhooks').where('id', '=', id).executeTakeFirst();
      return n(r.numDeletedRows) > 0;
    });
  }

  async createDelivery(d: NewDelivery & { eventId: number | null }): Promise<void> {
    await this.db.insertInto('webhook_deliveries').values(deliveryRow(d, d.eventId, Date.now())).execute();
  }

  async findDelivery(id: string): Promise<DeliveryRecord | undefined> {
    const r = await this.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toDelivery(r);
  }

  async listDeliveries(webhookId: number, limit: number): Promise<DeliveryRecord[]> {
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('webhook_id', '=', webhookId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map(toDelivery);
  }

  async claimDeliveries(now: number, lockUntil: number, limit: number, ids?: string[]): Promise<ClaimedDelivery[]> {
    let q = this.db
      .selectFrom('webhook_deliveries')
      .select('id')
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .where('locked_until', '<=', now)
      .orderBy('next_attempt_at')
      .limit(limit);
    if (ids !== undefined) {
      if (ids.length === 0) return [];
      q = q.where('id', 'in', ids);
    }
    const candidates = await q.execute();
    const claimed: string[] = [];
    // An optimistic claim per row: on several nodes, exactly one UPDATE matches.
    for (const { id } of candidates) {
      const r = await this.db
        .updateTable('webhook_deliveries')
        .set({ locked_until: lockUntil, attempts: sql`attempts + 1` })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .where('locked_until', '<=', now)
        .executeTakeFirst();
      if (n(r.numUpdatedRows) === 1) claimed.push(id);
    }
    if (claimed.length === 0) return [];
    const rows = await this.db
      .selectFrom('webhook_deliveries')
      .innerJoin('webhooks', 'webhooks.id', 'webhook_deliveries.webhook_id')
      .selectAll('webhook_deliveries')
      .select(['webhooks.url', 'webhooks.secret', 'webhooks.active'])
      .where('webhook_deliveries.id', 'in', claimed)
      .orderBy('webhook_deliveries.next_attempt_at')
      .execute();
    return rows.map((r) => ({ ...toDelivery(r), url: r.url, secret: r.secret, active: Boolean(n(r.active)) }));
  }

  async finishAttempt(id: string, result: AttemptResult): Promise<void> {
    await this.db
      .updateTable('webhook_deliveries')
      .set({
        status: result.status,
        response_status: result.responseStatus,
        error: result.error === null ? null : result.error.slice(0, 1000),
        next_attempt_at: result.nextAttemptAt,
        locked_until: 0,
        last_attempt_at: result.at,
        ...(result.status === 'delivered' ? { delivered_at: result.at } : {}),
      })
      .where('id', '=', id)
      .execute();
  }
}
