import type { Command } from 'commander';
import { loadConfig } from '../config/schema.ts';
import { addKeyToFile, retainKeysInFile } from '../core/keys/keyring.ts';
import { type SweepResult, sealedSites, sweepSealed } from '../core/keys/sealed.ts';
import { openKeyring, openMetadata } from '../main.ts';
import { exampleText } from './input.ts';
import { SqlDomainStore } from '../metadata/sql/domain-store.ts';

function report(results: Record<string, SweepResult>): string {
  return Object.entries(results)
    .map(([site, r]) => `  ${site}: ${r.resealed} re-sealed, ${r.sealed} sealed from plain text, ${r.current} already current\n`)
    .join('');
}

/** A key file Berth may not write (a mounted secret): the operator edits it. */
function readOnly(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EROFS' || code === 'EACCES' || code === 'EPERM';
}

/** Re-seals every secret under the current key; with `addKey` first adds one, with `retire` then drops the others. */
async function reseal(opts: { config?: string; data?: string; newKey?: boolean }, addKey: boolean, retire: boolean): Promise<void> {
  const config = loadConfig({ file: opts.config, overrides: { data: opts.data } });
  let keyring = await openKeyring(config);
  if (addKey && opts.newKey !== false) {
    if (keyring.source.kind === 'file') {
      let id: string;
      try {
        id = await addKeyToFile(keyring.source.file!);
      } catch (e) {
        if (!readOnly(e)) throw e;
        throw new Error(
          `cannot write ${keyring.source.file} (${(e as Error).message}): put a new key (openssl rand -base64 32) first in it yourself, then run \`berth keys rotate --no-new-key\``,
        );
      }
      process.stdout.write(`added key ${id} to ${keyring.source.file} (it now encrypts; the older keys still decrypt)\n`);
      keyring = await openKeyring(config);
    } else {
      process.stdout.write(`keys come from BERTH_KEK: re-sealing under its first key ${keyring.currentId} (put a new key first to rotate)\n`);
    }
  }
  const { meta, access, events, signing, db } = await openMetadata(config);
  try {
    const results = await sweepSealed(keyring, await sealedSites(access, events, config.proxy.secretKey, signing, new SqlDomainStore(db)), { rotate: true });
    process.stdout.write(`secrets now sealed with key ${keyring.currentId}:\n${report(results)}`);
  } finally {
    await meta.close();
  }
  if (retire) {
    const old = keyring.keyIds.filter((id) => id !== keyring.currentId);
    if (keyring.source.kind === 'file' && old.length) {
      try {
        await retainKeysInFile(keyring.source.file!, [keyring.currentId]);
        process.stdout.write(`removed key(s) ${old.join(', ')} from ${keyring.source.file}\n`);
      } catch (e) {
        if (!readOnly(e)) throw e;
        process.stdout.write(`nothing is sealed with ${old.join(', ')} any more: remove them from ${keyring.source.file}\n`);
      }
    } else if (old.length) {
      process.stdout.write(`nothing is sealed with ${old.join(', ')} any more: remove them from BERTH_KEK\n`);
    }
  }
}

/** `berth keys rotate | retire` (docs/operations.md#keys). */
export function keyCommands(program: Command): void {
  const keys = program.command('keys').description('manage the key-encryption key that seals secrets in the database').addHelpText('after', exampleText('berth keys rotate --config berth.yaml'));
  keys
    .command('rotate')
    .description('add a new key-encryption key and re-seal every secret with it (older keys keep decrypting)').addHelpText('after', exampleText('berth keys rotate --config berth.yaml'))
    .option('-c, --config <file>', 'YAML config file')
    .option('-d, --data <dir>', 'data folder (default ./data)')
    .option('--no-new-key', 'only re-seal under the current (first) key: you added the new key yourself')
    .action((opts: { config?: string; data?: string; newKey?: boolean }) => reseal(opts, true, false));
  keys
    .command('retire')
    .description('re-seal anything still sealed with an older key, then remove the older keys (run once every node has restarted with the new key)').addHelpText('after', exampleText('berth keys retire --config berth.yaml'))
    .option('-c, --config <file>', 'YAML config file')
    .option('-d, --data <dir>', 'data folder (default ./data)')
    .action((opts: { config?: string; data?: string }) => reseal(opts, false, true));
}
