import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_CODES, RegistryError, type ErrorCode, isOutOfSpace, isUnavailable } from '../core/errors.ts';
import { ApiError } from '../core/access/tenancy.ts';
import { discardUnreadBody } from './unread-body.ts';

export interface OciErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

export function errorBody(code: ErrorCode | string, message: string, detail?: unknown): OciErrorBody {
  return { errors: [{ code, message, ...(detail === undefined ? {} : { detail }) }] };
}

/**
 * A client that went away mid-request is the client's doing, never a 500. Judged by the
 * request's own state only: a reset from a dependency (database, S3) is a server error.
 */
function isClientAbort(_e: unknown, request: FastifyRequest): boolean {
  // `destroyed` alone says nothing: a request read to the end is destroyed too.
  return request.raw.aborted === true || request.raw.readableAborted === true;
}

/**
 * The one error handler: a RegistryError becomes its registered status and OCI error JSON;
 * fastify's own 4xx errors keep their status; a backing service that is not answering is a
 * 503 UNAVAILABLE (retryable); anything else is a 500, logged with its stack.
 * HEAD responses carry no body.
 */
export function handleError(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): void {
  let status: number;
  let body: OciErrorBody;
  if (error instanceof RegistryError) {
    status = error.status;
    body = errorBody(error.code, error.message, error.detail);
    for (const [k, v] of Object.entries(error.headers)) reply.header(k, v);
    if (status >= 500) request.log.error({ err: error }, 'registry error');
  } else if (error instanceof ApiError) {
    status = error.status;
    body = errorBody(error.code, error.message);
  } else if (isOutOfSpace(error)) {
    // The operator's problem, not the client's: said plainly, never a 500 UNKNOWN.
    request.log.error({ err: { message: error.message, code: (error as { code?: unknown }).code } }, 'out of storage space');
    status = ERROR_CODES.STORAGE_FULL.status;
    body = errorBody('STORAGE_FULL', ERROR_CODES.STORAGE_FULL.message);
  } else if (isClientAbort(error, request)) {
    request.log.info({ err: { message: error.message } }, 'client aborted the request');
    status = 400;
    body = errorBody('BLOB_UPLOAD_INVALID', 'the request body ended early (client aborted)');
  } else if ('statusCode' in error && typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    status = error.statusCode;
    const code: string = status === 413 ? 'SIZE_INVALID' : status === 404 ? 'NOT_FOUND' : 'UNSUPPORTED';
    body = errorBody(code, error.message);
  } else if (isUnavailable(error)) {
    // the database or the object store is not answering: a retryable 503, not a 500
    request.log.warn({ err: { message: error.message, code: (error as { code?: unknown }).code } }, 'backing service unavailable');
    status = 503;
    reply.header('Retry-After', '1');
    body = errorBody('UNAVAILABLE', ERROR_CODES.UNAVAILABLE.message);
  } else {
    request.log.error({ err: error }, 'unhandled error');
    status = 500;
    body = errorBody('UNKNOWN', ERROR_CODES.UNKNOWN.message);
  }
  // An error may come before the body was read (or half way through): let the client see it.
  discardUnreadBody(request, reply);
  reply.code(status);
  reply.removeHeader('content-length');
  if (request.method === 'HEAD') {
    reply.header('content-length', '0');
    reply.send();
    return;
  }
  reply.type('application/json; charset=utf-8').send(body);
}
