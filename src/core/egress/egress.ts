/**
 * Every outbound request Berth makes as a server (webhooks, pull-through upstreams, their
 * redirects and token realms) connects through this module (DESIGN §12):
 *
 * - at connect time the host name is resolved, EVERY address it resolves to is checked against
 *   the policy, and the socket connects to the checked address itself (no second resolution,
 *   so no DNS-rebinding window); IP literals in any disguise are parsed and checked the same way;
 * - connecting is bounded in time; callers bound waiting for headers, bodies and redirects;
 * - anything that goes wrong before an answer arrives — a refused address, a closed port, a
 *   timeout, a DNS or TLS failure — is reported with one and the same text (CONNECT_FAILED), so
 *   that the outcome is no oracle for scanning; the real reason stays on the error for logs.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { type Address, formatAddress, parseAddress } from './address.ts';
import { EgressPolicy, normalHost } from './policy.ts';

/** The one text for every failure before an answer: refused, closed, unreachable, timed out. */
export const CONNECT_FAILED = 'connection failed';

/** Resolves a host name to all of its addresses (dns.lookup, or a test's table). */
export type Resolve = (hostname: string) => Promise<{ address: string; family: number }[]>;

/** Outbound trouble before an answer. `message` is always CONNECT_FAILED; `reason` says what happened. */
export class EgressError extends Error {
  override name = 'EgressError';
  constructor(
    /** Why, for logs and for the save-time check: never shown to a tenant at connect time. */
    readonly reason: string,
    /** True when the policy refused the destination (as opposed to the network failing). */
    readonly refused: boolean,
  ) {
    super(CONNECT_FAILED);
  }
}

export interface EgressOptions {
  /** `egress.allow`: CIDRs, host names, host:port. */
  allow?: readonly string[];
  /** Name resolution (default: the system's, as dns.lookup). */
  resolve?: Resolve;
  /** Time allowed to resolve and connect (TCP and TLS), per connection. */
  connectTimeoutMs?: number;
}

const defaultResolve: Resolve = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

export interface AgentOptions {
  keepAlive?: boolean;
  maxSockets?: number;
  /** Verify TLS certificates (default true). */
  rejectUnauthorized?: boolean;
  /** Certificate authorities to trust instead of Node's bundle. */
  ca?: string | Buffer;
  connectTimeoutMs?: number;
}

export class Egress {
  readonly policy: EgressPolicy;
  private readonly resolveName: Resolve;
  readonly connectTimeoutMs: number;

  constructor(opts: EgressOptions = {}) {
    this.policy = new EgressPolicy(opts.allow ?? []);
    this.resolveName = opts.resolve ?? defaultResolve;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
  }

  /**
   * The addresses `host` may be reached at on `port`: all of them checked, every one allowed.
   * Throws EgressError (refused) naming the first refused address.
   */
  async addresses(host: string, port: number): Promise<Address[]> {
    const h = normalHost(host);
    const literal = parseAddress(h);
    let found: Address[];
    if (literal) {
      found = [literal];
    } else {
      let answers: { address: string; family: number }[];
      try {
        answers = await this.resolveName(h);
      } catch (e) {
        throw new EgressError(`cannot resolve ${h}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, false);
      }
      found = answers.map((a) => parseAddress(a.address)).filter((a): a is Address => a !== undefined);
      if (found.length === 0 || found.length !== answers.length) throw new EgressError(`${h} resolves to no usable address`, false);
    }
    for (const a of found) {
      const why = this.policy.refusal(h, a, port);
      if (why) throw new EgressError(literal ? `${why}` : `${h} resolves to ${why.replace(/^[^ ]+ is/, `${formatAddress(a)}, which is`)}`, true);
    }
    return found;
  }

  /**
   * The save-time check of a configured URL: http(s), and a destination the policy allows. A
   * name that does not resolve now (within `timeoutMs`, default 5 s) is accepted: it is checked
   * again at every connection. Throws EgressError (refused) with a reason fit for a 400.
   */
  async validateUrl(raw: string, opts: { timeoutMs?: number } = {}): Promise<URL> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new EgressError('not a URL', true);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EgressError('must be http:// or https://', true);
    const port = portOf(url);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), opts.timeoutMs ?? 5000);
      timer.unref();
    });
    try {
      await Promise.race([this.addresses(url.hostname, port), timeout]);
    } catch (e) {
      if (e instanceof EgressError && e.refused) throw e;
      // unresolvable today: checked again when connecting
    } finally {
      clearTimeout(timer);
    }
    return url;
  }

  /** A keep-alive agent for `protocol` whose every connection is checked and pinned. */
  agent(protocol: 'http:' | 'https:', opts: AgentOptions = {}): http.Agent {
    const base = { keepAlive: opts.keepAlive ?? true, maxSockets: opts.maxSockets ?? 32 };
    const timeoutMs = opts.connectTimeoutMs ?? this.connectTimeoutMs;
    if (protocol === 'https:') {
      return new GuardedHttpsAgent(this, { ...base, rejectUnauthorized: opts.rejectUnauthorized ?? true, ...(opts.ca ? { ca: opts.ca } : {}) }, timeoutMs);
    }
    return new GuardedHttpAgent(this, base, timeoutMs);
  }

  /**
   * Opens a checked, pinned connection (TCP, or TLS with `tls` options) and hands it to `cb`
   * once created; failures reach `cb` (or the socket's `error`) as EgressError.
   */
  connect(
    options: { host?: string | null; hostname?: string | null; port?: number | string | null; servername?: string },
    secure: tls.ConnectionOptions | undefined,
    timeoutMs: number,
    cb: (err: Error | null, socket?: Duplex) => void,
  ): void {
    const host = String(options.hostname ?? options.host ?? 'localhost');
    const port = Number(options.port ?? (secure ? 443 : 80));
    let done = false;
    const timer = setTimeout(() => finish(new EgressError(`connecting to ${host}:${port} took over ${timeoutMs} ms`, false)), timeoutMs);
    let socket: net.Socket | undefined;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        socket?.destroy();
        cb(err);
      }
    };
    this.addresses(host, port).then(
      (addrs) => {
        if (done) return;
        const target = formatAddress(addrs[0]!);
        const conn = { host: target, port, family: addrs[0]!.v4 ? 4 : 6 };
        const h = normalHost(host);
        socket = secure
          ? tls.connect({ ...secure, ...conn, ...(parseAddress(h) ? {} : { servername: options.servername || h }) })
          : net.connect(conn);
        const s = socket;
        const onError = (e: Error) => finish(new EgressError(`${host}:${port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`, false));
        s.once('error', onError);
        s.once(secure ? 'secureConnect' : 'connect', () => {
          s.off('error', onError);
          if (done) return;
          done = true;
          clearTimeout(timer);
          cb(null, s);
        });
      },
      (e: unknown) => finish(e instanceof EgressError ? e : new EgressError(String((e as Error).message), false)),
    );
  }
}

/** The port a URL connects to. */
export function portOf(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

type CreateConnection = (options: Record<string, unknown>, cb: (err: Error | null, socket?: Duplex) => void) => undefined;

class GuardedHttpAgent extends http.Agent {
  constructor(
    private readonly egress: Egress,
    opts: http.AgentOptions,
    private readonly timeoutMs: number,
  ) {
    super(opts);
  }
  override createConnection: CreateConnection = (options, cb) => {
    this.egress.connect(options as never, undefined, this.timeoutMs, cb);
    return undefined;
  };
}

class GuardedHttpsAgent extends https.Agent {
  constructor(
    private readonly egress: Egress,
    private readonly tlsOpts: https.AgentOptions,
    private readonly timeoutMs: number,
  ) {
    super(tlsOpts);
  }
  override createConnection: CreateConnection = (options, cb) => {
    const { rejectUnauthorized, ca, cert, key } = { ...this.tlsOpts, ...(options as tls.ConnectionOptions) };
    this.egress.connect(options as never, { rejectUnauthorized, ca, cert, key, ALPNProtocols: ['http/1.1'] } as tls.ConnectionOptions, this.timeoutMs, cb);
    return undefined;
  };
}

export interface SendOptions {
  method: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Agents from Egress.agent, per protocol. */
  agents: { 'http:': http.Agent; 'https:': http.Agent };
  /** The whole exchange (connect, headers, the bounded body) must end within this. */
  timeoutMs: number;
  /** Response bytes read (and dropped) at most; a longer answer closes the connection. */
  maxResponseBytes?: number;
  signal?: AbortSignal;
}

/**
 * One request whose answer is only its status (webhooks): no redirect is followed, the body is
 * read up to a bound and dropped, never kept or reported. Rejects with EgressError
 * (CONNECT_FAILED) for anything before the status line, and with "timed out" /
 * "aborted" errors of the same text otherwise.
 */
export function send(url: URL, opts: SendOptions): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const agent = opts.agents[url.protocol as 'http:' | 'https:'];
    if (!agent) {
      reject(new EgressError(`unsupported protocol ${url.protocol}`, true));
      return;
    }
    const headers = { ...opts.headers, 'content-length': String(opts.body?.length ?? 0) };
    let settled = false;
    let status: number | undefined;
    const req = mod.request(url, { method: opts.method, headers, agent });
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (status !== undefined) resolve({ status });
      else reject(err instanceof EgressError ? err : new EgressError(err?.message ?? 'failed', false));
    };
    const timer = setTimeout(() => {
      req.destroy(new EgressError(`no answer within ${opts.timeoutMs} ms`, false));
    }, opts.timeoutMs);
    const onAbort = () => req.destroy(new EgressError('aborted', false));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (e) => finish(e));
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      let n = 0;
      const limit = opts.maxResponseBytes ?? 64 * 1024;
      res.on('data', (c: Buffer) => {
        n += c.length;
        if (n > limit) {
          res.destroy();
          req.destroy();
          finish(undefined);
        }
      });
      res.on('end', () => finish(undefined));
      res.on('error', () => finish(undefined));
      res.on('close', () => finish(undefined));
    });
    req.end(opts.body);
  });
}
