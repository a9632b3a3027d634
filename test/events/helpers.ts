/**
 * Helpers for the event-stream tests: an in-process Berth (app.inject, optionally listening on
 * 127.0.0.1) with event and webhook settings given per test, a tenancy fixture (an org with
 * repositories, a repository admin, a reader, an outsider, an API key and an entitlement
 * token), an image pusher, and a webhook receiver (a node http server on 127.0.0.1).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { type Config, loadConfig } from '../../src/config/schema.ts';
import { createBerth, type Berth } from '../../src/main.ts';
import type { Resolve } from '../../src/core/egress/egress.ts';

export const ADMIN_PASSWORD = 'events-admin-pw-1';
export const USER_PASSWORD = 'events-user-pw-1';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}
export const ADMIN = basic('admin', ADMIN_PASSWORD);

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface EventsBerth {
  app: FastifyInstance;
  berth: Berth;
  dir: string;
  /** `http://127.0.0.1:PORT` when started with `listen`. */
  url: string;
  /** Writes every queued event. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface BerthOptions {
  events?: Partial<Config['events']>;
  webhooks?: Partial<Config['webhooks']>;
  metrics?: Partial<Config['metrics']>;
  /** The egress policy: closed by default, as in production; webhook tests open their loopback receivers. */
  egress?: Partial<Config['egress']>;
  /** Name resolution for outbound requests (a test's table). */
  resolve?: Resolve;
  /** The vulnerability database's settings (mirror URLs). */
  vulns?: Partial<Config['vulns']>;
  listen?: boolean;
  /** An existing data folder (kept on close), e.g. to restart on it. */
  dir?: string;
  auth?: Partial<Config['auth']>;
  /**
   * Metadata on PostgreSQL: `true` for a fresh schema (dropped on close), or the name of an
   * existing schema to share with another Berth (the caller drops it: see `dropSchema`).
   */
  postgres?: boolean | string;
}

export const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function pgQuery(text: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

/** A new, empty PostgreSQL schema with a random name. */
export async function createSchema(): Promise<string> {
  const schema = `berth_t_${randomBytes(6).toString('hex')}`;
  await pgQuery(`CREATE SCHEMA ${schema}`);
  return schema;
}

export async function dropSchema(schema: string): Promise<void> {
  await pgQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

/** The key-encryption key of test Berths that share one PostgreSQL schema. */
const SHARED_TEST_KEK = randomBytes(32).toString('base64');

/** A Berth on a fresh temporary folder with `admin` / ADMIN_PASSWORD. */
export async function openBerth(opts: BerthOptions = {}): Promise<EventsBerth> {
  const dir = opts.dir ?? (await mkdtemp(path.join(tmpdir(), 'berth-events-')));
  const ownSchema = opts.postgres === true ? await createSchema() : undefined;
  const schema = typeof opts.postgres === 'string' ? opts.postgres : ownSchema;
  let pgUrl: string | undefined;
  if (schema) {
    const u = new URL(POSTGRES_URL);
    u.searchParams.set('options', `-c search_path=${schema}`);
    pgUrl = u.toString();
  }
  const config = loadConfig({
    env: {},
    overrides: {
      data: dir,
      auth: { adminPassword: ADMIN_PASSWORD, ...opts.auth } as Config['auth'],
      ...(pgUrl ? { metadata: { driver: 'postgres', postgresUrl: pgUrl, poolSize: 4 } as Config['metadata'] } : {}),
      // Berths sharing a schema share the key-encryption key, as nodes sharing a database must.
      ...(typeof opts.postgres === 'string' ? { keys: { kek: SHARED_TEST_KEK } as Config['keys'] } : {}),
      ...(opts.events ? { events: opts.events as Config['events'] } : {}),
      ...(opts.webhooks ? { webhooks: opts.webhooks as Config['webhooks'] } : {}),
      ...(opts.metrics ? { metrics: opts.metrics as Config['metrics'] } : {}),
      ...(opts.egress ? { egress: opts.egress as Config['egress'] } : {}),
      ...(opts.vulns ? { vulns: opts.vulns as Config['vulns'] } : {}),
    },
  });
  const berth = await createBerth(config, false, opts.resolve ? { resolve: opts.resolve } : {});
  await berth.app.ready();
  let url = '';
  if (opts.listen) url = (await berth.app.listen({ host: '127.0.0.1', port: 0 })).replace('localhost', '127.0.0.1');
  return {
    app: berth.app,
    berth,
    dir,
    url,
    flush: () => berth.registry.events.flush(),
    async close() {
      await berth.close();
      if (ownSchema) await dropSchema(ownSchema);
      if (!opts.dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Calls the management API; returns status, parsed JSON (if any) and the response. */
export async function api(app: FastifyInstance, method: Method, url: string, auth?: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await app.inject({
    method,
    url,
    headers: { ...(auth ? { authorization: auth } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  let json: any;
  try {
    json = res.body ? JSON.parse(res.body) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, res };
}

export async function apiOk(app: FastifyInstance, method: Method, url: string, auth: string | undefined, body: unknown, status: number): Promise<any> {
  const r = await api(app, method, url, auth, body);
  assert.equal(r.status, status, `${method} ${url}: expected ${status}, got ${r.status}: ${r.res.body}`);
  return r.json;
}

export interface PushedImage {
  digest: string;
  bytes: Buffer;
}

/** Pushes a one-layer image as `auth` and tags it. */
export async function pushImage(app: FastifyInstance, name: string, tag: string, auth: string = ADMIN): Promise<PushedImage> {
  const layer = randomBytes(64);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex'), rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, config]) {
    const res = await app.inject({
      method: 'POST',
      url: `/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`,
      headers: { authorization: auth, 'content-type': 'application/octet-stream' },
      payload: blob,
    });
    assert.equal(res.statusCode, 201, `push blob to ${name}: ${res.body}`);
  }
  const bytes = Buffer.from(
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
    headers: { authorization: auth, 'content-type': OCI_MANIFEST },
    payload: bytes,
  });
  assert.equal(res.statusCode, 201, `push manifest ${name}:${tag}: ${res.body}`);
  return { digest: sha256(bytes), bytes };
}

export function pull(app: FastifyInstance, name: string, ref: string, auth?: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url: `/v2/${name}/manifests/${ref}`, headers: { ...(auth ? { authorization: auth } : {}), ...headers } });
}

export interface Tenancy {
  /** Repository admin of acme/prod (repository-level role admin). */
  bob: string;
  /** Reader of acme/prod. */
  carol: string;
  /** May read nothing private. */
  dave: string;
  /** Carol's API key (Basic carol:<key>). */
  carolKey: string;
  carolKeyId: number;
  /** An entitlement token of acme/prod (Basic token:<secret>). */
  token: string;
  tokenId: number;
}

/** Org `acme` with private repositories `prod` and `dev`, users bob, carol and dave. */
export async function setupTenancy(app: FastifyInstance): Promise<Tenancy> {
  await apiOk(app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
  for (const r of ['prod', 'dev']) await apiOk(app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: r, visibility: 'private' }, 201);
  for (const u of ['bob', 'carol', 'dave']) await apiOk(app, 'POST', '/api/v1/users', ADMIN, { username: u, password: USER_PASSWORD }, 201);
  await apiOk(app, 'PUT', '/api/v1/repos/acme/prod/members/bob', ADMIN, { role: 'admin' }, 200);
  await apiOk(app, 'PUT', '/api/v1/repos/acme/prod/members/carol', ADMIN, { role: 'read' }, 200);
  const key = await apiOk(app, 'POST', '/api/v1/user/api-keys', basic('carol', USER_PASSWORD), { name: 'ci' }, 201);
  const tok = await apiOk(app, 'POST', '/api/v1/repos/acme/prod/tokens', ADMIN, { name: 'customer-a' }, 201);
  return {
    bob: basic('bob', USER_PASSWORD),
    carol: basic('carol', USER_PASSWORD),
    dave: basic('dave', USER_PASSWORD),
    carolKey: basic('carol', key.secret),
    carolKeyId: key.id,
    token: basic('token', tok.secret),
    tokenId: tok.id,
  };
}

export interface ReceivedHook {
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  url: string;
  received: ReceivedHook[];
  /** Resolves once `n` requests have arrived (rejects after `ms`). */
  waitFor(n: number, ms?: number): Promise<ReceivedHook[]>;
  close(): Promise<void>;
}

/** A webhook receiver on 127.0.0.1; `answer(i)` gives the status of the i-th request (0-based). */
export async function startReceiver(answer: (i: number) => number = () => 204): Promise<Receiver> {
  const received: ReceivedHook[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      const i = received.length;
      received.push({ at: Date.now(), headers: req.headers, body: Buffer.concat(parts).toString('utf8') });
      res.statusCode = answer(i);
      res.end(res.statusCode >= 400 ? 'receiver says no' : '');
      for (const w of waiters.filter((x) => received.length >= x.n)) w.resolve();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    waitFor(n, ms = 15_000) {
      if (received.length >= n) return Promise.resolve(received.slice(0, n));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`receiver got ${received.length} of ${n} requests in ${ms} ms`)), ms);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(timer);
            resolve(received.slice(0, n));
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls `fn` until it returns a value other than undefined (or fails after `ms`). */
export async function eventually<T>(fn: () => Promise<T | undefined>, ms = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every event matching `query` (as the admin), through the cursor pages. */
export async function allEvents(app: FastifyInstance, query: string, auth = ADMIN): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  for (;;) {
    const url: string = `/api/v1/events?${query}${query ? '&' : ''}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await apiOk(app, 'GET', url, auth, undefined, 200);
    out.push(...page.events);
    cursor = page.nextCursor;
    if (!cursor) return out;
  }
}

/** The value of a metric sample in Prometheus text, e.g. `berth_events_dropped_total{reason="queue_full"}`. */
export function metricValue(text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(sample + ' ')) return Number(line.slice(sample.length + 1));
  }
  return undefined;
}
