/**
 * Helpers for the multi-tenancy and access-control tests: an in-process Berth (app.inject) on
 * a fresh temporary folder with a known admin password, credential headers, management-API
 * and token-flow shortcuts, a tiny image pusher, and a real Berth child process for the CLI and
 * skopeo tests (own process group, stopped by its id).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Logger } from 'pino';
import { type Config, loadConfig } from '../../src/config/schema.ts';
import { createBerth, type Berth } from '../../src/main.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ADMIN_PASSWORD = 'admin-secret-pw-1';
export const USER_PASSWORD = 'user-secret-pw-1';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export type Inject = LightMyRequestResponse;

export interface AuthBerth {
  app: FastifyInstance;
  berth: Berth;
  dir: string;
  close(): Promise<void>;
}

/** A Berth on a fresh temporary folder with `admin` / ADMIN_PASSWORD; auth config may be overridden. */
export async function openAuthBerth(
  opts: { auth?: Partial<Config['auth']>; logger?: Logger; dir?: string } = {},
): Promise<AuthBerth> {
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), 'berth-auth-')));
  const config = loadConfig({ env: {}, overrides: { data: dir, auth: { adminPassword: ADMIN_PASSWORD, ...(opts.auth ?? {}) } as Config['auth'] } });
  const berth = await createBerth(config, opts.logger ?? false);
  await berth.app.ready();
  return {
    app: berth.app,
    berth,
    dir,
    async close() {
      await berth.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

export const bearer = (token: string) => `Bearer ${token}`;

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function headersFor(auth: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return { ...(auth ? { authorization: auth } : {}), ...extra };
}

/** Calls the management API; returns status and the parsed JSON body (undefined if none). */
export async function api(
  app: FastifyInstance,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  auth?: string,
  body?: unknown,
): Promise<{ status: number; json: any; res: Inject }> {
  const res = await app.inject({
    method,
    url,
    headers: headersFor(auth, body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  let json: unknown;
  try {
    json = res.body ? JSON.parse(res.body) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, res };
}

/** Like api() but asserts the status. */
export async function apiOk(
  app: FastifyInstance,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  auth: string | undefined,
  body: unknown,
  status: number,
): Promise<any> {
  const r = await api(app, method, url, auth, body);
  assert.equal(r.status, status, `${method} ${url}: expected ${status}, got ${r.status}: ${r.res.body}`);
  return r.json;
}

/** The OCI error code of a response (or undefined). */
export function errCode(res: Inject): string | undefined {
  try {
    return (JSON.parse(res.body) as { errors?: { code: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

export function assertError(res: Inject, status: number, code: string, what = ''): void {
  assert.equal(res.statusCode, status, `${what}: expected ${status} ${code}, got ${res.statusCode}: ${res.body}`);
  assert.equal(errCode(res), code, `${what}: error code (body ${res.body})`);
}

/** Decodes a JWT's payload without verifying it. */
export function jwtPayload(token: string): any {
  const parts = token.split('.');
  assert.equal(parts.length, 3, 'a JWT has three parts');
  return JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
}

/** GET /v2/token for the scopes with the given Authorization (or none); asserts 200. */
export async function fetchToken(app: FastifyInstance, auth: string | undefined, scopes: string[], service = 'berth'): Promise<string> {
  const q = new URLSearchParams({ service });
  for (const s of scopes) q.append('scope', s);
  const res = await app.inject({ method: 'GET', url: `/v2/token?${q}`, headers: headersFor(auth) });
  assert.equal(res.statusCode, 200, `token for ${scopes.join(' ')}: ${res.body}`);
  const body = JSON.parse(res.body) as { token: string };
  return body.token;
}

export interface PushedImage {
  manifestDigest: string;
  manifestBytes: Buffer;
  configDigest: string;
  layerDigest: string;
}

/** Pushes a one-layer image (random content) as `auth` and tags it; asserts every step. */
export async function pushImage(app: FastifyInstance, name: string, tag: string, auth: string): Promise<PushedImage> {
  const layer = randomBytes(64);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex'), rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, config]) {
    const res = await app.inject({
      method: 'POST',
      url: `/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`,
      headers: headersFor(auth, { 'content-type': 'application/octet-stream' }),
      payload: blob,
    });
    assert.equal(res.statusCode, 201, `push blob to ${name}: ${res.body}`);
  }
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
    }),
  );
  const res = await app.inject({
    method: 'PUT',
    url: `/v2/${name}/manifests/${tag}`,
    headers: headersFor(auth, { 'content-type': OCI_MANIFEST }),
    payload: manifestBytes,
  });
  assert.equal(res.statusCode, 201, `push manifest ${name}:${tag}: ${res.body}`);
  return { manifestDigest: sha256(manifestBytes), manifestBytes, configDigest: sha256(config), layerDigest: sha256(layer) };
}

// ---------------------------------------------------------------------------------------------
// Child processes

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('no port'));
      srv.close(() => resolve(addr.port));
    });
  });
}

export interface ServerProcess {
  pid: number;
  port: number;
  address: string;
  url: string;
  dataDir: string;
  stdout(): string;
  stderr(): string;
  stop(): Promise<void>;
}

/** Process groups still running, with the data folder to remove when the test process exits. */
const liveGroups = new Map<number, string | undefined>();
let hookInstalled = false;

/** A clean environment for children: no BERTH_* from the caller. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('BERTH_')) env[k] = v;
  return { ...env, ...extra };
}

/**
 * Starts `node bin/berth.js serve --listen 127.0.0.1:PORT --data DIR` (or `listenHost`:PORT) in
 * its own process group and waits for /healthz on 127.0.0.1. `adminPassword: null` starts it without BERTH_ADMIN_PASSWORD.
 */
export async function spawnBerth(
  opts: { adminPassword?: string | null; env?: Record<string, string>; dataDir?: string; keepData?: boolean; tlsCa?: Buffer; listenHost?: string } = {},
): Promise<ServerProcess> {
  if (!hookInstalled) {
    hookInstalled = true;
    process.on('exit', () => {
      for (const [pid, dir] of liveGroups) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    });
  }
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'berth-auth-srv-')));
  const env = cleanEnv({ BERTH_LOG_LEVEL: 'warn', BERTH_WORKERS: '1', ...(opts.env ?? {}) });
  const pw = opts.adminPassword === undefined ? ADMIN_PASSWORD : opts.adminPassword;
  if (pw !== null) env.BERTH_ADMIN_PASSWORD = pw;
  const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'bin', 'berth.js'), 'serve', '--listen', opts.listenHost ? `${opts.listenHost}:${port}` : address, '--data', dataDir], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  liveGroups.set(pid, opts.keepData ? undefined : dataDir);
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  let exited = false;
  child.on('exit', () => (exited = true));

  const stop = async () => {
    if (!liveGroups.has(pid)) return;
    liveGroups.delete(pid);
    if (!exited) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      for (let i = 0; i < 100 && !exited; i++) await sleep(50);
      if (!exited) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    if (!opts.keepData) rmSync(dataDir, { recursive: true, force: true });
  };

  const url = `${opts.tlsCa ? 'https' : 'http'}://${address}`;
  const healthy = opts.tlsCa ? () => httpsOk(`${url}/healthz`, opts.tlsCa!) : async () => (await fetch(`${url}/healthz`)).ok;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`berth exited during start-up:\n${out}\n${err}`);
    }
    try {
      if (await healthy()) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`berth did not become healthy in 30 s:\n${out}\n${err}`);
    }
    await sleep(100);
  }
  return { pid, port, address, url, dataDir, stdout: () => out, stderr: () => err, stop };
}

/** GET over https trusting `ca`; resolves whether the answer was 2xx. */
function httpsOk(url: string, ca: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300);
    });
    req.on('error', reject);
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; never rejects on a non-zero exit. */
export function run(file: string, args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { env: opts.env ?? cleanEnv(), cwd: opts.cwd ?? ROOT, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

/** Runs the real CLI: `node bin/berth.js ARGS`. */
export function berthCli(args: string[], env: Record<string, string>, input?: string): Promise<RunResult> {
  return run(process.execPath, [path.join(ROOT, 'bin', 'berth.js'), ...args], { env: cleanEnv(env), ...(input === undefined ? {} : { input }) });
}

export async function tempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
