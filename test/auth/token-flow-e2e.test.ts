/**
 * End to end over real sockets: a small registry client written on node:http that knows
 * nothing of Berth's scopes. Like docker's distribution client, it sends a request with the
 * token it holds; on a 401 it parses `WWW-Authenticate`, fetches a token from the realm for
 * exactly the challenge's scopes (with its Basic credentials) and retries once. With tokens
 * fetched from challenges alone it pushes in chunks, resumes an upload from a second client,
 * mounts across repositories, and deletes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_PASSWORD,
  OCI_CONFIG,
  OCI_LAYER,
  OCI_MANIFEST,
  USER_PASSWORD,
  apiOk,
  basic,
  openAuthBerth,
  pushImage,
  sha256,
  type AuthBerth,
  type PushedImage,
} from './helpers.ts';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Parses `Bearer k="v",k2="v2"` (quoted-string values with backslash escapes). */
function parseChallenge(header: string | undefined): { scheme: string; params: Record<string, string> } | undefined {
  if (!header) return undefined;
  const m = /^(\S+)\s+(.*)$/.exec(header.trim());
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /\s*([A-Za-z_]+)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/gy;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]!))) params[p[1]!.toLowerCase()] = p[2]!.replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase(), params };
}

function send(url: URL, method: string, headers: Record<string, string>, body?: Buffer): Promise<Res> {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end(body);
  });
}

/** A client that follows Bearer challenges the way docker's does. */
class ChallengeFollowingClient {
  private token: string | undefined;
  /** The scopes of every token request, in order: each one copied from a challenge. */
  readonly tokenRequests: string[][] = [];

  constructor(
    private readonly base: string,
    private readonly username: string,
    private readonly password: string,
  ) {}

  async request(method: string, path: string, opts: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Res> {
    const url = new URL(path, this.base);
    const res = await send(url, method, { ...(opts.headers ?? {}), ...this.authorization() }, opts.body);
    if (res.status !== 401) return res;
    const c = parseChallenge(res.headers['www-authenticate'] as string | undefined);
    if (c?.scheme !== 'bearer' || !c.params.realm) return res;
    this.token = await this.fetchToken(c.params.realm, c.params.service, (c.params.scope ?? '').split(' ').filter(Boolean));
    return send(url, method, { ...(opts.headers ?? {}), ...this.authorization() }, opts.body);
  }

  private authorization(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private async fetchToken(realm: string, service: string | undefined, scopes: string[]): Promise<string> {
    this.tokenRequests.push(scopes);
    const url = new URL(realm);
    if (service) url.searchParams.set('service', service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const res = await send(url, 'GET', { authorization: basic(this.username, this.password) });
    assert.equal(res.status, 200, `token for ${scopes.join(' ')}: ${res.body.toString()}`);
    return (JSON.parse(res.body.toString('utf8')) as { token: string }).token;
  }
}

describe('a challenge-following client (node:http, real sockets)', () => {
  let b: AuthBerth;
  let base: string;
  let baseImage: PushedImage;
  let secretImage: PushedImage;
  const ADMIN = basic('admin', ADMIN_PASSWORD);

  before(async () => {
    b = await openAuthBerth();
    await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'dana', password: USER_PASSWORD }, 201);
    await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
    for (const r of ['priv', 'base', 'secret']) await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: r }, 201);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/priv/members/dana', ADMIN, { role: 'admin' }, 200);
    await apiOk(b.app, 'PUT', '/api/v1/repos/acme/base/members/dana', ADMIN, { role: 'read' }, 200);
    baseImage = await pushImage(b.app, 'acme/base/img', 'v1', ADMIN);
    secretImage = await pushImage(b.app, 'acme/secret/img', 'v1', ADMIN);
    await b.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(b.app.server.address() as AddressInfo).port}`;
  });
  after(() => b?.close());

  it('pushes in chunks, resumes from a second client, mounts across repositories and deletes — tokens from challenges only', async () => {
    const NAME = 'acme/priv/app';
    const client = new ChallengeFollowingClient(base, 'dana', USER_PASSWORD);

    // the version check: a challenge without a scope
    assert.equal((await client.request('GET', '/v2/')).status, 200);

    // a chunked upload, first chunk
    const layer = randomBytes(300_000);
    const start = await client.request('POST', `/v2/${NAME}/blobs/uploads/`);
    assert.equal(start.status, 202, start.body.toString());
    const location = String(start.headers.location);
    const first = layer.subarray(0, 100_000);
    const p1 = await client.request('PATCH', location, {
      headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${first.length - 1}` },
      body: first,
    });
    assert.equal(p1.status, 202, p1.body.toString());

    // a second client resumes it: it holds a pull token first, so the status (push) re-challenges
    const resumer = new ChallengeFollowingClient(base, 'dana', USER_PASSWORD);
    assert.equal((await resumer.request('HEAD', `/v2/${NAME}/blobs/${sha256(layer)}`)).status, 404);
    const st = await resumer.request('GET', location);
    assert.equal(st.status, 204, st.body.toString());
    assert.equal(st.headers.range, `0-${first.length - 1}`);
    const rest = layer.subarray(first.length);
    const p2 = await resumer.request('PATCH', location, {
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${first.length}-${layer.length - 1}` },
      body: rest,
    });
    assert.equal(p2.status, 202, p2.body.toString());
    const done = await resumer.request('PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${sha256(layer)}`);
    assert.equal(done.status, 201, done.body.toString());
    assert.deepEqual(resumer.tokenRequests, [[`repository:${NAME}:pull`], [`repository:${NAME}:pull,push`]]);

    // a config blob, monolithic, with the token already held
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const c = await client.request('POST', `/v2/${NAME}/blobs/uploads/?digest=${sha256(config)}`, { headers: { 'content-type': 'application/octet-stream' }, body: config });
    assert.equal(c.status, 201, c.body.toString());

    // a mount from a repository dana may read: the challenge asks pull there too
    const mounted = await client.request('POST', `/v2/${NAME}/blobs/uploads/?mount=${baseImage.layerDigest}&from=acme/base/img`);
    assert.equal(mounted.status, 201, mounted.body.toString());
    assert.equal(mounted.headers['docker-content-digest'], baseImage.layerDigest);

    // a mount from one she may not read: an ordinary upload, no challenge, nothing linked
    const refused = await client.request('POST', `/v2/${NAME}/blobs/uploads/?mount=${secretImage.layerDigest}&from=acme/secret/img`);
    assert.equal(refused.status, 202, refused.body.toString());
    assert.equal((await client.request('HEAD', `/v2/${NAME}/blobs/${secretImage.layerDigest}`)).status, 404);

    // the manifest over the uploaded, the monolithic and the mounted blobs
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
        layers: [
          { mediaType: OCI_LAYER, digest: baseImage.layerDigest, size: 64 },
          { mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length },
        ],
      }),
    );
    const put = await client.request('PUT', `/v2/${NAME}/manifests/v1`, { headers: { 'content-type': OCI_MANIFEST }, body: manifest });
    assert.equal(put.status, 201, put.body.toString());

    // delete: the pull,push token re-challenges for delete
    const del = await client.request('DELETE', `/v2/${NAME}/manifests/${sha256(manifest)}`);
    assert.equal(del.status, 202, del.body.toString());
    // and reading again re-challenges for pull: the manifest is gone
    const gone = await client.request('GET', `/v2/${NAME}/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(gone.status, 404);
    assert.equal((JSON.parse(gone.body.toString()) as { errors: { code: string }[] }).errors[0]!.code, 'MANIFEST_UNKNOWN');

    assert.deepEqual(client.tokenRequests, [
      [],
      [`repository:${NAME}:pull,push`],
      [`repository:${NAME}:pull,push`, 'repository:acme/base/img:pull'],
      [`repository:${NAME}:delete`],
      [`repository:${NAME}:pull`],
    ]);
  });
});
