import semver from 'semver';
import { z } from 'zod';
import { ApiError, type Tenancy } from '../access/tenancy.ts';
import type { Identity } from '../access/access.ts';
import type { EventBus } from '../events/bus.ts';
import type { JobQueue, JobRecord } from '../jobs/queue.ts';
import type { AccessStore } from '../../metadata/access-store.ts';
import type { LifecycleStore } from '../../metadata/lifecycle-store.ts';
import type { MetadataStore, TagEntry } from '../../metadata/metadata-store.ts';
import { globToRegExp, type RepositoryPolicies } from './policy.ts';
import type { PullLog } from './pulls.ts';

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
                /** Keep tags whose manifest was pulled (by tag or digest) within this long. */
                pulledWithin: z.string().regex(DURATION, 'use e.g. 30d, 12h, 90m').optional(),
                /** Keep tags whose manifest was pulled with an entitlement token within this long: a customer still uses it. */
                pulledByEntitlementWithin: z.string().regex(DURATION, 'use e.g. 30d, 12h, 90m').optional(),
                /**
                 * Keep the N highest semantic versions (`1.2.3`, `v1.2.3`, pre-releases below
                 * their release) among the selected tags, per image — overall, or per major or
                 * per major.minor line. Tags that are not versions are not kept by this.
                 */
                semver: z
                  .object({ latest: z.number().int().min(0).max(100_000), per: z.enum(['all', 'major', 'minor']).default('all') })
                  .strict()
                  .optional(),
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
  /** The rules applied: the repository's own, else its owner's. */
  rules: Retention | null;
  /** Where the rules come from. */
  source: 'repository' | 'owner' | null;
  entries: PlanEntry[];
  deleted?: number;
}

/** A tag's semantic version (a leading `v` allowed), or null. */
function versionOf(tag: string): semver.SemVer | null {
  return semver.parse(tag.replace(/^v(?=\d)/, ''));
}

/** The tag's line for `semver.per`: everything, its major, or its major.minor. */
function lineOf(v: semver.SemVer, per: 'all' | 'major' | 'minor'): string {
  return per === 'all' ? '' : per === 'major' ? `${v.major}` : `${v.major}.${v.minor}`;
}

function durationMs(s: string): number {
  const m = DURATION.exec(s)!;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

/**
 * Retention rules: which tags of a repository go. A tag selected by no rule stays; a tag some
 * rule selects goes unless one of the rules selecting it keeps it (among its N most recently
 * pushed in the image, pushed or pulled within the period, among the N highest versions);
 * immutable tags always stay. Rules set on the owner apply to each of its repositories that
 * has none of its own: a repository's rules replace the owner's (never merge), so a plan is
 * read from one list. A run is a job (`retention.run`, on any node), after a rules change,
 * after a push, and on the GC interval; every run can be previewed as a plan with a reason per
 * tag. Tags removed go through the same garbage collection as an untag.
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
    private readonly pulls: PullLog,
  ) {
    jobs.register(RETENTION_RUN, (job) => this.runJob(job));
  }

  /** The rules in force for a repository: its own, else its owner's. */
  private async rulesOf(repositoryId: number, ownerId: number): Promise<{ rules: Retention | null; source: RetentionPlan['source'] }> {
    const own = (await this.store.findRepositoryLifecycle(repositoryId)).retention;
    if (own !== null) return { rules: storedRules(own), source: 'repository' };
    const inherited = storedRules(await this.store.findOwnerRetention(ownerId));
    return { rules: inherited, source: inherited ? 'owner' : null };
  }

  /** The repository's own rules (null: none, the owner's apply if it has some). */
  async get(actor: Identity, owner: string, name: string): Promise<Retention | null> {
    const { repository } = await this.tenancy.getRepository(actor, owner, name);
    return storedRules((await this.store.findRepositoryLifecycle(repository.id)).retention);
  }

  /** Sets (or, with null, clears) the rules; a run is queued. Repository managers only. */
  async set(actor: Identity, owner: string, name: string, rules: unknown): Promise<Retention | null> {
    const { repository, canManage } = await this.tenancy.getRepository(actor, owner, name);
    if (!canManage) throw new ApiError(403, 'DENIED', `you may not manage ${owner}/${name}`);
    const parsed = parseRules(rules);
    await this.store.saveRepositoryLifecycle(repository.id, { retention: parsed === null ? null : JSON.stringify(parsed) });
    await this.enqueue([repository.id]);
    return parsed;
  }

  /** The rules an owner's repositories inherit (null: none). Anyone who may see the owner. */
  async getOwner(actor: Identity, owner: string): Promise<Retention | null> {
    const o = await this.tenancy.findOwner(actor, owner);
    return storedRules(await this.store.findOwnerRetention(o.id));
  }

  /** Sets (or clears) an owner's rules; runs are queued for its repositories. Owner managers only. */
  async setOwner(actor: Identity, owner: string, rules: unknown): Promise<Retention | null> {
    const o = await this.tenancy.manageableOwner(actor, owner);
    const parsed = parseRules(rules);
    await this.store.saveOwnerRetention(o.id, parsed === null ? null : JSON.stringify(parsed));
    await this.enqueue((await this.accessStore.listRepositories(o.id)).map((r) => r.id));
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
    return this.planFor(repository, `${owner}/${name}`);
  }

  /** Runs the rules now (repository managers); returns the plan carried out. */
  async run(actor: Identity, owner: string, name: string): Promise<RetentionPlan> {
    const { repository, canManage } = await this.tenancy.getRepository(actor, owner, name);
    if (!canManage) throw new ApiError(403, 'DENIED', `you may not manage ${owner}/${name}`);
    return this.execute(repository, `${owner}/${name}`);
  }

  private async runJob(job: JobRecord): Promise<void> {
    const id = Number(job.subject);
    const repo = Number.isSafeInteger(id) ? await this.accessStore.findRepositoryById(id) : undefined;
    if (repo) await this.execute(repo, `${repo.owner}/${repo.name}`);
  }

  private async execute(repository: { id: number; ownerId: number }, label: string): Promise<RetentionPlan> {
    const plan = await this.planFor(repository, label);
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

  private async planFor(repository: { id: number; ownerId: number }, label: string): Promise<RetentionPlan> {
    const repositoryId = repository.id;
    const { rules, source } = await this.rulesOf(repositoryId, repository.ownerId);
    const entries: PlanEntry[] = [];
    if (!rules) return { repository: label, rules, source, entries };
    const policy = await this.policies.forRepository(repositoryId);
    const now = Date.now();
    const compiled = rules.rules.map((r) => ({ ...r, image: globToRegExp(r.images), tag: globToRegExp(r.tags) }));
    const byPulls = compiled.some((r) => r.keep.pulledWithin !== undefined || r.keep.pulledByEntitlementWithin !== undefined);
    if (byPulls) await this.pulls.flush(); // this node's latest pulls count too
    const ruleName = (i: number) => `${source === 'owner' ? 'owner rule' : 'rule'} ${i + 1}`;
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
        // Per rule with `semver`: the tags it keeps (the highest N versions of each line).
        const versionsKept = compiled.map((r, i) => {
          if (!r.keep.semver) return new Set<string>();
          const lines = new Map<string, { tag: string; v: semver.SemVer }[]>();
          for (const name of ranks[i]!) {
            const v = versionOf(name);
            if (!v) continue;
            const line = lineOf(v, r.keep.semver.per);
            lines.set(line, [...(lines.get(line) ?? []), { tag: name, v }]);
          }
          const kept = new Set<string>();
          for (const l of lines.values()) for (const x of l.sort((a, b) => semver.rcompare(a.v, b.v) || a.tag.localeCompare(b.tag)).slice(0, r.keep.semver.latest)) kept.add(x.tag);
          return kept;
        });
        const pulled = byPulls ? await this.store.listManifestPulls(img.id) : new Map<string, { lastPulledAt: number; lastEntitledAt: number | null }>();
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
          const p = pulled.get(t.digest);
          let reason: string | undefined;
          for (const { r, i, rank } of selecting) {
            const k = r.keep;
            if (k.mostRecentlyPushed !== undefined && rank < k.mostRecentlyPushed) reason = `${ruleName(i)}: one of the ${k.mostRecentlyPushed} most recently pushed`;
            else if (k.pushedWithin !== undefined && t.updatedAt >= now - durationMs(k.pushedWithin)) reason = `${ruleName(i)}: pushed within ${k.pushedWithin}`;
            else if (k.pulledWithin !== undefined && p && p.lastPulledAt >= now - durationMs(k.pulledWithin)) reason = `${ruleName(i)}: pulled within ${k.pulledWithin} (last ${new Date(p.lastPulledAt).toISOString()})`;
            else if (k.pulledByEntitlementWithin !== undefined && p?.lastEntitledAt != null && p.lastEntitledAt >= now - durationMs(k.pulledByEntitlementWithin))
              reason = `${ruleName(i)}: pulled with an entitlement token within ${k.pulledByEntitlementWithin}`;
            else if (k.semver && versionsKept[i]!.has(t.name)) reason = `${ruleName(i)}: one of the ${k.semver.latest} highest versions${k.semver.per === 'all' ? '' : ` of its ${k.semver.per} line`}`;
            if (reason) break;
          }
          const selectedBy = selecting.map((x) => x.i + 1).join(', ');
          entries.push(reason ? { ...base, action: 'keep', reason } : { ...base, action: 'delete', reason: `selected by ${source === 'owner' ? 'owner ' : ''}rule ${selectedBy} and kept by none` });
        }
      }
      if (names.length < 200) break;
      after = names[names.length - 1];
    }
    return { repository: label, rules, source, entries };
  }
}

/** Rules as stored (validated JSON), or null. */
function storedRules(raw: string | null): Retention | null {
  return raw === null ? null : RetentionSchema.parse(JSON.parse(raw));
}

/** Rules as sent by a client: 400 with every problem when invalid. */
function parseRules(rules: unknown): Retention | null {
  if (rules === null) return null;
  const r = RetentionSchema.safeParse(rules);
  if (!r.success) throw new ApiError(400, 'INVALID', r.error.issues.map((i) => `${i.path.join('.') || 'rules'}: ${i.message}`).join('; '));
  return r.data;
}
