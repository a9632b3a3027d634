import type { FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, RegistryError } from '../core/errors.ts';
import { ApiError } from '../core/access/tenancy.ts';
import { CONTROL_CHARACTERS_MESSAGE, isCleanText } from '../core/content/text.ts';

/**
 * /v2 paths and the error code for each of their parts (the name first). A reference that
 * cannot exist is "not found" where it is only looked up (GET, HEAD, DELETE of a manifest; any
 * request on an upload id), as the spec answers unknown references; a PUT that would create
 * a tag is refused as an invalid tag.
 */
const V2_PARTS: [RegExp, (decoded: string, method: string) => ErrorCode][] = [
  [/^\/v2\/(.+)\/manifests\/([^/]*)$/, (ref, method) => (method !== 'PUT' ? 'MANIFEST_UNKNOWN' : ref.includes(':') ? 'DIGEST_INVALID' : 'TAG_INVALID')],
  [/^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/, () => 'BLOB_UPLOAD_UNKNOWN'],
  [/^\/v2\/(.+)\/blobs\/([^/]*)$/, () => 'DIGEST_INVALID'],
  [/^\/v2\/(.+)\/referrers\/([^/]*)$/, () => 'DIGEST_INVALID'],
];

/** /v2 query parameters and the error code when they are not clean text. */
const V2_QUERY: Record<string, ErrorCode> = {
  digest: 'DIGEST_INVALID',
  mount: 'DIGEST_INVALID',
  from: 'NAME_INVALID',
  scope: 'NAME_INVALID',
  n: 'PAGINATION_NUMBER_INVALID',
  last: 'PAGINATION_NUMBER_INVALID',
};

/** Percent-decodes; undefined when the encoding is broken or is not UTF-8. */
function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

const clean = (raw: string) => {
  const s = decode(raw);
  return s !== undefined && isCleanText(s) ? s : undefined;
};

function v2Error(code: ErrorCode, what: string): RegistryError {
  return new RegistryError(code, `${what} ${CONTROL_CHARACTERS_MESSAGE}`, code === 'UNSUPPORTED' ? { status: 400 } : {});
}

/** Printable ASCII without `%`: nothing to decode, nothing to refuse (what clients send). */
const PLAIN_URL = /^[\x20-\x24\x26-\x7e]*$/;

/** The error for a request whose URL carries a control character, or undefined when it is clean. */
export function urlError(url: string, method = 'GET'): Error | undefined {
  if (PLAIN_URL.test(url)) return undefined;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const v2 = path === '/v2' || path.startsWith('/v2/');
  if (clean(path) === undefined) {
    if (!v2) return new ApiError(400, 'INVALID', `the path ${CONTROL_CHARACTERS_MESSAGE}`);
    for (const [re, codeOf] of V2_PARTS) {
      const m = re.exec(path);
      if (!m) continue;
      if (clean(m[1]!) === undefined) return v2Error('NAME_INVALID', 'the repository name');
      return v2Error(codeOf(decode(m[2]!) ?? '', method), 'the reference');
    }
    return v2Error('NAME_INVALID', 'the repository name');
  }
  if (q === -1) return undefined;
  for (const pair of url.slice(q + 1).split('&')) {
    const eq = pair.indexOf('=');
    // Forms encode spaces as `+`: harmless here, only control characters are looked for.
    const key = decode(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    if (key === undefined || !isCleanText(key) || clean(value) === undefined) {
      const name = key !== undefined && isCleanText(key) ? key : '?';
      if (!v2) return new ApiError(400, 'INVALID', `query parameter "${name.slice(0, 40)}" ${CONTROL_CHARACTERS_MESSAGE}`);
      return v2Error(V2_QUERY[name] ?? 'UNSUPPORTED', `query parameter "${name.slice(0, 40)}"`);
    }
  }
  return undefined;
}

/**
 * The onRequest step (http/app.ts) that refuses, with a 400, any request whose path or query
 * carries a control character, a lone surrogate or broken percent-encoding — before routing,
 * authentication or any event note, so that nothing of it is stored or recorded
 * (docs/security.md, "Input at the edge"). Returns the error, or undefined when the URL is clean.
 */
export function dirtyUrlError(req: FastifyRequest, reply: FastifyReply): Error | undefined {
  const e = urlError(req.raw.url ?? '', req.raw.method);
  if (e instanceof RegistryError) reply.header('Docker-Distribution-API-Version', 'registry/2.0');
  return e;
}
