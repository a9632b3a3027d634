/**
 * The event writer never loses a batch for one bad row (docs/events.md), on SQLite and
 * PostgreSQL: rows the store refuses are isolated by bisection and recorded sanitised; every
 * other event of the batch is written with its webhook deliveries; the counters show it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NewEvent } from '../../src/core/types.ts';
import { ADMIN, type EventsBerth, allEvents, api, apiOk, metricValue, openBerth, setupTenancy } from '../events/helpers.ts';

function push(i: number, extra: Partial<NewEvent> = {}): NewEvent {
  return {
    time: Date.now(),
    action: 'push',
    actorKind: 'user',
    actor: 'admin',
    credentialId: null,
    repository: 'acme/prod',
    image: 'acme/prod/app',
    reference: `t${i}`,
    digest: `sha256:${String(i).padStart(64, '0')}`,
    clientIp: '127.0.0.1',
    userAgent: 'test',
    bytes: 10,
    status: 201,
    detail: null,
    ...extra,
  };
}

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`event writer with a poisoned row (${driver})`, () => {
    let b: EventsBerth;
    let hookId: number;
    before(async () => {
      b = await openBerth({ postgres: driver === 'postgres', webhooks: { pollIntervalMs: 60_000 }, egress: { allow: ['127.0.0.1:9'] } });
      await setupTenancy(b.app);
      // A receiver that is never reached matters not: deliveries are rows first.
      hookId = (await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/webhooks', ADMIN, { url: 'http://127.0.0.1:9/hook', events: ['push'] }, 201)).id;
      await b.flush();
    });
    after(async () => {
      // Pending deliveries (to a closed port) would keep the worker busy on close.
      if (hookId) await api(b.app, 'DELETE', `/api/v1/repos/acme/prod/webhooks/${hookId}`, ADMIN);
      await b?.close();
    });

    it('rows the store refuses are recorded sanitised; the rest of the batch and its deliveries are kept', async () => {
      const bus = b.berth.registry.events;
      const before = { ...bus.stats };
      // One batch: good events around rows that no store takes as they are.
      bus.emit(push(1));
      bus.emit(push(2, { detail: { n: 10n as unknown as number } })); // cannot be serialised
      bus.emit(push(3));
      bus.emit(push(4, { status: Number.NaN })); // NOT NULL integer column
      bus.emit(push(5, { actor: 'ad\u0000min', reference: 't5\u0085' })); // NUL: PostgreSQL refuses text with it
      bus.emit(push(6));
      await b.flush();
      assert.equal(bus.stats.batches - before.batches, 1, 'one batch');
      assert.equal(bus.stats.recorded - before.recorded, 6, 'all six recorded');
      assert.equal(bus.stats.droppedWriteFailed, before.droppedWriteFailed);
      assert.equal(bus.stats.droppedRejected, before.droppedRejected);
      assert.equal(bus.stats.sanitised - before.sanitised, 3, 'three sanitised');

      const events = (await allEvents(b.app, 'repository=acme/prod&action=push')).filter((e) => /^t\d/.test(e.reference));
      assert.deepEqual(events.map((e) => e.reference.slice(0, 2)).sort(), ['t1', 't2', 't3', 't4', 't5', 't6']);
      const byRef = new Map(events.map((e) => [e.reference.slice(0, 2), e]));
      assert.deepEqual(byRef.get('t2').detail, { unserialisable: true, sanitised: true });
      assert.equal(byRef.get('t4').status, 0);
      assert.equal(byRef.get('t5').actor.name, 'ad\ufffdmin');
      assert.equal(byRef.get('t5').reference, 't5\ufffd');

      // Every successful push got its webhook delivery, the isolated ones included (t4's status
      // was unusable: recorded as 0, not a success, so no delivery).
      const deliveries = (await api(b.app, 'GET', `/api/v1/repos/acme/prod/webhooks/${hookId}/deliveries`, ADMIN)).json as { eventId: number }[];
      const ids = new Set(deliveries.map((d) => d.eventId));
      for (const e of events) assert.equal(ids.has(e.id), e.reference !== 't4', `delivery for ${e.reference}`);

      const metrics = (await b.app.inject({ url: '/metrics' })).body;
      assert.ok((metricValue(metrics, 'berth_events_sanitised_total') ?? 0) >= 3);
      assert.equal(metricValue(metrics, 'berth_events_dropped_total{reason="rejected"}'), 0);
    });

    it('a batch of a thousand with poisoned rows scattered costs a bounded number of writes and loses nothing', async () => {
      const bus = b.berth.registry.events;
      const before = { ...bus.stats };
      for (let i = 0; i < 1000; i++) bus.emit(push(1000 + i, i % 250 === 7 ? { status: Number.NaN } : {}));
      await b.flush();
      assert.equal(bus.stats.recorded - before.recorded, 1000);
      assert.equal(bus.stats.sanitised - before.sanitised, 4);
      assert.equal(bus.stats.droppedWriteFailed + bus.stats.droppedRejected, before.droppedWriteFailed + before.droppedRejected);
    });
  });
}
