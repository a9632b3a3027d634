import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';
import { runMetadataSuite } from '../suites/metadata-suite.ts';
import { runJobSuite } from '../suites/jobs-suite.ts';

const open = async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-sqlite-'));
  const { meta, access, events, jobs } = await openSqlite(path.join(dir, 'berth.db'));
  return {
    meta,
    access,
    events,
    jobs,
    async cleanup() {
      await meta.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
};

runMetadataSuite('sqlite', open);
runJobSuite('sqlite', open);
