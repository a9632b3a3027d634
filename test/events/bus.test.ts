/**
 * The EventBus on its own (a fake store): emit never waits, batches are bounded and written
 * one transaction each, a partial batch goes out after the interval, a full queue drops and
 * counts, a failing store is retried then counted; and overflow in a real Berth (tiny queue):
 * requests still succeed, the drop counter shows in /metrics.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventBus, actorOf, repositoryOf } from '../../src/core/events/bus.ts';
import type { EventBatchItem, EventStore, NewEvent } from '../../src/metadata/event-store.ts';
import { ADMIN, allEvents, apiOk, metricValue, openBerth, pull, pushImage } from './helpers.ts';

function event(i: number): NewEvent {
  return {
    time: i,
    action: 'pull',
    actorKind: 'anonymous',
    actor: 'anonymous',
    credentialId: null,
    repository: 'o/r',
    image: 'o/r/i',
    reference: `t${i}`,
    digest: null,
    clientIp: null,
    userAgent: null,
    bytes: 1,
    status: 200,
    detail: null,
  };
}

/** A store that records batches; `gate` holds writes until opened; `fail` makes them throw. */
function fakeStore() {
  const batches: EventBatchItem[][] = [];
  let release: (() => void) | undefined;
  let gate: Promise<void> | undefined;
  const s = {
    batches,
    fail: 0,
    hold() {
      gate = new Promise((r) => (release = r));
    },
    open() {
      release?.();
      gate = undefined;
    },
    store: {
      async recordEvents(batch: EventBatchItem[]) {
        if (gate) await gate;
        if (s.fail > 0) {
          s.fail--;
          throw new Error('database is down');
        }
        batches.push(batch);
      },
    } as unknown as EventStore,
  };
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('EventBus', () => {
  it('emit returns at once, even while the store is stuck; full batches are written at once', async () => {
    const f = fakeStore();
    const bus = new EventBus(f.store, { enabled: true, queueSize: 1000, batchSize: 100, flushIntervalMs: 60_000 });
    f.hold();
    const t0 = performance.now();
    for (let i = 0; i < 250; i++) assert.equal(bus.emit(event(i)), true);
    assert.ok(performance.now() - t0 < 50, 'emit does not wait for the store');
    await sleep(20);
    assert.equal(f.batches.length, 0, 'the writer is stuck in the first batch');
    f.open();
    await sleep(20);
    assert.deepEqual(f.batches.map((b) => b.length), [100, 100], 'full batches go out without waiting for the interval');
    assert.equal(bus.queueLength, 50);
    await bus.flush();
    assert.deepEqual(f.batches.map((b) => b.length), [100, 100, 50]);
    assert.deepEqual(f.batches.flat().map((x) => x.event.time), Array.from({ length: 250 }, (_, i) => i), 'in order');
    assert.equal(bus.stats.recorded, 250);
    assert.equal(bus.stats.batches, 3);
    await bus.close();
  });

  it('a partial batch is written after flushIntervalMs', async () => {
    const f = fakeStore();
    const bus = new EventBus(f.store, { enabled: true, queueSize: 1000, batchSize: 500, flushIntervalMs: 50 });
    bus.emit(event(1));
    bus.emit(event(2));
    await sleep(10);
    assert.equal(f.batches.length, 0);
    await sleep(120);
    assert.deepEqual(f.batches.map((b) => b.length), [2]);
    await bus.close();
  });

  it('a full queue drops new events and counts them; memory stays bounded', async () => {
    const f = fakeStore();
    const bus = new EventBus(f.store, { enabled: true, queueSize: 10, batchSize: 5, flushIntervalMs: 60_000 });
    f.hold();
    let accepted = 0;
    for (let i = 0; i < 100; i++) if (bus.emit(event(i))) accepted++;
    assert.equal(accepted, 10, 'emit is synchronous: the writer has not run yet');
    assert.equal(bus.stats.droppedQueueFull, 90);
    assert.equal(bus.queueLength, 10);
    await sleep(10); // the writer takes a batch of 5 and is stuck in it
    assert.equal(bus.queueLength, 5);
    for (let i = 0; i < 100; i++) if (bus.emit(event(i))) accepted++;
    assert.equal(accepted, 15);
    assert.equal(bus.stats.droppedQueueFull, 185);
    f.open();
    await bus.flush();
    assert.equal(bus.stats.recorded, 15);
    await bus.close();
  });

  it('a failing store is retried; after three failures the batch is dropped and counted', async () => {
    const errors: number[] = [];
    const f = fakeStore();
    const bus = new EventBus(f.store, { enabled: true, queueSize: 100, batchSize: 10, flushIntervalMs: 10, onError: (_e, lost) => errors.push(lost) });
    f.fail = 1;
    for (let i = 0; i < 3; i++) bus.emit(event(i));
    await bus.flush();
    assert.equal(bus.stats.recorded, 3, 'one failure, then written');
    assert.deepEqual(errors, [0]);
    f.fail = 3;
    for (let i = 0; i < 4; i++) bus.emit(event(i));
    await bus.flush();
    assert.equal(bus.stats.droppedWriteFailed, 4);
    assert.deepEqual(errors, [0, 0, 0, 4]);
    await bus.close();
  });

  it('disabled or closed: nothing is queued', async () => {
    const f = fakeStore();
    const off = new EventBus(f.store, { enabled: false, queueSize: 10, batchSize: 5, flushIntervalMs: 10 });
    assert.equal(off.emit(event(1)), false);
    assert.equal(new EventBus(undefined, { enabled: true, queueSize: 10, batchSize: 5, flushIntervalMs: 10 }).emit(event(1)), false);
    const on = new EventBus(f.store, { enabled: true, queueSize: 10, batchSize: 5, flushIntervalMs: 10 });
    on.emit(event(1));
    await on.close();
    assert.equal(on.emit(event(2)), false);
    assert.equal(f.batches.flat().length, 1, 'close writes what was queued');
  });

  it('actors and repositories', () => {
    assert.deepEqual(actorOf(undefined), { kind: 'anonymous', name: 'anonymous', credentialId: null });
    assert.deepEqual(actorOf({ kind: 'user', userId: 1, username: 'al', siteAdmin: false }), { kind: 'user', name: 'al', credentialId: null });
    assert.deepEqual(actorOf({ kind: 'user', userId: 1, username: 'al', siteAdmin: false, apiKeyId: 4 }), { kind: 'api_key', name: 'al', credentialId: 4 });
    assert.deepEqual(actorOf({ kind: 'entitlement', credentialId: 9, repositoryId: 2 }), { kind: 'entitlement', name: 'token:9', credentialId: 9 });
    assert.equal(repositoryOf('acme/prod/web/api'), 'acme/prod');
    assert.equal(repositoryOf('acme/prod'), null);
    assert.equal(repositoryOf('acme'), null);
    assert.equal(repositoryOf(null), null);
  });
});

describe('queue overflow in a running Berth', () => {
  it('drops beyond events.queueSize and counts it; every request still succeeds', async () => {
    const b = await openBerth({ events: { queueSize: 10, flushIntervalMs: 60_000 } });
    try {
      await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
      await pushImage(b.app, 'acme/prod/app', 'v1');
      await b.flush();
      const before = b.berth.registry.events.stats.droppedQueueFull;
      for (let i = 0; i < 30; i++) assert.equal((await pull(b.app, 'acme/prod/app', 'v1', ADMIN)).statusCode, 200);
      const stats = b.berth.registry.events.stats;
      assert.equal(b.berth.registry.events.queueLength, 10);
      assert.equal(stats.droppedQueueFull - before, 20);
      const metrics = (await b.app.inject({ url: '/metrics' })).body;
      assert.equal(metricValue(metrics, 'berth_events_dropped_total{reason="queue_full"}'), stats.droppedQueueFull);
      assert.equal(metricValue(metrics, 'berth_events_queue_length'), 10);
      await b.flush();
      assert.equal((await allEvents(b.app, 'action=pull')).length, 10, 'the queued ones are written');
    } finally {
      await b.close();
    }
  });
});
