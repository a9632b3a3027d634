import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, parseListen, sqlitePath, storagePath } from '../../src/config/schema.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function yamlFile(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

function configError(fn: () => unknown, ...patterns: RegExp[]): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return e;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig: defaults', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.listen, ':5000');
    assert.equal(c.data, './data');
    assert.equal(c.logLevel, 'info');
    assert.equal(c.metadata.driver, 'sqlite');
    assert.equal(c.storage.driver, 'fs');
    assert.equal(c.uploads.expireAfterSeconds, 24 * 3600);
    assert.equal(c.shutdownGraceSeconds, 30);
  });
  it('derives the SQLite and storage paths from data', () => {
    const c = loadConfig({ env: {}, overrides: { data: '/srv/berth' } });
    assert.equal(sqlitePath(c), path.join('/srv/berth', 'berth.db'));
    assert.equal(storagePath(c), path.join('/srv/berth', 'storage'));
  });
  it('does not read process.env when env is given', () => {
    const saved = process.env.BERTH_LISTEN;
    process.env.BERTH_LISTEN = ':1234';
    try {
      assert.equal(loadConfig({ env: {} }).listen, ':5000');
    } finally {
      if (saved === undefined) delete process.env.BERTH_LISTEN;
      else process.env.BERTH_LISTEN = saved;
    }
  });
});

describe('loadConfig: environment', () => {
  it('BERTH_LISTEN and BERTH_DATA', () => {
    const c = loadConfig({ env: { BERTH_LISTEN: '127.0.0.1:8080', BERTH_DATA: '/var/lib/berth' } });
    assert.equal(c.listen, '127.0.0.1:8080');
    assert.equal(c.data, '/var/lib/berth');
  });
  it('every BERTH_* variable', () => {
    const c = loadConfig({
      env: {
        BERTH_LOG_LEVEL: 'debug',
        BERTH_METADATA_DRIVER: 'sqlite',
        BERTH_SQLITE_PATH: '/db/b.db',
        BERTH_STORAGE_DRIVER: 'fs',
        BERTH_STORAGE_PATH: '/blobs',
        BERTH_UPLOAD_EXPIRE_SECONDS: '60',
        BERTH_SHUTDOWN_GRACE_SECONDS: '0',
      },
    });
    assert.equal(c.logLevel, 'debug');
    assert.equal(sqlitePath(c), '/db/b.db');
    assert.equal(storagePath(c), '/blobs');
    assert.equal(c.uploads.expireAfterSeconds, 60);
    assert.equal(c.shutdownGraceSeconds, 0);
  });
  it('empty variables are ignored', () => {
    const c = loadConfig({ env: { BERTH_LISTEN: '', BERTH_DATA: '' } });
    assert.equal(c.listen, ':5000');
    assert.equal(c.data, './data');
  });
  it('unrelated variables are ignored', () => {
    assert.equal(loadConfig({ env: { PORT: '9', BERTH_UNKNOWN: 'x' } }).listen, ':5000');
  });
});

describe('loadConfig: YAML file', () => {
  it('reads every section', async () => {
    const file = await yamlFile(
      'full.yaml',
      [
        'listen: "0.0.0.0:6000"',
        'data: /tmp/berth-data',
        'logLevel: warn',
        'metadata:',
        '  driver: sqlite',
        '  sqlitePath: /tmp/meta.db',
        'storage:',
        '  driver: fs',
        '  fsPath: /tmp/blobs',
        'uploads:',
        '  expireAfterSeconds: 120',
        'shutdownGraceSeconds: 5',
      ].join('\n'),
    );
    const c = loadConfig({ file, env: {} });
    assert.equal(c.listen, '0.0.0.0:6000');
    assert.equal(c.data, '/tmp/berth-data');
    assert.equal(c.logLevel, 'warn');
    assert.equal(c.metadata.sqlitePath, '/tmp/meta.db');
    assert.equal(c.storage.fsPath, '/tmp/blobs');
    assert.equal(c.uploads.expireAfterSeconds, 120);
    assert.equal(c.shutdownGraceSeconds, 5);
  });
  it('an empty file gives the defaults', async () => {
    const c = loadConfig({ file: await yamlFile('empty.yaml', ''), env: {} });
    assert.equal(c.listen, ':5000');
  });
  it('a comments-only file gives the defaults', async () => {
    const c = loadConfig({ file: await yamlFile('comments.yaml', '# nothing here\n'), env: {} });
    assert.equal(c.data, './data');
  });
  it('environment overrides the file, and overrides override the environment', async () => {
    const file = await yamlFile('layer.yaml', 'listen: ":6000"\ndata: /from-file\nlogLevel: warn\n');
    const c = loadConfig({ file, env: { BERTH_LISTEN: ':7000', BERTH_DATA: '/from-env' }, overrides: { data: '/from-flag' } });
    assert.equal(c.listen, ':7000');
    assert.equal(c.data, '/from-flag');
    assert.equal(c.logLevel, 'warn');
  });
  it('undefined overrides do not clear values', async () => {
    const c = loadConfig({ env: { BERTH_DATA: '/env' }, overrides: { data: undefined, listen: undefined } });
    assert.equal(c.data, '/env');
  });
  it('a missing file is a ConfigError', () => {
    configError(() => loadConfig({ file: path.join(dir, 'nope.yaml'), env: {} }), /cannot read config file/);
  });
  it('a YAML list is a ConfigError', async () => {
    const file = await yamlFile('list.yaml', '- a\n- b\n');
    configError(() => loadConfig({ file, env: {} }), /must be a YAML mapping/);
  });
  it('a YAML scalar is a ConfigError', async () => {
    const file = await yamlFile('scalar.yaml', 'just a string\n');
    configError(() => loadConfig({ file, env: {} }), /must be a YAML mapping/);
  });
  it('a YAML syntax error is a ConfigError naming the file', async () => {
    const file = await yamlFile('broken.yaml', 'listen: ":5000"\n  data: [unclosed\n');
    configError(() => loadConfig({ file, env: {} }), /broken\.yaml/);
  });
});

describe('loadConfig: invalid values', () => {
  const cases: [string, Parameters<typeof loadConfig>[0], RegExp[]][] = [
    ['listen without a port', { env: { BERTH_LISTEN: 'localhost' } }, [/listen/, /HOST:PORT/]],
    ['listen with a bad port', { env: { BERTH_LISTEN: ':http' } }, [/listen/]],
    ['listen with a port above 65535', { env: { BERTH_LISTEN: ':70000' } }, [/listen/]],
    ['listen with a space', { env: { BERTH_LISTEN: 'local host:5000' } }, [/listen/]],
    ['unknown log level', { env: { BERTH_LOG_LEVEL: 'loud' } }, [/logLevel/]],
    ['unknown metadata driver', { env: { BERTH_METADATA_DRIVER: 'mysql' } }, [/metadata\.driver/]],
    ['unknown storage driver', { env: { BERTH_STORAGE_DRIVER: 'gcs' } }, [/storage\.driver/]],
    ['non-numeric expiry', { env: { BERTH_UPLOAD_EXPIRE_SECONDS: 'soon' } }, [/uploads\.expireAfterSeconds/]],
    ['zero expiry', { env: { BERTH_UPLOAD_EXPIRE_SECONDS: '0' } }, [/uploads\.expireAfterSeconds/]],
    ['negative grace', { env: { BERTH_SHUTDOWN_GRACE_SECONDS: '-1' } }, [/shutdownGraceSeconds/]],
    ['fractional grace', { env: { BERTH_SHUTDOWN_GRACE_SECONDS: '1.5' } }, [/shutdownGraceSeconds/]],
    ['empty data override', { env: {}, overrides: { data: '' } }, [/data/]],
    [
      'every problem is listed',
      { env: { BERTH_LISTEN: 'nope', BERTH_LOG_LEVEL: 'loud', BERTH_UPLOAD_EXPIRE_SECONDS: 'x' } },
      [/invalid configuration/, /listen/, /logLevel/, /uploads\.expireAfterSeconds/],
    ],
  ];
  for (const [what, opts, patterns] of cases) {
    it(what, () => void configError(() => loadConfig(opts), ...patterns));
  }

  it('unknown keys in the file are rejected', async () => {
    const file = await yamlFile('unknown.yaml', 'listen: ":5000"\nlisten_port: 5000\n');
    configError(() => loadConfig({ file, env: {} }), /listen_port/);
  });
  it('unknown nested keys are rejected', async () => {
    const file = await yamlFile('nested.yaml', 'storage:\n  driver: fs\n  bucket: x\n');
    configError(() => loadConfig({ file, env: {} }), /storage/, /bucket/);
  });
  it('wrong types in the file are rejected', async () => {
    const file = await yamlFile('types.yaml', 'listen: 5000\nuploads:\n  expireAfterSeconds: "1h"\n');
    configError(() => loadConfig({ file, env: {} }), /listen/, /uploads\.expireAfterSeconds/);
  });
});

describe('parseListen', () => {
  const cases: [string, string, number][] = [
    [':5000', '0.0.0.0', 5000],
    ['127.0.0.1:8080', '127.0.0.1', 8080],
    ['localhost:1', 'localhost', 1],
    ['[::1]:5000', '::1', 5000],
    ['[::]:443', '::', 443],
  ];
  for (const [listen, host, port] of cases) {
    it(`${listen} → ${host} ${port}`, () => assert.deepEqual(parseListen(listen), { host, port }));
  }
  it('accepts every listen value that loadConfig accepts', () => {
    for (const listen of [':0', ':65535', '[::1]:80', 'example.com:5000']) {
      const c = loadConfig({ env: { BERTH_LISTEN: listen } });
      const { port } = parseListen(c.listen);
      assert.ok(Number.isInteger(port) && port >= 0 && port <= 65535, listen);
    }
  });
});
