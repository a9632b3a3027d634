import { type RateLimiterAbstract, RateLimiterCluster, RateLimiterClusterMaster, RateLimiterMemory, RateLimiterPostgres, type RateLimiterRes } from 'rate-limiter-flexible';

/** A fixed-window counter: the window of a key starts with its first point and lasts `seconds`. */
export interface Counter {
  /** Adds `points` to `key`'s window; returns the window's total and the time until it ends. */
  add(key: string, points: number): Promise<CounterState>;
  /** The window's total and end, without adding; zero when no window is open. */
  get(key: string): Promise<CounterState>;
}

export interface CounterState {
  consumed: number;
  /** Milliseconds until the window ends (0 when none is open). */
  msLeft: number;
}

/**
 * Where the counters live (docs/limits.md#where-the-counters-live):
 * - `postgres`: one table of the metadata database, shared by every node (rate-limiter-flexible's
 *   RateLimiterPostgres on the project's pool; the table is made by migration 0012).
 * - `cluster`: the supervisor of `berth serve --workers N` keeps them in memory and every worker
 *   asks it over node:cluster IPC (RateLimiterCluster); correct across the workers of one host.
 * - `memory`: this process only (the embedded default with one process).
 */
export type CounterBackend = { kind: 'memory' } | { kind: 'cluster'; timeoutMs?: number } | { kind: 'postgres'; pool: unknown };

/** Bounds no limit reaches: the limit is compared by the caller, so a changed limit applies at once. */
const UNBOUNDED = Number.MAX_SAFE_INTEGER;

class FlexibleCounter implements Counter {
  constructor(private readonly limiter: RateLimiterAbstract) {}

  async add(key: string, points: number): Promise<CounterState> {
    return state(await this.limiter.consume(key, points).catch(unavailable));
  }

  async get(key: string): Promise<CounterState> {
    const r = await this.limiter.get(key).catch(unavailable);
    return r ? state(r) : { consumed: 0, msLeft: 0 };
  }
}

/**
 * A counter that cannot be reached (the database, or the supervisor not answering within its
 * timeout) is a backing service down: 503 with Retry-After, as for the metadata store. Limits
 * fail closed: a limited client is not served uncounted.
 */
function unavailable(e: unknown): never {
  throw Object.assign(new Error('rate-limit counters are unavailable', { cause: e }), { unavailable: true });
}

function state(r: RateLimiterRes): CounterState {
  return { consumed: Number(r.consumedPoints), msLeft: Math.max(0, r.msBeforeNext) };
}

/** A counter of `seconds`-long windows named `name` in the chosen backend. */
export function openCounter(backend: CounterBackend, name: string, seconds: number): Counter {
  const opts = { points: UNBOUNDED, duration: seconds, keyPrefix: `berth-${name}` };
  switch (backend.kind) {
    case 'memory':
      return new FlexibleCounter(new RateLimiterMemory(opts));
    case 'cluster':
      return new FlexibleCounter(new RateLimiterCluster({ ...opts, timeoutMs: backend.timeoutMs ?? 5000 }));
    case 'postgres':
      // Keys carry the counter's name; the pool's search_path picks the schema.
      return new FlexibleCounter(
        new RateLimiterPostgres({ ...opts, storeClient: backend.pool, storeType: 'pool', tableName: 'rate_limit_counters', tableCreated: true, clearExpiredByTimeout: true }),
      );
  }
}

/** The supervisor's side of the `cluster` backend: answers every worker's counters (idempotent). */
export function serveClusterCounters(): void {
  new RateLimiterClusterMaster();
}
