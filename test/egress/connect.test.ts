/**
 * The egress agent on real sockets: every address form refused at connect time with no
 * connection made, names checked on every address they resolve to, the checked address pinned
 * (one resolution per connection, no rebinding window), one text for refused / closed /
 * timed out, and the allow-list opening exactly what it names.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { CONNECT_FAILED, Egress, EgressError, send } from '../../src/core/egress/egress.ts';
import { closedPort, type CountingServer, countingServer, REFUSED_HOSTS, tableResolver } from './helpers.ts';

function agentsOf(egress: Egress) {
  return { 'http:': egress.agent('http:', { keepAlive: false }), 'https:': egress.agent('https:', { keepAlive: false }) };
}

async function outcome(egress: Egress, url: string, timeoutMs = 2000): Promise<string> {
  try {
    const r = await send(new URL(url), { method: 'POST', headers: {}, body: Buffer.from('{}'), agents: agentsOf(egress), timeoutMs });
    return `HTTP ${r.status}`;
  } catch (e) {
    assert.ok(e instanceof EgressError, String(e));
    return e.message;
  }
}

describe('egress at connect time', () => {
  let srv: CountingServer;
  before(async () => {
    srv = await countingServer();
  });
  after(() => srv.close());

  it('refuses every form of a non-public address, and no connection is made', async () => {
    const egress = new Egress({ resolve: tableResolver() });
    for (const host of REFUSED_HOSTS) {
      const url = `http://${host}:${srv.port}/hook`;
      let err: unknown;
      try {
        await send(new URL(url), { method: 'POST', headers: {}, agents: agentsOf(egress), timeoutMs: 2000 });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof EgressError, `${url}: ${String(err)}`);
      assert.equal(err.refused, true, `${url}: refused by the policy (${err.reason})`);
      assert.equal(err.message, CONNECT_FAILED);
    }
    assert.equal(srv.connections(), 0, 'nothing reached the loopback server');
  });

  it('the system resolver: localhost is loopback', async () => {
    const egress = new Egress();
    await assert.rejects(egress.addresses('localhost', 80), (e: unknown) => e instanceof EgressError && e.refused && /loopback/.test(e.reason));
  });

  it('every resolved address is checked: one public address among them does not open a private one', async () => {
    const egress = new Egress({ resolve: tableResolver() });
    await assert.rejects(egress.addresses('mixed.test', 80), (e: unknown) => e instanceof EgressError && /127\.0\.0\.1/.test(e.reason));
    assert.equal((await egress.addresses('public.test', 80)).length, 1);
  });

  it('pins the checked address: one resolution per connection; a name that later resolves to loopback is refused then', async () => {
    // rebinding: public when the URL is saved, loopback when Berth connects
    let answer = '93.184.216.34';
    const rebinding = Object.assign(async () => [{ address: answer, family: 4 }], {});
    const egress = new Egress({ resolve: rebinding });
    const saved = await egress.validateUrl(`http://rebind.test:${srv.port}/hook`);
    assert.equal(saved.hostname, 'rebind.test');
    answer = '127.0.0.1';
    assert.equal(await outcome(egress, `http://rebind.test:${srv.port}/hook`), CONNECT_FAILED);
    assert.equal(srv.connections(), 0);

    // allowed by name: the connection goes to the one address resolved and checked for it
    const table = tableResolver({ 'pinned.test': ['127.0.0.1'] });
    const allowed = new Egress({ resolve: table, allow: ['pinned.test'] });
    assert.equal(await outcome(allowed, `http://pinned.test:${srv.port}/hook`), 'HTTP 200');
    assert.deepEqual(table.calls, ['pinned.test'], 'resolved once, connected to that answer');
    assert.equal(srv.requests.at(-1)!.headers.host, `pinned.test:${srv.port}`, 'the Host header keeps the name');
  });

  it('refused, closed and timed out read the same', async () => {
    const closed = await closedPort();
    const silent = await countingServer(() => undefined); // accepts, never answers
    try {
      const egress = new Egress({ allow: [`127.0.0.1:${closed}`, `127.0.0.1:${silent.port}`] });
      const refused = await outcome(egress, `${srv.url}/hook`, 500);
      const refusedClosed = await outcome(egress, `http://127.0.0.1:${closed}/hook`, 500);
      const timedOut = await outcome(egress, `${silent.url}/hook`, 500);
      const unresolvable = await outcome(new Egress({ resolve: tableResolver() }), 'http://nowhere.test/hook', 500);
      assert.deepEqual([refused, refusedClosed, timedOut, unresolvable], [CONNECT_FAILED, CONNECT_FAILED, CONNECT_FAILED, CONNECT_FAILED]);
      assert.equal(silent.requests.length, 1, 'the silent server was reached: its timeout is the same text');
    } finally {
      await silent.close();
    }
  });

  it('the allow-list opens exactly what it names', async () => {
    const other = await countingServer();
    try {
      const cases: [string[], string, boolean][] = [
        [['127.0.0.1'], `http://127.0.0.1:${srv.port}/`, true],
        [['127.0.0.0/8'], `http://localhost:${srv.port}/`, true],
        [[`127.0.0.1:${srv.port}`], `http://127.0.0.1:${srv.port}/`, true],
        [[`127.0.0.1:${srv.port}`], `http://127.0.0.1:${other.port}/`, false],
        [[`localhost:${srv.port}`], `http://localhost:${srv.port}/`, true],
        [[`localhost:${srv.port}`], `http://127.0.0.1:${srv.port}/`, false],
        [[`localhost:${srv.port}`], `http://localhost:${other.port}/`, false],
        [['localhost'], `http://localhost:${other.port}/`, true],
        [['localhost'], `http://2130706433:${other.port}/`, false],
        [['10.0.0.0/8'], `http://127.0.0.1:${srv.port}/`, false],
        [['::1'], `http://127.0.0.1:${srv.port}/`, false],
      ];
      for (const [allow, url, open] of cases) {
        const got = await outcome(new Egress({ allow, resolve: tableResolver() }), url);
        assert.equal(got, open ? 'HTTP 200' : CONNECT_FAILED, `allow ${allow.join(',')} → ${url}`);
      }
    } finally {
      await other.close();
    }
  });

  it('TLS: the connection goes to the checked address, the certificate is verified against the name', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-egress-tls-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await new Promise<void>((resolve, reject) =>
      execFile(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=registry.test',
          '-addext', 'subjectAltName=DNS:registry.test', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')],
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    const cert = await readFile(path.join(dir, 'cert.pem'));
    let sni: string | false | null = null;
    const srv = https.createServer({ key: await readFile(path.join(dir, 'key.pem')), cert }, (_req, res) => res.end('tls'));
    srv.on('secureConnection', (s: TLSSocket) => (sni = s.servername));
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => srv.close(resolve)));
    const port = (srv.address() as AddressInfo).port;
    const egress = new Egress({ allow: ['127.0.0.1'], resolve: tableResolver({ 'registry.test': ['127.0.0.1'] }) });
    const call = (url: string, ca?: Buffer) =>
      send(new URL(url), { method: 'POST', headers: {}, agents: { 'http:': egress.agent('http:'), 'https:': egress.agent('https:', { keepAlive: false, ...(ca ? { ca } : {}) }) }, timeoutMs: 2000 }).then(
        (r) => `HTTP ${r.status}`,
        (e: EgressError) => `${e.message} (${e.reason})`,
      );
    assert.equal(await call(`https://registry.test:${port}/`, cert), 'HTTP 200');
    assert.equal(sni, 'registry.test', 'SNI names the host');
    assert.match(await call(`https://127.0.0.1:${port}/`, cert), /^connection failed \(.*ERR_TLS_CERT_ALTNAME_INVALID/, 'the address is not the name');
    assert.match(await call(`https://registry.test:${port}/`), /^connection failed \(.*SELF_SIGNED/, "an untrusted certificate");
  });

  it('a refused name at save time says why; an unresolvable one is left to connect time', async () => {
    const egress = new Egress({ resolve: tableResolver() });
    await assert.rejects(egress.validateUrl('http://metadata.test/latest'), (e: unknown) => e instanceof EgressError && /169\.254\.169\.254.*link-local/.test(e.reason));
    await assert.rejects(egress.validateUrl('http://[::ffff:127.0.0.1]/'), (e: unknown) => e instanceof EgressError && /IPv4-mapped/.test(e.reason));
    assert.equal((await egress.validateUrl('http://nowhere.test/hook')).hostname, 'nowhere.test');
    await assert.rejects(egress.validateUrl('ftp://public.test/'), /connection failed/);
  });
});
