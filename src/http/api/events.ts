import { Readable } from 'node:stream';
import { z } from 'zod';
import type { Analytics, EventQuery } from '../../core/events/audit.ts';
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import { WEBHOOK_EVENTS } from '../../core/events/webhooks.ts';
import type { DeliveryRecord, EventRecord } from '../../core/types.ts';
import type { ApiRoute } from './index.ts';
import { RawResponse } from './raw.ts';
import { Text, iso } from './fields.ts';


const schemas = {
  createWebhook: z
    .object({
      url: Text.min(1).max(2000),
      events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).default(['push', 'delete']),
      /** Given, or generated; returned only in the creation response. */
      secret: Text.min(16).max(200).optional(),
      active: z.boolean().default(true),
    })
    .strict(),
  updateWebhook: z
    .object({
      url: Text.min(1).max(2000).optional(),
      events: z.array(z.enum(WEBHOOK_EVENTS)).min(1).optional(),
      active: z.boolean().optional(),
    })
    .strict(),
};

export const presentEvent = (e: EventRecord) => ({
  id: e.id,
  time: new Date(e.time).toISOString(),
  action: e.action,
  actor: { kind: e.actorKind, name: e.actor, credentialId: e.credentialId },
  repository: e.repository,
  image: e.image,
  reference: e.reference,
  digest: e.digest,
  clientIp: e.clientIp,
  userAgent: e.userAgent,
  bytes: e.bytes,
  status: e.status,
  detail: e.detail,
});

export const presentDelivery = (d: DeliveryRecord) => ({
  id: d.id,
  event: d.event,
  eventId: d.eventId,
  status: d.status,
  attempts: d.attempts,
  responseStatus: d.responseStatus,
  error: d.error,
  nextAttemptAt: d.status === 'pending' ? iso(d.nextAttemptAt) : null,
  lastAttemptAt: iso(d.lastAttemptAt),
  deliveredAt: iso(d.deliveredAt),
  createdAt: iso(d.createdAt),
});

export const presentAnalytics = (a: Analytics) => ({
  repository: a.repository,
  since: iso(a.since),
  until: iso(a.until),
  pulls: a.pulls,
  bytes: a.bytes,
  uniqueClients: a.uniqueClients,
  uniqueActors: a.uniqueActors,
  perDay: a.perDay.map((d) => ({ day: new Date(d.day).toISOString().slice(0, 10), pulls: d.pulls, bytes: d.bytes, uniqueClients: d.uniqueClients })),
  perTag: a.perTag,
  perToken: a.perCredential.map((c) => ({ ...c, lastPullAt: iso(c.lastPullAt) })),
  perActor: a.perActor,
  perClient: a.perClient.map((c) => ({ ...c, lastPullAt: iso(c.lastPullAt) })),
  topImages: a.topImages,
});

export const CSV_COLUMNS = ['id', 'time', 'action', 'actorKind', 'actor', 'credentialId', 'repository', 'image', 'reference', 'digest', 'clientIp', 'userAgent', 'bytes', 'status', 'detail'] as const;

/**
 * One CSV field (RFC 4180). A text that a spreadsheet would take for a formula (`=`, `+`, `-`,
 * `@`, tab, CR first: the user agent is the client's to choose) gets a leading `'`.
 */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  let s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvLine(e: EventRecord): string {
  // The CSV columns are the record's own fields (flat), the time as ISO 8601.
  const row: Record<(typeof CSV_COLUMNS)[number], unknown> = { ...e, time: new Date(e.time).toISOString() };
  return CSV_COLUMNS.map((c) => csvField(row[c])).join(',') + '\r\n';
}

/** Lines of an export, a page of events at a time (never the whole log in memory). */
function exportStream(rows: AsyncGenerator<EventRecord>, format: 'csv' | 'ndjson'): Readable {
  async function* lines(): AsyncGenerator<string> {
    if (format === 'csv') yield CSV_COLUMNS.join(',') + '\r\n';
    let chunk = '';
    for await (const e of rows) {
      chunk += format === 'csv' ? csvLine(e) : JSON.stringify(presentEvent(e)) + '\n';
      if (chunk.length >= 64 * 1024) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk) yield chunk;
  }
  return Readable.from(lines(), { objectMode: false });
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
}

const EVENT_QUERY = [
  { name: 'repository', description: 'OWNER/REPOSITORY' },
  { name: 'actor', description: 'a username, token:<id> for an entitlement token, or anonymous' },
  { name: 'action', description: 'push, pull, delete, tag_move, login, token_use, admin (comma-separated for several)' },
  { name: 'since', description: 'ISO 8601 time, ms since the epoch, or a duration back from now (7d)' },
  { name: 'until', description: 'exclusive; same forms as since' },
  { name: 'cursor', description: 'nextCursor of the previous page' },
  { name: 'limit', description: 'events per page, 1–1000 (default 100); with format csv/ndjson: the most to export (default all)' },
  { name: 'format', description: 'json (default), csv or ndjson (streamed, every matching event)' },
];

/** The audit log, analytics and webhook routes of the management API (docs/events.md). */
export function eventApiRoutes(registry: Registry): ApiRoute[] {
  const hooks = registry.webhooks;
  const id = (p: Record<string, string>) => {
    const n = Number(p.id);
    if (!Number.isSafeInteger(n) || n <= 0) throw new ApiError(404, 'NOT_FOUND', 'no such webhook');
    return n;
  };
  return [
    {
      method: 'GET',
      url: '/api/v1/events',
      summary: 'The audit log, newest first, with cursor pagination; CSV or NDJSON export (site admins: everything; repository admins: their repositories)',
      query: EVENT_QUERY,
      handler: async ({ identity, query }) => {
        const q: EventQuery = {};
        for (const k of ['repository', 'actor', 'action', 'since', 'until', 'cursor', 'limit'] as const) {
          const v = str(query[k]);
          if (v !== undefined && v !== '') q[k] = v;
        }
        const format = str(query.format) ?? 'json';
        if (format === 'csv' || format === 'ndjson') {
          const rows = await registry.audit.export(identity, q);
          const stamp = new Date().toISOString().replace(/[:.]/g, '-');
          return new RawResponse(
            200,
            format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
            exportStream(rows, format),
            { 'content-disposition': `attachment; filename="berth-events-${stamp}.${format}"` },
          );
        }
        if (format !== 'json') throw new ApiError(400, 'INVALID', 'format must be json, csv or ndjson');
        const page = await registry.audit.list(identity, q);
        return { events: page.events.map(presentEvent), nextCursor: page.nextCursor };
      },
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/analytics',
      summary: 'Pull analytics (repository admins): per day, tag, token, actor and client IP, unique clients, top images',
      query: [
        { name: 'since', description: 'default: 30 days before until' },
        { name: 'until', description: 'exclusive; default now' },
        { name: 'top', description: 'rows per list, 1–1000 (default 100)' },
      ],
      handler: async ({ identity, params, query }) =>
        presentAnalytics(
          await registry.audit.analytics(identity, params.owner!, params.repo!, {
            ...(str(query.since) ? { since: str(query.since)! } : {}),
            ...(str(query.until) ? { until: str(query.until)! } : {}),
            ...(str(query.top) ? { top: str(query.top)! } : {}),
          }),
        ),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/webhooks',
      summary: "A repository's webhooks (without their secrets)",
      handler: async ({ identity, params }) => (await hooks.list(identity, params.owner!, params.repo!)).map(presentHook),
    },
    {
      method: 'POST',
      url: '/api/v1/repos/:owner/:repo/webhooks',
      summary: 'Create a webhook; its secret (given or generated) is returned only now',
      body: schemas.createWebhook,
      status: 201,
      handler: async ({ identity, params, body }) => {
        const h = await hooks.create(identity, params.owner!, params.repo!, body);
        return { ...presentHook(h), secret: h.secret };
      },
    },
    {
      method: 'PATCH',
      url: '/api/v1/repos/:owner/:repo/webhooks/:id',
      summary: "Change a webhook's URL, events or active flag",
      body: schemas.updateWebhook,
      handler: async ({ identity, params, body }) => presentHook(await hooks.update(identity, params.owner!, params.repo!, id(params), body)),
    },
    {
      method: 'DELETE',
      url: '/api/v1/repos/:owner/:repo/webhooks/:id',
      summary: 'Delete a webhook and its delivery log',
      status: 204,
      handler: async ({ identity, params }) => hooks.remove(identity, params.owner!, params.repo!, id(params)),
    },
    {
      method: 'POST',
      url: '/api/v1/repos/:owner/:repo/webhooks/:id/test',
      summary: 'Send a ping delivery now; answers with the outcome of its first attempt',
      handler: async ({ identity, params }) => presentDelivery(await hooks.test(identity, params.owner!, params.repo!, id(params))),
    },
    {
      method: 'GET',
      url: '/api/v1/repos/:owner/:repo/webhooks/:id/deliveries',
      summary: "A webhook's delivery log, newest first",
      query: [{ name: 'limit', description: '1–1000 (default 100)' }],
      handler: async ({ identity, params, query }) => {
        const raw = str(query.limit);
        const limit = raw && /^\d+$/.test(raw) ? Math.min(Math.max(Number(raw), 1), 1000) : 100;
        return (await hooks.deliveries(identity, params.owner!, params.repo!, id(params), limit)).map(presentDelivery);
      },
    },
  ];
}

export function presentHook(h: { id: number; repository: string; url: string; events: string[]; active: boolean; createdBy: string; createdAt: number }) {
  return { id: h.id, repository: h.repository, url: h.url, events: h.events, active: h.active, createdBy: h.createdBy, createdAt: iso(h.createdAt) };
}
