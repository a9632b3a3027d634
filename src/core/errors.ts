/**
 * Registered error codes: each has one message and one HTTP status, as in the OCI Distribution
 * Spec's error table (and distribution's errcode registry). `core` throws RegistryError; the
 * HTTP layer serializes it once into `{"errors":[{code,message,detail}]}`.
 */
export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 404, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  // distribution's code for a tag that is not a valid tag (docker prints it).
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // Not in the spec's table, used by Berth for generic HTTP conditions (as distribution does).
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  NOT_FOUND: { status: 404, message: 'not found' },
  UPSTREAM_UNAVAILABLE: { status: 502, message: 'no upstream registry could answer' },
  STORAGE_FULL: { status: 507, message: 'the registry is out of storage space: writes fail until space is freed; reads still work' },
  UNAVAILABLE: { status: 503, message: 'a backing service (database or object store) is unavailable; retry' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers (e.g. `Range` on a 416 for an upload). */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message?: string,
    opts: { detail?: unknown; status?: number; headers?: Record<string, string> } = {},
  ) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'RegistryError';
    this.code = code;
    this.status = opts.status ?? ERROR_CODES[code].status;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }
}

export function isRegistryError(e: unknown): e is RegistryError {
  return e instanceof RegistryError;
}

/** Error codes of a full disk: the filesystem's, SQLite's and PostgreSQL's (SQLSTATE 53100 disk_full). */
const OUT_OF_SPACE = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100']);

/** Whether `e` (or an error it wraps) says the disk or the database is full. */
export function isOutOfSpace(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && typeof cur === 'object' && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && OUT_OF_SPACE.has(code)) return true;
  }
  return false;
}

/** Network failures: the peer (database, object store) could not be reached or went away. */
// SQLITE_BUSY: another process held the embedded database's write lock for longer than a
// statement waits for it (5 s).
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTCONN', 'EAI_AGAIN', 'SQLITE_BUSY']);

/**
 * Whether `e` (or an error it wraps in `cause`) says a backing service could not be reached:
 * a network error code, or `unavailable: true`, which the metadata and storage drivers set on
 * errors that mean "the service is not answering" rather than "the request was wrong".
 */
export function isUnavailable(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && typeof cur === 'object' && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    const o = cur as { unavailable?: unknown; code?: unknown };
    if (o.unavailable === true) return true;
    if (typeof o.code === 'string' && UNREACHABLE.has(o.code)) return true;
  }
  return false;
}
