/** The one API client: every call to /api/v1 goes through `api()`; the session's key is sent; answers' shapes are in api-types.ts. */
/** Called when the server refuses the session's key (expired or revoked): the header re-renders. */
export let onSignedOut: () => void = () => undefined;
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

export interface Session {
  username: string;
  secret: string;
  keyId: number;
}
export const SESSION_KEY = 'berth.session';
export function session(): Session | null {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
  } catch {
    return null;
  }
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T = any>(method: string, url: string, body?: unknown, opts: { auth?: string; raw?: BodyInit } = {}): Promise<T> {
  const headers: Record<string, string> = {};
  const s = session();
  if (opts.auth) headers.Authorization = opts.auth;
  else if (s) headers.Authorization = `Bearer ${s.secret}`;
  let payload: BodyInit | undefined;
  if (opts.raw !== undefined) {
    payload = opts.raw;
    headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(url, { method, headers, body: payload });
  if (res.status === 204) return undefined as T;
  return answer<T>(res.status, res.statusText, await res.text(), !!s && !opts.auth);
}

/** A file from the API (e.g. the audit log as CSV), with the session's key. */
export async function apiBlob(url: string): Promise<Blob> {
  const s = session();
  const res = await fetch(url, { headers: s ? { Authorization: `Bearer ${s.secret}` } : {} });
  if (!res.ok) throw new HttpError(res.status, `${res.status} ${res.statusText}`);
  return res.blob();
}

/**
 * POSTs a file as the raw body with the session's key, reporting the bytes sent (fetch cannot
 * report upload progress; XMLHttpRequest can). Answers and errors like `api()`.
 */
/**
 * An API answer: its JSON on success; otherwise an HttpError with the server's message. A 401
 * to a request sent with the session's credentials ends the session.
 */
function answer<T>(status: number, statusText: string, text: string, withSession: boolean): T {
  let doc: unknown;
  try {
    doc = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  if (status >= 200 && status < 300) return doc as T;
  if (status === 401 && withSession) {
    sessionStorage.removeItem(SESSION_KEY);
    onSignedOut();
  }
  const message = (doc as { errors?: { message?: string }[] } | undefined)?.errors?.[0]?.message;
  throw new HttpError(status, message ?? `${status} ${statusText}`);
}

export function apiUpload<T>(url: string, file: Blob, onProgress: (sent: number, total: number) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    const s = session();
    if (s) xhr.setRequestHeader('Authorization', `Bearer ${s.secret}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onerror = () => reject(new HttpError(0, 'the upload failed: the connection was lost'));
    xhr.onload = () => {
      try {
        resolve(answer<T>(xhr.status, xhr.statusText, xhr.responseText, !!s));
      } catch (e) {
        reject(e);
      }
    };
    xhr.send(file);
  });
}
