// This machine's ceilings for the bench, run as its own process (plain node, no tsx):
//   GET/HEAD /manifest  a bare fastify route answering a fixed body (the size of Berth's manifest)
//   PUT /upload         the request body streamed to a file (1 MiB writes), fsynced, then 201
// Usage: node ceiling-server.mjs PORT BODY_FILE UPLOAD_DIR
import { createWriteStream, readFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Fastify from 'fastify';

const [port, bodyFile, uploadDir] = process.argv.slice(2);
const body = readFileSync(bodyFile);
const app = Fastify({ logger: false, exposeHeadRoutes: false, keepAliveTimeout: 65_000, requestTimeout: 0 });
app.removeAllContentTypeParsers();
app.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined));
const manifest = (_req, reply) => {
  reply.header('Content-Type', 'application/vnd.oci.image.manifest.v1+json').header('Content-Length', String(body.length));
  reply.send(_req.method === 'HEAD' ? undefined : body);
};
app.get('/manifest', manifest);
app.head('/manifest', manifest);
let n = 0;
app.put('/upload', async (req, reply) => {
  const file = path.join(uploadDir, `u${process.pid}-${n++}`);
  await pipeline(req.raw, createWriteStream(file, { highWaterMark: 1024 * 1024 }));
  const fh = await fsp.open(file, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rm(file); // not read again; keeps the page cache from growing
  reply.code(201).header('Content-Length', '0').send();
});
await app.listen({ host: '127.0.0.1', port: Number(port) });
