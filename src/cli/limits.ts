import type { Command } from 'commander';
import { ApiClient } from './client.ts';
import { printRows } from './format.ts';
import { exampleText } from './input.ts';
import { parseSize } from '../core/lifecycle/policy.ts';

const KINDS: Record<string, string> = { anonymous: 'anonymous', user: 'user', token: 'token', repo: 'repository', repository: 'repository' };

/** `anonymous`, `user [NAME]`, `token [ID]`, `repo [OWNER/REPOSITORY]` → the API's kind and subject. */
function target(kind: string, subject: string | undefined): { kind: string; subject?: string } {
  const k = KINDS[kind];
  if (!k) throw new Error(`unknown kind "${kind}": use anonymous, user NAME, token ID or repo OWNER/REPOSITORY`);
  if (k === 'anonymous' && subject !== undefined) throw new Error('anonymous takes no subject: the limit applies to each source address');
  return { kind: k, ...(subject === undefined ? {} : { subject }) };
}

function count(s: string): number | null {
  if (/^(none|off|unlimited)$/i.test(s)) return null;
  if (!/^\d{1,10}$/.test(s)) throw new Error(`expected a count or none, got "${s}"`);
  return Number(s);
}

/** `berth limit set|list|rm`: request and byte limits over the management API (docs/limits.md). */
export function limitCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const limit = program
    .command('limit')
    .description('request and byte limits per source address, user, token or repository')
    .addHelpText('after', exampleText('berth limit set anonymous --requests-per-minute 60', 'berth limit list'));
  limit
    .command('set <kind> [subject]')
    .description('set a limit on anonymous clients (per address), a user, a token or API key (by id) or a repository; without a subject: the default of the kind')
    .option('--requests-per-minute <n>', 'requests in a minute, or none')
    .option('--bytes-per-day <size>', 'bytes pulled in a day (e.g. 10GiB, 500MB, bytes), or none')
    .addHelpText('after', exampleText('berth limit set repo acme/prod --requests-per-minute 600 --bytes-per-day 50GiB', 'berth limit set user --requests-per-minute 120'))
    .action(async (kind: string, subject: string | undefined, o: { requestsPerMinute?: string; bytesPerDay?: string }) => {
      if (o.requestsPerMinute === undefined && o.bytesPerDay === undefined) throw new Error('give --requests-per-minute, --bytes-per-day or both');
      const body = {
        ...target(kind, subject),
        requestsPerMinute: o.requestsPerMinute === undefined ? null : count(o.requestsPerMinute),
        bytesPerDay: o.bytesPerDay === undefined ? null : parseSize(o.bytesPerDay),
      };
      const r = await client().call<Record<string, unknown>>('PUT', '/api/v1/limits', body);
      printRows([r], ['kind', 'subject', 'requestsPerMinute', 'bytesPerDay'], json());
    });
  limit
    .command('list')
    .description('the limits you may see (site administrators: all)')
    .addHelpText('after', exampleText('berth limit list'))
    .action(async () => {
      const rows = await client().call<Record<string, unknown>[]>('GET', '/api/v1/limits');
      printRows(
        rows.map((r) => ({ ...r, subject: r.subject ?? '(default)' })),
        ['kind', 'subject', 'name', 'requestsPerMinute', 'bytesPerDay', 'setBySiteAdmin'],
        json(),
      );
    });
  limit
    .command('rm <kind> [subject]')
    .description('remove a limit (without a subject: the default of the kind)')
    .addHelpText('after', exampleText('berth limit rm repo acme/prod'))
    .action(async (kind: string, subject: string | undefined) => {
      const t = target(kind, subject);
      const q = new URLSearchParams({ kind: t.kind, ...(t.subject === undefined ? {} : { subject: t.subject }) });
      await client().call('DELETE', `/api/v1/limits?${q.toString()}`);
    });
}
