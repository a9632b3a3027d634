// The rows only Berth has, measured in the same run as the main table: Berth against this
// machine's ceilings (a bare fastify route serving a body of the manifest's size; a minimal
// node server writing an upload to disk with one fsync), manifest reads authenticated as
// clients do (bearer token, Basic, anonymous on a public repository; by tag and by digest),
// `--workers 2` against `--workers 1`, and tag listings at 1k / 10k / 100k tags.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, expectStatus } from './http.ts';
import type { BigFile } from './data.ts';
import { randomBlob, sha256 } from './data.ts';
import { ensureOrg, login } from './auth.ts';
import { runAb, runWrk, type WrkResult } from './load.ts';
import { OCI_MANIFEST, ociManifest, pushBlob, pushBlobChunked, pushConfig, pushRandomBlob, putManifest } from './registry.ts';
import { type Server, RssSampler, freePort, startBerth, stopProcess, children } from './servers.ts';
import type { Params } from './workloads.ts';
import { MiB, fmtCount, fmtNum, median, pool, since, sleep } from './util.ts';
import { waitForIdleJobs } from './jobs.ts';
import Database from 'better-sqlite3';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface PhaseInput {
  params: Params;
  tmp: string;
  repoRoot: string;
  berth: Server;
  big: BigFile;
  /** Tag counts for the tag-scale rows. */
  tagScale: number[];
  /** Tags pushed by HTTP at most in the tag-scale rows; the rest are inserted into the database. */
  tagHttp: number;
  log(msg: string): void;
}

interface Ceiling {
  base: string;
  pid: number;
  stop(): Promise<void>;
}

/** bench/lib/ceiling-server.mjs on a free port, serving `body` as the manifest. */
async function startCeiling(tmp: string, body: Buffer): Promise<Ceiling> {
  const port = await freePort();
  const bodyFile = path.join(tmp, 'ceiling-body.json');
  const uploads = path.join(tmp, 'ceiling-uploads');
  writeFileSync(bodyFile, body);
  mkdirSync(uploads, { recursive: true });
  const fd = openSync(path.join(tmp, 'ceiling.log'), 'a');
  const proc = spawn(process.execPath, [path.join(here, 'ceiling-server.mjs'), String(port), bodyFile, uploads], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  const base = `http://127.0.0.1:${port}`;
  const c = new Client(base, 1);
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await c.request('GET', '/manifest')).status === 200) break;
      } catch {
        if (i > 200) throw new Error('the ceiling server did not start');
      }
      await sleep(50);
    }
  } finally {
    c.close();
  }
  return { base, pid: proc.pid!, stop: () => stopProcess(proc) };
}

function basicOf(srv: Server): string {
  return `Basic ${Buffer.from(`${srv.admin!.username}:${srv.admin!.password}`).toString('base64')}`;
}

/** A repository of `bench` made public through the management API (idempotent). */
async function publicRepository(c: Client, srv: Server, name: string): Promise<void> {
  const r = await c.request('POST', '/api/v1/owners/bench/repos', {
    headers: { authorization: basicOf(srv), 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ name, visibility: 'public' })),
  });
  expectStatus(r, [201, 409], `POST /api/v1/owners/bench/repos ${name}`);
}

async function pushImage(c: Client, name: string, tag: string): Promise<{ digest: string; body: Buffer }> {
  const config = await pushConfig(c, name, name);
  const layer = await pushRandomBlob(c, name, 64 * 1024);
  const body = ociManifest(config, [layer]);
  await putManifest(c, name, tag, body);
  const r = await c.request('GET', `/v2/${name}/manifests/${tag}`, { headers: { accept: OCI_MANIFEST } });
  expectStatus(r, 200, `GET /v2/${name}/manifests/${tag}`);
  return { digest: String(r.headers['docker-content-digest']), body: r.body };
}

interface LoadSpec {
  label: string;
  method: 'GET' | 'HEAD';
  url(): string;
  headers(): Record<string, string>;
  ceiling?: boolean;
}

async function load(p: PhaseInput, spec: LoadSpec, seconds: number): Promise<WrkResult> {
  const headers = { Accept: OCI_MANIFEST, ...spec.headers() };
  const r =
    spec.method === 'GET'
      ? await runWrk(p.params.wrkBinary, spec.url(), { threads: p.params.wrkThreads, connections: p.params.wrkConnections, seconds, headers })
      : await runAb(p.params.abBinary, spec.url(), { connections: p.params.wrkConnections, seconds, headers, csv: path.join(p.tmp, 'ab-phase.csv') });
  if (r.non2xx > 0) throw new Error(`${spec.label}: ${r.non2xx} non-2xx responses:\n${r.raw}`);
  return r;
}

const pct = (x: number) => `${Math.round(x * 100)} %`;
const yes = (ok: boolean) => (ok ? 'yes' : '**no**');

/** Manifest GET/HEAD as clients send them, each against the bare fastify ceiling of the same round. */
async function manifestsVsCeiling(p: PhaseInput): Promise<string> {
  const { berth } = p;
  const c = new Client(berth.base, 8);
  await ensureOrg(c, berth, 'bench');
  await publicRepository(c, berth, 'pub');
  const names = ['bench/r/app', 'bench/pub/app'];
  let bearer = (await login(c, berth, names))!;
  const priv = await pushImage(c, 'bench/r/app', 'latest');
  await pushImage(c, 'bench/pub/app', 'latest');
  await waitForIdleJobs(c, berth); // untimed: the two images' SBOM jobs
  const ceiling = await startCeiling(p.tmp, priv.body);
  const basic = basicOf(berth);
  const m = (name: string, ref: string) => () => `${berth.base}/v2/${name}/manifests/${ref}`;
  const specs: LoadSpec[] = [
    { label: 'bare fastify route, same body (ceiling)', method: 'GET', url: () => `${ceiling.base}/manifest`, headers: () => ({}), ceiling: true },
    { label: 'manifest GET by tag, bearer token', method: 'GET', url: m('bench/r/app', 'latest'), headers: () => ({ Authorization: bearer }) },
    { label: 'manifest GET by digest, bearer token', method: 'GET', url: m('bench/r/app', priv.digest), headers: () => ({ Authorization: bearer }) },
    { label: 'manifest GET by tag, Basic', method: 'GET', url: m('bench/r/app', 'latest'), headers: () => ({ Authorization: basic }) },
    { label: 'manifest GET by tag, anonymous (public repository)', method: 'GET', url: m('bench/pub/app', 'latest'), headers: () => ({}) },
    { label: 'bare fastify route HEAD (ceiling)', method: 'HEAD', url: () => `${ceiling.base}/manifest`, headers: () => ({}), ceiling: true },
    { label: 'manifest HEAD by tag, bearer token', method: 'HEAD', url: m('bench/r/app', 'latest'), headers: () => ({ Authorization: bearer }) },
    { label: 'manifest HEAD by digest, bearer token', method: 'HEAD', url: m('bench/r/app', priv.digest), headers: () => ({ Authorization: bearer }) },
    { label: 'manifest HEAD by tag, Basic', method: 'HEAD', url: m('bench/r/app', 'latest'), headers: () => ({ Authorization: basic }) },
  ];
  const results = new Map<LoadSpec, WrkResult[]>(specs.map((s) => [s, []]));
  try {
    for (const s of specs) await load(p, s, p.params.warmupSeconds || 1); // untimed warm-up
    for (let round = 0; round < p.params.rounds; round++) {
      bearer = (await login(c, berth, names))!; // untimed: a fresh token each round
      const order = round % 2 === 0 ? specs : [...specs].reverse();
      for (const s of order) {
        const r = await load(p, s, p.params.wrkSeconds);
        results.get(s)!.push(r);
        p.log(`  round ${round + 1}/${p.params.rounds} ${s.label}: ${fmtNum(r.rps)} req/s, p99 ${fmtNum(r.p99Ms)} ms`);
      }
    }
  } finally {
    c.close();
    await ceiling.stop();
  }
  const medRps = (s: LoadSpec) => median(results.get(s)!.map((r) => r.rps));
  const medP99 = (s: LoadSpec) => median(results.get(s)!.map((r) => r.p99Ms));
  const rows = [
    '| Request | Berth req/s | ceiling req/s | Berth / ceiling | ≥ 60 %? | Berth p99 | ceiling p99 | p99 Berth / ceiling | ≤ 2×? |',
    '| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |',
  ];
  for (const s of specs) {
    const ceil = specs.find((x) => x.ceiling && x.method === s.method)!;
    if (s.ceiling) {
      rows.push(`| ${s.label} | — | ${fmtNum(medRps(s))} | — | | — | ${fmtNum(medP99(s))} ms | — | |`);
      continue;
    }
    const rr = medRps(s) / medRps(ceil);
    const pr = medP99(s) / medP99(ceil);
    rows.push(`| ${s.label} | ${fmtNum(medRps(s))} | ${fmtNum(medRps(ceil))} | ${pct(rr)} | ${yes(rr >= 0.6)} | ${fmtNum(medP99(s))} ms | ${fmtNum(medP99(ceil))} ms | ${fmtNum(pr)}× | ${yes(pr <= 2)} |`);
  }
  return rows.join('\n');
}

/** Monolithic and chunked uploads against the loopback PUT-to-disk ceiling of the same round. */
async function uploadsVsCeiling(p: PhaseInput): Promise<string> {
  const { berth, big } = p;
  const c = new Client(berth.base, 8);
  const ceiling = await startCeiling(p.tmp, Buffer.from('{}'));
  const cc = new Client(ceiling.base, 8);
  const res = { mono: [] as number[], chunked: [] as number[], ceiling: [] as number[] };
  const drop = (digest: string) => {
    const f = berth.blobFile(digest);
    if (f && existsSync(f)) rmSync(f);
  };
  try {
    for (let round = 0; round < p.params.rounds; round++) {
      await login(c, berth, ['bench/r/big']);
      const steps: [keyof typeof res, () => Promise<void>][] = [
        [
          'mono',
          async () => {
            const v = big.variant(`phase-mono-${round}`);
            await pushBlob(c, 'bench/r/big', v.digest, big.size, () => big.range(v));
            drop(v.digest);
          },
        ],
        [
          'chunked',
          async () => {
            const v = big.variant(`phase-chunked-${round}`);
            await pushBlobChunked(c, 'bench/r/big', v.digest, big.size, p.params.chunk, (s, e) => big.range(v, s, e));
            drop(v.digest);
          },
        ],
        [
          'ceiling',
          async () => {
            const v = big.variant(`phase-ceiling-${round}`);
            const r = await cc.request('PUT', '/upload', { headers: { 'content-length': String(big.size), 'content-type': 'application/octet-stream' }, body: () => big.range(v) });
            expectStatus(r, 201, 'PUT /upload (ceiling)');
          },
        ],
      ];
      for (const [key, run] of round % 2 === 0 ? steps : [...steps].reverse()) {
        const t0 = performance.now();
        await run();
        res[key].push(big.size / MiB / since(t0));
      }
      p.log(`  round ${round + 1}/${p.params.rounds} uploads: mono ${fmtNum(res.mono.at(-1)!)}, chunked ${fmtNum(res.chunked.at(-1)!)}, ceiling ${fmtNum(res.ceiling.at(-1)!)} MiB/s`);
    }
  } finally {
    c.close();
    cc.close();
    await ceiling.stop();
  }
  const ceil = median(res.ceiling);
  const row = (label: string, v: number) => `| ${label} | ${fmtNum(v)} | ${fmtNum(ceil)} | ${pct(v / ceil)} | ${yes(v / ceil >= 0.8)} |`;
  return [
    '| Upload | Berth MiB/s | PUT-to-disk ceiling MiB/s | Berth / ceiling | ≥ 80 %? |',
    '| --- | ---: | ---: | ---: | --- |',
    row(`${fmtNum(big.size / MiB)} MiB monolithic (POST, PUT ?digest=)`, median(res.mono)),
    row(`${fmtNum(big.size / MiB)} MiB chunked (${fmtNum(p.params.chunk / MiB)} MiB PATCHes, then PUT)`, median(res.chunked)),
  ].join('\n');
}

/** Two fresh Berths, `--workers 1` and `--workers 2`: manifest GET and small-blob pushes, alternating. */
async function workersRows(p: PhaseInput): Promise<string> {
  const servers: Server[] = [];
  const clients: Client[] = [];
  try {
    for (const n of [1, 2]) servers.push(await startBerth(p.repoRoot, p.tmp, { name: `berth-w${n}`, args: ['--workers', String(n)] }));
    const res = servers.map(() => ({ rps: [] as number[], p99: [] as number[], bps: [] as number[], rss: 0 }));
    for (const s of servers) {
      const c = new Client(s.base, 64);
      clients.push(c);
      await ensureOrg(c, s, 'bench');
      await login(c, s, ['bench/r/app', 'bench/r/small']);
      await pushImage(c, 'bench/r/app', 'latest');
      await waitForIdleJobs(c, s);
      const headers = { Accept: OCI_MANIFEST, Authorization: String(c.defaultHeaders.authorization) };
      await runWrk(p.params.wrkBinary, `${s.base}/v2/bench/r/app/manifests/latest`, { threads: p.params.wrkThreads, connections: p.params.wrkConnections, seconds: p.params.warmupSeconds + 2, headers });
    }
    for (let round = 0; round < p.params.rounds; round++) {
      const order = round % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) {
        const s = servers[i]!;
        const c = clients[i]!;
        await login(c, s, ['bench/r/app', 'bench/r/small']);
        const sampler = new RssSampler(s.pid, 50);
        const headers = { Accept: OCI_MANIFEST, Authorization: String(c.defaultHeaders.authorization) };
        const g = await runWrk(p.params.wrkBinary, `${s.base}/v2/bench/r/app/manifests/latest`, {
          threads: p.params.wrkThreads,
          connections: p.params.wrkConnections,
          seconds: p.params.wrkSeconds,
          headers,
        });
        const blobs = Array.from({ length: p.params.smallBlobs }, () => randomBlob(p.params.smallSize));
        const t0 = performance.now();
        await pool(blobs, p.params.smallConcurrency, (b) => pushBlob(c, 'bench/r/small', b.digest, b.data.length, b.data));
        const bps = blobs.length / since(t0);
        res[i]!.rps.push(g.rps);
        res[i]!.p99.push(g.p99Ms);
        res[i]!.bps.push(bps);
        res[i]!.rss = Math.max(res[i]!.rss, sampler.stop());
        p.log(`  round ${round + 1}/${p.params.rounds} --workers ${i + 1}: manifest GET ${fmtNum(g.rps)} req/s (p99 ${fmtNum(g.p99Ms)} ms), small blobs ${fmtNum(bps)}/s`);
      }
    }
    const [w1, w2] = res as [(typeof res)[0], (typeof res)[0]];
    const row = (label: string, a: number, b: number, unit: string, higher = true) =>
      `| ${label} | ${fmtNum(a)} ${unit} | ${fmtNum(b)} ${unit} | ${fmtNum(higher ? b / a : a / b)}× |`;
    return [
      '| Workload | `--workers 1` | `--workers 2` | 2 workers vs 1 (>1× = better) |',
      '| --- | ---: | ---: | ---: |',
      row(`manifest GET by tag, bearer, wrk -c${p.params.wrkConnections}`, median(w1.rps), median(w2.rps), 'req/s'),
      row('manifest GET p99', median(w1.p99), median(w2.p99), 'ms', false),
      row(`${fmtCount(p.params.smallBlobs)} × ${fmtNum(p.params.smallSize / 1024)} KiB blob pushes, ${p.params.smallConcurrency} concurrent`, median(w1.bps), median(w2.bps), 'blobs/s'),
      `| peak RSS of the largest process | ${fmtNum(w1.rss / MiB)} MiB | ${fmtNum(w2.rss / MiB)} MiB | |`,
    ].join('\n');
  } finally {
    for (const c of clients) c.close();
    for (const s of servers) await stopProcess(s.proc);
  }
}

/**
 * Adds `tags` to an image in one transaction on Berth's SQLite database, with Berth running (a
 * second writer, as another worker is), each pointing at the manifest `template` points at:
 * the rows a tag push writes (image, name, manifest, time). Berth's read cache sees the commit
 * (`PRAGMA data_version`) like any other process's.
 */
function insertTags(database: string, template: string, digest: string, tags: string[]): void {
  const db = new Database(database);
  try {
    db.pragma('busy_timeout = 10000');
    const row = db
      .prepare('SELECT t.image_id AS imageId, t.manifest_id AS manifestId FROM tags t JOIN manifests m ON m.id = t.manifest_id WHERE t.name = ? AND m.digest = ?')
      .get(template, digest) as { imageId: number; manifestId: number } | undefined;
    if (!row) throw new Error(`tag scale: the pushed tag ${template} (${digest}) is not in ${database}`);
    const insert = db.prepare('INSERT INTO tags (image_id, name, manifest_id, updated_at) VALUES (?, ?, ?, ?)');
    const now = Date.now();
    db.transaction(() => {
      for (const t of tags) insert.run(row.imageId, t, row.manifestId, now);
    })();
  } finally {
    db.close();
  }
}

/**
 * One image grown to each count of tags, all pointing at one manifest (a registry holds many
 * tags of one digest: every CI build's `sha-…`, `latest`, a version): first and middle page of
 * tags/list?n=100, manifest GET by tag. Tags up to `tagHttp` are pushed by HTTP (each push is
 * a durable SQLite commit: 30-350 per second on these shared VMs); the rest are inserted into the database.
 */
async function tagScaleRows(p: PhaseInput): Promise<string> {
  const { berth } = p;
  const c = new Client(berth.base, 32);
  const name = 'bench/r/scale';
  const rows = [
    '| Tags in the image | tags/list?n=100, first page | middle page (`last=`) | manifest GET by tag | tags pushed by HTTP (per second) | tags inserted into the database |',
    '| ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  try {
    await login(c, berth, [name]);
    const config = await pushConfig(c, name, 'scale');
    const layer = await pushRandomBlob(c, name, 1024);
    const manifest = ociManifest(config, [layer]);
    const digest = sha256(manifest);
    const tag = (i: number) => `t${String(i).padStart(6, '0')}`;
    let have = 0;
    let pushed = 0;
    let pushSeconds = 0;
    for (const n of p.tagScale) {
      const byHttp = Math.max(have, Math.min(n, Math.max(1, p.tagHttp)));
      const t0 = performance.now();
      for (let from = have; from < byHttp; from += 5000) {
        await login(c, berth, [name]); // tokens are short-lived: a fresh one per 5,000 pushes
        const batch = Array.from({ length: Math.min(5000, byHttp - from) }, (_, k) => from + k);
        await pool(batch, p.params.tagConcurrency, (i) => putManifest(c, name, tag(i), manifest));
      }
      pushed += byHttp - have;
      pushSeconds += since(t0);
      const inserted = n - byHttp;
      if (inserted > 0) insertTags(berth.database!, tag(0), digest, Array.from({ length: inserted }, (_, k) => tag(byHttp + k)));
      have = n;
      await waitForIdleJobs(c, berth); // untimed: each push enqueued the manifest's SBOM job again
      await login(c, berth, [name]);
      const timeIt = async (target: string, count: number, accept?: string) => {
        const ms: number[] = [];
        for (let k = 0; k < count; k++) {
          const r0 = performance.now();
          const r = await c.request('GET', target, accept ? { headers: { accept } } : {});
          ms.push(performance.now() - r0);
          expectStatus(r, 200, `GET ${target}`);
        }
        return median(ms);
      };
      const first = await timeIt(`/v2/${name}/tags/list?n=100`, 21);
      const middle = await timeIt(`/v2/${name}/tags/list?n=100&last=${tag(Math.floor(n / 2))}`, 21);
      const get = await timeIt(`/v2/${name}/manifests/${tag(Math.floor(n / 2))}`, 51, OCI_MANIFEST);
      rows.push(`| ${fmtCount(n)} | ${fmtNum(first)} ms | ${fmtNum(middle)} ms | ${fmtNum(get)} ms | ${fmtCount(pushed)} (${fmtNum(pushed / pushSeconds)}) | ${fmtCount(n - pushed)} |`);
      p.log(`  ${fmtCount(n)} tags: first page ${fmtNum(first)} ms, middle ${fmtNum(middle)} ms, manifest GET ${fmtNum(get)} ms`);
    }
  } finally {
    c.close();
  }
  return rows.join('\n');
}

/** Runs every Berth-only section; returns them as markdown. */
export async function berthOnly(p: PhaseInput): Promise<string> {
  p.log('Berth vs this machine\'s ceilings: manifests (bare fastify route)');
  const manifests = await manifestsVsCeiling(p);
  p.log('Berth vs this machine\'s ceilings: uploads (loopback PUT to disk with fsync)');
  const uploads = await uploadsVsCeiling(p);
  p.log(`tag scale: ${p.tagScale.map(fmtCount).join(', ')} tags`);
  const tags = await tagScaleRows(p);
  p.log('--workers 1 vs --workers 2');
  const workers = await workersRows(p);
  return `### Berth against this machine's ceilings (median of ${p.params.rounds} alternating rounds)

Manifest reads as clients send them, each round next to a bare fastify route answering a fixed
body of the same size (\`bench/lib/ceiling-server.mjs\`: no auth, no database; wrk for GET,
\`ab -i -k\` for HEAD, ${p.params.wrkConnections} connections, ${p.params.wrkSeconds} s). Targets: ≥ 60 % of the ceiling's
req/s, p99 ≤ 2× the ceiling's.

${manifests}

Uploads next to a minimal node server that streams the request body to a file (1 MiB writes),
fsyncs it and answers 201 — the loopback PUT-to-disk limit with the same durability, no hashing.
Target: ≥ 80 % of it.

${uploads}

### Tag scale

One image grown to each count, every tag pointing at one manifest: the first
${fmtCount(p.tagHttp)} tags pushed by HTTP (\`PUT /v2/…/manifests/<tag>\`, ${p.params.tagConcurrency} concurrent), the rest
inserted into Berth's SQLite database in one transaction while it runs (the rows a tag push
writes; \`BENCH_TAG_HTTP\`). Before the reads the bench waits for Berth's job queue to be idle.
Medians of 21 sequential requests (51 for the manifest GET), bearer token.

${tags}

### \`--workers 2\` vs \`--workers 1\` (median of ${p.params.rounds} alternating rounds)

Two fresh Berths on this ${os.availableParallelism()}-CPU machine (shared with the load generators and the client); everything
else as above.

${workers}
`;
}
