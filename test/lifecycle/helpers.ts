/**
 * A Berth for the lifecycle tests on any pair of metadata dialect (SQLite, PostgreSQL) and
 * storage driver (fs, S3: the Ceph gateway when BERTH_TEST_S3_ENDPOINT is set, as in CI).
 * Requests through `app.inject` as given; pass `ADMIN` (test/events/helpers.ts) to act as admin.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Config, loadConfig } from '../../src/config/schema.ts';
import { createBerth, type Berth } from '../../src/main.ts';
import { ADMIN_PASSWORD, POSTGRES_URL, createSchema, dropSchema } from '../events/helpers.ts';
import { startS3, type TestS3 } from '../helpers/s3.ts';

export interface LifecycleBerth {
  berth: Berth;
  s3: TestS3 | undefined;
  close(): Promise<void>;
}

export interface LifecycleOptions {
  postgres?: boolean;
  s3?: boolean;
  gc?: Partial<Config['gc']>;
  jobs?: Partial<Config['jobs']>;
}

export async function openLifecycleBerth(opts: LifecycleOptions = {}): Promise<LifecycleBerth> {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-lifecycle-'));
  const schema = opts.postgres ? await createSchema() : undefined;
  const s3 = opts.s3 ? await startS3() : undefined;
  let pgUrl: string | undefined;
  if (schema) {
    const u = new URL(POSTGRES_URL);
    u.searchParams.set('options', `-c search_path=${schema}`);
    pgUrl = u.toString();
  }
  const env: Record<string, string> = s3
    ? { BERTH_STORAGE_DRIVER: 's3', BERTH_S3_BUCKET: s3.bucket, BERTH_S3_ENDPOINT: s3.endpoint, BERTH_S3_ACCESS_KEY_ID: s3.accessKeyId, BERTH_S3_SECRET_ACCESS_KEY: s3.secretAccessKey }
    : {};
  const config = loadConfig({
    env,
    overrides: {
      data: dir,
      auth: { adminPassword: ADMIN_PASSWORD } as Config['auth'],
      ...(pgUrl ? { metadata: { driver: 'postgres', postgresUrl: pgUrl, poolSize: 6 } as Config['metadata'] } : {}),
      ...(opts.gc ? { gc: { ...loadConfig({ env: {} }).gc, ...opts.gc } } : {}),
      ...(opts.jobs ? { jobs: { ...loadConfig({ env: {} }).jobs, ...opts.jobs } } : {}),
    },
  });
  const berth = await createBerth(config, false);
  await berth.app.ready();
  return {
    berth,
    s3,
    async close() {
      await berth.close();
      if (schema) await dropSchema(schema);
      await s3?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
