/**
 * Request and byte limits on /v2 (docs/limits.md), over core's RateLimits: the request count
 * after authentication (per identity) and after authorization (per repository, so that a
 * refusal never tells an outsider a private repository exists), and the day's bytes before a
 * blob or manifest GET, counted as served once the answer ends. Nothing here runs when no
 * limit is set: the dispatcher checks `rateLimits.active` first.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Identity } from '../core/access/access.ts';
import { BYTE_WINDOW_SECONDS, type LimitStanding, type LimitSubject, type RateLimits, REQUEST_WINDOW_SECONDS, tooManyRequests } from '../core/limits/rate-limits.ts';
import { parseImageName } from '../core/content/names.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The counters this request counts against (set only while limits are in force). */
    berthLimits?: LimitSubject[];
    /** The tightest request standing so far: what the RateLimit headers say. */
    berthStanding?: LimitStanding;
  }
}

/** Counts the request against the identity's limits; 429 when one is over. */
export async function limitIdentity(limits: RateLimits, req: FastifyRequest, reply: FastifyReply, identity: Identity): Promise<void> {
  const subjects = limits.identitySubjects(identity, req.ip);
  req.berthLimits = subjects;
  if (subjects.length) await countRequest(limits, req, reply, subjects);
}

/** Counts the request against image `name`'s repository limit; 429 when it is over. */
export async function limitRepository(limits: RateLimits, req: FastifyRequest, reply: FastifyReply, name: string): Promise<void> {
  const { owner, repository } = parseImageName(name);
  const subject = limits.repositorySubject(`${owner}/${repository}`);
  if (!subject) return;
  (req.berthLimits ??= []).push(subject);
  await countRequest(limits, req, reply, [subject]);
}

async function countRequest(limits: RateLimits, req: FastifyRequest, reply: FastifyReply, subjects: LimitSubject[]): Promise<void> {
  const standing = await limits.countRequest(subjects);
  if (!standing) return;
  const prev = req.berthStanding;
  if (!prev || standing.retryAfter !== undefined || standing.remaining < prev.remaining) {
    req.berthStanding = standing;
    // Docker Hub's form: `ratelimit-limit: 100;w=21600` (the window in seconds).
    reply.header('RateLimit-Limit', `${standing.limit};w=${REQUEST_WINDOW_SECONDS}`);
    reply.header('RateLimit-Remaining', `${standing.remaining};w=${REQUEST_WINDOW_SECONDS}`);
    reply.header('Docker-RateLimit-Source', standing.subject.source);
  }
  if (standing.retryAfter !== undefined) {
    throw tooManyRequests(`rate limit of ${standing.limit} requests per minute for ${standing.subject.source} reached: try again in ${standing.retryAfter} s`, {
      'Retry-After': String(standing.retryAfter),
    });
  }
}

/**
 * Before a GET that sends blob or manifest bytes: 429 when a byte limit of the request has
 * nothing left today (a pull under way is never cut: this runs before the first byte). The
 * bytes sent — `length`, or what left before the client went away — are counted when the
 * answer ends.
 */
export async function admitPull(limits: RateLimits, req: FastifyRequest, reply: FastifyReply, length: number | undefined): Promise<void> {
  const subjects = req.berthLimits;
  if (!subjects?.length) return;
  const standing = await limits.bytesStanding(subjects);
  if (!standing) return;
  reply.header('RateLimit-Bytes-Limit', `${standing.limit};w=${BYTE_WINDOW_SECONDS}`);
  reply.header('RateLimit-Bytes-Remaining', `${standing.remaining};w=${BYTE_WINDOW_SECONDS}`);
  if (standing.retryAfter !== undefined) {
    reply.header('Docker-RateLimit-Source', standing.subject.source);
    throw tooManyRequests(`${standing.subject.source} has pulled its ${standing.limit} bytes for the day: try again in ${standing.retryAfter} s`, {
      'Retry-After': String(standing.retryAfter),
    });
  }
  const socket = req.raw.socket as { bytesWritten?: number } | null;
  const start = socket?.bytesWritten ?? 0;
  let counted = false;
  // 'finish': the whole answer was handed to the socket; 'close' before it: cut short, so what
  // went out on the socket since (headers included), at most the length.
  const count = (finished: boolean) => {
    if (counted) return;
    counted = true;
    if (reply.raw.statusCode >= 400) return; // an error answer sends no content
    const sent = finished && length !== undefined ? length : Math.min(length ?? Number.MAX_SAFE_INTEGER, Math.max(0, (socket?.bytesWritten ?? start) - start));
    limits.countBytes(subjects, sent).catch((e: unknown) => req.log.error({ err: e }, 'counting pulled bytes failed'));
  };
  reply.raw.once('finish', () => count(true));
  reply.raw.once('close', () => count(reply.raw.writableFinished));
}
