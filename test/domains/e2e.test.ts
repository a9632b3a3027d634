/**
 * Custom domains with real clients on real sockets. One Berth serves HTTPS on every loopback
 * address; distinct 127.0.0.x addresses stand in for host names (Linux routes 127/8 to
 * loopback), mapped with the real `berth domain add`:
 *   127.0.0.2 → acme (owner)   127.0.0.3 → other/prod (repository)
 *   127.0.0.4 → acme/mirror (read-only mirror; its upstream is 127.0.0.3, so the mirror's
 *               library/alpine is other/prod/library/alpine, fetched through the pull-through cache)
 *   registry.acme.test → acme, with its own certificate chosen by SNI (curl --resolve)
 * skopeo and podman log in, push, pull, list tags and delete with short names; a token of one
 * host is refused on the other; podman reads the mirror as a `[[registry.mirror]]` of docker.io.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import path from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ADMIN_PASSWORD, basic, berthCli, run, spawnBerth, tempDir, type ServerProcess } from '../auth/helpers.ts';
import { buildImage, resolveTag } from '../helpers/oci-layout.ts';
import { createSkopeo, type Skopeo } from '../helpers/skopeo.ts';

const exec = promisify(execFile);
const ADMIN = basic('admin', ADMIN_PASSWORD);
const SNI_HOST = 'registry.acme.test';

/** A CA, a server certificate for the loopback addresses signed by it, and one for SNI_HOST from another CA. */
async function makeCerts(dir: string) {
  const f = (x: string) => path.join(dir, x);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'acme-ca']) await exec('openssl', ['req', '-x509', ...ec, '-days', '2', '-subj', `/CN=Berth domains test ${ca}`, '-keyout', f(`${ca}.key`), '-out', f(`${ca}.crt`)]);
  const sign = async (name: string, ca: string, san: string) => {
    await exec('openssl', ['req', ...ec, '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`)]);
    await writeFile(f(`${name}.cnf`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    await exec('openssl', ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.cnf`), '-out', f(`${name}.crt`)]);
  };
  await sign('main', 'ca', 'IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4,DNS:localhost');
  await sign(SNI_HOST, 'acme-ca', `DNS:${SNI_HOST}`);
  return { ca: f('ca.crt'), acmeCa: f('acme-ca.crt'), cert: f('main.crt'), key: f('main.key'), acmeCert: f(`${SNI_HOST}.crt`), acmeKey: f(`${SNI_HOST}.key`) };
}

describe('[domains] skopeo and podman on two mapped hosts, a mirror and the main host', () => {
  let dir: { dir: string; remove: () => Promise<void> };
  let certs: Awaited<ReturnType<typeof makeCerts>>;
  let srv: ServerProcess;
  let skopeo: Skopeo;
  let ca: Buffer;
  let port: number;
  let apiKey: string;
  let oci: string;
  const host = (n: number) => `127.0.0.${n}:${port}`;

  /** An https request to 127.0.0.x (trusting the test CA); resolves with status, headers and body. */
  function fetchAt(n: number, p: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
    return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
      const req = request({ host: `127.0.0.${n}`, port, path: p, method: opts.method ?? 'GET', headers: { host: host(n), ...opts.headers }, ca }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end(opts.body);
    });
  }
  const api = async (method: string, p: string, body?: unknown) => {
    const r = await fetchAt(1, p, { method, headers: { authorization: ADMIN, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${r.body}`);
    return r.body ? JSON.parse(r.body) : undefined;
  };
  const cli = (...args: string[]) => berthCli(args, { BERTH_URL: `https://127.0.0.1:${port}`, BERTH_API_KEY: apiKey, NODE_EXTRA_CA_CERTS: certs.ca });

  /** podman isolated in its own folder, with a registries.conf of its own. */
  async function podman(name: string, conf: string) {
    const pd = path.join(dir.dir, name);
    await mkdir(pd, { recursive: true });
    await writeFile(path.join(pd, 'registries.conf'), conf);
    await writeFile(path.join(pd, 'auth.json'), '{"auths":{}}');
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: pd, CONTAINERS_REGISTRIES_CONF: path.join(pd, 'registries.conf'), REGISTRY_AUTH_FILE: path.join(pd, 'auth.json'), TMPDIR: pd };
    const global = ['--root', path.join(pd, 'root'), '--runroot', path.join(pd, 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    return async (args: string[], input?: string) => {
      const r = await run('podman', [...global, ...args], { env, ...(input === undefined ? {} : { input }), timeoutMs: 60_000 });
      return r;
    };
  }

  before(async () => {
    dir = await tempDir('berth-domains-e2e-');
    certs = await makeCerts(dir.dir);
    ca = await readFile(certs.ca);
    srv = await spawnBerth({
      listenHost: '0.0.0.0',
      tlsCa: ca,
      env: { BERTH_TLS_CERT: certs.cert, BERTH_TLS_KEY: certs.key, BERTH_EGRESS_ALLOW: '127.0.0.0/8', NODE_EXTRA_CA_CERTS: certs.ca, BERTH_DOMAINS_CACHE_SECONDS: '0' },
    });
    port = srv.port;
    skopeo = await createSkopeo();
    apiKey = (await api('POST', '/api/v1/user/api-keys', { name: 'cli' })).secret;
    for (const o of ['acme', 'other']) await api('POST', '/api/v1/orgs', { name: o });
    await api('POST', '/api/v1/owners/acme/repos', { name: 'prod' });
    await api('POST', '/api/v1/owners/other/repos', { name: 'prod' });
    await api('POST', '/api/v1/owners/acme/repos', { name: 'mirror', visibility: 'public' });
    await api('POST', '/api/v1/repos/acme/mirror/upstreams', { url: `https://${host(3)}`, username: 'admin', password: ADMIN_PASSWORD });
    for (const args of [
      ['127.0.0.2', 'acme'],
      ['127.0.0.3', 'other/prod'],
      ['127.0.0.4', 'acme/mirror', '--mirror'],
      [SNI_HOST, 'acme', '--cert', certs.acmeCert, '--key', certs.acmeKey],
    ]) {
      const r = await cli('domain', 'add', ...args);
      assert.equal(r.code, 0, `berth domain add ${args.join(' ')}: ${r.stderr}`);
    }
    oci = path.join(dir.dir, 'oci');
    await buildImage(oci, { layers: [{ size: 20_000 }] }, 'v1');
  });
  after(async () => {
    await srv?.stop();
    await skopeo?.cleanup();
    await dir?.remove();
  });

  it('berth domain list shows them; the certificate, never the key', async () => {
    const r = await cli('--json', 'domain', 'list');
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { host: string; target: string; mirror: boolean; certificate: boolean }[];
    assert.deepEqual(
      rows.map((d) => [d.host, d.target, d.mirror, d.certificate]),
      [['127.0.0.2', 'acme', false, false], ['127.0.0.3', 'other/prod', false, false], ['127.0.0.4', 'acme/mirror', true, false], [SNI_HOST, 'acme', false, true]],
    );
    assert.doesNotMatch(r.stdout, /PRIVATE KEY/);
  });

  it('skopeo: login, push, pull, list tags and delete with short names on both hosts and the main host', async () => {
    const pushed = await resolveTag(oci, 'v1');
    for (const [n, name] of [[2, 'prod/app'], [3, 'library/alpine'], [1, 'acme/prod/main']] as const) {
      await skopeo.login(host(n), 'admin', ADMIN_PASSWORD);
      await skopeo.copy(`oci:${oci}:v1`, `docker://${host(n)}/${name}:v1`, ['--preserve-digests']);
      await skopeo.copy(`oci:${oci}:v1`, `docker://${host(n)}/${name}:v2`, ['--preserve-digests']);
      assert.deepEqual(await skopeo.listTags(`docker://${host(n)}/${name}`), ['v1', 'v2']);
      const out = path.join(dir.dir, `pulled-${n}`);
      await skopeo.copy(`docker://${host(n)}/${name}:v1`, `oci:${out}:v1`, ['--preserve-digests']);
      assert.equal((await resolveTag(out, 'v1')).digest, pushed.digest);
    }
    // the same images under their long names on the main host
    assert.deepEqual(await skopeo.listTags(`docker://${host(1)}/acme/prod/app`), ['v1', 'v2']);
    assert.deepEqual(await skopeo.listTags(`docker://${host(1)}/other/prod/library/alpine`), ['v1', 'v2']);
    // a name outside the mapping is unknown there
    await assert.rejects(skopeo.listTags(`docker://${host(3)}/acme/prod/app`), /name unknown|not known|404/i);
    // delete by short name (skopeo deletes the manifest the tag names: both tags go)
    await skopeo.copy(`oci:${oci}:v1`, `docker://${host(2)}/prod/gone:v1`, ['--preserve-digests']);
    await skopeo.delete(`docker://${host(2)}/prod/gone:v1`);
    assert.deepEqual(await skopeo.listTags(`docker://${host(2)}/prod/gone`), []);
  });

  it('a token issued on one host is refused on the other and on the main host', async () => {
    const t = await fetchAt(2, `/v2/token?service=127.0.0.2&scope=${encodeURIComponent('repository:prod/app:pull')}`, { headers: { authorization: ADMIN } });
    assert.equal(t.status, 200, t.body);
    const bearer = `Bearer ${JSON.parse(t.body).token}`;
    assert.equal((await fetchAt(2, '/v2/prod/app/tags/list', { headers: { authorization: bearer } })).status, 200);
    for (const [n, p] of [[3, '/v2/library/alpine/tags/list'], [1, '/v2/acme/prod/app/tags/list']] as const) {
      const r = await fetchAt(n, p, { headers: { authorization: bearer } });
      assert.equal(r.status, 401, `127.0.0.${n}${p}`);
      assert.match(String(r.headers['www-authenticate']), new RegExp(`realm="https://127\\.0\\.0\\.${n}:${port}/v2/token",service="${n === 1 ? 'berth' : `127\\.0\\.0\\.${n}`}".*error="invalid_token"`));
    }
  });

  it('podman: an entitlement token logs in on the repository host and pulls by the short name', async () => {
    const tok = await api('POST', '/api/v1/repos/other/prod/tokens', { name: 'customer' });
    const pod = await podman('podman-token', `[[registry]]\nlocation = "${host(3)}"\ninsecure = true\n`);
    const login = await pod(['login', '--tls-verify=false', '-u', 'token', '--password-stdin', host(3)], tok.secret);
    assert.equal(login.code, 0, login.stderr);
    const pull = await pod(['pull', '--tls-verify=false', `${host(3)}/library/alpine:v1`]);
    assert.equal(pull.code, 0, pull.stderr);
    // the same credential pushes nothing, and on the other host it sees nothing
    await pod(['tag', `${host(3)}/library/alpine:v1`, `${host(3)}/library/alpine:mine`]);
    assert.notEqual((await pod(['push', '--tls-verify=false', `${host(3)}/library/alpine:mine`])).code, 0);
    const elsewhere = await pod(['pull', '--tls-verify=false', '--creds', `token:${tok.secret}`, `${host(2)}/prod/app:v1`]);
    assert.notEqual(elsewhere.code, 0);
  });

  it('mirror mode: podman pulls docker.io/library/alpine through the mirror host; containerd ?ns= works; pushes are refused', async () => {
    const pod = await podman(
      'podman-mirror',
      `unqualified-search-registries = []\n[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n[[registry.mirror]]\nlocation = "${host(4)}"\ninsecure = true\n`,
    );
    const pull = await pod(['pull', 'docker.io/library/alpine:v1']);
    assert.equal(pull.code, 0, pull.stderr);
    const inspect = await pod(['image', 'inspect', '--format', '{{.Digest}}', 'docker.io/library/alpine:v1']);
    assert.equal(inspect.stdout.trim(), (await resolveTag(oci, 'v1')).digest);
    // what the mirror fetched is cached in acme/mirror
    assert.deepEqual(await skopeo.listTags(`docker://${host(1)}/acme/mirror/library/alpine`), ['v1', 'v2']);
    // containerd asks /v2/<name>/manifests/<ref>?ns=docker.io; the mirror repository is public
    const head = await fetchAt(4, '/v2/library/alpine/manifests/v2?ns=docker.io', { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(head.status, 200);
    // a token of the mirror grants pull only, whatever is asked
    const anon = await fetchAt(4, `/v2/token?service=127.0.0.4&scope=${encodeURIComponent('repository:library/alpine:pull,push')}`);
    const token = JSON.parse(anon.body).token as string;
    assert.deepEqual(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).access, [{ type: 'repository', name: 'library/alpine', actions: ['pull'] }]);
    const m = await fetchAt(4, '/v2/library/alpine/manifests/v2?ns=docker.io', { headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(m.status, 200, m.body);
    // read-only, even for the administrator
    await skopeo.login(host(4), 'admin', ADMIN_PASSWORD);
    await assert.rejects(skopeo.copy(`oci:${oci}:v1`, `docker://${host(4)}/library/alpine:pushed`), /read-only mirror|unsupported/i);
  });

  it('TLS: a domain with a certificate gets it by SNI (curl verifies it); others get the server certificate', async () => {
    const served = (servername: string, trust: string) =>
      new Promise<string>((resolve, reject) => {
        void readFile(trust).then((caPem) => {
          const s = connect({ host: '127.0.0.1', port, ca: caPem, servername }, () => {
            const fp = s.getPeerCertificate().fingerprint256;
            s.end();
            resolve(fp);
          });
          s.on('error', reject);
        }, reject);
      });
    assert.equal(await served(SNI_HOST, certs.acmeCa), new X509Certificate(await readFile(certs.acmeCert)).fingerprint256);
    assert.equal(await served('localhost', certs.ca), new X509Certificate(await readFile(certs.cert)).fingerprint256);
    const r = await exec('curl', ['-sS', '-i', '--resolve', `${SNI_HOST}:${port}:127.0.0.1`, '--cacert', certs.acmeCa, `https://${SNI_HOST}:${port}/v2/prod/app/tags/list`]);
    assert.match(r.stdout, /^HTTP\/1\.1 401/m);
    assert.match(r.stdout, new RegExp(`www-authenticate: Bearer realm="https://${SNI_HOST.replace(/\./g, '\\.')}:${port}/v2/token",service="${SNI_HOST.replace(/\./g, '\\.')}",scope="repository:prod/app:pull"`, 'i'));
    const ok = await exec('curl', ['-sS', '-u', `admin:${ADMIN_PASSWORD}`, '--resolve', `${SNI_HOST}:${port}:127.0.0.1`, '--cacert', certs.acmeCa, `https://${SNI_HOST}:${port}/v2/prod/app/tags/list`]);
    assert.deepEqual(JSON.parse(ok.stdout), { name: 'prod/app', tags: ['v1', 'v2'] });
  });
});
