/**
 * Answers sent before the request body was read (401, 404, 413, 400 mid-body), over real
 * sockets, to a client that writes its whole request before it reads anything — as many HTTP
 * libraries do. The client must see the status and the OCI error JSON, never a reset; a body
 * within the discard bound keeps the connection for the next request, a larger one ends with
 * a graceful close, and a sender that stalls is cut off in bounded time.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DISCARD_BYTES, DISCARD_MS, LINGER_MS } from '../../src/http/unread-body.ts';
import { ADMIN_AUTH, OCI_MANIFEST, startBerth, startUpload, type TestBerth } from './helpers.ts';

const NAME = 'acme/prod/early';
const MiB = 1024 * 1024;

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One client connection that writes first and reads afterwards. */
class WriteFirstClient {
  private buf = Buffer.alloc(0);
  private ended = false;
  private error: Error | undefined;
  private wake: () => void = () => undefined;
  private readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('end', () => this.settle(() => (this.ended = true)));
    socket.on('close', () => this.settle(() => (this.ended = true)));
    socket.on('error', (e) => this.settle(() => (this.error = e)));
  }

  static connect(port: number): Promise<WriteFirstClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new WriteFirstClient(s)));
      s.once('error', reject);
    });
  }

  private settle(f: () => void): void {
    f();
    this.wake();
  }

  /** Writes everything, resolving once the last byte went to the kernel; nothing is read meanwhile. */
  write(...parts: (string | Buffer)[]): Promise<void> {
    return new Promise((resolve, reject) => {
      for (const [i, p] of parts.entries()) {
        this.socket.write(p, (e) => {
          if (e) reject(new Error(`write failed before the answer was read: ${e.message}`));
          else if (i === parts.length - 1) resolve();
        });
      }
    });
  }

  /** Starts reading, and resolves with the next complete response. */
  async response(timeoutMs = 20_000): Promise<RawResponse> {
    this.socket.on('data', (c: Buffer) => this.settle(() => (this.buf = Buffer.concat([this.buf, c]))));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = this.parse();
      if (parsed) return parsed;
      if (this.error) throw new Error(`connection failed before a whole response arrived (${this.buf.length} bytes): ${this.error.message}`);
      if (this.ended) throw new Error(`connection closed before a whole response arrived: ${JSON.stringify(this.buf.toString('latin1'))}`);
      if (Date.now() > deadline) throw new Error('no response in time');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 200);
      });
    }
  }

  /** Resolves true when the server closed the connection within `ms`, false when it is still open. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.ended && !this.error && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 100);
      });
    }
    return this.ended || this.error !== undefined;
  }

  get failed(): Error | undefined {
    return this.error;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private parse(): RawResponse | undefined {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine = '', ...lines] = this.buf.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (this.buf.length < end + 4 + length) return undefined;
    const body = this.buf.subarray(end + 4, end + 4 + length).toString('utf8');
    this.buf = this.buf.subarray(end + 4 + length);
    return { status: Number(statusLine.split(' ')[1]), headers, body };
  }
}

function request(method: string, path: string, headers: Record<string, string | number>): string {
  return `${method} ${path} HTTP/1.1\r\nHost: registry.test\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
}

function errorCode(res: RawResponse): string | undefined {
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, `JSON error body: ${res.body}`);
  return (JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]?.code;
}

/** A chunked body of `total` bytes in 1 MiB chunks, terminated. */
function chunked(total: number): Buffer[] {
  const out: Buffer[] = [];
  for (let left = total; left > 0; left -= MiB) {
    const n = Math.min(MiB, left);
    out.push(Buffer.from(`${n.toString(16)}\r\n`), Buffer.alloc(n, 0x20), Buffer.from('\r\n'));
  }
  out.push(Buffer.from('0\r\n\r\n'));
  return out;
}

describe('early answers reach a client that writes its whole body first (real sockets)', () => {
  let b: TestBerth;
  let port: number;
  const open: WriteFirstClient[] = [];
  const connect = async () => {
    const c = await WriteFirstClient.connect(port);
    open.push(c);
    return c;
  };

  before(async () => {
    b = await startBerth();
    await b.app.listen({ host: '127.0.0.1', port: 0 });
    port = (b.app.server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const c of open) c.destroy();
    await b.close();
  });

  it('manifest PUT over the limit, within the discard bound → 413 JSON, and the connection serves the next request', async () => {
    const c = await connect();
    const size = 5 * MiB;
    assert.ok(size < DISCARD_BYTES);
    await c.write(request('PUT', `/v2/${NAME}/manifests/big`, { authorization: ADMIN_AUTH, 'content-type': OCI_MANIFEST, 'content-length': size }), Buffer.alloc(size, 0x20));
    const res = await c.response();
    assert.equal(res.status, 413);
    assert.equal(errorCode(res), 'MANIFEST_INVALID');
    assert.match(res.body, /larger than 4194304 bytes/);
    assert.notEqual(res.headers.connection, 'close');
    await c.write(request('GET', '/v2/', { authorization: ADMIN_AUTH }));
    const next = await c.response();
    assert.equal(next.status, 200, 'the same connection answers the next request');
    assert.equal(next.body, '{}');
  });

  it('manifest PUT far over the discard bound → 413 JSON, then a graceful close', async () => {
    const c = await connect();
    const size = 64 * MiB;
    const body = randomBytes(size);
    await c.write(request('PUT', `/v2/${NAME}/manifests/huge`, { authorization: ADMIN_AUTH, 'content-type': OCI_MANIFEST, 'content-length': size }), body);
    const res = await c.response();
    assert.equal(res.status, 413);
    assert.equal(errorCode(res), 'MANIFEST_INVALID');
    assert.ok(await c.closedWithin(LINGER_MS + 2000), 'the server closes the connection');
    assert.equal(c.failed, undefined, 'no reset');
  });

  it('chunked manifest PUT over the limit → 413 JSON', async () => {
    const c = await connect();
    await c.write(request('PUT', `/v2/${NAME}/manifests/chunked`, { authorization: ADMIN_AUTH, 'content-type': OCI_MANIFEST, 'transfer-encoding': 'chunked' }), ...chunked(6 * MiB));
    const res = await c.response();
    assert.equal(res.status, 413);
    assert.equal(errorCode(res), 'MANIFEST_INVALID');
    await c.write(request('GET', '/v2/', { authorization: ADMIN_AUTH }));
    assert.equal((await c.response()).status, 200, 'the rest of the chunked body was read and thrown away');
  });

  it('blob upload without credentials → 401 with the challenge and JSON, whatever the body size', async () => {
    for (const size of [64 * 1024, 40 * MiB]) {
      const c = await connect();
      await c.write(request('POST', `/v2/${NAME}/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, { 'content-type': 'application/octet-stream', 'content-length': size }), Buffer.alloc(size));
      const res = await c.response();
      assert.equal(res.status, 401, `${size} bytes`);
      assert.equal(errorCode(res), 'UNAUTHORIZED');
      assert.match(res.headers['www-authenticate'] ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/v2\/token",service="berth",scope="repository:acme\/prod\/early:pull,push"$/);
    }
  });

  it('a client that sends `Connection: close` reads the answer too (the close lingers while its body is unread)', async () => {
    for (const size of [MiB, 40 * MiB]) {
      const c = await connect();
      await c.write(
        request('POST', `/v2/${NAME}/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, { connection: 'close', 'content-type': 'application/octet-stream', 'content-length': size }),
        Buffer.alloc(size),
      );
      const res = await c.response();
      assert.equal(res.status, 401, `${size} bytes`);
      assert.equal(errorCode(res), 'UNAUTHORIZED');
      assert.equal(res.headers.connection, 'close');
      assert.ok(await c.closedWithin(LINGER_MS + 2000));
      assert.equal(c.failed, undefined, 'no reset');
    }
  });

  it('PATCH to an unknown upload → 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const c = await connect();
    const size = 20 * MiB;
    await c.write(request('PATCH', `/v2/${NAME}/blobs/uploads/7c2f3f8e-4d8e-4a3a-9b7a-000000000000`, { authorization: ADMIN_AUTH, 'content-type': 'application/octet-stream', 'content-length': size }), Buffer.alloc(size));
    const res = await c.response();
    assert.equal(res.status, 404);
    assert.equal(errorCode(res), 'BLOB_UPLOAD_UNKNOWN');
  });

  it('a chunk longer than its Content-Range → 400 SIZE_INVALID after part of the body, and the upload keeps its bytes', async () => {
    const { location } = await startUpload(b.app, NAME);
    const c = await connect();
    const size = 6 * MiB;
    await c.write(
      request('PATCH', location, { authorization: ADMIN_AUTH, 'content-type': 'application/octet-stream', 'content-range': '0-99', 'content-length': size }),
      Buffer.alloc(size, 0x61),
    );
    const res = await c.response();
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), 'SIZE_INVALID');
    await c.write(request('GET', location, { authorization: ADMIN_AUTH }));
    const status = await c.response();
    assert.equal(status.status, 204, 'the connection still serves requests');
    assert.equal(status.headers.range, '0-0', 'the refused chunk left nothing behind');
  });

  it('unknown route with a body → 404 JSON', async () => {
    const c = await connect();
    await c.write(request('PUT', '/nowhere', { 'content-type': 'application/octet-stream', 'content-length': 3 * MiB }), Buffer.alloc(3 * MiB));
    const res = await c.response();
    assert.equal(res.status, 404);
    assert.equal(errorCode(res), 'NOT_FOUND');
  });

  it('a sender that stalls mid-body gets its answer at once and the connection is cut in bounded time', async () => {
    const c = await connect();
    await c.write(request('POST', `/v2/${NAME}/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, { 'content-type': 'application/octet-stream', 'content-length': 100 * MiB }), Buffer.alloc(1024));
    const t0 = Date.now();
    const res = await c.response();
    assert.equal(res.status, 401);
    assert.ok(Date.now() - t0 < 2000, 'the answer does not wait for the body');
    assert.ok(await c.closedWithin(DISCARD_MS + LINGER_MS + 3000), 'the server does not wait forever for the rest');
    assert.ok(Date.now() - t0 >= DISCARD_MS - 500, 'nor does it cut the sender off at once');
  });
});
