/**
 * `berth push OWNER/REPOSITORY[/IMAGE[:TAG]] FILE` — imports a `docker save` tarball (legacy or
 * Docker 25+ OCI form), an oci-archive or an OCI layout folder into a registry over the OCI
 * Distribution API, so it works against a remote Berth or any OCI registry. And
 * `berth pull NAME[:TAG] --output oci-dir|oci-archive|docker-archive PATH` for the way back.
 * See docs/import.md.
 */
import { type Command, Option } from 'commander';
import { readStdin } from './input.ts';
import { COMPRESSIONS, type Compression, ImportError, importArchive, parseDestination, RegistryClient, type ImportEvent } from '../core/import/index.ts';
import { readLogin } from './client.ts';
import { pullCommand } from './pull.ts';

export interface RegistryOptions {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  insecure?: boolean;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** The registry URL: --server, $BERTH_URL, the login file's server, else http://localhost:5000. */
export function serverUrl(server: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const login = readLogin(env);
  let url = (server ?? env.BERTH_URL ?? login?.server ?? 'http://localhost:5000').trim();
  if (!/^[a-z]+:\/\//i.test(url)) url = `${LOCAL_HOSTS.has(url.split(':')[0]!) ? 'http' : 'https'}://${url}`;
  return url.replace(/\/+$/, '');
}

/**
 * Credentials for the registry, in order: --username/--password (or $BERTH_PASSWORD); an API
 * key from $BERTH_API_KEY or the login file (for the login's server), sent as Basic with the
 * key's username ($BERTH_USERNAME, the login file's, or asked of the server's /api/v1/whoami);
 * else none (anonymous).
 */
export async function registryCredentials(
  opts: RegistryOptions,
  server: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ username?: string; password?: string }> {
  if (opts.username !== undefined) {
    const password = opts.passwordStdin ? await readStdin() : (opts.password ?? env.BERTH_PASSWORD);
    if (!password) throw new Error('give --password or --password-stdin with --username, or set BERTH_PASSWORD');
    return { username: opts.username, password };
  }
  if (opts.password !== undefined || opts.passwordStdin) throw new Error('--password needs --username');
  const login = readLogin(env);
  const fromLogin = login?.apiKey && login.server.replace(/\/+$/, '') === server ? login : undefined;
  const key = env.BERTH_API_KEY ?? fromLogin?.apiKey;
  if (!key) return {};
  let username = env.BERTH_USERNAME ?? (fromLogin && fromLogin.apiKey === key ? fromLogin.username : undefined);
  if (!username) {
    try {
      const res = await fetch(`${server}/api/v1/whoami`, { headers: { authorization: `Bearer ${key}` } });
      const me = (await res.json()) as { username?: string };
      if (res.ok && me.username) username = me.username;
    } catch {
      /* not a Berth, or unreachable: said below */
    }
  }
  if (!username) throw new Error(`cannot tell whose API key this is: set BERTH_USERNAME (or use --username/--password)`);
  return { username, password: key };
}

/** Plain http only to this machine, unless --insecure. */
export function checkTransport(server: string, insecure: boolean | undefined): void {
  const url = new URL(server);
  if (url.protocol === 'http:' && !insecure && !LOCAL_HOSTS.has(url.hostname)) {
    throw new Error(`refusing plain http to ${url.host}: use https://, or --insecure to allow it`);
  }
}

// ---------------------------------------------------------------------------------------------
// Progress

const MiB = 1024 * 1024;

export function human(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < MiB) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${(bytes / (1024 * MiB)).toFixed(2)} GiB`;
}

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--';
  if (s < 60) return `${Math.ceil(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.ceil(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function bar(done: number, total: number, width = 24): string {
  const f = total > 0 ? Math.min(1, done / total) : 1;
  const n = Math.round(f * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

/** A transfer event as both push (ImportEvent) and pull (ExportEvent) emit them. */
export type TransferEvent =
  | { type: 'blob'; state: string; digest: string; size: number; label: string; name: string }
  | { type: 'progress'; digest: string; bytes: number; size: number; name: string }
  | { type: string; [k: string]: unknown };

/**
 * Renders transfer events: on a TTY, a live bar per blob in flight and an overall line (bytes,
 * rate, ETA); otherwise one plain line per step; `json` writes every event as one NDJSON line
 * to stdout; `quiet` nothing. `verb` is "upload" or "download".
 */
export class Progress {
  private readonly active = new Map<string, { label: string; size: number; bytes: number; started: number }>();
  private total = 0;
  private skipped = 0;
  private finished = 0;
  private started = 0;
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly mode: 'tty' | 'plain' | 'json' | 'quiet',
    private readonly verb: { ing: string; ed: string },
    private readonly err: NodeJS.WriteStream = process.stderr,
    private readonly out: NodeJS.WriteStream = process.stdout,
  ) {
    if (mode === 'tty') {
      this.timer = setInterval(() => this.draw(), 100);
      this.timer.unref();
    }
  }

  static mode(opts: { json?: boolean; quiet?: boolean }, err: NodeJS.WriteStream = process.stderr): 'tty' | 'plain' | 'json' | 'quiet' {
    if (opts.json) return 'json';
    if (opts.quiet) return 'quiet';
    return err.isTTY ? 'tty' : 'plain';
  }

  /** A line that stays (printed above the live block on a TTY). */
  say(line: string): void {
    if (this.mode === 'json' || this.mode === 'quiet') return;
    this.clear();
    this.err.write(`${line}\n`);
    this.draw();
  }

  setTotal(bytes: number): void {
    this.total = bytes;
  }

  event(e: TransferEvent): void {
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify(e)}\n`);
      return;
    }
    if (e.type === 'blob') {
      const b = e as Extract<TransferEvent, { type: 'blob'; state: string }>;
      const key = `${b.name}\0${b.digest}`;
      if (b.state === 'exists' || b.state === 'mounted') {
        this.skipped += b.size;
        this.say(`${short(b.digest)}  ${b.state === 'mounted' ? 'mounted' : 'exists, skipped'}  ${human(b.size)}  ${b.label}`);
      } else if (b.state === 'start') {
        this.started ||= Date.now();
        this.active.set(key, { label: b.label, size: b.size, bytes: 0, started: Date.now() });
        if (this.mode === 'plain') this.say(`${short(b.digest)}  ${this.verb.ing} ${human(b.size)}  ${b.label}`);
      } else if (b.state === 'done') {
        const a = this.active.get(key);
        this.active.delete(key);
        this.finished += b.size;
        const secs = a ? (Date.now() - a.started) / 1000 : 0;
        const rate = secs > 0 ? `, ${human(b.size / secs)}/s` : '';
        this.say(`${short(b.digest)}  ${this.verb.ed} ${human(b.size)} in ${secs.toFixed(1)}s${rate}  ${b.label}`);
      }
    } else if (e.type === 'progress') {
      const p = e as Extract<TransferEvent, { type: 'progress'; bytes: number }>;
      const a = this.active.get(`${p.name}\0${p.digest}`);
      if (a) a.bytes = p.bytes;
    }
  }

  private clear(): void {
    if (this.mode !== 'tty' || this.lines === 0) return;
    this.err.write(`\x1b[${this.lines}A\x1b[J`);
    this.lines = 0;
  }

  private draw(): void {
    if (this.mode !== 'tty') return;
    this.clear();
    if (this.active.size === 0) return;
    const cols = this.err.columns || 100;
    const now = Date.now();
    const out: string[] = [];
    let flowing = 0;
    for (const [key, a] of this.active) {
      flowing += a.bytes;
      const secs = (now - a.started) / 1000;
      const rate = secs > 0 ? a.bytes / secs : 0;
      const eta = rate > 0 ? (a.size - a.bytes) / rate : Infinity;
      const digest = key.split('\0')[1]!;
      out.push(`${short(digest)}  ${bar(a.bytes, a.size)} ${human(a.bytes)}/${human(a.size)}  ${human(rate)}/s  ETA ${duration(eta)}  ${a.label}`);
    }
    const moved = this.finished + flowing;
    const secs = this.started ? (now - this.started) / 1000 : 0;
    const rate = secs > 0 ? moved / secs : 0;
    const left = Math.max(0, this.total - this.skipped - moved);
    out.push(
      `total ${bar(moved + this.skipped, this.total)} ${human(moved + this.skipped)}/${human(this.total)}  ${human(rate)}/s  ETA ${duration(rate > 0 ? left / rate : Infinity)}`,
    );
    for (const l of out) this.err.write(`${l.length > cols - 1 ? l.slice(0, cols - 2) + '…' : l}\n`);
    this.lines = out.length;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.clear();
  }
}

// ---------------------------------------------------------------------------------------------

interface PushOptions extends RegistryOptions {
  quiet?: boolean;
  concurrency: string;
  compress?: Compression;
}

/** Aborts on SIGINT/SIGTERM (nothing is tagged), then exits 130. A closed stdout (`| head`) ends quietly. */
export function interruptible(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onPipe = (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
  };
  process.stdout.on('error', onPipe);
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.stdout.off('error', onPipe);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export function pushCommands(program: Command): void {
  program
    .command('push <destination> <file>')
    .description('import a docker save tarball, an oci-archive or an OCI layout folder: berth push OWNER/REPOSITORY[/IMAGE[:TAG]] FILE')
    .option('-u, --username <name>', 'registry username (default: the login file or $BERTH_API_KEY)')
    .option('-p, --password <password>', 'password or API key (default: $BERTH_PASSWORD)')
    .option('--password-stdin', 'read the password or API key from standard input')
    .option('-q, --quiet', 'no progress; print only the pushed references')
    .option('-j, --concurrency <n>', 'parallel blob uploads', '3')
    .option('--insecure', 'allow plain http to a remote host and skip TLS verification')
    .addOption(
      new Option('--compress <algorithm>', 'compress uncompressed layers (legacy docker save) before pushing: layer and manifest digests change, the image ID stays').choices([
        ...COMPRESSIONS,
      ]),
    )
    .addHelpText(
      'after',
      '\nBy default layers are pushed as they are in the archive, so every digest is the archive\'s\n' +
        '(a legacy docker save: uncompressed layers whose digests are their diffIDs). --compress gzip\n' +
        'or zstd compresses those layers first (zstd needs the zstd command): smaller pulls, but new\n' +
        'layer and manifest digests; the config and so the image ID are unchanged. With zstd a Docker\n' +
        'manifest becomes an OCI manifest (Docker schema2 has no zstd layer type).\n' +
        '\nWithout IMAGE, each image is named after the last part of its archive name (RepoTags,\n' +
        'io.containerd.image.name); without TAG, it keeps its archive tags. See docs/import.md.\n' +
        'Server: --server, $BERTH_URL or the login file. --json writes NDJSON events.\n\n' +
        'Examples:\n' +
        '  $ docker save myapp:1.0 -o myapp.tar && berth push acme/prod myapp.tar\n' +
        '  $ echo "$API_KEY" | berth push -u alice --password-stdin acme/prod/web:2.1 web.oci.tar\n' +
        '  $ berth push --compress zstd acme/prod/app:1.0 legacy-save.tar',
    )
    .action(async (destination: string, file: string, opts: PushOptions, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { server?: string; json?: boolean };
      const concurrency = Number(opts.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16) throw new Error('--concurrency must be 1 to 16');
      const dest = parseDestination(destination);
      const server = serverUrl(globals.server);
      checkTransport(server, opts.insecure);
      const creds = await registryCredentials(opts, server);
      const client = new RegistryClient({ url: server, ...creds, insecure: opts.insecure === true, mode: 'push', userAgent: 'berth-push' });
      const progress = new Progress(Progress.mode({ json: globals.json, quiet: opts.quiet }), { ing: 'uploading', ed: 'pushed' });
      const stop = interruptible();
      const onEvent = (e: ImportEvent) => {
        switch (e.type) {
          case 'read':
            progress.say(`read ${e.source}: ${e.format}`);
            break;
          case 'warning':
            progress.say(`warning: ${e.message}`);
            break;
          case 'compressed':
            progress.say(`${short(e.from)}  compressed (${e.compression}) ${human(e.size)} → ${human(e.compressedSize)}  ${e.label}`);
            break;
          case 'plan':
            progress.setTotal(e.bytes);
            progress.say(
              `pushing ${e.images.map((i) => `${i.name}${i.tags.length ? `:${i.tags.join(',')}` : ` (${i.digest}, untagged)`}`).join('; ')} — ${e.blobs} blobs, ${human(e.bytes)} to ${server}`,
            );
            break;
          case 'retry':
            progress.say(`${short(e.digest)}  retrying (attempt ${e.attempt + 1}) after: ${e.message}`);
            break;
          case 'manifest':
            progress.say(`manifest ${e.digest} → ${e.name}`);
            break;
          case 'tag':
            progress.say(`tagged ${e.name}:${e.tag}`);
            break;
          default:
            break;
        }
        progress.event(e as TransferEvent);
      };
      try {
        const result = await importArchive(file, dest, client, {
          concurrency,
          onEvent,
          signal: stop.signal,
          progressIntervalMs: Progress.mode({ json: globals.json, quiet: opts.quiet }) === 'tty' ? 100 : 250,
          ...(opts.compress ? { compress: opts.compress } : {}),
        });
        progress.stop();
        if (!globals.json) {
          for (const img of result.images) {
            if (img.tags.length === 0) process.stdout.write(`${img.name}@${img.digest}\n`);
            for (const t of img.tags) process.stdout.write(`${img.name}:${t} ${img.digest}\n`);
          }
          if (!opts.quiet) {
            process.stderr.write(
              `done: ${result.uploaded.blobs} blobs uploaded (${human(result.uploaded.bytes)}), ${result.skipped.blobs} already there or mounted (${human(result.skipped.bytes)})\n`,
            );
          }
        }
      } catch (e) {
        progress.stop();
        if (globals.json) {
          const code = e instanceof ImportError ? e.code : 'ERROR';
          process.stdout.write(`${JSON.stringify({ type: 'error', code, message: (e as Error).message })}\n`);
        }
        if (e instanceof ImportError && e.code === 'ABORTED') {
          process.stderr.write('berth: push interrupted: nothing was tagged; run it again to resume\n');
          process.exit(130);
        }
        throw e;
      } finally {
        stop.dispose();
        client.close();
      }
    });

  pullCommand(program);
}
