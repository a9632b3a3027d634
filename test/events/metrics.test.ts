/**
 * GET /metrics: Prometheus text with request counts and latency histograms labelled by route
 * pattern (never raw names), bytes in and out, upload sessions, storage used, events recorded
 * and dropped, webhook deliveries, proxy cache counters; off with metrics.enabled=false.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, apiOk, type EventsBerth, metricValue, openBerth, pull, pushImage, sha256, startReceiver } from './helpers.ts';

describe('/metrics', () => {
  let b: EventsBerth;
  let text: string;
  let pushedBytes = 0;

  before(async () => {
    // the receiver listens on loopback: opened explicitly, as the egress policy is closed by default
    b = await openBerth({ webhooks: { backoffBaseMs: 10, maxAttempts: 2, pollIntervalMs: 20 }, egress: { allow: ['127.0.0.1'] } });
    await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'prod' }, 201);
    const rx = await startReceiver((i) => (i === 0 ? 200 : 500));
    await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/webhooks', ADMIN, { url: rx.url, events: ['push'] }, 201);
    // two monolithic uploads and a manifest
    const img = await pushImage(b.app, 'acme/prod/app', 'v1');
    pushedBytes = 64; // the layer
    const manifest = JSON.parse(img.bytes.toString()) as { config: { size: number } };
    pushedBytes += manifest.config.size;
    // a chunked upload: POST (session), PATCH, PUT
    const data = Buffer.alloc(1000, 7);
    const start = await b.app.inject({ method: 'POST', url: '/v2/acme/prod/app/blobs/uploads/', headers: { authorization: ADMIN } });
    assert.equal(start.statusCode, 202);
    const loc = String(start.headers.location);
    const patch = await b.app.inject({ method: 'PATCH', url: loc, headers: { authorization: ADMIN, 'content-type': 'application/octet-stream' }, payload: data });
    assert.equal(patch.statusCode, 202);
    const put = await b.app.inject({ method: 'PUT', url: `${loc}?digest=${sha256(data)}`, headers: { authorization: ADMIN } });
    assert.equal(put.statusCode, 201);
    pushedBytes += data.length;
    for (let i = 0; i < 3; i++) assert.equal((await pull(b.app, 'acme/prod/app', 'v1', ADMIN)).statusCode, 200);
    assert.equal((await pull(b.app, 'acme/prod/app', 'nope', ADMIN)).statusCode, 404);
    await b.app.inject({ url: '/no/such/path' });
    await pushImage(b.app, 'acme/prod/app', 'v2'); // a second push: its delivery fails twice
    await rx.waitFor(3);
    await new Promise((r) => setTimeout(r, 100));
    await rx.close();
    await b.flush();
    const res = await b.app.inject({ url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    text = res.body;
  });
  after(async () => b?.close());

  it('counts requests and latency by route pattern, method and status', () => {
    const m = '/v2/{name}/manifests/{reference}';
    assert.equal(metricValue(text, `berth_http_requests_total{route="${m}",method="GET",status="200"}`), 3);
    assert.equal(metricValue(text, `berth_http_requests_total{route="${m}",method="GET",status="404"}`), 1);
    assert.equal(metricValue(text, `berth_http_requests_total{route="${m}",method="PUT",status="201"}`), 2);
    assert.equal(metricValue(text, `berth_http_requests_total{route="/api/v1/orgs",method="POST",status="201"}`), 1);
    assert.equal(metricValue(text, `berth_http_requests_total{route="unmatched",method="GET",status="404"}`), 1);
    assert.equal(metricValue(text, `berth_http_request_duration_seconds_count{route="${m}",method="GET",status="200"}`), 3);
    assert.equal(metricValue(text, `berth_http_request_duration_seconds_bucket{le="+Inf",route="${m}",method="GET",status="200"}`), 3);
    assert.ok(text.includes('# TYPE berth_http_request_duration_seconds histogram'));
    // no raw names or references in labels: bounded cardinality
    for (const line of text.split('\n').filter((l) => l.startsWith('berth_http_'))) {
      assert.ok(!/acme|sha256|no\/such|uploads\/[0-9a-f]/.test(line), line);
    }
  });

  it('counts bytes in and out', () => {
    const up = '/v2/{name}/blobs/uploads/{uuid}';
    assert.equal(metricValue(text, `berth_http_request_bytes_total{route="${up}"}`), 1000, 'the PATCH body');
    const out = metricValue(text, `berth_http_response_bytes_total{route="/v2/{name}/manifests/{reference}"}`)!;
    assert.ok(out > 3 * 300, `three manifests served (${out})`);
  });

  it('counts upload sessions started and completed', () => {
    // 4 monolithic (two images: layer + config each) + 1 chunked
    assert.equal(metricValue(text, 'berth_upload_sessions_started_total'), 5);
    assert.equal(metricValue(text, 'berth_upload_sessions_completed_total'), 5);
  });

  it('reports storage used, events and webhook deliveries', async () => {
    const stored = metricValue(text, 'berth_storage_used_bytes')!;
    assert.ok(stored >= pushedBytes, `${stored} ≥ ${pushedBytes}`);
    assert.equal(stored, await b.berth.meta.totalBlobBytes());
    const recorded = metricValue(text, 'berth_events_recorded_total')!;
    assert.ok(recorded >= 8, `events recorded: ${recorded}`);
    assert.equal(recorded, b.berth.registry.events.stats.recorded);
    assert.equal(metricValue(text, 'berth_events_dropped_total{reason="queue_full"}'), 0);
    assert.equal(metricValue(text, 'berth_events_dropped_total{reason="write_failed"}'), 0);
    assert.equal(metricValue(text, 'berth_events_queue_length'), 0);
    assert.ok(metricValue(text, 'berth_events_batch_max_seconds')! > 0);
    assert.equal(metricValue(text, 'berth_webhook_deliveries_total{outcome="delivered"}'), 1);
    assert.equal(metricValue(text, 'berth_webhook_deliveries_total{outcome="retry"}'), 1);
    assert.equal(metricValue(text, 'berth_webhook_deliveries_total{outcome="failed"}'), 1);
  });

  it('registers the proxy cache counters (zero until the proxy exists) and the process metrics', () => {
    assert.equal(metricValue(text, 'berth_proxy_cache_hits_total'), 0);
    assert.equal(metricValue(text, 'berth_proxy_cache_misses_total'), 0);
    assert.ok(text.includes('# TYPE process_cpu_user_seconds_total counter'));
    assert.ok(text.includes('nodejs_eventloop_lag_seconds'));
  });

  it('is off with metrics.enabled=false', async () => {
    const off = await openBerth({ metrics: { enabled: false } });
    try {
      assert.equal((await off.app.inject({ url: '/metrics' })).statusCode, 404);
    } finally {
      await off.close();
    }
  });
});
