/**
 * Results kept per digest for the whole registry (vulnerability reports) are shown only for
 * manifests stored in the image asked about (docs/security.md, "Vulnerability reports"): an
 * index cached from an upstream the attacker runs lists another tenant's private digest, and
 * its report stays unseen.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { VulnStore } from '../../src/metadata/vuln-store.ts';
import { ADMIN, OCI_MANIFEST, USER_PASSWORD, type EventsBerth, type PushedImage, api, apiOk, basic, eventually, openBerth, pushImage, sha256 } from '../events/helpers.ts';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

for (const driver of ['sqlite', 'postgres'] as const) {
  describe(`vulnerability reports of digests the caller cannot read (${driver})`, () => {
    let b: EventsBerth;
    let upstream: http.Server;
    let victim: PushedImage;
    const mallory = basic('mallory', USER_PASSWORD);
    before(async () => {
      b = await openBerth({ postgres: driver === 'postgres', egress: { allow: ['127.0.0.1'] } });
      await apiOk(b.app, 'POST', '/api/v1/orgs', ADMIN, { name: 'acme' }, 201);
      await apiOk(b.app, 'POST', '/api/v1/owners/acme/repos', ADMIN, { name: 'secret', visibility: 'private' }, 201);
      victim = await pushImage(b.app, 'acme/secret/app', 'v1');
      // The victim's image was scanned: its report is stored by digest.
      const findings = [{ id: 'GHSA-leak-leak-leak', aliases: ['CVE-2099-0001'], severity: 'critical', package: { name: 'internal-billing', purl: 'pkg:npm/internal-billing@1.0.0' }, installed: '1.0.0' }];
      const store = (b.berth.registry.vulns as unknown as { store: VulnStore }).store;
      await eventually(() => store.findReport(victim.digest), 15_000, 'the scan after the push'); // then replaced
      await store.saveReport({ digest: victim.digest, scannedAt: Date.now(), dbVersion: 1, dbAsOf: null, summary: JSON.stringify({ critical: 1 }), data: JSON.stringify({ summary: { critical: 1 }, findings }) }, true);

      // Mallory: an ordinary account, her own organisation and a repository mirroring her server.
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: victim.digest, size: victim.bytes.length, platform: { os: 'linux', architecture: 'amd64' } }] }));
      upstream = http.createServer((req, res) => {
        const path = (req.url ?? '').split('?')[0]!;
        if (path === '/v2/') return void res.writeHead(200).end('{}');
        if (path.endsWith('/manifests/v1')) return void res.writeHead(200, { 'content-type': OCI_INDEX, 'docker-content-digest': sha256(index) }).end(req.method === 'HEAD' ? undefined : index);
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}');
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      await apiOk(b.app, 'POST', '/api/v1/users', ADMIN, { username: 'mallory', password: USER_PASSWORD }, 201);
      await apiOk(b.app, 'POST', '/api/v1/orgs', mallory, { name: 'evil' }, 201);
      await apiOk(b.app, 'POST', '/api/v1/owners/evil/repos', mallory, { name: 'mirror', visibility: 'private' }, 201);
      await apiOk(b.app, 'POST', '/api/v1/repos/evil/mirror/upstreams', mallory, { url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` }, 201);
    });
    after(async () => {
      await b?.close();
      upstream?.close();
    });

    it("a cached index naming another tenant's digest shows no report for it", async () => {
      const pulled = await api(b.app, 'GET', '/v2/evil/mirror/app/manifests/v1', mallory, undefined, { accept: OCI_INDEX });
      assert.equal(pulled.status, 200, pulled.res.body);
      assert.equal((await api(b.app, 'GET', '/v2/acme/secret/app/manifests/v1', mallory)).status, 404, 'mallory cannot read the victim');
      const r = await api(b.app, 'GET', '/api/v1/repos/evil/mirror/vulnerabilities?image=app&ref=v1', mallory);
      assert.equal(r.status, 200, r.res.body);
      assert.doesNotMatch(r.res.body, /internal-billing|GHSA-leak|CVE-2099/, 'the report of a digest mallory cannot read leaked');
      assert.equal(r.json.platforms[0].status, 'pending');
      assert.equal(r.json.summary, null);
      const tags = await api(b.app, 'GET', '/api/v1/repos/evil/mirror/vulnerabilities/tags?image=app', mallory);
      assert.equal(tags.status, 200, tags.res.body);
      assert.doesNotMatch(tags.res.body, /critical":1/, 'the tag summary leaked it');
      // The victim still sees its own report.
      const own = await api(b.app, 'GET', '/api/v1/repos/acme/secret/vulnerabilities?image=app&ref=v1', ADMIN);
      assert.match(own.res.body, /internal-billing/);
    });
  });
}
