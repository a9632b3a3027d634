import { readFileSync } from 'node:fs';
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

/**
 * `berth signing-key add | rotate | list | show` (docs/signing.md). Named apart from `berth key`
 * (your API keys) and `berth keys` (the key-encryption key), which read alike in `--help`.
 */
export function signingCommands(program: Command): void {
  const client = () => ApiClient.fromEnv({ server: program.opts().server as string | undefined });
  const json = () => program.opts().json === true;
  const sk = example(
    program.command('signing-key').description("a repository's image-signing keys (cosign format); not API keys (berth key) nor the key-encryption key (berth keys)"),
    'berth signing-key list acme/prod',
  );
  example(
    sk
      .command('list <repository>')
      .description('keys the repository trusts: its own (current and rotated out) and public keys added by an owner')
      .action(async (r: string) => printRows(await client().call<Row[]>('GET', `${repoPath(r)}/signing-keys`), ['keyId', 'kind', 'name', 'current', 'createdAt', 'retiredAt'], json())),
    'berth signing-key list acme/prod',
  );
  example(
    sk
      .command('show <repository>')
      .description("print the repository's current public key (PEM), e.g. for cosign verify --key or policy.json")
      .action(async (r: string) => void process.stdout.write(await client().callText('GET', `${repoPath(r)}/signing-key.pub`))),
    'berth signing-key show acme/prod > acme-prod.pub',
  );
  example(
    sk
      .command('add <repository> <file>')
      .description('trust signatures made with this public key (PEM file, e.g. cosign.pub)')
      .option('-n, --name <name>', 'a name for the key', 'trusted key')
      .action(async (r: string, file: string, o: { name: string }) => {
        const publicKey = readFileSync(file, 'utf8');
        printObject(await client().call<Row>('POST', `${repoPath(r)}/signing-keys`, { publicKey, name: o.name }), json());
      }),
    'berth signing-key add acme/prod cosign.pub --name ci',
  );
  example(
    sk
      .command('rotate <repository>')
      .description('give the repository a new signing key; the old one keeps verifying what it signed')
      .action(async (r: string) => printObject(await client().call<Row>('POST', `${repoPath(r)}/signing-keys/rotate`), json())),
    'berth signing-key rotate acme/prod',
  );
  example(
    sk
      .command('remove <repository> <keyId>')
      .description('stop trusting an added public key')
      .action(async (r: string, keyId: string) => {
        await client().call('DELETE', `${repoPath(r)}/signing-keys/${encodeURIComponent(keyId)}`);
        process.stdout.write(`no longer trusting ${keyId}\n`);
      }),
    'berth signing-key remove acme/prod 0123456789abcdef',
  );
}

/** The signing fields of `berth repo set` (added to that verb in admin.ts). */
export function signingSettingsFrom(o: { signOnPush?: boolean; requireSignature?: boolean }): Row | undefined {
  const body: Row = {};
  if (o.signOnPush !== undefined) body.signOnPush = o.signOnPush;
  if (o.requireSignature !== undefined) body.requireSignature = o.requireSignature;
  return Object.keys(body).length ? body : undefined;
}
