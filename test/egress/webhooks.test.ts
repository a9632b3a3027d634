/**
 * Webhooks under the egress policy, at the HTTP boundary: every disguise of a non-public
 * destination is refused when the webhook is saved (create and update: 400) and when a delivery
 * connects (a URL saved under a wider policy, or a name that now resolves elsewhere); the test
 * endpoint and the delivery log read the same for a refused address, a closed port and a
 * receiver that never answers.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { CONNECT_FAILED, type Resolve } from '../../src/core/egress/egress.ts';
import { ADMIN, api, apiOk, type EventsBerth, openBerth } from '../events/helpers.ts';
import { closedPort, type CountingServer, countingServer, REFUSED_HOSTS, tableResolver } from './helpers.ts';

const hooks = '/api/v1/repos/acme/prod/webhooks';

async function setup(b: EventsBerth): Promise<void> {
  await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
  await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'prod' }, 201);
}

describe('webhooks and the egress policy', () => {
  let rx: CountingServer;
  before(async () => {
    rx = await countingServer();
  });
  after(() => rx.close());

  it('refuses every non-public destination when a webhook is created or updated (400, with the reason)', async () => {
    const b = await openBerth({ resolve: tableResolver() });
    try {
      await setup(b);
      for (const host of REFUSED_HOSTS) {
        const r = await api(b.app, 'POST', hooks, ADMIN, { url: `http://${host}:${rx.port}/hook`, events: ['push'] });
        assert.equal(r.status, 400, `${host}: ${r.res.body}`);
        assert.match(r.json.errors[0].message, /refused by the egress policy: .+ address/, host);
      }
      // a public destination is saved; changing it to a refused one is refused too
      const ok = await apiOk(b.app, 'POST', hooks, ADMIN, { url: 'http://public.test/hook', events: ['push'] }, 201);
      for (const host of ['169.254.169.254', 'metadata.test', '[::ffff:127.0.0.1]']) {
        const r = await api(b.app, 'PATCH', `${hooks}/${ok.id}`, ADMIN, { url: `http://${host}/x` });
        assert.equal(r.status, 400, host);
      }
      assert.equal(rx.connections(), 0);
    } finally {
      await b.close();
    }
  });

  it('refuses them again when delivering: URLs saved under a wider policy, names that now resolve to loopback', async () => {
    const answers: Record<string, string> = { 'rebind.test': '93.184.216.34' };
    const table = tableResolver();
    const resolve: Resolve = async (h) => (answers[h] ? [{ address: answers[h]!, family: 4 }] : table(h));
    // saved while the operator allowed everything…
    const wide = await openBerth({ egress: { allow: ['0.0.0.0/0', '::/0'] }, resolve });
    const dir = wide.dir;
    const ids: [string, number][] = [];
    try {
      await setup(wide);
      for (const host of [...REFUSED_HOSTS, 'rebind.test']) {
        const h = await apiOk(wide.app, 'POST', hooks, ADMIN, { url: `http://${host}:${rx.port}/hook`, events: ['push'] }, 201);
        ids.push([host, h.id]);
      }
      await wide.berth.close();
    } catch (e) {
      await wide.close();
      throw e;
    }
    // …then delivered under the default (closed) one, while rebind.test now resolves to loopback
    answers['rebind.test'] = '127.0.0.1';
    const closed = await openBerth({ dir, resolve, webhooks: { maxAttempts: 1 } });
    try {
      for (const [host, id] of ids) {
        const d = await apiOk(closed.app, 'POST', `${hooks}/${id}/test`, ADMIN, undefined, 200);
        assert.deepEqual([d.status, d.responseStatus, d.error], ['failed', null, CONNECT_FAILED], host);
      }
      assert.equal(rx.connections(), 0, 'nothing was sent');
    } finally {
      await closed.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the test endpoint and the delivery log read the same for a refused address, a closed port and a silent receiver', async () => {
    const closedP = await closedPort();
    const silent = await countingServer(() => undefined);
    const answers: Record<string, string> = { 'refused.test': '93.184.216.34' };
    const resolve: Resolve = async (h) => [{ address: answers[h] ?? '127.0.0.1', family: 4 }];
    const b = await openBerth({
      resolve,
      egress: { allow: [`127.0.0.1:${closedP}`, `127.0.0.1:${silent.port}`] },
      webhooks: { timeoutMs: 500, maxAttempts: 1 },
    });
    try {
      await setup(b);
      const mk = async (url: string) => (await apiOk(b.app, 'POST', hooks, ADMIN, { url, events: ['push'] }, 201)).id as number;
      const refusedId = await mk(`http://refused.test:${rx.port}/hook`);
      answers['refused.test'] = '127.0.0.1'; // resolves to loopback by the time it is used
      const closedId = await mk(`http://127.0.0.1:${closedP}/hook`);
      const silentId = await mk(`${silent.url}/hook`);
      const outcomes = [];
      for (const id of [refusedId, closedId, silentId]) {
        const d = await apiOk(b.app, 'POST', `${hooks}/${id}/test`, ADMIN, undefined, 200);
        const log = await apiOk(b.app, 'GET', `${hooks}/${id}/deliveries`, ADMIN, undefined, 200);
        outcomes.push([d.status, d.responseStatus, d.error, log[0].error]);
      }
      const same = ['failed', null, CONNECT_FAILED, CONNECT_FAILED];
      assert.deepEqual(outcomes, [same, same, same]);
      assert.equal(silent.requests.length, 1, 'the silent receiver got the request and timed out');
      assert.equal(rx.connections(), 0);
    } finally {
      await b.close();
      await silent.close();
    }
  });
});
