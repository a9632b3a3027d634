/**
 * Connection limits over real sockets (docs/security.md#resource-limits): slow headers are cut
 * after the header timeout, a stalled upload body after the body idle timeout (its session stays
 * resumable), connections per address are capped, and an upload that keeps moving is never cut
 * however long it takes.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/schema.ts';
import { type Berth, createBerth } from '../../src/main.ts';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ADMIN_PASSWORD = 'limits-admin-password';
const ADMIN = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Running {
  berth: Berth;
  port: number;
  url: string;
  close(): Promise<void>;
}

async function start(env: Record<string, string>): Promise<Running> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-limits-http-'));
  const berth = await createBerth(loadConfig({ env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD, BERTH_DATA: dir, ...env } }));
  if (!(await berth.accessStore.findOwner('acme'))) await berth.accessStore.createOwner('acme', 'org');
  const address = await berth.app.listen({ host: '127.0.0.1', port: 0 });
  const port = Number(new URL(address).port);
  return {
    berth,
    port,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await berth.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Opens a socket; resolves once connected. */
function connect(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Milliseconds until the server closes `s` (or rejects after `limitMs`); what it sent before. */
function closedWithin(s: net.Socket, limitMs: number): Promise<{ ms: number; data: string }> {
  const t0 = Date.now();
  let data = '';
  s.on('data', (d: Buffer) => (data += d.toString()));
  s.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still open after ${limitMs} ms`)), limitMs);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - t0, data });
    });
  });
}

async function newUpload(url: string): Promise<string> {
  const res = await fetch(`${url}/v2/acme/limits/app/blobs/uploads/`, { method: 'POST', headers: { authorization: ADMIN } });
  assert.equal(res.status, 202, await res.text());
  return res.headers.get('location')!;
}

describe('HTTP timeouts (header 1 s, body progress 1 KiB per 1 s)', () => {
  let b: Running;
  before(async () => {
    b = await start({ BERTH_HEADERS_TIMEOUT_SECONDS: '1', BERTH_BODY_IDLE_TIMEOUT_SECONDS: '1', BERTH_BODY_MIN_BYTES: '1024', BERTH_KEEP_ALIVE_TIMEOUT_SECONDS: '1', BERTH_MAX_CONNECTIONS_PER_ADDRESS: '0' });
  });
  after(async () => {
    await b?.close();
  });

  it('slow-loris: 500 connections trickling header bytes are all cut after the header timeout', async () => {
    const sockets = await Promise.all(Array.from({ length: 500 }, () => connect(b.port)));
    const closed = sockets.map((s) => closedWithin(s, 6000));
    const header = `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(100)}`;
    let i = 0;
    const drip = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write(header[i % header.length]!);
      i++;
    }, 100);
    try {
      const results = await Promise.all(closed);
      for (const r of results) {
        assert.ok(r.ms >= 900 && r.ms < 4000, `closed after ${r.ms} ms`);
        assert.match(r.data, /^(HTTP\/1\.1 408|)/, 'at most a 408, never a response to the request');
      }
    } finally {
      clearInterval(drip);
    }
  });

  it('a connection that sends nothing is closed too', async () => {
    const r = await closedWithin(await connect(b.port), 5000);
    assert.ok(r.ms < 3000, `closed after ${r.ms} ms`);
  });

  it('a PATCH whose body stalls is cut after the body idle timeout; the session resumes with GET + PATCH', async () => {
    const location = await newUpload(b.url);
    const first = await fetch(`${b.url}${location}`, { method: 'PATCH', headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, body: 'abc' });
    assert.equal(first.status, 202);
    const s = await connect(b.port);
    const closed = closedWithin(s, 8000);
    s.write(`PATCH ${location} HTTP/1.1\r\nHost: x\r\nAuthorization: ${ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`);
    s.write(Buffer.alloc(5000, 0x61));
    const r = await closed; // and then nothing more
    assert.ok(r.ms >= 900 && r.ms < 4000, `cut after ${r.ms} ms`);
    // the session is still there, at the last durable offset (the stalled chunk is not half-kept)
    let range = '';
    for (let i = 0; i < 50 && range !== '0-2'; i++) {
      const st = await fetch(`${b.url}${location}`, { headers: { authorization: ADMIN } });
      assert.equal(st.status, 204);
      range = st.headers.get('range')!;
      if (range !== '0-2') await sleep(20);
    }
    assert.equal(range, '0-2');
    const more = await fetch(`${b.url}${location}`, {
      method: 'PATCH',
      headers: { authorization: ADMIN, 'content-type': 'application/octet-stream', 'content-range': '3-5' },
      body: 'def',
    });
    assert.equal(more.status, 202, await more.text());
    assert.equal(more.headers.get('range'), '0-5');
    const put = await fetch(`${b.url}${location}${location.includes('?') ? '&' : '?'}digest=${sha256('abcdef')}`, { method: 'PUT', headers: { authorization: ADMIN } });
    assert.equal(put.status, 201, await put.text());
  });

  it('100 uploads trickling one byte at a time are all cut; their sessions stay open', async () => {
    const locations = await Promise.all(Array.from({ length: 100 }, () => newUpload(b.url)));
    const sockets = await Promise.all(locations.map(() => connect(b.port)));
    const closed = sockets.map((s) => closedWithin(s, 8000));
    sockets.forEach((s, i) =>
      s.write(`PATCH ${locations[i]} HTTP/1.1\r\nHost: x\r\nAuthorization: ${ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n`),
    );
    const drip = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('a');
    }, 100);
    try {
      for (const r of await Promise.all(closed)) assert.ok(r.ms >= 900 && r.ms < 5000, `cut after ${r.ms} ms`);
    } finally {
      clearInterval(drip);
    }
    const st = await fetch(`${b.url}${locations[0]}`, { headers: { authorization: ADMIN } });
    assert.equal(st.status, 204, 'the session is still there');
  });

  it('a client that stops reading an answer is cut after the idle timeout', async () => {
    const blob = randomBytes(32 * 1024 * 1024);
    const digest = sha256(blob);
    const pushed = await fetch(`${b.url}/v2/acme/limits/app/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, body: blob });
    assert.equal(pushed.status, 201);
    const s = await connect(b.port);
    s.write(`GET /v2/acme/limits/app/blobs/${digest} HTTP/1.1\r\nHost: x\r\nAuthorization: ${ADMIN}\r\n\r\n`);
    s.pause(); // read nothing: the buffers fill, then nothing moves
    await sleep(3500);
    let got = 0;
    const ended = new Promise<void>((resolve) => {
      s.on('data', (d: Buffer) => (got += d.length));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
    });
    s.resume();
    await ended;
    assert.ok(got < blob.length, `the connection was cut (${got} of ${blob.length} bytes sent)`);
    // the download stopped with its client and released the blob file
    const hex = digest.slice('sha256:'.length);
    const open = async () => (await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')))).filter((l) => l.endsWith(hex));
    for (let i = 0; i < 50 && (await open()).length; i++) await sleep(20);
    assert.deepEqual(await open(), [], 'no file descriptor left open on the blob');
  });

  it('requests with bodies on one kept-alive connection leave no listeners behind on its socket', async () => {
    const sockets: net.Socket[] = [];
    const onConnection = (s: net.Socket) => sockets.push(s);
    b.berth.app.server.on('connection', onConnection);
    const client = await connect(b.port);
    let received = '';
    client.on('data', (d: Buffer) => (received += d.toString('latin1')));
    try {
      for (let i = 0; i < 30; i++) {
        const blob = randomBytes(1024 * 1024); // still arriving when the request begins
        const url = `/v2/acme/limits/app/blobs/uploads/?digest=sha256:${createHash('sha256').update(blob).digest('hex')}`;
        received = '';
        client.write(`POST ${url} HTTP/1.1\r\nHost: x\r\nAuthorization: ${ADMIN}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${blob.length}\r\n\r\n`);
        client.write(blob);
        for (let t = 0; !/\r\n\r\n/.test(received) && t < 500; t++) await sleep(10); // the 201 has no body
        assert.match(received, /^HTTP\/1\.1 201 /);
      }
      assert.equal(sockets.length, 1, 'one connection carried every request');
      assert.ok(sockets[0]!.listenerCount('close') < 10, `${sockets[0]!.listenerCount('close')} close listeners left on the socket`);
    } finally {
      b.berth.app.server.off('connection', onConnection);
      client.destroy();
    }
  });

  it('an upload that keeps moving runs longer than every timeout (no total-request bound)', async () => {
    const location = await newUpload(b.url);
    const chunk = randomBytes(256 * 1024);
    const n = 16; // 4 MiB over ~3.2 s: longer than the 1 s timeouts, never idle for 1 s
    const hash = createHash('sha256');
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === n) return controller.close();
        await sleep(200);
        hash.update(chunk);
        controller.enqueue(chunk);
        sent++;
      },
    });
    const t0 = Date.now();
    const res = await fetch(`${b.url}${location}`, {
      method: 'PATCH',
      headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' },
      body,
      duplex: 'half',
    } as RequestInit);
    assert.equal(res.status, 202, await res.text());
    assert.ok(Date.now() - t0 > 3000, 'took longer than the timeouts');
    assert.equal(res.headers.get('range'), `0-${n * chunk.length - 1}`);
    const put = await fetch(`${b.url}${location}${location.includes('?') ? '&' : '?'}digest=sha256:${hash.digest('hex')}`, { method: 'PUT', headers: { authorization: ADMIN } });
    assert.equal(put.status, 201, await put.text());
  });
});

describe('connections per address', () => {
  it('beyond the cap a new connection from the same address is closed at once; other addresses, freed slots and trusted proxies still work', async (t) => {
    const b = await start({ BERTH_MAX_CONNECTIONS_PER_ADDRESS: '5', BERTH_TRUSTED_PROXIES: '127.0.0.3' });
    t.after(() => b.close());
    const held = await Promise.all(Array.from({ length: 5 }, () => connect(b.port)));
    // a request on a held connection is answered
    const ok = closedWithin(held[0]!, 5000);
    held[0]!.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match((await ok).data, /^HTTP\/1\.1 200/);
    await sleep(50);
    // 4 held: one more is allowed, the one after is refused
    const fifth = await connect(b.port);
    const sixth = await connect(b.port);
    const refused = await closedWithin(sixth, 2000);
    assert.equal(refused.data, '', 'closed without an answer');
    assert.ok(refused.ms < 1000);
    // another source address is not affected
    const other = await connect(b.port, '127.0.0.2');
    const answered = closedWithin(other, 5000);
    other.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match((await answered).data, /^HTTP\/1\.1 200/);
    // a freed slot can be used again
    fifth.destroy();
    await sleep(100);
    const again = await connect(b.port);
    const reply = closedWithin(again, 5000);
    again.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match((await reply).data, /^HTTP\/1\.1 200/);
    // a trusted proxy carries many clients: not capped
    const viaProxy = await Promise.all(Array.from({ length: 8 }, () => connect(b.port, '127.0.0.3')));
    const last = closedWithin(viaProxy[7]!, 5000);
    viaProxy[7]!.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match((await last).data, /^HTTP\/1\.1 200/);
    for (const s of [...held, ...viaProxy]) s.destroy();
  });
});
