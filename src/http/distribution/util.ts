import type { FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../../core/errors.ts';

/** Upper bound on a page of tags or catalog entries when the client asks for none or more. */
export const MAX_PAGE = 10_000;

export function parsePageSize(raw: unknown): number {
  if (raw === undefined || raw === '') return MAX_PAGE;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) {
    throw new RegistryError('PAGINATION_NUMBER_INVALID', `n must be a non-negative integer`);
  }
  return Math.min(Number(raw), MAX_PAGE);
}

export function stringParam(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  if (Array.isArray(raw) && typeof raw[0] === 'string') return raw[0];
  return undefined;
}

/** Sets the RFC 5988 `Link` header for the next page. */
export function setNextLink(reply: FastifyReply, path: string, n: number, last: string | undefined): void {
  if (last === undefined) return;
  const qs = new URLSearchParams({ n: String(n), last }).toString();
  reply.header('Link', `<${path}?${qs}>; rel="next"`);
}

/**
 * The request body as chunks, or undefined when the request has none. Stopping early (our
 * own error, e.g. SIZE_INVALID or a storage failure) leaves the request stream alive, so that
 * the error response still reaches the client instead of a reset connection.
 */
export function requestBody(request: FastifyRequest): AsyncIterable<Buffer> | undefined {
  const h = request.headers;
  const len = h['content-length'];
  // HTTP/2 has no transfer-encoding: a body of unknown length is a stream that did not end with its headers
  const h2 = (request.raw as { stream?: { endAfterHeaders?: boolean } }).stream;
  const streamed = h['transfer-encoding'] !== undefined || (request.raw.httpVersionMajor === 2 && h2?.endAfterHeaders === false && len === undefined);
  if (!streamed && (len === undefined || len === '0')) return undefined;
  return request.raw.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
}

export function contentLength(request: FastifyRequest): number | undefined {
  const len = request.headers['content-length'];
  if (len === undefined || !/^\d+$/.test(len)) return undefined;
  return Number(len);
}

/** Reads a small body fully, refusing more than `limit` bytes. */
export async function readSmallBody(request: FastifyRequest, limit: number, tooLarge: () => Error): Promise<Buffer> {
  const declared = contentLength(request);
  if (declared !== undefined && declared > limit) throw tooLarge();
  const parts: Buffer[] = [];
  let n = 0;
  // Stopping early leaves the request alive: the error answer then reaches the client.
  for await (const chunk of request.raw.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) throw tooLarge();
    parts.push(chunk);
  }
  return Buffer.concat(parts, n);
}

export function emptyReply(reply: FastifyReply, status: number): void {
  reply.code(status).header('content-length', '0').send();
}
