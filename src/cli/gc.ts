import type { Command } from 'commander';
import { ApiClient } from './client.ts';
import { printRows } from './format.ts';
import { exampleText } from './input.ts';

type Row = Record<string, unknown>;

interface RunReport {
  dryRun: boolean;
  reviewed: number;
  deleted: { blobs: number; manifests: number; bytes: number };
  outcomes: Row[];
  failed: number;
}

/** `berth gc run|status|reconcile|explain` over the management API (site administrators; docs/lifecycle.md). */
export function gcCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const out = (s: string): void => void process.stdout.write(s);

  const gc = program.command('gc').description('online garbage collection (site administrators)').addHelpText('after', exampleText('berth gc status'));
  gc.command('run')
    .description('run every due review now on the server and print what was freed').addHelpText('after', exampleText('berth gc run --dry-run'))
    .option('--dry-run', 'decide each due review without deleting anything')
    .action(async (o: { dryRun?: boolean }) => {
      const r = await client().call<RunReport>('POST', '/api/v1/gc/run', { dryRun: o.dryRun === true });
      if (json()) return out(JSON.stringify(r, null, 2) + '\n');
      printRows(r.outcomes.filter((x) => x.action !== 'absent'), ['action', 'kind', 'digest', 'image', 'bytes', 'reason'], false);
      const verb = r.dryRun ? 'would free' : 'freed';
      out(`${r.reviewed} reviewed; ${verb} ${r.deleted.blobs} blob(s), ${r.deleted.manifests} manifest(s), ${r.deleted.bytes} bytes${r.failed ? `; ${r.failed} failed (see berth jobs list --kind gc.blob)` : ''}\n`);
    });
  gc.command('status')
    .description('blobs per state, reviews queued, what this server deleted').addHelpText('after', exampleText('berth gc status'))
    .action(async () => {
      const s = await client().call<Row & { blobs: Row[]; reviews: Row[] }>('GET', '/api/v1/gc/status');
      if (json()) return out(JSON.stringify(s, null, 2) + '\n');
      out(`grace ${String(s.graceSeconds)}s, collect untagged: ${String(s.collectUntagged)}\n`);
      printRows(s.blobs, ['state', 'count', 'bytes'], false);
      printRows(s.reviews, ['kind', 'state', 'count', 'due', 'oldestRunAfter'], false);
    });
  gc.command('reconcile')
    .description('compare storage with the metadata: report objects no row describes and rows whose bytes are missing; --apply deletes orphans older than gc.reconcileMinAgeSeconds')
    .addHelpText('after', exampleText('berth gc reconcile', 'berth gc reconcile --apply'))
    .option('--apply', 'delete the orphans old enough (without it, nothing changes)')
    .action(async (o: { apply?: boolean }) => {
      const r = await client().call<Row & { dryRun: boolean; orphans: Row[]; missing: Row[]; multiparts: Row[]; failed: number; scanned: Row; totals: { orphans: number; orphanBytes: number; deleted: number; deletedBytes: number; tooYoung: number; missing: number; staleMultiparts: number; aborted: number } }>('POST', '/api/v1/gc/reconcile', { apply: o.apply === true });
      if (json()) return out(JSON.stringify(r, null, 2) + '\n');
      printRows(r.orphans, ['action', 'digest', 'generation', 'size', 'modifiedAt', 'reason'], false);
      if (r.multiparts.length) {
        out('multipart uploads of upload sessions that are gone (S3):\n');
        printRows(r.multiparts, ['action', 'uploadId', 'startedAt'], false);
      }
      if (r.missing.length) {
        out('rows whose bytes are missing from storage (data lost: push these blobs again):\n');
        printRows(r.missing, ['digest', 'generation', 'state', 'size'], false);
      }
      const t = r.totals;
      out(
        `${String(r.scanned.objects)} object(s), ${String(r.scanned.rows)} row(s) scanned; ${t.orphans} orphan(s) (${t.orphanBytes} bytes, ${t.tooYoung} too young to delete); ` +
          `${r.dryRun ? `${t.orphans - t.tooYoung} would be deleted with --apply` : `${t.deleted} deleted (${t.deletedBytes} bytes)`}; ${t.missing} missing; ${t.staleMultiparts} stale multipart upload(s)${r.dryRun ? '' : `, ${t.aborted} aborted`}${r.failed ? `; ${r.failed} failed` : ''}\n`,
      );
      if (t.missing || r.failed) process.exitCode = 1;
    });
  gc.command('explain <digest>')
    .description('why a blob or manifest is still stored, or when it will go').addHelpText('after', exampleText('berth gc explain sha256:0123…'))
    .action(async (digest: string) => {
      const e = await client().call<Row & { verdict: string; facts: { referencedBy: Row[]; linkedTo: string[] } }>('GET', `/api/v1/gc/explain/${encodeURIComponent(digest)}`);
      if (json()) return out(JSON.stringify(e, null, 2) + '\n');
      out(`${e.verdict.split('; ').join('\n')}\n`);
      if (e.facts.referencedBy.length) {
        out('named by:\n');
        printRows(e.facts.referencedBy, ['image', 'manifest', 'kind'], false);
      }
      if (e.facts.linkedTo.length) out(`linked to: ${e.facts.linkedTo.join(', ')}\n`);
    });
}

/** `berth quota recompute [OWNER[/REPO]]` (site administrators; docs/lifecycle.md). */
export function quotaCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const quota = program.command('quota').description('storage quotas and usage (site administrators)').addHelpText('after', exampleText('berth quota recompute acme'));
  quota
    .command('recompute [target]')
    .description('recompute storage usage from the manifests themselves for every repository and owner, or OWNER or OWNER/REPO, and report any drift (exit 1 when there is)')
    .addHelpText('after', exampleText('berth quota recompute', 'berth quota recompute acme/prod'))
    .action(async (target: string | undefined) => {
      const r = await client().call<{ scopes: Row[]; drifted: number }>('POST', '/api/v1/quota/recompute', target ? { target } : {});
      if (program.opts().json === true) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else {
        printRows(r.scopes, ['scope', 'usageBytes', 'recomputedBytes', 'drift', 'manifests'], false);
        for (const s of r.scopes) for (const p of (s.problems as string[] | undefined) ?? []) process.stdout.write(`${String(s.scope)}: ${p}\n`);
        process.stdout.write(r.drifted ? `${r.drifted} scope(s) drifted\n` : 'no drift: usage matches the manifests\n');
      }
      if (r.drifted) process.exitCode = 1;
    });
}
