import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openSqlite } from '../../src/metadata/sql/sqlite.ts';
import { runGcSuite } from '../suites/gc-suite.ts';

runGcSuite('sqlite', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-gc-sqlite-'));
  const file = path.join(dir, 'berth.db');
  return {
    open: () => openSqlite(file),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}, { multiNode: false });
