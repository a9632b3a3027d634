/**
 * Repository webhooks: management and access, a signed push delivered to a receiver in the
 * test (HMAC verified), retries with exponential backoff (a receiver that fails twice gets the
 * third attempt), giving up after maxAttempts, the ping test, deliveries continued by another
 * Berth on the same database, and the `berth webhook` CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ADMIN,
  api,
  apiOk,
  basic,
  eventually,
  type EventsBerth,
  openBerth,
  pull,
  pushImage,
  type Receiver,
  setupTenancy,
  startReceiver,
  type Tenancy,
  USER_PASSWORD,
} from './helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const SECRET = 'a-webhook-secret-of-some-length';
/** The receivers listen on loopback, which the egress policy refuses unless allowed. */
const LOOPBACK = { allow: ['127.0.0.1'] };

function hmac(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

describe('webhooks', () => {
  let b: EventsBerth;
  let t: Tenancy;
  const receivers: Receiver[] = [];
  const receiver = async (answer?: (i: number) => number) => {
    const r = await startReceiver(answer);
    receivers.push(r);
    return r;
  };

  before(async () => {
    // small backoff: 100 ms, 200 ms, 400 ms, …
    b = await openBerth({ events: { flushIntervalMs: 20 }, webhooks: { backoffBaseMs: 100, maxAttempts: 4, pollIntervalMs: 50, timeoutMs: 2000 }, egress: LOOPBACK });
    t = await setupTenancy(b.app);
  });
  after(async () => {
    await b?.close();
    for (const r of receivers) await r.close();
  });

  const hooks = '/api/v1/repos/acme/prod/webhooks';

  it('delivers a signed push event; the receiver verifies the HMAC of the body', async () => {
    const rx = await receiver();
    const hook = await apiOk(b.app, 'POST', hooks, t.bob, { url: rx.url, events: ['push'], secret: SECRET }, 201);
    assert.equal(hook.secret, SECRET, 'the secret is returned at creation');
    assert.deepEqual([hook.repository, hook.events, hook.active, hook.createdBy], ['acme/prod', ['push'], true, 'bob']);

    const img = await pushImage(b.app, 'acme/prod/web', 'v1', t.bob);
    const [got] = await rx.waitFor(1);
    const h = got!.headers;
    assert.equal(h['content-type'], 'application/json');
    assert.equal(h['x-berth-event'], 'push');
    assert.equal(h['x-berth-signature'], hmac(SECRET, got!.body), 'X-Berth-Signature = sha256=HMAC-SHA256(secret, body)');
    assert.notEqual(h['x-berth-signature'], hmac('another-secret-entirely', got!.body));
    const body = JSON.parse(got!.body);
    assert.equal(h['x-berth-delivery'], body.id);
    assert.match(body.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      { event: body.event, repository: body.repository, image: body.image, reference: body.reference, tag: body.tag, digest: body.digest, size: body.size, actor: body.actor },
      { event: 'push', repository: 'acme/prod', image: 'acme/prod/web', reference: 'v1', tag: 'v1', digest: img.digest, size: img.bytes.length, actor: { kind: 'user', name: 'bob' } },
    );
    assert.ok(Number.isInteger(body.eventId) && body.eventId > 0);
    assert.match(body.timestamp, /Z$/);

    // the delivery log
    const log = await eventually(async () => {
      const l = await apiOk(b.app, 'GET', `${hooks}/${hook.id}/deliveries`, t.bob, undefined, 200);
      return l[0]?.status === 'delivered' ? l : undefined;
    });
    assert.deepEqual([log.length, log[0].id, log[0].event, log[0].attempts, log[0].responseStatus, log[0].error], [1, body.id, 'push', 1, 204, null]);
    // the audit log has the event the payload names
    const ev = (await apiOk(b.app, 'GET', '/api/v1/events?repository=acme/prod&action=push&limit=1', ADMIN, undefined, 200)).events[0];
    assert.equal(ev.id, body.eventId);

    // subscribed to push only: pulls and deletes of acme/prod, pushes elsewhere, send nothing
    await pull(b.app, 'acme/prod/web', 'v1', t.bob);
    await b.app.inject({ method: 'DELETE', url: '/v2/acme/prod/web/manifests/v1', headers: { authorization: t.bob } });
    await pushImage(b.app, 'acme/dev/web', 'v1');
    await b.flush();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(rx.received.length, 1);
    await apiOk(b.app, 'DELETE', `${hooks}/${hook.id}`, t.bob, undefined, 204);
  });

  it('a receiver that fails twice gets the third attempt, after exponential backoff', async () => {
    const rx = await receiver((i) => (i < 2 ? 500 : 200));
    const hook = await apiOk(b.app, 'POST', hooks, t.bob, { url: rx.url, events: ['delete', 'pull'] }, 201);
    assert.ok(typeof hook.secret === 'string' && hook.secret.length >= 20, 'a generated secret');
    await pushImage(b.app, 'acme/prod/retry', 'v1');
    await pull(b.app, 'acme/prod/retry', 'v1', t.carol);
    const got = await rx.waitFor(3);
    const ids = got.map((g) => g.headers['x-berth-delivery']);
    assert.equal(new Set(ids).size, 1, 'the same delivery, retried');
    assert.deepEqual(got.map((g) => g.body), [got[0]!.body, got[0]!.body, got[0]!.body], 'the same body (and signature) each time');
    for (const g of got) assert.equal(g.headers['x-berth-signature'], hmac(hook.secret, g.body));
    assert.equal(JSON.parse(got[0]!.body).event, 'pull');
    const gap1 = got[1]!.at - got[0]!.at;
    const gap2 = got[2]!.at - got[1]!.at;
    assert.ok(gap1 >= 90, `first retry after ≥ 100 ms (was ${gap1})`);
    assert.ok(gap2 >= 190, `second retry after ≥ 200 ms (was ${gap2})`);

    const d = await eventually(async () => {
      const l = await apiOk(b.app, 'GET', `${hooks}/${hook.id}/deliveries`, t.bob, undefined, 200);
      return l[0]?.status === 'delivered' ? l[0] : undefined;
    });
    assert.deepEqual([d.attempts, d.responseStatus, d.error, d.nextAttemptAt], [3, 200, null, null]);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(rx.received.length, 3, 'nothing after success');
    await apiOk(b.app, 'DELETE', `${hooks}/${hook.id}`, t.bob, undefined, 204);
  });

  it('gives up after maxAttempts and logs the failure', async () => {
    const rx = await receiver(() => 503);
    const hook = await apiOk(b.app, 'POST', hooks, t.bob, { url: rx.url, events: ['push'] }, 201);
    await pushImage(b.app, 'acme/prod/down', 'v1');
    await rx.waitFor(4);
    const d = await eventually(async () => {
      const l = await apiOk(b.app, 'GET', `${hooks}/${hook.id}/deliveries`, t.bob, undefined, 200);
      return l[0]?.status === 'failed' ? l[0] : undefined;
    });
    assert.deepEqual([d.attempts, d.responseStatus], [4, 503]);
    assert.match(d.error, /^HTTP 503/);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(rx.received.length, 4, 'exactly maxAttempts');
    const stats = b.berth.registry.webhooks.stats;
    assert.ok(stats.failed >= 1 && stats.retried >= 3 + 2 && stats.delivered >= 2);
    await apiOk(b.app, 'DELETE', `${hooks}/${hook.id}`, t.bob, undefined, 204);
  });

  it('the ping test answers with the outcome of its first attempt', async () => {
    const rx = await receiver();
    const hook = await apiOk(b.app, 'POST', hooks, t.bob, { url: rx.url, events: ['push'], secret: SECRET }, 201);
    const ok = await apiOk(b.app, 'POST', `${hooks}/${hook.id}/test`, t.bob, undefined, 200);
    assert.deepEqual([ok.event, ok.status, ok.attempts, ok.responseStatus], ['ping', 'delivered', 1, 204]);
    const [got] = await rx.waitFor(1);
    assert.equal(got!.headers['x-berth-event'], 'ping');
    assert.equal(got!.headers['x-berth-signature'], hmac(SECRET, got!.body));
    assert.deepEqual(JSON.parse(got!.body).webhook, { id: hook.id, url: rx.url, events: ['push'] });

    // nobody listening: the first attempt fails and a retry is scheduled
    await rx.close();
    const down = await apiOk(b.app, 'POST', `${hooks}/${hook.id}/test`, t.bob, undefined, 200);
    assert.deepEqual([down.status, down.attempts, down.responseStatus], ['pending', 1, null]);
    assert.ok(down.error && down.nextAttemptAt, JSON.stringify(down));
    assert.equal(down.error, 'connection failed', 'one text, whatever the network said');
    await apiOk(b.app, 'DELETE', `${hooks}/${hook.id}`, t.bob, undefined, 204);
  });

  it("the test endpoint and the delivery log give a status and its reason, never the receiver's body; redirects are not followed", async () => {
    const internal = await createServer((req, res) => {
      if (req.url === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end('moved');
      else res.writeHead(500, { 'content-type': 'application/json' }).end('{"secret":"INTERNAL-DATA-123","stack":"at internal.js:1"}');
    });
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(internal.address() as AddressInfo).port}`;
    try {
      const echo = await apiOk(b.app, 'POST', hooks, t.bob, { url: `${base}/hook`, events: ['push'] }, 201);
      const d = await apiOk(b.app, 'POST', `${hooks}/${echo.id}/test`, t.bob, undefined, 200);
      assert.deepEqual([d.responseStatus, d.error], [500, 'HTTP 500 Internal Server Error']);
      const log = await api(b.app, 'GET', `${hooks}/${echo.id}/deliveries`, t.bob);
      assert.ok(!log.res.body.includes('INTERNAL-DATA') && !log.res.body.includes('internal.js'), log.res.body);
      const moved = await apiOk(b.app, 'POST', hooks, t.bob, { url: `${base}/redirect`, events: ['push'] }, 201);
      const m = await apiOk(b.app, 'POST', `${hooks}/${moved.id}/test`, t.bob, undefined, 200);
      assert.deepEqual([m.responseStatus, m.error], [302, 'HTTP 302 Found'], 'a redirect is a failed delivery, not followed');
      for (const id of [echo.id, moved.id]) await apiOk(b.app, 'DELETE', `${hooks}/${id}`, t.bob, undefined, 204);
    } finally {
      internal.closeAllConnections();
      await new Promise((resolve) => internal.close(resolve));
    }
  });

  it('with the default (closed) egress policy, a loopback receiver is refused when saved', async () => {
    const closed = await openBerth({});
    try {
      await setupTenancy(closed.app);
      const r = await api(closed.app, 'POST', hooks, ADMIN, { url: 'http://127.0.0.1:9/x', events: ['push'] });
      assert.equal(r.status, 400);
      assert.match(r.json.errors[0].message, /egress policy: 127\.0\.0\.1 is a loopback address/);
    } finally {
      await closed.close();
    }
  });

  it('lists without secrets, updates, deletes; validates URL and events', async () => {
    const h = await apiOk(b.app, 'POST', hooks, t.bob, { url: 'http://127.0.0.1:9/x', events: ['push', 'delete'], secret: SECRET }, 201);
    const listed = await apiOk(b.app, 'GET', hooks, t.bob, undefined, 200);
    assert.deepEqual(listed.map((x: any) => x.id), [h.id]);
    assert.ok(!('secret' in listed[0]), 'never the secret after creation');
    assert.ok(!JSON.stringify(listed).includes(SECRET));
    const patched = await apiOk(b.app, 'PATCH', `${hooks}/${h.id}`, t.bob, { active: false, events: ['pull'] }, 200);
    assert.deepEqual([patched.active, patched.events, 'secret' in patched], [false, ['pull'], false]);
    // an inactive hook gets nothing
    await pull(b.app, 'acme/prod/retry', 'v1', t.carol);
    await b.flush();
    assert.deepEqual(await apiOk(b.app, 'GET', `${hooks}/${h.id}/deliveries`, t.bob, undefined, 200), []);
    for (const body of [
      { url: 'ftp://x/y', events: ['push'] },
      { url: 'not a url', events: ['push'] },
      { url: 'http://u:p@x/y', events: ['push'] },
      { url: 'http://x/y', events: ['fly'] },
      { url: 'http://x/y', events: [] },
      { url: 'http://x/y', events: ['push'], secret: 'short' },
      { url: 'http://x/y', events: ['push'], extra: 1 },
    ]) {
      const r = await api(b.app, 'POST', hooks, t.bob, body);
      assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.res.body}`);
    }
    await apiOk(b.app, 'DELETE', `${hooks}/${h.id}`, t.bob, undefined, 204);
    assert.equal((await api(b.app, 'DELETE', `${hooks}/${h.id}`, t.bob)).status, 404);
    assert.equal((await api(b.app, 'GET', `${hooks}/${h.id}/deliveries`, t.bob)).status, 404);
    assert.equal((await api(b.app, 'POST', `${hooks}/abc/test`, t.bob)).status, 404);
  });

  it('only repository admins manage webhooks: outsiders and anonymous 404, readers 403', async () => {
    const h = await apiOk(b.app, 'POST', hooks, ADMIN, { url: 'http://127.0.0.1:9/x', events: ['push'] }, 201);
    const cases: [string, string, string | undefined, number][] = [
      ['GET', hooks, t.dave, 404],
      ['POST', hooks, t.dave, 404],
      ['GET', hooks, t.carol, 403],
      ['POST', hooks, t.carol, 403],
      ['DELETE', `${hooks}/${h.id}`, t.carol, 403],
      ['POST', `${hooks}/${h.id}/test`, t.carol, 403],
      ['GET', `${hooks}/${h.id}/deliveries`, t.carol, 403],
      ['GET', `${hooks}/${h.id}/deliveries`, t.dave, 404],
      ['GET', hooks, t.token, 403],
      ['GET', hooks, undefined, 404], // as everywhere in the API: a private repository is not revealed
      ['GET', '/api/v1/repos/acme/dev/webhooks', t.bob, 404],
      // a hook of another repository is not reachable through this one
      ['DELETE', `/api/v1/repos/acme/dev/webhooks/${h.id}`, ADMIN, 404],
    ];
    for (const [method, url, auth, status] of cases) {
      const body = method === 'POST' && url === hooks ? { url: 'http://x/y', events: ['push'] } : undefined;
      const r = await api(b.app, method as 'GET', url, auth, body);
      assert.equal(r.status, status, `${method} ${url} as ${auth ?? 'anonymous'}: ${r.res.body}`);
    }
    await apiOk(b.app, 'DELETE', `${hooks}/${h.id}`, ADMIN, undefined, 204);
  });

  it('deliveries are in the database: another Berth on it (a restart, another node) sends them', async () => {
    const rx = await receiver();
    const first = await openBerth({ webhooks: { pollIntervalMs: 50 }, egress: LOOPBACK });
    const dir = first.dir;
    await apiOk(first.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    await apiOk(first.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'prod' }, 201);
    await apiOk(first.app, 'POST', '/api/v1/repos/acme/prod/webhooks', ADMIN, { url: rx.url, events: ['push'], secret: SECRET }, 201);
    await first.berth.registry.webhooks.stop(); // this node stops sending (as if it crashed right after the push)
    const img = await pushImage(first.app, 'acme/prod/app', 'v1');
    await first.flush();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(rx.received.length, 0);
    await first.berth.close(); // keeps the folder: the test removes it

    const second = await openBerth({ dir, webhooks: { pollIntervalMs: 50 }, egress: LOOPBACK });
    try {
      const [got] = await rx.waitFor(1);
      assert.equal(JSON.parse(got!.body).digest, img.digest);
      assert.equal(got!.headers['x-berth-signature'], hmac(SECRET, got!.body));
    } finally {
      await second.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('berth webhook add | list | test | deliveries | rm (the CLI)', async () => {
    const srv = await openBerth({ listen: true, egress: LOOPBACK });
    const rx = await receiver();
    try {
      await apiOk(srv.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
      await apiOk(srv.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'prod' }, 201);
      await apiOk(srv.app, 'POST', '/api/v1/users', ADMIN, { username: 'bob', password: USER_PASSWORD }, 201);
      await apiOk(srv.app, 'PUT', '/api/v1/repos/acme/prod/members/bob', ADMIN, { role: 'admin' }, 200);
      const key = await apiOk(srv.app, 'POST', '/api/v1/user/api-keys', basic('bob', USER_PASSWORD), {}, 201);
      const env = { BERTH_URL: srv.url, BERTH_API_KEY: key.secret, XDG_CONFIG_HOME: srv.dir };
      const cli = (...args: string[]) => berthCli(args, env);

      const added = await cli('--json', 'webhook', 'add', 'acme/prod', rx.url, '--events', 'push,delete', '--secret', SECRET);
      assert.equal(added.code, 0, added.stderr);
      const hook = JSON.parse(added.stdout);
      assert.deepEqual([hook.events, hook.secret], [['push', 'delete'], SECRET]);

      const listed = await cli('webhook', 'list', 'acme/prod');
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /ID\s+URL\s+EVENTS/);
      assert.ok(listed.stdout.includes(rx.url) && listed.stdout.includes('push,delete'));
      assert.ok(!listed.stdout.includes(SECRET));

      const tested = await cli('webhook', 'test', 'acme/prod', String(hook.id));
      assert.equal(tested.code, 0, tested.stderr + tested.stdout);
      assert.match(tested.stdout, /status\s+delivered/);
      const [ping] = await rx.waitFor(1);
      assert.equal(ping!.headers['x-berth-signature'], hmac(SECRET, ping!.body));

      const log = await cli('--json', 'webhook', 'deliveries', 'acme/prod', String(hook.id));
      assert.equal(JSON.parse(log.stdout)[0].event, 'ping');

      const rm = await cli('webhook', 'rm', 'acme/prod', String(hook.id));
      assert.equal(rm.code, 0, rm.stderr);
      assert.equal((await cli('--json', 'webhook', 'list', 'acme/prod')).stdout.trim(), '[]');
      const missing = await cli('webhook', 'rm', 'acme/prod', String(hook.id));
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /404/);
      const bad = await cli('webhook', 'list', 'acme');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /OWNER\/REPOSITORY/);
    } finally {
      await srv.close();
    }
  });
});

function berthCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('BERTH_') && k !== 'NODE_OPTIONS') clean[k] = v;
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', 'berth.js'), ...args], { env: { ...clean, ...env }, cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}
