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

/** `berth retention set|show|plan|run` over the management API (docs/lifecycle.md). */
export function retentionCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const out = (s: string): void => void process.stdout.write(s);
  const printPlan = (p: { entries: Row[]; deleted?: number }) => {
    if (json()) return out(JSON.stringify(p, null, 2) + '\n');
    printRows(p.entries, ['action', 'image', 'tag', 'pushedAt', 'reason'], false);
    const n = p.entries.filter((e) => e.action === 'delete').length;
    out(p.deleted === undefined ? `${n} tag(s) would be deleted\n` : `${p.deleted} tag(s) deleted\n`);
  };

  const retention = program.command('retention').description("a repository's retention rules").addHelpText('after', exampleText('berth retention plan acme/prod'));
  retention
    .command('set <repository> <file>')
    .description('set the rules from a YAML or JSON file ({rules: [{images, tags, keep: {mostRecentlyPushed, pushedWithin}}]}); "-" clears them').addHelpText('after', exampleText('berth retention set acme/prod rules.yaml'))
    .action(async (r: string, file: string) => {
      const body = file === '-' ? null : (parseYaml(readFileSync(file, 'utf8')) as unknown);
      const res = await client().call<Row>('PUT', `${repoPath(r)}/retention`, body);
      out(JSON.stringify(res.retention, null, 2) + '\n');
    });
  retention.command('show <repository>').description("a repository's rules, as JSON").addHelpText('after', exampleText('berth retention show acme/prod')).action(async (r: string) => out(JSON.stringify((await client().call<Row>('GET', `${repoPath(r)}/retention`)).retention, null, 2) + '\n'));
  retention
    .command('plan <repository>')
    .description('what a run would do now, with the reason for each tag').addHelpText('after', exampleText('berth retention plan acme/prod'))
    .action(async (r: string) => printPlan(await client().call('GET', `${repoPath(r)}/retention/plan`)));
  retention
    .command('run <repository>')
    .description('run the rules now').addHelpText('after', exampleText('berth retention run acme/prod'))
    .action(async (r: string) => printPlan(await client().call('POST', `${repoPath(r)}/retention/run`)));
}
