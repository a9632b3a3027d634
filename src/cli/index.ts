import { ApiClientError } from './client.ts';
import { buildProgram } from './program.ts';

buildProgram()
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    const known = e instanceof ApiClientError || (e instanceof Error && !(e instanceof TypeError));
    process.stderr.write(`berth: ${known ? (e as Error).message : ((e as Error).stack ?? String(e))}\n`);
    process.exit(1);
  });
