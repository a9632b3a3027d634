// A minimal streaming HTTP/1.1 client over node:http with a keep-alive agent. Request bodies
// are streamed (never buffered whole); response bodies are either collected (small JSON,
// errors) or drained and counted (blobs).
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';

export interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, empty when drained. */
  body: Buffer;
  /** Bytes of body received. */
  bytes: number;
}

export type Body = Buffer | AsyncIterable<Buffer> | (() => AsyncIterable<Buffer>);

export interface RequestOptions {
  headers?: OutgoingHttpHeaders;
  body?: Body;
  /** Count the response body instead of keeping it. */
  drain?: boolean;
}

export class Client {
  readonly agent: http.Agent;
  /** Sent with every request unless overridden (e.g. Authorization). */
  defaultHeaders: OutgoingHttpHeaders = {};
  private readonly host: string;
  private readonly port: number;

  constructor(
    readonly base: string,
    maxSockets = 64,
  ) {
    const u = new URL(base);
    this.host = u.hostname;
    this.port = Number(u.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' });
  }

  /** A Location header (absolute or relative) or a path → the path and query to request. */
  pathOf(locationOrPath: string): string {
    const u = new URL(locationOrPath, this.base);
    return u.pathname + u.search;
  }

  request(method: string, target: string, opts: RequestOptions = {}): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const headers: OutgoingHttpHeaders = { ...this.defaultHeaders, ...opts.headers };
      const body = opts.body;
      if (Buffer.isBuffer(body)) headers['content-length'] = String(body.length);
      else if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH') && headers['content-length'] === undefined) {
        headers['content-length'] = '0';
      }
      const req = http.request(
        { agent: this.agent, host: this.host, port: this.port, method, path: this.pathOf(target), headers },
        (res) => {
          const chunks: Buffer[] = [];
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            if (!opts.drain) chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), bytes }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else pipeline(typeof body === 'function' ? body() : body, req).catch(reject);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Throws a descriptive error unless `res.status` is one of `ok`. */
export function expectStatus(res: Res, ok: number | number[], what: string): void {
  const list = Array.isArray(ok) ? ok : [ok];
  if (list.includes(res.status)) return;
  const text = res.body.toString('utf8').slice(0, 500);
  throw new Error(`${what}: expected HTTP ${list.join('/')}, got ${res.status}${text ? `: ${text}` : ''}`);
}

/** The Location header of `res`, or an error naming `what`. */
export function location(res: Res, what: string): string {
  const loc = res.headers.location;
  if (!loc) throw new Error(`${what}: response ${res.status} has no Location header`);
  return loc;
}

/** Appends a query parameter to a path or URL that may already have a query. */
export function withQuery(target: string, key: string, value: string): string {
  return `${target}${target.includes('?') ? '&' : '?'}${encodeURIComponent(key)}=${encodeURIComponent(value)}`;
}

/** The `rel="next"` target of an RFC 5988 Link header, if any. */
export function nextLink(res: Res): string | undefined {
  const raw = res.headers.link;
  if (!raw) return undefined;
  const h = Array.isArray(raw) ? raw.join(',') : raw;
  for (const part of h.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m) return m[1];
  }
  return undefined;
}
