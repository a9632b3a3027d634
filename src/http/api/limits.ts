import { z } from 'zod';
import { Text } from './fields.ts';
import type { Registry } from '../../core/registry.ts';
import type { LimitTarget } from '../../core/limits/rate-limits.ts';
import type { RateLimitRecord } from '../../metadata/rate-limit-store.ts';
import { ApiError } from '../../core/access/tenancy.ts';
import { parseSize } from '../../core/lifecycle/policy.ts';
import type { ApiRoute } from './index.ts';

const Kind = z.enum(['anonymous', 'user', 'token', 'repository']);
const Bound = z.number().int().nonnegative().nullable().default(null);
/** Bytes, or a size with units (`50GiB`, `500MB`); `none` or null: unbounded. */
const Size = z.union([z.number().int().nonnegative(), Text.max(40)]).nullable().default(null);

const schemas = {
  setLimit: z
    .object({
      kind: Kind,
      /** A username, a token or API key id, `OWNER/REPOSITORY`; absent: the default of the kind. */
      subject: Text.max(300).optional(),
      requestsPerMinute: Bound,
      bytesPerDay: Size,
    })
    .strict(),
};

const present = (r: RateLimitRecord) => ({
  kind: r.kind,
  subject: r.subjectId === null ? null : r.kind === 'token' ? String(r.subjectId) : r.subjectName,
  ...(r.kind === 'token' && r.subjectId !== null ? { name: r.subjectName, credentialKind: r.credentialKind, repository: r.repository ?? null } : {}),
  requestsPerMinute: r.requestsPerMinute,
  bytesPerDay: r.bytesPerDay,
  setBySiteAdmin: r.siteAdmin,
  updatedAt: new Date(r.updatedAt).toISOString(),
});

function target(query: Record<string, unknown>): LimitTarget {
  const kind = Kind.safeParse(query.kind);
  if (!kind.success) throw new ApiError(400, 'INVALID', 'kind must be anonymous, user, token or repository');
  const subject = query.subject;
  if (subject !== undefined && (typeof subject !== 'string' || subject.length > 300 || !Text.safeParse(subject).success)) {
    throw new ApiError(400, 'INVALID', 'subject must be one username, token id or OWNER/REPOSITORY');
  }
  return { kind: kind.data, ...(subject === undefined ? {} : { subject }) };
}

/**
 * `/api/v1/limits`: request and byte limits (docs/limits.md). Site administrators set every
 * kind; a repository's managers set their repository's limit and its entitlement tokens'.
 */
export function limitApiRoutes(registry: Registry): ApiRoute[] {
  const limits = registry.rateLimits;
  return [
    {
      method: 'GET',
      url: '/api/v1/limits',
      summary: 'The limits the caller may see: all (site administrators) or those of repositories they manage and their tokens',
      handler: async ({ identity }) => (await limits.list(identity)).map(present),
    },
    {
      method: 'PUT',
      url: '/api/v1/limits',
      summary: 'Set a limit: {kind, subject?, requestsPerMinute, bytesPerDay}; no subject sets the default of the kind (null: no bound)',
      body: schemas.setLimit,
      handler: async ({ identity, body }) => {
        const { kind, subject, requestsPerMinute, bytesPerDay: size } = body as z.infer<typeof schemas.setLimit>;
        const bytesPerDay = typeof size === 'string' ? parseSize(size) : size;
        return present(await limits.set(identity, { kind, ...(subject === undefined ? {} : { subject }) }, { requestsPerMinute, bytesPerDay }));
      },
    },
    {
      method: 'DELETE',
      url: '/api/v1/limits',
      summary: 'Remove a limit named by ?kind=&subject= (no subject: the default of the kind)',
      query: [
        { name: 'kind', description: 'anonymous, user, token or repository' },
        { name: 'subject', description: 'a username, a token or API key id, OWNER/REPOSITORY; absent: the default' },
      ],
      status: 204,
      handler: async ({ identity, query }) => {
        await limits.remove(identity, target(query));
        return undefined;
      },
    },
  ];
}
