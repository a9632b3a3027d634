/**
 * Rows of the event stream (DESIGN.md §3 `events`), repository webhooks and their delivery log.
 * Rows only: `core/events.ts`, `core/audit.ts` and `core/webhooks.ts` decide what they mean.
 * Implemented once in Kysely for SQLite and PostgreSQL (sql/event-store.ts).
 * Contract checked by test/suites/metadata-suite.ts against every dialect.
 */

/** Who acted: a user (password), a user through one of their API keys, an entitlement token, or nobody. */
export type ActorKind = 'anonymous' | 'user' | 'api_key' | 'entitlement';

export interface NewEvent {
  /** Milliseconds since the epoch. */
  time: number;
  action: string;
  actorKind: ActorKind;
  /** A username, `token:<credential id>` for an entitlement token, or `anonymous`. */
  actor: string;
  /** The API key or entitlement token used, if any. */
  credentialId: number | null;
  /** `OWNER/REPOSITORY`, when the event concerns one. */
  repository: string | null;
  /** `OWNER/REPOSITORY/IMAGE`, when the event concerns one. */
  image: string | null;
  /** The tag or digest as the client named it. */
  reference: string | null;
  digest: string | null;
  clientIp: string | null;
  userAgent: string | null;
  /** Bytes served (a manifest pull) or received (a manifest push). */
  bytes: number | null;
  /** The HTTP status answered. */
  status: number;
  /** Anything else, small (e.g. `{"from": "<previous digest>"}` for a tag move). */
  detail: Record<string, unknown> | null;
}

export interface EventRecord extends NewEvent {
  id: number;
}

export interface EventFilter {
  /** Only these repositories (undefined: all; empty: none). */
  repositories?: string[];
  actor?: string;
  actions?: string[];
  /** Inclusive lower bound (ms). */
  since?: number;
  /** Exclusive upper bound (ms). */
  until?: number;
}

/** Position in the newest-first order of events: (time, id) of the last row seen. */
export interface EventCursor {
  time: number;
  id: number;
}

/** A webhook delivery to create with an event; its `eventId` is filled in by the store. */
export interface NewDelivery {
  /** A UUID: the `X-Berth-Delivery` header. */
  id: string;
  webhookId: number;
  /** `push`, `delete`, `pull`, `ping`. */
  event: string;
  /** The exact JSON body to send (signed as is on every attempt). */
  payload: string;
  nextAttemptAt: number;
}

export interface EventBatchItem {
  event: NewEvent;
  /** Deliveries to create in the same transaction, given the new event's id. */
  deliveries?: (eventId: number) => NewDelivery[];
}

/**
 * Thrown by `recordEvents` when the store refused the batch's data — a row it cannot hold (a
 * value the column type or a constraint rejects) — rather than failing itself (connection
 * lost, disk full, …). The writer then isolates the row (docs/events.md); other failures are
 * retried as they are.
 */
export class EventRowsRejected extends Error {
  constructor(readonly reason: unknown) {
    super(`the store refused an event row: ${reason instanceof Error ? reason.message : String(reason)}`);
    this.name = 'EventRowsRejected';
  }
}

export interface NewWebhook {
  repositoryId: number;
  url: string;
  /** Kept in clear: it is needed to sign each delivery. Never returned after creation. */
  secret: string;
  events: string[];
  active: boolean;
  createdBy: string;
}

export interface WebhookRecord extends NewWebhook {
  id: number;
  createdAt: number;
}

/** An active webhook with its repository's `OWNER/REPOSITORY`. */
export interface ActiveWebhook extends WebhookRecord {
  repository: string;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface DeliveryRecord {
  id: string;
  webhookId: number;
  eventId: number | null;
  event: string;
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  responseStatus: number | null;
  error: string | null;
  nextAttemptAt: number;
  lastAttemptAt: number | null;
  deliveredAt: number | null;
  createdAt: number;
}

/** A delivery claimed for an attempt, with what is needed to make it. */
export interface ClaimedDelivery extends DeliveryRecord {
  url: string;
  secret: string;
  active: boolean;
}

export interface AttemptResult {
  status: DeliveryStatus;
  responseStatus: number | null;
  error: string | null;
  /** For `pending`: when to try again. */
  nextAttemptAt: number;
  at: number;
}

/** Pull figures of one repository over a time range (successful manifest GETs). */
/**
 * Pull figures: `pulls` count manifest GETs (`pull` events); `bytes` add up what those and the
 * blob downloads (`download` events) served, per row.
 */
export interface PullStats {
  pulls: number;
  bytes: number;
  uniqueClients: number;
  uniqueActors: number;
  /** `day` = UTC midnight (ms). Days without pulls are absent. */
  perDay: { day: number; pulls: number; bytes: number; uniqueClients: number }[];
  perTag: { image: string; tag: string; pulls: number }[];
  /** Per API key or entitlement token (`name`/`kind` from the credential when it still exists). */
  perCredential: { credentialId: number; kind: string | null; name: string | null; actor: string; pulls: number; bytes: number; lastPullAt: number }[];
  perActor: { actorKind: ActorKind; actor: string; pulls: number; bytes: number }[];
  perClient: { clientIp: string; pulls: number; bytes: number; lastPullAt: number }[];
  topImages: { image: string; pulls: number; bytes: number }[];
}

export interface EventStore {
  /** Inserts the events and their deliveries in one transaction. */
  recordEvents(batch: EventBatchItem[]): Promise<void>;
  /** Newest first; `before` continues after the last row of the previous page. */
  listEvents(filter: EventFilter, page: { limit: number; before?: EventCursor }): Promise<EventRecord[]>;
  /** Deletes up to `limit` events older than `time` and webhook deliveries created before it; returns the events deleted. */
  deleteEventsBefore(time: number, limit: number): Promise<number>;
  /** Pull figures of `repository` in [since, until); lists capped at `top` rows. */
  pullStats(repository: string, since: number, until: number, top: number): Promise<PullStats>;

  createWebhook(w: NewWebhook): Promise<WebhookRecord>;
  findWebhook(id: number): Promise<WebhookRecord | undefined>;
  listWebhooks(repositoryId: number): Promise<WebhookRecord[]>;
  /** Every active webhook, with its repository name (for matching events). */
  listActiveWebhooks(): Promise<ActiveWebhook[]>;
  updateWebhook(id: number, changes: { url?: string; events?: string[]; active?: boolean }): Promise<void>;
  /** Removes the webhook and its deliveries; false when absent. */
  deleteWebhook(id: number): Promise<boolean>;
  /** Every webhook's stored secret (for re-encryption; core/keys). */
  listWebhookSecrets(): Promise<{ id: number; value: string }[]>;
  /** Sets a webhook's stored secret only if it is still `from` (compare-and-set). */
  replaceWebhookSecret(id: number, from: string, to: string): Promise<boolean>;

  createDelivery(d: NewDelivery & { eventId: number | null }): Promise<void>;
  findDelivery(id: string): Promise<DeliveryRecord | undefined>;
  /** Newest first. */
  listDeliveries(webhookId: number, limit: number): Promise<DeliveryRecord[]>;
  /**
   * Claims up to `limit` pending deliveries due at `now` that no one holds, holding them until
   * `lockUntil` (another node skips them until then). A claim counts as an attempt.
   */
  claimDeliveries(now: number, lockUntil: number, limit: number, ids?: string[]): Promise<ClaimedDelivery[]>;
  /** Records the outcome of an attempt and releases the claim. */
  finishAttempt(id: string, result: AttemptResult): Promise<void>;
}
