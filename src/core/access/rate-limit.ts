import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { AccessStore } from '../../metadata/access-store.ts';

/** The login-failure policy (config `auth.*`; docs/security.md, "Login failures and lockout"). */
export interface LoginLimits {
  /** Counters start at the first failure and last this long. */
  windowSeconds: number;
  /** Failures of one username from one source before each next try must wait. */
  delayAfterFailures: number;
  /** The wait doubles after each further failure (1 s, 2 s, 4 s, …) up to this; 0: no delays. */
  maxDelaySeconds: number;
  /** Failures of one username from one source within the window; then that pair waits out the window. */
  maxFailures: number;
  /**
   * Failures of one username from all sources within the window; then sources that have failed
   * for it wait out the window. Sources without a failure for it are never held back.
   */
  maxUserFailures: number;
}

export type LoginFailureStore = Pick<AccessStore, 'findLoginFailures' | 'addLoginFailure' | 'clearLoginFailures' | 'deleteLoginFailuresBefore'>;

/** What a check found: the seconds to wait (0: go ahead) and whether the pair had failed. */
export interface LoginCheck {
  retryAfter: number;
  pairFailed: boolean;
}

const PRUNE_EVERY_MS = 60_000;

/**
 * Failed logins, counted per (source, username) and per username in the metadata store, so
 * every node sees the same counts. The policy:
 * - a (source, username) pair gets `delayAfterFailures` free failures, then each try waits
 *   2^(k−1) s after the previous failure (k = failures past the free ones, capped at
 *   `maxDelaySeconds`), and after `maxFailures` the pair waits out the window;
 * - once a username has `maxUserFailures` failures from all sources, every source that has
 *   failed for it waits out the window;
 * - nothing else is ever refused: other usernames at the same address (a NAT), and the same
 *   username from an address that has not failed, go through. A success clears its pair.
 * A source is an IPv4 address or an IPv6 /64. Keys are SHA-256 hashes: bounded, no names stored.
 */
export class LoginLimiter {
  private lastPrune = 0;
  /** Pairs this process counted a failure for (a hint: a success on a cached password clears them without a read). */
  private readonly failedHere = new Set<string>();

  constructor(
    private readonly store: LoginFailureStore,
    private readonly limits: LoginLimits,
  ) {}

  private keys(source: string, username: string): { pair: string; user: string } {
    const h = (s: string) => createHash('sha256').update(s).digest('hex');
    return { pair: h(`pair\n${sourceOf(source)}\n${username}`), user: h(`user\n${username}`) };
  }

  async check(source: string, username: string, now = Date.now()): Promise<LoginCheck> {
    const { pair, user } = this.keys(source, username);
    const windowMs = this.limits.windowSeconds * 1000;
    const rows = await this.store.findLoginFailures([pair, user], now - windowMs);
    const p = rows.find((r) => r.key === pair);
    const u = rows.find((r) => r.key === user);
    let until = 0;
    if (p) {
      if (p.failures >= this.limits.maxFailures) until = Math.max(until, p.since + windowMs);
      const past = p.failures - this.limits.delayAfterFailures;
      if (past > 0 && this.limits.maxDelaySeconds > 0) {
        const delay = Math.min(2 ** Math.min(past - 1, 30), this.limits.maxDelaySeconds) * 1000;
        until = Math.max(until, p.lastAt + delay);
      }
      if (u && u.failures >= this.limits.maxUserFailures) until = Math.max(until, u.since + windowMs);
    }
    return { retryAfter: until > now ? Math.max(1, Math.ceil((until - now) / 1000)) : 0, pairFailed: p !== undefined };
  }

  async failed(source: string, username: string, now = Date.now()): Promise<void> {
    const { pair, user } = this.keys(source, username);
    const windowMs = this.limits.windowSeconds * 1000;
    await this.store.addLoginFailure([pair, user], now, now - windowMs);
    if (this.failedHere.size >= 10_000) this.failedHere.clear();
    this.failedHere.add(pair);
    if (now - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = now;
      void this.store.deleteLoginFailuresBefore(now - windowMs).catch(() => undefined);
    }
  }

  /**
   * A correct credential: the pair's count starts again (the username's stays). `onlyIfSeen`:
   * only when this process counted a failure for the pair (no store write on every request).
   */
  async succeeded(source: string, username: string, onlyIfSeen = false): Promise<void> {
    const { pair } = this.keys(source, username);
    if (onlyIfSeen && !this.failedHere.has(pair)) return;
    this.failedHere.delete(pair);
    await this.store.clearLoginFailures([pair]);
  }
}

/** The source an address counts for: itself (IPv4), or its /64 (IPv6: one host may hold a whole /64). */
export function sourceOf(ip: string): string {
  if (!isIPv6(ip)) return ip;
  if (ip.toLowerCase().startsWith('::ffff:') && ip.includes('.')) return ip.slice(7);
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
