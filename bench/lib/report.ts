// The markdown report: the comparison table, peak memory, every round's raw values, the
// machine and its reference limits, and how the numbers were produced.
import type { Kind } from './servers.ts';
import type { ReferenceLimits } from './reference.ts';
import type { Metric, Params, Workload } from './workloads.ts';
import { MiB, fmtCount, fmtNum, fmtSize, median } from './util.ts';

export type Rounds = Record<Kind, Record<string, number>[]>;

export interface ReportInput {
  date: Date;
  params: Params;
  workloads: Workload[];
  results: Map<string, Rounds>;
  idleRss: Record<Kind, number>;
  limits: ReferenceLimits;
  machine: { nproc: string; free: string; cpu: string; kernel: string; node: string; registry: string; wrk: string; ab: string; fs: string };
  notes: Record<Kind, Set<string>>;
  /** How bin/berth.js ran Berth (compiled dist/ or tsx). */
  berthMode: string;
  durationS: number;
  env: string;
  /** Sections only Berth has (bench/lib/berth-only.ts), as markdown. */
  extra?: string;
}

const LABEL: Record<Kind, string> = { berth: 'Berth', ref: 'docker-registry' };

/** The ratio that reads "how many times better Berth is": >1 means Berth is better. */
export function ratio(m: Pick<Metric, 'better'>, berth: number, ref: number): number {
  return m.better === 'higher' ? berth / ref : ref / berth;
}

interface Target {
  text: string;
  met(r: number, berth: number): boolean;
}

/** The project's performance targets for each row (issue 13's targets against docker-registry). */
function targetOf(workloadId: string, key: string): Target {
  if ((workloadId === 'mono' || workloadId === 'chunked') && key === 'mibps') return { text: '≥ 3×', met: (r) => r >= 3 };
  if ((workloadId === 'small' && key === 'bps') || (workloadId === 'tags' && key === 'tps')) return { text: '≥ 3×', met: (r) => r >= 3 };
  if (workloadId === 'manifests' && (key === 'get_rps' || key === 'head_rps')) return { text: '≥ 3×', met: (r) => r >= 3 };
  if (workloadId === 'manifests' && (key === 'get_p99' || key === 'head_p99')) return { text: '> 1× (lower p99)', met: (r) => r > 1 };
  if (key === 'rss') return { text: 'Berth ≤ 150 MiB', met: (_r, b) => b <= 150 * MiB };
  if (key === 'cpu') return { text: '—', met: () => true };
  return { text: '≥ 1×', met: (r) => r >= 1 };
}

function cell(v: number, unit: string): string {
  return `${fmtNum(v)} ${unit}`;
}

function med(rounds: Record<string, number>[], key: string): number {
  return median(rounds.map((r) => r[key]!).filter((v) => v !== undefined));
}

export interface Row {
  label: string;
  berth: string;
  ref: string;
  ratio: string;
  target: string;
  met: string;
}

function rowFor(w: Workload, m: Metric, rounds: Rounds, useMax = false): Row {
  const agg = (rs: Record<string, number>[]): number => (useMax ? Math.max(...rs.map((r) => r[m.key]!)) : med(rs, m.key));
  const b = agg(rounds.berth);
  const r = agg(rounds.ref);
  const x = ratio(m, b, r);
  const t = targetOf(w.id, m.key);
  const dir = m.better === 'higher' ? 'higher is better' : 'lower is better';
  const scale = m.unit === 'MiB' ? MiB : 1;
  return {
    label: `${m.label} (${m.unit}, ${dir})`,
    berth: cell(b / scale, m.unit),
    ref: cell(r / scale, m.unit),
    ratio: `${fmtNum(x)}×`,
    target: t.text,
    met: t.text === '—' ? '' : t.met(x, b) ? 'yes' : '**no**',
  };
}

export function mainRows(input: ReportInput): Row[] {
  const rows: Row[] = [];
  for (const w of input.workloads) {
    const rounds = input.results.get(w.id);
    if (!rounds) continue;
    for (const m of w.metrics) rows.push(rowFor(w, m, rounds));
  }
  return rows;
}

export function rssRows(input: ReportInput): Row[] {
  const rows: Row[] = [];
  for (const w of input.workloads) {
    const rounds = input.results.get(w.id);
    if (!rounds) continue;
    rows.push(rowFor(w, { key: 'rss', label: `peak RSS during: ${w.title}`, unit: 'MiB', better: 'lower' }, rounds, true));
  }
  return rows;
}

export function cpuRows(input: ReportInput): Row[] {
  const rows: Row[] = [];
  for (const w of input.workloads) {
    const rounds = input.results.get(w.id);
    if (!rounds) continue;
    rows.push(rowFor(w, { key: 'cpu', label: `server CPU time (user + system) during: ${w.title}`, unit: 's', better: 'lower' }, rounds));
  }
  return rows;
}

export function table(rows: Row[], first = 'Workload'): string {
  const out = [
    `| ${first} | Berth | docker-registry | Berth vs docker-registry (>1× = Berth better) | target | met |`,
    '| --- | ---: | ---: | ---: | --- | --- |',
  ];
  for (const r of rows) out.push(`| ${r.label} | ${r.berth} | ${r.ref} | ${r.ratio} | ${r.target} | ${r.met} |`);
  return out.join('\n');
}

function noiseTable(input: ReportInput): string {
  const out = [
    '| Workload | other processes during Berth\'s rounds | during docker-registry\'s rounds |',
    '| --- | ---: | ---: |',
  ];
  const cell = (rs: Record<string, number>[]) => {
    const v = rs.map((r) => Math.min(r.others ?? 0, Number(input.machine.nproc) || Infinity));
    return `${median(v).toFixed(2)} (max ${Math.max(...v).toFixed(2)})`;
  };
  for (const w of input.workloads) {
    const rounds = input.results.get(w.id);
    if (rounds) out.push(`| ${w.title} | ${cell(rounds.berth)} | ${cell(rounds.ref)} |`);
  }
  return out.join('\n');
}

/** Berth's background jobs each workload's rounds left behind, drained (untimed) after the round. */
function jobsTable(input: ReportInput): string {
  const out = ['| Workload | jobs running or due when the round ended | seconds until the queue was idle | server CPU meanwhile |', '| --- | ---: | ---: | ---: |'];
  for (const w of input.workloads) {
    const rounds = input.results.get(w.id)?.berth;
    if (rounds) out.push(`| ${w.title} | ${fmtNum(med(rounds, 'jobs'))} | ${fmtNum(med(rounds, 'jobs_s'))} s | ${fmtNum(med(rounds, 'jobs_cpu'))} s |`);
  }
  return out.join('\n');
}

function roundsTable(input: ReportInput): string {
  const out = ['| Metric | Berth, each round | docker-registry, each round |', '| --- | --- | --- |'];
  for (const w of input.workloads) {
    const rounds = input.results.get(w.id);
    if (!rounds) continue;
    for (const m of [
      ...w.metrics,
      { key: 'rss', label: `peak RSS: ${w.title}`, unit: 'MiB', better: 'lower' as const },
      { key: 'cpu', label: `server CPU time: ${w.title}`, unit: 's', better: 'lower' as const },
      { key: 'others', label: `other processes' CPU load: ${w.title}`, unit: 'cores', better: 'lower' as const },
    ]) {
      const scale = m.unit === 'MiB' ? MiB : 1;
      const list = (k: Kind) => rounds[k].map((r) => fmtNum((r[m.key] ?? NaN) / scale)).join(', ');
      out.push(`| ${m.label} (${m.unit}) | ${list('berth')} | ${list('ref')} |`);
    }
  }
  return out.join('\n');
}

export function markdown(input: ReportInput): string {
  const p = input.params;
  const l = input.limits;
  const notes = (k: Kind) => [...input.notes[k]].map((n) => `  - ${n}`).join('\n') || '  - none';
  return `# Performance

Berth against the CNCF distribution reference registry (Debian's \`docker-registry\`), on the
same machine, in the same run. Generated by \`npm run bench\` (\`bench/run.ts\`); rerunning it
rewrites this file.

## Method

- Both registries run side by side on loopback, each on a fresh temporary data folder:
  Berth as \`node bin/berth.js serve --log-level warn\` (SQLite metadata + filesystem blobs;
  its default of one worker process per CPU core, \`--workers\`, each started by
  \`berth serve\` with \`--max-semi-space-size=8\` and \`MALLOC_ARENA_MAX=2\`),
  docker-registry with the filesystem storage driver, \`storage.delete.enabled: true\`, the
  in-memory blob descriptor cache, access log off, log level error.
- Every workload runs **${p.rounds} round(s) on each registry, alternating** (A/B, B/A, …; the
  first registry alternates between workloads too), so machine noise falls on both alike. The
  table shows the **median** of the rounds (peak RSS: the maximum); every round's value is
  listed below. \`sync\` runs (untimed) before each round so one registry's dirty pages are not
  written back during the other's round.
- Berth runs as users get it, SBOM generation on: each image manifest pushed enqueues a
  background job that inventories its layers. Before each round, and after each of Berth's
  rounds, the bench waits (untimed) until Berth's job queue has nothing running or due
  (\`GET /api/v1/jobs/counts\`, as \`berth jobs counts\`), so the jobs of one round never run
  during another; what they cost is reported under "Berth's background jobs".
- The client is node (\`node:http\`, keep-alive agent), on the same machine: client, load
  generators and server share its CPUs. Bodies are streamed, never buffered
  whole. The ${fmtSize(p.size)} test blob is a random file generated once on disk; each upload
  uses a distinct variant (its last 32 bytes differ, digest precomputed), so no upload is
  deduplicated against an earlier one. Small blobs and layers are fresh random bytes each round.
- Both registries get the same protocol: uploads are \`POST /blobs/uploads/\` then
  \`PUT ?digest=\` (docker-registry 2.8 ignores a monolithic \`POST ?digest=\`: it answers 202
  and opens a session). Manifest GET load uses \`wrk --latency\` with
  \`Accept: application/vnd.oci.image.manifest.v1+json\`. HEAD load uses ApacheBench
  (\`ab -i -k\`, same connection count, same duration): Debian's wrk 4.1.0 with
  \`wrk.method = "HEAD"\` waits for a body the size of Content-Length and completes 0 requests.
  Both load generators run ${p.warmupSeconds} s untimed against each registry before the first round.
- Tag listing: docker-registry 2.8 does not paginate \`tags/list\` (it ignores \`n\` and returns
  every tag in one response, without a Link header), so in the \`n=${p.tagPage}\` row it answers one
  request where Berth answers ⌈tags / ${p.tagPage}⌉; the row without \`n\` is one request on both
  (Berth's default page holds up to 10,000 tags). Pages per listing are under Observations.
- Berth requires authentication: the bench creates the organisation \`bench\` through the
  management API and, before each round (untimed), fetches a bearer token (ES256 JWT) from
  \`/v2/token\` with the administrator's Basic credentials, as \`docker login\` + pull/push do;
  every request, wrk's and ab's included, carries it. docker-registry runs without auth (its
  built-in alternative, htpasswd, checks bcrypt on every request).
- After each big-upload round its blob's data file is deleted from the registry's storage folder
  (untimed; the blob is not read again, except the last monolithic one, which the download
  workload uses). Otherwise the page cache grows by a GiB per round, and on this VM writing into
  the page cache once free memory is below ~6 GiB costs about 5× the system CPU
  (0.6 → 3.5 s per GiB, for both registries), which penalises whichever registry writes later.
- Peak RSS: the server process's \`VmRSS\` polled every 50 ms during each round and, for Berth,
  the wait for its jobs after it (with several workers: the largest of its processes; CPU time:
  all of them together, during the round only).
- Durability differs: Berth fsyncs each blob before acknowledging it and acknowledges an SQLite
  commit only after the database's log was synced behind it (group commit, equivalent to
  \`synchronous=FULL\`); docker-registry 2.8's filesystem driver does not fsync. Upload and
  push rows therefore include Berth's fsync cost (compare with the disk limit below).

## How to run

\`\`\`sh
apt-get install -y docker-registry wrk apache2-utils   # once
npm run bench                            # full run, 20+ minutes; rewrites docs/performance.md
BENCH_SIZE_MB=64 BENCH_ROUNDS=1 BENCH_WRK_SECONDS=2 BENCH_SMALL_BLOBS=200 BENCH_TAGS=500 \\
  BENCH_OUTPUT=none npm run bench        # quick smoke run, prints the table only
\`\`\`

Knobs (environment): \`BENCH_ROUNDS\` (5), \`BENCH_SIZE_MB\` (1024), \`BENCH_CHUNK_MB\` (16),
\`BENCH_WRK_SECONDS\` (10, also ab's), \`BENCH_WRK_CONNECTIONS\` (64), \`BENCH_WARMUP_SECONDS\` (2), \`BENCH_SMALL_BLOBS\` (2000),
\`BENCH_SMALL_KB\` (4), \`BENCH_TAGS\` (5000), \`BENCH_LAYERS\` (50), \`BENCH_LAYER_MB\` (1),
\`BENCH_RANGE_REQUESTS\` (400), \`BENCH_TAG_SCALE\` (1000,10000,100000: tag counts of the tag-scale rows),
\`BENCH_TAG_HTTP\` (1000: tags pushed by HTTP at most in the tag-scale rows, the rest inserted into the database),
\`BENCH_BERTH_ONLY\` (\`0\` skips the Berth-only sections), \`BENCH_TMPDIR\` (the OS temp folder),
\`BENCH_OUTPUT\` (this file; \`none\` to only print). A section headed "## Notes (hand-written, …)"
at the end of this file is kept when the bench rewrites it.

## Results — ${input.date.toISOString().slice(0, 10)}

Machine: ${input.machine.nproc} CPUs (\`nproc\`), ${input.machine.cpu}; Linux ${input.machine.kernel};
temp folder on ${input.machine.fs}; node ${input.machine.node}; ${input.machine.registry}; ${input.machine.wrk}; ${input.machine.ab}.
The machine is a shared VM whose disk and CPU speed vary from minute to minute (see the
reference limits): compare the two columns of one run, not one run with another.

\`\`\`
$ free -g
${input.machine.free.trimEnd()}
\`\`\`

Parameters: ${input.env}. Total run time ${Math.round(input.durationS)} s.
Berth ran from ${input.berthMode}.

### This machine's reference limits

| Limit | value |
| --- | ---: |
| SHA-256, \`openssl speed -evp sha256 -bytes 1048576 -seconds 3\` | ${fmtNum(l.opensslSha256)} MiB/s |
| SHA-256, node:crypto, 1 MiB updates | ${fmtNum(l.nodeSha256)} MiB/s |
| disk write with fsync, \`dd if=/dev/zero bs=1M count=${Math.ceil(p.size / MiB)} conv=fsync\` | ${fmtNum(l.diskFsync)} MiB/s |
| durable small write: 4 KiB \`write\` + \`fdatasync\`, median of 200 (one sync of SQLite's log, shared by the commits made while the previous one ran, costs at least this) | ${fmtNum(l.fsyncLatencyMs)} ms |
| loopback HTTP download, minimal node server streaming zeros → this node client | ${fmtNum(l.loopbackDownload)} MiB/s |
| loopback HTTP upload, this node client streaming the test file → minimal node server | ${fmtNum(l.loopbackUpload)} MiB/s |

### Berth vs docker-registry (median of ${p.rounds} round(s))

${table(mainRows(input))}

${input.extra ?? ''}
### Peak RSS of each server process (maximum over the rounds)

Right after startup: Berth ${fmtNum(input.idleRss.berth / MiB)} MiB, docker-registry ${fmtNum(input.idleRss.ref / MiB)} MiB.

${table(rssRows(input))}

### Server CPU time per round (median)

CPU seconds (user + system, from \`/proc/<pid>/stat\`) each server process used during a round:
less noisy than wall-clock time on a shared machine, and it shows where a row is CPU-bound.

${table(cpuRows(input))}

### Berth's background jobs after each round (median)

Every image manifest pushed enqueues an SBOM generation (\`sbom.generate\`, then a
vulnerability match, \`vulns.scan\`), run by Berth's job queue after the push is answered. After
each Berth round the bench waits (untimed) until no job is running or due, polling
\`GET /api/v1/jobs/counts\` every 100 ms, so no round runs beside another's jobs. The CPU they
used is not in the table above; it is here. Their memory is: peak RSS covers the round and this wait.

${jobsTable(input)}

### Machine noise

Average CPUs kept busy by *other* user processes on this machine during the rounds (machine
user + system time from \`/proc/stat\`, minus the bench, its load generators, both servers and
kernel threads), median and worst round. Anything well above 0 means the rounds competed for the ${input.machine.nproc} CPUs
with someone else; alternating the registries spreads that over both columns. Contention from
other VMs on the same host is not visible here (no steal time is reported); it shows as the same
work costing more server CPU time in some rounds than in others (see "Every round").

${noiseTable(input)}

### Every round

${roundsTable(input)}

### Observations during the run

- Berth:
${notes('berth')}
- docker-registry:
${notes('ref')}

Counts: ${fmtCount(p.smallBlobs)} small blobs, ${fmtCount(p.tags)} tags, ${p.layers} layers per round.
`;
}

export { LABEL };
