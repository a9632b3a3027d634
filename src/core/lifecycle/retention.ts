import { z } from 'zod';
import { ApiError, type Tenancy } from '../access/tenancy.ts';
import type { Identity } from '../access/access.ts';
import type { EventBus } from '../events/bus.ts';
import type { JobQueue, JobRecord } from '../jobs/queue.ts';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { LifecycleStore } from '../../metadata/lifecycle-store.ts';
import type { MetadataStore, TagEntry } from '../../metadata/metadata-store.ts';
import { globToRegExp, type RepositoryPolicies } from './policy.ts';

export const RETENTION_RUN = 'retention.run';

const DURATION = /^(\d+)([smhd])$/;
const GLOB = /^[A-Za-z0-9_.*?\/-]{1,255}$/;

/** Retention rules of a repository (docs/lifecycle.md). */
export const RetentionSchema = z
  .object({
    rules: z
      .array(
        z
          .object({
            /** Image names inside the repository (glob, `/` literal): default every image. */
            images: z.string().regex(GLOB).default('*'),
            /** Tags the rule applies to (glob): default every tag. */
            tags: z.string().regex(GLOB).default('*'),
            keep: z
              .object({
                /** Keep the N most recently pushed of the selected tags, per image. */
                mostRecentlyPushed: z.number().int().min(0).max(100_000).optional(),
                /** Keep tags pushed within this long: `30d`, `12h`, `90m`, `45s`. */
                pushedWithin: z.string().regex(DURATION, 'use e.g. 30d, 12h, 90m').optional(),
              })
              .strict()
              .default({}),
          })
          .strict(),
      )
      .max(50),
  })
  .strict();

export type Retention = z.infer<typeof RetentionSchema>;

export interface PlanEntry {
  image: string;
  tag: string;
  digest: string;
  pushedAt: string;
  action: 'keep' | 'delete';
  reason: string;
}

export interface RetentionPlan {
  repository: string;
  rules: Retention | null;
  entries: PlanEntry[];
  deleted?: number;
}

function durationMs(s: string): number {
  const m = DURATION.exec(s)!;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/**
 * Retention rules: which tags of a repository go. A tag selected by no rule stays; a tag some
 * rule selects goes unless one of the rules selecting it keeps it (among its N most recently
 * pushed in the image, or pushed within the period); immutable tags always stay. A run is a
 * job (`retention.run`, on any node), after a rules change, after a push, and on the GC
 * interval; every run can be previewed as a plan with a reason per tag. Tags removed go
 * through the same garbage collection as an untag.
 */
export class RetentionRules {
  constructor(
    private readonly store: LifecycleStore,
    private readonly meta: MetadataStore,
    private readonly accessStore: AccessStore,
    private readonly tenancy: Tenancy,
    private readonly policies: RepositoryPolicies,
    private readonly jobs: JobQueue<unknown>,
    private readonly events: EventBus,
  ) {
    jobs.register(RETENTION_RUN, (job) => this.runJob(job));
  }

  private async rulesOf(repositoryId: number): Promise<Retention | null> {
    const raw = (await this.store.findRepositoryLifecycle(repositoryId)).retention;
    return raw === null ? null : RetentionSchema.parse(JSON.parse(raw));
  }

  async get(actor: Identity, owner: string, name: string): Promise<Retention | null> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    return this.rulesOf(repository.id);
  }

  /** Sets (or, with null, clears) the rules; a run is queued. Repository managers only. */
  async set(actor: Identity, owner: string, name: string, rules: unknown): Promise<Retention | null> {
    const { repository, canManage } = await this.tenancy.getRepository(actor, owner, name);
    if (!canManage) throw new ApiError(403, 'DENIED', `you may not manage ${owner}/${name}`);
    let parsed: Retention | null = null;
    if (rules !== null) {
      const r = RetentionSchema.safeParse(rules);
      if (!r.success) throw new ApiError(400, 'INVALID', r.error.issues.map((i) => `${i.path.join('.') || 'rules'}: ${i.message}`).join('; '));
      parsed = r.data;
    }
    await this.store.saveRepositoryLifecycle(repository.id, { retention: parsed === null ? null : JSON.stringify(parsed) });
    if (parsed) await this.enqueue([repository.id]);
    return parsed;
  }

  /** Queues a run for each repository (deduplicated). */
  async enqueue(repositoryIds: number[], runAfter = Date.now()): Promise<void> {
    await this.jobs.enqueue(repositoryIds.map((id) => ({ kind: RETENTION_RUN, subject: String(id), runAfter })));
  }

  /** Queues a run for every repository that has rules (the periodic schedule). */
  async enqueueAll(): Promise<void> {
    await this.enqueue(await this.store.listRetentionRepositories());
  }

  /** The plan of a repository: every tag with what a run would do and why. */
  async plan(actor: Identity, owner: string, name: string): Promise<RetentionPlan> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    return this.planFor(repository.id, `${owner}/${name}`);
  }

  /** Runs the rules now (repository managers); returns the plan carried out. */
  async run(actor: Identity, owner: string, name: string): Promise<RetentionPlan> {
    const { repository, canManage } = await this.tenancy.getRepository(actor, owner, name);
    if (!canManage) throw new ApiError(403, 'DENIED', `you may not manage ${owner}/${name}`);
    return this.execute(repository.id, `${owner}/${name}`);
  }

  private async runJob(job: JobRecord): Promise<void> {
    const id = Number(job.subject);
    const repo = Number.isSafeInteger(id) ? await this.accessStore.findRepositoryById(id) : undefined;
    if (repo) await this.execute(repo.id, `${repo.owner}/${repo.name}`);
  }

  private async execute(repositoryId: number, label: string): Promise<RetentionPlan> {
    const plan = await this.planFor(repositoryId, label);
    let deleted = 0;
    for (const e of plan.entries) {
      if (e.action !== 'delete') continue;
      const img = await this.meta.findImage(e.image);
      // Only while the tag still points where the plan saw it: a tag pushed meanwhile stays.
      if (img && (await this.meta.removeTag(img.id, e.tag, e.digest))) {
        deleted++;
        this.events.emit({
          time: Date.now(),
          action: 'delete',
          actorKind: 'anonymous',
          actor: 'retention',
          credentialId: null,
          repository: label,
          image: e.image,
          reference: e.tag,
          digest: e.digest,
          clientIp: null,
          userAgent: null,
          bytes: null,
          status: 202,
          detail: { target: 'tag', reason: e.reason },
        });
      }
    }
    if (deleted) this.jobs.kick(); // the untagged manifests' reviews
    return { ...plan, deleted };
  }

  private async planFor(repositoryId: number, label: string): Promise<RetentionPlan> {
    const rules = await this.rulesOf(repositoryId);
    const entries: PlanEntry[] = [];
    if (!rules) return { repository: label, rules, entries };
    const policy = await this.policies.forRepository(repositoryId);
    const now = Date.now();
    const compiled = rules.rules.map((r) => ({ ...r, image: globToRegExp(r.images), tag: globToRegExp(r.tags) }));
    for (let after: string | undefined; ; ) {
      const names = await this.meta.listImageNames({ limit: 200, repositoryIds: [repositoryId], ...(after !== undefined ? { after } : {}) });
      for (const image of names) {
        const img = await this.meta.findImage(image);
        if (!img) continue;
        const inside = image.slice(label.length + 1);
        const tags: TagEntry[] = [];
        for (let t: string | undefined; ; ) {
          const page = await this.meta.listTagEntries(img.id, { limit: 1000, ...(t !== undefined ? { after: t } : {}) });
          tags.push(...page);
          if (page.length < 1000) break;
          t = page[page.length - 1]!.name;
        }
        // Per rule: its selection in this image, newest first, for mostRecentlyPushed.
        const ranks = compiled.map((r) =>
          r.image.test(inside) ? tags.filter((x) => r.tag.test(x.name)).sort((a, b) => b.updatedAt - a.updatedAt || a.name.localeCompare(b.name)).map((x) => x.name) : [],
        );
        for (const t of tags.sort((a, b) => a.name.localeCompare(b.name))) {
          const base = { image, tag: t.name, digest: t.digest, pushedAt: new Date(t.updatedAt).toISOString() };
          if (policy.immutable(t.name)) {
            entries.push({ ...base, action: 'keep', reason: 'immutable tag' });
            continue;
          }
          const selecting = compiled.map((r, i) => ({ r, i, rank: ranks[i]!.indexOf(t.name) })).filter((x) => x.rank >= 0);
          if (!selecting.length) {
            entries.push({ ...base, action: 'keep', reason: 'selected by no rule' });
            continue;
          }
          let reason: string | undefined;
          for (const { r, i, rank } of selecting) {
            if (r.keep.mostRecentlyPushed !== undefined && rank < r.keep.mostRecentlyPushed) reason = `rule ${i + 1}: one of the ${r.keep.mostRecentlyPushed} most recently pushed`;
            else if (r.keep.pushedWithin !== undefined && t.updatedAt >= now - durationMs(r.keep.pushedWithin)) reason = `rule ${i + 1}: pushed within ${r.keep.pushedWithin}`;
            if (reason) break;
          }
          entries.push(reason ? { ...base, action: 'keep', reason } : { ...base, action: 'delete', reason: `selected by rule ${selecting.map((x) => x.i + 1).join(', ')} and kept by none` });
        }
      }
      if (names.length < 200) break;
      after = names[names.length - 1];
    }
    return { repository: label, rules, entries };
  }
}
