import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { ClusterMetrics } from '../http/metrics.ts';
import { type Config, workerCount } from '../config/schema.ts';
import { type CreateOptions, createBerth, createLogger, serve } from '../main.ts';
import { serveClusterCounters } from '../core/limits/counters.ts';

/**
 * `berth serve`: one process, or a supervisor and `workers` serving processes (node:cluster)
 * sharing the listening socket, the data folder and the database (SQLite in WAL mode, or
 * PostgreSQL). Every serving process is a full Berth: the same design that lets several nodes
 * share PostgreSQL and S3 (docs/architecture.md, scale-out) makes it correct with several
 * processes on one host. See docs/performance.md.
 */
export async function runServe(config: Config): Promise<void> {
  const logger = createLogger(config);
  if (cluster.isWorker) return serveProcess(config, logger.child({ worker: cluster.worker?.id }), { clusterMetrics: workerMetrics(), clusterCounters: true });
  const n = workerCount(config);
  if (n <= 1) return serveProcess(config, logger, {});
  return supervise(config, logger, n);
}

function printGeneratedPassword(password: string | undefined): void {
  if (!password) return;
  // Printed once, to the terminal only: never through the logger.
  process.stdout.write(
    [
      '',
      '='.repeat(72),
      '  First start: Berth created the site administrator.',
      '',
      '    username: admin',
      `    password: ${password}`,
      '',
      '  This password is shown only now. Change it after signing in:',
      '    berth login -u admin --password-stdin   (then)   berth passwd',
      '  or choose it before the first start with BERTH_ADMIN_PASSWORD.',
      '='.repeat(72),
      '',
      '',
    ].join('\n'),
  );
}

/** Serves until SIGINT/SIGTERM (or, as a worker, until the supervisor is gone), then drains. */
async function serveProcess(config: Config, logger: Logger, opts: CreateOptions): Promise<void> {
  const { berth, address } = await serve(config, logger, opts);
  logger.info({ address, data: config.data }, `Berth listening on ${address}`);
  printGeneratedPassword(berth.generatedAdminPassword);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      logger.warn('shutdown grace period over: exiting');
      process.exit(1);
    }, config.shutdownGraceSeconds * 1000);
    force.unref();
    berth.close().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: e }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  if (config.tls.cert) {
    process.on('SIGHUP', () => {
      berth.reloadTls().then(
        () => logger.info({ cert: config.tls.cert }, 'reloaded the TLS certificate'),
        (e: unknown) => logger.error({ err: e }, 'TLS reload failed: still serving the previous certificate'),
      );
    });
  }
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  if (cluster.isWorker) process.on('disconnect', () => stop('supervisor gone'));
}

const METRICS_MESSAGE = 'berth:metrics';

/**
 * A worker's side of GET /metrics: prom-client in this process answers the supervisor's
 * collection with this worker's registry; rendering asks the supervisor for every worker's
 * metrics together (AggregatorRegistry: counters and histograms summed).
 */
function workerMetrics(): ClusterMetrics {
  let next = 0;
  const waiting = new Map<number, { resolve(text: string): void; reject(e: Error): void }>();
  process.on('message', (m: { type?: string; id?: number; text?: string; error?: string }) => {
    if (m?.type !== METRICS_MESSAGE || m.id === undefined) return;
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.text !== undefined) w.resolve(m.text);
    else w.reject(new Error(`collecting the workers' metrics failed: ${m.error ?? 'no answer'}`));
  });
  return {
    register: (local) => {
      new AggregatorRegistry(); // installs prom-client's answer to the supervisor's collection
      AggregatorRegistry.setRegistries([local]);
    },
    render: () =>
      new Promise<string>((resolve, reject) => {
        const id = next++;
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error("collecting the workers' metrics timed out"));
        }, 10_000);
        waiting.set(id, {
          resolve: (t) => (clearTimeout(timer), resolve(t)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        });
        process.send!({ type: METRICS_MESSAGE, id });
      }),
  };
}

/**
 * V8's young generation of a worker, per semi-space (MiB). V8's default on 64-bit is 16 MiB
 * (two semi-spaces: 32 MiB), which a server fills at once; 8 MiB keeps each worker ~16 MiB
 * smaller at every load measured, for twice as many scavenges (4 instead of 2 per 1,000
 * manifest GETs) and no measurable CPU. 4 MiB saved 8 MiB more but made uploads promote their
 * buffers and run mark-compacts (docs/performance.md, "Memory").
 */
export const WORKER_SEMI_SPACE_MB = 8;

/**
 * The node options of a worker: the supervisor's own, plus `--max-semi-space-size` unless the
 * operator chose one (on node's command line or in NODE_OPTIONS, which workers inherit).
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions = ''): string[] {
  const chosen = [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => /^--max[-_]semi[-_]space[-_]size(=|$)/.test(a));
  return chosen ? [...execArgv] : [...execArgv, `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`];
}

/**
 * Environment a worker gets on top of the supervisor's: glibc's malloc arenas capped at 2
 * unless the operator set MALLOC_ARENA_MAX. By default glibc gives threads arenas of their own
 * (up to 8 per core: node's main thread, libuv's pool, V8's helpers), and memory freed in them
 * is seldom returned: with 2, 10-20 MiB less resident memory per worker under uploads and
 * downloads (docs/performance.md, "Memory").
 */
export function workerEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return env.MALLOC_ARENA_MAX === undefined ? { MALLOC_ARENA_MAX: '2' } : {};
}

/** A worker that exits this many times within a minute means something is wrong: stop. */
const MAX_RESTARTS_PER_MINUTE = 5;

/**
 * The supervisor: prepares the data once (migrations, the first administrator, the token
 * signing key, upload data left by a crash) before any worker serves, starts `n` workers,
 * replaces one that dies, and on SIGINT/SIGTERM asks each to drain and waits for all.
 */
async function supervise(config: Config, logger: Logger, n: number): Promise<void> {
  const prepared = await createBerth(config, logger);
  const password = prepared.generatedAdminPassword;
  await prepared.close();

  // Workers accept from the shared listening socket themselves (the kernel spreads connections).
  // With node's default round-robin the supervisor accepts each connection and hands it to a
  // worker over IPC: one handed to a worker that was just killed hung until the client gave up,
  // and every connection cost the supervisor an accept and a message.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS) });
  // Rate-limit counters of workers on SQLite live here, one set for all (docs/limits.md).
  serveClusterCounters();
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (w, m: { type?: string; id?: number }) => {
    if (m?.type !== METRICS_MESSAGE) return;
    aggregator.clusterMetrics().then(
      (text) => w.isConnected() && w.send({ type: METRICS_MESSAGE, id: m.id, text }),
      (e: unknown) => w.isConnected() && w.send({ type: METRICS_MESSAGE, id: m.id, error: (e as Error).message }),
    );
  });
  const live = new Set<Worker>();
  const restarts: number[] = [];
  let stopping = false;
  let exitCode = 0;
  const fork = () => {
    const w = cluster.fork(workerEnv(process.env));
    live.add(w);
  };
  cluster.on('exit', (w, code, signal) => {
    live.delete(w);
    if (stopping) {
      if (code !== 0) exitCode = 1;
      if (live.size === 0) process.exit(exitCode);
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts[0]! < now - 60_000) restarts.shift();
    if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
      logger.fatal({ pid: w.process.pid, code, signal }, 'workers keep exiting: stopping');
      stop('worker failures', 1);
      return;
    }
    logger.error({ pid: w.process.pid, code, signal }, 'a worker exited: starting another');
    fork();
  });
  let listening = 0;
  cluster.on('listening', (_w, address) => {
    if (++listening === n) {
      logger.info({ address: `${address.address}:${address.port}`, workers: n }, `Berth listening with ${n} workers`);
      printGeneratedPassword(password);
    }
  });

  const stop = (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    logger.info({ signal, workers: live.size }, 'shutting down: workers finish their in-flight requests');
    if (live.size === 0) process.exit(exitCode);
    for (const w of live) w.process.kill('SIGTERM');
    // Each worker has the grace period itself; this only catches one that hangs past it.
    const force = setTimeout(() => {
      logger.warn('workers did not exit within the grace period: killing them');
      for (const w of live) w.process.kill('SIGKILL');
      process.exit(1);
    }, (config.shutdownGraceSeconds + 5) * 1000);
    force.unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A new TLS certificate: every worker re-reads it.
  process.on('SIGHUP', () => {
    for (const w of live) w.process.kill('SIGHUP');
  });
  for (let i = 0; i < n; i++) fork();
}
