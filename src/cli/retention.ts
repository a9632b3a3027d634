import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { ApiClient } from './client.ts';
import { printRows } from './format.ts';
import { exampleText } from './input.ts';

type Row = Record<string, unknown>;

function repoPath(s: string): string {
  const parts = s.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`expected OWNER/REPOSITORY, got "${s}"`);
  return `/api/v1/repos/${encodeURIComponent(parts[0])}/${encodeURIComponent(parts[1])}`;
}

/** OWNER (rules its repositories inherit) or OWNER/REPOSITORY. */
function rulesPath(s: string): string {
  return s.includes('/') ? repoPath(s) : `/api/v1/owners/${encodeURIComponent(s)}`;
}

/** `berth retention set|show|plan|run` over the management API (docs/lifecycle.md). */
export function retentionCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const out = (s: string): void => void process.stdout.write(s);
  const printPlan = (p: { entries: Row[]; deleted?: number; source?: string | null }) => {
    if (json()) return out(JSON.stringify(p, null, 2) + '\n');
    printRows(p.entries, ['action', 'image', 'tag', 'pushedAt', 'reason'], false);
    if (p.source === 'owner') out("rules inherited from the owner\n");
    const n = p.entries.filter((e) => e.action === 'delete').length;
    out(p.deleted === undefined ? `${n} tag(s) would be deleted\n` : `${p.deleted} tag(s) deleted\n`);
  };

  const retention = program.command('retention').description("a repository's retention rules").addHelpText('after', exampleText('berth retention plan acme/prod'));
  retention
    .command('set <target> <file>')
    .description(
      'set the rules of OWNER/REPOSITORY, or of OWNER (inherited by its repositories that have none), from a YAML or JSON file ({rules: [{images, tags, keep: {mostRecentlyPushed, pushedWithin, pulledWithin, pulledByEntitlementWithin, semver: {latest, per}}}]}); "-" clears them',
    )
    .addHelpText('after', exampleText('berth retention set acme/prod rules.yaml', 'berth retention set acme owner-rules.yaml'))
    .action(async (r: string, file: string) => {
      const body = file === '-' ? null : (parseYaml(readFileSync(file, 'utf8')) as unknown);
      const res = await client().call<Row>('PUT', `${rulesPath(r)}/retention`, body);
      out(JSON.stringify(res.retention, null, 2) + '\n');
    });
  retention
    .command('show <target>')
    .description("the own rules of OWNER/REPOSITORY or of OWNER, as JSON (null: none)")
    .addHelpText('after', exampleText('berth retention show acme/prod'))
    .action(async (r: string) => out(JSON.stringify((await client().call<Row>('GET', `${rulesPath(r)}/retention`)).retention, null, 2) + '\n'));
  retention
    .command('plan <repository>')
    .description('what a run would do now, with the reason for each tag').addHelpText('after', exampleText('berth retention plan acme/prod'))
    .action(async (r: string) => printPlan(await client().call('GET', `${repoPath(r)}/retention/plan`)));
  retention
    .command('run <repository>')
    .description('run the rules now').addHelpText('after', exampleText('berth retention run acme/prod'))
    .action(async (r: string) => printPlan(await client().call('POST', `${repoPath(r)}/retention/run`)));
}
