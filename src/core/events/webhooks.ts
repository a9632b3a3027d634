import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { type Agent, STATUS_CODES } from 'node:http';
import type { Access, Identity } from '../access/access.ts';
import { actorOf } from './bus.ts';
import { ApiError } from '../access/tenancy.ts';
import { CONNECT_FAILED, Egress, EgressError, send } from '../egress/egress.ts';
import type { RepositoryRecord } from '../../metadata/access-store.ts';
import type {
  ActiveWebhook,
  ClaimedDelivery,
  DeliveryRecord,
  EventStore,
  NewDelivery,
  NewEvent,
  WebhookRecord,
} from '../../metadata/event-store.ts';
import { Keyring } from '../keys/keyring.ts';
import { PURPOSE } from '../keys/sealed.ts';

/** Where a URL points, without its path and query (which may carry a receiver's token). */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/** Events a webhook may subscribe to. `ping` is only sent by the test endpoint. */
export const WEBHOOK_EVENTS = ['push', 'delete', 'pull', 'vulnerability'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export interface WebhookOptions {
  maxAttempts: number;
  backoffBaseMs: number;
  timeoutMs: number;
  pollIntervalMs: number;
  concurrency: number;
  /** Seals webhook secrets at rest (core/keys); default: a key that lives as long as the process. */
  keyring?: Keyring;
  /** How long the list of active webhooks is cached for matching events (other nodes' changes show up after this). */
  cacheTtlMs?: number;
  onError?: (e: unknown) => void;
  /** The real reason of a failed attempt, with the receiver's origin (for the server's log; tenants see only CONNECT_FAILED). */
  onDeliveryError?: (origin: string, reason: string) => void;
}

export interface DeliveryStats {
  delivered: number;
  /** Failed attempts that will be retried. */
  retried: number;
  /** Deliveries given up after the last attempt. */
  failed: number;
}

/** The `X-Berth-Signature` value: `sha256=` + hex HMAC-SHA256 of the exact body with the secret. */
export function signPayload(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A webhook as shown after creation: never its secret. */
export type PublicWebhook = Omit<WebhookRecord, 'secret'> & { repository: string };

function toPublic(w: WebhookRecord, repository: string): PublicWebhook {
  const { secret: _secret, ...rest } = w;
  return { ...rest, repository };
}

/** A webhook URL as saved: http(s), no credentials, a destination the egress policy allows now. */
async function validUrl(egress: Egress, raw: string): Promise<string> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ApiError(400, 'INVALID', `invalid webhook URL "${raw.slice(0, 200)}"`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ApiError(400, 'INVALID', 'a webhook URL must be http:// or https://');
  if (u.username || u.password) throw new ApiError(400, 'INVALID', 'a webhook URL must not carry credentials: use the secret');
  try {
    await egress.validateUrl(u.toString());
  } catch (e) {
    if (!(e instanceof EgressError)) throw e;
    throw new ApiError(400, 'INVALID', `webhook URL refused by the egress policy: ${e.reason} (an operator may allow it with egress.allow)`);
  }
  return u.toString();
}

function validEvents(events: string[]): WebhookEvent[] {
  const out = new Set<WebhookEvent>();
  for (const e of events) {
    if (!(WEBHOOK_EVENTS as readonly string[]).includes(e)) {
      throw new ApiError(400, 'INVALID', `unknown webhook event "${e.slice(0, 40)}": use ${WEBHOOK_EVENTS.join(', ')}`);
    }
    out.add(e as WebhookEvent);
  }
  if (out.size === 0) throw new ApiError(400, 'INVALID', `give at least one event: ${WEBHOOK_EVENTS.join(', ')}`);
  return WEBHOOK_EVENTS.filter((e) => out.has(e));
}

/** The JSON body sent for an event (docs/events.md#webhooks). */
export function eventPayload(deliveryId: string, eventId: number, e: NewEvent): string {
  const tag = e.reference !== null && !e.reference.includes(':') ? e.reference : null;
  return JSON.stringify({
    id: deliveryId,
    event: e.action,
    eventId,
    timestamp: new Date(e.time).toISOString(),
    repository: e.repository,
    image: e.image,
    reference: e.reference,
    tag,
    digest: e.digest,
    size: e.bytes,
    actor: { kind: e.actorKind, name: e.actor },
    ...(e.detail ? { detail: e.detail } : {}),
  });
}

/**
 * Repository webhooks: management (repository admins) and delivery. A matching event creates a
 * delivery row in the same transaction as the event (EventBus → `deliveriesFor`); a worker on
 * every node claims due deliveries from the database, POSTs them signed, and retries with
 * exponential backoff (`backoffBaseMs` × 2^(attempt−1)) up to `maxAttempts`. Delivery never
 * runs in a request; a restart or another node continues what is pending.
 */
export class Webhooks {
  private readonly agents: { 'http:': Agent; 'https:': Agent };
  readonly stats: DeliveryStats = { delivered: 0, retried: 0, failed: 0 };
  private cache: { until: number; byRepository: Map<string, ActiveWebhook[]> } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private readonly inFlight = new Set<AbortController>();

  constructor(
    private readonly store: EventStore | undefined,
    private readonly access: Access,
    private readonly opts: WebhookOptions,
    private readonly egress: Egress = new Egress(),
  ) {
    this.agents = { 'http:': egress.agent('http:', { maxSockets: 16 }), 'https:': egress.agent('https:', { maxSockets: 16 }) };
  }

  private get keyring(): Keyring {
    return (this.opts.keyring ??= Keyring.ephemeral());
  }

  /** Forgets the cached list of active webhooks (after a repository or owner is deleted). */
  forgetCache(): void {
    this.cache = undefined;
  }

  private requireStore(): EventStore {
    if (!this.store) throw new ApiError(503, 'UNAVAILABLE', 'events are not configured on this server');
    return this.store;
  }

  /** The repository if the actor may manage it: 404 if they may not read it, 403 if they only read. */
  private async manageable(actor: Identity, owner: string, name: string): Promise<RepositoryRecord> {
    const acc = await this.access.check(actor, owner, name);
    if (!acc.repository || !acc.actions.has('pull')) throw new ApiError(404, 'NOT_FOUND', `repository ${owner}/${name} not found`);
    if (!acc.actions.has('manage')) throw new ApiError(403, 'DENIED', `you may not manage ${owner}/${name}`);
    return acc.repository;
  }

  private async hookOf(actor: Identity, owner: string, name: string, id: number): Promise<{ repo: RepositoryRecord; hook: WebhookRecord }> {
    const repo = await this.manageable(actor, owner, name);
    const hook = await this.requireStore().findWebhook(id);
    if (!hook || hook.repositoryId !== repo.id) throw new ApiError(404, 'NOT_FOUND', `webhook ${id} not found`);
    return { repo, hook };
  }

  /** Creates a webhook; the secret (given, or generated) is returned only here. */
  async create(
    actor: Identity,
    owner: string,
    name: string,
    w: { url: string; events: string[]; secret?: string; active?: boolean },
  ): Promise<PublicWebhook & { secret: string }> {
    const repo = await this.manageable(actor, owner, name);
    const secret = w.secret ?? randomBytes(24).toString('base64url');
    const hook = await this.requireStore().createWebhook({
      repositoryId: repo.id,
        url: await validUrl(this.egress, w.url),
        secret: this.keyring.encrypt(PURPOSE.webhookSecret, secret),
      events: validEvents(w.events),
      active: w.active ?? true,
      createdBy: actorOf(actor).name,
    });
    this.cache = undefined;
    return { ...toPublic(hook, `${owner}/${name}`), secret };
  }

  async list(actor: Identity, owner: string, name: string): Promise<PublicWebhook[]> {
    const repo = await this.manageable(actor, owner, name);
    return (await this.requireStore().listWebhooks(repo.id)).map((w) => toPublic(w, `${owner}/${name}`));
  }

  async update(
    actor: Identity,
    owner: string,
    name: string,
    id: number,
    changes: { url?: string; events?: string[]; active?: boolean },
  ): Promise<PublicWebhook> {
    await this.hookOf(actor, owner, name, id);
    await this.requireStore().updateWebhook(id, {
      ...(changes.url !== undefined ? { url: await validUrl(this.egress, changes.url) } : {}),
      ...(changes.events !== undefined ? { events: validEvents(changes.events) } : {}),
      ...(changes.active !== undefined ? { active: changes.active } : {}),
    });
    this.cache = undefined;
    return toPublic((await this.requireStore().findWebhook(id))!, `${owner}/${name}`);
  }

  async remove(actor: Identity, owner: string, name: string, id: number): Promise<void> {
    await this.hookOf(actor, owner, name, id);
    await this.requireStore().deleteWebhook(id);
    this.cache = undefined;
  }

  async deliveries(actor: Identity, owner: string, name: string, id: number, limit: number): Promise<DeliveryRecord[]> {
    await this.hookOf(actor, owner, name, id);
    return this.requireStore().listDeliveries(id, limit);
  }

  /**
   * Sends a `ping` delivery now and answers with its first attempt's outcome; a failed ping is
   * retried in the background like any delivery.
   */
  async test(actor: Identity, owner: string, name: string, id: number): Promise<DeliveryRecord> {
    const { hook } = await this.hookOf(actor, owner, name, id);
    const store = this.requireStore();
    const deliveryId = randomUUID();
    const now = Date.now();
    const payload = JSON.stringify({
      id: deliveryId,
      event: 'ping',
      timestamp: new Date(now).toISOString(),
      repository: `${owner}/${name}`,
      webhook: { id: hook.id, url: hook.url, events: hook.events },
      actor: { kind: actorOf(actor).kind, name: actorOf(actor).name },
    });
    // Created due only after this request's attempt would have ended, and claimed here as of that
    // time: the background deliverer, which may poll while this request waits for the commit
    // (SQLite: its sync of the log), leaves it to this request. Should the request fail before
    // its attempt, the deliverer sends it then.
    const lock = this.opts.timeoutMs + 30_000;
    await store.createDelivery({ id: deliveryId, webhookId: hook.id, event: 'ping', payload, nextAttemptAt: now + lock, eventId: null });
    const claimed = await store.claimDeliveries(now + lock, now + 2 * lock, 1, [deliveryId]);
    for (const d of claimed) await this.attempt(d);
    return (await store.findDelivery(deliveryId))!;
  }

  /** Deliveries for the events of a batch that match an active webhook (successful push, delete, pull; new critical vulnerabilities). */
  async deliveriesFor(events: NewEvent[]): Promise<Map<number, (eventId: number) => NewDelivery[]>> {
    const out = new Map<number, (eventId: number) => NewDelivery[]>();
    if (!this.store) return out;
    let hooksByRepo: Map<string, ActiveWebhook[]> | undefined;
    for (const [i, e] of events.entries()) {
      if (e.repository === null || e.status < 200 || e.status >= 300) continue;
      if (!(WEBHOOK_EVENTS as readonly string[]).includes(e.action)) continue;
      hooksByRepo ??= await this.activeHooks();
      const hooks = (hooksByRepo.get(e.repository) ?? []).filter((h) => h.events.includes(e.action));
      if (hooks.length === 0) continue;
      out.set(i, (eventId) =>
        hooks.map((h) => {
          const id = randomUUID();
          return { id, webhookId: h.id, event: e.action, payload: eventPayload(id, eventId, e), nextAttemptAt: e.time };
        }),
      );
    }
    return out;
  }

  private async activeHooks(): Promise<Map<string, ActiveWebhook[]>> {
    const now = Date.now();
    if (this.cache && this.cache.until > now) return this.cache.byRepository;
    const byRepository = new Map<string, ActiveWebhook[]>();
    for (const h of await this.store!.listActiveWebhooks()) {
      const list = byRepository.get(h.repository) ?? [];
      list.push(h);
      byRepository.set(h.repository, list);
    }
    this.cache = { until: now + (this.opts.cacheTtlMs ?? 5000), byRepository };
    return byRepository;
  }

  /** Starts the delivery worker of this node. */
  start(): void {
    if (!this.store || !this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => this.kick(), this.opts.pollIntervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Stops polling, aborts attempts in flight (they are retried later, here or elsewhere). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const c of this.inFlight) c.abort();
    await this.running;
    this.agents['http:'].destroy(); // idle keep-alive sockets
    this.agents['https:'].destroy();
  }

  /** Looks for due deliveries now (e.g. right after events that started some were written). */
  kick(): void {
    if (this.stopped || !this.store) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.runDue()
      .catch((e: unknown) => this.opts.onError?.(e))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Claims and sends due deliveries, `concurrency` at a time, until none is due. */
  private async runDue(): Promise<void> {
    const store = this.store!;
    for (;;) {
      if (this.stopped) return;
      const now = Date.now();
      const batch = await store.claimDeliveries(now, now + this.opts.timeoutMs + 30_000, this.opts.concurrency);
      if (batch.length === 0) return;
      await Promise.all(batch.map((d) => this.attempt(d)));
    }
  }

  /** One attempt (the claim already counted it), then its outcome recorded. */
  private async attempt(d: ClaimedDelivery): Promise<void> {
    const store = this.store!;
    let responseStatus: number | null = null;
    let error: string | null = null;
    if (!d.active) {
      error = 'webhook is disabled';
    } else {
      const controller = new AbortController();
      this.inFlight.add(controller);
      try {
        const res = await send(new URL(d.url), {
          method: 'POST',
          agents: this.agents,
          timeoutMs: this.opts.timeoutMs,
          signal: controller.signal,
          headers: {
            'content-type': 'application/json',
            'user-agent': 'Berth-Webhook/1',
            'x-berth-event': d.event,
            'x-berth-delivery': d.id,
            'x-berth-signature': signPayload(Keyring.isSealed(d.secret) ? this.keyring.decryptText(d.secret, PURPOSE.webhookSecret) : d.secret, d.payload),
          },
          body: Buffer.from(d.payload),
        });
        responseStatus = res.status;
        // A status and its standard reason: never the receiver's body (it may be anything).
        if (res.status < 200 || res.status >= 300) error = `HTTP ${res.status}${STATUS_CODES[res.status] ? ` ${STATUS_CODES[res.status]}` : ''}`;
      } catch (e) {
        // The same text whatever happened before an answer: refused, closed, unreachable, timed out.
        error = CONNECT_FAILED;
        this.opts.onDeliveryError?.(originOf(d.url), e instanceof EgressError ? e.reason : String(e));
      } finally {
        this.inFlight.delete(controller);
      }
    }
    const at = Date.now();
    if (error === null) {
      this.stats.delivered++;
      await store.finishAttempt(d.id, { status: 'delivered', responseStatus, error: null, nextAttemptAt: d.nextAttemptAt, at });
      return;
    }
    if (d.attempts >= this.opts.maxAttempts || !d.active) {
      this.stats.failed++;
      await store.finishAttempt(d.id, { status: 'failed', responseStatus, error, nextAttemptAt: d.nextAttemptAt, at });
      return;
    }
    this.stats.retried++;
    const wait = this.opts.backoffBaseMs * 2 ** (d.attempts - 1);
    await store.finishAttempt(d.id, { status: 'pending', responseStatus, error, nextAttemptAt: at + wait, at });
    // A short wait is served by this node's own timer, not by the next poll.
    if (!this.stopped && wait < this.opts.pollIntervalMs) setTimeout(() => this.kick(), wait).unref();
  }
}
