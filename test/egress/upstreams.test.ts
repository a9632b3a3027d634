/**
 * The pull-through cache under the egress policy, at the HTTP boundary (real sockets): upstream
 * URLs refused when saved and when connecting, blob redirects and token realms checked like the
 * first URL (and credentials kept from a realm on another host over plain http), one text for a
 * refused address, a closed port and a silent upstream, no remote body in any error, and only
 * manifests that parse (also with cache off) and blobs that verify reach the client whole.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { CONNECT_FAILED } from '../../src/core/egress/egress.ts';
import { type ProxyBerth, startProxyBerth } from '../proxy/helpers.ts';
import { closedPort, type CountingServer, countingServer, REFUSED_HOSTS, tableResolver } from './helpers.ts';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** A small image a fake upstream serves. */
const layer = randomBytes(200_000);
const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  }),
);
const LAYER = sha256(layer);

type Route = (req: http.IncomingMessage, res: http.ServerResponse) => boolean | void;

/** A fake registry: `/v2/` answers 200 unless a route takes it; `routes` first, then the image above. */
function registry(...routes: Route[]): http.RequestListener {
  return (req, res) => {
    for (const r of routes) if (r(req, res) !== false && res.headersSent) return;
    const path = (req.url ?? '').split('?')[0]!;
    if (path === '/v2/') return void res.writeHead(200).end('{}');
    if (/\/manifests\//.test(path)) return void res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': sha256(manifest) }).end(manifest);
    if (path.endsWith(`/blobs/${LAYER}`)) return void res.writeHead(200, { 'content-length': String(layer.length) }).end(layer);
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND","message":"nope"}]}');
  };
}

async function errorOf(r: Response): Promise<{ code: string; message: string }> {
  return ((await r.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
}

describe('upstreams and the egress policy', () => {
  const servers: CountingServer[] = [];
  const berths: ProxyBerth[] = [];
  const server = async (handler?: http.RequestListener) => {
    const s = await countingServer(handler);
    servers.push(s);
    return s;
  };
  const berth = async (allow: string[], proxy: Record<string, unknown> = {}) => {
    const b = await startProxyBerth({ retries: 0, ...proxy }, { egressAllow: allow, resolve: tableResolver() });
    berths.push(b);
    return b;
  };
  const pull = (b: ProxyBerth, repo: string, what: string) => fetch(`${b.url}/v2/acme/${repo}/app/${what}`, { headers: { authorization: b.auth } });
  /** An upstream row as saved before (or under a wider policy): the save-time check is skipped. */
  const rawUpstream = async (b: ProxyBerth, repo: string, url: string, extra: { cache?: boolean } = {}) => {
    const acme = (await b.berth.accessStore.findOwner('acme'))!;
    const r = (await b.berth.accessStore.findRepository('acme', repo)) ?? (await b.berth.accessStore.createRepository(acme.id, repo, 'private', ''));
    await b.berth.accessStore.createUpstream({ repositoryId: r.id, url, username: null, passwordEnc: null, priority: 0, cache: extra.cache ?? true, prefix: '', remotePrefix: '' });
  };

  let target: CountingServer;
  before(async () => {
    target = await server(registry());
  });
  after(async () => {
    for (const b of berths) await b.close();
    for (const s of servers) await s.close();
  });

  it('refuses every non-public upstream URL when it is saved (400, with the reason)', async () => {
    const b = await berth([]);
    await b.addUpstream('seed', { url: 'http://public.test' }); // creates the repository; a public name is fine
    for (const host of REFUSED_HOSTS) {
      const r = await b.api('POST', '/api/v1/repos/acme/seed/upstreams', { url: `http://${host}:${target.port}` });
      assert.equal(r.status, 400, `${host}: ${JSON.stringify(r.json)}`);
      assert.match(r.json.errors[0].message, /upstream URL refused by the egress policy: .+ address/, host);
    }
    assert.equal(target.connections(), 0);
  });

  it('refuses them again when connecting: rows saved under a wider policy reach nothing', async () => {
    const b = await berth([]);
    for (const [i, host] of REFUSED_HOSTS.entries()) {
      await rawUpstream(b, `r${i}`, `http://${host}:${target.port}`);
      const r = await pull(b, `r${i}`, 'manifests/latest');
      assert.equal(r.status, 502, host);
      const e = await errorOf(r);
      assert.equal(e.code, 'UPSTREAM_UNAVAILABLE');
      assert.match(e.message, new RegExp(`${CONNECT_FAILED}$`), host);
    }
    assert.equal(target.connections(), 0, 'nothing was sent');
  });

  it('a refused address, a closed port and a silent upstream read the same', async () => {
    const closedP = await closedPort();
    const silent = await server(() => undefined);
    const b = await berth([`127.0.0.1:${closedP}`, `127.0.0.1:${silent.port}`], { timeoutMs: 500 });
    await rawUpstream(b, 'refused', target.url);
    await b.addUpstream('closed', { url: `http://127.0.0.1:${closedP}` });
    await b.addUpstream('silent', { url: silent.url });
    const texts = [];
    for (const [repo, url] of [['refused', target.url], ['closed', `http://127.0.0.1:${closedP}`], ['silent', silent.url]] as const) {
      const r = await pull(b, repo, 'manifests/latest');
      assert.equal(r.status, 502, repo);
      texts.push((await errorOf(r)).message.replaceAll(url, 'URL').replace(`acme/${repo}/`, 'acme/REPO/'));
    }
    assert.equal(new Set(texts).size, 1, texts.join('\n'));
    assert.equal(silent.connections() > 0, true);
    assert.equal(target.connections(), 0);
  });

  it("a blob redirect is checked like the first URL; the redirect's target gets no credentials", async () => {
    const storage = await server((_req, res) => void res.writeHead(200, { 'content-length': String(layer.length) }).end(layer));
    const redirecting = (to: string) =>
      server(
        registry((req, res) => {
          if ((req.url ?? '').includes('/blobs/')) res.writeHead(307, { location: to }).end();
        }),
      );
    const toStorage = await redirecting(`${storage.url}/blob`);
    const toMetadata = await redirecting('http://169.254.169.254/latest/meta-data/');
    const toMapped = await redirecting(`http://[::ffff:127.0.0.1]:${storage.port}/blob`);
    const closed = await berth([`127.0.0.1:${toStorage.port}`, `127.0.0.1:${toMetadata.port}`, `127.0.0.1:${toMapped.port}`]);
    await closed.addUpstream('s', { url: toStorage.url });
    await closed.addUpstream('m', { url: toMetadata.url });
    await closed.addUpstream('x', { url: toMapped.url });
    for (const repo of ['s', 'm', 'x']) {
      const r = await pull(closed, repo, `blobs/${LAYER}`);
      assert.equal(r.status, 502, repo);
      const e = await errorOf(r);
      assert.match(e.message, /connection failed/, repo);
    }
    assert.equal(storage.connections(), 0, 'the redirect targets were never contacted');

    // the operator opens the storage host: the same redirect is followed and the blob verified
    const open = await berth([`127.0.0.1:${toStorage.port}`, `127.0.0.1:${storage.port}`]);
    await open.addUpstream('s', { url: toStorage.url, username: 'u', password: 'upstream-password' });
    const ok = await pull(open, 's', `blobs/${LAYER}`);
    assert.equal(ok.status, 200);
    assert.equal(sha256(Buffer.from(await ok.arrayBuffer())), LAYER);
    assert.equal(storage.requests.length, 1);
    assert.equal(storage.requests[0]!.headers.authorization, undefined, 'no credentials to the storage host');
    // another repository entitled by the same upstream (its blob HEAD answers with a redirect too):
    // the stored bytes are linked, not downloaded again
    await open.addUpstream('s2', { url: toStorage.url });
    const again = await pull(open, 's2', `blobs/${LAYER}`);
    assert.equal(again.status, 200);
    assert.equal(sha256(Buffer.from(await again.arrayBuffer())), LAYER);
    assert.equal(storage.requests.length, 1);
    assert.ok(toStorage.requests.some((r) => r.method === 'HEAD' && r.url.endsWith(`/blobs/${LAYER}`)), 'asked its own upstream first');
  });

  it("a token realm is checked like the first URL, and gets the upstream's credentials over plain http only when named", async () => {
    const tokens = await server((_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t0k3n","expires_in":300}'));
    const challenging = (realm: string) =>
      server(
        registry((req, res) => {
          if (req.headers.authorization !== 'Bearer t0k3n') res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="fake"` }).end('{}');
        }),
      );
    const toTokens = await challenging(`${tokens.url}/token`);
    const toMetadata = await challenging('http://169.254.169.254/token');
    const toLocalhost = await challenging(`http://localhost:${tokens.port}/token`);
    const b = await berth([`127.0.0.1:${toTokens.port}`, `127.0.0.1:${toMetadata.port}`, `127.0.0.1:${toLocalhost.port}`]);
    await b.addUpstream('t', { url: toTokens.url, username: 'mirror', password: 'upstream-password' });
    await b.addUpstream('m', { url: toMetadata.url, username: 'mirror', password: 'upstream-password' });
    await b.addUpstream('l', { url: toLocalhost.url });
    for (const repo of ['t', 'm', 'l']) {
      const r = await pull(b, repo, 'manifests/latest');
      assert.equal(r.status, 502, repo);
    }
    assert.equal(tokens.connections(), 0, 'no realm outside the policy was contacted');

    // allowed by range but not named: another host over plain http gets no credentials
    const ranged = await berth(['127.0.0.0/8']);
    await ranged.addUpstream('t', { url: toTokens.url, username: 'mirror', password: 'upstream-password' });
    const withheld = await pull(ranged, 't', 'manifests/latest');
    assert.equal(withheld.status, 502);
    assert.match((await errorOf(withheld)).message, /credentials withheld/);
    assert.equal(tokens.requests.length, 0);

    // named by the operator: the realm gets them, and the pull works
    const named = await berth([`127.0.0.1:${toTokens.port}`, `127.0.0.1:${tokens.port}`]);
    await named.addUpstream('t', { url: toTokens.url, username: 'mirror', password: 'upstream-password' });
    const ok = await pull(named, 't', 'manifests/latest');
    assert.equal(ok.status, 200, JSON.stringify(await ok.clone().json()));
    assert.equal(tokens.requests[0]!.headers.authorization, `Basic ${Buffer.from('mirror:upstream-password').toString('base64')}`);
  });

  it("errors carry the upstream's status, never its body", async () => {
    const leaky = await server((req, res) => {
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNKNOWN","message":"db password is INTERNAL-SECRET"}]}');
    });
    const b = await berth([`127.0.0.1:${leaky.port}`]);
    await b.addUpstream('leaky', { url: leaky.url });
    const r = await pull(b, 'leaky', 'manifests/latest');
    assert.equal(r.status, 502);
    const e = await errorOf(r);
    assert.match(e.message, /500 Internal Server Error/);
    assert.ok(!e.message.includes('INTERNAL-SECRET'), e.message);
  });

  it('only a manifest of a known media type is served, with cache on or off', async () => {
    const answers: Record<string, [string, string]> = {
      json: ['application/json', '{"internal":"INTERNAL-SECRET","schemaVersion":2}'],
      html: ['text/html', '<html>INTERNAL-SECRET admin console</html>'],
      other: ['application/vnd.example+json', '{"schemaVersion":2,"mediaType":"application/vnd.example+json"}'],
      broken: [OCI_MANIFEST, 'INTERNAL-SECRET, not JSON at all'],
      generic: ['application/octet-stream', '{"schemaVersion":2,"mediaType":"text/INTERNAL-SECRET"}'],
    };
    const odd = await server(
      registry((req, res) => {
        const tag = /\/manifests\/(\w+)$/.exec(req.url ?? '')?.[1];
        const a = tag ? answers[tag] : undefined;
        if (a) res.writeHead(200, { 'content-type': a[0] }).end(a[1]);
      }),
    );
    const b = await berth([`127.0.0.1:${odd.port}`]);
    await b.addUpstream('cached', { url: odd.url });
    await b.addUpstream('relay', { url: odd.url, cache: false });
    for (const repo of ['cached', 'relay']) {
      for (const tag of Object.keys(answers)) {
        const r = await pull(b, repo, `manifests/${tag}`);
        assert.equal(r.status, 502, `${repo}:${tag}`);
        const e = await errorOf(r);
        assert.equal(e.code, 'UPSTREAM_UNAVAILABLE');
        assert.ok(!e.message.includes('INTERNAL-SECRET'), e.message);
      }
      const good = await pull(b, repo, 'manifests/latest');
      assert.equal(good.status, 200, repo);
      assert.equal(good.headers.get('content-type'), OCI_MANIFEST);
      assert.equal(sha256(Buffer.from(await good.arrayBuffer())), sha256(manifest));
    }
  });

  it('with cache off, a blob that does not verify never reaches the client whole', async () => {
    const bad = Buffer.from(layer);
    bad[bad.length - 10]! ^= 0xff; // wrong in its last chunk: the client would otherwise have it all
    const corrupt = await server(
      registry((req, res) => {
        if ((req.url ?? '').endsWith(`/blobs/${LAYER}`)) res.writeHead(200, { 'content-length': String(bad.length) }).end(bad);
      }),
    );
    const b = await berth([`127.0.0.1:${corrupt.port}`, `127.0.0.1:${target.port}`]);
    await b.addUpstream('bad', { url: corrupt.url, cache: false });
    await b.addUpstream('good', { url: target.url, cache: false });
    const r = await pull(b, 'bad', `blobs/${LAYER}`);
    let got = 0;
    await assert.rejects(async () => {
      for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) got += c.length;
    });
    assert.ok(got < layer.length, `the client got ${got} of ${layer.length} bytes`);
    const ok = await pull(b, 'good', `blobs/${LAYER}`);
    assert.equal(sha256(Buffer.from(await ok.arrayBuffer())), LAYER);
    assert.equal(await b.berth.store.stat(LAYER), undefined, 'cache off: nothing stored');
  });
});
