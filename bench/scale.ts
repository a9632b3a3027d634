// `npm run bench:scale`: Berth on PostgreSQL + S3 (s3rver, in this process) next to Berth on its
// embedded default (SQLite + folder), side by side on loopback, alternating rounds, medians.
// Appends its table to docs/performance.md (section "Berth on PostgreSQL + S3").
// Needs PostgreSQL on 127.0.0.1:5432 (BENCH_POSTGRES_URL) and wrk.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import S3rver from 's3rver';
import { Client, expectStatus } from './lib/http.ts';
import { login } from './lib/auth.ts';
import { runWrk } from './lib/load.ts';
import { freePort, rssOf } from './lib/servers.ts';
import { MiB, envInt, findOnPath, fmtNum } from './lib/util.ts';
import type { Server } from './lib/servers.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PG = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const UPLOAD = envInt('BENCH_SCALE_UPLOAD_MB', 256) * MiB;
const SMALL = envInt('BENCH_SCALE_SMALL_BLOBS', 500);
const WRK_SECONDS = envInt('BENCH_WRK_SECONDS', 5);
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function log(msg: string): void {
  process.stderr.write(`[bench:scale ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sha256 = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Node {
  label: string;
  srv: Server;
  client: Client;
  proc: ChildProcess;
}

async function startNode(label: string, dir: string, env: Record<string, string>): Promise<Node> {
  const port = await freePort();
  const password = randomBytes(12).toString('base64url');
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_'))) as Record<string, string>;
  const proc = spawn(process.execPath, [path.join(repoRoot, 'bin/berth.js'), 'serve', '--listen', `127.0.0.1:${port}`, '--data', dir, '--log-level', 'warn'], {
    cwd: repoRoot,
    env: { ...base, ...env, BERTH_ADMIN_PASSWORD: password, BERTH_EVENTS_ENABLED: 'true' },
    stdio: 'ignore',
  });
  const srv = { kind: 'berth', label, admin: { username: 'admin', password }, pid: proc.pid!, base: `http://127.0.0.1:${port}` } as unknown as Server;
  const client = new Client(srv.base, 64);
  for (let i = 0; ; i++) {
    try {
      const r = await client.request('GET', '/healthz');
      if (r.status === 200) break;
    } catch {
      /* not yet */
    }
    if (i > 200) throw new Error(`${label} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const basic = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
  const org = await client.request('POST', '/api/v1/orgs', { headers: { authorization: basic, 'content-type': 'application/json' }, body: Buffer.from('{"name":"bench"}') });
  expectStatus(org, [201, 409], `${label}: create org`);
  await login(client, srv, ['bench/scale/app']);
  return { label, srv, client, proc };
}

async function upload(n: Node, data: Buffer): Promise<number> {
  const digest = sha256(data);
  const t0 = performance.now();
  const r = await n.client.request('POST', `/v2/bench/scale/app/blobs/uploads/?digest=${digest}`, {
    headers: { 'content-type': 'application/octet-stream' },
    body: data,
  });
  expectStatus(r, 201, `${n.label}: upload`);
  return data.length / MiB / ((performance.now() - t0) / 1000);
}

async function smallPushes(n: Node): Promise<number> {
  const blobs = Array.from({ length: SMALL }, () => randomBytes(4096));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < blobs.length) {
        const b = blobs[next++]!;
        const r = await n.client.request('POST', `/v2/bench/scale/app/blobs/uploads/?digest=${sha256(b)}`, { headers: { 'content-type': 'application/octet-stream' }, body: b });
        expectStatus(r, 201, `${n.label}: small push`);
      }
    }),
  );
  return SMALL / ((performance.now() - t0) / 1000);
}

async function manifestLoad(n: Node, wrk: string): Promise<{ rps: number; p99: number }> {
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const r = await n.client.request('POST', `/v2/bench/scale/app/blobs/uploads/?digest=${sha256(config)}`, { headers: { 'content-type': 'application/octet-stream' }, body: config });
  expectStatus(r, 201, `${n.label}: config`);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] }));
  const p = await n.client.request('PUT', '/v2/bench/scale/app/manifests/latest', { headers: { 'content-type': OCI_MANIFEST }, body: manifest });
  expectStatus(p, 201, `${n.label}: manifest`);
  const res = await runWrk(wrk, `${n.srv.base}/v2/bench/scale/app/manifests/latest`, {
    threads: 2,
    connections: 64,
    seconds: WRK_SECONDS,
    headers: { Accept: OCI_MANIFEST, Authorization: String(n.client.defaultHeaders.authorization) },
  });
  return { rps: res.rps, p99: res.p99Ms };
}

async function main(): Promise<void> {
  const wrk = findOnPath('wrk');
  if (!wrk) throw new Error('wrk is missing: apt-get install -y wrk');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'berth-bench-scale-'));
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const db = new pg.Client({ connectionString: PG });
  await db.connect();
  await db.query(`CREATE SCHEMA ${schema}`);
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: path.join(tmp, 's3'), configureBuckets: [{ name: 'berth' }] });
  const { port: s3port } = await s3.run();
  const url = new URL(PG);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const nodes: Node[] = [];
  try {
    nodes.push(await startNode('Berth (SQLite + folder)', path.join(tmp, 'a'), {}));
    nodes.push(
      await startNode('Berth (PostgreSQL + S3)', path.join(tmp, 'b'), {
        BERTH_METADATA_DRIVER: 'postgres',
        BERTH_POSTGRES_URL: url.toString(),
        BERTH_STORAGE_DRIVER: 's3',
        BERTH_S3_BUCKET: 'berth',
        BERTH_S3_ENDPOINT: `http://127.0.0.1:${s3port}`,
        BERTH_S3_ACCESS_KEY_ID: 'S3RVER',
        BERTH_S3_SECRET_ACCESS_KEY: 'S3RVER',
      }),
    );
    const results: Record<string, Record<string, number[]>> = {};
    for (const n of nodes) results[n.label] = { upload: [], small: [], rps: [], p99: [], rss: [] };
    const base = randomBytes(UPLOAD);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 ? [...nodes].reverse() : nodes;
      for (const n of order) {
        base.writeUInt32BE(round * 2 + nodes.indexOf(n), 0); // a distinct blob each time
        const r = results[n.label]!;
        r.upload!.push(await upload(n, base));
        r.small!.push(await smallPushes(n));
        const m = await manifestLoad(n, wrk);
        r.rps!.push(m.rps);
        r.p99!.push(m.p99);
        r.rss!.push(rssOf(n.srv.pid) / MiB);
        log(`round ${round + 1} ${n.label}: upload ${fmtNum(r.upload!.at(-1)!)} MiB/s, small ${fmtNum(r.small!.at(-1)!)}/s, GET ${fmtNum(m.rps)}/s p99 ${fmtNum(m.p99)} ms`);
      }
    }
    const [a, b] = nodes.map((n) => results[n.label]!);
    const row = (what: string, k: string, unit: string, higher: boolean) => {
      const va = median(a![k]!);
      const vb = median(b![k]!);
      return `| ${what} | ${fmtNum(va)} ${unit} | ${fmtNum(vb)} ${unit} | ${fmtNum(higher ? vb / va : va / vb)}× |`;
    };
    const table = [
      `### Berth on PostgreSQL + S3 (median of ${ROUNDS} rounds, alternating)`,
      '',
      `Generated by \`npm run bench:scale\` on ${new Date().toISOString().slice(0, 10)}: one Berth on the embedded default and one on PostgreSQL (127.0.0.1) + S3 (s3rver, a test S3 server in the bench process: its speed, not a real object store's, bounds the S3 rows), same machine, same run.`,
      '',
      '| Workload | SQLite + folder | PostgreSQL + S3 | PostgreSQL + S3 vs default (>1× = better) |',
      '| --- | ---: | ---: | ---: |',
      row(`${UPLOAD / MiB} MiB monolithic upload`, 'upload', 'MiB/s', true),
      row(`${SMALL} × 4 KiB blob pushes, 16 concurrent`, 'small', 'blobs/s', true),
      row('manifest GET by tag, wrk -c64', 'rps', 'req/s', true),
      row('manifest GET p99 (lower is better)', 'p99', 'ms', false),
      row('RSS after the round (lower is better)', 'rss', 'MiB', false),
      '',
    ].join('\n');
    process.stdout.write(`${table}\n`);
    const doc = path.join(repoRoot, 'docs', 'performance.md');
    if (process.env.BENCH_OUTPUT !== 'none' && existsSync(doc)) {
      const text = readFileSync(doc, 'utf8');
      const marker = '### Berth on PostgreSQL + S3';
      const i = text.indexOf(marker);
      writeFileSync(doc, `${(i >= 0 ? text.slice(0, i) : `${text.trimEnd()}\n\n`)}${table}`);
      log(`wrote ${doc}`);
    }
  } finally {
    for (const n of nodes) n.proc.kill('SIGTERM');
    await s3.close();
    await db.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => undefined);
    await db.end();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench:scale: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
