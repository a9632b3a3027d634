/** The events, webhooks and metrics keys of the configuration: defaults, environment, validation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/schema.ts';

describe('events, webhooks and metrics configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ env: {} });
    assert.deepEqual(c.events, { enabled: true, retentionDays: 90, queueSize: 20_000, batchSize: 500, flushIntervalMs: 200, trustedProxies: [] });
    assert.deepEqual(c.webhooks, { maxAttempts: 5, backoffBaseMs: 1000, timeoutMs: 10_000, pollIntervalMs: 1000, concurrency: 4 });
    assert.deepEqual(c.metrics, { enabled: true });
  });

  it('reads BERTH_* variables', () => {
    const c = loadConfig({
      env: {
        BERTH_EVENTS_ENABLED: 'false',
        BERTH_EVENTS_RETENTION_DAYS: '30',
        BERTH_EVENTS_QUEUE_SIZE: '500',
        BERTH_TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1,,loopback',
        BERTH_WEBHOOK_MAX_ATTEMPTS: '3',
        BERTH_WEBHOOK_BACKOFF_MS: '250',
        BERTH_METRICS_ENABLED: '0',
      },
    });
    assert.deepEqual(
      [c.events.enabled, c.events.retentionDays, c.events.queueSize, c.events.trustedProxies, c.webhooks.maxAttempts, c.webhooks.backoffBaseMs, c.metrics.enabled],
      [false, 30, 500, ['10.0.0.0/8', '127.0.0.1', 'loopback'], 3, 250, false],
    );
    assert.equal(c.events.batchSize, 500, 'the other keys keep their defaults');
  });

  it('refuses bad values, naming the key', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ BERTH_EVENTS_RETENTION_DAYS: '0' }, /events\.retentionDays/],
      [{ BERTH_EVENTS_QUEUE_SIZE: 'lots' }, /events\.queueSize/],
      [{ BERTH_TRUSTED_PROXIES: '10.0.0.0/8,proxy.example.com' }, /events\.trustedProxies\.1/],
      [{ BERTH_TRUSTED_PROXIES: '::1/129' }, /events\.trustedProxies/],
      [{ BERTH_WEBHOOK_MAX_ATTEMPTS: '0' }, /webhooks\.maxAttempts/],
    ];
    for (const [env, pattern] of bad) {
      assert.throws(() => loadConfig({ env }), (e: unknown) => e instanceof ConfigError && pattern.test(e.message), JSON.stringify(env));
    }
  });
});
