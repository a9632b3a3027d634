import type { Command } from 'commander';
import { ApiClient } from './client.ts';
import { printObject, printRows } from './format.ts';
import { example } from './input.ts';

type Row = Record<string, unknown>;

function repoPath(s: string): string {
  const parts = s.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`expected OWNER/REPOSITORY, got "${s}"`);
  return `/api/v1/repos/${encodeURIComponent(parts[0])}/${encodeURIComponent(parts[1])}`;
}

function listOf(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

const hookRow = (h: Row): Row => ({ ...h, events: Array.isArray(h.events) ? h.events.join(',') : h.events });

/** `berth webhook add|list|test|rm|deliveries` over the management API (docs/events.md#webhooks). */
export function webhookCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;

  const webhook = example(program.command('webhook').description("a repository's webhooks (push, delete, pull, vulnerability events)"), 'berth webhook list acme/prod');
  example(
    webhook
      .command('add <repository> <url>')
      .description('POST signed JSON to URL on events of OWNER/REPOSITORY')
      .option('-e, --events <list>', 'comma-separated: push, delete, pull, vulnerability', 'push,delete')
      .option('--secret <secret>', 'signing secret (min. 16 characters; default: generated and shown once)')
      .option('--inactive', 'create it switched off')
      .action(async (r: string, url: string, o: { events: string; secret?: string; inactive?: boolean }) => {
        const body = { url, events: listOf(o.events), ...(o.secret ? { secret: o.secret } : {}), ...(o.inactive ? { active: false } : {}) };
        const h = await client().call<Row>('POST', `${repoPath(r)}/webhooks`, body);
        printObject(json() ? h : hookRow(h), json());
        if (!json()) process.stderr.write('The secret is shown only now: the receiver checks X-Berth-Signature (sha256=HMAC of the body) with it.\n');
      }),
    'berth webhook add acme/prod https://ci.example.com/hooks/berth --events push,delete',
  );
  example(
    webhook
      .command('list <repository>')
      .description("a repository's webhooks (never their secrets)")
      .action(async (r: string) =>
        printRows((await client().call<Row[]>('GET', `${repoPath(r)}/webhooks`)).map((h) => (json() ? h : hookRow(h))), ['id', 'url', 'events', 'active', 'createdBy', 'createdAt'], json()),
      ),
    'berth webhook list acme/prod',
  );
  example(
    webhook
      .command('test <repository> <id>')
      .description('send a ping now and show the outcome')
      .action(async (r: string, id: string) => {
        const d = await client().call<Row>('POST', `${repoPath(r)}/webhooks/${encodeURIComponent(id)}/test`);
        printObject(d, json());
        if (d.status !== 'delivered') process.exitCode = 1;
      }),
    'berth webhook test acme/prod 4',
  );
  example(
    webhook
      .command('deliveries <repository> <id>')
      .description('the delivery log, newest first')
      .option('-n, --limit <n>', 'how many', '20')
      .action(async (r: string, id: string, o: { limit: string }) =>
        printRows(
          await client().call<Row[]>('GET', `${repoPath(r)}/webhooks/${encodeURIComponent(id)}/deliveries?limit=${encodeURIComponent(o.limit)}`),
          ['id', 'event', 'status', 'attempts', 'responseStatus', 'error', 'createdAt', 'nextAttemptAt'],
          json(),
        ),
      ),
    'berth webhook deliveries acme/prod 4 -n 50',
  );
  example(
    webhook
      .command('rm <repository> <id>')
      .description('delete a webhook and its delivery log')
      .action(async (r: string, id: string) => {
        await client().call('DELETE', `${repoPath(r)}/webhooks/${encodeURIComponent(id)}`);
      }),
    'berth webhook rm acme/prod 4',
  );
}
