/**
 * Runs the real `skopeo` client against a local Berth, isolated from the machine's own
 * configuration: a temporary HOME, an auth file that starts as `{"auths":{}}` (REGISTRY_AUTH_FILE
 * and --authfile; `login()` runs `skopeo login` into it), its own policy.json and
 * registries.conf, its own TMPDIR, and no proxy variables. Missing skopeo is an error, never a
 * skip.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onExit } from './e2e.ts';

export const SKOPEO = process.env.SKOPEO ?? 'skopeo';

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  /** Kill skopeo (by pid) after this many ms; default 5 minutes. */
  timeoutMs?: number;
  /** Written to skopeo's stdin (e.g. for --password-stdin). */
  input?: string;
  /** More environment (e.g. GODEBUG=http2debug=1). */
  env?: Record<string, string>;
}

export class SkopeoError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'SkopeoError';
  }
}

export interface Skopeo {
  /** The isolated folder (home, auth file, policy, tmp). */
  readonly dir: string;
  readonly authFile: string;
  /** `skopeo <global flags> <args…>`; rejects with SkopeoError on a non-zero exit. */
  run(args: string[], opts?: RunOptions): Promise<RunResult>;
  /**
   * `skopeo copy` with TLS verification off for docker:// ends and the isolated auth file.
   * `extra` goes before the two references (e.g. --all, --preserve-digests, --digestfile F).
   */
  copy(src: string, dest: string, extra?: string[], opts?: RunOptions): Promise<RunResult>;
  /** `skopeo inspect --raw`: the manifest bytes exactly as served. */
  inspectRaw(ref: string): Promise<Buffer>;
  /** `skopeo inspect` (parsed JSON). */
  inspect(ref: string): Promise<Record<string, unknown>>;
  /** `skopeo list-tags`: the tags in the order skopeo printed them. */
  listTags(ref: string): Promise<string[]>;
  /** `skopeo delete`. */
  delete(ref: string): Promise<RunResult>;
  /** `skopeo login --password-stdin` to `registry` (HOST:PORT); stores the credentials in the isolated auth file. */
  login(registry: string, username: string, password: string): Promise<RunResult>;
  /** Removes the isolated folder. */
  cleanup(): Promise<void>;
}

/** skopeo's version line; throws (never skips) when skopeo is not installed. */
export async function skopeoVersion(): Promise<string> {
  const r = await exec(SKOPEO, ['--version'], process.env as Record<string, string>, { timeoutMs: 30_000 });
  return r.stdout.toString('utf8').trim();
}

function exec(cmd: string, args: string[], env: Record<string, string>, opts: RunOptions): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...env, ...opts.env }, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    const out: Buffer[] = [];
    let err = '';
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString('utf8');
      if (err.length > 1024 * 1024) err = err.slice(-1024 * 1024);
    });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }, timeoutMs);
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (e.code === 'ENOENT') {
        reject(new Error(`${cmd} is not installed or not on PATH: the e2e tests need the real skopeo client (apt-get install -y skopeo)`));
      } else {
        reject(e);
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      if (code === 0) {
        resolve({ stdout, stderr: err });
        return;
      }
      const why = signal ? `killed by ${signal}${signal === 'SIGKILL' ? ` (timeout ${timeoutMs} ms?)` : ''}` : `exit code ${code}`;
      reject(new SkopeoError(`${cmd} ${args.join(' ')} failed (${why}):\n${err}`, code, err));
    });
  });
}

const isDocker = (ref: string) => ref.startsWith('docker://');

/** An isolated skopeo. Call cleanup() (e.g. in t.after) to remove its folder. */
export async function createSkopeo(): Promise<Skopeo> {
  await skopeoVersion(); // fails loudly, with an install hint, when skopeo is missing
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-e2e-skopeo-'));
  const unregister = onExit(() => rmSync(dir, { recursive: true, force: true }));
  const p = (...s: string[]) => path.join(dir, ...s);
  for (const d of ['home', 'run', 'config', 'docker', 'tmp', 'registries.d']) await fsp.mkdir(p(d), { recursive: true });
  const authFile = p('auth.json');
  await fsp.writeFile(authFile, JSON.stringify({ auths: {} }));
  await fsp.writeFile(p('policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await fsp.writeFile(p('registries.conf'), 'unqualified-search-registries = []\n');

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: p('home'),
    XDG_RUNTIME_DIR: p('run'),
    XDG_CONFIG_HOME: p('config'),
    DOCKER_CONFIG: p('docker'),
    REGISTRY_AUTH_FILE: authFile,
    CONTAINERS_REGISTRIES_CONF: p('registries.conf'),
    TMPDIR: p('tmp'),
  };
  const global = ['--policy', p('policy.json'), '--registries.d', p('registries.d'), '--tmpdir', p('tmp')];

  const run = (args: string[], opts: RunOptions = {}) => exec(SKOPEO, [...global, ...args], env, opts);

  return {
    dir,
    authFile,
    run,
    copy(src, dest, extra = [], opts) {
      const flags = ['--authfile', authFile];
      if (isDocker(src)) flags.push('--src-tls-verify=false');
      if (isDocker(dest)) flags.push('--dest-tls-verify=false');
      return run(['copy', ...flags, ...extra, src, dest], opts);
    },
    async inspectRaw(ref) {
      return (await run(['inspect', '--raw', '--tls-verify=false', '--authfile', authFile, ref])).stdout;
    },
    async inspect(ref) {
      const r = await run(['inspect', '--tls-verify=false', '--authfile', authFile, ref]);
      return JSON.parse(r.stdout.toString('utf8')) as Record<string, unknown>;
    },
    async listTags(ref) {
      const r = await run(['list-tags', '--tls-verify=false', '--authfile', authFile, ref]);
      const doc = JSON.parse(r.stdout.toString('utf8')) as { Tags: string[] | null };
      return doc.Tags ?? [];
    },
    delete(ref) {
      return run(['delete', '--tls-verify=false', '--authfile', authFile, ref]);
    },
    login(registry, username, password) {
      return run(['login', '--tls-verify=false', '--authfile', authFile, '--username', username, '--password-stdin', registry], {
        input: `${password}\n`,
      });
    },
    async cleanup() {
      await fsp.rm(dir, { recursive: true, force: true });
      unregister();
    },
  };
}
