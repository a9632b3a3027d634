import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WORKER_SEMI_SPACE_MB, workerEnv, workerExecArgv } from '../../src/cli/serve.ts';

test('workers get a smaller young generation and two malloc arenas unless the operator chose otherwise', () => {
  const flag = `--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`;
  assert.deepEqual(workerExecArgv([]), [flag]);
  assert.deepEqual(workerExecArgv(['--enable-source-maps']), ['--enable-source-maps', flag]);
  // chosen on node's command line (either spelling, with = or as the next argument) or in NODE_OPTIONS: kept as given
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=16']), ['--max-semi-space-size=16']);
  assert.deepEqual(workerExecArgv(['--max_semi_space_size', '2']), ['--max_semi_space_size', '2']);
  assert.deepEqual(workerExecArgv([], '--trace-warnings --max-semi-space-size=0'), []);
  assert.deepEqual(workerExecArgv([], '--max-old-space-size=512'), [flag]);
  assert.deepEqual(workerEnv({}), { MALLOC_ARENA_MAX: '2' });
  assert.deepEqual(workerEnv({ MALLOC_ARENA_MAX: '8' }), {});
});
