/**
 * A Berth cluster on "hosts" of its own, for the scale-out tests (docs/deployment.md):
 * - every node runs in its own network namespace (`ip netns` + a veth pair, addresses from
 *   10.231.N.0/24, a /30 per node), listening on its namespace address only;
 * - the nodes share one PostgreSQL schema and one S3 bucket (Ceph's gateway when selected);
 *   both are reached through TCP forwarders on the host side of each veth, which a test can
 *   cut (existing connections reset, new ones held silent: a network partition) and restore;
 * - haproxy on 127.0.0.1 spreads requests round robin over the nodes, no stickiness, health
 *   checks on /readyz, and answers OCI error JSON when no node is ready; every response names
 *   the node that served it in `X-Berth-Node`.
 * Needs root, iproute2 and haproxy (fails loudly without them). Namespaces, links, processes
 * and folders are removed in stop(), and by an exit hook if the test process dies.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { onExit } from './e2e.ts';
import { ROOT, freePort } from './server.ts';
import { startS3, type TestS3 } from './s3.ts';

export const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const NODE_PORT = 5000;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A TCP forwarder that can be cut (a partition) and restored. */
export class Forwarder {
  private readonly servers: net.Server[] = [];
  private readonly live = new Set<net.Socket>();
  private held = new Set<net.Socket>();
  private cutOff = false;
  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Listens on `host` (port 0); resolves with the port. */
  async listen(host: string): Promise<number> {
    const server = net.createServer((client) => {
      client.on('error', () => undefined);
      if (this.cutOff) {
        this.held.add(client); // accepted, never answered: like packets dropped on the way
        client.once('close', () => this.held.delete(client));
        return;
      }
      const upstream = net.connect(this.targetPort, this.targetHost);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      for (const s of [client, upstream]) {
        this.live.add(s);
        s.once('close', () => this.live.delete(s));
      }
      // Either side's end closes both at once: a half-closed socket whose FIN the other side
      // never acknowledges (its namespace is gone) would keep this process from exiting.
      client.pipe(upstream, { end: false });
      upstream.pipe(client, { end: false });
      for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
        a.once('end', () =>
          b.end(() => {
            a.destroy();
            b.destroy();
          }),
        );
        a.once('close', () => b.destroy());
      }
    });
    this.servers.push(server);
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, () => resolve()));
    return (server.address() as net.AddressInfo).port;
  }

  /** Resets every connection through it; new ones are accepted and left unanswered. */
  cut(): void {
    this.cutOff = true;
    for (const s of this.live) s.resetAndDestroy();
  }

  restore(): void {
    this.cutOff = false;
    for (const s of this.held) s.resetAndDestroy();
    this.held = new Set();
  }

  async close(): Promise<void> {
    this.cut();
    this.restore();
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export interface ClusterNode {
  readonly index: number;
  readonly netns: string;
  /** 10.231.N.x:5000 */
  readonly address: string;
  readonly url: string;
  pid(): number | undefined;
  running(): boolean;
  output(): string;
  /** Starts (or starts again) the node's process in its namespace and waits for /readyz. */
  start(env?: Record<string, string>): Promise<void>;
  /** Sends `signal` to the node's process; with SIGKILL resolves once it is gone. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** SIGTERM (graceful), SIGKILL after 15 s. */
  stop(): Promise<void>;
}

export interface Cluster {
  readonly nodes: ClusterNode[];
  /** 127.0.0.1:PORT of the load balancer, as used in image references. */
  readonly address: string;
  readonly url: string;
  readonly s3: TestS3;
  readonly schema: string;
  readonly pg: Forwarder;
  readonly objectStore: Forwarder;
  readonly password: string;
  readonly authorization: string;
  /** The node environment (without per-node addresses). */
  readonly env: Record<string, string>;
  /** fetch through the load balancer as the administrator. */
  fetch(p: string, init?: RequestInit & { headers?: Record<string, string> }): Promise<Response>;
  /** fetch from one node directly as the administrator. */
  fetchNode(n: ClusterNode, p: string, init?: RequestInit & { headers?: Record<string, string> }): Promise<Response>;
  /** Runs SQL on the shared schema. */
  sql<T = Record<string, unknown>>(text: string): Promise<T[]>;
  /** Waits until haproxy sees every running node as up. */
  waitBalanced(): Promise<void>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodes?: number;
  /** More node environment (BERTH_*). */
  env?: Record<string, string>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function requireTools(): void {
  if (process.getuid?.() !== 0) throw new Error('the cluster tests need root (network namespaces): CI runs them as root');
  for (const tool of ['ip', 'haproxy']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`the cluster tests need ${tool} (apt-get install iproute2 haproxy)`);
    }
  }
}

/** A /24 in 10.231.0.0/16 that no interface on this machine uses. */
function freeSubnet(): number {
  const used = ip('-o', '-4', 'addr');
  for (let i = 0; i < 50; i++) {
    const n = 1 + Math.floor(Math.random() * 254);
    if (!used.includes(`10.231.${n}.`)) return n;
  }
  throw new Error('no free 10.231.N.0/24');
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  requireTools();
  const count = opts.nodes ?? 3;
  const tag = randomBytes(2).toString('hex');
  const subnet = freeSubnet();
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-cluster-'));
  const schema = `berth_cluster_${randomBytes(5).toString('hex')}`;
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const authorization = `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
  const namespaces: string[] = [];
  const hostLinks: string[] = [];
  const children = new Set<ChildProcess>();
  const cleanupLater = () => {
    for (const c of children) {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    const cmds = [...namespaces.map((ns) => `ip netns del ${ns}`), ...hostLinks.map((l) => `ip link del ${l}`)].map((c) => `${c} 2>/dev/null`);
    if (cmds.length) spawn('sh', ['-c', `sleep 5; ${cmds.join('; ')}; true`], { detached: true, stdio: 'ignore' }).unref();
    rmSync(work, { recursive: true, force: true });
  };
  const cleanupSync = () => {
    for (const c of children) {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const ns of namespaces) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* gone */
      }
    }
    for (const l of hostLinks) {
      try {
        ip('link', 'del', l);
      } catch {
        /* went with its namespace */
      }
    }
    rmSync(work, { recursive: true, force: true });
  };
  const unregister = onExit(cleanupSync);

  const sqlOn = async <T>(text: string): Promise<T[]> => {
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    try {
      return (await c.query(text)).rows as T[];
    } finally {
      await c.end();
    }
  };

  let s3: TestS3 | undefined;
  let haproxy: ChildProcess | undefined;
  const pgFwd = new Forwarder('127.0.0.1', Number(new URL(POSTGRES_URL).port || 5432));
  let s3Fwd: Forwarder | undefined;
  const nodes: ClusterNode[] = [];
  try {
    await sqlOn(`CREATE SCHEMA ${schema}`);
    s3 = await startS3('berth-cluster');
    const s3Url = new URL(s3.endpoint);
    s3Fwd = new Forwarder(s3Url.hostname, Number(s3Url.port));

    const env: Record<string, string> = {
      BERTH_ADMIN_PASSWORD: password,
      BERTH_METADATA_DRIVER: 'postgres',
      BERTH_STORAGE_DRIVER: 's3',
      BERTH_S3_BUCKET: s3.bucket,
      BERTH_S3_ACCESS_KEY_ID: s3.accessKeyId,
      BERTH_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      BERTH_LOG_LEVEL: 'warn',
      // Nodes sharing a database share the key-encryption key (docs/deployment.md).
      BERTH_KEK: randomBytes(32).toString('base64'),
      // One process per node, so that killing a node's PID kills the node.
      BERTH_WORKERS: '1',
      ...opts.env,
    };

    for (let i = 0; i < count; i++) {
      const ns = `berth-${tag}-${i}`;
      const host = `bh${tag}${i}`;
      const peer = `bn${tag}${i}`;
      const hostIp = `10.231.${subnet}.${4 * i + 1}`;
      const nodeIp = `10.231.${subnet}.${4 * i + 2}`;
      ip('netns', 'add', ns);
      namespaces.push(ns);
      ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
      hostLinks.push(host);
      ip('link', 'set', peer, 'netns', ns);
      ip('addr', 'add', `${hostIp}/30`, 'dev', host);
      ip('link', 'set', host, 'up');
      ip('-n', ns, 'addr', 'add', `${nodeIp}/30`, 'dev', peer);
      ip('-n', ns, 'link', 'set', peer, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'route', 'add', 'default', 'via', hostIp);
      // PostgreSQL and the gateway listen on the host's loopback: the node reaches them
      // through forwarders on the host end of its link.
      const pgPort = await pgFwd.listen(hostIp);
      const s3Port = await s3Fwd.listen(hostIp);
      const pgUrl = new URL(POSTGRES_URL);
      pgUrl.hostname = hostIp;
      pgUrl.port = String(pgPort);
      pgUrl.searchParams.set('options', `-c search_path=${schema}`);
      const nodeEnv = { ...env, BERTH_POSTGRES_URL: pgUrl.toString(), BERTH_S3_ENDPOINT: `http://${hostIp}:${s3Port}` };
      nodes.push(makeNode(i, ns, nodeIp, nodeEnv, path.join(work, `node${i}`), children));
    }
    // All start at once: migrations, the first administrator and the signing key race.
    await Promise.all(nodes.map((n) => n.start()));

    const lbPort = await freePort();
    const errorFile = path.join(work, 'oci-503.http');
    const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'no registry node is ready', detail: null }] });
    writeFileSync(
      errorFile,
      `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${body.length}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n${body}`,
    );
    const cfg = path.join(work, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(lbPort, errorFile, nodes));
    haproxy = spawn('haproxy', ['-db', '-f', cfg], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(haproxy);
    let lbOut = '';
    haproxy.stdout!.on('data', (b: Buffer) => (lbOut = (lbOut + b.toString()).slice(-20_000)));
    haproxy.stderr!.on('data', (b: Buffer) => (lbOut = (lbOut + b.toString()).slice(-20_000)));

    const url = `http://127.0.0.1:${lbPort}`;
    const withAuth = (init: RequestInit & { headers?: Record<string, string> } = {}) => ({
      ...init,
      headers: { Authorization: authorization, ...(init.headers ?? {}) },
    });
    const cluster: Cluster = {
      nodes,
      address: `127.0.0.1:${lbPort}`,
      url,
      s3,
      schema,
      pg: pgFwd,
      objectStore: s3Fwd,
      password,
      authorization,
      env,
      fetch: (p, init) => fetch(`${url}${p}`, withAuth(init)),
      fetchNode: (n, p, init) => fetch(`${n.url}${p}`, withAuth(init)),
      sql: (text) => sqlOn(text),
      async waitBalanced() {
        // haproxy marks a server up after `rise` good checks: wait until each running node served a request
        const deadline = Date.now() + 20_000;
        const want = new Set(nodes.filter((n) => n.running()).map((n) => `n${n.index}`));
        const seen = new Set<string>();
        while (seen.size < want.size) {
          if (haproxy!.exitCode !== null) throw new Error(`haproxy exited:\n${lbOut}`);
          if (Date.now() > deadline) throw new Error(`haproxy did not balance over ${[...want]} (saw ${[...seen]}):\n${lbOut}`);
          const r = await fetch(`${url}/healthz`).catch(() => undefined);
          const by = r?.headers.get('x-berth-node');
          await r?.arrayBuffer();
          if (by && want.has(by)) seen.add(by);
          else await sleep(100);
        }
      },
      async stop() {
        unregister();
        if (haproxy && haproxy.exitCode === null) {
          process.kill(-haproxy.pid!, 'SIGKILL');
        }
        await Promise.all(nodes.map((n) => n.stop()));
        await pgFwd.close();
        await s3Fwd?.close();
        // The namespaces go a few seconds after this process: a socket of ours that is still
        // closing must get its answer from the namespace's stack, or this process cannot exit
        // until TCP gives up retransmitting (minutes).
        cleanupLater();
        await s3?.stop();
        await sqlOn(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      },
    };
    await cluster.waitBalanced();
    const res = await cluster.fetch('/api/v1/orgs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ name: 'acme' }) });
    if (res.status !== 201) throw new Error(`creating org acme: ${res.status} ${await res.text()}`);
    return cluster;
  } catch (e) {
    cleanupSync();
    unregister();
    await pgFwd.close();
    await s3Fwd?.close();
    await s3?.stop().catch(() => undefined);
    await sqlOn(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    throw e;
  }
}

function haproxyConfig(port: number, errorFile: string, nodes: ClusterNode[]): string {
  return `global
  maxconn 4096

defaults
  mode http
  timeout connect 2s
  timeout client 5m
  timeout server 5m
  timeout http-request 30s
  retries 2
  option redispatch
  retry-on conn-failure empty-response
  errorfile 503 ${errorFile}

frontend registry
  bind 127.0.0.1:${port}
  default_backend berth

backend berth
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  timeout check 3s
  default-server inter 1s fastinter 500ms downinter 500ms fall 2 rise 1
  http-response set-header X-Berth-Node %s
${nodes.map((n) => `  server n${n.index} ${n.address} check`).join('\n')}
`;
}

function makeNode(index: number, netns: string, nodeIp: string, baseEnv: Record<string, string>, dataDir: string, children: Set<ChildProcess>): ClusterNode {
  const address = `${nodeIp}:${NODE_PORT}`;
  const url = `http://${address}`;
  let child: ChildProcess | undefined;
  let out = '';
  const running = () => !!child && child.exitCode === null && child.signalCode === null;
  const waitExit = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (!running()) return resolve(true);
      const t = setTimeout(() => resolve(false), ms);
      child!.once('exit', () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  const node: ClusterNode = {
    index,
    netns,
    address,
    url,
    pid: () => child?.pid,
    running,
    output: () => out,
    async start(extraEnv = {}) {
      if (running()) throw new Error(`node ${index} is running`);
      await fsp.mkdir(dataDir, { recursive: true });
      const env: Record<string, string> = { ...(process.env as Record<string, string>) };
      for (const k of Object.keys(env)) if (k.startsWith('BERTH_')) delete env[k];
      delete env.NODE_OPTIONS;
      Object.assign(env, baseEnv, extraEnv);
      // `ip netns exec` execs the command: the pid is the node's own
      child = spawn('ip', ['netns', 'exec', netns, process.execPath, path.join(ROOT, 'bin', 'berth.js'), 'serve', '--listen', address, '--data', dataDir], {
        cwd: ROOT,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      const me = child;
      me.once('exit', () => children.delete(me));
      const keep = (b: Buffer) => (out = (out + b.toString()).slice(-100_000));
      me.stdout!.on('data', keep);
      me.stderr!.on('data', keep);
      const deadline = Date.now() + 60_000;
      for (;;) {
        if (!running()) throw new Error(`node ${index} exited during start-up:\n${out}`);
        const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        await r?.arrayBuffer();
        if (r?.status === 200) return;
        if (Date.now() > deadline) throw new Error(`node ${index} not ready in time:\n${out}`);
        await sleep(100);
      }
    },
    async kill(signal) {
      if (!running()) return;
      process.kill(child!.pid!, signal);
      if (signal === 'SIGKILL') await waitExit(5000);
    },
    async stop() {
      if (!running()) return;
      process.kill(child!.pid!, 'SIGTERM');
      if (!(await waitExit(15_000))) {
        process.kill(child!.pid!, 'SIGKILL');
        await waitExit(5000);
      }
    },
  };
  return node;
}

/**
 * Ends this test process shortly after its tests and teardown. Node's exit waits until every
 * socket handle has closed, and a socket whose peer's network namespace was deleted may never
 * finish closing: the process then spins in its exit clean-up for many minutes (seen here). The
 * results are already reported by then; `process.exit` keeps the exit code.
 */
export function exitSoonAfterTests(ms = 2000): void {
  setTimeout(() => process.exit(), ms);
}
