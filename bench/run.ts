// `npm run bench`: Berth against docker-registry (the CNCF distribution reference registry),
// side by side on loopback, alternating rounds, medians, one run. See docs/performance.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BigFile } from './lib/data.ts';
import { Client } from './lib/http.ts';
import { diskFsync, fsyncLatency, loopback, nodeSha256, opensslSha256, type ReferenceLimits } from './lib/reference.ts';
import { type Rounds, type ReportInput, LABEL, cpuRows, mainRows, markdown, rssRows, table } from './lib/report.ts';
import { type Kind, type Server, NoiseMeter, RssSampler, cpuSecondsOf, killAllChildrenSync, rssOf, startBerth, startReference, stopProcess } from './lib/servers.ts';
import { type Ctx, type Params, repositories, workloads } from './lib/workloads.ts';
import { ensureOrg, login } from './lib/auth.ts';
import { berthOnly } from './lib/berth-only.ts';
import { waitForIdleJobs } from './lib/jobs.ts';
import { MiB, envInt, envList, findOnPath, fmtNum, since } from './lib/util.ts';

/** The heading of docs/performance.md's hand-written section, which a rerun keeps. */
const NOTES_HEADING = '## Notes (hand-written, kept when the bench rewrites this file)';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function requireTool(name: string, install: string): string {
  const p = findOnPath(name);
  if (!p) {
    process.stderr.write(`bench: "${name}" was not found on PATH. Install it with: ${install}\n`);
    process.exit(2);
  }
  return p;
}

function readParams(wrkBinary: string, abBinary: string): Params {
  return {
    rounds: envInt('BENCH_ROUNDS', 5),
    size: envInt('BENCH_SIZE_MB', 1024) * MiB,
    chunk: envInt('BENCH_CHUNK_MB', 16) * MiB,
    rangeRequests: envInt('BENCH_RANGE_REQUESTS', 400),
    rangeConcurrency: 4,
    wrkBinary,
    abBinary,
    warmupSeconds: envInt('BENCH_WARMUP_SECONDS', 2, 0),
    wrkSeconds: envInt('BENCH_WRK_SECONDS', 10),
    wrkThreads: 2,
    wrkConnections: envInt('BENCH_WRK_CONNECTIONS', 64),
    smallBlobs: envInt('BENCH_SMALL_BLOBS', 2000),
    smallSize: envInt('BENCH_SMALL_KB', 4) * 1024,
    smallConcurrency: 16,
    tags: envInt('BENCH_TAGS', 5000),
    tagConcurrency: 16,
    tagPage: 100,
    layers: envInt('BENCH_LAYERS', 50),
    layerSize: envInt('BENCH_LAYER_MB', 1) * MiB,
    pushConcurrency: 5, // docker's default max-concurrent-uploads
    pullConcurrency: 3, // docker's default max-concurrent-downloads
  };
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd();
}

function machineInfo(tmp: string): ReportInput['machine'] {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU';
  const df = sh('df', ['-T', tmp]).split('\n')[1]?.split(/\s+/) ?? [];
  return {
    nproc: sh('nproc', []),
    free: sh('free', ['-g']),
    cpu: cpu.trim(),
    kernel: os.release(),
    node: process.version,
    registry: sh('docker-registry', ['--version']).split('\n')[0]!.replace(/^docker-registry\s+/, 'docker-registry '),
    wrk: sh('wrk', ['-v']).split('\n')[0]!.replace(/\s+Copyright.*$/, ''),
    ab: sh('ab', ['-V']).split('\n')[0]!.replace(/^This is /, '').replace(/,? <\$Revision\$>/, ''),
    fs: df.length > 1 ? `${df[1]} (${df[0]})` : 'unknown filesystem',
  };
}

/** How bin/berth.js will run Berth: the compiled dist/ when it is up to date, else src/ through tsx. */
function berthRunMode(): string {
  const built = path.join(repoRoot, 'dist', 'cli', 'index.js');
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }
    return t;
  };
  const src = path.join(repoRoot, 'src');
  if (existsSync(built) && (!existsSync(src) || statSync(built).mtimeMs >= newest(src))) return 'the compiled dist/ (plain node)';
  return 'the TypeScript sources through the tsx loader (dist/ missing or older than src/)';
}

function syncDisk(): void {
  execFileSync('sync', { stdio: 'ignore' });
}

async function main(): Promise<void> {
  const started = performance.now();
  const registryBin = requireTool('docker-registry', 'apt-get install -y docker-registry');
  const wrkBin = requireTool('wrk', 'apt-get install -y wrk');
  const abBin = requireTool('ab', 'apt-get install -y apache2-utils');
  requireTool('openssl', 'apt-get install -y openssl');
  requireTool('dd', 'apt-get install -y coreutils');
  const params = readParams(wrkBin, abBin);
  const output = process.env.BENCH_OUTPUT ?? path.join(repoRoot, 'docs/performance.md');

  const tmp = mkdtempSync(path.join(process.env.BENCH_TMPDIR ?? os.tmpdir(), 'berth-bench-'));
  let cleaned = false;
  const cleanupSync = (): void => {
    if (cleaned) return;
    cleaned = true;
    killAllChildrenSync();
    rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      log(`${sig}: stopping both servers and removing ${tmp}`);
      cleanupSync();
      process.exit(130);
    });
  }

  const servers: Server[] = [];
  const clients: Client[] = [];
  try {
    log(`temp folder ${tmp}; params ${JSON.stringify({ ...params, wrkBinary: undefined, abBinary: undefined })}`);
    log(`generating the ${params.size / MiB} MiB random test file`);
    let t0 = performance.now();
    const big = await BigFile.create(path.join(tmp, 'big.bin'), params.size);
    log(`  done in ${since(t0).toFixed(1)} s`);

    log('measuring reference limits (openssl sha256, node sha256, dd conv=fsync, loopback HTTP)');
    const loop = await loopback(big, params.rounds);
    const limits: ReferenceLimits = {
      opensslSha256: opensslSha256(3),
      nodeSha256: nodeSha256(Math.min(params.size, 1024 * MiB)),
      diskFsync: diskFsync(tmp, params.size),
      fsyncLatencyMs: fsyncLatency(tmp),
      loopbackDownload: loop.download,
      loopbackUpload: loop.upload,
    };
    log(
      `  sha256 openssl ${fmtNum(limits.opensslSha256)} MiB/s, node ${fmtNum(limits.nodeSha256)} MiB/s; dd fsync ${fmtNum(limits.diskFsync)} MiB/s, 4 KiB fdatasync ${fmtNum(limits.fsyncLatencyMs)} ms; ` +
        `loopback down ${fmtNum(limits.loopbackDownload)} MiB/s, up ${fmtNum(limits.loopbackUpload)} MiB/s`,
    );

    const berthMode = berthRunMode();
    log(`starting Berth (bin/berth.js runs ${berthMode}) and docker-registry`);
    const [berth, ref] = await Promise.all([startBerth(repoRoot, tmp), startReference(registryBin, tmp)]);
    servers.push(berth, ref);
    log(`  Berth pid ${berth.pid} at ${berth.base}; docker-registry pid ${ref.pid} at ${ref.base}`);
    const idleRss: Record<Kind, number> = { berth: rssOf(berth.pid), ref: rssOf(ref.pid) };

    const notes: Record<Kind, Set<string>> = { berth: new Set(), ref: new Set() };
    const ctxs: Record<Kind, Ctx> = {} as Record<Kind, Ctx>;
    for (const s of servers) {
      const client = new Client(s.base, 64);
      clients.push(client);
      ctxs[s.kind] = { server: s, client, params, big, tmp, state: {}, notes: notes[s.kind] };
      await ensureOrg(client, s, 'bench');
    }
    const names = repositories(params);

    const list = workloads(params);
    const results = new Map<string, Rounds>();
    for (const [wi, w] of list.entries()) {
      log(`workload: ${w.title}`);
      for (const s of servers) {
        await login(ctxs[s.kind].client, s, names);
        await w.setup?.(ctxs[s.kind]);
      }
      const rounds: Rounds = { berth: [], ref: [] };
      results.set(w.id, rounds);
      for (let round = 0; round < params.rounds; round++) {
        const order = (round + wi) % 2 === 0 ? [berth, ref] : [ref, berth];
        for (const s of order) {
          await login(ctxs[s.kind].client, s, names); // untimed: a fresh token each round
          await waitForIdleJobs(ctxs[s.kind].client, s); // untimed: jobs the setup caused
          syncDisk();
          const sampler = new RssSampler(s.pid, 50);
          const cpu0 = cpuSecondsOf(s.pid);
          const noise = new NoiseMeter(servers.map((x) => x.pid));
          let metrics: Record<string, number> = {};
          try {
            try {
              metrics = await w.run(ctxs[s.kind], round);
            } finally {
              metrics.cpu = cpuSecondsOf(s.pid) - cpu0;
              metrics.others = noise.stop();
            }
            // The background jobs this round caused (SBOMs of the images it pushed) run now,
            // untimed, before anyone's next round; their CPU is reported, their memory counts.
            const drain = await waitForIdleJobs(ctxs[s.kind].client, s);
            if (s.kind === 'berth') {
              Object.assign(metrics, { jobs: Object.values(drain.pending).reduce((a, n) => a + n, 0), jobs_s: drain.seconds, jobs_cpu: drain.cpu });
              const kinds = Object.keys(drain.pending).sort().join(', ');
              if (kinds) notes.berth.add(`jobs left running or due by a round of "${w.title}": ${kinds}`);
            }
          } finally {
            metrics.rss = sampler.stop();
          }
          if (s.proc.exitCode !== null || s.proc.signalCode !== null) throw new Error(`${s.label} died during ${w.title}`);
          rounds[s.kind].push(metrics);
          const shown = Object.entries(metrics)
            .map(([k, v]) => `${k}=${k === 'rss' ? `${fmtNum(v / MiB)}MiB` : k === 'cpu' ? `${fmtNum(v)}s` : k === 'others' ? `${v.toFixed(2)}cores` : fmtNum(v)}`)
            .join(' ');
          log(`  round ${round + 1}/${params.rounds} ${LABEL[s.kind].padEnd(15)} ${shown}`);
        }
      }
    }

    // Rows only Berth has: against this machine's ceilings, tag scale, --workers 2 vs 1.
    let extra: string | undefined;
    if (process.env.BENCH_BERTH_ONLY !== '0') {
      await stopProcess(ref.proc); // idle from here on; its memory back to the page cache
      extra = await berthOnly({ params, tmp, repoRoot, berth, big, tagScale: envList('BENCH_TAG_SCALE', [1000, 10_000, 100_000]), tagHttp: envInt('BENCH_TAG_HTTP', 1000, 0), log });
    }

    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => stopProcess(s.proc)));

    const input: ReportInput = {
      extra,
      date: new Date(),
      params,
      workloads: list,
      results,
      idleRss,
      limits,
      machine: machineInfo(tmp),
      berthMode,
      notes,
      durationS: since(started),
      env: Object.entries({
        BENCH_ROUNDS: params.rounds,
        BENCH_SIZE_MB: params.size / MiB,
        BENCH_CHUNK_MB: params.chunk / MiB,
        BENCH_WRK_SECONDS: params.wrkSeconds,
        BENCH_WRK_CONNECTIONS: params.wrkConnections,
        BENCH_SMALL_BLOBS: params.smallBlobs,
        BENCH_SMALL_KB: params.smallSize / 1024,
        BENCH_TAGS: params.tags,
        BENCH_LAYERS: params.layers,
        BENCH_LAYER_MB: params.layerSize / MiB,
        BENCH_RANGE_REQUESTS: params.rangeRequests,
        BENCH_TAG_SCALE: envList('BENCH_TAG_SCALE', [1000, 10_000, 100_000]).join(','),
        BENCH_TAG_HTTP: envInt('BENCH_TAG_HTTP', 1000, 0),
      })
        .map(([k, v]) => `\`${k}=${v}\``)
        .join(', '),
    };
    const md = markdown(input);
    process.stdout.write(`\n${table(mainRows(input))}\n\n${table(rssRows(input))}\n\n${table(cpuRows(input))}\n\n`);
    if (output !== 'none' && output !== '-') {
      // A hand-written section at the end ("## Notes", kept across runs) survives the rewrite.
      const previous = existsSync(output) ? readFileSync(output, 'utf8') : '';
      const at = previous.indexOf(NOTES_HEADING);
      writeFileSync(output, at >= 0 ? `${md}\n${previous.slice(at)}` : md);
      log(`wrote ${path.relative(process.cwd(), output) || output}`);
    }
    log(`total ${since(started).toFixed(0)} s`);
  } finally {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => stopProcess(s.proc).catch(() => undefined)));
    cleanupSync();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
