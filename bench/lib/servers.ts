// Starting, watching and stopping the two registries, and sampling their memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client } from './http.ts';
import { sleep } from './util.ts';

export type Kind = 'berth' | 'ref';

export interface Server {
  kind: Kind;
  /** Basic credentials of the administrator, for a registry with auth. */
  admin?: { username: string; password: string };
  /** Display name. */
  label: string;
  pid: number;
  base: string;
  logFile: string;
  proc: ChildProcess;
  /** Where the server keeps a committed blob's bytes (its storage layout), to free them behind its back. */
  blobFile(digest: string): string;
  /** Berth's SQLite database file. */
  database?: string;
}

/** Every child process still running, for cleanup on error or a signal. */
export const children = new Set<ChildProcess>();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function track(proc: ChildProcess): void {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
}

function tail(file: string, n = 2000): string {
  try {
    const t = readFileSync(file, 'utf8');
    return t.slice(-n);
  } catch {
    return '';
  }
}

async function waitReady(srv: Server, timeoutMs = 30_000): Promise<void> {
  const c = new Client(srv.base, 1);
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (srv.proc.exitCode !== null || srv.proc.signalCode !== null) {
        throw new Error(`${srv.label} exited during startup (${srv.proc.exitCode ?? srv.proc.signalCode}):\n${tail(srv.logFile)}`);
      }
      try {
        // 401 is ready too: Berth challenges anonymous clients on the version check.
        const r = await c.request('GET', '/v2/');
        if (r.status === 200 || r.status === 401) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`${srv.label} did not answer GET /v2/ within ${timeoutMs / 1000}s:\n${tail(srv.logFile)}`);
  } finally {
    c.close();
  }
}

function launch(
  kind: Kind,
  label: string,
  cmd: string,
  args: string[],
  cwd: string,
  logFile: string,
  port: number,
  env: NodeJS.ProcessEnv = process.env,
): Server {
  const fd = openSync(logFile, 'a');
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  track(proc);
  if (proc.pid === undefined) throw new Error(`could not start ${label} (${cmd})`);
  return { kind, label, pid: proc.pid, base: `http://127.0.0.1:${port}`, logFile, proc, blobFile: () => '' };
}

/**
 * Berth from this checkout: `node bin/berth.js serve` on a fresh data folder, log level warn,
 * with a known first-start administrator password (BERTH_ADMIN_PASSWORD); `args` go after
 * `serve …` (e.g. `--workers 2`).
 */
export async function startBerth(repoRoot: string, dir: string, opts: { name?: string; args?: string[] } = {}): Promise<Server> {
  const port = await freePort();
  const name = opts.name ?? 'berth';
  const data = path.join(dir, `${name}-data`);
  const password = randomBytes(18).toString('base64url');
  // The caller's BERTH_* settings must not leak into the benchmarked server.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_')));
  env.BERTH_ADMIN_PASSWORD = password;
  const srv = launch(
    'berth',
    'Berth',
    process.execPath,
    [path.join(repoRoot, 'bin/berth.js'), 'serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--log-level', 'warn', ...(opts.args ?? [])],
    repoRoot,
    path.join(dir, `${name}.log`),
    port,
    env,
  );
  srv.admin = { username: 'admin', password };
  srv.database = path.join(data, 'berth.db');
  // FsBlobStore: <data>/storage/blobs/<alg>/<first two hex>/<hex>
  srv.blobFile = (digest) => {
    const [alg, hex] = digest.split(':') as [string, string];
    return path.join(data, 'storage', 'blobs', alg, hex.slice(0, 2), hex);
  };
  await waitReady(srv);
  return srv;
}

/** The CNCF distribution reference registry with the filesystem driver and deletes enabled. */
export async function startReference(binary: string, dir: string): Promise<Server> {
  const port = await freePort();
  const root = path.join(dir, 'registry-data');
  const config = path.join(dir, 'registry.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${JSON.stringify(root)}`,
      '  delete:',
      '    enabled: true',
      '  cache:',
      '    blobdescriptor: inmemory',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: berth-bench-not-a-secret',
      '',
    ].join('\n'),
  );
  const srv = launch('ref', 'docker-registry', binary, ['serve', config], dir, path.join(dir, 'registry.log'), port);
  // distribution's filesystem driver: <root>/docker/registry/v2/blobs/<alg>/<first two hex>/<hex>/data
  srv.blobFile = (digest) => {
    const [alg, hex] = digest.split(':') as [string, string];
    return path.join(root, 'docker', 'registry', 'v2', 'blobs', alg, hex.slice(0, 2), hex, 'data');
  };
  await waitReady(srv);
  return srv;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stopProcess(proc: ChildProcess, graceMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** Kills every tracked child at once (synchronous; for exit handlers). */
export function killAllChildrenSync(): void {
  for (const p of children) {
    try {
      if (p.pid !== undefined) process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

/** `pid` and its child processes (Berth with `--workers`: the supervisor and its workers). */
export function processTree(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return [pid, ...(kids ? kids.split(/\s+/).map(Number) : [])];
  } catch {
    return [pid];
  }
}

function ownRss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Resident set size in bytes (VmRSS) of the largest process of `pid`'s tree (for Berth with
 * several workers: the biggest serving process), or 0 when unreadable.
 */
export function rssOf(pid: number): number {
  return Math.max(...processTree(pid).map(ownRss));
}

const CLK_TCK = 100; // USER_HZ: the unit of utime/stime in /proc/<pid>/stat on Linux

function ownCpu(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm) ": state is field 3, utime 14, stime 15 (1-based).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** CPU time (user + system) `pid` and its child processes have used so far, in seconds. */
export function cpuSecondsOf(pid: number): number {
  return processTree(pid).reduce((a, p) => a + ownCpu(p), 0);
}

/** CPU seconds this process and its reaped children (wrk, ab, dd, …) have used. */
export function ownCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/**
 * Busy CPU seconds of the whole machine so far (all CPUs, /proc/stat): user, nice, system and
 * steal; interrupt time is left out (loopback networking is mostly softirq work done for the
 * servers and the client themselves).
 */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, user, nice, system, , , , , steal] = line.trim().split(/\s+/).map(Number);
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (steal ?? 0)) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** CPU seconds used so far by kernel threads (writeback, journaling, ksoftirqd…: work done for everyone). */
export function kernelThreadsSeconds(): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // f[1] is the parent pid: kernel threads are kthreadd (2) and its children.
      if (e === '2' || f[1] === '2') total += (Number(f[11]) + Number(f[12])) / CLK_TCK;
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/**
 * Measures how much CPU other user processes on the machine used over an interval: busy time
 * minus the bench itself (with its load generators), both servers and kernel threads. On a
 * shared machine this is the noise behind a round's number.
 */
export class NoiseMeter {
  private readonly t0 = performance.now();
  private readonly busy0 = machineBusySeconds();
  private readonly own0 = ownCpuSeconds();
  private readonly kernel0 = kernelThreadsSeconds();
  private readonly servers0: number[];

  constructor(private readonly pids: number[]) {
    this.servers0 = pids.map(cpuSecondsOf);
  }

  /** Average number of CPUs kept busy by other processes since construction. */
  stop(): number {
    const wall = (performance.now() - this.t0) / 1000;
    const servers = this.pids.reduce((a, pid, i) => a + cpuSecondsOf(pid) - this.servers0[i]!, 0);
    const kernel = kernelThreadsSeconds() - this.kernel0;
    const others = machineBusySeconds() - this.busy0 - (ownCpuSeconds() - this.own0) - servers - kernel;
    return wall > 0 ? Math.max(0, others) / wall : 0;
  }
}

/** Polls VmRSS every `intervalMs` and keeps the maximum. */
export class RssSampler {
  private max = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 50,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const v = rssOf(this.pid);
    if (v > this.max) this.max = v;
  }

  /** Stops sampling; returns the peak in bytes. */
  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.max;
  }
}
