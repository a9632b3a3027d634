// `node --import tsx bench/rate-limits.ts`: what rate limits cost on the hot path (docs/limits.md).
// One Berth process (SQLite, then PostgreSQL when BENCH_POSTGRES_URL is set), anonymous
// manifest GETs by tag on a public repository under wrk, in alternating rounds:
//   none     no limit set anywhere (the one boolean check);
//   unused   limits set, none applying to the request (a user's limit; anonymous not limited);
//   counted  an anonymous limit no one reaches: every request counted (memory / PostgreSQL).
// Prints the server's CPU time per request (user + system, from /proc: what the limits add,
// and the figure that holds on a busy machine), requests per second and latency percentiles,
// medians over BENCH_ROUNDS rounds.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { runWrk, type WrkResult } from './lib/load.ts';
import { cpuSecondsOf, startBerth, stopProcess, type Server } from './lib/servers.ts';
import { envInt, findOnPath } from './lib/util.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const SECONDS = envInt('BENCH_SECONDS', 8);
const CONNECTIONS = envInt('BENCH_CONNECTIONS', 16);

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function call(srv: Server, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const auth = `Basic ${Buffer.from(`${srv.admin!.username}:${srv.admin!.password}`).toString('base64')}`;
  const res = await fetch(srv.base + url, {
    method,
    headers: { authorization: auth, ...(body !== undefined && !Buffer.isBuffer(body) ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body === undefined ? {} : { body: Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body) }),
  });
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
  return res;
}

/** An org, a public repository and a one-layer image `bench/pub/app:v1`. */
async function seed(srv: Server): Promise<void> {
  await call(srv, 'POST', '/api/v1/orgs', { name: 'bench' });
  await call(srv, 'POST', '/api/v1/owners/bench/repos', { name: 'pub', visibility: 'public' });
  const layer = randomBytes(1024);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  for (const b of [layer, config]) await call(srv, 'POST', `/v2/bench/pub/app/blobs/uploads/?digest=${sha(b)}`, b, { 'content-type': 'application/octet-stream' });
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
  };
  await call(srv, 'PUT', '/v2/bench/pub/app/manifests/v1', Buffer.from(JSON.stringify(manifest)), { 'content-type': manifest.mediaType });
}

type Scenario = 'none' | 'unused' | 'counted';

async function setScenario(srv: Server, s: Scenario): Promise<void> {
  const rows = (await (await call(srv, 'GET', '/api/v1/limits')).json()) as { kind: string; subject: string | null }[];
  for (const r of rows) await call(srv, 'DELETE', `/api/v1/limits?${new URLSearchParams({ kind: r.kind, ...(r.subject === null ? {} : { subject: r.subject }) }).toString()}`);
  if (s === 'unused') await call(srv, 'PUT', '/api/v1/limits', { kind: 'user', subject: 'admin', requestsPerMinute: 1_000_000_000 });
  if (s === 'counted') await call(srv, 'PUT', '/api/v1/limits', { kind: 'anonymous', requestsPerMinute: 1_000_000_000 });
  const probe = await fetch(`${srv.base}/v2/bench/pub/app/manifests/v1`);
  const counted = probe.headers.get('ratelimit-limit') !== null;
  if (counted !== (s === 'counted')) throw new Error(`scenario ${s}: RateLimit-Limit ${probe.headers.get('ratelimit-limit')}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(label: string, args: string[], wrk: string): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-limits-'));
  const srv = await startBerth(repoRoot, dir, { args: ['--workers', '1', ...args.map((a) => a.replace('DIR', dir))] });
  try {
    await seed(srv);
    const results = new Map<Scenario, (WrkResult & { cpuUs: number })[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of ['none', 'unused', 'counted'] as const) {
        await setScenario(srv, s);
        const cpu0 = cpuSecondsOf(srv.pid);
        const w = await runWrk(wrk, `${srv.base}/v2/bench/pub/app/manifests/v1`, { threads: 1, connections: CONNECTIONS, seconds: SECONDS, headers: {} });
        const r = { ...w, cpuUs: ((cpuSecondsOf(srv.pid) - cpu0) * 1e6) / w.requests };
        if (r.non2xx || r.socketErrors) throw new Error(`${s}: ${r.non2xx} non-2xx, ${r.socketErrors} socket errors`);
        results.set(s, [...(results.get(s) ?? []), r]);
      }
    }
    for (const [s, rs] of results) {
      process.stdout.write(
        `${label.padEnd(10)} ${s.padEnd(8)} CPU ${median(rs.map((r) => r.cpuUs)).toFixed(0).padStart(4)} µs/request (rounds: ${rs.map((r) => r.cpuUs.toFixed(0)).join(', ')})   ${median(rs.map((r) => r.rps)).toFixed(0).padStart(6)} req/s   p50 ${median(rs.map((r) => r.p50Ms)).toFixed(2)} ms   p99 ${median(rs.map((r) => r.p99Ms)).toFixed(2)} ms   (rounds: ${rs.map((r) => r.rps.toFixed(0)).join(', ')})\n`,
      );
    }
  } finally {
    await stopProcess(srv.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}

const wrk = findOnPath('wrk');
if (!wrk) {
  process.stderr.write('bench/rate-limits: wrk was not found on PATH (apt-get install wrk)\n');
  process.exit(2);
}
process.stdout.write(`anonymous manifest GETs, ${CONNECTIONS} connections, ${SECONDS} s x ${ROUNDS} rounds, medians\n`);
await measure('sqlite', [], wrk);
const pgUrl = process.env.BENCH_POSTGRES_URL;
if (pgUrl) {
  const schema = `berth_bench_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: pgUrl });
  await c.connect();
  await c.query(`CREATE SCHEMA ${schema}`);
  try {
    const u = new URL(pgUrl);
    u.searchParams.set('options', `-c search_path=${schema}`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-config-'));
    const config = path.join(dir, 'berth.yaml');
    writeFileSync(config, `metadata:\n  driver: postgres\n  postgresUrl: "${u.toString()}"\n`);
    await measure('postgres', ['--config', config], wrk);
    rmSync(dir, { recursive: true, force: true });
  } finally {
    await c.query(`DROP SCHEMA ${schema} CASCADE`);
    await c.end();
  }
}
