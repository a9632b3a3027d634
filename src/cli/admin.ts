import type { Command } from 'commander';
import { ApiClient, writeLogin } from './client.ts';
import { printObject, printRows } from './format.ts';

type Row = Record<string, unknown>;

function splitRepo(s: string): [string, string] {
  const parts = s.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`expected OWNER/REPOSITORY, got "${s}"`);
  return [parts[0], parts[1]];
}

const enc = encodeURIComponent;

/** Management verbs: each calls /api/v1 with the API key of BERTH_API_KEY or the login file. */
export function adminCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;

  program
    .command('login')
    .description('sign in with a password, create an API key and keep it in the login file')
    .requiredOption('-u, --username <name>', 'username')
    .option('-p, --password <password>', 'password (default: $BERTH_PASSWORD)')
    .action(async (opts: { username: string; password?: string }) => {
      const password = opts.password ?? process.env.BERTH_PASSWORD;
      if (!password) throw new Error('give --password or set BERTH_PASSWORD');
      const server = (program.opts().server as string | undefined) ?? process.env.BERTH_URL ?? 'http://localhost:5000';
      const c = ApiClient.basic(server, opts.username, password);
      const key = await c.call<Row>('POST', '/api/v1/user/api-keys', { name: `berth login ${new Date().toISOString()}` });
      const file = writeLogin({ server, apiKey: String(key.secret), username: opts.username });
      process.stdout.write(`Signed in to ${server} as ${opts.username}; API key saved in ${file}\n`);
    });

  program
    .command('whoami')
    .description('show who the API key belongs to')
    .action(async () => printObject(await client().call<Row>('GET', '/api/v1/whoami'), json()));

  const user = program.command('user').description('users (site administrators)');
  user
    .command('create <username>')
    .option('-p, --password <password>', 'initial password (min. 8 characters)')
    .option('--email <email>')
    .option('--admin', 'make the user a site administrator')
    .action(async (username: string, o: { password?: string; email?: string; admin?: boolean }) => {
      const body = { username, ...(o.password ? { password: o.password } : {}), ...(o.email ? { email: o.email } : {}), siteAdmin: o.admin === true };
      printObject(await client().call<Row>('POST', '/api/v1/users', body), json());
    });
  user.command('list').action(async () => printRows(await client().call<Row[]>('GET', '/api/v1/users'), ['username', 'siteAdmin', 'email', 'createdAt'], json()));

  const org = program.command('org').description('organisations');
  org.command('create <name>').action(async (name: string) => printObject(await client().call<Row>('POST', '/api/v1/orgs', { name }), json()));
  org.command('list').description('owners you can see').action(async () => printRows(await client().call<Row[]>('GET', '/api/v1/owners'), ['name', 'kind', 'createdAt'], json()));
  const orgMember = org.command('member').description('organisation members');
  orgMember
    .command('add <org> <username>')
    .option('-r, --role <role>', 'read | write | admin | owner', 'read')
    .action(async (o: string, u: string, opts: { role: string }) =>
      printObject(await client().call<Row>('PUT', `/api/v1/orgs/${enc(o)}/members/${enc(u)}`, { role: opts.role }), json()),
    );
  orgMember.command('list <org>').action(async (o: string) => printRows(await client().call<Row[]>('GET', `/api/v1/orgs/${enc(o)}/members`), ['username', 'role', 'createdAt'], json()));
  orgMember.command('rm <org> <username>').action(async (o: string, u: string) => {
    await client().call('DELETE', `/api/v1/orgs/${enc(o)}/members/${enc(u)}`);
  });

  const repo = program.command('repo').description('repositories (OWNER/REPOSITORY)');
  repo
    .command('create <repository>')
    .option('--private', 'private (the default)')
    .option('--public', 'public: anyone may pull')
    .option('-d, --description <text>', 'description', '')
    .action(async (r: string, o: { public?: boolean; description: string }) => {
      const [owner, name] = splitRepo(r);
      const body = { name, visibility: o.public ? 'public' : 'private', description: o.description };
      printObject(await client().call<Row>('POST', `/api/v1/owners/${enc(owner)}/repos`, body), json());
    });
  repo.command('list <owner>').action(async (owner: string) =>
    printRows(await client().call<Row[]>('GET', `/api/v1/owners/${enc(owner)}/repos`), ['name', 'visibility', 'description', 'createdAt'], json()),
  );
  repo.command('show <repository>').action(async (r: string) => {
    const [owner, name] = splitRepo(r);
    printObject(await client().call<Row>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}`), json());
  });
  repo
    .command('set <repository>')
    .option('--private')
    .option('--public')
    .option('-d, --description <text>')
    .option('--immutable-tags <patterns>', "tags that may not be moved or deleted, e.g. 'v*,!*-dev' ('' for none)")
    .option('--quota <size>', 'storage quota, e.g. 10GiB, or none (site administrators)')
    .action(async (r: string, o: { public?: boolean; private?: boolean; description?: string; immutableTags?: string; quota?: string }) => {
      const [owner, name] = splitRepo(r);
      const body: Row = {};
      if (o.public) body.visibility = 'public';
      if (o.private) body.visibility = 'private';
      if (o.description !== undefined) body.description = o.description;
      const lifecycle: Row = {};
      if (o.immutableTags !== undefined) lifecycle.immutableTags = o.immutableTags;
      if (o.quota !== undefined) lifecycle.quota = o.quota;
      if (Object.keys(lifecycle).length) {
        const v = await client().call<Row & { owner: Row }>('PUT', `/api/v1/repos/${enc(owner)}/${enc(name)}/lifecycle`, lifecycle);
        if (!Object.keys(body).length) return printObject({ ...v, owner: `${String(v.owner.name)} (quota ${String(v.owner.quotaBytes)}, usage ${String(v.owner.usageBytes)})` }, json());
      }
      printObject(await client().call<Row>('PATCH', `/api/v1/repos/${enc(owner)}/${enc(name)}`, body), json());
    });
  repo
    .command('usage <repository>')
    .description("storage usage, quota and immutable tags of a repository and its owner")
    .action(async (r: string) => {
      const [owner, name] = splitRepo(r);
      const v = await client().call<Row & { owner: Row }>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/lifecycle`);
      printObject(json() ? v : { ...v, owner: `${String(v.owner.name)} (quota ${String(v.owner.quotaBytes)}, usage ${String(v.owner.usageBytes)})` }, json());
    });
  program
    .command('owner-quota <owner> <size>')
    .description("set an owner's storage quota over all its repositories, e.g. 100GiB or none (site administrators)")
    .action(async (o: string, size: string) => printObject(await client().call<Row>('PUT', `/api/v1/owners/${enc(o)}/quota`, { quota: size }), json()));

  const member = program.command('member').description('repository members');
  member
    .command('add <repository> <username>')
    .option('-r, --role <role>', 'read | write | admin | owner', 'read')
    .action(async (r: string, u: string, o: { role: string }) => {
      const [owner, name] = splitRepo(r);
      printObject(await client().call<Row>('PUT', `/api/v1/repos/${enc(owner)}/${enc(name)}/members/${enc(u)}`, { role: o.role }), json());
    });
  member.command('list <repository>').action(async (r: string) => {
    const [owner, name] = splitRepo(r);
    printRows(await client().call<Row[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/members`), ['username', 'role', 'createdAt'], json());
  });
  member.command('rm <repository> <username>').action(async (r: string, u: string) => {
    const [owner, name] = splitRepo(r);
    await client().call('DELETE', `/api/v1/repos/${enc(owner)}/${enc(name)}/members/${enc(u)}`);
  });

  const credentialColumns = ['id', 'name', 'prefix', 'expiresAt', 'lastUsedAt', 'revokedAt'];
  const key = program.command('key').description('your API keys');
  key
    .command('create')
    .option('-n, --name <name>', 'a name to recognise it by', 'api key')
    .option('-e, --expires <duration>', 'e.g. 90d, 12h')
    .action(async (o: { name: string; expires?: string }) => {
      const k = await client().call<Row>('POST', '/api/v1/user/api-keys', { name: o.name, ...(o.expires ? { expiresIn: o.expires } : {}) });
      printObject(k, json());
      if (!json()) process.stderr.write('The secret is shown only now.\n');
    });
  key.command('list').action(async () => printRows(await client().call<Row[]>('GET', '/api/v1/user/api-keys'), credentialColumns, json()));
  key.command('revoke <id>').action(async (id: string) => {
    await client().call('DELETE', `/api/v1/user/api-keys/${enc(id)}`);
  });

  const token = program.command('token').description('read-only entitlement tokens of a repository');
  token
    .command('create <repository>')
    .option('-n, --name <name>', 'a name to recognise it by (e.g. the customer)', 'entitlement token')
    .option('-e, --expires <duration>', 'e.g. 30d, 12h')
    .option('-l, --limit <downloads>', 'maximum number of pulls')
    .action(async (r: string, o: { name: string; expires?: string; limit?: string }) => {
      const [owner, name] = splitRepo(r);
      const body = { name: o.name, ...(o.expires ? { expiresIn: o.expires } : {}), ...(o.limit ? { downloadLimit: Number(o.limit) } : {}) };
      const t = await client().call<Row>('POST', `/api/v1/repos/${enc(owner)}/${enc(name)}/tokens`, body);
      printObject(t, json());
      if (!json()) process.stderr.write(`The secret is shown only now. Use it with: docker login -u token -p <secret> <registry>\n`);
    });
  token.command('list <repository>').action(async (r: string) => {
    const [owner, name] = splitRepo(r);
    printRows(await client().call<Row[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/tokens`), [...credentialColumns, 'downloadCount', 'downloadLimit'], json());
  });
  token.command('revoke <repository> <id>').action(async (r: string, id: string) => {
    const [owner, name] = splitRepo(r);
    await client().call('DELETE', `/api/v1/repos/${enc(owner)}/${enc(name)}/tokens/${enc(id)}`);
  });

  const upstream = program.command('upstream').description('upstream registries of a repository: the pull-through cache (docs/proxy.md)');
  upstream
    .command('add <repository> <url>')
    .option('-u, --username <username>', 'credentials for the upstream')
    .option('-p, --password <password>', 'the password (or BERTH_UPSTREAM_PASSWORD, or --password-stdin)')
    .option('--password-stdin', 'read the password from standard input')
    .option('--priority <n>', 'lower is asked first', '0')
    .option('--no-cache', 'proxy without storing (every pull goes upstream)')
    .option('--prefix <prefix>', 'only images starting with this (e.g. hub/); stripped upstream')
    .option('--remote-prefix <prefix>', 'prepended to the image name upstream (e.g. library/)')
    .action(async (r: string, url: string, o: { username?: string; password?: string; passwordStdin?: boolean; priority: string; cache: boolean; prefix?: string; remotePrefix?: string }) => {
      const [owner, name] = splitRepo(r);
      let password = o.password ?? process.env.BERTH_UPSTREAM_PASSWORD;
      if (o.passwordStdin) {
        const parts: Buffer[] = [];
        for await (const c of process.stdin) parts.push(c as Buffer);
        password = Buffer.concat(parts).toString('utf8').replace(/\r?\n$/, '');
      }
      const body = {
        url,
        priority: Number(o.priority),
        cache: o.cache,
        ...(o.username ? { username: o.username, password: password ?? '' } : {}),
        ...(o.prefix ? { prefix: o.prefix } : {}),
        ...(o.remotePrefix ? { remotePrefix: o.remotePrefix } : {}),
      };
      printObject(await client().call<Row>('POST', `/api/v1/repos/${enc(owner)}/${enc(name)}/upstreams`, body), json());
    });
  upstream.command('list <repository>').action(async (r: string) => {
    const [owner, name] = splitRepo(r);
    printRows(
      await client().call<Row[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/upstreams`),
      ['id', 'url', 'username', 'priority', 'cache', 'prefix', 'remotePrefix', 'createdAt'],
      json(),
    );
  });
  upstream.command('rm <repository> <id>').action(async (r: string, id: string) => {
    const [owner, name] = splitRepo(r);
    await client().call('DELETE', `/api/v1/repos/${enc(owner)}/${enc(name)}/upstreams/${enc(id)}`);
  });
}
