import type { Command } from 'commander';
import { ApiClient } from './client.ts';
import { printObject, printRows } from './format.ts';
import { exampleText } from './input.ts';

type Row = Record<string, unknown>;

/** `berth jobs list|counts|retry`: look inside the durable job queue (site administrators). */
export function jobCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;

  const jobs = program.command('jobs').description('the background job queue (site administrators)').addHelpText('after', exampleText('berth jobs counts'));
  jobs
    .command('counts', { isDefault: true })
    .description('jobs per kind and state, how many are due, the age of the oldest due one').addHelpText('after', exampleText('berth jobs counts'))
    .action(async () => printRows(await client().call<Row[]>('GET', '/api/v1/jobs/counts'), ['kind', 'state', 'count', 'due', 'oldestDueAgeSeconds'], json()));
  jobs
    .command('list')
    .description('jobs, oldest first').addHelpText('after', exampleText('berth jobs list --state dead'))
    .option('--state <state>', 'queued | running | dead')
    .option('--kind <kind>', 'e.g. gc.blob')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (o: { state?: string; kind?: string; limit: string }) => {
      const q = new URLSearchParams({ limit: o.limit, ...(o.state ? { state: o.state } : {}), ...(o.kind ? { kind: o.kind } : {}) });
      const page = await client().call<{ jobs: Row[] }>('GET', `/api/v1/jobs?${q}`);
      printRows(page.jobs, ['id', 'kind', 'subject', 'state', 'attempts', 'runAfter', 'lastError'], json());
    });
  jobs
    .command('retry [id]')
    .description('queue dead jobs again: one by id, or all dead jobs (of --kind)').addHelpText('after', exampleText('berth jobs retry --kind gc.blob'))
    .option('--kind <kind>', 'only dead jobs of this kind')
    .action(async (id: string | undefined, o: { kind?: string }) => {
      const body = { ...(id !== undefined ? { id: Number(id) } : {}), ...(o.kind ? { kind: o.kind } : {}) };
      printObject(await client().call<Row>('POST', '/api/v1/jobs/retry', body), json());
    });
}
