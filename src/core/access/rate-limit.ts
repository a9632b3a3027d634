/**
 * Counts failed logins per key (a source address, a username) in a sliding window and says
 * how long a key is blocked. In process memory: with several nodes, each counts its own.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
  ) {}

  /** Seconds until `key` may try again, or 0 when it is not blocked. */
  retryAfter(key: string, now = Date.now()): number {
    const times = this.prune(key, now);
    if (times.length < this.max) return 0;
    return Math.max(1, Math.ceil((times[0]! + this.windowMs - now) / 1000));
  }

  fail(key: string, now = Date.now()): void {
    const times = this.prune(key, now);
    times.push(now);
    this.failures.set(key, times);
    if (this.failures.size > 100_000) this.sweep(now);
  }

  private prune(key: string, now: number): number[] {
    const times = (this.failures.get(key) ?? []).filter((t) => t > now - this.windowMs);
    if (times.length === 0) this.failures.delete(key);
    else this.failures.set(key, times);
    return times;
  }

  private sweep(now: number): void {
    for (const key of [...this.failures.keys()]) this.prune(key, now);
  }
}
