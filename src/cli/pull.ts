/** `berth pull NAME[:TAG|@DIGEST] --output oci-dir|oci-archive|docker-archive PATH` (docs/import.md). */
import type { Command } from 'commander';
import { EXPORT_FORMATS, exportImage, ImportError, RegistryClient, type ExportEvent, type ExportFormat } from '../core/import/index.ts';
import { parseImageName } from '../core/content/names.ts';
import { checkTransport, human, interruptible, Progress, registryCredentials, serverUrl, type RegistryOptions, type TransferEvent } from './push.ts';

interface PullOptions extends RegistryOptions {
  output: string;
  platform?: string;
  quiet?: boolean;
}

/** Splits `NAME[:TAG|@DIGEST]`; the tag defaults to `latest`. */
export function parseSourceRef(s: string): { name: string; reference: string; tag?: string } {
  const at = s.indexOf('@');
  if (at >= 0) return { name: s.slice(0, at), reference: s.slice(at + 1) };
  const slash = s.lastIndexOf('/');
  const colon = s.indexOf(':', slash + 1);
  if (colon >= 0) return { name: s.slice(0, colon), reference: s.slice(colon + 1), tag: s.slice(colon + 1) };
  return { name: s, reference: 'latest', tag: 'latest' };
}

export function pullCommand(program: Command): void {
  program
    .command('pull <name> <path>')
    .description('export an image to an OCI layout folder, an oci-archive or a docker-archive: berth pull NAME[:TAG] --output FORMAT PATH')
    .requiredOption('-o, --output <format>', `oci-dir | oci-archive | docker-archive`)
    .option('--platform <os/arch>', 'for docker-archive from a multi-platform image (default: this machine)')
    .option('-u, --username <name>', 'registry username (default: the login file or $BERTH_API_KEY)')
    .option('-p, --password <password>', 'password or API key (default: $BERTH_PASSWORD)')
    .option('--password-stdin', 'read the password or API key from standard input')
    .option('-q, --quiet', 'no progress')
    .addHelpText('after', '\nExamples:\n  $ berth pull acme/prod/app:1.0 --output docker-archive app.tar && docker load -i app.tar\n  $ berth pull acme/prod/app@sha256:… --output oci-dir ./app-layout\n')
    .option('--insecure', 'allow plain http to a remote host and skip TLS verification')
    .action(async (ref: string, out: string, opts: PullOptions, cmd: Command) => {
      const globals = cmd.optsWithGlobals() as { server?: string; json?: boolean };
      if (!EXPORT_FORMATS.includes(opts.output as ExportFormat)) {
        throw new Error(`--output must be one of ${EXPORT_FORMATS.join(', ')}, not "${opts.output}"`);
      }
      const format = opts.output as ExportFormat;
      const { name, reference, tag } = parseSourceRef(ref);
      try {
        parseImageName(name);
      } catch (e) {
        throw new Error(`"${ref}": ${(e as Error).message}`);
      }
      const server = serverUrl(globals.server);
      checkTransport(server, opts.insecure);
      const creds = await registryCredentials(opts, server);
      const client = new RegistryClient({ url: server, ...creds, insecure: opts.insecure === true, mode: 'pull', userAgent: 'berth-pull' });
      const progress = new Progress(Progress.mode({ json: globals.json, quiet: opts.quiet }), { ing: 'downloading', ed: 'downloaded' });
      const stop = interruptible();
      const host = new URL(server).host;
      const onEvent = (e: ExportEvent) => {
        if (e.type === 'resolve') {
          progress.setTotal(e.bytes);
          progress.say(`${name}:${reference} → ${e.digest} (${e.mediaType}), ${e.blobs} blobs, ${human(e.bytes)}`);
        } else if (e.type === 'warning') {
          progress.say(`warning: ${e.message}`);
        }
        progress.event(e as TransferEvent);
      };
      try {
        const r = await exportImage(client, name, reference, format, out, {
          ...(opts.platform ? { platform: opts.platform } : {}),
          ...(tag ? { tag, repoTag: `${host}/${name}:${tag}` } : {}),
          onEvent,
          signal: stop.signal,
        });
        progress.stop();
        if (!globals.json) process.stdout.write(`${out} ${r.digest}\n`);
      } catch (e) {
        progress.stop();
        if (globals.json) {
          process.stdout.write(`${JSON.stringify({ type: 'error', code: e instanceof ImportError ? e.code : 'ERROR', message: (e as Error).message })}\n`);
        }
        throw e;
      } finally {
        stop.dispose();
        client.close();
      }
    });
}
