import type { Command } from 'commander';
import { ApiClient, readLogin, removeLogin, writeLogin } from './client.ts';
import { printObject, printRows } from './format.ts';
import { confirmDeletion, example, readStdin, secretFrom } from './input.ts';
import { signingSettingsFrom } from './signing.ts';

type Row = Record<string, unknown>;

export function splitRepo(s: string): [string, string] {
  const parts = s.split('/');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new Error(`expected OWNER/REPOSITORY, got "${s}"`);
  return [parts[0], parts[1]];
}

const enc = encodeURIComponent;

/** Management verbs: each calls /api/v1 with the API key of BERTH_API_KEY or the login file. */
export function adminCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;

  example(
    program
      .command('login')
      .description('sign in with a password, create an API key and keep it in the login file')
      .requiredOption('-u, --username <name>', 'username')
      .option('-p, --password <password>', 'password (default: $BERTH_PASSWORD)')
      .option('--password-stdin', 'read the password from standard input')
      .action(async (opts: { username: string; password?: string; passwordStdin?: boolean }) => {
        const password = await secretFrom(opts, 'BERTH_PASSWORD');
        if (!password) throw new Error('give --password, --password-stdin or set BERTH_PASSWORD');
        const server = (program.opts().server as string | undefined) ?? process.env.BERTH_URL ?? 'http://localhost:5000';
        const c = ApiClient.basic(server, opts.username, password);
        const host = (process.env.HOSTNAME ?? '').slice(0, 40);
        const key = await c.call<Row>('POST', '/api/v1/user/api-keys', { name: `berth login${host ? ` on ${host}` : ''} ${new Date().toISOString().slice(0, 16)}` });
        const file = writeLogin({ server, apiKey: String(key.secret), keyId: Number(key.id), username: opts.username });
        process.stdout.write(`Signed in to ${server} as ${opts.username}; API key saved in ${file}\n`);
      }),
    'echo "$PASSWORD" | berth --server https://registry.example.com login -u alice --password-stdin',
  );

  example(
    program
      .command('logout')
      .description("revoke the login file's API key on the server and remove the login file")
      .action(async () => {
        const login = readLogin();
        if (!login) {
          process.stderr.write('not signed in (no login file)\n');
          return;
        }
        if (login.apiKey) {
          const c = new ApiClient(login.server.replace(/\/$/, ''), `Bearer ${login.apiKey}`);
          try {
            let id = login.keyId;
            if (id === undefined) {
              const keys = await c.call<{ id: number; prefix: string }[]>('GET', '/api/v1/user/api-keys');
              id = keys.find((k) => login.apiKey!.startsWith(k.prefix) && k.prefix.length >= 12)?.id;
            }
            if (id !== undefined) await c.call('DELETE', `/api/v1/user/api-keys/${id}`);
          } catch (e) {
            process.stderr.write(`warning: could not revoke the API key on ${login.server} (${(e as Error).message}); removing the login file anyway\n`);
          }
        }
        removeLogin();
        process.stdout.write(`Signed out of ${login.server}\n`);
      }),
    'berth logout',
  );

  example(
    program
      .command('whoami')
      .description('show who the API key belongs to')
      .action(async () => printObject(await client().call<Row>('GET', '/api/v1/whoami'), json())),
    'berth whoami',
    'BERTH_API_KEY=berth_k_… berth --json whoami',
  );

  example(
    program
      .command('passwd')
      .description('change your password (the current one is required); keys and sessions stay valid')
      .option('--current <password>', 'current password (default: $BERTH_PASSWORD)')
      .option('--new <password>', 'new password, min. 8 characters (default: $BERTH_NEW_PASSWORD)')
      .option('--password-stdin', 'read the current password, then the new one, as two lines of standard input')
      .action(async (o: { current?: string; new?: string; passwordStdin?: boolean }) => {
        let current = o.current ?? process.env.BERTH_PASSWORD;
        let next = o.new ?? process.env.BERTH_NEW_PASSWORD;
        if (o.passwordStdin) {
          const lines = (await readStdin()).split(/\r?\n/);
          if (lines.length !== 2) throw new Error('--password-stdin expects two lines: the current password, then the new one');
          [current, next] = lines as [string, string];
        }
        if (!current || !next) throw new Error('give the current and the new password (--current/--new, --password-stdin, or BERTH_PASSWORD/BERTH_NEW_PASSWORD)');
        await client().call('PUT', '/api/v1/user/password', { currentPassword: current, newPassword: next });
        process.stdout.write('Password changed.\n');
      }),
    'printf "%s\\n%s\\n" "$OLD" "$NEW" | berth passwd --password-stdin',
  );

  const user = example(program.command('user').description('users (site administrators)'), 'berth user list');
  example(
    user
      .command('create <username>')
      .description('create a user and their namespace')
      .option('-p, --password <password>', 'initial password (min. 8 characters)')
      .option('--password-stdin', 'read the initial password from standard input')
      .option('--email <email>')
      .option('--admin', 'make the user a site administrator')
      .action(async (username: string, o: { password?: string; passwordStdin?: boolean; email?: string; admin?: boolean }) => {
        const password = await secretFrom(o, 'BERTH_NEW_PASSWORD');
        const body = { username, ...(password ? { password } : {}), ...(o.email ? { email: o.email } : {}), siteAdmin: o.admin === true };
        printObject(await client().call<Row>('POST', '/api/v1/users', body), json());
      }),
    'echo "$PASSWORD" | berth user create bob --password-stdin --email bob@example.com',
  );
  example(
    user
      .command('list')
      .description('list users')
      .action(async () => printRows(await client().call<Row[]>('GET', '/api/v1/users'), ['username', 'siteAdmin', 'email', 'createdAt'], json())),
    'berth user list',
  );
  example(
    user
      .command('passwd <username>')
      .description("set another user's password")
      .option('-p, --password <password>', 'the new password (default: $BERTH_NEW_PASSWORD)')
      .option('--password-stdin', 'read the new password from standard input')
      .action(async (username: string, o: { password?: string; passwordStdin?: boolean }) => {
        const password = await secretFrom(o, 'BERTH_NEW_PASSWORD');
        if (!password) throw new Error('give --password, --password-stdin or set BERTH_NEW_PASSWORD');
        await client().call('PUT', `/api/v1/users/${enc(username)}/password`, { password });
        process.stdout.write(`Password of ${username} set.\n`);
      }),
    'echo "$NEW_PASSWORD" | berth user passwd bob --password-stdin',
  );
  example(
    user
      .command('revoke-keys <username>')
      .description('revoke every API key and web session of a user at once (yourself, or anyone as a site administrator)')
      .action(async (username: string) => {
        const r = await client().call<Row>('POST', `/api/v1/users/${enc(username)}/revoke-keys`);
        printObject(r, json());
      }),
    'berth user revoke-keys bob',
  );
  example(
    user
      .command('rm <username>')
      .description('delete a user with their namespace (repositories, images, keys); blobs are left to garbage collection')
      .option('-y, --yes', 'do not ask for confirmation')
      .action(async (username: string, o: { yes?: boolean }) => {
        const confirm = await confirmDeletion('user', username, o.yes);
        await client().call('DELETE', `/api/v1/users/${enc(username)}?confirm=${enc(confirm)}`);
        process.stdout.write(`Deleted user ${username}.\n`);
      }),
    'berth user rm bob --yes',
  );

  const org = example(program.command('org').description('organisations'), 'berth org list');
  example(
    org
      .command('create <name>')
      .description('create an organisation; you become its owner')
      .action(async (name: string) => printObject(await client().call<Row>('POST', '/api/v1/orgs', { name }), json())),
    'berth org create acme',
  );
  example(
    org
      .command('list')
      .description('organisations you can see (users are listed by `berth user list`)')
      .action(async () => printRows(await client().call<Row[]>('GET', '/api/v1/orgs'), ['name', 'createdAt'], json())),
    'berth org list',
  );
  example(
    org
      .command('leave <org>')
      .description('leave an organisation (its last owner cannot)')
      .action(async (o: string) => {
        await client().call('POST', `/api/v1/orgs/${enc(o)}/leave`);
        process.stdout.write(`Left ${o}.\n`);
      }),
    'berth org leave acme',
  );
  example(
    org
      .command('rm <org>')
      .description('delete an organisation with all its repositories (owners only); blobs are left to garbage collection')
      .option('-y, --yes', 'do not ask for confirmation')
      .action(async (o: string, opts: { yes?: boolean }) => {
        const confirm = await confirmDeletion('organisation', o, opts.yes);
        await client().call('DELETE', `/api/v1/orgs/${enc(o)}?confirm=${enc(confirm)}`);
        process.stdout.write(`Deleted organisation ${o}.\n`);
      }),
    'berth org rm acme --yes',
  );
  const orgMember = example(org.command('member').description('organisation members'), 'berth org member list acme');
  example(
    orgMember
      .command('add <org> <username>')
      .description('add a member or change their role')
      .option('-r, --role <role>', 'read | write | admin | owner', 'read')
      .action(async (o: string, u: string, opts: { role: string }) =>
        printObject(await client().call<Row>('PUT', `/api/v1/orgs/${enc(o)}/members/${enc(u)}`, { role: opts.role }), json()),
      ),
    'berth org member add acme bob --role write',
  );
  example(
    orgMember
      .command('list <org>')
      .description('list members and their roles')
      .action(async (o: string) => printRows(await client().call<Row[]>('GET', `/api/v1/orgs/${enc(o)}/members`), ['username', 'role', 'createdAt'], json())),
    'berth org member list acme',
  );
  example(
    orgMember
      .command('rm <org> <username>')
      .description('remove a member')
      .action(async (o: string, u: string) => {
        await client().call('DELETE', `/api/v1/orgs/${enc(o)}/members/${enc(u)}`);
      }),
    'berth org member rm acme bob',
  );

  const repo = example(program.command('repo').description('repositories (OWNER/REPOSITORY)'), 'berth repo list acme');
  example(
    repo
      .command('create <repository>')
      .description('create a repository (private unless --public)')
      .option('--private', 'private (the default)')
      .option('--public', 'public: anyone may pull')
      .option('-d, --description <text>', 'description', '')
      .action(async (r: string, o: { public?: boolean; description: string }) => {
        const [owner, name] = splitRepo(r);
        const body = { name, visibility: o.public ? 'public' : 'private', description: o.description };
        printObject(await client().call<Row>('POST', `/api/v1/owners/${enc(owner)}/repos`, body), json());
      }),
    'berth repo create acme/prod --private -d "production images"',
  );
  example(
    repo
      .command('list <owner>')
      .description("an owner's repositories you may read")
      .action(async (owner: string) =>
        printRows(await client().call<Row[]>('GET', `/api/v1/owners/${enc(owner)}/repos`), ['name', 'visibility', 'description', 'createdAt'], json()),
      ),
    'berth repo list acme',
  );
  example(
    repo
      .command('show <repository>')
      .description('a repository and whether you may manage it')
      .action(async (r: string) => {
        const [owner, name] = splitRepo(r);
        printObject(await client().call<Row>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}`), json());
      }),
    'berth repo show acme/prod',
  );
  example(
    repo
      .command('set <repository>')
      .description("change a repository's visibility, description, immutable tags, quota, signing, SBOM generation or vulnerability policy")
      .option('--private')
      .option('--public')
      .option('-d, --description <text>')
      .option('--immutable-tags <patterns>', "tags that may not be moved or deleted, e.g. 'v*,!*-dev' ('' for none)")
      .option('--quota <size>', 'storage quota, e.g. 10GiB, or none (site administrators)')
      .option('--sign-on-push', 'sign every pushed image and index with the repository key (docs/signing.md)')
      .option('--no-sign-on-push', 'stop signing on push')
      .option('--require-signature', 'serve only manifests with a valid signature from a trusted key (owners and pushers exempt)')
      .option('--no-require-signature', 'serve signed and unsigned manifests alike')
      .option('--sbom', 'generate an SBOM for each image pushed (the default)')
      .option('--no-sbom', 'generate no SBOMs for future pushes')
      .option('--deny-severity <level>', 'refuse pulls of images with vulnerabilities at or above: critical | high | medium | low | none')
      .option('--deny-fixable-only', 'refuse only for vulnerabilities that have a fix (--no-deny-fixable-only: any)')
      .option('--no-deny-fixable-only')
      .option('--block-until-scanned', 'refuse pulls of newly pushed images until their vulnerability report exists (--no-block-until-scanned: off)')
      .option('--no-block-until-scanned')
      .action(
        async (
          r: string,
          o: { public?: boolean; private?: boolean; description?: string; immutableTags?: string; quota?: string; signOnPush?: boolean; requireSignature?: boolean; sbom?: boolean; denySeverity?: string; denyFixableOnly?: boolean; blockUntilScanned?: boolean },
        ) => {
          const [owner, name] = splitRepo(r);
          const base = `/api/v1/repos/${enc(owner)}/${enc(name)}`;
          const body: Row = {};
          if (o.public) body.visibility = 'public';
          if (o.private) body.visibility = 'private';
          if (o.description !== undefined) body.description = o.description;
          // Each group of settings has its own resource; the answer shown is the repository's
          // when it changed, else the last group's.
          const groups: { path: string; body: Row; show: (v: Row) => Row }[] = [];
          const lifecycle: Row = {};
          if (o.immutableTags !== undefined) lifecycle.immutableTags = o.immutableTags;
          if (o.quota !== undefined) lifecycle.quota = o.quota;
          if (Object.keys(lifecycle).length) groups.push({ path: 'lifecycle', body: lifecycle, show: (v) => (json() ? v : withOwnerUsage(v as Row & { owner: Row })) });
          const signing = signingSettingsFrom(o);
          if (signing) groups.push({ path: 'signing', body: signing, show: (v) => v });
          if (o.sbom !== undefined) groups.push({ path: 'sbom', body: { enabled: o.sbom }, show: (v) => v });
          const vulns: Row = {};
          if (o.denySeverity !== undefined) vulns.denySeverity = o.denySeverity;
          if (o.denyFixableOnly !== undefined) vulns.fixableOnly = o.denyFixableOnly;
          if (o.blockUntilScanned !== undefined) vulns.blockUntilScanned = o.blockUntilScanned;
          if (Object.keys(vulns).length) groups.push({ path: 'vulnerability-policy', body: vulns, show: ({ exceptions: _, ...shown }) => (json() ? { exceptions: _, ...shown } : shown) });
          let shown: Row | undefined;
          for (const g of groups) shown = g.show(await client().call<Row>('PUT', `${base}/${g.path}`, g.body));
          if (shown && !Object.keys(body).length) return printObject(shown, json());
          printObject(await client().call<Row>('PATCH', base, body), json());
        },
      ),
    "berth repo set acme/oss --public --immutable-tags 'v*'",
    'berth repo set acme/prod --sign-on-push --require-signature',
    'berth repo set acme/prod --no-sbom',
    'berth repo set acme/prod --deny-severity high --deny-fixable-only --block-until-scanned',
  );
  example(
    repo
      .command('usage <repository>')
      .description('storage usage, quota and immutable tags of a repository and its owner')
      .action(async (r: string) => {
        const [owner, name] = splitRepo(r);
        const v = await client().call<Row & { owner: Row }>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/lifecycle`);
        printObject(json() ? v : withOwnerUsage(v), json());
      }),
    'berth repo usage acme/prod',
  );
  example(
    program
      .command('owner-quota <owner> <size>')
      .description("set an owner's storage quota over all its repositories, e.g. 100GiB or none (site administrators)")
      .action(async (o: string, size: string) => printObject(await client().call<Row>('PUT', `/api/v1/owners/${enc(o)}/quota`, { quota: size }), json())),
    'berth owner-quota acme 100GiB',
  );
  example(
    repo
      .command('rm <repository>')
      .description('delete a repository with its images, tags, tokens, webhooks and upstreams; blobs are left to garbage collection')
      .option('-y, --yes', 'do not ask for confirmation')
      .action(async (r: string, o: { yes?: boolean }) => {
        const [owner, name] = splitRepo(r);
        const confirm = await confirmDeletion('repository', `${owner}/${name}`, o.yes);
        await client().call('DELETE', `/api/v1/repos/${enc(owner)}/${enc(name)}?confirm=${enc(confirm)}`);
        process.stdout.write(`Deleted repository ${owner}/${name}.\n`);
      }),
    'berth repo rm acme/old --yes',
  );

  const member = example(program.command('member').description('repository members'), 'berth member list acme/prod');
  example(
    member
      .command('add <repository> <username>')
      .description('add a member or change their role')
      .option('-r, --role <role>', 'read | write | admin | owner', 'read')
      .action(async (r: string, u: string, o: { role: string }) => {
        const [owner, name] = splitRepo(r);
        printObject(await client().call<Row>('PUT', `/api/v1/repos/${enc(owner)}/${enc(name)}/members/${enc(u)}`, { role: o.role }), json());
      }),
    'berth member add acme/prod bob --role write',
  );
  example(
    member
      .command('list <repository>')
      .description('list members and their roles')
      .action(async (r: string) => {
        const [owner, name] = splitRepo(r);
        printRows(await client().call<Row[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/members`), ['username', 'role', 'createdAt'], json());
      }),
    'berth member list acme/prod',
  );
  example(
    member
      .command('rm <repository> <username>')
      .description('remove a member')
      .action(async (r: string, u: string) => {
        const [owner, name] = splitRepo(r);
        await client().call('DELETE', `/api/v1/repos/${enc(owner)}/${enc(name)}/members/${enc(u)}`);
      }),
    'berth member rm acme/prod bob',
  );

  const credentialColumns = ['id', 'name', 'prefix', 'expiresAt', 'lastUsedAt', 'revokedAt'];
  const key = example(program.command('key').description('your API keys'), 'berth key list');
  example(
    key
      .command('create')
      .description('create an API key; its secret is shown only now')
      .option('-n, --name <name>', 'a name to recognise it by', 'api key')
      .option('-e, --expires <duration>', 'e.g. 90d, 12h')
      .action(async (o: { name: string; expires?: string }) => {
        const k = await client().call<Row>('POST', '/api/v1/user/api-keys', { name: o.name, ...(o.expires ? { expiresIn: o.expires } : {}) });
        printObject(k, json());
        if (!json()) process.stderr.write('The secret is shown only now.\n');
      }),
    'berth key create -n ci --expires 90d',
  );
  example(
    key
      .command('list')
      .description('list your API keys (never their secrets)')
      .action(async () => printRows(await client().call<Row[]>('GET', '/api/v1/user/api-keys'), credentialColumns, json())),
    'berth key list',
  );
  example(
    key
      .command('revoke <id>')
      .description('revoke one of your API keys')
      .action(async (id: string) => {
        await client().call('DELETE', `/api/v1/user/api-keys/${enc(id)}`);
      }),
    'berth key revoke 12',
  );

  const token = example(program.command('token').description('read-only entitlement tokens of a repository'), 'berth token list acme/prod');
  example(
    token
      .command('create <repository>')
      .description('create a read-only token for a customer; its secret is shown only now')
      .option('-n, --name <name>', 'a name to recognise it by (e.g. the customer)', 'entitlement token')
      .option('-e, --expires <duration>', 'e.g. 30d, 12h')
      .option('-l, --limit <downloads>', 'maximum number of pulls')
      .action(async (r: string, o: { name: string; expires?: string; limit?: string }) => {
        const [owner, name] = splitRepo(r);
        const body = { name: o.name, ...(o.expires ? { expiresIn: o.expires } : {}), ...(o.limit ? { downloadLimit: Number(o.limit) } : {}) };
        const t = await client().call<Row>('POST', `/api/v1/repos/${enc(owner)}/${enc(name)}/tokens`, body);
        printObject(t, json());
        if (!json()) process.stderr.write(`The secret is shown only now. Use it with: docker login -u token --password-stdin <registry>\n`);
      }),
    'berth token create acme/prod --name customer-a --expires 30d --limit 1000',
  );
  example(
    token
      .command('list <repository>')
      .description("list a repository's tokens with their use")
      .action(async (r: string) => {
        const [owner, name] = splitRepo(r);
        printRows(await client().call<Row[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/tokens`), [...credentialColumns, 'downloadCount', 'downloadLimit'], json());
      }),
    'berth token list acme/prod',
  );
  example(
    token
      .command('revoke <repository> <id>')
      .description('revoke a token')
      .action(async (r: string, id: string) => {
        const [owner, name] = splitRepo(r);
        await client().call('DELETE', `/api/v1/repos/${enc(owner)}/${enc(name)}/tokens/${enc(id)}`);
      }),
    'berth token revoke acme/prod 7',
  );

  const upstream = example(
    program.command('upstream').description('upstream registries of a repository: the pull-through cache (docs/proxy.md)'),
    'berth upstream list acme/mirror',
  );
  example(
    upstream
      .command('add <repository> <url>')
      .description('add an upstream registry; pulls of missing images go there')
      .option('-u, --username <username>', 'credentials for the upstream')
      .option('-p, --password <password>', 'the password (or BERTH_UPSTREAM_PASSWORD, or --password-stdin)')
      .option('--password-stdin', 'read the password from standard input')
      .option('--priority <n>', 'lower is asked first', '0')
      .option('--no-cache', 'proxy without storing (every pull goes upstream)')
      .option('--prefix <prefix>', 'only images starting with this (e.g. hub/); stripped upstream')
      .option('--remote-prefix <prefix>', 'prepended to the image name upstream (e.g. library/)')
      .action(async (r: string, url: string, o: { username?: string; password?: string; passwordStdin?: boolean; priority: string; cache: boolean; prefix?: string; remotePrefix?: string }) => {
        const [owner, name] = splitRepo(r);
        const password = await secretFrom(o, 'BERTH_UPSTREAM_PASSWORD');
        const body = {
          url,
          priority: Number(o.priority),
          cache: o.cache,
          ...(o.username ? { username: o.username, password: password ?? '' } : {}),
          ...(o.prefix ? { prefix: o.prefix } : {}),
          ...(o.remotePrefix ? { remotePrefix: o.remotePrefix } : {}),
        };
        printObject(await client().call<Row>('POST', `/api/v1/repos/${enc(owner)}/${enc(name)}/upstreams`, body), json());
      }),
    'berth upstream add acme/mirror https://registry-1.docker.io --prefix hub/ --remote-prefix library/',
  );
  example(
    upstream
      .command('list <repository>')
      .description("list a repository's upstreams by priority")
      .action(async (r: string) => {
        const [owner, name] = splitRepo(r);
        printRows(
          await client().call<Row[]>('GET', `/api/v1/repos/${enc(owner)}/${enc(name)}/upstreams`),
          ['id', 'url', 'username', 'priority', 'cache', 'prefix', 'remotePrefix', 'createdAt'],
          json(),
        );
      }),
    'berth upstream list acme/mirror',
  );
  example(
    upstream
      .command('rm <repository> <id>')
      .description('remove an upstream (cached content stays)')
      .action(async (r: string, id: string) => {
        const [owner, name] = splitRepo(r);
        await client().call('DELETE', `/api/v1/repos/${enc(owner)}/${enc(name)}/upstreams/${enc(id)}`);
      }),
    'berth upstream rm acme/mirror 3',
  );
}

/** A repository's lifecycle settings with its owner's quota and usage on one line. */
function withOwnerUsage(v: Row & { owner: Row }): Row {
  return { ...v, owner: `${String(v.owner.name)} (quota ${String(v.owner.quotaBytes)}, usage ${String(v.owner.usageBytes)})` };
}
