/** `berth image`, `berth tag`, `berth audit` and `berth analytics`: views over the management API. */
import { type Command, Option } from 'commander';
import { human } from './push.ts';
import { splitRepo } from './admin.ts';
import { ApiClient } from './client.ts';
import { printObject, printRows } from './format.ts';
import { confirmDeletion, example } from './input.ts';

type Row = Record<string, unknown>;
const enc = encodeURIComponent;

/** OWNER/REPOSITORY/IMAGE[/MORE] → the repository's API path and the image inside it. */
function splitImage(s: string): { repoPath: string; image: string; full: string } {
  const parts = s.split('/');
  if (parts.length < 3 || parts.some((p) => !p)) throw new Error(`expected OWNER/REPOSITORY/IMAGE, got "${s}"`);
  return { repoPath: `/api/v1/repos/${enc(parts[0]!)}/${enc(parts[1]!)}`, image: parts.slice(2).join('/'), full: s };
}

/** OWNER/REPOSITORY/IMAGE:TAG → image and tag. */
function splitTagged(s: string): { repoPath: string; image: string; tag: string } {
  const slash = s.lastIndexOf('/');
  const colon = s.indexOf(':', slash + 1);
  if (colon < 0) throw new Error(`expected OWNER/REPOSITORY/IMAGE:TAG, got "${s}"`);
  return { ...splitImage(s.slice(0, colon)), tag: s.slice(colon + 1) };
}

export function contentCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;

  const image = example(program.command('image').description('images of a repository'), 'berth image list acme/prod');
  example(
    image
      .command('list <repository>')
      .description("a repository's images: tag count, and the kind, size and time of the latest push")
      .action(async (r: string) => {
        const [owner, name] = splitRepo(r);
        const rows = await client().call<Row[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/images`);
        if (json()) return printRows(rows, [], true);
        const table = rows.map((i) => ({
          ...i,
          kind: (i.kind as { label?: string } | null)?.label,
          size: typeof i.size === 'number' ? human(i.size) : undefined,
        }));
        printRows(table, ['name', 'tagCount', 'kind', 'size', 'lastPushedAt', 'latestTag'], false);
      }),
    'berth image list acme/prod',
  );
  example(
    image
      .command('rm <image>')
      .description('delete an image with all its manifests and tags (needs delete on the repository); blobs are left to garbage collection')
      .option('-y, --yes', 'do not ask for confirmation')
      .action(async (s: string, o: { yes?: boolean }) => {
        const { repoPath, image: img, full } = splitImage(s);
        const confirm = await confirmDeletion('image', full, o.yes);
        await client().call('DELETE', `${repoPath}/images?image=${enc(img)}&confirm=${enc(confirm)}`);
        process.stdout.write(`Deleted image ${full}.\n`);
      }),
    'berth image rm acme/prod/old-app --yes',
  );

  const tag = example(program.command('tag').description('tags of an image'), 'berth tag list acme/prod/app');
  example(
    tag
      .command('list <image>')
      .description("an image's tags with their digests and push times, by name, version or push time")
      .option('-q, --query <text>', 'only tags containing this')
      .option('-n, --limit <n>', 'at most this many', '1000')
      .addOption(new Option('-s, --sort <order>', 'name; semver: highest version first; time: last pushed first').choices(['name', 'semver', 'time']).default('name'))
      .action(async (s: string, o: { query?: string; limit: string; sort: string }) => {
        const { repoPath, image: img } = splitImage(s);
        const q = new URLSearchParams({ image: img, limit: o.limit, sort: o.sort });
        if (o.query) q.set('q', o.query);
        const page = await client().call<{ tags: Row[]; total: number }>('GET', `${repoPath}/tags?${q}`);
        const rows = json() ? page.tags : page.tags.map((t) => ({ ...t, pushedAt: new Date(t.updatedAt as number).toISOString() }));
        printRows(rows, ['name', 'digest', 'pushedAt'], json());
      }),
    'berth tag list acme/prod/app',
    'berth tag list acme/prod/app -q 1.2',
    'berth tag list acme/prod/app --sort semver -n 5',
  );
  example(
    tag
      .command('rm <tag>')
      .description('delete a tag (needs delete on the repository); the manifest stays, reachable by digest')
      .action(async (s: string) => {
        const { repoPath, image: img, tag: t } = splitTagged(s);
        await client().call('DELETE', `${repoPath}/tags?image=${enc(img)}&tag=${enc(t)}`);
        process.stdout.write(`Deleted tag ${s}.\n`);
      }),
    'berth tag rm acme/prod/app:1.0-rc1',
  );

  example(
    program
      .command('audit')
      .description('the audit log, newest first: site administrators see everything, repository admins their repositories')
      .option('-r, --repository <OWNER/REPOSITORY>', 'only this repository')
      .option('-a, --actor <name>', 'a username, token:<id> or anonymous')
      .option('--action <list>', 'push, pull, delete, tag_move, login, token_use, admin, download (blob downloads: only when named) (comma-separated)')
      .option('--since <time>', 'ISO time, or a duration back from now (7d)')
      .option('--until <time>', 'exclusive; same forms as --since')
      .option('-n, --limit <n>', 'events to show (1–1000)', '50')
      .option('--csv', 'write every matching event as CSV (ignores --limit unless given)')
      .action(async (o: { repository?: string; actor?: string; action?: string; since?: string; until?: string; limit: string; csv?: boolean }, cmd: Command) => {
        const q = new URLSearchParams();
        for (const k of ['repository', 'actor', 'action', 'since', 'until'] as const) if (o[k]) q.set(k, o[k]);
        if (o.csv) {
          if (cmd.getOptionValueSource('limit') === 'cli') q.set('limit', o.limit);
          q.set('format', 'csv');
          process.stdout.write(await client().callText('GET', `/api/v1/events?${q}`));
          return;
        }
        q.set('limit', o.limit);
        const page = await client().call<{ events: Row[] }>('GET', `/api/v1/events?${q}`);
        const rows = json() ? page.events : page.events.map((e) => ({ ...e, actor: (e.actor as { name?: string } | null)?.name ?? '-' }));
        printRows(rows, ['time', 'action', 'actor', 'repository', 'image', 'reference', 'status', 'clientIp'], json());
      }),
    'berth audit --repository acme/prod --action push,delete --since 7d',
    'berth audit --since 30d --csv > audit.csv',
  );

  example(
    program
      .command('analytics <repository>')
      .description('pull analytics of a repository (its admins): totals, per day, per tag, per token and user, per client')
      .option('--since <time>', 'default: 30 days ago')
      .option('--until <time>', 'exclusive; default now')
      .option('--top <n>', 'rows per list', '10')
      .action(async (r: string, o: { since?: string; until?: string; top: string }) => {
        const [owner, name] = splitRepo(r);
        const q = new URLSearchParams({ top: o.top });
        if (o.since) q.set('since', o.since);
        if (o.until) q.set('until', o.until);
        const a = await client().call<Row & { perDay: Row[]; perTag: Row[]; perToken: Row[]; perActor: Row[]; perClient: Row[] }>(
          'GET',
          `/api/v1/repos/${enc(owner)}/${enc(name)}/analytics?${q}`,
        );
        if (json()) return printObject(a, true);
        printObject({ repository: a.repository, since: a.since, until: a.until, pulls: a.pulls, bytes: a.bytes, uniqueClients: a.uniqueClients, uniqueActors: a.uniqueActors }, false);
        const section = (title: string, rows: Row[], cols: string[]) => {
          process.stdout.write(`\n${title}\n`);
          printRows(rows, cols, false);
        };
        section('Per day', a.perDay, ['day', 'pulls', 'bytes', 'uniqueClients']);
        section('Per tag', a.perTag, ['image', 'tag', 'pulls']);
        section('Per token or API key', a.perToken, ['credentialId', 'kind', 'name', 'actor', 'pulls', 'lastPullAt']);
        section('Per user', a.perActor, ['actorKind', 'actor', 'pulls']);
        section('Per client', a.perClient, ['clientIp', 'pulls', 'lastPullAt']);
      }),
    'berth analytics acme/prod --since 7d',
  );
}
