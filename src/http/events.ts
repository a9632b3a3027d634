import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Identity } from '../core/access/access.ts';
import { type Actor, ANONYMOUS_ACTOR, type EventAction, actorOf, repositoryOf } from '../core/events/bus.ts';
import type { Registry } from '../core/registry.ts';
import type { NewEvent } from '../core/types.ts';
import type { Metrics } from './metrics.ts';

/** What a handler knows about the event its request makes; the response completes it. */
export interface PendingEvent {
  action: EventAction;
  image?: string | null;
  reference?: string | null;
  digest?: string | null;
  bytes?: number | null;
  detail?: Record<string, unknown> | null;
}

/** A credential check made while authenticating the request (http/auth.ts). */
export interface LoginAttempt {
  ok: boolean;
  identity?: Identity;
  /** The username given (for a failure: the actor of the event). */
  username?: string;
  /** An API key or entitlement token rather than a password. */
  token: boolean;
  via: 'token_endpoint' | 'basic' | 'bearer';
}

declare module 'fastify' {
  interface FastifyRequest {
    berthEvent: PendingEvent | null;
    berthMoreEvents: PendingEvent[] | null;
    berthLogin: LoginAttempt | null;
    /** The route's label for metrics (e.g. `/v2/{name}/manifests/{reference}`), where fastify's own is too coarse. */
    berthRoute: string | null;
  }
}

/** Sets (or completes) the event the request makes. */
export function noteEvent(req: FastifyRequest, e: Partial<PendingEvent> & { action?: EventAction }): void {
  if (req.berthEvent) Object.assign(req.berthEvent, e);
  else if (e.action) req.berthEvent = { ...e, action: e.action };
}

/** Adds another event (e.g. a tag move besides the push). */
export function addEvent(req: FastifyRequest, e: PendingEvent): void {
  (req.berthMoreEvents ??= []).push(e);
}

export function noteLogin(req: FastifyRequest, attempt: LoginAttempt): void {
  req.berthLogin = attempt;
}

/** A successful login by the same actor from the same address is recorded once per window. */
const LOGIN_WINDOW_MS = 60_000;
const MAX_USER_AGENT = 512;
/** Names and references come from the URL: refused requests may carry anything, so they are capped. */
const MAX_NAME = 300;
const cap = (v: string | null | undefined, n = MAX_NAME): string | null => (v === null || v === undefined ? null : v.length > n ? v.slice(0, n) : v);
const MUTATIONS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Records the event stream from the HTTP layer: one `onResponse` hook completes what the
 * handlers noted (status, actor, client IP, user agent) and hands it to the core EventBus,
 * which only queues it — the response has been sent already, and nothing here can fail it.
 * Also feeds the request metrics (whose onRequest step, `metrics.start`, http/app.ts runs).
 */
export function observeRequests(app: FastifyInstance, registry: Registry, metrics: Metrics | undefined): void {
  app.decorateRequest('berthEvent', null);
  app.decorateRequest('berthMoreEvents', null);
  app.decorateRequest('berthLogin', null);
  app.decorateRequest('berthRoute', null);
  app.decorateRequest('berthSocketStart', null);
  const bus = registry.events;
  const lastLogin = new Map<string, number>();

  app.addHook('onResponse', (req, reply, done) => {
    try {
      metrics?.observe(req, reply);
      if (bus.enabled) record(req, reply);
    } catch (e) {
      req.log.error({ err: e }, 'recording the request failed');
    }
    done();
  });

  function record(req: FastifyRequest, reply: FastifyReply): void {
    const status = reply.statusCode;
    const time = Date.now();
    const clientIp = req.ip ?? null;
    const ua = req.headers['user-agent'];
    const userAgent = typeof ua === 'string' ? ua.slice(0, MAX_USER_AGENT) : null;
    const actor = actorOf(req.berthAuth?.identity);
    const make = (action: string, a: Actor, fields: Partial<NewEvent>, st = status): NewEvent => ({
      time,
      action,
      actorKind: a.kind,
      actor: a.name,
      credentialId: a.credentialId,
      repository: null,
      image: null,
      reference: null,
      digest: null,
      clientIp,
      userAgent,
      bytes: null,
      status: st,
      detail: null,
      ...fields,
    });

    const login = req.berthLogin;
    if (login) {
      const action = login.token ? 'token_use' : 'login';
      if (login.ok) {
        const who = actorOf(login.identity);
        const key = `${action}\0${who.name}\0${who.credentialId ?? ''}\0${clientIp}`;
        const seen = lastLogin.get(key);
        // Clients that send Basic credentials on every request would otherwise log in hundreds of times a minute.
        if (login.via === 'token_endpoint' || seen === undefined || seen <= time - LOGIN_WINDOW_MS) {
          if (lastLogin.size >= 10_000) lastLogin.clear();
          lastLogin.set(key, time);
          bus.emit(make(action, who, { detail: { via: login.via } }, 200));
        }
      } else {
        const who: Actor = login.username ? { kind: 'anonymous', name: login.username, credentialId: null } : ANONYMOUS_ACTOR;
        bus.emit(make(action, who, { detail: { via: login.via, failed: true } }));
      }
    }

    const ev = req.berthEvent;
    // A blob download counts only once bytes were served (not a refusal, not a redirect to storage).
    const download = ev?.action === 'download';
    const served = Number(reply.getHeader('content-length'));
    if (download && (status === 200 || status === 206) && Number.isFinite(served)) ev!.bytes = served;
    // An anonymous request answered 401 is the challenge that starts every login: not an event.
    if (ev && !(status === 401 && !req.headers.authorization) && (!download || ev.bytes !== undefined)) {
      const image = cap(ev.image);
      bus.emit(
        make(ev.action, actor, {
          repository: repositoryOf(image),
          image,
          reference: cap(ev.reference),
          digest: cap(ev.digest),
          bytes: ev.bytes ?? null,
          detail: ev.detail ?? null,
        }),
      );
    }
    for (const more of req.berthMoreEvents ?? []) {
      const image = more.image ?? null;
      bus.emit(
        make(more.action, actor, {
          repository: repositoryOf(image),
          image,
          reference: more.reference ?? null,
          digest: more.digest ?? null,
          bytes: more.bytes ?? null,
          detail: more.detail ?? null,
        }),
      );
    }

    const route = req.routeOptions?.url;
    if (route !== undefined && route.startsWith('/api/v1/') && MUTATIONS.has(req.method)) {
      const params: Record<string, string | null> = {};
      for (const [k, v] of Object.entries((req.params as Record<string, string> | undefined) ?? {})) params[k] = cap(v, 100);
      const repository = params.owner && params.repo ? `${params.owner}/${params.repo}` : null;
      delete params.owner;
      delete params.repo;
      bus.emit(
        make('admin', actor, {
          repository,
          detail: { method: req.method, route, ...(Object.keys(params).length ? { params } : {}) },
        }),
      );
    }
  }
}
