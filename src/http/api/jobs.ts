import { z } from 'zod';
import { Text, iso } from './fields.ts';
import type { Registry } from '../../core/registry.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import type { JobCount, JobRecord } from '../../core/jobs/queue.ts';
import type { ApiRoute } from './index.ts';


export const presentJob = (j: JobRecord) => ({
  id: j.id,
  kind: j.kind,
  subject: j.subject,
  state: j.state,
  attempts: j.attempts,
  runAfter: iso(j.runAfter),
  leaseOwner: j.leaseOwner,
  leaseUntil: iso(j.leaseUntil),
  lastError: j.lastError,
  createdAt: iso(j.createdAt),
  enqueuedAt: iso(j.enqueuedAt),
});

const presentCount = (c: JobCount, now: number) => ({
  kind: c.kind,
  state: c.state,
  count: c.count,
  due: c.due,
  oldestRunAfter: iso(c.oldestRunAfter),
  oldestDueAgeSeconds: c.due > 0 ? Math.max(0, Math.round((now - c.oldestRunAfter) / 1000)) : 0,
});

const schemas = {
  retry: z.object({ id: z.number().int().positive().optional(), kind: Text.min(1).max(100).optional() }).strict(),
};

const STATES = new Set(['queued', 'running', 'dead']);

/** `/api/v1/jobs`: the durable job queue, for site administrators (`berth jobs`). */
export function jobApiRoutes(registry: Registry): ApiRoute[] {
  const jobs = registry.jobs;
  const admin = registry.tenancy;
  return [
    {
      method: 'GET',
      url: '/api/v1/jobs',
      summary: 'Jobs of the durable queue, oldest first (site administrators)',
      query: [
        { name: 'state', description: 'queued | running | dead' },
        { name: 'kind', description: 'job kind, e.g. gc.blob' },
        { name: 'after', description: 'cursor: the last id seen' },
        { name: 'limit', description: 'at most this many (default 100, max 1000)' },
      ],
      handler: async ({ identity, query }) => {
        admin.requireSiteAdmin(identity);
        const state = typeof query.state === 'string' ? query.state : undefined;
        if (state !== undefined && !STATES.has(state)) throw new ApiError(400, 'INVALID', 'state must be queued, running or dead');
        const limit = query.limit === undefined ? 100 : Number(query.limit);
        if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000) throw new ApiError(400, 'INVALID', 'limit must be 1 to 1000');
        const after = query.after === undefined ? undefined : Number(query.after);
        if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) throw new ApiError(400, 'INVALID', 'after must be a job id');
        const kind = typeof query.kind === 'string' ? query.kind.slice(0, 100) : undefined;
        const rows = await jobs.store.list({ state: state as JobRecord['state'] | undefined, kind, limit, afterId: after });
        return { jobs: rows.map(presentJob), next: rows.length === limit ? rows[rows.length - 1]!.id : null };
      },
    },
    {
      method: 'GET',
      url: '/api/v1/jobs/counts',
      summary: 'Jobs per kind and state, with how many are due and the age of the oldest (site administrators)',
      handler: async ({ identity }) => {
        admin.requireSiteAdmin(identity);
        const now = Date.now();
        return (await jobs.store.counts(now)).map((c) => presentCount(c, now));
      },
    },
    {
      method: 'POST',
      url: '/api/v1/jobs/retry',
      summary: 'Queue dead jobs again: one by id, every dead job of a kind, or every dead job (site administrators)',
      body: schemas.retry,
      handler: async ({ identity, body }) => {
        admin.requireSiteAdmin(identity);
        const retried = await jobs.store.retry({ ...(body.id !== undefined ? { id: body.id } : {}), ...(body.kind !== undefined ? { kind: body.kind } : {}) }, Date.now());
        if (retried > 0) jobs.kick();
        return { retried };
      },
    },
  ];
}
