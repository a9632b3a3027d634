/**
 * The audit log (GET /api/v1/events): what each kind of request records (push, pull, delete,
 * tag move, login, token use, admin change), filters, cursor pagination, CSV and NDJSON export,
 * who may see what, the client IP behind trusted proxies, and retention.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN,
  allEvents,
  api,
  apiOk,
  basic,
  type EventsBerth,
  openBerth,
  pull,
  pushImage,
  setupTenancy,
  type Tenancy,
} from './helpers.ts';

describe('audit log', () => {
  let b: EventsBerth;
  let t: Tenancy;
  let v1: string;
  let v1b: string;

  before(async () => {
    b = await openBerth();
    t = await setupTenancy(b.app);
    v1 = (await pushImage(b.app, 'acme/prod/app', 'v1')).digest;
    await pushImage(b.app, 'acme/dev/app', 'v1');
    v1b = (await pushImage(b.app, 'acme/prod/app', 'v1')).digest; // moves the tag
    assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.carol)).statusCode, 200);
    assert.equal((await pull(b.app, 'acme/prod/app', v1b, t.carolKey)).statusCode, 200);
    assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.token, { 'user-agent': 'customer-agent/1.0' })).statusCode, 200);
    assert.equal((await pull(b.app, 'acme/prod/app', 'v1', t.dave)).statusCode, 404, 'an outsider is refused');
    assert.equal((await pull(b.app, 'acme/prod/app', 'v1')).statusCode, 401, 'the anonymous challenge');
    assert.equal((await b.app.inject({ method: 'HEAD', url: '/v2/acme/prod/app/manifests/v1', headers: { authorization: t.carol } })).statusCode, 200);
    await b.app.inject({ url: `/v2/acme/prod/app/blobs/${v1b}`, headers: { authorization: t.carol } });
    await b.flush();
  });
  after(async () => b?.close());

  it('records pushes, tag moves, pulls (not HEAD, not blobs, not the anonymous challenge) with actor, IP, agent, bytes, status', async () => {
    const events = await allEvents(b.app, 'repository=acme/prod');
    const pushes = events.filter((e) => e.action === 'push');
    assert.equal(pushes.length, 2);
    assert.deepEqual(
      pushes.map((e) => [e.image, e.reference, e.digest, e.status, e.actor.kind, e.actor.name]),
      [
        ['acme/prod/app', 'v1', v1b, 201, 'user', 'admin'],
        ['acme/prod/app', 'v1', v1, 201, 'user', 'admin'],
      ],
    );
    assert.ok(pushes[0].bytes > 100, 'a push records the manifest size');
    const moves = events.filter((e) => e.action === 'tag_move');
    assert.equal(moves.length, 1);
    assert.deepEqual([moves[0].reference, moves[0].digest, moves[0].detail], ['v1', v1b, { from: v1 }]);

    const pulls = events.filter((e) => e.action === 'pull');
    assert.deepEqual(
      pulls.map((e) => [e.actor.kind, e.actor.name, e.actor.credentialId, e.reference, e.status]),
      [
        ['user', 'dave', null, 'v1', 404],
        ['entitlement', `token:${t.tokenId}`, t.tokenId, 'v1', 200],
        ['api_key', 'carol', t.carolKeyId, v1b, 200],
        ['user', 'carol', null, 'v1', 200],
      ],
      'newest first; HEAD, blob GETs and the anonymous 401 are not pulls',
    );
    const ok = pulls.filter((e) => e.status === 200);
    for (const e of ok) {
      assert.equal(e.digest, v1b);
      assert.equal(e.repository, 'acme/prod');
      assert.equal(e.clientIp, '127.0.0.1');
      assert.ok(e.bytes > 100, 'bytes served = the manifest size');
      assert.match(e.time, /^\d{4}-\d\d-\d\dT/);
    }
    assert.equal(ok[0].userAgent, 'customer-agent/1.0');
  });

  it('records deletes of a tag, a manifest and a blob', async () => {
    const img = await pushImage(b.app, 'acme/prod/tmp', 'gone');
    const layerDigest = (JSON.parse(img.bytes.toString()) as { layers: { digest: string }[] }).layers[0]!.digest;
    assert.equal((await b.app.inject({ method: 'DELETE', url: '/v2/acme/prod/tmp/manifests/gone', headers: { authorization: ADMIN } })).statusCode, 202);
    assert.equal((await b.app.inject({ method: 'DELETE', url: `/v2/acme/prod/tmp/manifests/${img.digest}`, headers: { authorization: ADMIN } })).statusCode, 202);
    assert.equal((await b.app.inject({ method: 'DELETE', url: `/v2/acme/prod/tmp/blobs/${layerDigest}`, headers: { authorization: ADMIN } })).statusCode, 202);
    await b.flush();
    const deletes = (await allEvents(b.app, 'action=delete')).filter((e) => e.image === 'acme/prod/tmp');
    assert.deepEqual(
      deletes.map((e) => [e.detail.target, e.reference, e.digest, e.status]),
      [
        ['blob', null, layerDigest, 202],
        ['manifest', img.digest, img.digest, 202],
        ['tag', 'gone', null, 202],
      ],
    );
  });

  it('records logins and token use: successes once a minute per actor and address, every failure', async () => {
    const events = await allEvents(b.app, 'action=login,token_use');
    const find = (action: string, name: string, failed = false) =>
      events.filter((e) => e.action === action && e.actor.name === name && Boolean(e.detail?.failed) === failed);
    assert.equal(find('login', 'carol').length, 1, 'carol used Basic twice (a pull, a HEAD) within a minute: one login');
    assert.equal(find('token_use', 'carol')[0].actor.credentialId, t.carolKeyId);
    assert.equal(find('token_use', `token:${t.tokenId}`)[0].actor.kind, 'entitlement');

    // the token endpoint: each token issued is a login
    for (let i = 0; i < 2; i++) {
      const r = await b.app.inject({ url: '/v2/token?service=berth&scope=repository:acme/prod/app:pull', headers: { authorization: t.carol } });
      assert.equal(r.statusCode, 200);
    }
    assert.equal((await b.app.inject({ url: '/v2/token?service=berth', headers: { authorization: basic('carol', 'wrong-password') } })).statusCode, 401);
    assert.equal((await b.app.inject({ url: '/v2/token?service=berth', headers: { authorization: basic('token', 'berth_t_nope') } })).statusCode, 401);
    await b.flush();
    const after = await allEvents(b.app, 'action=login,token_use&since=1m');
    const viaToken = after.filter((e) => e.action === 'login' && e.actor.name === 'carol' && e.detail.via === 'token_endpoint' && !e.detail.failed);
    assert.equal(viaToken.length, 2);
    assert.equal(viaToken[0].status, 200);
    const failed = after.filter((e) => e.detail.failed);
    assert.deepEqual(
      failed.map((e) => [e.action, e.actor.kind, e.actor.name, e.status]).sort(),
      [
        ['login', 'anonymous', 'carol', 401],
        ['token_use', 'anonymous', 'token', 401],
      ],
    );
  });

  it('records management API changes as admin events, with the repository they concern', async () => {
    const admin = await allEvents(b.app, 'action=admin');
    const member = admin.find((e) => e.detail.route === '/api/v1/repos/:owner/:repo/members/:username' && e.detail.params.username === 'bob');
    assert.ok(member, 'setting a member is recorded');
    assert.deepEqual([member.repository, member.actor.name, member.status, member.detail.method], ['acme/prod', 'admin', 200, 'PUT']);
    const org = admin.find((e) => e.detail.route === '/api/v1/orgs');
    assert.deepEqual([org.repository, org.status], [null, 201]);
    // refused changes are recorded too
    assert.equal((await api(b.app, 'PATCH', '/api/v1/repos/acme/prod', t.carol, { description: 'x' })).status, 403);
    await b.flush();
    const refused = (await allEvents(b.app, 'action=admin&actor=carol'))[0];
    assert.deepEqual([refused.status, refused.repository, refused.detail.method], [403, 'acme/prod', 'PATCH']);
    // reads are not changes
    assert.equal((await allEvents(b.app, 'action=admin')).filter((e) => e.detail.method === 'GET').length, 0);
  });

  it('filters by repository, actor, action and time range', async () => {
    const all = await allEvents(b.app, '');
    assert.ok(all.length > 20);
    const dev = await allEvents(b.app, 'repository=acme/dev');
    assert.ok(dev.length > 0 && dev.every((e) => e.repository === 'acme/dev'));
    const carol = await allEvents(b.app, 'actor=carol');
    assert.ok(carol.length > 0 && carol.every((e) => e.actor.name === 'carol'));
    const pullsAndPushes = await allEvents(b.app, 'action=pull,push');
    assert.deepEqual([...new Set(pullsAndPushes.map((e) => e.action))].sort(), ['pull', 'push']);
    const combined = await allEvents(b.app, 'repository=acme/prod&action=pull&actor=carol');
    assert.equal(combined.length, 2);

    const times = all.map((e) => Date.parse(e.time));
    const mid = times[Math.floor(times.length / 2)]!;
    const newer = await allEvents(b.app, `since=${new Date(mid).toISOString()}`);
    const older = await allEvents(b.app, `until=${mid}`);
    assert.equal(newer.length + older.length, all.length, 'since is inclusive, until exclusive');
    assert.ok(newer.every((e) => Date.parse(e.time) >= mid) && older.every((e) => Date.parse(e.time) < mid));
    assert.equal((await allEvents(b.app, 'since=1h')).length, all.length, 'a duration back from now');
    assert.equal((await allEvents(b.app, 'until=2000-01-01')).length, 0);

    for (const bad of ['action=fly', 'since=yesterday', 'until=12x', 'cursor=not-a-cursor', 'limit=0', 'limit=x', 'repository=acme', 'format=xml']) {
      const r = await api(b.app, 'GET', `/api/v1/events?${bad}`, ADMIN);
      assert.equal(r.status, 400, `${bad}: ${r.res.body}`);
      assert.equal(r.json.errors[0].code, 'INVALID');
    }
  });

  it('paginates with an opaque cursor: every event once, newest first', async () => {
    const all = (await apiOk(b.app, 'GET', '/api/v1/events?limit=1000', ADMIN, undefined, 200)).events;
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: any = await apiOk(b.app, 'GET', `/api/v1/events?limit=3${cursor ? `&cursor=${cursor}` : ''}`, ADMIN, undefined, 200);
      assert.ok(page.events.length <= 3);
      seen.push(...page.events.map((e: any) => e.id));
      cursor = page.nextCursor;
      if (cursor) assert.match(cursor, /^[A-Za-z0-9_-]+$/, 'URL-safe');
      pages++;
    } while (cursor);
    assert.deepEqual(seen, all.map((e: any) => e.id));
    assert.equal(pages, Math.ceil(all.length / 3), 'the last page says so (no empty page after it)');
    const def = await apiOk(b.app, 'GET', '/api/v1/events', ADMIN, undefined, 200);
    assert.equal(def.events.length, Math.min(100, all.length), 'default page: 100');
  });

  it('exports CSV and NDJSON (streamed), with the same events as the JSON pages', async () => {
    const all = await allEvents(b.app, 'repository=acme/prod');
    const csv = await b.app.inject({ url: '/api/v1/events?repository=acme/prod&format=csv', headers: { authorization: ADMIN } });
    assert.equal(csv.statusCode, 200);
    assert.match(String(csv.headers['content-type']), /^text\/csv/);
    assert.match(String(csv.headers['content-disposition']), /^attachment; filename="berth-events-.*\.csv"$/);
    const lines = csv.body.split('\r\n').filter(Boolean);
    assert.equal(lines[0], 'id,time,action,actorKind,actor,credentialId,repository,image,reference,digest,clientIp,userAgent,bytes,status,detail');
    assert.equal(lines.length, all.length + 1);
    assert.deepEqual(lines.slice(1).map((l) => Number(l.split(',')[0])), all.map((e) => e.id));

    const nd = await b.app.inject({ url: '/api/v1/events?repository=acme/prod&format=ndjson', headers: { authorization: ADMIN } });
    assert.equal(nd.statusCode, 200);
    assert.match(String(nd.headers['content-type']), /^application\/x-ndjson/);
    const docs = nd.body.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.deepEqual(docs, all, 'the same objects as the JSON API');

    const capped = await b.app.inject({ url: '/api/v1/events?format=ndjson&limit=2', headers: { authorization: ADMIN } });
    assert.equal(capped.body.split('\n').filter(Boolean).length, 2, 'limit caps an export');
  });

  it('CSV quotes what needs quoting and defuses spreadsheet formulas in client-chosen text', async () => {
    await pull(b.app, 'acme/prod/app', 'v1', t.carol, { 'user-agent': '=HYPERLINK("http://evil"),x' });
    await b.flush();
    const csv = await b.app.inject({ url: '/api/v1/events?repository=acme/prod&action=pull&limit=1&format=csv', headers: { authorization: ADMIN } });
    const row = csv.body.split('\r\n')[1]!;
    assert.ok(row.includes(`"'=HYPERLINK(""http://evil""),x"`), row);
  });

  it('exports many events a page at a time', async () => {
    const store = b.berth.registry.events;
    const base = Date.now() - 3_600_000;
    for (let i = 0; i < 2500; i++) {
      store.emit({
        time: base + i,
        action: 'pull',
        actorKind: 'anonymous',
        actor: 'anonymous',
        credentialId: null,
        repository: 'acme/bulk',
        image: 'acme/bulk/app',
        reference: `t${i}`,
        digest: null,
        clientIp: '192.0.2.1',
        userAgent: null,
        bytes: 1,
        status: 200,
        detail: null,
      });
    }
    await b.flush();
    const nd = await b.app.inject({ url: '/api/v1/events?repository=acme/bulk&format=ndjson', headers: { authorization: ADMIN } });
    const refs = nd.body.split('\n').filter(Boolean).map((l) => JSON.parse(l).reference as string);
    assert.equal(refs.length, 2500);
    assert.equal(new Set(refs).size, 2500, 'no duplicates across the internal pages');
    assert.equal(refs[0], 't2499');
    assert.equal(refs[2499], 't0');
  });

  it('caps names taken from the URL of refused requests', async () => {
    const r = await pull(b.app, `acme/prod/${'a'.repeat(5000)}`, 'v1', t.carol);
    assert.equal(r.statusCode, 400, 'NAME_INVALID: too long');
    await b.flush();
    const e = (await allEvents(b.app, 'action=pull&repository=acme/prod'))[0];
    // the name is checked before the credentials: the refusal has no authenticated actor
    assert.deepEqual([e.status, e.image.length, e.actor.name], [400, 300, 'anonymous']);
  });

  describe('who sees what', () => {
    it('site admins see everything, including events of no repository', async () => {
      const all = await allEvents(b.app, '');
      assert.ok(all.some((e) => e.repository === null));
      assert.ok(all.some((e) => e.repository === 'acme/dev'));
    });

    it('a repository admin sees the events of their repositories only', async () => {
      const mine = await allEvents(b.app, '', t.bob);
      assert.ok(mine.length > 0);
      assert.deepEqual([...new Set(mine.map((e) => e.repository))], ['acme/prod']);
      assert.equal((await allEvents(b.app, 'repository=acme/prod', t.bob)).length, mine.length);
      const csv = await b.app.inject({ url: '/api/v1/events?format=csv', headers: { authorization: t.bob } });
      assert.ok(csv.body.split('\r\n').slice(1).filter(Boolean).every((l) => l.split(',')[6] === 'acme/prod'));
    });

    it('a repository one may not read is not found; one only read is forbidden; no repository managed is forbidden', async () => {
      const cases: [string, string | undefined, number][] = [
        ['/api/v1/events?repository=acme/dev', t.bob, 404],
        ['/api/v1/events?repository=acme/prod', t.dave, 404],
        ['/api/v1/events?repository=acme/nope', t.bob, 404],
        ['/api/v1/events?repository=acme/prod', t.carol, 403],
        ['/api/v1/events', t.carol, 403],
        ['/api/v1/events', t.dave, 403],
        ['/api/v1/events', t.token, 403],
        ['/api/v1/events?repository=acme/prod', t.token, 403],
        ['/api/v1/events', undefined, 401],
        ['/api/v1/events?format=csv&repository=acme/dev', t.bob, 404],
        ['/api/v1/events?format=ndjson', t.carol, 403],
      ];
      for (const [url, auth, status] of cases) {
        const r = await api(b.app, 'GET', url, auth);
        assert.equal(r.status, status, `${url} as ${auth ?? 'anonymous'}: ${r.res.body}`);
        assert.ok(r.json?.errors?.[0]?.code, 'an error body');
      }
    });

    it('a new repository admin sees that repository once granted', async () => {
      assert.equal((await api(b.app, 'GET', '/api/v1/events?repository=acme/dev', t.dave)).status, 404);
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/dev/members/dave', ADMIN, { role: 'admin' }, 200);
      const dev = await allEvents(b.app, '', t.dave);
      assert.ok(dev.length > 0 && dev.every((e) => e.repository === 'acme/dev'));
      await apiOk(b.app, 'DELETE', '/api/v1/repos/acme/dev/members/dave', ADMIN, undefined, 204);
    });
  });
});

describe('client IP behind proxies', () => {
  it('believes X-Forwarded-For only from trusted proxies', async () => {
    const trusting = await openBerth({ events: { trustedProxies: ['127.0.0.1', '10.0.0.0/8'] } });
    const plain = await openBerth();
    try {
      for (const x of [trusting, plain]) {
        await apiOk(x.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
        await pushImage(x.app, 'acme/prod/app', 'v1');
        // client 203.0.113.7 → proxy 10.1.2.3 → proxy 127.0.0.1 (the socket)
        await pull(x.app, 'acme/prod/app', 'v1', ADMIN, { 'x-forwarded-for': '198.51.100.1, 203.0.113.7, 10.1.2.3' });
        // a client claiming an address through a proxy that is not trusted
        await pull(x.app, 'acme/prod/app', 'v1', ADMIN, { 'x-forwarded-for': '198.51.100.1, 192.0.2.50' });
        await x.flush();
      }
      const ips = async (x: EventsBerth) => (await allEvents(x.app, 'action=pull')).map((e) => e.clientIp).reverse();
      assert.deepEqual(await ips(trusting), ['203.0.113.7', '192.0.2.50'], 'the first address not in the trusted list, from the right');
      assert.deepEqual(await ips(plain), ['127.0.0.1', '127.0.0.1'], 'no trusted proxies: the peer address');
    } finally {
      await trusting.close();
      await plain.close();
    }
  });

  it('rejects proxy entries that are not IPs, CIDRs or range names', async () => {
    await assert.rejects(openBerth({ events: { trustedProxies: ['not-an-ip'] } }), /trustedProxies/);
    await assert.rejects(openBerth({ events: { trustedProxies: ['10.0.0.0/33'] } }), /trustedProxies/);
    const ok = await openBerth({ events: { trustedProxies: ['loopback', '::1', 'fd00::/8'] } });
    await ok.close();
  });
});

describe('retention', () => {
  it('the sweep deletes events older than events.retentionDays, and only those', async () => {
    const b = await openBerth({ events: { retentionDays: 7 } });
    try {
      const day = 86_400_000;
      const now = Date.now();
      for (const age of [30, 8, 6, 0]) {
        b.berth.registry.events.emit({
          time: now - age * day,
          action: 'login',
          actorKind: 'user',
          actor: `aged-${age}`,
          credentialId: null,
          repository: null,
          image: null,
          reference: null,
          digest: null,
          clientIp: null,
          userAgent: null,
          bytes: null,
          status: 200,
          detail: null,
        });
      }
      await b.flush();
      assert.equal(await b.berth.pruneEvents(), 2);
      const left = (await allEvents(b.app, 'action=login')).map((e) => e.actor.name).filter((n: string) => n.startsWith('aged-'));
      assert.deepEqual(left, ['aged-0', 'aged-6']);
      assert.equal(await b.berth.pruneEvents(), 0);
    } finally {
      await b.close();
    }
  });
});
