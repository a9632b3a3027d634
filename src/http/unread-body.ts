import { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** How much of a body an early answer reads and throws away to keep the connection. */
export const DISCARD_BYTES = 8 * 1024 * 1024;
/** How long the client may take to finish sending it. */
export const DISCARD_MS = 10_000;
/** After a half-close, how long the rest is still read (and thrown away) before the socket goes. */
export const LINGER_MS = 5_000;

/**
 * Lets the client read an answer sent before its request body was read (an error: 401, 404,
 * 413, …). Many clients write the whole body before they read anything; closing the socket
 * with their bytes unread makes the kernel reset the connection, and the reset destroys the
 * answer on its way. So the rest of the body is read and thrown away:
 * - up to DISCARD_BYTES within DISCARD_MS: the connection then stays open for the next request;
 * - beyond that, once the answer is flushed, the write side is closed (FIN: the client sees
 *   the answer end) and reading goes on for LINGER_MS more, then the socket is destroyed
 *   (RFC 9112 §9.6, the "lingering close").
 * Nothing is kept in memory. A request whose body is fully read, or gone, is left alone.
 */
export function discardUnreadBody(request: FastifyRequest, reply: FastifyReply): void {
  const req = request.raw;
  // HTTP/2: the answer ends the stream and the rest of the body is refused by the protocol
  // itself (RST_STREAM), never the connection; nothing to linger for.
  if (req.httpVersionMajor === 2) return;
  const socket = req.socket;
  if (req.readableEnded || req.destroyed || !(socket instanceof Socket) || socket.destroyed) return;
  let received = 0;
  let lingering = false;
  const linger = () => {
    if (lingering) return;
    lingering = true;
    clearTimeout(timer);
    if (socket.destroyed) return;
    socket.end();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
  // Past the bound: once the answer is out.
  const halfClose = () => {
    if (reply.raw.writableFinished) linger();
    else reply.raw.once('finish', linger).once('close', linger);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > DISCARD_BYTES) halfClose();
  };
  const timer = setTimeout(halfClose, DISCARD_MS).unref();
  // Node closes the socket at once after an answer when the client asked it to (`Connection:
  // close`, HTTP/1.0): while the body is unread, that close lingers too.
  socket.destroySoon = linger;
  const done = () => {
    clearTimeout(timer);
    req.off('data', onData);
    if (socket.destroySoon === linger) delete (socket as { destroySoon?: () => void }).destroySoon;
  };
  req.on('data', onData);
  req.once('end', done).once('close', done);
  req.resume();
}
