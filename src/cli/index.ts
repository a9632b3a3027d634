import { Command, Option } from 'commander';
import { ConfigError, loadConfig } from '../config/schema.ts';
import { openMetadata } from '../main.ts';
import { migrateToLatest, migrationStatus } from '../metadata/sql/migrations.ts';
import { adminCommands } from './admin.ts';
import { ApiClientError } from './client.ts';
import { pushCommands } from './push.ts';
import { runServe } from './serve.ts';
import { webhookCommands } from './webhook.ts';

const program = new Command();
program
  .name('berth')
  .description('Berth: an OCI artifact and Docker container registry')
  .option('-s, --server <url>', 'Berth server for management commands (default $BERTH_URL, the login file, or http://localhost:5000)')
  .option('--json', 'print JSON instead of tables');
adminCommands(program);
pushCommands(program);
webhookCommands(program);

program
  .command('serve')
  .description('run the registry')
  .option('-c, --config <file>', 'YAML config file')
  .addOption(new Option('-l, --listen <addr>', 'HOST:PORT or :PORT to listen on (default :5000)').env('BERTH_LISTEN'))
  .addOption(new Option('-d, --data <dir>', 'data folder (default ./data)').env('BERTH_DATA'))
  .addOption(new Option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent').env('BERTH_LOG_LEVEL'))
  .addOption(new Option('-w, --workers <n>', 'serving processes, 0 = one per CPU core (default 0)').env('BERTH_WORKERS'))
  .action(async (opts: { config?: string; listen?: string; data?: string; logLevel?: string; workers?: string }) => {
    let config;
    try {
      config = loadConfig({
        file: opts.config,
        overrides: { listen: opts.listen, data: opts.data, logLevel: opts.logLevel as never, workers: opts.workers === undefined ? undefined : Number(opts.workers) },
      });
    } catch (e) {
      if (e instanceof ConfigError) {
        process.stderr.write(`berth: ${e.message}\n`);
        process.exit(2);
      }
      throw e;
    }
    await runServe(config);
  });

program
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

program.parseAsync(process.argv).catch((e: unknown) => {
  const known = e instanceof ApiClientError || (e instanceof Error && !(e instanceof TypeError));
  process.stderr.write(`berth: ${known ? (e as Error).message : ((e as Error).stack ?? String(e))}\n`);
  process.exit(1);
});
