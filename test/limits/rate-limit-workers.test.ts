/**
 * End-to-end: `berth serve --workers 2` on SQLite keeps one set of rate-limit counters, in the
 * supervisor (docs/limits.md): requests on new connections, spread over both workers, count
 * down one total and the one past the limit is refused.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { startBerth } from '../helpers/server.ts';

/** One GET on its own connection (no keep-alive), so the supervisor picks a worker each time. */
function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
      })
      .on('error', reject);
  });
}

test('berth serve --workers 2 on SQLite: both workers count against the same totals', { timeout: 90_000 }, async () => {
  const srv = await startBerth({ extraArgs: ['--workers', '2'], env: { BERTH_RATE_LIMITS_REFRESH_SECONDS: '1' }, startTimeoutMs: 60_000 });
  try {
    const res = await fetch(`${srv.url}/api/v1/limits`, {
      method: 'PUT',
      headers: { authorization: srv.adminAuthorization, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'anonymous', requestsPerMinute: 12 }),
    });
    assert.equal(res.status, 200, await res.text());
    // Until both workers have re-read the limits, a request may go uncounted (no headers).
    const seen: string[] = [];
    let refused: { status: number; headers: http.IncomingHttpHeaders } | undefined;
    const deadline = Date.now() + 20_000;
    while (!refused && Date.now() < deadline) {
      const r = await get(`${srv.url}/v2/_catalog`);
      if (r.status === 429) refused = r;
      else if (r.headers['ratelimit-remaining']) seen.push(String(r.headers['ratelimit-remaining']));
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(refused, `never refused; saw ${seen.join(' ')}`);
    // One shared count: 11, 10, … 0 with no value twice (per-worker counters would repeat them).
    assert.deepEqual(seen, Array.from({ length: 12 }, (_, i) => `${11 - i};w=60`));
    assert.equal(refused.headers['ratelimit-limit'], '12;w=60');
    assert.ok(Number(refused.headers['retry-after']) >= 1);
  } finally {
    await srv.stop();
  }
});
