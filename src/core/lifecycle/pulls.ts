import type { LifecycleStore, ManifestPull } from '../../metadata/lifecycle-store.ts';

/** At most this many distinct (image, manifest) pairs wait in memory; a full map is written at once. */
const MAX_PENDING = 10_000;

/**
 * When each manifest was last pulled, for retention's `pulledWithin` and
 * `pulledByEntitlementWithin` (docs/lifecycle.md). A pull only sets a map entry: the latest
 * time per (image, manifest) is written in one batch every `flushMs` (and on `close`), so the
 * pull path never waits on the database and a hot tag costs one row write per interval per
 * process. A crash loses at most one interval of pull times — retention then sees a pull that
 * much older, never a newer one.
 */
export class PullLog {
  private pending = new Map<string, ManifestPull>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: LifecycleStore,
    private readonly flushMs = 30_000,
    private readonly onError: (e: unknown) => void = () => undefined,
  ) {}

  /** A manifest GET served `digest` of `image` (an entitlement token's pull when `entitled`). */
  note(image: string, digest: string, entitled: boolean, at = Date.now()): void {
    const key = `${image}@${digest}`;
    const p = this.pending.get(key);
    if (p) {
      p.at = Math.max(p.at, at);
      if (entitled) p.entitledAt = Math.max(p.entitledAt ?? 0, at);
    } else {
      this.pending.set(key, { image, digest, at, entitledAt: entitled ? at : null });
    }
    if (this.pending.size >= MAX_PENDING) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes every pull noted so far (tests, shutdown, retention plans). Never rejects. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.writing = this.writing.then(async () => {
      if (!batch.length) return;
      try {
        await this.store.recordPulls(batch);
      } catch (e) {
        this.onError(e);
      }
    });
    return this.writing;
  }
}
