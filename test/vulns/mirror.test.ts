/**
 * The scheduled refresh from a mirror, on SQLite and PostgreSQL, against a local test server
 * (the only thing tests fetch): at start-up a never-refreshed database queues `vulns.refresh`;
 * the job downloads each `all.zip` through egress and imports it; a failing URL and a
 * destination the egress policy refuses are recorded as the refresh's error, without a crash.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { ADMIN, apiOk, eventually, openBerth } from '../events/helpers.ts';
import { osvZip } from './helpers.ts';

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`vulnerability database mirror (${dialect})`, () => {
    test('refresh at start-up through egress; a 404 and a refused destination become the recorded error', async (t) => {
      const zip = osvZip();
      let fetched = 0;
      const server = createServer((req, res) => {
        if (req.url === '/osv/all.zip') {
          fetched++;
          res.writeHead(200, { 'content-type': 'application/zip', 'content-length': zip.length }).end(zip);
        } else res.writeHead(404).end('no');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      t.after(() => new Promise<void>((r) => server.close(() => r())));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

      const b = await openBerth({
        ...(dialect === 'postgres' ? { postgres: true } : {}),
        egress: { allow: ['127.0.0.1'] },
        vulns: { mirror: { urls: [`${base}/osv/all.zip`, `${base}/osv/missing.zip`], refreshHours: 24 } },
      });
      t.after(() => b.close());
      const status = await eventually(async () => {
        const s = await apiOk(b.app, 'GET', '/api/v1/vulndb', ADMIN, undefined, 200);
        return s.mirror.refreshedAt ? s : undefined;
      }, 30_000, 'the first refresh');
      assert.equal(fetched, 1);
      assert.match(status.mirror.lastError, /missing\.zip: the mirror answered 404/);
      assert.equal(status.ecosystems.reduce((n: number, e: { records: number }) => n + e.records, 0), 6);
      assert.equal(status.source, 'mirror osv/all.zip');

      // The same mirror on a node whose egress policy does not open loopback: refused, recorded.
      const closed = await openBerth({ ...(dialect === 'postgres' ? { postgres: true } : {}), vulns: { mirror: { urls: [`${base}/osv/all.zip`], refreshHours: 24 } } });
      t.after(() => closed.close());
      const refused = await eventually(async () => {
        const s = await apiOk(closed.app, 'GET', '/api/v1/vulndb', ADMIN, undefined, 200);
        return s.mirror.refreshedAt ? s : undefined;
      }, 30_000, 'the refused refresh');
      assert.match(refused.mirror.lastError, /connection failed/);
      assert.deepEqual(refused.ecosystems, []);
      assert.equal(fetched, 1, 'nothing reached the server');
    });
  });
}
