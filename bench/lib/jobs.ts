// Berth's background work: every image manifest pushed enqueues an SBOM job (`sbom.generate`,
// then `vulns.scan`), run by the durable job queue after the push was answered. Left alone,
// the jobs one round causes run during the next rounds (docker-registry's too) and blur them,
// so the bench waits, untimed, until the queue is idle, and reports what the wait cost.
import { type Client, expectStatus } from './http.ts';
import { type Server, cpuSecondsOf } from './servers.ts';
import { sleep } from './util.ts';

interface JobCount {
  kind: string;
  state: 'queued' | 'running' | 'dead';
  count: number;
  /** Queued jobs whose time has come. */
  due: number;
}

/** What waiting for an idle queue took. */
export interface Drain {
  /** Wall-clock seconds until no job was running or due. */
  seconds: number;
  /** Server CPU seconds (all processes) used meanwhile: the jobs' cost, plus the polls. */
  cpu: number;
  /** Jobs running or due when the wait began, by kind. */
  pending: Record<string, number>;
}

const POLL_MS = 100;
const TIMEOUT_MS = 15 * 60_000;

function basic(srv: Server): string {
  return `Basic ${Buffer.from(`${srv.admin!.username}:${srv.admin!.password}`).toString('base64')}`;
}

/** Jobs running or due now, by kind (site administrators' `GET /api/v1/jobs/counts`, as `berth jobs counts`). */
async function busyJobs(c: Client, srv: Server): Promise<Record<string, number>> {
  const r = await c.request('GET', '/api/v1/jobs/counts', { headers: { authorization: basic(srv) } });
  expectStatus(r, 200, `${srv.label}: GET /api/v1/jobs/counts`);
  const busy: Record<string, number> = {};
  for (const j of JSON.parse(r.body.toString('utf8')) as JobCount[]) {
    // Dead jobs wait for an operator; queued ones not due yet (gc grace periods) are not work now.
    const n = j.state === 'running' ? j.count : j.state === 'queued' ? j.due : 0;
    if (n > 0) busy[j.kind] = (busy[j.kind] ?? 0) + n;
  }
  return busy;
}

/**
 * Waits until `srv`'s job queue has nothing running and nothing due (immediately for a registry
 * without one: docker-registry). Throws after 15 minutes, naming what is still pending.
 */
export async function waitForIdleJobs(c: Client, srv: Server): Promise<Drain> {
  const t0 = performance.now();
  if (srv.kind !== 'berth' || !srv.admin) return { seconds: 0, cpu: 0, pending: {} };
  const cpu0 = cpuSecondsOf(srv.pid);
  const pending = await busyJobs(c, srv);
  let busy = pending;
  while (Object.keys(busy).length) {
    if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`${srv.label}: jobs still running or due after ${TIMEOUT_MS / 60_000} minutes: ${JSON.stringify(busy)}`);
    await sleep(POLL_MS);
    busy = await busyJobs(c, srv);
  }
  return { seconds: (performance.now() - t0) / 1000, cpu: cpuSecondsOf(srv.pid) - cpu0, pending };
}
