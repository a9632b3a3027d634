import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError, loadConfig } from '../config/schema.ts';
import { openMetadata } from '../main.ts';
import { runServe } from './serve.ts';
import { migrateToLatest, migrationStatus } from '../metadata/sql/migrations.ts';
import { adminCommands } from './admin.ts';
import { contentCommands } from './content.ts';
import { example } from './input.ts';
import { pushCommands } from './push.ts';
import { webhookCommands } from './webhook.ts';
import { keyCommands } from './keys.ts';
import { jobCommands } from './jobs.ts';
import { gcCommands, quotaCommands } from './gc.ts';
import { retentionCommands } from './retention.ts';
import { signingCommands } from './signing.ts';
import { vulnCommands } from './vulns.ts';
import { sbomCommands } from './sbom.ts';
import { limitCommands } from './limits.ts';
import { domainCommands } from './domain.ts';

/** The package's version (package.json sits two folders up from src/cli and dist/cli). */
export function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** The `berth` command with every verb; `index.ts` runs it. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('berth')
    .description('Berth: an OCI artifact and Docker container registry')
    .version(version(), '-V, --version', 'print the version')
    .option('-s, --server <url>', 'Berth server for management commands (default $BERTH_URL, the login file, or http://localhost:5000)')
    .option('--json', 'print JSON instead of tables');
  adminCommands(program);
  contentCommands(program);
  pushCommands(program);
  webhookCommands(program);
  keyCommands(program);
  jobCommands(program);
  sbomCommands(program);
  gcCommands(program);
  quotaCommands(program);
  retentionCommands(program);
  signingCommands(program);
  vulnCommands(program);
  limitCommands(program);
  domainCommands(program);
  const serveCmd = program
    .command('serve')
    .description('run the registry')
    .option('-c, --config <file>', 'YAML config file')
    .addOption(new Option('-l, --listen <addr>', 'HOST:PORT or :PORT to listen on (default :5000)').env('BERTH_LISTEN'))
    .addOption(new Option('-d, --data <dir>', 'data folder (default ./data)').env('BERTH_DATA'))
    .addOption(new Option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent').env('BERTH_LOG_LEVEL'))
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain); with --tls-key; re-read on SIGHUP')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--http2', 'offer HTTP/2 next to HTTP/1.1 on the TLS port (tls.http2)')
    .addOption(new Option('-w, --workers <n>', 'serving processes, 0 = one per CPU core (default 0)').env('BERTH_WORKERS'))
    .action(async (opts: { config?: string; listen?: string; data?: string; logLevel?: string; tlsCert?: string; tlsKey?: string; http2?: boolean; workers?: string }) => {
      let config;
      try {
        config = loadConfig({
          file: opts.config,
          overrides: {
            listen: opts.listen,
            data: opts.data,
            logLevel: opts.logLevel as never,
            workers: opts.workers === undefined ? undefined : Number(opts.workers),
            ...(opts.tlsCert || opts.tlsKey ? { tls: { cert: opts.tlsCert, key: opts.tlsKey, http2: opts.http2 === true } } : {}),
          },
        });
        // --http2 alone turns it on for the TLS pair of the file or the environment
        if (opts.http2 && !(opts.tlsCert || opts.tlsKey)) config = { ...config, tls: { ...config.tls, http2: true } };
      } catch (e) {
        if (e instanceof ConfigError) {
          process.stderr.write(`berth: ${e.message}\n`);
          process.exit(2);
        }
        throw e;
      }
      // Whatever the server writes (database, blobs, keys, spool files) is for its own user only.
      process.umask(0o077);
      await runServe(config);
    });

    const migrateCmd = program
    .command('migrate')
    .description('apply pending database migrations (PostgreSQL deployments run this before rolling out a new version)')
    .option('-c, --config <file>', 'YAML config file')
    .option('--status', 'only show applied and pending migrations')
    .action(async (opts: { config?: string; status?: boolean }) => {
      const config = loadConfig({ file: opts.config });
      const dialect = config.metadata.driver;
      const { db } = await openMetadata(config, { migrate: false, check: false });
      try {
        if (opts.status) {
          const st = await migrationStatus(db, dialect);
          process.stdout.write(JSON.stringify(st, null, 2) + '\n');
          if (st.unknown.length) process.exitCode = 3;
          return;
        }
        const applied = await migrateToLatest(db, dialect);
        process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'the database is up to date\n');
      } finally {
        await db.destroy();
      }
    });
  example(serveCmd, 'berth serve --listen :5000 --data /var/lib/berth', 'berth serve --config berth.yaml --tls-cert cert.pem --tls-key key.pem', 'berth serve --tls-cert cert.pem --tls-key key.pem --http2');
  example(migrateCmd, 'berth migrate --config berth.yaml --status', 'berth migrate --config berth.yaml');
  return program;
}
