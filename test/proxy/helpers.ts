/**
 * Fixtures for the pull-through cache tests: Debian's `docker-registry` (distribution) as a
 * real upstream, a tiny counting (and optionally corrupting) HTTP proxy in front of it, and an
 * in-process Berth with an organisation `acme` listening on loopback.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/schema.ts';
import { createBerth, type Berth } from '../../src/main.ts';
import type { Resolve } from '../../src/core/egress/egress.ts';
import { onExit } from '../helpers/e2e.ts';
import { freePort } from '../helpers/server.ts';

export const DOCKER_REGISTRY = process.env.DOCKER_REGISTRY ?? '/usr/bin/docker-registry';

export interface Upstream {
  readonly url: string;
  /** `127.0.0.1:PORT` for image references. */
  readonly address: string;
  stop(): Promise<void>;
}

/** Starts docker-registry on 127.0.0.1 and a free port; with `htpasswd`, behind Basic auth. Fails loudly when missing. */
export async function startDockerRegistry(opts: { htpasswd?: { username: string; password: string } } = {}): Promise<Upstream> {
  if (!existsSync(DOCKER_REGISTRY)) {
    throw new Error(`${DOCKER_REGISTRY} is missing: install Debian's docker-registry (apt-get install -y docker-registry) to run the proxy tests`);
  }
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-upstream-'));
  const port = await freePort();
  let auth = '';
  if (opts.htpasswd) {
    const line = await new Promise<string>((resolve, reject) =>
      execFile('htpasswd', ['-Bbn', opts.htpasswd!.username, opts.htpasswd!.password], (err, stdout) => (err ? reject(new Error(`htpasswd (apache2-utils) failed: ${err.message}`)) : resolve(stdout.trim()))),
    );
    await fsp.writeFile(path.join(dir, 'htpasswd'), `${line}\n`);
    auth = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${path.join(dir, 'htpasswd')}\n`;
  }
  const config = path.join(dir, 'config.yml');
  await fsp.writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: berth-test-secret\n${auth}`,
  );
  const child: ChildProcess = spawn(DOCKER_REGISTRY, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      /* gone */
    }
  };
  const unhook = onExit(() => kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}):\n${output}`);
    const ok = await fetch(`${url}/v2/`).then(
      (r) => r.status === 200 || r.status === 401,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) {
      kill('SIGKILL');
      throw new Error(`docker-registry did not answer on ${url} within 15 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  let stopped = false;
  return {
    url,
    address: `127.0.0.1:${port}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      kill('SIGTERM');
      await new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const t = setTimeout(() => {
          kill('SIGKILL');
          resolve();
        }, 5000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
      unhook();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TestProxy {
  readonly url: string;
  /** GETs of `/v2/…/blobs/<digest>` seen, per digest. */
  blobGets(digest: string): number;
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of `target` that counts blob GETs and, with `corrupt`, flips one byte
 * in every blob body it relays.
 */
export async function startTestProxy(
  target: string,
  opts: {
    corrupt?: boolean;
    /** Answer this status to the first `failFirst` requests (default 503). */
    failFirst?: number;
    failStatus?: number;
    /** Never answer requests other than GET /v2/. */
    hang?: boolean;
    /** Send half of each blob body, then stall. */
    stallBlobs?: boolean;
    /** Hold each blob GET this long before relaying it. */
    delayBlobsMs?: number;
  } = {},
): Promise<TestProxy> {
  const counts = new Map<string, number>();
  const t = new URL(target);
  let failures = 0;
  const server = http.createServer((req, res) => {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec((req.url ?? '').split('?')[0]!);
    const isBlobGet = req.method === 'GET' && !!m;
    if (isBlobGet) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    if (opts.hang && req.url !== '/v2/') return; // never answers
    if (opts.failFirst !== undefined && failures < opts.failFirst && req.url !== '/v2/') {
      failures++;
      res.writeHead(opts.failStatus ?? 503, { 'content-type': 'text/plain' }).end('try later');
      return;
    }
    const relay = () => {
      const up = http.request(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } },
        (ures) => {
          res.writeHead(ures.statusCode ?? 502, ures.headers);
          let flipped = false;
          let sent = 0;
          const total = Number(ures.headers['content-length'] ?? 0);
          ures.on('data', (chunk: Buffer) => {
            if (opts.stallBlobs && isBlobGet) {
              if (sent >= total / 2) return; // swallow the rest: the body stalls
              sent += chunk.length;
            }
            if (opts.corrupt && isBlobGet && !flipped && chunk.length > 0) {
              chunk = Buffer.from(chunk);
              chunk[Math.floor(chunk.length / 2)]! ^= 0xff;
              flipped = true;
            }
            res.write(chunk);
          });
          ures.on('end', () => res.end());
          ures.on('error', () => res.destroy());
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (isBlobGet && opts.delayBlobsMs) setTimeout(relay, opts.delayBlobsMs);
    else relay();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${addr.port}`,
    blobGets: (d) => counts.get(d) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const ADMIN_PASSWORD = 'proxy-test-admin-pw';

export interface ProxyBerth {
  berth: Berth;
  url: string;
  address: string;
  auth: string;
  /** POST /api/v1/repos/acme/<repo>/upstreams as the administrator (creates the repository first). */
  addUpstream(repo: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  api(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }>;
  close(): Promise<void>;
}

/**
 * An in-process Berth on loopback with organisation `acme`, the pull-through cache configured by
 * `proxy`. The upstream fixtures listen on 127.0.0.1, which the egress policy refuses by
 * default: `egressAllow` (default `127.0.0.1`) opens them explicitly. `sbom`: SBOM generation
 * (off by default here).
 */
export async function startProxyBerth(
  proxy: Record<string, unknown> = {},
  opts: { egressAllow?: string[]; resolve?: Resolve; sbom?: boolean } = {},
): Promise<ProxyBerth> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'berth-proxy-'));
  const port = await freePort();
  const berth = await createBerth(
    loadConfig({
      env: { BERTH_ADMIN_PASSWORD: ADMIN_PASSWORD },
      overrides: {
        data: dir,
        listen: `127.0.0.1:${port}`,
        proxy: { backoffMs: 50, retries: 1, timeoutMs: 10_000, ...proxy } as never,
        egress: { allow: opts.egressAllow ?? ['127.0.0.1'] },
        // Off unless asked for: a cached image's SBOM job fetches its layers in the background,
        // which would race the tests that count upstream requests or stall a layer's body.
        sbom: { enabled: opts.sbom === true } as never,
      },
    }),
    false,
    opts.resolve ? { resolve: opts.resolve } : {},
  );
  await berth.app.listen({ host: '127.0.0.1', port });
  const acme = await berth.accessStore.createOwner('acme', 'org');
  const auth = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
  const url = `http://127.0.0.1:${port}`;
  const api = async (method: string, u: string, body?: unknown) => {
    const r = await fetch(`${url}${u}`, {
      method,
      headers: { authorization: auth, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : undefined };
  };
  return {
    berth,
    url,
    address: `127.0.0.1:${port}`,
    auth,
    api,
    async addUpstream(repo, body) {
      if (!(await berth.accessStore.findRepository('acme', repo))) await berth.accessStore.createRepository(acme.id, repo, 'private', '');
      const r = await api('POST', `/api/v1/repos/acme/${repo}/upstreams`, body);
      if (r.status !== 201) throw new Error(`adding the upstream failed: ${r.status} ${JSON.stringify(r.json)}`);
      return r.json;
    },
    async close() {
      berth.registry.proxy.close();
      await berth.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

const sha256hex = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Pushes one blob straight to an upstream (docker-registry: POST, then PUT with the digest). */
export async function pushUpstreamBlob(url: string, repo: string, blob: Buffer): Promise<void> {
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  if (start.status !== 202) throw new Error(`upstream upload start: ${start.status}`);
  const loc = new URL(start.headers.get('location')!, url);
  loc.searchParams.set('digest', sha256hex(blob));
  const put = await fetch(loc, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(blob) });
  if (put.status !== 201) throw new Error(`upstream blob PUT: ${put.status} ${await put.text()}`);
}

/** Pushes a one-layer OCI image straight to an upstream; returns its manifest's bytes and digest. */
export async function pushUpstreamImage(url: string, repo: string, tag: string, layer: Buffer, layerMediaType: string): Promise<{ digest: string; manifest: Buffer; config: Buffer }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  await pushUpstreamBlob(url, repo, layer);
  await pushUpstreamBlob(url, repo, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256hex(config), size: config.length },
      layers: [{ mediaType: layerMediaType, digest: sha256hex(layer), size: layer.length }],
    }),
  );
  const put = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, body: new Uint8Array(manifest) });
  if (put.status !== 201) throw new Error(`upstream manifest PUT: ${put.status} ${await put.text()}`);
  return { digest: sha256hex(manifest), manifest, config };
}
