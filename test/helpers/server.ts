/**
 * Runs Berth as a real child process for end-to-end tests: `node bin/berth.js serve` (or
 * `npx berth serve`) on 127.0.0.1 and a free port, with a fresh temporary data folder.
 * The child gets its own process group; stop() ends that group (SIGTERM, then SIGKILL) by its
 * id and removes the data folder. Servers still running when the test process exits (or gets
 * SIGINT/SIGTERM) are killed by an exit hook, so a crashed test never leaves one behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onExit } from './e2e.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The newest modification time of any file under `dir`. */
export function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Whether bin/berth.js will run the compiled dist/ (fresh build) rather than src/ through tsx. */
export function runsBuild(): boolean {
  const built = path.join(ROOT, 'dist', 'cli', 'index.js');
  return existsSync(built) && statSync(built).mtimeMs >= newestMtime(path.join(ROOT, 'src'));
}

/**
 * Makes bin/berth.js run the compiled build, as an installed Berth does (`npm ci` builds
 * dist/): runs `tsc -p tsconfig.build.json` (what `npm run build` runs) when dist/ is older
 * than src/. Returns whether it had to build.
 */
export async function ensureBuild(): Promise<boolean> {
  if (runsBuild()) return false;
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  await new Promise<void>((resolve, reject) => {
    execFile(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, timeout: 180_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`npm run build (tsc -p tsconfig.build.json) failed: ${err.message}\n${stdout}${stderr}`));
      else resolve();
    });
  });
  if (!runsBuild()) throw new Error('dist/ is still older than src/ after building');
  return true;
}

export interface StartBerthOptions {
  /** `node` (default): `node bin/berth.js serve`; `npx`: `npx berth serve` in the project root. */
  launcher?: 'node' | 'npx';
  /** `flags` (default): `--listen`/`--data`; `env`: `BERTH_LISTEN`/`BERTH_DATA` only. */
  configVia?: 'flags' | 'env';
  /** More arguments after `serve …`. */
  extraArgs?: string[];
  /** More environment (after the defaults). */
  env?: Record<string, string>;
  /** Time allowed for /healthz to answer (default 30 s). */
  startTimeoutMs?: number;
  /** Organisations to create (as the administrator) once the server is up. */
  orgs?: string[];
}

export interface Credentials {
  username: string;
  password: string;
}

export interface BerthServer {
  /** Pid of the spawned process (for `node`, the server itself; for `npx`, npm, the group leader). */
  readonly pid: number;
  readonly port: number;
  /** `127.0.0.1:PORT`, as used in image references. */
  readonly address: string;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly dataDir: string;
  /** The site administrator created on first start (BERTH_ADMIN_PASSWORD). */
  readonly admin: Credentials;
  /** `Basic …` for the administrator. */
  readonly adminAuthorization: string;
  /** Everything the server wrote to stdout and stderr so far (last 256 KiB). */
  output(): string;
  /** Whether the process has exited. */
  exited(): boolean;
  /** Stops the server (idempotent) and removes its data folder. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port'));
        return;
      }
      srv.close(() => resolve(addr.port));
    });
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', done);
      resolve(false);
    }, ms);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', done);
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts Berth and resolves once GET /healthz answers 200 and GET /v2/ accepts the
 * administrator's credentials; then creates `opts.orgs`.
 */
export async function startBerth(opts: StartBerthOptions = {}): Promise<BerthServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      // another process may have taken the port between freePort() and the bind
      if (attempt < 3 && /EADDRINUSE/.test((e as Error).message)) continue;
      throw e;
    }
  }
}

async function startOnce(opts: StartBerthOptions): Promise<BerthServer> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const url = `http://${address}`;
  const dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-e2e-data-'));
  const launcher = opts.launcher ?? 'node';
  const via = opts.configVia ?? 'flags';

  const args = via === 'flags' ? ['serve', '--listen', address, '--data', dataDir] : ['serve'];
  args.push(...(opts.extraArgs ?? []));
  // A password given in opts.env (e.g. several nodes sharing one database) is the admin's.
  const admin: Credentials = { username: 'admin', password: opts.env?.BERTH_ADMIN_PASSWORD ?? randomBytes(18).toString('base64url') };
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  for (const k of Object.keys(env)) if (k.startsWith('BERTH_')) delete env[k];
  delete env.NODE_OPTIONS; // e.g. `--import tsx` from the test runner would load the loader into the server too
  env.BERTH_LOG_LEVEL = 'warn';
  // One serving process unless a test asks for more (--workers / BERTH_WORKERS in opts).
  env.BERTH_WORKERS = '1';
  env.BERTH_ADMIN_PASSWORD = admin.password;
  if (via === 'env') {
    env.BERTH_LISTEN = address;
    env.BERTH_DATA = dataDir;
  }
  // npx must resolve the project's own bin, never reach for a registry
  if (launcher === 'npx') env.npm_config_offline = 'true';
  Object.assign(env, opts.env ?? {});

  const [cmd, argv] =
    launcher === 'node' ? [process.execPath, [path.join(ROOT, 'bin', 'berth.js'), ...args]] : ['npx', ['berth', ...args]];
  const child = spawn(cmd, argv, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString('utf8');
    if (out.length > 256 * 1024) out = out.slice(-256 * 1024);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const spawned = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!));
    child.once('error', reject);
  }).catch(async (e: unknown) => {
    await fsp.rm(dataDir, { recursive: true, force: true });
    throw new Error(`cannot spawn ${cmd}: ${(e as Error).message}`);
  });
  const pid = spawned;
  const unregister = onExit(() => {
    killGroup(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  let stopped: Promise<void> | undefined;
  const server: BerthServer = {
    pid,
    port,
    address,
    url,
    dataDir,
    admin,
    adminAuthorization: `Basic ${Buffer.from(`${admin.username}:${admin.password}`).toString('base64')}`,
    output: () => out,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop() {
      stopped ??= (async () => {
        if (!server.exited()) {
          killGroup(pid, 'SIGTERM');
          if (!(await waitExit(child, 10_000))) {
            killGroup(pid, 'SIGKILL');
            await waitExit(child, 5_000);
          }
        }
        // npx: npm may exit before its child; make sure nothing of the group is left
        killGroup(pid, 'SIGKILL');
        unregister();
        await fsp.rm(dataDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  try {
    for (;;) {
      if (server.exited()) {
        throw new Error(`berth exited during startup (code ${child.exitCode}, signal ${child.signalCode}):\n${out}`);
      }
      let last = 'no answer';
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        last = `/healthz ${res.status}`;
        if (res.status === 200) {
          // only our server knows this admin password: proves the port is ours, not a racing process's
          const v2 = await fetch(`${url}/v2/`, { headers: { Authorization: server.adminAuthorization }, signal: AbortSignal.timeout(2_000) });
          await v2.arrayBuffer();
          last = `/v2/ as admin ${v2.status}`;
          if (v2.status === 200) break;
        }
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`berth did not become ready at ${url} in time (${last}):\n${out}`);
      await sleep(100);
    }
    for (const org of opts.orgs ?? []) await createOrg(server, org);
    return server;
  } catch (e) {
    await server.stop();
    throw e;
  }
}

/** Creates organisation `name` through the management API, as the administrator. */
export async function createOrg(srv: BerthServer, name: string): Promise<void> {
  const res = await fetch(`${srv.url}/api/v1/orgs`, {
    method: 'POST',
    headers: { Authorization: srv.adminAuthorization, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name }),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /api/v1/orgs ${name} → ${res.status}: ${text.slice(0, 500)}`);
}

export interface RssSampler {
  /** Stops sampling; resolves with the results. */
  stop(): Promise<RssReport>;
}

export interface RssReport {
  /** Highest VmRSS sampled, in bytes. */
  peakBytes: number;
  /** VmHWM (the kernel's own peak resident set, since process start) at the last sample, in bytes. */
  hwmBytes: number;
  samples: number;
  /** VmRSS at the first sample, in bytes. */
  firstBytes: number;
}

async function readStatusKb(pid: number): Promise<{ rss: number; hwm: number } | undefined> {
  try {
    const text = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(text);
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(text);
    if (!rss || !hwm) return undefined;
    return { rss: Number(rss[1]), hwm: Number(hwm[1]) };
  } catch {
    return undefined;
  }
}

/** Samples VmRSS of `pid` from /proc/<pid>/status every `intervalMs`. */
export async function sampleRss(pid: number, intervalMs = 100): Promise<RssSampler> {
  const first = await readStatusKb(pid);
  if (!first) throw new Error(`cannot read /proc/${pid}/status`);
  const report: RssReport = { peakBytes: first.rss * 1024, hwmBytes: first.hwm * 1024, samples: 1, firstBytes: first.rss * 1024 };
  let busy = false;
  const take = async () => {
    const s = await readStatusKb(pid);
    if (!s) return;
    report.samples++;
    report.peakBytes = Math.max(report.peakBytes, s.rss * 1024);
    report.hwmBytes = s.hwm * 1024;
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void take().finally(() => (busy = false));
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await take();
      return report;
    },
  };
}
