/**
 * The vulnerability database end to end inside one Berth, on SQLite and PostgreSQL: an OSV
 * all.zip imported through the management API (a withdrawn record later removed), inventories
 * stored as the SBOM job stores them, matching run by the job queue, reports and tag summaries,
 * a refresh that re-evaluates every stored inventory without reading a blob (the blobs are
 * deleted first), the `vulnerability` event (audit log and a webhook), and the pull policy:
 * refusal with a readable message, the fixed image let through, owners exempt, exceptions that
 * expire, block until scanned.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ADMIN, allEvents, api, apiOk, type EventsBerth, openBerth, pull, pushImage, type Receiver, setupTenancy, startReceiver, type Tenancy } from '../events/helpers.ts';
import { VULNS_RESCAN, VULNS_SCAN } from '../../src/core/supply-chain/vulns/vulns.ts';
import { alpineInventory, debianInventory, osvZip, ubuntuInventory } from './helpers.ts';
import type { ImageInventory } from '../../src/core/supply-chain/inventory.ts';

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`vulnerabilities (${dialect})`, () => {
    let b: EventsBerth;
    let t: Tenancy;
    let hooks: Receiver;
    const digests: Record<string, string> = {};

    /** Stores an inventory as the SBOM job does, then lets the queue match it. */
    const inventory = async (inv: ImageInventory) => {
      const r = b.berth.registry;
      await r.sbom.inventories.save(inv);
      await r.sbom.onInventory!(inv.digest, 0);
      await r.jobs.runDue([VULNS_SCAN]);
    };
    const report = (image: string, ref: string, auth = t.carol) => apiOk(b.app, 'GET', `/api/v1/repos/acme/prod/vulnerabilities?image=${image}&ref=${encodeURIComponent(ref)}`, auth, undefined, 200);
    const policy = (body: unknown) => apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/vulnerability-policy', t.bob, body, 200);

    before(async () => {
      // Webhook deliveries go to a receiver on loopback, which the egress policy must open.
      b = await openBerth({ egress: { allow: ['127.0.0.1'] }, ...(dialect === 'postgres' ? { postgres: true } : {}) });
      await b.berth.registry.jobs.stop(); // the tests run the jobs they mean to
      t = await setupTenancy(b.app);
      hooks = await startReceiver();
      await apiOk(b.app, 'POST', '/api/v1/repos/acme/prod/webhooks', t.bob, { url: hooks.url, events: ['vulnerability'] }, 201);
      for (const tag of ['vuln', 'fixed', 'alpine', 'ubuntu']) digests[tag] = (await pushImage(b.app, 'acme/prod/app', tag)).digest;
    });
    after(async () => {
      await b?.close();
      await hooks?.close();
    });

    test('an OSV all.zip imports through the API (site administrators only); a second import changes nothing', async () => {
      const upload = (auth: string) =>
        b.app.inject({ method: 'POST', url: '/api/v1/vulndb/import?source=all.zip', headers: { authorization: auth, 'content-type': 'application/zip' }, payload: osvZip() });
      assert.equal((await upload(t.bob)).statusCode, 403);
      const res = await upload(ADMIN);
      assert.equal(res.statusCode, 200, res.body);
      const first = res.json();
      assert.deepEqual([first.records, first.changed, first.skipped, first.invalid], [6, 6, 2, 1]);
      assert.match(first.errors[0], /broken\.json: not JSON/);
      const again = (await upload(ADMIN)).json();
      assert.deepEqual([again.changed, again.unchanged, again.database.version], [0, 6, first.database.version]);
      const status = await apiOk(b.app, 'GET', '/api/v1/vulndb', ADMIN, undefined, 200);
      assert.equal(status.asOf, '2024-05-01T00:00:00.000Z');
      assert.deepEqual(
        Object.fromEntries(status.ecosystems.map((e: { ecosystem: string; records: number }) => [e.ecosystem, e.records])),
        { 'Alpine:v3.19': 1, 'Debian:12': 2, PyPI: 1, 'Ubuntu:22.04': 1, npm: 1 },
      );
      const bad = await b.app.inject({ method: 'POST', url: '/api/v1/vulndb/import', headers: { authorization: ADMIN, 'content-type': 'application/zip' }, payload: Buffer.from('not a zip') });
      assert.equal(bad.statusCode, 400, bad.body);
    });

    test('a stored inventory is matched by a job: vulnerable versions reported with their fix, fixed ones not, binaries by source', async () => {
      await inventory(debianInventory(digests.vuln!, false));
      await inventory(debianInventory(digests.fixed!, true));
      await inventory(alpineInventory(digests.alpine!));
      await inventory(ubuntuInventory(digests.ubuntu!));

      const v = await report('app', 'vuln');
      assert.equal(v.status, 'scanned');
      assert.equal(v.digest, digests.vuln);
      const found = new Map(v.report.findings.map((f: any) => [`${f.id} ${f.package.name}`, f]));
      assert.deepEqual([...found.keys()].sort(), ['DEBIAN-CVE-2024-9002 zlib1g', 'DSA-9001-1 libssl3', 'DSA-9001-1 openssl', 'GHSA-xvch-5gv4-984h minimist', 'PYSEC-2023-74 requests']);
      const ssl: any = found.get('DSA-9001-1 libssl3');
      assert.deepEqual([ssl.severity, ssl.score, ssl.installed, ssl.fixed, ssl.aliases, ssl.package.source.name], ['critical', 9.8, '3.0.11-1~deb12u1', '3.0.11-1~deb12u2', ['CVE-2024-9001'], 'openssl']);
      assert.equal((found.get('DEBIAN-CVE-2024-9002 zlib1g') as any).fixed, undefined, 'last_affected: no fix known');
      assert.equal((found.get('PYSEC-2023-74 requests') as any).fixed, '2.31.0');
      assert.deepEqual(v.summary, { critical: 2, high: 2, medium: 1, low: 0, unknown: 0 });
      assert.equal(v.report.databaseAsOf, '2024-05-01T00:00:00.000Z');
      assert.ok(v.report.scannedAt);

      const f = await report('app', digests.fixed!);
      assert.deepEqual(f.report.findings, []);
      assert.deepEqual((await report('app', 'alpine')).report.findings.map((x: any) => [x.id, x.package.name, x.fixed]), [['ALPINE-CVE-2024-9003', 'ssl_client', '1.36.1-r16']]);
      assert.deepEqual((await report('app', 'ubuntu')).report.findings.map((x: any) => [x.id, x.severity]), [['UBUNTU-CVE-2024-9004', 'high']]);

      const tags = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/vulnerabilities/tags?image=app', t.carol, undefined, 200);
      assert.deepEqual(
        Object.fromEntries(tags.tags.map((x: any) => [x.tag, x.summary.critical + x.summary.high])),
        { alpine: 0, fixed: 0, ubuntu: 1, vuln: 4 },
      );
      assert.equal((await api(b.app, 'GET', '/api/v1/repos/acme/prod/vulnerabilities?image=app&ref=vuln', t.dave)).status, 404, 'no report for who may not pull');
    });

    test('the pull policy refuses a vulnerable image with a message naming the worst findings; the fixed one, owners and pushers pass', async () => {
      assert.equal((await api(b.app, 'PUT', '/api/v1/repos/acme/prod/vulnerability-policy', t.carol, { denySeverity: 'high' })).status, 403);
      await policy({ denySeverity: 'high' });
      const denied = await pull(b.app, 'acme/prod/app', 'vuln', t.carol);
      assert.equal(denied.statusCode, 403);
      const err = denied.json().errors[0];
      assert.equal(err.code, 'DENIED');
      assert.match(err.message, /vulnerab/);
      assert.match(err.message, /DSA-9001-1 \(CVE-2024-9001\) in libssl3 3\.0\.11-1~deb12u1, critical, fixed in 3\.0\.11-1~deb12u2/);
      assert.equal((await pull(b.app, 'acme/prod/app', digests.vuln!, t.token)).statusCode, 403, 'by digest, with an entitlement token');
      assert.equal((await pull(b.app, 'acme/prod/app', 'fixed', t.carol)).statusCode, 200);
      assert.equal((await pull(b.app, 'acme/prod/app', 'vuln', ADMIN)).statusCode, 200, 'site administrators may push: exempt');
      assert.equal((await pull(b.app, 'acme/prod/app', 'vuln', t.bob)).statusCode, 200, 'repository admins: exempt');

      // Only fixable ones at or above medium: zlib (no fix) no longer counts, openssl still does.
      await policy({ denySeverity: 'critical', fixableOnly: true });
      const msg = (await pull(b.app, 'acme/prod/app', 'vuln', t.carol)).json().errors[0].message;
      assert.match(msg, /1 fixable vulnerability at or above critical: DSA-9001-1/);
      const view = await apiOk(b.app, 'GET', '/api/v1/repos/acme/prod/vulnerability-policy', t.carol, undefined, 200);
      assert.deepEqual([view.denySeverity, view.fixableOnly, view.blockUntilScanned], ['critical', true, false]);
    });

    test('an exception by CVE alias lets the image through until it expires', async () => {
      await apiOk(b.app, 'PUT', '/api/v1/repos/acme/prod/vulnerability-policy/exceptions/CVE-2024-9001', t.bob, { expires: '2s', reason: 'not reachable' }, 200);
      assert.equal((await pull(b.app, 'acme/prod/app', 'vuln', t.carol)).statusCode, 200);
      await new Promise((r) => setTimeout(r, 2100));
      assert.equal((await pull(b.app, 'acme/prod/app', 'vuln', t.carol)).statusCode, 403, 'expired');
      const bad = await api(b.app, 'PUT', '/api/v1/repos/acme/prod/vulnerability-policy/exceptions/CVE-2024-9001', t.bob, { expires: 'tomorrow' });
      assert.equal(bad.status, 400);
      const gone = await apiOk(b.app, 'DELETE', '/api/v1/repos/acme/prod/vulnerability-policy/exceptions/CVE-2024-9001', t.bob, undefined, 200);
      assert.deepEqual(gone.exceptions, []);
    });

    test('a database refresh re-evaluates every stored inventory without reading a blob; a new critical raises an event', async () => {
      await rm(path.join(b.dir, 'storage', 'blobs'), { recursive: true, force: true }); // no blob could be read now
      const bash = {
        id: 'DSA-9005-1',
        modified: '2024-06-01T00:00:00Z',
        aliases: ['CVE-2024-9005'],
        severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
        affected: [{ package: { ecosystem: 'Debian:12', name: 'bash' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '5.2.15-3' }] }] }],
      };
      const res = await b.app.inject({
        method: 'POST',
        url: '/api/v1/vulndb/import?source=bash.ndjson',
        headers: { authorization: ADMIN, 'content-type': 'application/x-ndjson' },
        // A record withdrawn since the first import goes (and its findings with it).
        payload: `\n${JSON.stringify(bash)}\n${JSON.stringify({ id: 'GHSA-xvch-5gv4-984h', modified: '2024-06-02T00:00:00Z', withdrawn: '2024-06-02T00:00:00Z', affected: [] })}\n`,
      });
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual([res.json().records, res.json().skipped, res.json().changed], [1, 1, 2]);
      const r = b.berth.registry;
      for (let i = 0; i < 5 && (await r.jobs.runDue([VULNS_RESCAN, VULNS_SCAN])).completed > 0; i++);
      const f = await report('app', 'fixed');
      assert.deepEqual(f.report.findings.map((x: any) => [x.id, x.package.name, x.installed, x.fixed]), [['DSA-9005-1', 'bash', '5.2.15-2+b2', '5.2.15-3']]);
      assert.equal(f.report.databaseAsOf, '2024-06-01T00:00:00.000Z');
      const v = await report('app', 'vuln');
      assert.ok(!v.report.findings.some((x: any) => x.id === 'GHSA-xvch-5gv4-984h'), 'withdrawn');
      assert.ok(v.report.findings.some((x: any) => x.id === 'DSA-9005-1'));
      // The policy (critical, fixable only) now refuses the once-clean image too: the report changed its verdict.
      const denied = await pull(b.app, 'acme/prod/app', 'fixed', t.carol);
      assert.equal(denied.statusCode, 403);
      assert.match(denied.json().errors[0].message, /DSA-9005-1 \(CVE-2024-9005\) in bash/);
      await b.flush();
      const events = await allEvents(b.app, 'action=vulnerability');
      const forFixed = events.filter((e) => e.digest === digests.fixed);
      assert.equal(forFixed.length, 1, JSON.stringify(events));
      assert.deepEqual(forFixed[0].detail.new, ['DSA-9005-1']);
      assert.equal(forFixed[0].repository, 'acme/prod');
      assert.equal(events.filter((e) => e.digest === digests.vuln && e.detail.new.includes('DSA-9005-1')).length, 1);
      // The webhook of acme/prod subscribed to `vulnerability` gets every one of them.
      const delivered = (await hooks.waitFor(events.length)).map((h) => JSON.parse(h.body));
      assert.ok(delivered.every((d) => d.event === 'vulnerability' && d.repository === 'acme/prod'));
      assert.ok(delivered.some((d) => d.digest === digests.fixed && d.detail.new[0] === 'DSA-9005-1'), JSON.stringify(delivered));
    });

    test('block until scanned: a new push waits for its report', async () => {
      await policy({ denySeverity: 'none', blockUntilScanned: true });
      const fresh = await pushImage(b.app, 'acme/prod/app', 'new');
      const waiting = await pull(b.app, 'acme/prod/app', 'new', t.carol);
      assert.equal(waiting.statusCode, 403);
      assert.match(waiting.json().errors[0].message, /not been scanned for vulnerabilities yet/);
      assert.equal((await pull(b.app, 'acme/prod/app', 'vuln', t.carol)).statusCode, 200, 'scanned images pass with deny none');
      await inventory(debianInventory(fresh.digest, true));
      assert.equal((await pull(b.app, 'acme/prod/app', 'new', t.carol)).statusCode, 200);
      await policy({ blockUntilScanned: false });
    });
  });
}
