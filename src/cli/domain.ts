import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ApiClient } from './client.ts';
import { printObject, printRows } from './format.ts';
import { example } from './input.ts';

type Row = Record<string, unknown>;

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the ${what} ${file}: ${(e as Error).message}`);
  }
}

const COLUMNS = ['host', 'target', 'mirror', 'certificate', 'certificateExpiresAt', 'createdAt'];

/** `berth domain add|list|rm|cert` over the management API (docs/domains.md). */
export function domainCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const hostPath = (host: string) => `/api/v1/domains/${encodeURIComponent(host)}`;

  const domain = example(
    program.command('domain').description('custom domains: a host name for an owner or one repository, or a registry mirror (docs/domains.md)'),
    'berth domain list',
  );
  example(
    domain
      .command('add <host> <target>')
      .description('map HOST to OWNER (HOST/REPOSITORY/IMAGE) or OWNER/REPOSITORY (HOST/IMAGE); site administrators')
      .option('--mirror', 'serve the repository read-only at the root, for registry-mirrors (needs OWNER/REPOSITORY)')
      .option('--cert <file>', 'PEM certificate (chain) served for HOST by SNI')
      .option('--key <file>', 'PEM private key of --cert (stored sealed)')
      .action(async (host: string, target: string, o: { mirror?: boolean; cert?: string; key?: string }) => {
        if (!o.cert !== !o.key) throw new Error('--cert and --key go together');
        const body = {
          host,
          target,
          mirror: o.mirror === true,
          ...(o.cert && o.key ? { cert: readPem(o.cert, 'certificate'), key: readPem(o.key, 'key') } : {}),
        };
        printObject(await client().call<Row>('POST', '/api/v1/domains', body), json());
      }),
    'berth domain add registry.acme.com acme --cert acme.crt --key acme.key',
  );
  example(
    domain
      .command('list')
      .description('the domains you may manage (all of them for a site administrator)')
      .option('--owner <owner>', 'only those of this owner')
      .action(async (o: { owner?: string }) => {
        const q = o.owner ? `?owner=${encodeURIComponent(o.owner)}` : '';
        printRows(await client().call<Row[]>('GET', `/api/v1/domains${q}`), COLUMNS, json());
      }),
    'berth domain list --owner acme',
  );
  example(
    domain
      .command('rm <host>')
      .description('remove a domain: its clients get the main host again')
      .action(async (host: string) => {
        await client().call('DELETE', hostPath(host));
      }),
    'berth domain rm registry.acme.com',
  );
  example(
    domain
      .command('cert <host>')
      .description("replace a domain's certificate and key, or remove them (--remove)")
      .option('--cert <file>', 'PEM certificate (chain)')
      .option('--key <file>', 'PEM private key')
      .option('--remove', 'serve the server certificate for it again')
      .action(async (host: string, o: { cert?: string; key?: string; remove?: boolean }) => {
        if (o.remove) {
          await client().call('DELETE', `${hostPath(host)}/certificate`);
          return;
        }
        if (!o.cert || !o.key) throw new Error('give --cert and --key, or --remove');
        printObject(await client().call<Row>('PUT', `${hostPath(host)}/certificate`, { cert: readPem(o.cert, 'certificate'), key: readPem(o.key, 'key') }), json());
      }),
    'berth domain cert registry.acme.com --cert new.crt --key new.key',
  );
}
