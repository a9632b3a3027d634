/**
 * A flood of manifest pulls over real HTTP against two Berth processes, one with the event
 * stream off (the baseline) and one with it on (defaults), measured in the same run and
 * interleaved so both see the same machine: every one of the 10,000 pulls is recorded, none is
 * dropped with the default queue, and no request is slowed by more than a batch write — p99
 * with events ≤ max(3 × baseline p99, baseline p99 + 50 ms), generous on a noisy 2-core box.
 * Throughput and latency of both are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { type BerthServer, startBerth } from '../helpers/server.ts';
import { metricValue } from './helpers.ts';

const FLOOD = 10_000;
const WARMUP = 500;
const CONCURRENCY = 16;
const IMAGE = 'acme/prod/app';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function pushImage(srv: BerthServer): Promise<void> {
  const layer = randomBytes(256);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, config]) {
    const r = await fetch(`${srv.url}/v2/${IMAGE}/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      headers: { authorization: srv.adminAuthorization, 'content-type': 'application/octet-stream' },
      body: blob,
    });
    assert.equal(r.status, 201, await r.text());
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  });
  const r = await fetch(`${srv.url}/v2/${IMAGE}/manifests/latest`, {
    method: 'PUT',
    headers: { authorization: srv.adminAuthorization, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  assert.equal(r.status, 201, await r.text());
}

/** A pull token, as docker and skopeo use: GET /v2/token, then Bearer. */
async function pullToken(srv: BerthServer): Promise<string> {
  const r = await fetch(`${srv.url}/v2/token?service=berth&scope=repository:${IMAGE}:pull`, { headers: { authorization: srv.adminAuthorization } });
  assert.equal(r.status, 200);
  return `Bearer ${((await r.json()) as { token: string }).token}`;
}

interface Phase {
  latencies: number[];
  seconds: number;
}

/** `n` manifest GETs over `CONCURRENCY` keep-alive connections; per-request latency in ms. */
async function flood(srv: BerthServer, agent: Agent, auth: string, n: number): Promise<Phase> {
  const latencies: number[] = [];
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const req = request(
        { agent, host: '127.0.0.1', port: srv.port, path: `/v2/${IMAGE}/manifests/latest`, headers: { authorization: auth, accept: 'application/vnd.oci.image.manifest.v1+json', 'user-agent': 'flood/1' } },
        (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
            else {
              latencies.push(performance.now() - t0);
              resolve();
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < n) {
        next++;
        await one();
      }
    }),
  );
  return { latencies, seconds: (performance.now() - started) / 1000 };
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function summary(phases: Phase[]) {
  const all = phases.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const seconds = phases.reduce((s, p) => s + p.seconds, 0);
  return { n: all.length, rps: all.length / seconds, p50: quantile(all, 0.5), p99: quantile(all, 0.99), max: all[all.length - 1]! };
}

describe('a flood of 10,000 pulls', () => {
  let baseline: BerthServer;
  let events: BerthServer;

  before(async () => {
    const env = { BERTH_TOKEN_TTL_SECONDS: '3600' };
    [baseline, events] = await Promise.all([
      startBerth({ orgs: ['acme'], env: { ...env, BERTH_EVENTS_ENABLED: 'false' } }),
      startBerth({ orgs: ['acme'], env }),
    ]);
    await pushImage(baseline);
    await pushImage(events);
  });
  after(async () => {
    await baseline?.stop();
    await events?.stop();
  });

  it('completes with the writer keeping up (all recorded, none dropped) and no request slowed by more than a batch write', { timeout: 300_000 }, async (t) => {
    const agents = [new Agent({ keepAlive: true, maxSockets: CONCURRENCY }), new Agent({ keepAlive: true, maxSockets: CONCURRENCY })] as const;
    try {
      const auth = [await pullToken(baseline), await pullToken(events)] as const;
      await flood(baseline, agents[0], auth[0], WARMUP);
      await flood(events, agents[1], auth[1], WARMUP);
      // interleaved halves: both servers see the same background noise
      const base: Phase[] = [];
      const withEvents: Phase[] = [];
      for (let round = 0; round < 2; round++) {
        base.push(await flood(baseline, agents[0], auth[0], FLOOD / 2));
        withEvents.push(await flood(events, agents[1], auth[1], FLOOD / 2));
      }
      const b = summary(base);
      const e = summary(withEvents);
      assert.equal(b.n, FLOOD);
      assert.equal(e.n, FLOOD);

      // the writer keeps up: everything is recorded within moments of the last response
      const expected = FLOOD + WARMUP;
      let metrics = '';
      const deadline = Date.now() + 20_000;
      for (;;) {
        metrics = await (await fetch(`${events.url}/metrics`)).text();
        if (metricValue(metrics, 'berth_events_queue_length') === 0 && (metricValue(metrics, 'berth_events_recorded_total') ?? 0) >= expected) break;
        if (Date.now() > deadline) assert.fail(`events not written in time:\n${metrics.split('\n').filter((l) => l.startsWith('berth_events')).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(metricValue(metrics, 'berth_events_dropped_total{reason="queue_full"}'), 0, 'nothing dropped with the default queue');
      assert.equal(metricValue(metrics, 'berth_events_dropped_total{reason="write_failed"}'), 0);
      const batchMaxMs = (metricValue(metrics, 'berth_events_batch_max_seconds') ?? 0) * 1000;

      const exported = await fetch(`${events.url}/api/v1/events?repository=acme/prod&action=pull&format=ndjson`, { headers: { authorization: events.adminAuthorization } });
      assert.equal(exported.status, 200);
      const lines = (await exported.text()).split('\n').filter(Boolean);
      assert.equal(lines.length, expected, 'every pull is in the audit log');
      const sample = JSON.parse(lines[0]!);
      assert.deepEqual([sample.action, sample.status, sample.userAgent, sample.actor.name], ['pull', 200, 'flood/1', 'admin']);

      const baseMetrics = await (await fetch(`${baseline.url}/metrics`)).text();
      assert.equal(metricValue(baseMetrics, 'berth_events_recorded_total'), 0, 'the baseline records nothing');

      const fmt = (s: ReturnType<typeof summary>) => `${s.rps.toFixed(0)} req/s, p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, max ${s.max.toFixed(1)} ms`;
      t.diagnostic(`baseline (events off): ${fmt(b)}`);
      t.diagnostic(`events on:             ${fmt(e)}; longest batch write ${batchMaxMs.toFixed(1)} ms`);
      t.diagnostic(`throughput change: ${(((e.rps - b.rps) / b.rps) * 100).toFixed(1)} %`);
      const bound = Math.max(3 * b.p99, b.p99 + 50);
      assert.ok(e.p99 <= bound, `p99 with events ${e.p99.toFixed(2)} ms > max(3 × ${b.p99.toFixed(2)}, ${b.p99.toFixed(2)} + 50) ms`);
    } finally {
      for (const a of agents) a.destroy();
    }
  });
});
