/**
 * Connection-level bounds of the HTTP server (docs/security.md#resource-limits): time to send
 * the headers, idle keep-alive connections, a body that stops moving, and open connections per
 * client address. There is deliberately no bound on a request's total time: a multi-GB upload
 * that keeps moving runs as long as it needs.
 */
import type { Socket } from 'node:net';
import type { Server } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { proxyTrust } from './proxies.ts';

export interface HttpLimits {
  /** Time to send the request line and headers (slow-loris), seconds. */
  headersTimeoutSeconds: number;
  /** An idle keep-alive connection is closed after this long, seconds. */
  keepAliveTimeoutSeconds: number;
  /** The body-progress window, seconds: a body bringing less than `bodyMinBytes` in it is cut; an answer not read for it too. */
  bodyIdleTimeoutSeconds: number;
  /** Bytes a request body must bring in every window. */
  bodyMinBytes: number;
  /** Open connections per peer address; 0: no limit. */
  maxConnectionsPerAddress: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutSeconds: 30,
  keepAliveTimeoutSeconds: 65,
  bodyIdleTimeoutSeconds: 60,
  bodyMinBytes: 16 * 1024,
  maxConnectionsPerAddress: 256,
};

/** Fastify server options for the timeouts. */
export function timeoutOptions(limits: HttpLimits) {
  const headersTimeout = limits.headersTimeoutSeconds * 1000;
  return {
    keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
    // No socket inactivity bound while the server itself works (e.g. a slow upstream): the
    // body and answer are bounded by bodyProgress.
    connectionTimeout: 0,
    // No total-request bound (big uploads run as long as they keep moving)...
    requestTimeout: 0,
    // ...but Node derives the header timeout from that one, so it is set on its own; it is
    // checked every connectionsCheckingInterval.
    http: { headersTimeout, connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(headersTimeout / 4))) },
  };
}

/**
 * An HTTP/2 server that also speaks HTTP/1.1 (`allowHTTP1`) serves those connections with
 * Node's HTTP/1.1 code but its own defaults: a 300 s bound on every request (which would cut a
 * long upload) and a 60 s header timeout. The same bounds as the plain HTTPS server instead.
 */
export function http1Limits(server: unknown, limits: HttpLimits): void {
  const t = timeoutOptions(limits);
  Object.assign(server as object, {
    requestTimeout: 0,
    headersTimeout: t.http.headersTimeout,
    connectionsCheckingInterval: t.http.connectionsCheckingInterval,
    keepAliveTimeout: t.keepAliveTimeout,
  });
}

/** The HTTP/2 stream of a request (compat API), or undefined for HTTP/1.x. */
function h2Stream(raw: unknown): { close(code?: number): void; destroyed: boolean; endAfterHeaders: boolean } | undefined {
  const r = raw as { httpVersionMajor?: number; stream?: { close(code?: number): void; destroyed: boolean; endAfterHeaders: boolean } };
  return r.httpVersionMajor === 2 ? r.stream : undefined;
}
/** RST_STREAM CANCEL: ends one stream, not the connection that carries others. */
const NGHTTP2_CANCEL = 0x8;

/**
 * Body progress: a request body must bring at least `minBytes` in every `seconds` window, or
 * the connection is closed — a stalled upload and a trickle (one byte every few seconds) alike.
 * Time the server itself holds the body back (data buffered, not yet read: auth, a slow
 * backend) does not count against the client. A PATCH cut this way is rolled back to its last
 * complete chunk; the session stays open. An answer the client stops reading for `seconds` is
 * cut too. Nothing bounds the time the handler works between the two. Returns the work of the
 * app's onRequest and onSend hooks (http/app.ts runs them).
 */
export function bodyProgress(seconds: number, minBytes: number): { onRequest(req: FastifyRequest): void; onSend(req: FastifyRequest): void } {
  const windowMs = seconds * 1000;
  const steps = 4;
  return {
    onRequest(req) {
      const raw = req.raw;
      const stream = h2Stream(raw);
      // HTTP/2 bodies need no transfer-encoding or length: a request without one ends with its headers
      const hasBody = stream ? !stream.endAfterHeaders : raw.headers['transfer-encoding'] !== undefined || Number(raw.headers['content-length'] ?? 0) > 0;
      const socket = raw.socket;
      // one HTTP/2 stream is cut, not the connection (bytes are counted on the connection: a
      // stalled upload beside busy streams is not cut, a bounded leniency)
      const cut = () => (stream ? stream.destroyed || stream.close(NGHTTP2_CANCEL) : socket.destroy());
      // (app.inject() requests have no real socket)
      if (!hasBody || raw.readableEnded || typeof socket?.bytesRead !== 'number') return;
      // bytesRead at each step of the last window, oldest first
      let samples = [socket.bytesRead];
      const timer = setInterval(() => {
        if (raw.readableLength > 0) {
          samples = [socket.bytesRead]; // waiting on the server, not on the client
          return;
        }
        samples.push(socket.bytesRead);
        if (samples.length <= steps) return;
        samples.shift();
        if (samples[samples.length - 1]! - samples[0]! < minBytes) cut();
      }, windowMs / steps);
      timer.unref();
      // Every listener goes with the request: a kept-alive connection carries many requests,
      // and one left on its socket per request would hold each request until it closes.
      const stop = () => {
        clearInterval(timer);
        raw.off('end', stop);
        raw.off('close', stop);
        socket.off('close', stop);
      };
      raw.once('end', stop);
      raw.once('close', stop);
      socket.once('close', stop);
    },
    onSend(req) {
      if (h2Stream(req.raw)) return; // the connection carries other streams; HTTP/2 has its own session timeout
      const socket = req.raw.socket;
      // An inactivity timeout: re-arming one already set to the window changes nothing.
      if (typeof socket?.setTimeout === 'function' && !socket.destroyed && socket.timeout !== windowMs) socket.setTimeout(windowMs);
    },
  };
}

/** Closes connections beyond `max` open ones from one peer address (trusted proxies exempt). */
export function capConnections(server: Server, max: number, trustedProxies: string[] = []): void {
  if (max <= 0) return;
  const trusted = proxyTrust(trustedProxies);
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const addr = socket.remoteAddress;
    if (!addr || trusted(addr)) return;
    const n = (open.get(addr) ?? 0) + 1;
    if (n > max) {
      socket.destroy();
      return;
    }
    open.set(addr, n);
    socket.once('close', () => {
      const left = (open.get(addr) ?? 1) - 1;
      if (left > 0) open.set(addr, left);
      else open.delete(addr);
    });
  });
}
